//! `tally serve` as a child process: started on a free port, stopped with SIGTERM, measured
//! through /proc.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use tally_spawn::Listening;

pub struct Server {
    process: Listening,
    pub addr: String,
}

/// The `tally` binary built beside this one.
pub fn tally_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.parent().context("no parent dir")?.join("tally");
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p tally` (cargo xtask bench does)",
            path.display()
        );
    }
    Ok(path)
}

impl Server {
    /// Starts `tally serve` on `data_dir` (and `database_url` if given), folding every
    /// `fold_interval_ms`; returns once it listens.
    pub fn start(
        data_dir: &Path,
        database_url: Option<&str>,
        key_file: &Path,
        fold_interval_ms: u64,
    ) -> anyhow::Result<Server> {
        let fold = fold_interval_ms.to_string();
        Self::start_with(
            data_dir,
            database_url,
            key_file,
            &["--fold-interval-ms", &fold],
        )
    }

    /// Starts `tally serve` as [`Server::start`] does, with `flags` instead of the fold interval.
    pub fn start_with(
        data_dir: &Path,
        database_url: Option<&str>,
        key_file: &Path,
        flags: &[&str],
    ) -> anyhow::Result<Server> {
        let mut command = Command::new(tally_binary()?);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--jwt-secret-file")
            .arg(key_file)
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("TALLY_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let process = Listening::start(&mut command).context("start tally serve")?;
        let addr = process.addr().to_string();
        Ok(Server { process, addr })
    }

    /// Peak resident set size since the start or the last [`Server::reset_peak`], in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> f64 {
        status_mib(self.process.pid(), "VmHWM:")
    }

    /// Resident set size now, in MiB (VmRSS).
    pub fn rss_mib(&self) -> f64 {
        status_mib(self.process.pid(), "VmRSS:")
    }

    /// Where the resident memory is now: anonymous (heap), file-backed and shared (SQLite's WAL
    /// index), in MiB, for the log.
    pub fn rss_parts(&self) -> String {
        let pid = self.process.pid();
        format!(
            "RSS {:.0} MiB = anon {:.0} + file {:.0} + shmem {:.0}",
            status_mib(pid, "VmRSS:"),
            status_mib(pid, "RssAnon:"),
            status_mib(pid, "RssFile:"),
            status_mib(pid, "RssShmem:")
        )
    }

    /// Resets VmHWM to the present RSS (`clear_refs` 5), so the next peak is of one phase.
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.process.pid()), "5")
            .context("reset the server's peak RSS (/proc/PID/clear_refs)")
    }

    /// SIGTERM, then wait.
    pub fn stop(self) -> anyhow::Result<()> {
        self.process.terminate()?;
        Ok(())
    }
}

/// A memory figure of process `pid` from `/proc/PID/status` (`field` as `VmHWM:`), in MiB; 0 when
/// it cannot be read (the figure checks then fail the run).
pub fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
