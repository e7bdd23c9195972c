//! In-memory dictionaries of the integer keys that keep records narrow. Keys are only learned
//! from committed rows, so a rolled-back transaction can never leave a key that does not exist.

use std::collections::HashMap;

use tally_core::Meter;
use uuid::Uuid;

/// Instances remembered at most; beyond this the cache starts over (the database stays the
/// source of truth), which bounds memory whatever the number of resources.
const MAX_CACHED_INSTANCES: usize = 500_000;

#[derive(Default)]
pub(crate) struct Dictionary {
    meters: HashMap<Uuid, (i32, Meter)>,
    meter_ids: HashMap<i32, Uuid>,
    subscriptions: HashMap<Uuid, i32>,
    subscription_ids: HashMap<i32, Uuid>,
    instances: HashMap<[u8; 16], i64>,
}

impl Dictionary {
    pub(crate) fn set_meters(&mut self, meters: Vec<(i32, Meter)>) {
        self.meter_ids = meters.iter().map(|(k, m)| (*k, m.id)).collect();
        self.meters = meters.into_iter().map(|(k, m)| (m.id, (k, m))).collect();
    }

    pub(crate) fn meter(&self, id: &Uuid) -> Option<&(i32, Meter)> {
        self.meters.get(id)
    }

    pub(crate) fn meter_id(&self, key: i32) -> Option<Uuid> {
        self.meter_ids.get(&key).copied()
    }

    pub(crate) fn all_meters(&self) -> Vec<Meter> {
        self.meters.values().map(|(_, m)| m.clone()).collect()
    }

    pub(crate) fn subscription_key(&self, id: &Uuid) -> Option<i32> {
        self.subscriptions.get(id).copied()
    }

    pub(crate) fn subscription_id(&self, key: i32) -> Option<Uuid> {
        self.subscription_ids.get(&key).copied()
    }

    pub(crate) fn learn_subscription(&mut self, id: Uuid, key: i32) {
        self.subscriptions.insert(id, key);
        self.subscription_ids.insert(key, id);
    }

    pub(crate) fn instance_key(&self, fingerprint: &[u8; 16]) -> Option<i64> {
        self.instances.get(fingerprint).copied()
    }

    pub(crate) fn learn_instance(&mut self, fingerprint: [u8; 16], key: i64) {
        if self.instances.len() >= MAX_CACHED_INSTANCES {
            self.instances.clear();
        }
        self.instances.insert(fingerprint, key);
    }
}
