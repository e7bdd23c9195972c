//! Uploading: sealed batches go to the commerce endpoint oldest first, a few in flight and
//! answered in order, at least once. A transient error (UNAVAILABLE, DEADLINE_EXCEEDED,
//! RESOURCE_EXHAUSTED, ABORTED, transport) stops the pass and sets a capped exponential backoff
//! on real time, retried forever; when the endpoint answers again the whole backlog drains in
//! one pass. Any other error parks that batch and the pass goes on with later ones.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use chrono::{TimeZone, Utc};
use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use prost::Message as _;
use tally_proto::commerce::v1::UploadUsageRequest;
use tally_proto::convert::timestamp;
use tally_store::bridge::PendingBatch;
use tonic::{Code, Request, Status};

use crate::error::BridgeError;
use crate::service::{Bridge, DAY};

/// Whether the bridge retries `status` (with backoff) rather than parking the batch.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
    ) || (matches!(status.code(), Code::Unknown | Code::Cancelled)
        && tally_proto::status::reason(status).is_none())
}

fn request_of(batch: PendingBatch) -> Result<UploadUsageRequest, BridgeError> {
    let stored = UploadUsageRequest::decode(batch.payload.as_slice()).map_err(|e| {
        BridgeError::Store(tally_store::StoreError::Corrupt(format!(
            "batch {}: {e}",
            batch.batch_id
        )))
    })?;
    let day = |seconds| Utc.timestamp_opt(seconds, 0).single().map(timestamp);
    Ok(UploadUsageRequest {
        batch_id: batch.batch_id,
        cloud_id: batch.cloud_id,
        registration_name: batch.registration_name,
        billing_model: batch.billing_model,
        reported_start_time: day(batch.reported_day),
        reported_end_time: day(batch.reported_day + DAY),
        batch_index: batch.batch_index,
        batch_count: batch.batch_count,
        records: stored.records,
    })
}

/// Batches sent before the first of them is answered: uploads overlap the round trip and the
/// receiver's commit, yet are acknowledged in order.
const IN_FLIGHT: usize = 4;

impl Bridge {
    /// Uploads pending batches oldest first, a few at a time, until none is left or the
    /// endpoint fails transiently. Answers are taken in batch order; batches sent after one that
    /// failed transiently are sent again next pass (the receiver deduplicates them).
    pub(crate) async fn upload_pending(&self) -> Result<(), BridgeError> {
        let Some((commerce, settings)) = &self.commerce else {
            return Ok(());
        };
        let mut in_flight = FuturesOrdered::new();
        let mut last_sent = None;
        let mut drained = false;
        loop {
            while !drained && in_flight.len() < IN_FLIGHT {
                let Some(batch) = self.store.next_pending(last_sent).await? else {
                    drained = true;
                    break;
                };
                last_sent = Some((batch.reported_day, batch.batch_index));
                let batch_id = batch.batch_id.clone();
                let mut request = Request::new(request_of(batch)?);
                request.set_timeout(self.config.upload_timeout);
                if let Some(token) = &settings.token
                    && let Ok(value) = format!("Bearer {token}").parse()
                {
                    request.metadata_mut().insert("authorization", value);
                }
                let timeout = self.config.upload_timeout;
                in_flight.push_back(async move {
                    let answer = tokio::time::timeout(timeout, commerce.upload_usage(request))
                        .await
                        .unwrap_or_else(|_| Err(Status::deadline_exceeded("the upload timed out")));
                    (batch_id, answer)
                });
            }
            let Some((batch_id, answer)) = in_flight.next().await else {
                return Ok(());
            };
            match answer {
                Ok(_) => {
                    if self
                        .crashes_after_upload
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        tracing::warn!(%batch_id, "failpoint: acknowledgement dropped");
                        return Ok(());
                    }
                    let now = self.clock.now().timestamp();
                    self.store.acknowledge(&batch_id, now).await?;
                    let mut uploader = self.uploader();
                    uploader.last_error.clear();
                    uploader.next_attempt = None;
                    uploader.backoff = None;
                }
                Err(status) if is_transient(&status) => {
                    let error = format!("{:?}: {}", status.code(), status.message());
                    self.store.fail(&batch_id, &error, false).await?;
                    let mut uploader = self.uploader();
                    let backoff = uploader
                        .backoff
                        .map_or(self.config.backoff_initial, |b| b * 2)
                        .min(self.config.backoff_max);
                    tracing::warn!(%batch_id, %error, ?backoff, "upload failed; retrying later");
                    uploader.backoff = Some(backoff);
                    uploader.next_attempt = Some(SystemTime::now() + backoff);
                    uploader.last_error = error;
                    return Ok(());
                }
                Err(status) => {
                    let error = format!("{:?}: {}", status.code(), status.message());
                    tracing::error!(%batch_id, %error, "upload refused; batch parked");
                    self.store.fail(&batch_id, &error, true).await?;
                    self.uploader().last_error = error;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient;
    use tonic::Status;

    #[test]
    fn transient_and_permanent_errors() {
        assert!(is_transient(&Status::unavailable("down")));
        assert!(is_transient(&Status::deadline_exceeded("slow")));
        assert!(is_transient(&Status::resource_exhausted("busy")));
        assert!(is_transient(&Status::aborted("try again")));
        assert!(is_transient(&Status::unknown("transport error")));
        assert!(!is_transient(&Status::invalid_argument("garbage")));
        assert!(!is_transient(&Status::already_exists("conflict")));
        assert!(!is_transient(&Status::permission_denied("token")));
        assert!(!is_transient(&Status::failed_precondition("refused")));
    }
}
