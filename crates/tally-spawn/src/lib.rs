//! Starting a Tally binary as a child process and learning its address from the line it prints
//! once it listens (`tally listening on 127.0.0.1:40123`, written with [`listening_line`] by `tally`'s `serve.rs`), so
//! callers can pass `--listen 127.0.0.1:0`. Used by the binaries' tests, the benchmark and
//! xtask; std only, so xtask stays light.

// Request paths never panic: errors are typed. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::io::{self, BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What separates the service's name from its address in the listening line.
const LISTENING_ON: &str = " listening on ";

/// The line a Tally server prints on stdout once it listens; [`listening_address`] reads it back.
pub fn listening_line(server: &str, addr: SocketAddr) -> String {
    format!("{server}{LISTENING_ON}{addr}")
}

/// The address in a listening line, if `line` is one.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    let (_, addr) = line.split_once(LISTENING_ON)?;
    addr.trim().parse().ok()
}

/// A child process that has said where it listens. Killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Listening {
    child: Child,
    addr: SocketAddr,
}

impl Listening {
    /// Spawns `command` with its stdout piped and reads stdout until the listening line; the
    /// rest of stdout is drained on a thread, so the child never blocks on a full pipe.
    pub fn start(command: &mut Command) -> io::Result<Listening> {
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let Some(stdout) = child.stdout.take() else {
            return Err(io::Error::other("the child's stdout is not piped"));
        };
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = listening_address(&line) {
                        break addr;
                    }
                }
                Some(Err(e)) => {
                    kill(&mut child);
                    return Err(e);
                }
                None => {
                    kill(&mut child);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the process exited before it said where it listens",
                    ));
                }
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Listening { child, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM, so it shuts down cleanly) and waits until it has.
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        self.child.wait()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Calls `attempt` until it returns `Some`, pausing `pause` between calls; `None` once
/// `timeout` has passed. For waiting on something a child process does in its own time.
pub fn poll_until<T>(
    timeout: Duration,
    pause: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(done) = attempt() {
            return Some(done);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_of_a_listening_line() {
        assert_eq!(
            listening_address("tally listening on 127.0.0.1:40123"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            listening_address("tally-aggregator listening on [::1]:50051\r"),
            Some("[::1]:50051".parse().unwrap())
        );
        assert_eq!(listening_address("usage schema is up to date"), None);
        assert_eq!(listening_address("tally listening on somewhere"), None);
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            listening_address(&listening_line("tally-bridge", addr)),
            Some(addr)
        );
    }

    #[test]
    fn learns_the_address_a_child_prints_and_stops_it() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo starting; echo 'x listening on 127.0.0.1:9'; exec sleep 30",
        ]);
        let child = Listening::start(&mut command).unwrap();
        assert_eq!(child.addr(), "127.0.0.1:9".parse().unwrap());
        let status = child.terminate().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn a_child_that_never_listens_is_an_error() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo nothing to see"]);
        let error = Listening::start(&mut command).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn polling_stops_at_success_or_deadline() {
        let mut calls = 0;
        let found = poll_until(Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(found, Some(3));
        let never: Option<()> =
            poll_until(Duration::from_millis(30), Duration::from_millis(10), || {
                None
            });
        assert_eq!(never, None);
    }
}
