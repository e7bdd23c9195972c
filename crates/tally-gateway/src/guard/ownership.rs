//! Who owns what, as the guards need to know it: a subscription's owner tenant and a provider
//! subscription's direct tenants, looked up through the registration service and cached for
//! at most [`OWNERSHIP_TTL`].
//!
//! A change of owner or of delegated provider takes up to that long to apply at the gateway.
//! Unknown subscriptions are never cached, so a new subscription is usable at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_core::parse_guid;
use tally_proto::registration::v1 as reg;
use tally_proto::registration_api::RegistrationApi;
use tonic::{Request, Status};
use uuid::Uuid;

/// How stale the gateway's view of subscription ownership may be.
pub const OWNERSHIP_TTL: Duration = Duration::from_secs(30);
/// Entries kept per cache; beyond this a cache starts over.
const MAX_CACHED: usize = 100_000;

struct Cached<T> {
    value: T,
    at: Instant,
}

/// Looks up and caches who owns what.
pub(crate) struct Ownership {
    registration: Arc<dyn RegistrationApi>,
    owners: Mutex<HashMap<Uuid, Cached<Uuid>>>,
    direct_tenants: Mutex<HashMap<Uuid, Cached<Arc<Vec<Uuid>>>>>,
}

fn fresh<T: Clone>(cache: &Mutex<HashMap<Uuid, Cached<T>>>, key: &Uuid) -> Option<T> {
    let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .get(key)
        .filter(|c| c.at.elapsed() < OWNERSHIP_TTL)
        .map(|c| c.value.clone())
}

fn remember<T>(cache: &Mutex<HashMap<Uuid, Cached<T>>>, key: Uuid, value: T) {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(
        key,
        Cached {
            value,
            at: Instant::now(),
        },
    );
}

impl Ownership {
    pub(crate) fn new(registration: Arc<dyn RegistrationApi>) -> Self {
        Self {
            registration,
            owners: Mutex::new(HashMap::new()),
            direct_tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant owning `subscription`, or `None` if the subscription is not known.
    pub(crate) async fn owner(&self, subscription: Uuid) -> Result<Option<Uuid>, Status> {
        if let Some(owner) = fresh(&self.owners, &subscription) {
            return Ok(Some(owner));
        }
        let found = self
            .registration
            .get_subscription(Request::new(reg::GetSubscriptionRequest {
                subscription_id: subscription.hyphenated().to_string(),
            }))
            .await;
        match found {
            Ok(s) => {
                let owner = parse_guid(&s.into_inner().owner_tenant_id);
                if let Some(owner) = owner {
                    remember(&self.owners, subscription, owner);
                }
                Ok(owner)
            }
            Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The subscriptions whose delegated provider is `provider` (deleted ones included).
    pub(crate) async fn direct_tenants(&self, provider: Uuid) -> Result<Arc<Vec<Uuid>>, Status> {
        if let Some(ids) = fresh(&self.direct_tenants, &provider) {
            return Ok(ids);
        }
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .registration
                .list_subscriptions(Request::new(reg::ListSubscriptionsRequest {
                    delegated_provider_subscription_id: provider.hyphenated().to_string(),
                    include_deleted: true,
                    page_size: 1_000,
                    page_token,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            ids.extend(
                page.subscriptions
                    .iter()
                    .filter_map(|s| parse_guid(&s.subscription_id)),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let ids = Arc::new(ids);
        remember(&self.direct_tenants, provider, ids.clone());
        Ok(ids)
    }
}
