//! Readiness: each service says how to tell that it can do its work ([`Readiness`]: its
//! database answers, its peers are ready), and the server keeps gRPC health, `/readyz` and the
//! `tally_ready` gauge in step with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_health::server::HealthReporter;

use super::Background;

/// How long one readiness probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often gRPC health is brought in step with readiness.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a service can do its work now: its database answers, its peers are ready.
#[tonic::async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when ready; otherwise what is missing, for operators (`/readyz` shows it).
    async fn check(&self) -> Result<(), String>;
}

/// Ready when every named probe is; otherwise names those that are not.
pub struct AllReady(pub Vec<(&'static str, Arc<dyn Readiness>)>);

#[tonic::async_trait]
impl Readiness for AllReady {
    async fn check(&self) -> Result<(), String> {
        let checks = self.0.iter().map(|(name, probe)| async move {
            probe
                .check()
                .await
                .map_err(|reason| format!("{name}: {reason}"))
        });
        let failures: Vec<String> = futures::future::join_all(checks)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

/// A peer service over gRPC: ready while its health service reports SERVING (which, for a Tally
/// service, means its own database and peers answer).
#[derive(Clone, Debug)]
pub struct PeerHealth {
    client: HealthClient<Channel>,
}

impl PeerHealth {
    /// Asks the peer at `url`, connecting on first use.
    pub fn connect_lazy(url: &str) -> Result<PeerHealth, tonic::transport::Error> {
        Ok(PeerHealth {
            client: HealthClient::new(crate::client::lazy_channel(url)?),
        })
    }
}

#[tonic::async_trait]
impl Readiness for PeerHealth {
    async fn check(&self) -> Result<(), String> {
        let response = self
            .client
            .clone()
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| format!("unreachable ({})", status.message()))?;
        match response.into_inner().status() {
            WireStatus::Serving => Ok(()),
            other => Err(format!("reports {}", other.as_str_name())),
        }
    }
}

/// One probe, bounded in time.
pub(super) async fn probe(readiness: &dyn Readiness) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, readiness.check()).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// A server's readiness, and the health statuses that follow it.
#[derive(Clone)]
pub(super) struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    name: &'static str,
    services: Vec<&'static str>,
    readiness: Arc<dyn Readiness>,
    reporter: HealthReporter,
    ready: AtomicBool,
}

impl Health {
    pub(super) fn new(
        name: &'static str,
        services: &[&'static str],
        readiness: Arc<dyn Readiness>,
        reporter: HealthReporter,
    ) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                name,
                services: services.to_vec(),
                readiness,
                reporter,
                ready: AtomicBool::new(false),
            }),
        }
    }

    /// Probes now, publishes the outcome (gRPC health, gauge, a log line on change) and returns it.
    pub(super) async fn update(&self) -> Result<(), String> {
        let inner = &self.inner;
        let outcome = probe(inner.readiness.as_ref()).await;
        let ready = outcome.is_ok();
        let was = inner.ready.swap(ready, Ordering::Relaxed);
        crate::metrics::ready(inner.name, ready);
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        // The overall status ("") and each service's; set every time, as a probe that changed
        // nothing costs only a lock.
        for service in std::iter::once("").chain(inner.services.iter().copied()) {
            inner.reporter.set_service_status(service, status).await;
        }
        match (&outcome, was) {
            (Ok(()), false) => tracing::info!(server = inner.name, "ready"),
            (Err(reason), true) => tracing::warn!(server = inner.name, %reason, "not ready"),
            (Err(reason), false) => {
                tracing::debug!(server = inner.name, %reason, "still not ready")
            }
            (Ok(()), true) => {}
        }
        outcome
    }

    /// Keeps gRPC health in step with readiness until stopped.
    pub(super) fn watch(self) -> Background {
        Background::spawn(move |stop| async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                let _ = self.update().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<(), &'static str>);

    #[tonic::async_trait]
    impl Readiness for Fixed {
        async fn check(&self) -> Result<(), String> {
            self.0.map_err(str::to_string)
        }
    }

    #[tokio::test]
    async fn all_ready_names_every_probe_that_fails() {
        let all = AllReady(vec![
            ("usage", Arc::new(Fixed(Ok(())))),
            ("registration", Arc::new(Fixed(Err("database down")))),
            ("billing", Arc::new(Fixed(Err("peer down")))),
        ]);
        assert_eq!(
            all.check().await,
            Err("registration: database down; billing: peer down".into())
        );
        assert_eq!(
            AllReady(vec![("usage", Arc::new(Fixed(Ok(()))))])
                .check()
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_peer_that_does_not_answer_is_not_ready() {
        // Nothing listens on port 1 of loopback.
        let peer = PeerHealth::connect_lazy("http://127.0.0.1:1").unwrap();
        let error = probe(&peer).await.unwrap_err();
        assert!(error.starts_with("unreachable"), "{error}");
    }
}
