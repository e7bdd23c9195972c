//! Tally's Prometheus metrics: every metric's name and help in one place ([`NAMES`]), the
//! process's one recorder, and the functions services call where things happen, so no service
//! spells a metric name itself.
//!
//! A new service adds its metrics here: a name in [`NAMES`] and a function that records it
//! (see [`bridge_backlog`], kept for the usage bridge).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from a cached lookup to a large batch on a slow disk.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub const GRPC_REQUEST_DURATION: &str = "tally_grpc_request_duration_seconds";
pub const REST_REQUEST_DURATION: &str = "tally_rest_request_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "tally_requests_in_flight";
pub const REQUESTS_REFUSED: &str = "tally_requests_refused_total";
pub const AUTH_FAILURES: &str = "tally_auth_failures_total";
pub const HANDLER_PANICS: &str = "tally_handler_panics_total";
pub const READY: &str = "tally_ready";
pub const USAGE_BATCHES: &str = "tally_usage_batches_total";
pub const USAGE_RECORDS: &str = "tally_usage_records_total";
pub const FOLD_DURATION: &str = "tally_fold_duration_seconds";
pub const FOLD_RECORDS: &str = "tally_fold_records_total";
pub const FOLD_LAG: &str = "tally_fold_lag_seconds";
pub const BRIDGE_PENDING_BATCHES: &str = "tally_bridge_pending_batches";
pub const BRIDGE_PARKED_BATCHES: &str = "tally_bridge_parked_batches";

/// Every metric Tally exports, with its help text (listed in README, "Operations").
pub const NAMES: &[(&str, &str)] = &[
    (
        GRPC_REQUEST_DURATION,
        "gRPC calls by rpc (/package.Service/Method) and code, until the response ends",
    ),
    (
        REST_REQUEST_DURATION,
        "REST calls by route template, method and HTTP status",
    ),
    (
        REQUESTS_IN_FLIGHT,
        "Requests being served (a stream counts until it ends), by listener",
    ),
    (
        REQUESTS_REFUSED,
        "Requests refused for load (RESOURCE_EXHAUSTED / 503), by limit",
    ),
    (
        HANDLER_PANICS,
        "Handlers that panicked and were answered INTERNAL / 500, by listener",
    ),
    (
        AUTH_FAILURES,
        "Requests refused by the gateway's authentication, by reason",
    ),
    (
        READY,
        "1 while the service's database and peers answer, else 0, by service",
    ),
    (
        USAGE_BATCHES,
        "Usage batches posted, by outcome (stored, conflict, invalid, unavailable, overloaded, failed)",
    ),
    (
        USAGE_RECORDS,
        "Usage records posted, by outcome (accepted, duplicate, refused: in a batch not stored)",
    ),
    (FOLD_DURATION, "Duration of one fold pass"),
    (FOLD_RECORDS, "Records folded into the aggregates"),
    (
        FOLD_LAG,
        "Now minus complete_through: how far behind the aggregates are",
    ),
    (
        BRIDGE_PENDING_BATCHES,
        "Sealed batches the usage bridge has not had acknowledged yet",
    ),
    (
        BRIDGE_PARKED_BATCHES,
        "Batches the usage bridge parked after a permanent error",
    ),
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. `None` if something else in the
/// process installed a `metrics` recorder first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(install).as_ref()
}

/// Makes sure the recorder is installed before anything is recorded (a metric recorded
/// before would be lost).
fn installed() {
    let _ = handle();
}

fn install() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        return None;
    }
    for (name, help) in NAMES {
        metrics::describe_histogram!(*name, *help);
        metrics::describe_counter!(*name, *help);
        metrics::describe_gauge!(*name, *help);
    }
    let upkeep = handle.clone();
    // A thread, not a task: the recorder outlives any one runtime (tests start many).
    let _ = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    Some(handle)
}

/// Every metric in Prometheus text format.
pub fn render() -> String {
    match handle() {
        Some(handle) => handle.render(),
        None => String::new(),
    }
}

/// One gRPC call ended with `code` after `elapsed`.
pub fn grpc_request(rpc: String, code: &'static str, elapsed: Duration) {
    installed();
    histogram!(GRPC_REQUEST_DURATION, "rpc" => rpc, "code" => code).record(elapsed);
}

/// One REST call of `route` (its template) ended with `status` after `elapsed`.
pub fn rest_request(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    installed();
    histogram!(
        REST_REQUEST_DURATION,
        "route" => route,
        "method" => method,
        "status" => status.to_string()
    )
    .record(elapsed);
}

/// Requests being served on `listener` now.
pub fn requests_in_flight(listener: &'static str, count: usize) {
    installed();
    gauge!(REQUESTS_IN_FLIGHT, "listener" => listener).set(count as f64);
}

/// A request refused because `limit` was reached.
pub fn request_refused(limit: &'static str) {
    installed();
    counter!(REQUESTS_REFUSED, "limit" => limit).increment(1);
}

/// A handler of `server` panicked; the caller got INTERNAL / 500.
pub fn handler_panicked(server: &'static str) {
    installed();
    counter!(HANDLER_PANICS, "server" => server).increment(1);
}

/// The gateway refused a request's credentials for `reason`.
pub fn auth_failure(reason: &'static str) {
    installed();
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// Whether `service` is ready now.
pub fn ready(service: &'static str, ready: bool) {
    installed();
    gauge!(READY, "service" => service).set(if ready { 1.0 } else { 0.0 });
}

/// How a posted batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    Stored,
    /// An event id stored with other content (`EventIdConflict`).
    Conflict,
    /// Refused for what it holds (bad fields, unknown meter, too large).
    Invalid,
    /// The database did not answer (`ServiceUnavailable`).
    Unavailable,
    /// Refused for load (`TooManyRequests`).
    Overloaded,
    Failed,
}

impl BatchOutcome {
    fn label(self) -> &'static str {
        match self {
            BatchOutcome::Stored => "stored",
            BatchOutcome::Conflict => "conflict",
            BatchOutcome::Invalid => "invalid",
            BatchOutcome::Unavailable => "unavailable",
            BatchOutcome::Overloaded => "overloaded",
            BatchOutcome::Failed => "failed",
        }
    }
}

/// A batch stored with `accepted` new records and `duplicates` already stored.
pub fn batch_stored(accepted: u32, duplicates: u32) {
    installed();
    counter!(USAGE_BATCHES, "outcome" => BatchOutcome::Stored.label()).increment(1);
    counter!(USAGE_RECORDS, "outcome" => "accepted").increment(u64::from(accepted));
    counter!(USAGE_RECORDS, "outcome" => "duplicate").increment(u64::from(duplicates));
}

/// A batch of `records` records not stored, for `outcome`.
pub fn batch_refused(outcome: BatchOutcome, records: usize) {
    installed();
    counter!(USAGE_BATCHES, "outcome" => outcome.label()).increment(1);
    counter!(USAGE_RECORDS, "outcome" => "refused").increment(records as u64);
}

/// One fold pass folded `records` records in `elapsed`.
pub fn fold_pass(records: u64, elapsed: Duration) {
    installed();
    histogram!(FOLD_DURATION).record(elapsed);
    counter!(FOLD_RECORDS).increment(records);
}

/// Now minus `complete_through`.
pub fn fold_lag(lag: Duration) {
    installed();
    gauge!(FOLD_LAG).set(lag.as_secs_f64());
}

/// The usage bridge's backlog: batches sealed but not yet acknowledged, and parked ones. For the
/// bridge to call whenever it computes its status.
pub fn bridge_backlog(pending: u64, parked: u64) {
    installed();
    gauge!(BRIDGE_PENDING_BATCHES).set(pending as f64);
    gauge!(BRIDGE_PARKED_BATCHES).set(parked as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metrics_render_in_prometheus_text() {
        batch_stored(3, 1);
        batch_refused(BatchOutcome::Conflict, 2);
        fold_pass(3, Duration::from_millis(20));
        fold_lag(Duration::from_secs(2));
        grpc_request(
            "/tally.usage.v1.UsageIngestion/PostUsage".into(),
            "OK",
            Duration::from_millis(5),
        );
        let text = render();
        assert!(
            text.contains("tally_usage_records_total{outcome=\"accepted\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tally_usage_batches_total{outcome=\"conflict\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE tally_fold_duration_seconds histogram"));
        assert!(text.contains("tally_grpc_request_duration_seconds_bucket{rpc=\"/tally.usage.v1.UsageIngestion/PostUsage\",code=\"OK\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("# HELP tally_fold_lag_seconds"));
    }
}
