//! Tally's services started in-process on loopback, with an injected clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tally_aggregator::{Aggregator, Config as AggregatorConfig};
use tally_core::{Clock, ManualClock};
use tally_gateway::Backends;
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, provider_usage_client::ProviderUsageClient,
    tenant_usage_client::TenantUsageClient, usage_admin_client::UsageAdminClient,
    usage_ingestion_client::UsageIngestionClient,
};
use tally_proto::usage_api::{UsageApi, UsageClient};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::database::{Backend, TestDatabase};

/// How the aggregator sits behind the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One process, as `tally serve`: the gateway calls the aggregator through its trait.
    InProcess,
    /// Apart: the aggregator serves gRPC on its own port, in its own runtime (so a test can kill
    /// it as abruptly as a crash), and the gateway calls it over gRPC.
    Remote,
}

/// The time every cluster starts at.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 30, 0).unwrap()
}

struct RemoteAggregator {
    runtime: tokio::runtime::Runtime,
}

pub struct Cluster {
    pub db: TestDatabase,
    pub clock: Arc<ManualClock>,
    pub gateway: SocketAddr,
    aggregator_addr: Option<SocketAddr>,
    remote: Option<RemoteAggregator>,
    in_process: Option<(Arc<Aggregator>, oneshot::Sender<()>, JoinHandle<()>)>,
    gateway_stop: Option<oneshot::Sender<()>>,
    gateway_task: Option<JoinHandle<()>>,
    channel: Channel,
}

fn aggregator_config(db: &TestDatabase) -> AggregatorConfig {
    let mut config = AggregatorConfig::new(db.usage_url());
    config.fold_interval = Duration::from_millis(10);
    config.fold_max_records = 20_000;
    config
}

impl Cluster {
    pub async fn start(backend: Backend, topology: Topology) -> Cluster {
        Self::start_with(backend, topology, true).await
    }

    /// A cluster whose folder never runs (`fold: false`): nothing becomes complete, which makes
    /// "processing not complete" deterministic.
    pub async fn start_with(backend: Backend, topology: Topology, fold: bool) -> Cluster {
        let db = TestDatabase::new(backend).await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let mut cluster = Cluster {
            db,
            clock,
            gateway: "127.0.0.1:0".parse().unwrap(),
            aggregator_addr: None,
            remote: None,
            in_process: None,
            gateway_stop: None,
            gateway_task: None,
            channel: Endpoint::from_static("http://127.0.0.1:1").connect_lazy(),
        };
        let usage: Arc<dyn UsageApi> = match topology {
            Topology::InProcess => {
                let clock: Arc<dyn Clock> = cluster.clock.clone();
                let mut config = aggregator_config(&cluster.db);
                if !fold {
                    config.fold_interval = Duration::from_secs(24 * 3_600);
                }
                let aggregator = Arc::new(
                    Aggregator::open(&config, clock)
                        .await
                        .expect("open aggregator"),
                );
                let (stop, stopped) = oneshot::channel::<()>();
                let folder = tokio::spawn(aggregator.clone().run_folder(async {
                    let _ = stopped.await;
                }));
                cluster.in_process = Some((aggregator.clone(), stop, folder));
                aggregator
            }
            Topology::Remote => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                cluster.aggregator_addr = Some(listener.local_addr().unwrap());
                cluster.start_remote_aggregator(listener).await;
                Arc::new(
                    UsageClient::connect_lazy(&format!(
                        "http://{}",
                        cluster.aggregator_addr.unwrap()
                    ))
                    .unwrap(),
                )
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        cluster.gateway = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        cluster.gateway_stop = Some(stop);
        cluster.gateway_task = Some(tokio::spawn(async move {
            tally_gateway::serve_backends(Backends { usage }, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("gateway serves");
        }));
        cluster.channel = Endpoint::from_shared(format!("http://{}", cluster.gateway))
            .unwrap()
            .connect()
            .await
            .expect("connect to gateway");
        cluster
    }

    async fn start_remote_aggregator(&mut self, listener: TcpListener) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = aggregator_config(&self.db);
        let clock: Arc<dyn Clock> = self.clock.clone();
        let listener = listener.into_std().unwrap();
        let (ready, is_ready) = oneshot::channel();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            let aggregator = Arc::new(
                Aggregator::open(&config, clock)
                    .await
                    .expect("open aggregator"),
            );
            let _ = ready.send(());
            tally_aggregator::serve_aggregator(aggregator, listener, std::future::pending())
                .await
                .expect("aggregator serves");
        });
        is_ready.await.expect("aggregator started");
        self.remote = Some(RemoteAggregator { runtime });
    }

    /// Kills the remote aggregator as abruptly as a crash: every task, request and transaction of
    /// it is dropped where it stands.
    pub fn crash_aggregator(&mut self) {
        let remote = self.remote.take().expect("a remote aggregator to crash");
        remote.runtime.shutdown_background();
    }

    /// Starts the remote aggregator again, on the same address and database.
    pub async fn restart_aggregator(&mut self) {
        let addr = self.aggregator_addr.expect("a remote aggregator");
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.start_remote_aggregator(listener).await;
    }

    pub fn ingestion(&self) -> UsageIngestionClient<Channel> {
        UsageIngestionClient::new(self.channel.clone())
    }

    pub fn provider(&self) -> ProviderUsageClient<Channel> {
        ProviderUsageClient::new(self.channel.clone())
    }

    pub fn tenant(&self) -> TenantUsageClient<Channel> {
        TenantUsageClient::new(self.channel.clone())
    }

    pub fn admin(&self) -> UsageAdminClient<Channel> {
        UsageAdminClient::new(self.channel.clone())
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Moves the clock to `time` and waits until everything reported before it is folded.
    pub async fn settle_at(&self, time: DateTime<Utc>) {
        self.clock.set(time);
        self.wait_complete_through(time).await;
    }

    /// Waits (polling GetPipelineStatus through the gateway) until `complete_through >= time`.
    pub async fn wait_complete_through(&self, time: DateTime<Utc>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = self
                .admin()
                .get_pipeline_status(GetPipelineStatusRequest {})
                .await
                .map(|r| r.into_inner());
            if let Ok(status) = &status
                && let Some(ct) = &status.complete_through
                && ct.seconds >= time.timestamp()
                && status.records_pending_fold == 0
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "complete_through never reached {time}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.gateway_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.gateway_task.take() {
            let _ = task.await;
        }
        if let Some((aggregator, stop, folder)) = self.in_process.take() {
            let _ = stop.send(());
            let _ = folder.await;
            drop(aggregator);
        }
        if let Some(remote) = self.remote.take() {
            remote.runtime.shutdown_background();
        }
        self.db.cleanup().await;
    }
}
