//! The guard of the registration contract (`Registration`, `Tenancy`): operators manage
//! everything; tenants read their own tenant and subscriptions; delegated providers list their
//! direct tenants' subscriptions.

use std::sync::Arc;

use tally_core::{Reason, format_guid};
use tally_proto::Rpc;
use tally_proto::registration::v1 as reg;
use tally_proto::registration::v1::resolve_billing_subscription_request::Target;
use tally_proto::registration_api::RegistrationApi;
use tally_proto::status;
use tonic::Request;

use super::{Ownership, is_own_tenant, operator_only, principal_of, require_owner, role_required};
use crate::principal::{Grants, Principal, Role};

/// The registration contract with access control in front.
pub(crate) struct GuardedRegistration {
    inner: Arc<dyn RegistrationApi>,
    ownership: Arc<Ownership>,
}

impl GuardedRegistration {
    pub(crate) fn new(inner: Arc<dyn RegistrationApi>, ownership: Arc<Ownership>) -> Self {
        Self { inner, ownership }
    }
}

#[tonic::async_trait]
impl RegistrationApi for GuardedRegistration {
    async fn get_registration(
        &self,
        request: Request<reg::GetRegistrationRequest>,
    ) -> Rpc<reg::RegistrationInfo> {
        operator_only(&request, "reading the registration")?;
        self.inner.get_registration(request).await
    }

    async fn set_registration(
        &self,
        request: Request<reg::SetRegistrationRequest>,
    ) -> Rpc<reg::RegistrationInfo> {
        operator_only(&request, "changing the registration")?;
        self.inner.set_registration(request).await
    }

    async fn remove_registration(
        &self,
        request: Request<reg::RemoveRegistrationRequest>,
    ) -> Rpc<reg::RemoveRegistrationResponse> {
        operator_only(&request, "removing the registration")?;
        self.inner.remove_registration(request).await
    }

    async fn put_customer_subscription(
        &self,
        request: Request<reg::PutCustomerSubscriptionRequest>,
    ) -> Rpc<reg::CustomerSubscription> {
        operator_only(&request, "mapping customer subscriptions")?;
        self.inner.put_customer_subscription(request).await
    }

    async fn list_customer_subscriptions(
        &self,
        request: Request<reg::ListCustomerSubscriptionsRequest>,
    ) -> Rpc<reg::ListCustomerSubscriptionsResponse> {
        operator_only(&request, "listing customer subscriptions")?;
        self.inner.list_customer_subscriptions(request).await
    }

    async fn get_customer_subscription(
        &self,
        request: Request<reg::GetCustomerSubscriptionRequest>,
    ) -> Rpc<reg::CustomerSubscription> {
        operator_only(&request, "reading customer subscriptions")?;
        self.inner.get_customer_subscription(request).await
    }

    async fn delete_customer_subscription(
        &self,
        request: Request<reg::DeleteCustomerSubscriptionRequest>,
    ) -> Rpc<reg::DeleteCustomerSubscriptionResponse> {
        operator_only(&request, "removing customer subscriptions")?;
        self.inner.delete_customer_subscription(request).await
    }

    async fn resolve_billing_subscription(
        &self,
        request: Request<reg::ResolveBillingSubscriptionRequest>,
    ) -> Rpc<reg::BillingSubscription> {
        let principal = principal_of(&request)?;
        if let Principal::Limited(grants) = &principal {
            match &request.get_ref().target {
                Some(Target::TenantId(tenant)) if !is_own_tenant(grants, tenant) => {
                    return Err(status::status(
                        Reason::RoleRequired,
                        "only operators may resolve another tenant's billing",
                    ));
                }
                Some(Target::TenantId(_)) => {}
                Some(Target::SubscriptionId(subscription)) => {
                    require_owner(&self.ownership, &principal, subscription).await?;
                }
                // Refused by the service, naming the missing target.
                None => {}
            }
        }
        self.inner.resolve_billing_subscription(request).await
    }

    async fn create_tenant(&self, request: Request<reg::CreateTenantRequest>) -> Rpc<reg::Tenant> {
        operator_only(&request, "creating tenants")?;
        self.inner.create_tenant(request).await
    }

    async fn get_tenant(&self, request: Request<reg::GetTenantRequest>) -> Rpc<reg::Tenant> {
        match principal_of(&request)? {
            Principal::Operator => {}
            Principal::Limited(grants) if is_own_tenant(&grants, &request.get_ref().tenant_id) => {}
            Principal::Limited(_) => {
                return Err(status::status(
                    Reason::RoleRequired,
                    "only operators may read another tenant",
                ));
            }
        }
        self.inner.get_tenant(request).await
    }

    async fn list_tenants(
        &self,
        request: Request<reg::ListTenantsRequest>,
    ) -> Rpc<reg::ListTenantsResponse> {
        operator_only(&request, "listing tenants")?;
        self.inner.list_tenants(request).await
    }

    async fn create_subscription(
        &self,
        request: Request<reg::CreateSubscriptionRequest>,
    ) -> Rpc<reg::Subscription> {
        operator_only(&request, "creating subscriptions")?;
        self.inner.create_subscription(request).await
    }

    async fn get_subscription(
        &self,
        request: Request<reg::GetSubscriptionRequest>,
    ) -> Rpc<reg::Subscription> {
        let principal = principal_of(&request)?;
        require_owner(
            &self.ownership,
            &principal,
            &request.get_ref().subscription_id,
        )
        .await?;
        self.inner.get_subscription(request).await
    }

    async fn list_subscriptions(
        &self,
        mut request: Request<reg::ListSubscriptionsRequest>,
    ) -> Rpc<reg::ListSubscriptionsResponse> {
        // Narrowed to what the caller may see: its direct tenants', or its own subscriptions.
        let principal = principal_of(&request)?;
        let message = request.get_mut();
        match principal {
            Principal::Operator => {}
            Principal::Limited(Grants {
                delegated_provider: Some(provider),
                ..
            }) => message.delegated_provider_subscription_id = format_guid(&provider),
            Principal::Limited(Grants {
                tenant: Some(tenant),
                ..
            }) => {
                // A deleted subscription is gone for its tenant (see the module header).
                message.owner_tenant_id = format_guid(&tenant);
                message.include_deleted = false;
            }
            Principal::Limited(_) => {
                return Err(role_required("listing subscriptions", &[Role::Operator]));
            }
        }
        self.inner.list_subscriptions(request).await
    }

    async fn delete_subscription(
        &self,
        request: Request<reg::DeleteSubscriptionRequest>,
    ) -> Rpc<reg::Subscription> {
        operator_only(&request, "deleting subscriptions")?;
        self.inner.delete_subscription(request).await
    }
}
