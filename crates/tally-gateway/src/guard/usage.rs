//! The guard of the usage contract (`UsageIngestion`, `ProviderUsage`, `TenantUsage`,
//! `UsageAdmin`), plus the two calls REST needs that gRPC does not have.

use std::sync::Arc;

use tally_core::{Reason, format_guid, parse_guid};
use tally_proto::Rpc;
use tally_proto::status;
use tally_proto::usage::v1 as usage;
use tally_proto::usage_api::UsageApi;
use tonic::{Request, Status};
use uuid::Uuid;

use super::{Ownership, operator_only, principal_of, require_owner, role_required};
use crate::principal::{Grants, Principal, Role};

/// The usage contract with access control in front.
pub(crate) struct GuardedUsage {
    inner: Arc<dyn UsageApi>,
    ownership: Arc<Ownership>,
}

impl GuardedUsage {
    pub(crate) fn new(inner: Arc<dyn UsageApi>, ownership: Arc<Ownership>) -> Self {
        Self { inner, ownership }
    }

    /// ListSubscriberUsageAggregates as ARM addresses it: under a provider subscription in the
    /// path. A delegated provider may name only its own; an operator may name any.
    pub(crate) async fn list_subscriber_usage_aggregates_under(
        &self,
        provider_subscription: Uuid,
        request: Request<usage::ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<usage::ListUsageAggregatesResponse> {
        if let Principal::Limited(Grants {
            delegated_provider: Some(own),
            ..
        }) = principal_of(&request)?
            && own != provider_subscription
        {
            return Err(status::status(
                Reason::NotSubscriptionOwner,
                format!(
                    "provider subscription {} is not the caller's",
                    format_guid(&provider_subscription)
                ),
            ));
        }
        self.list_subscriber_usage_aggregates(request).await
    }

    /// Every meter (deprecated ones too), to name the meters of rows a caller was already
    /// allowed to see. Names and units are not secret, so this is open to every caller, unlike
    /// ListMeters, which lists the catalog for operators.
    pub(crate) async fn meter_names(&self) -> Result<Vec<usage::Meter>, Status> {
        let request = Request::new(usage::ListMetersRequest {
            include_deprecated: true,
        });
        Ok(self.inner.list_meters(request).await?.into_inner().meters)
    }
}

/// Narrows a provider query to `provider`'s direct tenants, refusing a subscriber outside them.
fn narrow_to_direct_tenants(
    message: &mut usage::ListSubscriberUsageAggregatesRequest,
    provider: Uuid,
    direct: &[Uuid],
) -> Result<(), Status> {
    if !message.subscriber_id.is_empty()
        && !parse_guid(&message.subscriber_id).is_some_and(|id| direct.contains(&id))
    {
        return Err(status::status(
            Reason::SubscriberIdIsNotDirectTenant,
            format!(
                "subscriber {} is not a direct tenant of provider subscription {}",
                message.subscriber_id,
                format_guid(&provider)
            ),
        ));
    }
    message.subscribers = Some(usage::SubscriberFilter {
        subscription_ids: direct.iter().map(format_guid).collect(),
    });
    Ok(())
}

#[tonic::async_trait]
impl UsageApi for GuardedUsage {
    async fn post_usage(
        &self,
        request: Request<usage::PostUsageRequest>,
    ) -> Rpc<usage::PostUsageResponse> {
        match principal_of(&request)? {
            Principal::Operator
            | Principal::Limited(Grants {
                resource_provider: true,
                ..
            }) => self.inner.post_usage(request).await,
            Principal::Limited(_) => Err(role_required(
                "posting usage",
                &[Role::Operator, Role::ResourceProvider],
            )),
        }
    }

    async fn list_subscriber_usage_aggregates(
        &self,
        mut request: Request<usage::ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<usage::ListUsageAggregatesResponse> {
        let provider = match principal_of(&request)? {
            Principal::Operator => {
                return self.inner.list_subscriber_usage_aggregates(request).await;
            }
            Principal::Limited(Grants {
                delegated_provider: Some(provider),
                ..
            }) => provider,
            Principal::Limited(_) => {
                return Err(role_required(
                    "the provider usage API",
                    &[Role::Operator, Role::DelegatedProvider],
                ));
            }
        };
        let direct = self.ownership.direct_tenants(provider).await?;
        narrow_to_direct_tenants(request.get_mut(), provider, &direct)?;
        self.inner.list_subscriber_usage_aggregates(request).await
    }

    async fn list_usage_aggregates(
        &self,
        request: Request<usage::ListUsageAggregatesRequest>,
    ) -> Rpc<usage::ListUsageAggregatesResponse> {
        let principal = principal_of(&request)?;
        require_owner(
            &self.ownership,
            &principal,
            &request.get_ref().subscription_id,
        )
        .await?;
        self.inner.list_usage_aggregates(request).await
    }

    async fn list_meters(
        &self,
        request: Request<usage::ListMetersRequest>,
    ) -> Rpc<usage::ListMetersResponse> {
        operator_only(&request, "listing meters")?;
        self.inner.list_meters(request).await
    }

    async fn create_meter(&self, request: Request<usage::CreateMeterRequest>) -> Rpc<usage::Meter> {
        operator_only(&request, "creating meters")?;
        self.inner.create_meter(request).await
    }

    async fn get_pipeline_status(
        &self,
        request: Request<usage::GetPipelineStatusRequest>,
    ) -> Rpc<usage::PipelineStatus> {
        operator_only(&request, "the pipeline status")?;
        self.inner.get_pipeline_status(request).await
    }
}
