//! The `tally` command: logging, the runtime, and which subcommand runs what.

use crate::cli::{Cli, Command, Service};
use crate::serve::{bind, migrate, serve_all, service, shutdown_signal};

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the `tally` command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging();
    runtime()?.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let listener = bind("tally", args.listen).await?;
                serve_all(&args, listener, shutdown_signal()).await
            }
            Command::Demo(args) => crate::demo::run(args).await,
            Command::Gateway(args) => service(Service::Gateway(args)).await,
            Command::Aggregator(args) => service(Service::Aggregator(args)).await,
            Command::Registration(args) => service(Service::Registration(args)).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Token(args) => crate::keys::token(args),
        }
    })
}

/// Runs one service alone (the thin per-service binaries).
pub fn run_service(which: Service) -> anyhow::Result<()> {
    init_logging();
    runtime()?.block_on(service(which))
}
