//! The command line, as the contract fixes it. Flags may grow; these stay.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tally_proto::server::Limits;

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Usage metering, aggregation and chargeback for private clouds"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every service in one process; the gateway (gRPC and REST) on --listen.
    Serve(ServeArgs),
    /// `serve`, plus simulated resource providers posting usage.
    Demo(ServeArgs),
    /// The gateway alone.
    Gateway(GatewayArgs),
    /// The aggregator (usage service) alone.
    Aggregator(AggregatorArgs),
    /// The registration service alone.
    Registration(RegistrationArgs),
    /// The billing service alone (reads usage and tenancy from their services).
    Billing(BillingArgs),
    /// The usage bridge alone: seals closed days and uploads them to commerce.
    Bridge(BridgeArgs),
    /// The reference upstream commerce endpoint.
    CommerceReceiver(ReceiverArgs),
    /// Prints a signed development token for the key that `serve` uses.
    Token(TokenArgs),
    /// Applies every service's schema migrations, then exits (serve also does this on start).
    Migrate(MigrateArgs),
    /// Exports a billing period's charges to a file (CSV, JSON lines, Parquet or FOCUS 1.0 CSV).
    Export(ExportArgs),
}

/// The export file formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFileFormat {
    Csv,
    Jsonl,
    Parquet,
    /// CSV in the FinOps FOCUS 1.0 column set.
    Focus,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The billing period, `2026-11`.
    #[arg(long)]
    pub period: String,
    #[arg(long, value_enum)]
    pub format: ExportFileFormat,
    /// One tenant's charges (operators; a tenant token exports its own either way).
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// The file to write (atomically: a temporary file in the same folder, then a rename).
    /// Default: `tally-charges-<period>.<ext>` (`tally-focus-<period>.csv`) in the current folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The gateway's address.
    #[arg(long, env = "TALLY_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// A bearer token.
    #[arg(long, env = "TALLY_TOKEN", conflicts_with = "data_dir")]
    pub token: Option<String>,
    /// Instead of --token: sign an operator token with the development key in this folder.
    #[arg(long, env = "TALLY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Which bearer tokens the gateway accepts. Without a key option, the development key in the
/// data folder (`signing.key`, created on first use) signs and checks HS256 tokens.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// A file holding an HS256 shared secret (repeatable).
    #[arg(
        long = "jwt-secret-file",
        env = "TALLY_JWT_SECRET_FILE",
        value_delimiter = ','
    )]
    pub secret_files: Vec<PathBuf>,
    /// A PEM file holding an RS256 public key (repeatable).
    #[arg(
        long = "jwt-public-key-file",
        env = "TALLY_JWT_PUBLIC_KEY_FILE",
        value_delimiter = ','
    )]
    pub public_key_files: Vec<PathBuf>,
    /// The `iss` tokens must carry.
    #[arg(long = "jwt-issuer", env = "TALLY_JWT_ISSUER", default_value = "tally")]
    pub issuer: String,
    /// The `aud` tokens must carry.
    #[arg(
        long = "jwt-audience",
        env = "TALLY_JWT_AUDIENCE",
        default_value = "tally"
    )]
    pub audience: String,
}

/// What every server command shares: load limits, metrics and traces.
#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Also serve GET /metrics (Prometheus text) with no token on this address, for a scraper
    /// on a private network. (The main listener serves /metrics too; on the gateway it needs an
    /// operator token.)
    #[arg(long, env = "TALLY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Requests served at once; more are refused with RESOURCE_EXHAUSTED (REST: 503).
    #[arg(long, env = "TALLY_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, env = "TALLY_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Send traces to this OpenTelemetry collector over OTLP/gRPC (e.g. http://127.0.0.1:4317);
    /// needs a build with the `otlp` feature.
    #[arg(long, env = "TALLY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl OpsArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_in_flight: self.max_in_flight.max(1),
            max_connections: self.max_connections.max(1),
            ..Limits::default()
        }
    }
}

/// Serving over TLS: gRPC and REST on the same listener.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first) to serve TLS with.
    #[arg(long, env = "TALLY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TALLY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the gateway listens.
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Folder of the embedded SQLite databases and the development signing key.
    #[arg(long, env = "TALLY_DATA_DIR", default_value = "./tally-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL URL to use instead of SQLite (postgres://user@host/db).
    #[arg(long, env = "TALLY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How often the aggregator folds new records, in milliseconds.
    #[arg(long, env = "TALLY_FOLD_INTERVAL_MS", default_value_t = 250)]
    pub fold_interval_ms: u64,
    /// Runs every service on a simulated clock that starts at this instant (RFC 3339) and moves
    /// only when an operator advances it (tally.clock.v1 AdvanceClock).
    #[arg(long, env = "TALLY_MANUAL_CLOCK", value_parser = parse_utc)]
    pub manual_clock: Option<chrono::DateTime<chrono::Utc>>,
    /// MiB of posted batches being stored at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TALLY_INGEST_BUDGET_MIB", default_value_t = 256)]
    pub ingest_budget_mib: usize,
    /// The upstream commerce endpoint the usage bridge uploads closed days to; without it the
    /// bridge stays idle (state NotConfigured).
    #[arg(long, env = "TALLY_COMMERCE_ENDPOINT")]
    pub commerce_endpoint: Option<String>,
    /// A file holding the bearer token sent to the commerce endpoint.
    #[arg(
        long,
        env = "TALLY_COMMERCE_TOKEN_FILE",
        requires = "commerce_endpoint"
    )]
    pub commerce_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}

fn parse_utc(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}"))
}

impl ServeArgs {
    /// The database URL of `service` (`usage` or `registration`).
    pub fn database_url(&self, service: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join(format!("{service}.db")).display()
            ),
        }
    }
}

/// Where a service finds the usage and registration services it calls, when they run apart.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// The aggregator's gRPC address.
    #[arg(
        long,
        env = "TALLY_AGGREGATOR_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub aggregator_url: String,
    /// The registration service's gRPC address.
    #[arg(
        long,
        env = "TALLY_REGISTRATION_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub registration_url: String,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "tally-gateway", version, about = "Tally's gateway alone")]
pub struct GatewayArgs {
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub peers: PeerArgs,
    /// The usage bridge's gRPC address.
    #[arg(
        long,
        env = "TALLY_BRIDGE_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    pub bridge_url: String,
    /// The billing service's gRPC address; without it the billing routes answer that no billing
    /// service is configured.
    #[arg(long, env = "TALLY_BILLING_URL")]
    pub billing_url: Option<String>,
    /// Where the development signing key lives when no key option is given.
    #[arg(long, env = "TALLY_DATA_DIR", default_value = "./tally-data")]
    pub data_dir: PathBuf,
    /// Seconds the gateway trusts what it learned about subscription ownership (0: ask every
    /// time); a deleted subscription's tenant keeps access for at most this long.
    #[arg(long, env = "TALLY_OWNERSHIP_CACHE_SECONDS", default_value_t = tally_gateway::OWNERSHIP_TTL.as_secs())]
    pub ownership_cache_seconds: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tally-aggregator",
    version,
    about = "Tally's usage service alone"
)]
pub struct AggregatorArgs {
    /// Loopback by default: put the gateway in front of it.
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
    #[arg(
        long,
        env = "TALLY_DATABASE_URL",
        default_value = "sqlite://./tally-data/usage.db?mode=rwc"
    )]
    pub database_url: String,
    #[arg(long, env = "TALLY_FOLD_INTERVAL_MS", default_value_t = 250)]
    pub fold_interval_ms: u64,
    /// MiB of posted batches being stored at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TALLY_INGEST_BUDGET_MIB", default_value_t = 256)]
    pub ingest_budget_mib: usize,
    /// Runs on a simulated clock that starts at this instant (RFC 3339), and serves it
    /// (tally.clock.v1) beside the usage services: AdvanceClock moves it, and a bridge run alone
    /// follows it with --clock-url.
    #[arg(long, env = "TALLY_MANUAL_CLOCK", value_parser = parse_utc)]
    pub manual_clock: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tally-registration",
    version,
    about = "Tally's registration service alone"
)]
pub struct RegistrationArgs {
    /// Loopback by default: put the gateway in front of it.
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50053")]
    pub listen: SocketAddr,
    #[arg(
        long,
        env = "TALLY_DATABASE_URL",
        default_value = "sqlite://./tally-data/registration.db?mode=rwc"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tally-billing",
    version,
    about = "Tally's billing service alone"
)]
pub struct BillingArgs {
    /// Loopback by default: put the gateway in front of it.
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50054")]
    pub listen: SocketAddr,
    #[arg(
        long,
        env = "TALLY_DATABASE_URL",
        default_value = "sqlite://./tally-data/billing.db?mode=rwc"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub peers: PeerArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "tally-bridge", version, about = "Tally's usage bridge alone")]
pub struct BridgeArgs {
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50055")]
    pub listen: SocketAddr,
    /// The bridge's own tables.
    #[arg(
        long,
        env = "TALLY_DATABASE_URL",
        default_value = "sqlite://./tally-data/bridge.db?mode=rwc"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub peers: PeerArgs,
    /// The upstream commerce endpoint, e.g. http://127.0.0.1:50070.
    #[arg(long, env = "TALLY_COMMERCE_ENDPOINT")]
    pub commerce_endpoint: String,
    /// A file holding the bearer token sent to the commerce endpoint.
    #[arg(long, env = "TALLY_COMMERCE_TOKEN_FILE")]
    pub commerce_token_file: Option<PathBuf>,
    /// Follows the clock (tally.clock.v1) served at this address, e.g. an aggregator started
    /// with --manual-clock, instead of the real clock.
    #[arg(long, env = "TALLY_CLOCK_URL")]
    pub clock_url: Option<String>,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tally-commerce-receiver",
    version,
    about = "The reference commerce endpoint: stores uploaded usage once per batch and reports totals"
)]
pub struct ReceiverArgs {
    #[arg(long, env = "TALLY_RECEIVER_LISTEN", default_value = "127.0.0.1:50070")]
    pub listen: SocketAddr,
    /// Folder of the receiver's SQLite database (receiver.db).
    #[arg(
        long,
        env = "TALLY_RECEIVER_DATA_DIR",
        default_value = "./commerce-data"
    )]
    pub data_dir: PathBuf,
    /// Fraction (0..1) of uploads refused with UNAVAILABLE at random.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Uploads must carry the bearer token held in this file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub ops: OpsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    Operator,
    ResourceProvider,
    DelegatedProvider,
    Tenant,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[arg(long, value_enum)]
    pub role: TokenRole,
    /// The caller's directory tenant (`tid`); required for `tenant`.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// The provider subscription a delegated provider acts for; required for `delegated-provider`.
    #[arg(long)]
    pub provider_subscription_id: Option<String>,
    /// Folder holding the development key (`signing.key`).
    #[arg(
        long,
        env = "TALLY_DATA_DIR",
        default_value = "./tally-data",
        conflicts_with = "key_file"
    )]
    pub data_dir: PathBuf,
    /// An HS256 secret file to sign with instead.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Hours the token stays valid.
    #[arg(long, default_value_t = 24)]
    pub hours: i64,
    /// The `sub` claim.
    #[arg(long, default_value = "tally-cli")]
    pub subject: String,
    #[arg(long, default_value = "tally")]
    pub issuer: String,
    #[arg(long, default_value = "tally")]
    pub audience: String,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Folder of the embedded SQLite databases.
    #[arg(long, env = "TALLY_DATA_DIR", default_value = "./tally-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL URL to migrate instead of SQLite.
    #[arg(long, env = "TALLY_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl Command {
    /// The OTLP endpoint traces go to, if the command serves and one is configured.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        match self {
            Command::Serve(args) | Command::Demo(args) => args.ops.otlp_endpoint.as_deref(),
            Command::Gateway(args) => args.ops.otlp_endpoint.as_deref(),
            Command::Aggregator(args) => args.ops.otlp_endpoint.as_deref(),
            Command::Registration(args) => args.ops.otlp_endpoint.as_deref(),
            Command::Billing(args) => args.ops.otlp_endpoint.as_deref(),
            Command::Bridge(args) => args.ops.otlp_endpoint.as_deref(),
            Command::CommerceReceiver(args) => args.ops.otlp_endpoint.as_deref(),
            Command::Token(_) | Command::Migrate(_) | Command::Export(_) => None,
        }
    }
}

/// One service, as the thin binaries run it.
#[derive(Debug)]
pub enum Service {
    Gateway(GatewayArgs),
    Aggregator(AggregatorArgs),
    Registration(RegistrationArgs),
    Billing(BillingArgs),
    Bridge(BridgeArgs),
    CommerceReceiver(ReceiverArgs),
}

impl Service {
    /// The OTLP endpoint traces go to, if one is configured.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        match self {
            Service::Gateway(args) => args.ops.otlp_endpoint.as_deref(),
            Service::Aggregator(args) => args.ops.otlp_endpoint.as_deref(),
            Service::Registration(args) => args.ops.otlp_endpoint.as_deref(),
            Service::Billing(args) => args.ops.otlp_endpoint.as_deref(),
            Service::Bridge(args) => args.ops.otlp_endpoint.as_deref(),
            Service::CommerceReceiver(args) => args.ops.otlp_endpoint.as_deref(),
        }
    }
}
