//! Starting services: all in one process, or one alone, and applying their schemas.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tally_aggregator::Aggregator;
use tokio::net::TcpListener;

use tally_proto::server::{AllReady, Options, Readiness, Tls};

use crate::cli::{MigrateArgs, OpsArgs, ServeArgs, Service, TlsArgs};

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = ctrl_c.await;
            }
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
        ingest_budget_mib: 0,
        commerce_endpoint: None,
        commerce_token_file: None,
        auth: crate::cli::AuthArgs {
            secret_files: Vec::new(),
            public_key_files: Vec::new(),
            issuer: String::new(),
            audience: String::new(),
        },
        tls: TlsArgs {
            tls_cert: None,
            tls_key: None,
        },
        ops: OpsArgs {
            metrics_listen: None,
            max_in_flight: 1,
            max_connections: 1,
            otlp_endpoint: None,
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
    let billing_url = serve.database_url("billing");
    prepare_sqlite_dir(&billing_url)?;
    tally_store::BillingStore::open(&billing_url)
        .await
        .context("cannot migrate the billing database")?;
    println!("billing schema is up to date");
    let bridge_url = serve.database_url("bridge");
    prepare_sqlite_dir(&bridge_url)?;
    tally_store::BridgeStore::open(&bridge_url)
        .await
        .context("cannot migrate the bridge database")?;
    println!("bridge schema is up to date");
    Ok(())
}

/// How a server guards itself, from its flags.
fn server_options(ops: &OpsArgs, tls: Option<&TlsArgs>) -> anyhow::Result<Options> {
    let tls = match tls {
        Some(TlsArgs {
            tls_cert: Some(cert),
            tls_key: Some(key),
        }) => Some(Tls::from_pem_files(cert, key)?),
        _ => None,
    };
    Ok(Options {
        limits: ops.limits(),
        tls,
    })
}

/// Serves `/metrics` without a token on `--metrics-listen`, if given, until the returned task
/// is aborted. Bound after the main listener, so its line comes second on stdout.
async fn metrics_listener(
    what: &str,
    ops: &OpsArgs,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = ops.metrics_listen else {
        return Ok(None);
    };
    let listener = bind(&format!("{what} metrics"), addr).await?;
    Ok(Some(tokio::spawn(async move {
        if let Err(error) =
            tally_proto::server::serve_metrics(listener, std::future::pending()).await
        {
            tracing::error!(%error, "the metrics listener failed");
        }
    })))
}

/// Runs `serving` with the `--metrics-listen` listener beside it.
async fn with_metrics<F>(what: &str, ops: &OpsArgs, serving: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let metrics = metrics_listener(what, ops).await?;
    let result = serving.await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    result
}

pub(crate) async fn service(which: Service) -> anyhow::Result<()> {
    match which {
        Service::Gateway(args) => {
            let listener = bind("tally-gateway", args.listen).await?;
            let auth = crate::keys::auth_config(&args.auth, &args.data_dir)?;
            let config = tally_gateway::Config {
                aggregator_url: args.peers.aggregator_url,
                registration_url: args.peers.registration_url,
                bridge_url: args.bridge_url,
                billing_url: args.billing_url,
                auth,
                server: server_options(&args.ops, Some(&args.tls))?,
                ownership_ttl: Duration::from_secs(args.ownership_cache_seconds),
            };
            with_metrics("tally-gateway", &args.ops, async {
                Ok(tally_gateway::serve(config, listener, shutdown_signal()).await?)
            })
            .await?;
        }
        Service::Aggregator(args) => {
            prepare_sqlite_dir(&args.database_url)?;
            let mut config = tally_aggregator::Config::new(args.database_url);
            config.fold_interval = Duration::from_millis(args.fold_interval_ms.max(1));
            config.ingest_budget_bytes = args.ingest_budget_mib << 20;
            config.server = server_options(&args.ops, None)?;
            let listener = bind("tally-aggregator", args.listen).await?;
            with_metrics("tally-aggregator", &args.ops, async {
                match args.manual_clock {
                    None => Ok(tally_aggregator::serve(config, listener, shutdown_signal()).await?),
                    Some(start) => {
                        tracing::info!(%start, "running on a manual clock");
                        let clock = Arc::new(tally_core::ManualClock::new(start));
                        let aggregator = Arc::new(
                            Aggregator::open(&config, clock.clone())
                                .await
                                .context("cannot open the usage database")?,
                        );
                        let clock = Arc::new(tally_gateway::ProcessClock::new(clock));
                        Ok(tally_aggregator::serve_aggregator_with_clock(
                            aggregator,
                            clock,
                            listener,
                            shutdown_signal(),
                        )
                        .await?)
                    }
                }
            })
            .await?;
        }
        Service::Registration(args) => {
            prepare_sqlite_dir(&args.database_url)?;
            let listener = bind("tally-registration", args.listen).await?;
            let config = tally_registration::Config {
                database_url: args.database_url,
                server: server_options(&args.ops, None)?,
            };
            with_metrics("tally-registration", &args.ops, async {
                Ok(tally_registration::serve(config, listener, shutdown_signal()).await?)
            })
            .await?;
        }
        Service::Billing(args) => {
            prepare_sqlite_dir(&args.database_url)?;
            let listener = bind("tally-billing", args.listen).await?;
            let mut config = tally_billing::Config::new(args.database_url);
            config.usage_url = args.peers.aggregator_url;
            config.registration_url = args.peers.registration_url;
            config.server = server_options(&args.ops, None)?;
            with_metrics("tally-billing", &args.ops, async {
                Ok(tally_billing::serve(config, listener, shutdown_signal()).await?)
            })
            .await?;
        }
        Service::Bridge(args) => {
            // A bad endpoint or token file stops the bridge here, before it listens.
            let commerce = tally_bridge::Commerce::from_flags(
                &args.commerce_endpoint,
                args.commerce_token_file.as_deref(),
            )?;
            prepare_sqlite_dir(&args.database_url)?;
            let mut config = tally_bridge::Config::new(args.database_url, Some(commerce));
            config.server = server_options(&args.ops, None)?;
            config.clock_url = args.clock_url;
            let listener = bind("tally-bridge", args.listen).await?;
            with_metrics("tally-bridge", &args.ops, async {
                Ok(tally_bridge::serve(
                    config,
                    &args.peers.aggregator_url,
                    &args.peers.registration_url,
                    listener,
                    shutdown_signal(),
                )
                .await?)
            })
            .await?;
        }
        Service::CommerceReceiver(args) => {
            let config = receiver_config(&args)?;
            let listener = bind("tally-commerce-receiver", args.listen).await?;
            with_metrics("tally-commerce-receiver", &args.ops, async {
                Ok(tally_commerce_receiver::serve(config, listener, shutdown_signal()).await?)
            })
            .await?;
        }
    }
    Ok(())
}

/// The receiver's settings from its flags; an unreadable token file stops it here.
pub(crate) fn receiver_config(
    args: &crate::cli::ReceiverArgs,
) -> anyhow::Result<tally_commerce_receiver::Config> {
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        args.data_dir.join("receiver.db").display()
    );
    prepare_sqlite_dir(&database_url)?;
    let token = match &args.token_file {
        None => None,
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--token-file {}: cannot read it", path.display()))?
                .trim()
                .to_string(),
        ),
    };
    Ok(tally_commerce_receiver::Config {
        database_url,
        token,
        fail_rate: args.fail_rate,
        server: server_options(&args.ops, None)?,
    })
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
    let options = server_options(&args.ops, Some(&args.tls))?;
    let mut config = tally_aggregator::Config::new(usage_url);
    config.fold_interval = Duration::from_millis(args.fold_interval_ms.max(1));
    config.ingest_budget_bytes = args.ingest_budget_mib << 20;
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
    let commerce = match &args.commerce_endpoint {
        Some(endpoint) => Some(tally_bridge::Commerce::from_flags(
            endpoint,
            args.commerce_token_file.as_deref(),
        )?),
        None => None,
    };
    let bridge_url = args.database_url("bridge");
    prepare_sqlite_dir(&bridge_url)?;
    let mut bridge_config = tally_bridge::Config::new(bridge_url, commerce);
    bridge_config.interval = Duration::from_millis(args.fold_interval_ms.max(1) * 2);
    let bridge = Arc::new(
        tally_bridge::Bridge::open(
            bridge_config,
            aggregator.clone(),
            registration.clone(),
            clock.clone(),
        )
        .await
        .context("cannot open the bridge database")?,
    );
    let folder = aggregator.start_folder();
    let billing_url = args.database_url("billing");
    prepare_sqlite_dir(&billing_url)?;
    let billing = Arc::new(
        tally_billing::Billing::open(
            &tally_billing::Config::new(billing_url),
            aggregator.clone(),
            registration.clone(),
            clock.clone(),
        )
        .await
        .context("cannot open the billing database")?,
    );
    let closer = billing.start_closer();
    let bridge_loop = bridge.start();
    let readiness = AllReady(vec![
        ("usage", aggregator.clone() as Arc<dyn Readiness>),
        ("registration", registration.clone() as Arc<dyn Readiness>),
        ("billing", billing.clone() as Arc<dyn Readiness>),
        ("bridge", bridge.clone() as Arc<dyn Readiness>),
    ]);
    let backends = tally_gateway::Backends {
        ownership: tally_gateway::OwnershipCache::UntilChanged(registration.subscription_changes()),
        usage: aggregator,
        registration,
        clock: Arc::new(tally_gateway::ProcessClock::new(clock)),
        billing: Some(billing),
        bridge,
        readiness: Arc::new(readiness),
    };
    let result = with_metrics("tally", &args.ops, async {
        Ok(tally_gateway::serve_backends(backends, auth, &options, listener, shutdown).await?)
    })
    .await;
    closer.abort();
    bridge_loop.stop().await;
    folder.stop().await;
    result
}
