//! The `tally` command: logging, the runtime, and which subcommand runs what.

use crate::cli::{Cli, Command, Service};
use crate::serve::{bind, migrate, serve_all, service, shutdown_signal};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// With the `failpoints` feature, the failpoints the FAILPOINTS variable names (crash tests).
fn failpoints() {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
}

/// Runs the `tally` command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    failpoints();
    let runtime = runtime()?;
    let telemetry = {
        let _entered = runtime.enter();
        crate::telemetry::init(cli.command.otlp_endpoint())?
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let listener = bind("tally", args.listen).await?;
                serve_all(&args, listener, shutdown_signal()).await
            }
            Command::Demo(args) => crate::demo::run(args).await,
            Command::Gateway(args) => service(Service::Gateway(args)).await,
            Command::Aggregator(args) => service(Service::Aggregator(args)).await,
            Command::Registration(args) => service(Service::Registration(args)).await,
            Command::Billing(args) => service(Service::Billing(args)).await,
            Command::Bridge(args) => service(Service::Bridge(args)).await,
            Command::CommerceReceiver(args) => service(Service::CommerceReceiver(args)).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Token(args) => crate::keys::token(args),
            Command::Export(args) => crate::export::run(args).await,
        }
    });
    telemetry.shutdown();
    result
}

/// Runs one service alone (the thin per-service binaries).
pub fn run_service(which: Service) -> anyhow::Result<()> {
    failpoints();
    let runtime = runtime()?;
    let telemetry = {
        let _entered = runtime.enter();
        crate::telemetry::init(which.otlp_endpoint())?
    };
    let result = runtime.block_on(service(which));
    telemetry.shutdown();
    result
}
