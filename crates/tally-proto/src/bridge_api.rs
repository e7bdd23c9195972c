//! The usage bridge (`tally.bridge.v1`) as a Rust trait ([`BridgeApi`]), implemented by the
//! bridge in-process and by [`BridgeClient`] over gRPC; [`BridgeGrpc`] serves any implementation.

use crate::bridge::v1::{
    BridgeStatus, GetBridgeStatusRequest, ListUploadsRequest, ListUploadsResponse,
    RetryUploadRequest, Upload,
    usage_bridge_client::UsageBridgeClient as UsageBridgeStub,
    usage_bridge_server::{self, UsageBridge, UsageBridgeServer},
};
use crate::service_api::service_api;

service_api! {
    /// UsageBridge as an object-safe trait. Requests keep their metadata and extensions, so the
    /// caller's identity travels with them.
    trait BridgeApi;
    /// The usage bridge over gRPC.
    client BridgeClient("the usage bridge");
    /// Serves any [`BridgeApi`] as the UsageBridge tonic service.
    server BridgeGrpc, BridgeServices;

    UsageBridge / bridge (
        UsageBridgeStub<tonic::transport::Channel>,
        UsageBridgeServer,
        usage_bridge_server::SERVICE_NAME
    ) {
        get_bridge_status(GetBridgeStatusRequest) -> BridgeStatus;
        list_uploads(ListUploadsRequest) -> ListUploadsResponse;
        retry_upload(RetryUploadRequest) -> Upload;
    }
}
