//! Simulated resource providers: the resources of the demo installation and the usage records
//! they emit, posted the way a provider does (retries and late records included).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tally_core::meter::well_known as meters;
use tally_core::quantity::FRACTION_SCALE;
use tally_proto::bearer::AuthorizedChannel;
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    PostUsageRequest, UsageRecord, usage_ingestion_client::UsageIngestionClient,
};

use super::installation::SUBSCRIPTIONS;

pub(crate) struct Resource {
    subscription: &'static str,
    kind: Kind,
    name: &'static str,
}

#[derive(Clone, Copy)]
enum Kind {
    LinuxVm { cores: u64 },
    WindowsVm { cores: u64 },
    Disk { gigabytes: u64 },
    Storage { gigabytes: u64, transactions: u64 },
    PublicIp,
}

pub(crate) fn resources() -> Vec<Resource> {
    let s = |i: usize| SUBSCRIPTIONS[i].1;
    vec![
        Resource {
            subscription: s(0),
            kind: Kind::LinuxVm { cores: 4 },
            name: "web-01",
        },
        Resource {
            subscription: s(0),
            kind: Kind::LinuxVm { cores: 4 },
            name: "web-02",
        },
        Resource {
            subscription: s(0),
            kind: Kind::Disk { gigabytes: 128 },
            name: "web-01-os",
        },
        Resource {
            subscription: s(1),
            kind: Kind::WindowsVm { cores: 8 },
            name: "sql-01",
        },
        Resource {
            subscription: s(1),
            kind: Kind::Disk { gigabytes: 512 },
            name: "sql-01-data",
        },
        Resource {
            subscription: s(1),
            kind: Kind::PublicIp,
            name: "sql-01-ip",
        },
        Resource {
            subscription: s(2),
            kind: Kind::Storage {
                gigabytes: 750,
                transactions: 42,
            },
            name: "fabrikamlogs",
        },
        Resource {
            subscription: s(2),
            kind: Kind::LinuxVm { cores: 2 },
            name: "build-agent",
        },
        Resource {
            subscription: s(3),
            kind: Kind::WindowsVm { cores: 2 },
            name: "rdp-01",
        },
        Resource {
            subscription: s(3),
            kind: Kind::PublicIp,
            name: "rdp-01-ip",
        },
        Resource {
            subscription: s(4),
            kind: Kind::Storage {
                gigabytes: 64,
                transactions: 7,
            },
            name: "northwindbackup",
        },
        Resource {
            subscription: s(4),
            kind: Kind::LinuxVm { cores: 16 },
            name: "analytics",
        },
    ]
}

/// `numerator / denominator` as an exact decimal string with at most ten fractional digits.
fn ratio(numerator: u64, denominator: u64) -> String {
    let steps = u128::from(numerator) * u128::from(FRACTION_SCALE) / u128::from(denominator);
    tally_core::Quantity::from_parts(0, steps).to_string()
}

impl Resource {
    fn uri(&self) -> String {
        let (namespace, kind) = match self.kind {
            Kind::LinuxVm { .. } | Kind::WindowsVm { .. } => {
                ("Microsoft.Compute", "virtualMachines")
            }
            Kind::Disk { .. } => ("Microsoft.Compute", "disks"),
            Kind::Storage { .. } => ("Microsoft.Storage", "storageAccounts"),
            Kind::PublicIp => ("Microsoft.Network", "publicIPAddresses"),
        };
        format!(
            "/subscriptions/{}/resourceGroups/demo/providers/{namespace}/{kind}/{}",
            self.subscription, self.name
        )
    }

    /// The records this resource emits for `[start, end)`, inside one hour.
    pub(crate) fn usage(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<UsageRecord> {
        let seconds = (end - start).num_seconds().max(0) as u64;
        let hours = |per_hour: u64| ratio(per_hour * seconds, 3_600);
        let meters: Vec<(&str, String)> = match self.kind {
            Kind::LinuxVm { cores } => vec![
                (meters::BASE_VM_SIZE_HOURS, hours(cores)),
                (meters::VM_SIZE_HOURS, hours(1)),
            ],
            Kind::WindowsVm { cores } => vec![
                (meters::BASE_VM_SIZE_HOURS, hours(cores)),
                (meters::WINDOWS_VM_SIZE_HOURS, hours(cores)),
                (meters::VM_SIZE_HOURS, hours(1)),
            ],
            // GB x month: one hour of a month of 730 hours.
            Kind::Disk { gigabytes } => vec![(
                meters::ACTUAL_STANDARD_DISK_SIZE,
                ratio(gigabytes * seconds, 730 * 3_600),
            )],
            Kind::Storage {
                gigabytes,
                transactions,
            } => vec![
                (meters::BLOCK_BLOB_CAPACITY, hours(gigabytes)),
                (meters::BLOB_TRANSACTIONS, hours(transactions)),
            ],
            Kind::PublicIp => vec![(meters::STATIC_IP_ADDRESS_USAGE, hours(1))],
        };
        let mut tags = BTreeMap::new();
        tags.insert("environment".to_string(), "demo".to_string());
        let mut additional_info = BTreeMap::new();
        if let Kind::WindowsVm { .. } = self.kind {
            additional_info.insert("ImageType".to_string(), "Windows Server 2022".to_string());
        }
        meters
            .into_iter()
            .map(|(meter, quantity)| UsageRecord {
                event_id: format!("{}/{}/{}", self.name, &meter[..8], start.timestamp()),
                subscription_id: self.subscription.to_string(),
                meter_id: meter.to_string(),
                resource_uri: self.uri(),
                location: "local".to_string(),
                tags: tags.clone(),
                additional_info: additional_info.clone(),
                quantity,
                usage_start_time: Some(timestamp(start)),
                usage_end_time: Some(timestamp(end)),
            })
            .collect()
    }
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) accepted: u64,
    pub(crate) duplicates: u64,
}

pub(crate) type Ingestion = UsageIngestionClient<AuthorizedChannel>;

pub(crate) async fn post(
    client: &mut Ingestion,
    records: Vec<UsageRecord>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let response = client
        .post_usage(PostUsageRequest { records })
        .await?
        .into_inner();
    tally.accepted += u64::from(response.accepted);
    tally.duplicates += u64::from(response.duplicates);
    Ok(())
}
