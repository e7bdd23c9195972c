//! Starting services: all in one process, or one alone, and applying their schemas.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tally_aggregator::Aggregator;
use tokio::net::TcpListener;

use crate::cli::{MigrateArgs, ServeArgs, Service};

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Binds `addr` and says where on stdout (port 0 picks a free port; scripts read this line).
pub(crate) async fn bind(what: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "{}",
        tally_spawn::listening_line(what, listener.local_addr()?)
    );
    Ok(listener)
}

pub(crate) async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let serve = ServeArgs {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: args.data_dir,
        database_url: args.database_url,
        fold_interval_ms: 0,
        manual_clock: None,
        auth: crate::cli::AuthArgs {
            secret_files: Vec::new(),
            public_key_files: Vec::new(),
            issuer: String::new(),
            audience: String::new(),
        },
    };
    let usage_url = serve.database_url("usage");
    prepare_sqlite_dir(&usage_url)?;
    tally_store::UsageStore::open(&usage_url)
        .await
        .context("cannot migrate the usage database")?;
    println!("usage schema is up to date");
    let registration_url = serve.database_url("registration");
    prepare_sqlite_dir(&registration_url)?;
    tally_store::RegistrationStore::open(&registration_url)
        .await
        .context("cannot migrate the registration database")?;
    println!("registration schema is up to date");
    Ok(())
}

pub(crate) async fn service(which: Service) -> anyhow::Result<()> {
    match which {
        Service::Gateway(args) => {
            let listener = bind("tally-gateway", args.listen).await?;
            let auth = crate::keys::auth_config(&args.auth, &args.data_dir)?;
            tally_gateway::serve(
                tally_gateway::Config {
                    aggregator_url: args.aggregator_url,
                    registration_url: args.registration_url,
                    auth,
                },
                listener,
                shutdown_signal(),
            )
            .await?;
        }
        Service::Aggregator(args) => {
            prepare_sqlite_dir(&args.database_url)?;
            let mut config = tally_aggregator::Config::new(args.database_url);
            config.fold_interval = Duration::from_millis(args.fold_interval_ms.max(1));
            let listener = bind("tally-aggregator", args.listen).await?;
            tally_aggregator::serve(config, listener, shutdown_signal()).await?;
        }
        Service::Registration(args) => {
            prepare_sqlite_dir(&args.database_url)?;
            let listener = bind("tally-registration", args.listen).await?;
            tally_registration::serve(
                tally_registration::Config {
                    database_url: args.database_url,
                },
                listener,
                shutdown_signal(),
            )
            .await?;
        }
    }
    Ok(())
}

/// Creates the folder of a `sqlite://` URL's file, so a fresh machine needs no setup.
fn prepare_sqlite_dir(url: &str) -> anyhow::Result<()> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    Ok(())
}

/// Every service in one process: the gateway on `listener`, calling the aggregator and the
/// registration service in-process.
pub(crate) async fn serve_all(
    args: &ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let auth = crate::keys::auth_config(&args.auth, &args.data_dir)?;
    let usage_url = args.database_url("usage");
    prepare_sqlite_dir(&usage_url)?;
    let mut config = tally_aggregator::Config::new(usage_url);
    config.fold_interval = Duration::from_millis(args.fold_interval_ms.max(1));
    let clock: Arc<dyn tally_core::Clock> = match args.manual_clock {
        Some(start) => {
            tracing::info!(%start, "running on a manual clock");
            Arc::new(tally_core::ManualClock::new(start))
        }
        None => Arc::new(tally_core::SystemClock),
    };
    let aggregator = Arc::new(
        Aggregator::open(&config, clock.clone())
            .await
            .context("cannot open the usage database")?,
    );
    let registration_url = args.database_url("registration");
    prepare_sqlite_dir(&registration_url)?;
    let registration = Arc::new(
        tally_registration::RegistrationService::open(&registration_url)
            .await
            .context("cannot open the registration database")?,
    );
    let folder = aggregator.start_folder();
    let result = tally_gateway::serve_backends(
        tally_gateway::Backends {
            usage: aggregator,
            registration,
            clock: Arc::new(tally_gateway::ProcessClock::new(clock)),
        },
        auth,
        listener,
        shutdown,
    )
    .await;
    folder.stop().await;
    result?;
    Ok(())
}
