//! The clock (`tally.clock.v1`) as a Rust trait ([`ClockApi`]), served by the process that owns
//! the clock and reachable over gRPC through [`ClockClient`].

use crate::clock::v1::{
    AdvanceClockRequest, ClockTime, GetTimeRequest,
    clock_client::ClockClient as ClockStub,
    clock_server::{self, Clock, ClockServer},
};
use crate::service_api::service_api;

service_api! {
    /// GetTime and AdvanceClock as an object-safe trait.
    trait ClockApi;
    /// The clock over gRPC.
    client ClockClient("the clock");
    /// Serves any [`ClockApi`] as the Clock tonic service.
    server ClockGrpc, ClockServices;

    Clock / clock (
        ClockStub<tonic::transport::Channel>,
        ClockServer,
        clock_server::SERVICE_NAME
    ) {
        get_time(GetTimeRequest) -> ClockTime;
        advance_clock(AdvanceClockRequest) -> ClockTime;
    }
}
