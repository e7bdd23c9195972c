//! The benchmark's records: realistic usage of a private cloud, generated on the fly.
//!
//! 1,000 subscriptions own 20,000 resources: VMs (vCore hours and VM hours), managed disks (GB
//! month), storage accounts (capacity and transactions) and public IPs. Every (resource, meter)
//! pair emits one record per usage hour, hour after hour going back from the last full hour, as
//! providers backfilling their history would. Each record has two tags and a resource URI.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use tally_core::meter::well_known as meters;
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{PostUsageRequest, UsageRecord};
use uuid::Uuid;

pub const SUBSCRIPTIONS: usize = 1_000;
pub const RESOURCES: usize = 20_000;
pub const BATCH: usize = 1_000;

/// One (resource, meter) pair, ready to stamp with an hour.
pub struct Pair {
    pub subscription: usize,
    pub resource: usize,
    pub meter: &'static str,
    template: UsageRecord,
}

pub struct Workload {
    pub pairs: Vec<Pair>,
    /// The first (most recent) usage hour; records go back from it.
    pub last_hour: DateTime<Utc>,
}

pub fn subscription_id(index: usize) -> Uuid {
    Uuid::from_u128(0x5ab5_0000_0000_4000_8000_0000_0000_0000 | index as u128)
}

impl Workload {
    pub fn new(now: DateTime<Utc>) -> Workload {
        let mut pairs = Vec::new();
        for resource in 0..RESOURCES {
            let subscription = resource % SUBSCRIPTIONS;
            let sub = subscription_id(subscription).hyphenated().to_string();
            let (namespace, kind, quantities): (&str, &str, Vec<(&'static str, String)>) =
                match resource % 4 {
                    0 => (
                        "Microsoft.Compute",
                        "virtualMachines",
                        vec![
                            (
                                meters::BASE_VM_SIZE_HOURS,
                                ["2", "4", "8"][resource % 3].to_string(),
                            ),
                            (meters::VM_SIZE_HOURS, "1".to_string()),
                        ],
                    ),
                    1 => (
                        "Microsoft.Compute",
                        "disks",
                        vec![(
                            meters::ACTUAL_STANDARD_DISK_SIZE,
                            "0.1753424657".to_string(),
                        )],
                    ),
                    2 => (
                        "Microsoft.Storage",
                        "storageAccounts",
                        vec![
                            (
                                meters::BLOCK_BLOB_CAPACITY,
                                format!("{}.25", 10 + resource % 500),
                            ),
                            (
                                meters::BLOB_TRANSACTIONS,
                                format!("0.{:04}", 1 + resource % 9_999),
                            ),
                        ],
                    ),
                    _ => (
                        "Microsoft.Network",
                        "publicIPAddresses",
                        vec![(meters::STATIC_IP_ADDRESS_USAGE, "1".to_string())],
                    ),
                };
            let uri = format!(
                "/subscriptions/{sub}/resourceGroups/rg-{}/providers/{namespace}/{kind}/res-{resource:05}",
                resource % 50
            );
            let tags = BTreeMap::from([
                (
                    "environment".to_string(),
                    ["prod", "dev", "test"][resource % 3].to_string(),
                ),
                ("owner".to_string(), format!("team-{}", resource % 37)),
            ]);
            for (meter, quantity) in quantities {
                pairs.push(Pair {
                    subscription,
                    resource,
                    meter,
                    template: UsageRecord {
                        event_id: String::new(),
                        subscription_id: sub.clone(),
                        meter_id: meter.to_string(),
                        resource_uri: uri.clone(),
                        location: "local".to_string(),
                        tags: tags.clone(),
                        additional_info: BTreeMap::new(),
                        quantity,
                        usage_start_time: None,
                        usage_end_time: None,
                    },
                });
            }
        }
        let last_hour = tally_core::Granularity::Hourly.bucket_start(now) - Duration::hours(1);
        Workload { pairs, last_hour }
    }

    /// The usage hour of record `index`.
    pub fn hour(&self, index: usize) -> DateTime<Utc> {
        self.last_hour - Duration::hours((index / self.pairs.len()) as i64)
    }

    /// Record `index` of the workload.
    pub fn record(&self, index: usize) -> UsageRecord {
        let pair = &self.pairs[index % self.pairs.len()];
        let hour = self.hour(index);
        let mut record = pair.template.clone();
        record.event_id = format!(
            "res-{:05}/{}/{}",
            pair.resource,
            &pair.meter[..8],
            hour.timestamp()
        );
        record.usage_start_time = Some(timestamp(hour));
        record.usage_end_time = Some(timestamp(hour + Duration::hours(1)));
        record
    }

    /// Batch `number` (records `number * BATCH ..`), cut short at `total`.
    pub fn batch(&self, number: usize, total: usize) -> PostUsageRequest {
        let start = number * BATCH;
        PostUsageRequest {
            records: (start..(start + BATCH).min(total))
                .map(|i| self.record(i))
                .collect(),
        }
    }
}
