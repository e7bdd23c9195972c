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
        let mut command = Command::new(tally_binary()?);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--jwt-secret-file")
            .arg(key_file)
            .args(["--fold-interval-ms", &fold_interval_ms.to_string()])
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

    /// Peak resident set size so far, in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// SIGTERM, then wait.
    pub fn stop(self) -> anyhow::Result<()> {
        self.process.terminate()?;
        Ok(())
    }
}
