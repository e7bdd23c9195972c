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
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::registration::v1::{
    registration_client::RegistrationClient, tenancy_client::TenancyClient,
};
use tally_proto::usage::v1::{
    ListSubscriberUsageAggregatesRequest, PostUsageRequest, UsageRecord,
    provider_usage_client::ProviderUsageClient, usage_ingestion_client::UsageIngestionClient,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use crate::cli::{ServeArgs, TokenRole};
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

/// (name, directory tenant) of the demo installation's tenants.
const TENANTS: &[(&str, &str)] = &[
    ("Contoso", "c0a1b2c3-d4e5-4f60-8172-839405162738"),
    ("Fabrikam", "fa0b1c2d-3e4f-4a5b-9c6d-7e8f90a1b2c3"),
    ("Northwind", "a0b1c2d3-e4f5-4607-8819-2a3b4c5d6e7f"),
];

/// (tenant index, subscription, display name) of the demo installation.
const SUBSCRIPTIONS: &[(usize, &str, &str)] = &[
    (0, "6b1f8c2e-3d4a-4e5b-9c6d-7e8f9a0b1c2d", "Contoso Web"),
    (0, "7c2a9d3f-4e5b-4f6c-8d7e-8f9a0b1c2d3e", "Contoso Data"),
    (1, "8d3b0e4a-5f6c-4a7d-9e8f-9a0b1c2d3e4f", "Fabrikam Logs"),
    (
        1,
        "9e4c1f5b-6a7d-4b8e-8f9a-0b1c2d3e4f5a",
        "Fabrikam Desktops",
    ),
    (
        2,
        "af5d2a6c-7b8e-4c9f-9a0b-1c2d3e4f5a6b",
        "Northwind Analytics",
    ),
];

/// The upstream subscription billed by default, and Contoso's own CSP customer subscription.
const REGISTRATION_SUBSCRIPTION: &str = "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6";
const CONTOSO_CUSTOMER_SUBSCRIPTION: &str = "2f3e4d5c-6b7a-4899-8a1b-d2e3f4a5b6c7";
const CLOUD_ID: &str = "3a4b5c6d-7e8f-4a0b-9c1d-e2f3a4b5c6d7";

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

type Ingestion = UsageIngestionClient<AuthorizedChannel>;

async fn post(
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

/// Accepts "already exists": the demo can run again on the same data folder.
fn created<T>(result: Result<tonic::Response<T>, tonic::Status>) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(status) => Err(status.into()),
    }
}

/// Registers the installation (pay-as-you-use, CSP multi-tenancy), the tenants and their
/// subscriptions, and maps Contoso to its own customer subscription.
async fn set_up_tenancy(channel: &AuthorizedChannel) -> anyhow::Result<()> {
    let mut registration = RegistrationClient::new(channel.clone());
    let mut tenancy = TenancyClient::new(channel.clone());
    registration
        .set_registration(reg::SetRegistrationRequest {
            registration: Some(reg::RegistrationInfo {
                cloud_id: CLOUD_ID.into(),
                registration_subscription_id: REGISTRATION_SUBSCRIPTION.into(),
                billing_model: reg::BillingModel::PayAsYouUse as i32,
                usage_reporting_enabled: true,
                multi_tenancy_enabled: true,
                ..Default::default()
            }),
        })
        .await?;
    for (name, id) in TENANTS {
        created(
            tenancy
                .create_tenant(reg::CreateTenantRequest {
                    tenant: Some(reg::Tenant {
                        tenant_id: id.to_string(),
                        display_name: name.to_string(),
                    }),
                })
                .await,
        )?;
    }
    for (tenant, id, name) in SUBSCRIPTIONS {
        created(
            tenancy
                .create_subscription(reg::CreateSubscriptionRequest {
                    subscription: Some(reg::Subscription {
                        subscription_id: id.to_string(),
                        display_name: name.to_string(),
                        owner_tenant_id: TENANTS[*tenant].1.to_string(),
                        ..Default::default()
                    }),
                })
                .await,
        )?;
    }
    registration
        .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
            tenant_id: TENANTS[0].1.into(),
            customer_subscription_id: CONTOSO_CUSTOMER_SUBSCRIPTION.into(),
        })
        .await?;
    Ok(())
}

fn token(
    secret: &[u8],
    role: TokenRole,
    tenant: Option<&str>,
    subject: &str,
) -> anyhow::Result<String> {
    let claims = crate::keys::claims(role, tenant.map(str::to_string), None, subject, 24)?;
    Ok(tally_gateway::auth::mint(secret, &claims)?)
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let auth = crate::keys::auth_config(&args.auth, &args.data_dir)?;
    let secret = auth.shared_secrets.first().cloned().context(
        "the demo signs its own tokens: give it an HS256 key (--jwt-secret-file) or none",
    )?;
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
    let operator_token = token(&secret, TokenRole::Operator, None, "demo-operator")?;
    let tenant_token = token(
        &secret,
        TokenRole::Tenant,
        Some(TENANTS[0].1),
        "demo-contoso-user",
    )?;
    let provider_token = token(&secret, TokenRole::ResourceProvider, None, "demo-providers")?;
    let as_operator = InterceptedService::new(channel.clone(), Bearer::new(Some(&operator_token)));
    set_up_tenancy(&as_operator).await?;
    let mut ingestion = UsageIngestionClient::new(InterceptedService::new(
        channel.clone(),
        Bearer::new(Some(&provider_token)),
    ));
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
    let page = ProviderUsageClient::new(as_operator.clone())
        .list_subscriber_usage_aggregates(first_query)
        .await?
        .into_inner();

    let data = match &args.database_url {
        Some(_) => "PostgreSQL (--database-url)".to_string(),
        None => format!("SQLite in {}", args.data_dir.display()),
    };
    println!();
    println!("Tally demo: every service on {addr} (gRPC and REST), {data}");
    println!(
        "Simulated resource providers: {} tenants, {} subscriptions, {} resources (VMs, managed disks, blob storage, IP addresses)",
        TENANTS.len(),
        SUBSCRIPTIONS.len(),
        resources.len()
    );
    println!(
        "Backfilled 6 hours: {} records accepted, {} duplicates (provider retries), {late_count} late records for {}",
        tally.accepted,
        tally.duplicates,
        late_hour.format("%Y-%m-%d %H:00 UTC")
    );
    println!(
        "Registered as pay-as-you-use with CSP multi-tenancy; Contoso is billed to its own subscription {CONTOSO_CUSTOMER_SUBSCRIPTION}."
    );
    println!();
    println!(
        "First query: today's usage as reported so far (ProviderUsage, DAILY, allow_incomplete):"
    );
    println!(
        "  {:<38} {:<16} {:<24} {:<10} {:>14}",
        "subscription", "resource", "meter", "usage day", "quantity"
    );
    let catalog = tally_core::MeterCatalog::with_built_ins();
    for row in page.usage_aggregates.iter().take(12) {
        let meter = tally_core::parse_guid(&row.meter_id)
            .and_then(|id| catalog.get(&id).map(|m| m.name.clone()))
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
    let contoso = SUBSCRIPTIONS[0].1;
    println!();
    println!(
        "Tokens (24 h; mint more with `tally token --role operator|tenant|... --data-dir {}`):",
        args.data_dir.display()
    );
    println!("  export OPERATOR={operator_token}");
    println!("  export TENANT={tenant_token}    # Contoso");
    println!();
    println!(
        "Explore it with grpcurl (reflection is on; every call but health and reflection needs a token):"
    );
    println!("  grpcurl -plaintext {addr} list");
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $OPERATOR\" {addr} tally.usage.v1.UsageAdmin/GetPipelineStatus"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $OPERATOR\" -d '{{\"reported_start_time\":\"{start}\",\"reported_end_time\":\"{end}\",\"allow_incomplete\":true}}' {addr} tally.usage.v1.ProviderUsage/ListSubscriberUsageAggregates"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $TENANT\" -d '{{\"subscription_id\":\"{contoso}\",\"reported_start_time\":\"{start}\",\"reported_end_time\":\"{end}\",\"aggregation_granularity\":\"AGGREGATION_GRANULARITY_HOURLY\",\"allow_incomplete\":true}}' {addr} tally.usage.v1.TenantUsage/ListUsageAggregates"
    );
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $OPERATOR\" -d '{{\"tenant_id\":\"{}\"}}' {addr} tally.registration.v1.Registration/ResolveBillingSubscription",
        TENANTS[0].1
    );
    println!("Or with curl, through the Azure-compatible REST API:");
    println!(
        "  curl -H \"authorization: Bearer $TENANT\" 'http://{addr}/subscriptions/{contoso}/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview&reportedStartTime={start}&reportedEndTime={end}&allowIncomplete=true'"
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
