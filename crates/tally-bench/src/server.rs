//! `tally serve` as a child process: started on a free port, stopped with SIGTERM, measured
//! through /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

pub struct Server {
    child: Child,
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
    /// `fold_interval_ms`.
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
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().context("start tally serve")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let addr = loop {
            let line = lines
                .next()
                .context("tally serve exited before listening")??;
            if let Some((_, addr)) = line.split_once(" listening on ") {
                break addr.trim().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far, in MiB (VmHWM).
    pub fn peak_rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// SIGTERM, then wait.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
