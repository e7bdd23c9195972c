//! The benchmark's records: realistic usage of a private cloud, generated on the fly.
//!
//! 1,000 subscriptions own 20,000 resources: VMs (vCore hours and VM hours), managed disks (GB
//! month), storage accounts (capacity and transactions) and public IPs. Every (resource, meter)
//! pair emits one record per usage hour, hour after hour going back from the last full hour, as
//! providers backfilling their history would. Each record has two tags and a resource URI.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use tally_core::meter::well_known as meters;
use tally_core::{Granularity, InstanceData, Quantity};
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
    pub quantity: Quantity,
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
                    quantity: Quantity::parse_record(&quantity)
                        .expect("workload quantities are valid"),
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
        let last_hour = Granularity::Hourly.bucket_start(now) - Duration::hours(1);
        Workload { pairs, last_hour }
    }

    /// The usage hour of record `index`.
    pub fn hour(&self, index: usize) -> DateTime<Utc> {
        self.last_hour - Duration::hours((index / self.pairs.len()) as i64)
    }

    fn pair(&self, index: usize) -> &Pair {
        &self.pairs[index % self.pairs.len()]
    }

    fn event_id(&self, index: usize) -> String {
        let pair = self.pair(index);
        format!(
            "res-{:05}/{}/{}",
            pair.resource,
            &pair.meter[..8],
            self.hour(index).timestamp()
        )
    }

    /// Record `index` of the workload, as posted.
    pub fn record(&self, index: usize) -> UsageRecord {
        let hour = self.hour(index);
        let mut record = self.pair(index).template.clone();
        record.event_id = self.event_id(index);
        record.usage_start_time = Some(timestamp(hour));
        record.usage_end_time = Some(timestamp(hour + Duration::hours(1)));
        record
    }

    /// Record `index` of the workload, as the server stores it once validated.
    pub fn usage_record(&self, index: usize) -> tally_core::UsageRecord {
        let pair = self.pair(index);
        let template = &pair.template;
        let hour = self.hour(index);
        let guid = |text: &str| Uuid::parse_str(text).expect("workload GUIDs are valid");
        tally_core::UsageRecord {
            event_id: self.event_id(index),
            subscription_id: guid(&template.subscription_id),
            meter_id: guid(&template.meter_id),
            instance: InstanceData {
                resource_uri: template.resource_uri.clone(),
                location: template.location.clone(),
                tags: template.tags.clone(),
                additional_info: template.additional_info.clone(),
            },
            quantity: pair.quantity,
            usage_start: hour,
            usage_end: hour + Duration::hours(1),
        }
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

    /// What a query over everything must show of the records `indices` (each at most once): one
    /// row per pair and usage bucket, and their total quantity.
    pub fn expected(
        &self,
        indices: impl IntoIterator<Item = usize>,
        granularity: Granularity,
    ) -> Expected {
        // Each record is its own (pair, hour), so hourly rows are the records themselves; days
        // hold up to 24 of a pair's records.
        let mut hourly_rows = 0;
        let mut daily_rows = HashSet::new();
        let mut total = Quantity::ZERO;
        for index in indices {
            match granularity {
                Granularity::Hourly => hourly_rows += 1,
                Granularity::Daily => {
                    let day = granularity.bucket_of(self.hour(index).timestamp());
                    daily_rows.insert((index % self.pairs.len(), day));
                }
            }
            total += self.pair(index).quantity;
        }
        Expected {
            rows: hourly_rows + daily_rows.len() as u64,
            total,
        }
    }
}

/// Rows and total quantity a query must return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub rows: u64,
    pub total: Quantity,
}

impl Expected {
    /// `self` plus `rows` rows of `each`.
    pub fn plus_rows(self, rows: u64, each: Quantity) -> Expected {
        let mut total = self.total;
        for _ in 0..rows {
            total += each;
        }
        Expected {
            rows: self.rows + rows,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_rows_are_pairs_per_bucket_and_the_total_adds_up() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let workload = Workload::new(now);
        let pairs = workload.pairs.len();
        // Two hours of every pair: 09:00 and 08:00, one day.
        let hourly = workload.expected(0..2 * pairs, Granularity::Hourly);
        let daily = workload.expected(0..2 * pairs, Granularity::Daily);
        assert_eq!(hourly.rows, 2 * pairs as u64);
        assert_eq!(daily.rows, pairs as u64);
        assert_eq!(hourly.total, daily.total);
        let one_hour: Quantity = workload.pairs.iter().map(|p| p.quantity).sum();
        assert_eq!(
            workload.expected(0..pairs, Granularity::Daily).total,
            one_hour
        );
        let probes = daily.plus_rows(3, Quantity::parse("2").unwrap());
        assert_eq!(probes.rows, daily.rows + 3);
        let mut total = daily.total;
        total += Quantity::parse("6").unwrap();
        assert_eq!(probes.total, total);
        // The stored form of a record is the posted one, validated.
        let record = workload.usage_record(pairs + 1);
        assert_eq!(record.usage_start, workload.hour(pairs + 1));
        assert_eq!(record.event_id, workload.record(pairs + 1).event_id);
    }
}
