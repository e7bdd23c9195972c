//! The command line, as the contract fixes it. Flags may grow; these stay.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Prints a signed development token for the key that `serve` uses.
    Token(TokenArgs),
    /// Applies every service's schema migrations, then exits (serve also does this on start).
    Migrate(MigrateArgs),
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
    #[command(flatten)]
    pub auth: AuthArgs,
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

#[derive(Debug, Clone, Parser)]
#[command(name = "tally-gateway", version, about = "Tally's gateway alone")]
pub struct GatewayArgs {
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
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
    /// Where the development signing key lives when no key option is given.
    #[arg(long, env = "TALLY_DATA_DIR", default_value = "./tally-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub auth: AuthArgs,
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

/// One service, as the thin binaries run it.
#[derive(Debug)]
pub enum Service {
    Gateway(GatewayArgs),
    Aggregator(AggregatorArgs),
    Registration(RegistrationArgs),
}
