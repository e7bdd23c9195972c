//! What the demo prints once its providers have backfilled: the installation, a first query,
//! tokens to paste, the web portal to paste them into, and commands to explore it with grpcurl
//! and curl.

use std::net::SocketAddr;

use chrono::{DateTime, Duration as Span, Utc};
use tally_core::Granularity;
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    ListSubscriberUsageAggregatesRequest, UsageAggregate,
    provider_usage_client::ProviderUsageClient,
};
use tonic::transport::Channel;

use super::installation::{CONTOSO_CUSTOMER_SUBSCRIPTION, SUBSCRIPTIONS, TENANTS};
use super::providers::Resource;
use super::{Backfill, Tokens, with_token};
use crate::cli::ServeArgs;

/// Rows of the first query shown in full.
const SHOWN_ROWS: usize = 12;

pub(crate) async fn print(
    args: &ServeArgs,
    addr: SocketAddr,
    channel: &Channel,
    tokens: &Tokens,
    resources: &[Resource],
    backfill: &Backfill,
) -> anyhow::Result<()> {
    let today = Granularity::Daily.bucket_start(backfill.posted_through);
    let rows = todays_usage(channel, tokens, today).await?;
    print_installation(args, addr, resources, backfill);
    print_first_query(&rows);
    print_tokens(args, tokens);
    print_portal(addr);
    print_commands(addr, today);
    println!();
    println!("Providers keep posting the current hour's usage every 10 s. Ctrl-C stops.");
    Ok(())
}

/// Today's usage as reported so far: ProviderUsage, DAILY, allow_incomplete.
async fn todays_usage(
    channel: &Channel,
    tokens: &Tokens,
    today: DateTime<Utc>,
) -> anyhow::Result<Vec<UsageAggregate>> {
    let query = ListSubscriberUsageAggregatesRequest {
        reported_start_time: Some(timestamp(today)),
        reported_end_time: Some(timestamp(today + Span::days(1))),
        aggregation_granularity: 1,
        allow_incomplete: true,
        ..Default::default()
    };
    Ok(
        ProviderUsageClient::new(with_token(channel, &tokens.operator))
            .list_subscriber_usage_aggregates(query)
            .await?
            .into_inner()
            .usage_aggregates,
    )
}

fn print_installation(
    args: &ServeArgs,
    addr: SocketAddr,
    resources: &[Resource],
    backfill: &Backfill,
) {
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
        "Backfilled 6 hours: {} records accepted, {} duplicates (provider retries), {} late records for {}",
        backfill.tally.accepted,
        backfill.tally.duplicates,
        backfill.late_records,
        backfill.late_hour.format("%Y-%m-%d %H:00 UTC")
    );
    println!(
        "Registered as pay-as-you-use with CSP multi-tenancy; Contoso is billed to its own subscription {CONTOSO_CUSTOMER_SUBSCRIPTION}."
    );
}

fn print_first_query(rows: &[UsageAggregate]) {
    println!();
    println!(
        "First query: today's usage as reported so far (ProviderUsage, DAILY, allow_incomplete):"
    );
    println!(
        "  {:<38} {:<16} {:<24} {:<10} {:>14}",
        "subscription", "resource", "meter", "usage day", "quantity"
    );
    let catalog = tally_core::MeterCatalog::with_built_ins();
    for row in rows.iter().take(SHOWN_ROWS) {
        let meter = tally_core::parse_guid(&row.meter_id)
            .and_then(|id| catalog.get(&id).map(|m| m.name.clone()))
            .unwrap_or_else(|| row.meter_id.clone());
        let day = row
            .usage_start_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let resource = row
            .instance_data
            .as_ref()
            .and_then(|i| i.resource_uri.rsplit('/').next().map(str::to_string))
            .unwrap_or_default();
        println!(
            "  {:<38} {:<16} {:<24} {:<10} {:>14}",
            row.subscription_id, resource, meter, day, row.quantity
        );
    }
    if rows.len() > SHOWN_ROWS {
        println!("  ... {} rows on this page", rows.len());
    }
}

fn print_tokens(args: &ServeArgs, tokens: &Tokens) {
    println!();
    println!(
        "Tokens (24 h; mint more with `tally token --role operator|tenant|... --data-dir {}`):",
        args.data_dir.display()
    );
    println!("  export OPERATOR={}", tokens.operator);
    println!("  export TENANT={}    # Contoso", tokens.tenant);
}

fn print_portal(addr: SocketAddr) {
    println!();
    println!("Open the web portal and paste a token (the value after OPERATOR= or TENANT=):");
    println!("  http://{addr}/portal/");
    println!(
        "  the operator sees the pipeline and every tenant's usage; the tenant sees Contoso's own."
    );
}

fn print_commands(addr: SocketAddr, today: DateTime<Utc>) {
    let (start, end) = (
        today.format("%Y-%m-%dT%H:%M:%SZ"),
        (today + Span::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let contoso = SUBSCRIPTIONS[0].1;
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
}
