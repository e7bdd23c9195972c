//! The usage service as a Rust trait, implemented by the aggregator in-process and by
//! [`UsageClient`] over gRPC, so the gateway calls either without knowing which, and an
//! in-process call pays no serialization. [`UsageGrpc`] serves any implementation over tonic.

use std::sync::Arc;

use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::MAX_MESSAGE_BYTES;
use crate::usage::v1::{
    CreateMeterRequest, GetPipelineStatusRequest, ListMetersRequest, ListMetersResponse,
    ListSubscriberUsageAggregatesRequest, ListUsageAggregatesRequest, ListUsageAggregatesResponse,
    Meter, PipelineStatus, PostUsageRequest, PostUsageResponse,
    provider_usage_client::ProviderUsageClient,
    provider_usage_server::{ProviderUsage, ProviderUsageServer},
    tenant_usage_client::TenantUsageClient,
    tenant_usage_server::{TenantUsage, TenantUsageServer},
    usage_admin_client::UsageAdminClient,
    usage_admin_server::{UsageAdmin, UsageAdminServer},
    usage_ingestion_client::UsageIngestionClient,
    usage_ingestion_server::{UsageIngestion, UsageIngestionServer},
};

pub type Rpc<T> = Result<Response<T>, Status>;

/// UsageIngestion, ProviderUsage, TenantUsage and UsageAdmin as one object-safe trait. Requests
/// keep their metadata and extensions, so a caller's identity travels with them.
#[tonic::async_trait]
pub trait UsageApi: Send + Sync + 'static {
    async fn post_usage(&self, request: Request<PostUsageRequest>) -> Rpc<PostUsageResponse>;
    async fn list_subscriber_usage_aggregates(
        &self,
        request: Request<ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse>;
    async fn list_usage_aggregates(
        &self,
        request: Request<ListUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse>;
    async fn list_meters(&self, request: Request<ListMetersRequest>) -> Rpc<ListMetersResponse>;
    async fn create_meter(&self, request: Request<CreateMeterRequest>) -> Rpc<Meter>;
    async fn get_pipeline_status(
        &self,
        request: Request<GetPipelineStatusRequest>,
    ) -> Rpc<PipelineStatus>;
}

/// The usage service over gRPC.
#[derive(Clone, Debug)]
pub struct UsageClient {
    ingestion: UsageIngestionClient<Channel>,
    provider: ProviderUsageClient<Channel>,
    tenant: TenantUsageClient<Channel>,
    admin: UsageAdminClient<Channel>,
}

impl UsageClient {
    /// A client that connects on first use and reconnects after failures, so a gateway can start
    /// before the aggregator does.
    pub fn connect_lazy(url: &str) -> Result<Self, tonic::transport::Error> {
        Ok(Self::new(crate::server::lazy_channel(url)?))
    }

    pub fn new(channel: Channel) -> Self {
        Self {
            ingestion: UsageIngestionClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            provider: ProviderUsageClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            tenant: TenantUsageClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            admin: UsageAdminClient::new(channel),
        }
    }
}

fn remote<T>(result: Rpc<T>) -> Rpc<T> {
    crate::server::remote("the usage service", result)
}

#[tonic::async_trait]
impl UsageApi for UsageClient {
    async fn post_usage(&self, request: Request<PostUsageRequest>) -> Rpc<PostUsageResponse> {
        remote(self.ingestion.clone().post_usage(request).await)
    }
    async fn list_subscriber_usage_aggregates(
        &self,
        request: Request<ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse> {
        remote(
            self.provider
                .clone()
                .list_subscriber_usage_aggregates(request)
                .await,
        )
    }
    async fn list_usage_aggregates(
        &self,
        request: Request<ListUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse> {
        remote(self.tenant.clone().list_usage_aggregates(request).await)
    }
    async fn list_meters(&self, request: Request<ListMetersRequest>) -> Rpc<ListMetersResponse> {
        remote(self.admin.clone().list_meters(request).await)
    }
    async fn create_meter(&self, request: Request<CreateMeterRequest>) -> Rpc<Meter> {
        remote(self.admin.clone().create_meter(request).await)
    }
    async fn get_pipeline_status(
        &self,
        request: Request<GetPipelineStatusRequest>,
    ) -> Rpc<PipelineStatus> {
        remote(self.admin.clone().get_pipeline_status(request).await)
    }
}

#[tonic::async_trait]
impl<T: UsageApi + ?Sized> UsageApi for Arc<T> {
    async fn post_usage(&self, request: Request<PostUsageRequest>) -> Rpc<PostUsageResponse> {
        (**self).post_usage(request).await
    }
    async fn list_subscriber_usage_aggregates(
        &self,
        request: Request<ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse> {
        (**self).list_subscriber_usage_aggregates(request).await
    }
    async fn list_usage_aggregates(
        &self,
        request: Request<ListUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse> {
        (**self).list_usage_aggregates(request).await
    }
    async fn list_meters(&self, request: Request<ListMetersRequest>) -> Rpc<ListMetersResponse> {
        (**self).list_meters(request).await
    }
    async fn create_meter(&self, request: Request<CreateMeterRequest>) -> Rpc<Meter> {
        (**self).create_meter(request).await
    }
    async fn get_pipeline_status(
        &self,
        request: Request<GetPipelineStatusRequest>,
    ) -> Rpc<PipelineStatus> {
        (**self).get_pipeline_status(request).await
    }
}

/// Serves any [`UsageApi`] as the four tonic services.
pub struct UsageGrpc<A: ?Sized> {
    api: Arc<A>,
}

impl<A: ?Sized> Clone for UsageGrpc<A> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
        }
    }
}

/// The four tonic services of the usage contract, ready to mount.
pub struct UsageServices<A: UsageApi + ?Sized> {
    pub ingestion: UsageIngestionServer<UsageGrpc<A>>,
    pub provider: ProviderUsageServer<UsageGrpc<A>>,
    pub tenant: TenantUsageServer<UsageGrpc<A>>,
    pub admin: UsageAdminServer<UsageGrpc<A>>,
}

impl<A: UsageApi + ?Sized> UsageGrpc<A> {
    pub fn services(api: Arc<A>) -> UsageServices<A> {
        let grpc = UsageGrpc { api };
        UsageServices {
            ingestion: UsageIngestionServer::new(grpc.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            provider: ProviderUsageServer::new(grpc.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            tenant: TenantUsageServer::new(grpc.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            admin: UsageAdminServer::new(grpc),
        }
    }
}

#[tonic::async_trait]
impl<A: UsageApi + ?Sized> UsageIngestion for UsageGrpc<A> {
    async fn post_usage(&self, request: Request<PostUsageRequest>) -> Rpc<PostUsageResponse> {
        self.api.post_usage(request).await
    }

    type StreamUsageStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<PostUsageResponse, Status>> + Send>>;

    /// Each message is one atomic batch. Up to [`STREAM_PIPELINE_DEPTH`] batches of a stream are
    /// stored concurrently (so SQLite can commit them together), and answered in order; the
    /// first failure ends the stream. Batches after a failure may already be stored: they were
    /// not acknowledged, and retrying them is idempotent.
    async fn stream_usage(
        &self,
        request: Request<Streaming<PostUsageRequest>>,
    ) -> Rpc<Self::StreamUsageStream> {
        use futures::StreamExt as _;
        let (metadata, extensions, inbound) = request.into_parts();
        let api = self.api.clone();
        let responses = inbound
            .map(move |message| {
                let api = api.clone();
                let request = message
                    .map(|batch| Request::from_parts(metadata.clone(), extensions.clone(), batch));
                async move {
                    match request {
                        Ok(request) => api.post_usage(request).await.map(Response::into_inner),
                        Err(status) => Err(status),
                    }
                }
            })
            .buffered(STREAM_PIPELINE_DEPTH)
            .scan(false, |failed, result| {
                if *failed {
                    return std::future::ready(None);
                }
                *failed = result.is_err();
                std::future::ready(Some(result))
            });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Batches of one stream in flight at once.
pub const STREAM_PIPELINE_DEPTH: usize = 8;

#[tonic::async_trait]
impl<A: UsageApi + ?Sized> ProviderUsage for UsageGrpc<A> {
    async fn list_subscriber_usage_aggregates(
        &self,
        request: Request<ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse> {
        self.api.list_subscriber_usage_aggregates(request).await
    }
}

#[tonic::async_trait]
impl<A: UsageApi + ?Sized> TenantUsage for UsageGrpc<A> {
    async fn list_usage_aggregates(
        &self,
        request: Request<ListUsageAggregatesRequest>,
    ) -> Rpc<ListUsageAggregatesResponse> {
        self.api.list_usage_aggregates(request).await
    }
}

#[tonic::async_trait]
impl<A: UsageApi + ?Sized> UsageAdmin for UsageGrpc<A> {
    async fn list_meters(&self, request: Request<ListMetersRequest>) -> Rpc<ListMetersResponse> {
        self.api.list_meters(request).await
    }
    async fn create_meter(&self, request: Request<CreateMeterRequest>) -> Rpc<Meter> {
        self.api.create_meter(request).await
    }
    async fn get_pipeline_status(
        &self,
        request: Request<GetPipelineStatusRequest>,
    ) -> Rpc<PipelineStatus> {
        self.api.get_pipeline_status(request).await
    }
}

/// The fully qualified names of the usage contract's services, for health reporting.
pub const SERVICE_NAMES: [&str; 4] = [
    crate::usage::v1::usage_ingestion_server::SERVICE_NAME,
    crate::usage::v1::provider_usage_server::SERVICE_NAME,
    crate::usage::v1::tenant_usage_server::SERVICE_NAME,
    crate::usage::v1::usage_admin_server::SERVICE_NAME,
];
