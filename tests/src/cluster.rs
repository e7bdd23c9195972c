//! Tally's services started in-process on loopback, with an injected clock and a signing key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tally_aggregator::{Aggregator, Config as AggregatorConfig};
use tally_bridge::{Bridge, Commerce, Config as BridgeConfig};
use tally_commerce_receiver::Receiver;
use tally_core::{Clock, Granularity, ManualClock};
use tally_gateway::{AuthConfig, Backends, Claims, OwnershipCache, Principal};
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::billing::v1::billing_client::BillingClient;
use tally_proto::billing_api::{BillingApi, BillingClient as BillingApiClient};
use tally_proto::bridge::v1::usage_bridge_client::UsageBridgeClient;
use tally_proto::bridge_api::BridgeApi;
use tally_proto::clock::v1::clock_client::ClockClient;
use tally_proto::commerce::v1::commerce_receiver_client::CommerceReceiverClient;
use tally_proto::registration::v1::{
    registration_client::RegistrationClient, tenancy_client::TenancyClient,
};
use tally_proto::registration_api::{RegistrationApi, RegistrationClient as RemoteRegistration};
use tally_proto::server::{AllReady, Background, BoxFuture, Options, PeerHealth, Readiness};
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, PipelineStatus, provider_usage_client::ProviderUsageClient,
    tenant_usage_client::TenantUsageClient, usage_admin_client::UsageAdminClient,
    usage_ingestion_client::UsageIngestionClient,
};
use tally_proto::usage_api::{UsageApi, UsageClient};
use tally_registration::RegistrationService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::database::{Backend, TestDatabase};
use crate::records::{SUB_A, batch, meters, record};

/// How the services sit behind the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One process, as `tally serve`: the gateway calls the services through their traits.
    InProcess,
    /// Apart: the aggregator serves gRPC on its own port, in its own runtime (so a test can kill
    /// it as abruptly as a crash), the registration service serves gRPC too, and the gateway
    /// calls both over gRPC.
    Remote,
}

/// The time every cluster starts at.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 30, 0).unwrap()
}

/// The gateway's test signing secret.
const SECRET: &[u8] = b"contract-tests-signing-secret-0123456789";

/// Who a token speaks for.
#[derive(Clone, Debug)]
pub struct Identity(pub Principal);

fn guid(text: &str) -> Uuid {
    tally_core::parse_guid(text).expect("a GUID")
}

impl Identity {
    pub fn operator() -> Self {
        Self(Principal::Operator)
    }
    pub fn resource_provider() -> Self {
        Self(Principal::resource_provider())
    }
    pub fn tenant(tenant_id: &str) -> Self {
        Self(Principal::tenant(guid(tenant_id)))
    }
    pub fn delegated_provider(tenant_id: &str, provider_subscription_id: &str) -> Self {
        Self(Principal::delegated_provider(
            Some(guid(tenant_id)),
            guid(provider_subscription_id),
        ))
    }

    /// Valid claims for this identity, one hour long.
    pub fn claims(&self) -> Claims {
        Claims::development(&self.0, "contract-test", chrono::TimeDelta::hours(1))
    }
}

/// The RS256 public key the gateway also accepts, and its private key (test fixtures).
const RS256_PUBLIC_KEY: &[u8] = include_bytes!("../fixtures/rs256-public.pem");
pub const RS256_PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/rs256-private.pem");
/// A private key the gateway does not know.
pub const RS256_OTHER_PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/rs256-other-private.pem");

/// Signs `claims` with the cluster's HS256 key (or any other, to test refusals).
pub fn sign(claims: &Claims, secret: Option<&[u8]>) -> String {
    tally_gateway::auth::mint(secret.unwrap_or(SECRET), claims).unwrap()
}

/// Signs `claims` with RS256 and `private_pem`.
pub fn sign_rs256(claims: &Claims, private_pem: &[u8]) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem).expect("a PEM RSA private key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &key,
    )
    .unwrap()
}

/// Generated clients for one caller.
#[derive(Clone)]
pub struct Clients {
    channel: AuthorizedChannel,
}

impl Clients {
    pub fn ingestion(&self) -> UsageIngestionClient<AuthorizedChannel> {
        UsageIngestionClient::new(self.channel.clone()).max_encoding_message_size(64 << 20)
    }
    pub fn provider(&self) -> ProviderUsageClient<AuthorizedChannel> {
        ProviderUsageClient::new(self.channel.clone())
    }
    pub fn tenant(&self) -> TenantUsageClient<AuthorizedChannel> {
        TenantUsageClient::new(self.channel.clone())
    }
    pub fn admin(&self) -> UsageAdminClient<AuthorizedChannel> {
        UsageAdminClient::new(self.channel.clone())
    }
    pub fn registration(&self) -> RegistrationClient<AuthorizedChannel> {
        RegistrationClient::new(self.channel.clone())
    }
    pub fn tenancy(&self) -> TenancyClient<AuthorizedChannel> {
        TenancyClient::new(self.channel.clone())
    }
    pub fn clock(&self) -> ClockClient<AuthorizedChannel> {
        ClockClient::new(self.channel.clone())
    }
    pub fn billing(&self) -> BillingClient<AuthorizedChannel> {
        BillingClient::new(self.channel.clone())
    }
    pub fn bridge(&self) -> UsageBridgeClient<AuthorizedChannel> {
        UsageBridgeClient::new(self.channel.clone())
    }
}

/// The bearer token the test receiver expects from the bridge.
pub const RECEIVER_TOKEN: &str = "receiver-test-token";

/// A usage bridge uploading to a reference receiver, both in-process.
pub struct BridgeSetup {
    pub bridge: Arc<Bridge>,
    pub receiver_addr: SocketAddr,
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
    in_process: Option<(Arc<Aggregator>, Option<Background>)>,
    /// The billing service (in-process beside the gateway) and its closer.
    billing: Option<(Arc<tally_billing::Billing>, tokio::task::JoinHandle<()>)>,
    servers: Vec<Background>,
    channel: Channel,
    operator: Clients,
    /// Set by [`Cluster::start_with_bridge`].
    pub bridged: Option<BridgeSetup>,
}

fn aggregator_config(db: &TestDatabase) -> AggregatorConfig {
    let mut config = AggregatorConfig::new(db.usage_url());
    config.fold_interval = Duration::from_millis(10);
    config.fold_max_records = 20_000;
    config
}

async fn spawn_server<F>(
    serve: impl FnOnce(TcpListener, BoxFuture) -> F,
) -> (SocketAddr, Background)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, Background::spawn(|stop| serve(listener, stop)))
}

impl Cluster {
    pub async fn start(backend: Backend, topology: Topology) -> Cluster {
        Self::start_with(backend, topology, true).await
    }

    /// A cluster whose folder never runs (`fold: false`) after its first fold at start-up:
    /// nothing more becomes complete, which makes "processing not complete" deterministic.
    pub async fn start_with(backend: Backend, topology: Topology, fold: bool) -> Cluster {
        Self::start_full(backend, topology, fold, tally_gateway::OWNERSHIP_TTL, false).await
    }

    /// A cluster (in one process) whose usage bridge uploads to a reference receiver that
    /// expects [`RECEIVER_TOKEN`]; the bridge retries quickly, so outages end in tests' time.
    pub async fn start_with_bridge(backend: Backend) -> Cluster {
        Self::start_full(
            backend,
            Topology::InProcess,
            true,
            tally_gateway::OWNERSHIP_TTL,
            true,
        )
        .await
    }

    /// A split cluster with a usage bridge: the aggregator and the registration service serve
    /// gRPC, the bridge calls them over gRPC and serves UsageBridge over gRPC itself, and the
    /// gateway calls all three remotely. The bridge uploads to a reference receiver as in
    /// [`Cluster::start_with_bridge`].
    pub async fn start_split_with_bridge(backend: Backend) -> Cluster {
        Self::start_full(
            backend,
            Topology::Remote,
            true,
            tally_gateway::OWNERSHIP_TTL,
            true,
        )
        .await
    }

    /// A remote cluster whose gateway trusts what it learned about ownership for `ttl`.
    pub async fn start_remote_with_ownership_ttl(backend: Backend, ttl: Duration) -> Cluster {
        Self::start_full(backend, Topology::Remote, true, ttl, false).await
    }

    async fn start_full(
        backend: Backend,
        topology: Topology,
        fold: bool,
        remote_ownership_ttl: Duration,
        with_bridge: bool,
    ) -> Cluster {
        let db = TestDatabase::new(backend).await;
        let clock = Arc::new(ManualClock::new(start_time()));
        let lazy = Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let mut cluster = Cluster {
            db,
            clock,
            gateway: "127.0.0.1:0".parse().unwrap(),
            aggregator_addr: None,
            remote: None,
            in_process: None,
            billing: None,
            servers: Vec::new(),
            operator: Clients {
                channel: InterceptedService::new(lazy.clone(), Bearer::new(None)),
            },
            channel: lazy,
            bridged: None,
        };
        let registration_service = Arc::new(
            RegistrationService::open(&cluster.db.registration_url())
                .await
                .expect("open registration"),
        );
        let mut ownership =
            OwnershipCache::UntilChanged(registration_service.subscription_changes());
        let (usage, registration, readiness): (
            Arc<dyn UsageApi>,
            Arc<dyn RegistrationApi>,
            Arc<dyn Readiness>,
        ) = match topology {
            Topology::InProcess => {
                let clock: Arc<dyn Clock> = cluster.clock.clone();
                let config = aggregator_config(&cluster.db);
                let aggregator = Arc::new(
                    Aggregator::open(&config, clock)
                        .await
                        .expect("open aggregator"),
                );
                let folder = if fold {
                    Some(aggregator.start_folder())
                } else {
                    aggregator.fold_pending().await.expect("the one fold");
                    None
                };
                cluster.in_process = Some((aggregator.clone(), folder));
                let readiness = AllReady(vec![
                    ("usage", aggregator.clone() as Arc<dyn Readiness>),
                    (
                        "registration",
                        registration_service.clone() as Arc<dyn Readiness>,
                    ),
                ]);
                (aggregator, registration_service, Arc::new(readiness))
            }
            Topology::Remote => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                cluster.aggregator_addr = Some(listener.local_addr().unwrap());
                cluster.start_remote_aggregator(listener).await;
                let (addr, server) = spawn_server(|listener, stop| async move {
                    tally_registration::serve_service(
                        registration_service,
                        listener,
                        stop,
                        &Options::default(),
                    )
                    .await
                    .expect("registration serves");
                })
                .await;
                cluster.servers.push(server);
                let aggregator_url = format!("http://{}", cluster.aggregator_addr.unwrap());
                let registration_url = format!("http://{addr}");
                let usage = UsageClient::connect_lazy(&aggregator_url).unwrap();
                let registration = RemoteRegistration::connect_lazy(&registration_url).unwrap();
                let readiness = AllReady(vec![
                    (
                        "aggregator",
                        Arc::new(PeerHealth::connect_lazy(&aggregator_url).unwrap()) as _,
                    ),
                    (
                        "registration",
                        Arc::new(PeerHealth::connect_lazy(&registration_url).unwrap()) as _,
                    ),
                ]);
                // Apart, as `tally gateway` runs: ownership is kept for a TTL.
                ownership = OwnershipCache::For(remote_ownership_ttl);
                (Arc::new(usage), Arc::new(registration), Arc::new(readiness))
            }
        };
        let bridge = cluster
            .open_bridge(usage.clone(), registration.clone(), with_bridge, topology)
            .await;
        let process_clock = Arc::new(tally_gateway::ProcessClock::new(cluster.clock.clone()));
        // Billing reads usage and tenancy through the same contracts the gateway calls. In one
        // process the gateway calls it in-process; apart, over gRPC, as `tally gateway
        // --billing-url` does.
        let billing = Arc::new(
            tally_billing::Billing::open(
                &tally_billing::Config::new(cluster.db.billing_url()),
                usage.clone(),
                registration.clone(),
                cluster.clock.clone(),
            )
            .await
            .expect("open billing"),
        );
        let billing: Arc<dyn BillingApi> = match topology {
            Topology::InProcess => {
                cluster.billing = Some((billing.clone(), billing.start_closer()));
                billing
            }
            Topology::Remote => {
                // serve_billing runs the closer beside the server.
                let (addr, server) = spawn_server(|listener, stop| async move {
                    tally_billing::serve_billing(billing, listener, stop)
                        .await
                        .expect("billing serves");
                })
                .await;
                cluster.servers.push(server);
                Arc::new(BillingApiClient::connect_lazy(&format!("http://{addr}")).unwrap())
            }
        };
        let (gateway, server) = spawn_server(|listener, stop| async move {
            tally_gateway::serve_backends(
                Backends {
                    usage,
                    registration,
                    clock: process_clock,
                    billing: Some(billing),
                    bridge,
                    readiness,
                    ownership,
                },
                AuthConfig {
                    public_keys_pem: vec![RS256_PUBLIC_KEY.to_vec()],
                    ..AuthConfig::development(SECRET.to_vec())
                },
                &Options::default(),
                listener,
                stop,
            )
            .await
            .expect("gateway serves");
        })
        .await;
        cluster.servers.insert(0, server);
        cluster.gateway = gateway;
        cluster.channel = Endpoint::from_shared(format!("http://{gateway}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to gateway");
        cluster.operator = cluster.clients_for(&Identity::operator());
        cluster
    }

    /// A cluster (in one process) whose folder stopped after its first fold, holding one record
    /// reported then, with the clock moved two hours on: the window it returns is past, yet not
    /// complete, so it is `ProcessingNotComplete` unless incomplete windows are allowed.
    pub async fn start_with_unfolded_window(
        backend: Backend,
    ) -> (Cluster, DateTime<Utc>, DateTime<Utc>) {
        let cluster = Cluster::start_with(backend, Topology::InProcess, false).await;
        cluster.wait_complete_through(cluster.now()).await;
        let hour = Granularity::Hourly.bucket_start(cluster.now());
        let unfolded = record(
            "unfolded",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm1",
            "1",
            hour - chrono::TimeDelta::hours(1),
        );
        cluster
            .ingestion()
            .post_usage(batch(vec![unfolded]))
            .await
            .expect("post the unfolded record");
        let end = hour + chrono::TimeDelta::hours(2);
        cluster.clock.set(end);
        (cluster, hour, end)
    }

    /// The usage bridge: idle (no commerce endpoint) unless `with_receiver`, then uploading to
    /// a reference receiver started here.
    async fn open_bridge(
        &mut self,
        usage: Arc<dyn UsageApi>,
        registration: Arc<dyn RegistrationApi>,
        with_receiver: bool,
        topology: Topology,
    ) -> Arc<dyn BridgeApi> {
        let commerce = if with_receiver {
            let receiver = Arc::new(
                Receiver::open(&tally_commerce_receiver::Config {
                    database_url: self.db.receiver_url(),
                    token: Some(RECEIVER_TOKEN.to_string()),
                    fail_rate: 0.0,
                    server: Options::default(),
                })
                .await
                .expect("open the receiver"),
            );
            let (addr, server) = spawn_server(|listener, stop| async move {
                tally_commerce_receiver::serve_receiver(
                    receiver,
                    listener,
                    stop,
                    &Options::default(),
                )
                .await
                .expect("the receiver serves");
            })
            .await;
            self.servers.push(server);
            Some((
                addr,
                Commerce {
                    endpoint: format!("http://{addr}"),
                    token: Some(RECEIVER_TOKEN.to_string()),
                },
            ))
        } else {
            None
        };
        let mut config = BridgeConfig::new(
            self.db.bridge_url(),
            commerce.as_ref().map(|(_, c)| c.clone()),
        );
        config.interval = Duration::from_millis(20);
        config.backoff_initial = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        config.upload_timeout = Duration::from_secs(10);
        let clock: Arc<dyn Clock> = self.clock.clone();
        let bridge = Arc::new(
            Bridge::open(config, usage, registration, clock)
                .await
                .expect("open the bridge"),
        );
        let Some((receiver_addr, _)) = commerce else {
            return bridge;
        };
        self.bridged = Some(BridgeSetup {
            bridge: bridge.clone(),
            receiver_addr,
        });
        match topology {
            Topology::InProcess => {
                self.servers.push(bridge.start());
                bridge
            }
            // Apart, as `tally bridge` runs: its own gRPC server (with its loop), called by the
            // gateway over gRPC.
            Topology::Remote => {
                let (addr, server) = spawn_server(|listener, stop| async move {
                    tally_bridge::serve_bridge(bridge, listener, stop)
                        .await
                        .expect("the bridge serves");
                })
                .await;
                self.servers.push(server);
                Arc::new(
                    tally_proto::bridge_api::BridgeClient::connect_lazy(&format!("http://{addr}"))
                        .unwrap(),
                )
            }
        }
    }

    /// The reference receiver's own service, presenting `token` (or nothing).
    pub async fn receiver(&self, token: Option<&str>) -> CommerceReceiverClient<AuthorizedChannel> {
        let addr = self
            .bridged
            .as_ref()
            .expect("a bridged cluster")
            .receiver_addr;
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the receiver");
        CommerceReceiverClient::new(InterceptedService::new(channel, Bearer::new(token)))
    }

    /// The receiver's CommerceIngestion, presenting `token` (or nothing).
    pub async fn commerce(
        &self,
        token: Option<&str>,
    ) -> tally_proto::commerce::v1::commerce_ingestion_client::CommerceIngestionClient<
        AuthorizedChannel,
    > {
        let addr = self
            .bridged
            .as_ref()
            .expect("a bridged cluster")
            .receiver_addr;
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the receiver");
        tally_proto::commerce::v1::commerce_ingestion_client::CommerceIngestionClient::new(
            InterceptedService::new(channel, Bearer::new(token)),
        )
    }

    /// The usage bridge of a bridged cluster.
    pub fn bridge_service(&self) -> &Arc<Bridge> {
        &self.bridged.as_ref().expect("a bridged cluster").bridge
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
        // The old listener's port frees as soon as its task is gone; a port still taken after
        // the deadline is a hang to report, not to wait out.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("cannot rebind the aggregator's address {addr} within 30 s: {e}"),
            }
        };
        self.start_remote_aggregator(listener).await;
    }

    /// Clients that present a token for `identity`.
    pub fn clients_for(&self, identity: &Identity) -> Clients {
        self.clients_with_token(Some(&sign(&identity.claims(), None)))
    }

    /// Clients that present `token` (or nothing).
    pub fn clients_with_token(&self, token: Option<&str>) -> Clients {
        Clients {
            channel: InterceptedService::new(self.channel.clone(), Bearer::new(token)),
        }
    }

    /// Clients of an operator.
    pub fn operator(&self) -> &Clients {
        &self.operator
    }

    pub fn ingestion(&self) -> UsageIngestionClient<AuthorizedChannel> {
        self.operator.ingestion()
    }

    pub fn provider(&self) -> ProviderUsageClient<AuthorizedChannel> {
        self.operator.provider()
    }

    pub fn tenant(&self) -> TenantUsageClient<AuthorizedChannel> {
        self.operator.tenant()
    }

    pub fn admin(&self) -> UsageAdminClient<AuthorizedChannel> {
        self.operator.admin()
    }

    /// The gateway's channel without any token.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The gateway's base URL for REST calls.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// GetPipelineStatus through the gateway, as an operator.
    pub async fn pipeline_status(&self) -> PipelineStatus {
        self.admin()
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await
            .expect("GetPipelineStatus")
            .into_inner()
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
        for server in self.servers.drain(..) {
            server.stop().await;
        }
        if let Some((billing, closer)) = self.billing.take() {
            closer.abort();
            drop(billing);
        }
        if let Some((aggregator, folder)) = self.in_process.take() {
            if let Some(folder) = folder {
                folder.stop().await;
            }
            drop(aggregator);
        }
        if let Some(remote) = self.remote.take() {
            remote.runtime.shutdown_background();
        }
        self.db.cleanup().await;
    }
}
