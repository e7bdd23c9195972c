//! The StreamUsage feeder the scenarios share: numbered batches posted over concurrent streams,
//! each stream taking the next number as it goes, so a slow stream never holds the others back.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tally_proto::bearer::AuthorizedChannel;
use tally_proto::usage::v1::{PostUsageRequest, usage_ingestion_client::UsageIngestionClient};
use tokio_stream::wrappers::ReceiverStream;

/// Batches a stream keeps ready ahead of what it has sent.
const READY_BATCHES: usize = 4;

/// What the server answered over every stream, in records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answered {
    pub accepted: u64,
    pub duplicates: u64,
}

impl Answered {
    /// Accepted or recognised as sent before: acknowledged either way.
    pub fn acknowledged(self) -> u64 {
        self.accepted + self.duplicates
    }

    fn add(self, other: Answered) -> Answered {
        Answered {
            accepted: self.accepted + other.accepted,
            duplicates: self.duplicates + other.duplicates,
        }
    }
}

/// Posts the batches numbered `numbers`, made by `batch`, over one StreamUsage stream per
/// channel, and waits for every answer.
pub async fn stream_batches<F>(
    channels: Vec<AuthorizedChannel>,
    numbers: Range<usize>,
    batch: F,
) -> anyhow::Result<Answered>
where
    F: Fn(usize) -> PostUsageRequest + Send + Sync + 'static,
{
    let batch = Arc::new(batch);
    let next = Arc::new(AtomicUsize::new(numbers.start));
    let end = numbers.end;
    let mut streams = Vec::new();
    for channel in channels {
        let (batch, next) = (batch.clone(), next.clone());
        streams.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<PostUsageRequest>(READY_BATCHES);
            let producer = tokio::spawn(async move {
                loop {
                    let number = next.fetch_add(1, Ordering::Relaxed);
                    if number >= end || tx.send(batch(number)).await.is_err() {
                        break;
                    }
                }
            });
            let mut client = UsageIngestionClient::new(channel).max_encoding_message_size(64 << 20);
            let mut responses = client
                .stream_usage(ReceiverStream::new(rx))
                .await?
                .into_inner();
            let mut answered = Answered::default();
            while let Some(response) = responses.message().await? {
                answered = answered.add(Answered {
                    accepted: u64::from(response.accepted),
                    duplicates: u64::from(response.duplicates),
                });
            }
            producer.await?;
            anyhow::Ok(answered)
        }));
    }
    let mut answered = Answered::default();
    for stream in streams {
        answered = answered.add(stream.await??);
    }
    Ok(answered)
}
