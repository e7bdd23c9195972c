//! The results: a table for people, JSON for tools, both headed with the machine, the commit and
//! the crate versions.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Serialize)]
pub struct BackendFigures {
    pub backend: String,
    pub records: usize,
    pub streams: usize,
    pub ingest_records_per_second: f64,
    /// The same rows bulk-loaded: one transaction (SQLite) or one COPY (PostgreSQL).
    pub storage_ceiling_rows_per_second: f64,
    /// The same rows committed as the server commits them, with batch rows and the conflict check.
    pub storage_limit_rows_per_second: f64,
    pub fold_records_per_second: f64,
    /// Records streamed with the folder running beside ingest (the fill up to the query scale).
    pub fill_records: usize,
    pub fill_records_per_second: f64,
    pub freshness_p50_ms: f64,
    pub freshness_p99_ms: f64,
    pub freshness_samples: usize,
    pub query_daily_p50_ms: f64,
    pub query_daily_p99_ms: f64,
    /// Full pages timed, over `query_daily_walks` walks of the whole key range.
    pub query_daily_pages: usize,
    pub query_daily_walks: usize,
    /// Rows of one walk, checked against the workload.
    pub query_daily_rows: u64,
    pub query_hourly_p50_ms: f64,
    pub query_hourly_p99_ms: f64,
    pub query_hourly_pages: usize,
    pub query_hourly_walks: usize,
    pub query_hourly_rows: u64,
    /// The total quantity every walk found, checked against the workload.
    pub query_total_quantity: String,
    pub records_stored: u64,
    pub peak_rss_ingest_mib: f64,
    pub peak_rss_fold_mib: f64,
    /// Wall time of this backend's whole run.
    pub run_seconds: f64,
}

#[derive(Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mib: u64,
    pub cpu: String,
}

#[derive(Serialize)]
pub struct Report {
    pub quick: bool,
    pub machine: Machine,
    pub commit: String,
    pub crates: Vec<(String, String)>,
    pub profile: &'static str,
    pub backends: Vec<BackendFigures>,
}

pub(crate) fn machine() -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_mib: memory_kb / 1024,
        cpu,
    }
}

fn commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = run(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head}+changes")
    } else {
        head
    }
}

/// Versions of the crates that matter, read from Cargo.lock.
fn crates() -> Vec<(String, String)> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .unwrap_or_default();
    let wanted = [
        "tonic",
        "prost",
        "sea-orm",
        "sqlx",
        "libsqlite3-sys",
        "tokio",
        "hyper",
    ];
    let mut found = vec![("tally".to_string(), env!("CARGO_PKG_VERSION").to_string())];
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), &name)
            && wanted.contains(&n.as_str())
            && !found.iter().any(|(f, _)| f == n)
        {
            found.push((n.clone(), v.trim_matches('"').to_string()));
        }
    }
    found
}

impl Report {
    pub fn new(quick: bool, backends: Vec<BackendFigures>) -> Self {
        Report {
            quick,
            machine: machine(),
            commit: commit(),
            crates: crates(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            backends,
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Tally benchmark{}",
            if self.quick {
                " (--quick: harness check, not figures)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "machine: {} cores, {} MiB, {}",
            m.cores, m.memory_mib, m.cpu
        );
        let _ = writeln!(out, "commit: {}  profile: {}", self.commit, self.profile);
        let versions: Vec<String> = self
            .crates
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        let _ = writeln!(out, "crates: {}", versions.join(", "));
        let _ = writeln!(out);
        let _ = write!(out, "{:<40}", "");
        for b in &self.backends {
            let _ = write!(out, "{:>16}", b.backend);
        }
        let _ = writeln!(out);
        let row = |out: &mut String, label: &str, value: &dyn Fn(&BackendFigures) -> String| {
            let _ = write!(out, "{label:<40}");
            for b in &self.backends {
                let _ = write!(out, "{:>16}", value(b));
            }
            let _ = writeln!(out);
        };
        row(&mut out, "records ingested, folding held back", &|b| {
            b.records.to_string()
        });
        row(&mut out, "ingest (records/s, acked durable)", &|b| {
            format!("{:.0}", b.ingest_records_per_second)
        });
        row(&mut out, "storage ceiling (rows/s, bulk load)", &|b| {
            format!("{:.0}", b.storage_ceiling_rows_per_second)
        });
        row(&mut out, "storage limit (rows/s, server commits)", &|b| {
            format!("{:.0}", b.storage_limit_rows_per_second)
        });
        row(&mut out, "ingest / limit", &|b| {
            format!(
                "{:.2}",
                b.ingest_records_per_second / b.storage_limit_rows_per_second
            )
        });
        row(&mut out, "fold (records/s)", &|b| {
            format!("{:.0}", b.fold_records_per_second)
        });
        row(&mut out, "ingest with folding on (records/s)", &|b| {
            format!("{:.0}", b.fill_records_per_second)
        });
        row(&mut out, "freshness probes", &|b| {
            b.freshness_samples.to_string()
        });
        row(&mut out, "freshness p50 / p99 (ms)", &|b| {
            format!("{:.0} / {:.0}", b.freshness_p50_ms, b.freshness_p99_ms)
        });
        row(&mut out, "daily page p50 / p99 (ms)", &|b| {
            format!("{:.1} / {:.1}", b.query_daily_p50_ms, b.query_daily_p99_ms)
        });
        row(&mut out, "hourly page p50 / p99 (ms)", &|b| {
            format!(
                "{:.1} / {:.1}",
                b.query_hourly_p50_ms, b.query_hourly_p99_ms
            )
        });
        row(&mut out, "pages timed daily / hourly", &|b| {
            format!("{} / {}", b.query_daily_pages, b.query_hourly_pages)
        });
        row(&mut out, "records stored at query time", &|b| {
            b.records_stored.to_string()
        });
        row(&mut out, "peak RSS ingest / fold+query (MiB)", &|b| {
            format!("{:.0} / {:.0}", b.peak_rss_ingest_mib, b.peak_rss_fold_mib)
        });
        row(&mut out, "run time (s)", &|b| {
            format!("{:.0}", b.run_seconds)
        });
        out
    }
}
