//! The clock of another service, followed over gRPC (`tally.clock.v1.Clock/GetTime`): how a
//! bridge run alone (`tally bridge --clock-url`) closes days on the simulated clock of a usage
//! service started with `--manual-clock`. The followed time is polled on real time (a mechanic,
//! not business time) and moves a local [`ManualClock`], so the bridge's loop wakes as it moves.

use std::sync::Arc;
use std::time::Duration;

use tally_core::ManualClock;
use tally_proto::clock::v1::GetTimeRequest;
use tally_proto::clock_api::{ClockApi, ClockClient};
use tally_proto::convert::utc;
use tally_proto::server::ServeError;
use tonic::Request;

/// How often the followed clock is read.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

async fn remote_now(clock: &ClockClient) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let time = clock
        .get_time(Request::new(GetTimeRequest {}))
        .await
        .map_err(|status| status.to_string())?
        .into_inner();
    utc(time.now.as_ref()).ok_or_else(|| "GetTime answered no time".to_string())
}

/// A clock that follows the `tally.clock.v1` service at `url`. Waits until that service first
/// answers (a bridge cannot tell which days closed before it knows the time), then keeps
/// following it every `interval` in the background for as long as the process runs.
pub async fn follow(url: &str, interval: Duration) -> Result<Arc<ManualClock>, ServeError> {
    let client = ClockClient::connect_lazy(url).map_err(|source| ServeError::PeerAddress {
        url: url.to_string(),
        source,
    })?;
    let start = loop {
        match remote_now(&client).await {
            Ok(now) => break now,
            Err(error) => {
                tracing::warn!(%url, %error, "waiting for the clock to follow");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let clock = Arc::new(ManualClock::new(start));
    let followed = clock.clone();
    let url = url.to_string();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            match remote_now(&client).await {
                // Only forward: an older answer (a restarted peer) is ignored, and an unmoved
                // clock wakes nobody.
                Ok(now) if now > tally_core::Clock::now(followed.as_ref()) => {
                    let _ = followed.advance_to(now);
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%url, %error, "the followed clock did not answer"),
            }
        }
    });
    Ok(clock)
}
