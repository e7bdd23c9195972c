//! [`Bridge`]: the bridge's state and its loop (seal what closed, then upload what is pending),
//! and the UsageBridge contract for operators (status, uploads, retry).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeZone, Utc};
use tally_core::{Clock, Reason, Rejection};
use tally_proto::Rpc;
use tally_proto::bridge::v1 as pb;
use tally_proto::bridge_api::BridgeApi;
use tally_proto::commerce_api::{CommerceApi, CommerceClient};
use tally_proto::convert::{timestamp, utc};
use tally_proto::registration::v1::GetRegistrationRequest;
use tally_proto::registration_api::RegistrationApi;
use tally_proto::server::{Background, ServeError, Ticker};
use tally_proto::usage_api::UsageApi;
use tally_store::BridgeStore;
use tally_store::bridge::UploadRow;
use tonic::{Request, Response};

use crate::error::BridgeError;
use crate::{Commerce, Config};

pub(crate) const DAY: i64 = 86_400;

/// What the uploader learned on its last attempt, for the status (kept in memory: after a
/// restart the next attempt tells again).
#[derive(Debug, Default)]
pub(crate) struct UploaderState {
    pub(crate) last_error: String,
    /// Set after a transient error: no upload before then.
    pub(crate) next_attempt: Option<SystemTime>,
    pub(crate) backoff: Option<Duration>,
}

/// The usage bridge of one installation.
pub struct Bridge {
    pub(crate) config: Config,
    pub(crate) store: BridgeStore,
    pub(crate) usage: Arc<dyn UsageApi>,
    pub(crate) registration: Arc<dyn RegistrationApi>,
    pub(crate) commerce: Option<(Arc<dyn CommerceApi>, Commerce)>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) uploader: Mutex<UploaderState>,
    /// Failpoint for tests: this many upload acknowledgements are dropped as if the bridge
    /// died between the upstream's answer and recording it.
    pub(crate) crashes_after_upload: AtomicU32,
    /// Wakes the loop at once (RetryUpload).
    pub(crate) wake: tokio::sync::Notify,
    /// One pass of the loop at a time (the loop, and tests driving passes by hand).
    pub(crate) pass: tokio::sync::Mutex<()>,
}

impl Bridge {
    /// Opens the bridge's tables. Calls nothing yet: peers may start later.
    pub async fn open(
        config: Config,
        usage: Arc<dyn UsageApi>,
        registration: Arc<dyn RegistrationApi>,
        clock: Arc<dyn Clock>,
    ) -> Result<Bridge, ServeError> {
        let store = BridgeStore::open(&config.database_url)
            .await
            .map_err(|e| ServeError::open("the bridge database", e))?;
        let commerce = match &config.commerce {
            None => None,
            Some(commerce) => {
                let client = CommerceClient::connect_lazy(&commerce.endpoint).map_err(|e| {
                    ServeError::PeerAddress {
                        url: commerce.endpoint.clone(),
                        source: e,
                    }
                })?;
                Some((Arc::new(client) as Arc<dyn CommerceApi>, commerce.clone()))
            }
        };
        Ok(Bridge {
            config,
            store,
            usage,
            registration,
            commerce,
            clock,
            uploader: Mutex::default(),
            crashes_after_upload: AtomicU32::new(0),
            wake: tokio::sync::Notify::new(),
            pass: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Failpoint for tests: the next `n` acknowledged uploads are not recorded, as if the
    /// bridge died between the upstream's acknowledgement and its own commit.
    pub fn crash_after_next_uploads(&self, n: u32) {
        self.crashes_after_upload.store(n, Ordering::SeqCst);
    }

    /// Starts the loop in the background; stop it with [`Background::stop`]. Without a
    /// commerce endpoint there is nothing to do and no loop runs.
    pub fn start(self: &Arc<Self>) -> Background {
        let bridge = self.clone();
        Background::spawn(move |stop| async move {
            if bridge.commerce.is_none() {
                tracing::info!("no commerce endpoint: the usage bridge stays idle");
                return stop.await;
            }
            tokio::pin!(stop);
            let mut ticker = Ticker::new(bridge.clock.as_ref(), bridge.config.interval);
            loop {
                bridge.run_once().await;
                let backoff = bridge.until_next_attempt();
                tokio::select! {
                    _ = &mut stop => return,
                    _ = ticker.tick() => {}
                    _ = bridge.wake.notified() => {}
                    _ = sleep_for(backoff) => {}
                }
            }
        })
    }

    /// One pass: seal every day that closed, then upload what is due.
    pub async fn run_once(&self) {
        let _pass = self.pass.lock().await;
        if let Err(error) = self.seal_closed_days().await {
            tracing::warn!(%error, "sealing failed; retrying on the next tick");
        }
        if self.until_next_attempt().is_none_or(|wait| wait.is_zero())
            && let Err(error) = self.upload_pending().await
        {
            tracing::warn!(%error, "uploading failed; retrying on the next tick");
        }
        // The backlog gauges follow every pass, not only status calls.
        if let Ok(summary) = self.store.summary().await {
            tally_proto::metrics::bridge_backlog(summary.pending, summary.parked);
        }
    }

    /// The uploader's state; a panic elsewhere cannot leave it unusable (it holds plain values).
    pub(crate) fn uploader(&self) -> std::sync::MutexGuard<'_, UploaderState> {
        self.uploader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn until_next_attempt(&self) -> Option<Duration> {
        let next = self.uploader().next_attempt?;
        Some(next.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// The bridge's status, as GetBridgeStatus answers it.
    pub async fn status(&self) -> Result<pb::BridgeStatus, BridgeError> {
        let summary = self.store.summary().await?;
        tally_proto::metrics::bridge_backlog(summary.pending, summary.parked);
        let (last_error, next_attempt, failing) = {
            let uploader = self.uploader();
            (
                uploader.last_error.clone(),
                uploader.next_attempt,
                uploader.next_attempt.is_some(),
            )
        };
        let state = if self.commerce.is_none() {
            "NotConfigured"
        } else if summary.parked > 0 || (summary.pending > 0 && failing) {
            "Failing"
        } else if summary.pending > 0 {
            "Backlogged"
        } else {
            match self.reporting().await {
                Ok(None) => "UpToDate",
                Ok(Some(Skip::NotRegistered)) => "NotRegistered",
                Ok(Some(Skip::ReportingDisabled)) => "ReportingDisabled",
                Err(_) => "UpToDate",
            }
        };
        let day = |seconds: i64| Utc.timestamp_opt(seconds, 0).single().map(timestamp);
        Ok(pb::BridgeStatus {
            state: state.into(),
            sealed_through: summary.next_day.and_then(day),
            acknowledged_through: summary
                .oldest_unacknowledged_day
                .or(summary.next_day)
                .and_then(day),
            pending_batches: summary.pending as u32,
            parked_batches: summary.parked as u32,
            last_error: if last_error.is_empty() {
                summary.oldest_error
            } else {
                last_error
            },
            next_attempt_time: next_attempt.map(|t| timestamp(DateTime::<Utc>::from(t))),
        })
    }

    /// Whether usage may be reported now: `None` if so, else why not.
    pub(crate) async fn reporting(&self) -> Result<Option<Skip>, BridgeError> {
        let registration = self
            .registration
            .get_registration(Request::new(GetRegistrationRequest {}))
            .await
            .map_err(BridgeError::peer("the registration service"))?
            .into_inner();
        Ok(if registration.status != "Registered" {
            Some(Skip::NotRegistered)
        } else if !registration.usage_reporting_enabled {
            Some(Skip::ReportingDisabled)
        } else {
            None
        })
    }
}

/// Why a closed day is not reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    NotRegistered,
    ReportingDisabled,
}

impl Skip {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Skip::NotRegistered => {
                "NotRegistered: the installation was not registered when the day closed"
            }
            Skip::ReportingDisabled => {
                "ReportingDisabled: usage reporting was off when the day closed"
            }
        }
    }
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

fn upload_message(row: UploadRow) -> pb::Upload {
    pb::Upload {
        batch_id: row.batch_id,
        reported_start_time: Utc
            .timestamp_opt(row.reported_day, 0)
            .single()
            .map(timestamp),
        batch_index: row.batch_index,
        batch_count: row.batch_count,
        records: row.records,
        state: row.state,
        attempts: row.attempts,
        last_error: row.last_error,
        acknowledged_time: row
            .acknowledged_at
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .map(timestamp),
    }
}

/// Page tokens of ListUploads: the last row's `day.index`.
fn parse_page_token(token: &str) -> Result<Option<(i64, u32)>, Rejection> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Rejection::field(
            Reason::InvalidContinuationToken,
            "page_token",
            "is not a token ListUploads returned",
        )
    };
    let (day, index) = token.split_once('.').ok_or_else(invalid)?;
    Ok(Some((
        day.parse().map_err(|_| invalid())?,
        index.parse().map_err(|_| invalid())?,
    )))
}

fn optional_day(
    field: &str,
    value: Option<&tally_proto::convert::Timestamp>,
) -> Result<Option<i64>, Rejection> {
    match value {
        None => Ok(None),
        Some(ts) => match utc(Some(ts)) {
            Some(time) => Ok(Some(time.timestamp())),
            None => Err(Rejection::field(
                Reason::InvalidProperty,
                field,
                "is not a valid timestamp",
            )),
        },
    }
}

#[tonic::async_trait]
impl BridgeApi for Bridge {
    async fn get_bridge_status(
        &self,
        _request: Request<pb::GetBridgeStatusRequest>,
    ) -> Rpc<pb::BridgeStatus> {
        Ok(Response::new(self.status().await?))
    }

    async fn list_uploads(
        &self,
        request: Request<pb::ListUploadsRequest>,
    ) -> Rpc<pb::ListUploadsResponse> {
        let r = request.into_inner();
        let limit = match r.page_size {
            0 => 100,
            1..=1000 => r.page_size as u64,
            _ => {
                return Err(BridgeError::from(Rejection::field(
                    Reason::InvalidProperty,
                    "page_size",
                    "must be between 0 and 1000",
                ))
                .into());
            }
        };
        let after = parse_page_token(&r.page_token).map_err(BridgeError::from)?;
        let start = optional_day("reported_start_time", r.reported_start_time.as_ref())
            .map_err(BridgeError::from)?;
        let end = optional_day("reported_end_time", r.reported_end_time.as_ref())
            .map_err(BridgeError::from)?;
        let rows = self
            .store
            .uploads(start, end, after, limit)
            .await
            .map_err(BridgeError::from)?;
        let next_page_token = match rows.last() {
            Some(last) if rows.len() as u64 == limit => {
                format!("{}.{}", last.reported_day, last.batch_index)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListUploadsResponse {
            uploads: rows.into_iter().map(upload_message).collect(),
            next_page_token,
        }))
    }

    async fn retry_upload(&self, request: Request<pb::RetryUploadRequest>) -> Rpc<pb::Upload> {
        let batch_id = request.into_inner().batch_id;
        if self.commerce.is_none() {
            return Err(BridgeError::from(Rejection::new(
                Reason::BridgeNotConfigured,
                "the usage bridge has no commerce endpoint (--commerce-endpoint)",
            ))
            .into());
        }
        if batch_id.is_empty() {
            return Err(BridgeError::from(Rejection::field(
                Reason::InvalidProperty,
                "batch_id",
                "is required",
            ))
            .into());
        }
        let Some((row, requeued)) = self
            .store
            .requeue(&batch_id)
            .await
            .map_err(BridgeError::from)?
        else {
            return Err(BridgeError::from(Rejection::field(
                Reason::UploadNotFound,
                "batch_id",
                format!("no sealed batch has the id {batch_id:?}"),
            ))
            .into());
        };
        if !requeued && row.state != tally_store::bridge::PENDING {
            return Err(BridgeError::from(Rejection::field(
                Reason::UploadNotParked,
                "batch_id",
                format!("batch {batch_id:?} is {}, not Parked", row.state),
            ))
            .into());
        }
        {
            // The operator fixed the cause: try at once, not after the backoff.
            let mut uploader = self.uploader();
            uploader.next_attempt = None;
            uploader.backoff = None;
        }
        self.wake.notify_one();
        Ok(Response::new(upload_message(row)))
    }
}

/// Ready while the bridge database answers.
#[tonic::async_trait]
impl tally_proto::server::Readiness for Bridge {
    async fn check(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}
