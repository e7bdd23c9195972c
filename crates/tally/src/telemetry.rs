//! Where logs and traces go: log lines to stderr (filtered by `RUST_LOG`), and with
//! `--otlp-endpoint` (a build with the `otlp` feature) every span, one per request among them,
//! to an OpenTelemetry collector over OTLP/gRPC.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] sends what is still buffered.
pub(crate) struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// What the log lines show: `RUST_LOG`, or Tally's own info and others' warnings.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(QUIET_DEPENDENCIES))
}

const QUIET_DEPENDENCIES: &str = "info,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn,tonic=warn";

fn stderr_lines<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::stderr)
}

/// Installs the process's subscriber. Call inside the runtime: the OTLP exporter's channel
/// runs on it.
pub(crate) fn init(otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    // Each output filters for itself: RUST_LOG quiets the log lines, never the traces.
    let registry = tracing_subscriber::registry().with(stderr_lines().with_filter(filter()));
    match otlp_endpoint {
        None => {
            let _ = registry.try_init();
            Ok(Telemetry {
                #[cfg(feature = "otlp")]
                provider: None,
            })
        }
        #[cfg(feature = "otlp")]
        Some(endpoint) => {
            use opentelemetry::trace::TracerProvider as _;
            use opentelemetry_otlp::WithExportConfig as _;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("tally")
                        .build(),
                )
                .build();
            let tracer = provider.tracer("tally");
            let _ = registry
                .with(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(EnvFilter::new(QUIET_DEPENDENCIES)),
                )
                .try_init();
            tracing::info!(endpoint, "sending traces over OTLP");
            Ok(Telemetry {
                provider: Some(provider),
            })
        }
        #[cfg(not(feature = "otlp"))]
        Some(_) => anyhow::bail!(
            "--otlp-endpoint needs a tally built with the `otlp` feature (cargo build -p tally --features otlp)"
        ),
    }
}

impl Telemetry {
    /// Sends the spans still buffered.
    pub(crate) fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("traces not all sent: {error}");
        }
    }
}
