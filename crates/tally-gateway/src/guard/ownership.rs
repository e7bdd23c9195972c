//! Who owns what, as the guards need to know it: a subscription's owner tenant (and whether the
//! subscription is deleted) and a provider subscription's direct tenants, looked up through the
//! registration service and cached ([`OwnershipCache`]).
//!
//! In one process (`tally serve`) the registration service counts every subscription change,
//! and a cached answer is used only while that count has not moved: a deletion applies to the
//! very next request. With the services apart, answers are kept for at most a TTL
//! ([`OWNERSHIP_TTL`] unless configured): a deletion takes up to that long to apply at the
//! gateway. Unknown subscriptions are never cached, so a new subscription is usable at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_core::parse_guid;
use tally_proto::registration::v1 as reg;
use tally_proto::registration_api::{RegistrationApi, SubscriptionChanges};
use tonic::{Request, Status};
use uuid::Uuid;

/// How stale the gateway's view of subscription ownership may be when the registration service
/// runs apart (the default of `tally gateway --ownership-cache-seconds`).
pub const OWNERSHIP_TTL: Duration = Duration::from_secs(30);
/// Entries kept per cache; beyond this a cache starts over.
const MAX_CACHED: usize = 100_000;

/// How long the gateway trusts what it learned about ownership.
#[derive(Clone, Debug)]
pub enum OwnershipCache {
    /// In one process with the registration service: until it reports a change.
    UntilChanged(SubscriptionChanges),
    /// Apart from it: for at most this long (zero: never cached).
    For(Duration),
}

impl Default for OwnershipCache {
    fn default() -> Self {
        OwnershipCache::For(OWNERSHIP_TTL)
    }
}

/// A subscription's owner, as access control needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) tenant: Uuid,
    /// Deleted subscriptions stay visible to operators and providers, not to their tenant.
    pub(crate) deleted: bool,
}

struct Cached<T> {
    value: T,
    at: Instant,
    generation: u64,
}

/// Looks up and caches who owns what.
pub(crate) struct Ownership {
    registration: Arc<dyn RegistrationApi>,
    cache: OwnershipCache,
    owners: Mutex<HashMap<Uuid, Cached<Owner>>>,
    direct_tenants: Mutex<HashMap<Uuid, Cached<Arc<Vec<Uuid>>>>>,
}

impl Ownership {
    pub(crate) fn new(registration: Arc<dyn RegistrationApi>, cache: OwnershipCache) -> Self {
        Self {
            registration,
            cache,
            owners: Mutex::new(HashMap::new()),
            direct_tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The change count before a lookup: an answer is stored with it.
    fn generation(&self) -> u64 {
        match &self.cache {
            OwnershipCache::UntilChanged(changes) => changes.current(),
            OwnershipCache::For(_) => 0,
        }
    }

    fn fresh<T: Clone>(&self, cache: &Mutex<HashMap<Uuid, Cached<T>>>, key: &Uuid) -> Option<T> {
        let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        let cached = cache.get(key)?;
        let fresh = match &self.cache {
            OwnershipCache::UntilChanged(changes) => cached.generation == changes.current(),
            OwnershipCache::For(ttl) => cached.at.elapsed() < *ttl,
        };
        fresh.then(|| cached.value.clone())
    }

    fn remember<T>(
        &self,
        cache: &Mutex<HashMap<Uuid, Cached<T>>>,
        key: Uuid,
        value: T,
        generation: u64,
    ) {
        if matches!(self.cache, OwnershipCache::For(ttl) if ttl.is_zero()) {
            return;
        }
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(
            key,
            Cached {
                value,
                at: Instant::now(),
                generation,
            },
        );
    }

    /// The owner of `subscription`, or `None` if the subscription is not known.
    pub(crate) async fn owner(&self, subscription: Uuid) -> Result<Option<Owner>, Status> {
        if let Some(owner) = self.fresh(&self.owners, &subscription) {
            return Ok(Some(owner));
        }
        let generation = self.generation();
        let found = self
            .registration
            .get_subscription(Request::new(reg::GetSubscriptionRequest {
                subscription_id: subscription.hyphenated().to_string(),
            }))
            .await;
        match found {
            Ok(s) => {
                let s = s.into_inner();
                let owner = parse_guid(&s.owner_tenant_id).map(|tenant| Owner {
                    tenant,
                    deleted: s.state == "Deleted",
                });
                if let Some(owner) = owner {
                    self.remember(&self.owners, subscription, owner, generation);
                }
                Ok(owner)
            }
            Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The subscriptions whose delegated provider is `provider` (deleted ones included).
    pub(crate) async fn direct_tenants(&self, provider: Uuid) -> Result<Arc<Vec<Uuid>>, Status> {
        if let Some(ids) = self.fresh(&self.direct_tenants, &provider) {
            return Ok(ids);
        }
        let generation = self.generation();
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
        self.remember(&self.direct_tenants, provider, ids.clone(), generation);
        Ok(ids)
    }
}
