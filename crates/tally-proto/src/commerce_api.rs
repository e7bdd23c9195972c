//! The upstream commerce endpoint (`tally.commerce.v1`) as Rust traits: [`CommerceApi`]
//! (CommerceIngestion, what the usage bridge calls) and [`ReceiverApi`] (the reference
//! receiver's totals and failure switch), each with its gRPC client and tonic services.

use crate::commerce::v1::{
    GetReceiverStateRequest, ListTotalsRequest, ListTotalsResponse, ReceiverState,
    SetFailureRequest, UploadUsageRequest, UploadUsageResponse,
    commerce_ingestion_client::CommerceIngestionClient as CommerceIngestionStub,
    commerce_ingestion_server::{self, CommerceIngestion, CommerceIngestionServer},
    commerce_receiver_client::CommerceReceiverClient as CommerceReceiverStub,
    commerce_receiver_server::{self, CommerceReceiver, CommerceReceiverServer},
};
use crate::service_api::service_api;

service_api! {
    /// CommerceIngestion as an object-safe trait.
    trait CommerceApi;
    /// A commerce endpoint over gRPC.
    client CommerceClient("the commerce endpoint");
    /// Serves any [`CommerceApi`] as the CommerceIngestion tonic service.
    server CommerceGrpc, CommerceServices;

    CommerceIngestion / ingestion (
        CommerceIngestionStub<tonic::transport::Channel>,
        CommerceIngestionServer,
        commerce_ingestion_server::SERVICE_NAME
    ) {
        upload_usage(UploadUsageRequest) -> UploadUsageResponse;
    }
}

service_api! {
    /// The reference receiver's own surface (CommerceReceiver) as an object-safe trait.
    trait ReceiverApi;
    /// The reference receiver over gRPC.
    client ReceiverClient("the commerce receiver");
    /// Serves any [`ReceiverApi`] as the CommerceReceiver tonic service.
    server ReceiverGrpc, ReceiverServices;

    CommerceReceiver / receiver (
        CommerceReceiverStub<tonic::transport::Channel>,
        CommerceReceiverServer,
        commerce_receiver_server::SERVICE_NAME
    ) {
        list_totals(ListTotalsRequest) -> ListTotalsResponse;
        set_failure(SetFailureRequest) -> ReceiverState;
        get_receiver_state(GetReceiverStateRequest) -> ReceiverState;
    }
}
