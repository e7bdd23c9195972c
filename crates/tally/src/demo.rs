//! `tally demo`: `serve`, plus simulated resource providers, and a first look at the result.
//!
//! The simulated installation has three tenants with five subscriptions running VMs, managed
//! disks, blob storage and public IP addresses. Providers backfill the last hours, retry some
//! batches (duplicates), catch up on an old hour (late records), then keep posting the current
//! hour's usage as it accrues.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Duration as Span, Utc};
use tally_core::Granularity;
use tally_core::meter::well_known as meters;
use tally_core::quantity::FRACTION_SCALE;
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    ListSubscriberUsageAggregatesRequest, PostUsageRequest, UsageRecord,
    provider_usage_client::ProviderUsageClient, usage_ingestion_client::UsageIngestionClient,
};
use tonic::transport::{Channel, Endpoint};

use crate::cli::ServeArgs;
use crate::run::{serve_all, shutdown_signal};

struct Resource {
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

/// (tenant, subscription) pairs of the demo installation.
const SUBSCRIPTIONS: &[(&str, &str)] = &[
    ("Contoso", "6b1f8c2e-3d4a-4e5b-9c6d-7e8f9a0b1c2d"),
    ("Contoso", "7c2a9d3f-4e5b-4f6c-8d7e-8f9a0b1c2d3e"),
    ("Fabrikam", "8d3b0e4a-5f6c-4a7d-9e8f-9a0b1c2d3e4f"),
    ("Fabrikam", "9e4c1f5b-6a7d-4b8e-8f9a-0b1c2d3e4f5a"),
    ("Northwind", "af5d2a6c-7b8e-4c9f-9a0b-1c2d3e4f5a6b"),
];

fn resources() -> Vec<Resource> {
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
    fn usage(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<UsageRecord> {
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
struct Tally {
    accepted: u64,
    duplicates: u64,
}

async fn post(
    client: &mut UsageIngestionClient<Channel>,
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

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_args = args.clone();
    let server = tokio::spawn(async move {
        serve_all(&server_args, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut ingestion = UsageIngestionClient::new(channel.clone());
    let resources = resources();
    let now = Utc::now();
    let this_hour = Granularity::Hourly.bucket_start(now);

    // Backfill: the last six full hours, and the current hour so far.
    let mut tally = Tally::default();
    for back in (1..=6).rev() {
        let start = this_hour - Span::hours(back);
        let records: Vec<UsageRecord> = resources
            .iter()
            .flat_map(|r| r.usage(start, start + Span::hours(1)))
            .collect();
        post(&mut ingestion, records.clone(), &mut tally).await?;
        if back % 2 == 0 {
            // A provider that did not see the acknowledgement retries the batch.
            post(&mut ingestion, records, &mut tally).await?;
        }
    }
    // A provider catching up on yesterday: late records.
    let late_hour = this_hour - Span::hours(26);
    let late: Vec<UsageRecord> = resources
        .iter()
        .take(4)
        .flat_map(|r| r.usage(late_hour, late_hour + Span::hours(1)))
        .collect();
    let late_count = late.len();
    post(&mut ingestion, late, &mut tally).await?;
    let mut posted_through = now;
    post(
        &mut ingestion,
        resources
            .iter()
            .flat_map(|r| r.usage(this_hour, posted_through))
            .collect(),
        &mut tally,
    )
    .await?;

    tokio::time::sleep(Duration::from_millis(3 * args.fold_interval_ms.max(100))).await;
    let today = Granularity::Daily.bucket_start(now);
    let first_query = ListSubscriberUsageAggregatesRequest {
        reported_start_time: Some(timestamp(today)),
        reported_end_time: Some(timestamp(today + Span::days(1))),
        aggregation_granularity: 1,
        allow_incomplete: true,
        ..Default::default()
    };
    let page = ProviderUsageClient::new(channel.clone())
        .list_subscriber_usage_aggregates(first_query)
        .await?
        .into_inner();

    let data = match &args.database_url {
        Some(_) => "PostgreSQL (--database-url)".to_string(),
        None => format!("SQLite in {}", args.data_dir.display()),
    };
    println!();
    println!("Tally demo: every service on {addr}, {data}");
    println!(
        "Simulated resource providers: {} tenants, {} subscriptions, {} resources (VMs, managed disks, blob storage, IP addresses)",
        3,
        SUBSCRIPTIONS.len(),
        resources.len()
    );
    println!(
        "Backfilled 6 hours: {} records accepted, {} duplicates (provider retries), {late_count} late records for {}",
        tally.accepted,
        tally.duplicates,
        late_hour.format("%Y-%m-%d %H:00 UTC")
    );
    println!();
    println!(
        "First query: today's usage as reported so far (ProviderUsage, DAILY, allow_incomplete):"
    );
    println!(
        "  {:<38} {:<16} {:<24} {:<10} {:>14}",
        "subscription", "resource", "meter", "usage day", "quantity"
    );
    for row in page.usage_aggregates.iter().take(12) {
        let meter = tally_core::parse_guid(&row.meter_id)
            .and_then(|id| {
                tally_core::MeterCatalog::with_built_ins()
                    .get(&id)
                    .map(|m| m.name.clone())
            })
            .unwrap_or_else(|| row.meter_id.clone());
        let day = row.usage_start_time.as_ref().map(|t| {
            chrono::DateTime::from_timestamp(t.seconds, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string()
        });
        let resource = row
            .instance_data
            .as_ref()
            .and_then(|i| i.resource_uri.rsplit('/').next().map(str::to_string))
            .unwrap_or_default();
        println!(
            "  {:<38} {:<16} {:<24} {:<10} {:>14}",
            row.subscription_id,
            resource,
            meter,
            day.unwrap_or_default(),
            row.quantity
        );
    }
    if page.usage_aggregates.len() > 12 {
        println!("  ... {} rows on this page", page.usage_aggregates.len());
    }
    let (start, end) = (
        today.format("%Y-%m-%dT%H:%M:%SZ"),
        (today + Span::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    println!();
    println!("Explore it with grpcurl (reflection is on):");
    println!("  grpcurl -plaintext {addr} list");
    println!("  grpcurl -plaintext {addr} tally.usage.v1.UsageAdmin/GetPipelineStatus");
    println!(
        "  grpcurl -plaintext -d '{{\"reported_start_time\":\"{start}\",\"reported_end_time\":\"{end}\",\"allow_incomplete\":true}}' {addr} tally.usage.v1.ProviderUsage/ListSubscriberUsageAggregates"
    );
    println!(
        "  grpcurl -plaintext -d '{{\"subscription_id\":\"{}\",\"reported_start_time\":\"{start}\",\"reported_end_time\":\"{end}\",\"aggregation_granularity\":\"AGGREGATION_GRANULARITY_HOURLY\",\"allow_incomplete\":true}}' {addr} tally.usage.v1.TenantUsage/ListUsageAggregates",
        SUBSCRIPTIONS[0].1
    );
    println!();
    println!("Providers keep posting the current hour's usage every 10 s. Ctrl-C stops.");

    let providers = async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = Utc::now();
            let mut round = Tally::default();
            let mut from = posted_through;
            // Slices never cross an hour: a record lies inside one UTC hour.
            while from < now {
                let hour_end = Granularity::Hourly.bucket_start(from) + Span::hours(1);
                let to = now.min(hour_end);
                let records = resources.iter().flat_map(|r| r.usage(from, to)).collect();
                if let Err(error) = post(&mut ingestion, records, &mut round).await {
                    tracing::warn!(%error, "demo provider could not post");
                }
                from = to;
            }
            posted_through = now;
            tracing::info!(accepted = round.accepted, "demo providers posted");
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = providers => {}
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
