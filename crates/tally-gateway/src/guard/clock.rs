//! The clock's guard: anyone authenticated reads the clock, operators move it.

use std::sync::Arc;

use tally_proto::Rpc;
use tally_proto::clock::v1 as clock;
use tally_proto::clock_api::ClockApi;
use tonic::Request;

use super::{operator_only, principal_of};

pub(crate) struct GuardedClock {
    inner: Arc<dyn ClockApi>,
}

impl GuardedClock {
    pub(crate) fn new(inner: Arc<dyn ClockApi>) -> Self {
        Self { inner }
    }
}

#[tonic::async_trait]
impl ClockApi for GuardedClock {
    async fn get_time(&self, request: Request<clock::GetTimeRequest>) -> Rpc<clock::ClockTime> {
        principal_of(&request)?;
        self.inner.get_time(request).await
    }

    async fn advance_clock(
        &self,
        request: Request<clock::AdvanceClockRequest>,
    ) -> Rpc<clock::ClockTime> {
        operator_only(&request, "moving the clock")?;
        self.inner.advance_clock(request).await
    }
}
