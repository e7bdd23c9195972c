//! The registration service (Registration and Tenancy) as a Rust trait, implemented in-process
//! by the registration service and over gRPC by [`RegistrationClient`]; [`RegistrationGrpc`]
//! serves any implementation as the two tonic services.

use std::sync::Arc;

use tonic::Request;
use tonic::transport::Channel;

use crate::registration::v1::{
    registration_client::RegistrationClient as RegistrationStub,
    registration_server::{Registration, RegistrationServer},
    tenancy_client::TenancyClient as TenancyStub,
    tenancy_server::{Tenancy, TenancyServer},
    *,
};
use crate::usage_api::Rpc;

/// Declares the trait, its gRPC client, its `Arc` forwarding and the tonic services, one line
/// per RPC, so the four can never disagree.
macro_rules! registration_api {
    ($( $service:ident / $stub:ident { $( $method:ident ( $req:ty ) -> $resp:ty ; )* } )*) => {
        /// Registration and Tenancy as one object-safe trait. Requests keep their metadata and
        /// extensions, so the caller's identity travels with them.
        #[tonic::async_trait]
        pub trait RegistrationApi: Send + Sync + 'static {
            $( $( async fn $method(&self, request: Request<$req>) -> Rpc<$resp>; )* )*
        }

        #[tonic::async_trait]
        impl RegistrationApi for RegistrationClient {
            $( $(
                async fn $method(&self, request: Request<$req>) -> Rpc<$resp> {
                    remote(self.$stub.clone().$method(request).await)
                }
            )* )*
        }

        #[tonic::async_trait]
        impl<T: RegistrationApi + ?Sized> RegistrationApi for Arc<T> {
            $( $(
                async fn $method(&self, request: Request<$req>) -> Rpc<$resp> {
                    (**self).$method(request).await
                }
            )* )*
        }

        $(
            #[tonic::async_trait]
            impl<A: RegistrationApi + ?Sized> $service for RegistrationGrpc<A> {
                $(
                    async fn $method(&self, request: Request<$req>) -> Rpc<$resp> {
                        self.api.$method(request).await
                    }
                )*
            }
        )*
    };
}

registration_api! {
    Registration / registration {
        get_registration(GetRegistrationRequest) -> RegistrationInfo;
        set_registration(SetRegistrationRequest) -> RegistrationInfo;
        remove_registration(RemoveRegistrationRequest) -> RemoveRegistrationResponse;
        put_customer_subscription(PutCustomerSubscriptionRequest) -> CustomerSubscription;
        list_customer_subscriptions(ListCustomerSubscriptionsRequest) -> ListCustomerSubscriptionsResponse;
        delete_customer_subscription(DeleteCustomerSubscriptionRequest) -> DeleteCustomerSubscriptionResponse;
        resolve_billing_subscription(ResolveBillingSubscriptionRequest) -> BillingSubscription;
        get_customer_subscription(GetCustomerSubscriptionRequest) -> CustomerSubscription;
    }
    Tenancy / tenancy {
        create_tenant(CreateTenantRequest) -> Tenant;
        get_tenant(GetTenantRequest) -> Tenant;
        list_tenants(ListTenantsRequest) -> ListTenantsResponse;
        create_subscription(CreateSubscriptionRequest) -> Subscription;
        get_subscription(GetSubscriptionRequest) -> Subscription;
        list_subscriptions(ListSubscriptionsRequest) -> ListSubscriptionsResponse;
        delete_subscription(DeleteSubscriptionRequest) -> Subscription;
    }
}

/// The registration service over gRPC.
#[derive(Clone, Debug)]
pub struct RegistrationClient {
    registration: RegistrationStub<Channel>,
    tenancy: TenancyStub<Channel>,
}

impl RegistrationClient {
    /// Connects on first use and reconnects after failures.
    pub fn connect_lazy(url: &str) -> Result<Self, tonic::transport::Error> {
        Ok(Self::new(crate::server::lazy_channel(url)?))
    }

    pub fn new(channel: Channel) -> Self {
        Self {
            registration: RegistrationStub::new(channel.clone()),
            tenancy: TenancyStub::new(channel),
        }
    }
}

fn remote<T>(result: Rpc<T>) -> Rpc<T> {
    crate::server::remote("the registration service", result)
}

/// Serves any [`RegistrationApi`] as the Registration and Tenancy tonic services.
pub struct RegistrationGrpc<A: ?Sized> {
    api: Arc<A>,
}

impl<A: ?Sized> Clone for RegistrationGrpc<A> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
        }
    }
}

pub struct RegistrationServices<A: RegistrationApi + ?Sized> {
    pub registration: RegistrationServer<RegistrationGrpc<A>>,
    pub tenancy: TenancyServer<RegistrationGrpc<A>>,
}

impl<A: RegistrationApi + ?Sized> RegistrationGrpc<A> {
    pub fn services(api: Arc<A>) -> RegistrationServices<A> {
        let grpc = RegistrationGrpc { api };
        RegistrationServices {
            registration: RegistrationServer::new(grpc.clone()),
            tenancy: TenancyServer::new(grpc),
        }
    }
}

/// The fully qualified names of the registration contract's services, for health reporting.
pub const SERVICE_NAMES: [&str; 2] = [
    crate::registration::v1::registration_server::SERVICE_NAME,
    crate::registration::v1::tenancy_server::SERVICE_NAME,
];
