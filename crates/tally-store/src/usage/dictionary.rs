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

    /// Every meter, ordered by provider, then name, then id.
    pub(crate) fn all_meters(&self) -> Vec<Meter> {
        let mut meters: Vec<Meter> = self.meters.values().map(|(_, m)| m.clone()).collect();
        meters.sort_by(|a, b| {
            (&a.resource_provider, &a.name, a.id).cmp(&(&b.resource_provider, &b.name, b.id))
        });
        meters
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(id: u128, provider: &str, name: &str) -> Meter {
        Meter {
            id: Uuid::from_u128(id),
            name: name.into(),
            unit: "Hours".into(),
            resource_provider: provider.into(),
            chargeable: true,
            deprecated: false,
        }
    }

    #[test]
    fn meters_are_found_both_ways_and_listed_in_order() {
        let mut dictionary = Dictionary::default();
        dictionary.set_meters(vec![
            (1, meter(10, "Microsoft.Storage", "Capacity")),
            (2, meter(11, "Microsoft.Compute", "VM")),
            (3, meter(12, "Microsoft.Compute", "Base")),
        ]);
        assert_eq!(
            dictionary.meter(&Uuid::from_u128(11)).map(|(k, _)| *k),
            Some(2)
        );
        assert_eq!(dictionary.meter_id(3), Some(Uuid::from_u128(12)));
        assert_eq!(dictionary.meter_id(4), None);
        let names: Vec<_> = dictionary
            .all_meters()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["Base", "VM", "Capacity"]);
        // A reload replaces the catalog, keys included.
        dictionary.set_meters(vec![(7, meter(10, "Microsoft.Storage", "Capacity"))]);
        assert_eq!(dictionary.meter_id(1), None);
        assert_eq!(dictionary.meter_id(7), Some(Uuid::from_u128(10)));
    }

    #[test]
    fn subscriptions_are_learned_both_ways() {
        let mut dictionary = Dictionary::default();
        let id = Uuid::from_u128(5);
        assert_eq!(dictionary.subscription_key(&id), None);
        dictionary.learn_subscription(id, 9);
        assert_eq!(dictionary.subscription_key(&id), Some(9));
        assert_eq!(dictionary.subscription_id(9), Some(id));
    }

    #[test]
    fn the_instance_cache_starts_over_when_full() {
        let mut dictionary = Dictionary::default();
        for key in 0..MAX_CACHED_INSTANCES as i64 {
            dictionary.learn_instance(fingerprint(key), key);
        }
        assert_eq!(dictionary.instance_key(&fingerprint(0)), Some(0));
        dictionary.learn_instance(fingerprint(-1), -1);
        assert_eq!(dictionary.instance_key(&fingerprint(0)), None);
        assert_eq!(dictionary.instance_key(&fingerprint(-1)), Some(-1));
    }

    fn fingerprint(key: i64) -> [u8; 16] {
        (key as i128).to_be_bytes()
    }
}
