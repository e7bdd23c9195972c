//! Sense checks on a run's figures, in every mode: a zero, a NaN or an absurd figure means the
//! harness or the server is broken, and the run fails instead of reporting it. (Whether the
//! queries returned the right rows is checked as they run: see `walk_pages`.)

use crate::Scale;
use crate::report::BackendFigures;

/// Records per second no part of Tally or its databases reaches on a small machine; a higher
/// figure is a measuring error.
const ABSURD_RATE: f64 = 10_000_000.0;
/// Latencies beyond these are failures, not slowness.
const ABSURD_FRESHNESS_MS: f64 = 60_000.0;
const ABSURD_PAGE_MS: f64 = 10_000.0;
const ABSURD_RSS_MIB: f64 = 64.0 * 1024.0;

/// What is wrong with `f`, one line each; empty if nothing is.
pub fn figures(f: &BackendFigures, scale: &Scale) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |text: String| problems.push(format!("{}: {text}", f.backend));
    let mut rate = |name: &str, value: f64| {
        if !(value.is_finite() && value > 0.0 && value < ABSURD_RATE) {
            problem(format!("{name} is {value} per second"));
        }
    };
    rate("ingest", f.ingest_records_per_second);
    rate("the storage ceiling", f.storage_ceiling_rows_per_second);
    rate("the storage limit", f.storage_limit_rows_per_second);
    rate("fold", f.fold_records_per_second);
    if f.fill_records > 0 {
        rate("ingest with folding on", f.fill_records_per_second);
    }
    let mut latency = |name: &str, p50: f64, p99: f64, absurd: f64| {
        if !(p50.is_finite() && p50 > 0.0 && p50 <= p99 && p99 < absurd) {
            problem(format!("{name} p50 / p99 are {p50} / {p99} ms"));
        }
    };
    latency(
        "freshness",
        f.freshness_p50_ms,
        f.freshness_p99_ms,
        ABSURD_FRESHNESS_MS,
    );
    latency(
        "the daily page",
        f.query_daily_p50_ms,
        f.query_daily_p99_ms,
        ABSURD_PAGE_MS,
    );
    latency(
        "the hourly page",
        f.query_hourly_p50_ms,
        f.query_hourly_p99_ms,
        ABSURD_PAGE_MS,
    );
    let mut samples = |name: &str, taken: usize, wanted: usize| {
        if taken < wanted {
            problem(format!("{taken} {name} timed of {wanted}"));
        }
    };
    samples("freshness probes", f.freshness_samples, scale.samples);
    samples("daily pages", f.query_daily_pages, scale.pages);
    samples("hourly pages", f.query_hourly_pages, scale.pages);
    if (f.records_stored as usize) < scale.stored.max(scale.records) {
        problem(format!("only {} records stored", f.records_stored));
    }
    for (name, mib) in [
        ("during ingest", f.peak_rss_ingest_mib),
        ("during fold and queries", f.peak_rss_fold_mib),
    ] {
        if !(mib > 1.0 && mib < ABSURD_RSS_MIB) {
            problems.push(format!("{}: peak RSS {name} is {mib} MiB", f.backend));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale() -> Scale {
        Scale {
            records: 1_000,
            stored: 2_000,
            samples: 10,
            pages: 5,
        }
    }

    fn sane() -> BackendFigures {
        BackendFigures {
            backend: "sqlite".into(),
            records: 1_000,
            streams: 4,
            ingest_records_per_second: 80_000.0,
            storage_ceiling_rows_per_second: 200_000.0,
            storage_limit_rows_per_second: 140_000.0,
            fold_records_per_second: 250_000.0,
            fill_records: 1_000,
            fill_records_per_second: 40_000.0,
            freshness_p50_ms: 240.0,
            freshness_p99_ms: 300.0,
            freshness_samples: 12,
            query_daily_p50_ms: 8.0,
            query_daily_p99_ms: 13.0,
            query_daily_pages: 5,
            query_daily_walks: 2,
            query_daily_rows: 3_000,
            query_hourly_p50_ms: 8.0,
            query_hourly_p99_ms: 10.0,
            query_hourly_pages: 6,
            query_hourly_walks: 1,
            query_hourly_rows: 6_000,
            query_total_quantity: "12.5".into(),
            records_stored: 2_048,
            peak_rss_ingest_mib: 150.0,
            peak_rss_fold_mib: 180.0,
            run_seconds: 10.0,
        }
    }

    #[test]
    fn sane_figures_pass() {
        assert_eq!(figures(&sane(), &scale()), Vec::<String>::new());
    }

    #[test]
    fn zero_absurd_or_missing_figures_fail() {
        type Spoil = fn(&mut BackendFigures);
        let cases: Vec<(Spoil, &str)> = vec![
            (|f| f.ingest_records_per_second = 0.0, "ingest"),
            (|f| f.fold_records_per_second = f64::NAN, "fold"),
            (|f| f.storage_limit_rows_per_second = 1e9, "storage limit"),
            (|f| f.fill_records_per_second = f64::INFINITY, "folding on"),
            (|f| f.freshness_p50_ms = 0.0, "freshness"),
            (|f| f.query_daily_p99_ms = 7.0, "daily page"),
            (|f| f.query_hourly_p99_ms = 20_000.0, "hourly page"),
            (|f| f.freshness_samples = 3, "freshness probes"),
            (|f| f.query_hourly_pages = 0, "hourly pages"),
            (|f| f.records_stored = 10, "records stored"),
            (|f| f.peak_rss_fold_mib = 0.0, "peak RSS"),
        ];
        for (spoil, expected) in cases {
            let mut f = sane();
            spoil(&mut f);
            let problems = figures(&f, &scale());
            assert_eq!(problems.len(), 1, "{expected}: {problems:?}");
            assert!(problems[0].contains(expected), "{expected}: {problems:?}");
        }
    }
}
