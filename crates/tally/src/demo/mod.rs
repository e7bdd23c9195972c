//! `tally demo`: `serve`, plus simulated resource providers, and a first look at the result.
//!
//! The simulated installation has three tenants with five subscriptions running VMs, managed
//! disks, blob storage and public IP addresses. Providers backfill the last hours, retry some
//! batches (duplicates), catch up on an old hour (late records), then keep posting the current
//! hour's usage as it accrues. Chargeback prices the usage (`billing.rs`): on a manual clock the
//! month closes and the final statement is printed. A reference commerce receiver runs beside
//! it, and the usage bridge reports closed days to it (`commerce.rs`).

mod billing;
mod commerce;
mod installation;
mod providers;
mod tour;

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Duration as Span, Utc};
use tally_core::Granularity;
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::usage::v1::UsageRecord;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::cli::{ServeArgs, TokenRole};
use crate::serve::{serve_all, shutdown_signal};
use installation::TENANTS;
use providers::{Ingestion, Resource, Tally, post};

/// Signed development tokens for the demo's callers.
pub(crate) struct Tokens {
    pub(crate) operator: String,
    pub(crate) tenant: String,
    provider: String,
}

impl Tokens {
    fn mint(secret: &[u8]) -> anyhow::Result<Tokens> {
        let token = |role, tenant: Option<&str>, subject: &str| -> anyhow::Result<String> {
            let claims = crate::keys::claims(role, tenant.map(str::to_string), None, subject, 24)?;
            Ok(tally_gateway::auth::mint(secret, &claims)?)
        };
        Ok(Tokens {
            operator: token(TokenRole::Operator, None, "demo-operator")?,
            tenant: token(TokenRole::Tenant, Some(TENANTS[0].1), "demo-contoso-user")?,
            provider: token(TokenRole::ResourceProvider, None, "demo-providers")?,
        })
    }
}

fn with_token(channel: &Channel, token: &str) -> AuthorizedChannel {
    InterceptedService::new(channel.clone(), Bearer::new(Some(token)))
}

/// What the backfill posted, for the tour.
pub(crate) struct Backfill {
    pub(crate) tally: Tally,
    pub(crate) late_records: usize,
    pub(crate) late_hour: DateTime<Utc>,
    /// Usage is posted up to here; the live providers go on from it.
    pub(crate) posted_through: DateTime<Utc>,
}

pub(crate) async fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    let auth = crate::keys::auth_config(&args.auth, &args.data_dir)?;
    let secret = auth.shared_secrets.first().cloned().context(
        "the demo signs its own tokens: give it an HS256 key (--jwt-secret-file) or none",
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let receiver = commerce::start_receiver(&mut args).await?;
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
    let tokens = Tokens::mint(&secret)?;
    installation::set_up_tenancy(&with_token(&channel, &tokens.operator)).await?;
    let mut ingestion = Ingestion::new(with_token(&channel, &tokens.provider));
    let resources = providers::resources();
    // Usage times follow the server's clock, so a manual clock gets consistent usage.
    let server_now = tally_proto::clock::v1::clock_client::ClockClient::new(with_token(
        &channel,
        &tokens.operator,
    ))
    .get_time(tally_proto::clock::v1::GetTimeRequest {})
    .await?
    .into_inner();
    let now = tally_proto::convert::utc(server_now.now.as_ref()).unwrap_or_else(Utc::now);
    let backfill = backfill(&mut ingestion, &resources, now).await?;
    tokio::time::sleep(Duration::from_millis(3 * args.fold_interval_ms.max(100))).await;
    tour::print(&args, addr, &channel, &tokens, &resources, &backfill).await?;
    billing::show(&with_token(&channel, &tokens.operator)).await?;
    commerce::print(&args, addr, &channel, &tokens, receiver).await?;

    tokio::select! {
        _ = shutdown_signal() => {}
        _ = keep_posting(&mut ingestion, &resources, backfill.posted_through) => {}
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// The last six full hours (every other one posted twice, as a provider that missed the
/// acknowledgement would), an hour of yesterday caught up late, and the current hour so far.
async fn backfill(
    ingestion: &mut Ingestion,
    resources: &[Resource],
    now: DateTime<Utc>,
) -> anyhow::Result<Backfill> {
    let this_hour = Granularity::Hourly.bucket_start(now);
    let usage_of = |resources: &[Resource], start, end| -> Vec<UsageRecord> {
        resources.iter().flat_map(|r| r.usage(start, end)).collect()
    };
    let mut tally = Tally::default();
    for back in (1..=6).rev() {
        let start = this_hour - Span::hours(back);
        let records = usage_of(resources, start, start + Span::hours(1));
        post(ingestion, records.clone(), &mut tally).await?;
        if back % 2 == 0 {
            post(ingestion, records, &mut tally).await?;
        }
    }
    let late_hour = this_hour - Span::hours(26);
    let late = usage_of(&resources[..4], late_hour, late_hour + Span::hours(1));
    let late_records = late.len();
    post(ingestion, late, &mut tally).await?;
    if now > this_hour {
        // Nothing has accrued yet when the clock stands exactly on the hour.
        post(ingestion, usage_of(resources, this_hour, now), &mut tally).await?;
    }
    Ok(Backfill {
        tally,
        late_records,
        late_hour,
        posted_through: now,
    })
}

/// Posts the usage accrued since `posted_through` every 10 s, in slices that never cross an
/// hour (a record lies inside one UTC hour).
async fn keep_posting(
    ingestion: &mut Ingestion,
    resources: &[Resource],
    mut posted_through: DateTime<Utc>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = Utc::now();
        let mut round = Tally::default();
        let mut from = posted_through;
        while from < now {
            let hour_end = Granularity::Hourly.bucket_start(from) + Span::hours(1);
            let to = now.min(hour_end);
            let records = resources.iter().flat_map(|r| r.usage(from, to)).collect();
            if let Err(error) = post(ingestion, records, &mut round).await {
                tracing::warn!(%error, "demo provider could not post");
            }
            from = to;
        }
        posted_through = now;
        tracing::info!(accepted = round.accepted, "demo providers posted");
    }
}
