//! The demo's upstream: a reference commerce receiver started beside `serve` (unless
//! `--commerce-endpoint` names another), and the part of the tour that shows a reported day
//! reaching it through the usage bridge.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use tally_core::Granularity;
use tally_proto::bridge::v1::{GetBridgeStatusRequest, usage_bridge_client::UsageBridgeClient};
use tally_proto::clock::v1::{
    AdvanceClockRequest, GetTimeRequest, advance_clock_request::Target, clock_client::ClockClient,
};
use tally_proto::commerce::v1::{
    ListTotalsRequest, commerce_receiver_client::CommerceReceiverClient,
};
use tally_proto::convert::{timestamp, utc};
use tonic::transport::{Channel, Endpoint};

use super::{Tokens, with_token};
use crate::cli::ServeArgs;

/// Starts a receiver with its own SQLite in `<data-dir>/commerce` and points the bridge of
/// `args` at it; returns its address.
pub(crate) async fn start_receiver(args: &mut ServeArgs) -> anyhow::Result<Option<SocketAddr>> {
    if args.commerce_endpoint.is_some() {
        return Ok(None);
    }
    let receiver_args = crate::cli::ReceiverArgs {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: args.data_dir.join("commerce"),
        fail_rate: 0.0,
        token_file: None,
        ops: args.ops.clone(),
    };
    let config = crate::serve::receiver_config(&receiver_args)?;
    let listener = tokio::net::TcpListener::bind(receiver_args.listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) =
            tally_commerce_receiver::serve(config, listener, std::future::pending()).await
        {
            tracing::error!(%error, "the demo's commerce receiver failed");
        }
    });
    args.commerce_endpoint = Some(format!("http://{addr}"));
    Ok(Some(addr))
}

/// Prints the bridge's state and the receiver's totals. On a manual clock the tour first moves
/// the clock past the next midnight, so today closes and is reported while you watch.
pub(crate) async fn print(
    args: &ServeArgs,
    addr: SocketAddr,
    channel: &Channel,
    tokens: &Tokens,
    receiver: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let operator = with_token(channel, &tokens.operator);
    let mut bridge = UsageBridgeClient::new(operator.clone());
    println!();
    println!(
        "Usage bridge: closed days go to commerce at {}",
        args.commerce_endpoint.as_deref().unwrap_or("(none)")
    );
    let mut clock = ClockClient::new(operator);
    let now = clock.get_time(GetTimeRequest {}).await?.into_inner();
    if now.manual {
        let today = Granularity::Daily.bucket_start(utc(now.now.as_ref()).unwrap_or_else(Utc::now));
        let closes = today + Span::days(1);
        clock
            .advance_clock(AdvanceClockRequest {
                target: Some(Target::To(timestamp(closes + Span::minutes(1)))),
            })
            .await?;
        println!(
            "  the manual clock moved to {}: {} closed; waiting for the bridge to report it ...",
            closes + Span::minutes(1),
            today.format("%Y-%m-%d")
        );
        for _ in 0..300 {
            let status = bridge
                .get_bridge_status(GetBridgeStatusRequest {})
                .await?
                .into_inner();
            if status.acknowledged_through.as_ref().map(|t| t.seconds) >= Some(closes.timestamp())
                && status.pending_batches == 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let status = bridge
        .get_bridge_status(GetBridgeStatusRequest {})
        .await?
        .into_inner();
    let day = |t: Option<&tally_proto::convert::Timestamp>| {
        utc(t).map_or("-".to_string(), |t| t.format("%Y-%m-%d").to_string())
    };
    println!(
        "  state {}, sealed through {}, acknowledged through {}, {} pending, {} parked",
        status.state,
        day(status.sealed_through.as_ref()),
        day(status.acknowledged_through.as_ref()),
        status.pending_batches,
        status.parked_batches
    );
    if !now.manual {
        println!(
            "  (real clock: today is reported after midnight UTC; `tally demo --manual-clock ...` shows it at once)"
        );
    }
    let Some(receiver) = receiver else {
        return Ok(());
    };
    let channel = Endpoint::from_shared(format!("http://{receiver}"))?
        .connect()
        .await?;
    let totals = CommerceReceiverClient::new(channel)
        .list_totals(ListTotalsRequest::default())
        .await?
        .into_inner()
        .totals;
    println!(
        "Reference commerce receiver on {receiver}: totals per billing subscription, meter, usage day"
    );
    for total in totals.iter().take(12) {
        println!(
            "  {:<38} {:<38} {:<10} {:>16}",
            total.billing_subscription_id,
            total.meter_id,
            day(total.usage_day.as_ref()),
            total.quantity
        );
    }
    if totals.is_empty() {
        println!("  (nothing yet)");
    }
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $OPERATOR\" {addr} tally.bridge.v1.UsageBridge/GetBridgeStatus"
    );
    println!("  grpcurl -plaintext {receiver} tally.commerce.v1.CommerceReceiver/ListTotals");
    Ok(())
}
