//! The folder: runs continuously on a short interval (and at once when a manual clock moves),
//! folding whatever is unfolded.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tally_proto::metrics;
use tally_proto::server::{Background, Ticker};

use crate::service::Aggregator;

impl Aggregator {
    /// Starts [`Aggregator::run_folder`] in the background; stop it with [`Background::stop`].
    pub fn start_folder(self: &Arc<Self>) -> Background {
        let aggregator = self.clone();
        Background::spawn(move |stop| aggregator.run_folder(stop))
    }

    /// Folds at once, then on every tick until `stop` completes. Safe beside other instances'
    /// folders: the store lets one fold at a time and each batch is folded once.
    pub async fn run_folder(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let mut ticker = Ticker::new(self.clock.as_ref(), self.config.fold_interval);
        loop {
            if let Err(error) = self.fold_pending().await {
                tracing::warn!(%error, "fold failed; retrying on the next tick");
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => {}
            }
        }
    }

    /// Folds until nothing reported before now is left unfolded (or another instance is at it).
    pub async fn fold_pending(&self) -> Result<(), tally_store::StoreError> {
        loop {
            let started = Instant::now();
            let now = self.clock.now();
            let outcome = self.store.fold(now, self.config.fold_max_records).await?;
            if outcome.ran {
                metrics::fold_pass(outcome.records, started.elapsed());
            }
            if let Some(complete_through) = outcome.complete_through {
                metrics::fold_lag((now - complete_through).to_std().unwrap_or_default());
            }
            if outcome.records > 0 {
                tracing::debug!(
                    records = outcome.records,
                    batches = outcome.batches,
                    "folded"
                );
            }
            if !outcome.ran || !outcome.more {
                if outcome.ran {
                    self.store.maintain().await?;
                }
                return Ok(());
            }
        }
    }
}
