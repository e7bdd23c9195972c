//! The usage bridge's guard: its status, uploads and retries are for operators only.

use std::sync::Arc;

use tally_proto::Rpc;
use tally_proto::bridge::v1 as bridge;
use tally_proto::bridge_api::BridgeApi;
use tonic::Request;

use super::operator_only;

pub(crate) struct GuardedBridge {
    inner: Arc<dyn BridgeApi>,
}

impl GuardedBridge {
    pub(crate) fn new(inner: Arc<dyn BridgeApi>) -> Self {
        Self { inner }
    }
}

#[tonic::async_trait]
impl BridgeApi for GuardedBridge {
    async fn get_bridge_status(
        &self,
        request: Request<bridge::GetBridgeStatusRequest>,
    ) -> Rpc<bridge::BridgeStatus> {
        operator_only(&request, "reading the usage bridge's status")?;
        self.inner.get_bridge_status(request).await
    }

    async fn list_uploads(
        &self,
        request: Request<bridge::ListUploadsRequest>,
    ) -> Rpc<bridge::ListUploadsResponse> {
        operator_only(&request, "listing the usage bridge's uploads")?;
        self.inner.list_uploads(request).await
    }

    async fn retry_upload(
        &self,
        request: Request<bridge::RetryUploadRequest>,
    ) -> Rpc<bridge::Upload> {
        operator_only(&request, "retrying an upload")?;
        self.inner.retry_upload(request).await
    }
}
