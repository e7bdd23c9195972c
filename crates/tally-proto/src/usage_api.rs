//! The usage service as a Rust trait ([`UsageApi`]), implemented by the aggregator in-process and
//! by [`UsageClient`] over gRPC, so the gateway calls either without knowing which; [`UsageGrpc`]
//! serves any implementation as the four tonic services of `tally.usage.v1`.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use crate::Rpc;
use crate::service_api::{BoxStream, service_api};
use crate::usage::v1::{
    CreateMeterRequest, GetPipelineStatusRequest, ListMetersRequest, ListMetersResponse,
    ListSubscriberUsageAggregatesRequest, ListUsageAggregatesRequest, ListUsageAggregatesResponse,
    Meter, PipelineStatus, PostUsageRequest, PostUsageResponse, UsageAggregate,
    provider_usage_client::ProviderUsageClient,
    provider_usage_server::{self, ProviderUsage, ProviderUsageServer},
    tenant_usage_client::TenantUsageClient,
    tenant_usage_server::{self, TenantUsage, TenantUsageServer},
    usage_admin_client::UsageAdminClient,
    usage_admin_server::{self, UsageAdmin, UsageAdminServer},
    usage_ingestion_client::UsageIngestionClient,
    usage_ingestion_server::{self, UsageIngestion, UsageIngestionServer},
};

service_api! {
    /// UsageIngestion, ProviderUsage, TenantUsage and UsageAdmin as one object-safe trait.
    /// Requests keep their metadata and extensions, so a caller's identity travels with them.
    trait UsageApi;
    /// The usage service over gRPC.
    client UsageClient("the usage service");
    /// Serves any [`UsageApi`] as the four tonic services.
    server UsageGrpc, UsageServices;

    UsageIngestion / ingestion (
        UsageIngestionClient<tonic::transport::Channel>,
        UsageIngestionServer,
        usage_ingestion_server::SERVICE_NAME
    ) {
        post_usage(PostUsageRequest) -> PostUsageResponse;
    } #[extra] {
        type StreamUsageStream = BoxStream<PostUsageResponse>;
        async fn stream_usage(
            &self,
            request: Request<Streaming<PostUsageRequest>>,
        ) -> Rpc<Self::StreamUsageStream> {
            Ok(Response::new(post_each_batch(self.api.clone(), request)))
        }
    }
    ProviderUsage / provider (
        ProviderUsageClient<tonic::transport::Channel>,
        ProviderUsageServer,
        provider_usage_server::SERVICE_NAME
    ) {
        list_subscriber_usage_aggregates(ListSubscriberUsageAggregatesRequest) -> ListUsageAggregatesResponse;
    }
    TenantUsage / tenant (
        TenantUsageClient<tonic::transport::Channel>,
        TenantUsageServer,
        tenant_usage_server::SERVICE_NAME
    ) {
        list_usage_aggregates(ListUsageAggregatesRequest) -> ListUsageAggregatesResponse;
    }
    UsageAdmin / admin (
        UsageAdminClient<tonic::transport::Channel>,
        UsageAdminServer,
        usage_admin_server::SERVICE_NAME
    ) {
        list_meters(ListMetersRequest) -> ListMetersResponse;
        create_meter(CreateMeterRequest) -> Meter;
        get_pipeline_status(GetPipelineStatusRequest) -> PipelineStatus;
    }
}

/// Batches of one stream in flight at once.
pub const STREAM_PIPELINE_DEPTH: usize = 8;

/// StreamUsage: each message is one atomic batch, posted through `api`. Up to
/// [`STREAM_PIPELINE_DEPTH`] batches of a stream are stored concurrently (so SQLite can commit
/// them together), and answered in order; the first failure ends the stream. Batches after a
/// failure may already be stored: they were not acknowledged, and retrying them is idempotent.
fn post_each_batch<A: UsageApi + ?Sized>(
    api: Arc<A>,
    request: Request<Streaming<PostUsageRequest>>,
) -> BoxStream<PostUsageResponse> {
    use futures::StreamExt as _;
    let (metadata, extensions, inbound) = request.into_parts();
    let responses = inbound
        .map(move |message| {
            let api = api.clone();
            let request = message
                .map(|batch| Request::from_parts(metadata.clone(), extensions.clone(), batch));
            async move {
                match request {
                    Ok(request) => api.post_usage(request).await.map(Response::into_inner),
                    Err(status) => Err::<_, Status>(status),
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
    Box::pin(responses)
}

/// The pages of one `ListSubscriberUsageAggregates` query, following its continuation tokens:
/// how billing and the bridge walk a reported window.
pub struct SubscriberPages<'a> {
    usage: &'a dyn UsageApi,
    request: ListSubscriberUsageAggregatesRequest,
    done: bool,
}

impl<'a> SubscriberPages<'a> {
    /// The pages of `request`, from its continuation token on (normally none).
    pub fn new(usage: &'a dyn UsageApi, request: ListSubscriberUsageAggregatesRequest) -> Self {
        SubscriberPages {
            usage,
            request,
            done: false,
        }
    }

    /// The next page's rows; `None` after the last page.
    pub async fn next(&mut self) -> Option<Result<Vec<UsageAggregate>, Status>> {
        if self.done {
            return None;
        }
        let page = match self
            .usage
            .list_subscriber_usage_aggregates(Request::new(self.request.clone()))
            .await
        {
            Ok(page) => page.into_inner(),
            Err(status) => {
                self.done = true;
                return Some(Err(status));
            }
        };
        self.done = page.continuation_token.is_empty();
        self.request.continuation_token = page.continuation_token;
        Some(Ok(page.usage_aggregates))
    }
}
