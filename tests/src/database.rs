//! A fresh, isolated database per test: SQLite files in a temporary directory, or a scratch
//! PostgreSQL database of its own ([`tally_store::scratch::ScratchPostgres`]).

use std::time::Duration;

use tally_store::scratch::ScratchPostgres;
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The environment variable naming the PostgreSQL server tests create databases on.
pub const POSTGRES_URL_VAR: &str = "TALLY_TEST_POSTGRES_URL";

/// What test databases are called on the PostgreSQL server.
const POSTGRES_PREFIX: &str = "tally_test";
/// Test databases older than this were left behind by a test that panicked.
const STALE_AFTER: Duration = Duration::from_secs(3_600);

pub struct TestDatabase {
    pub backend: Backend,
    dir: TempDir,
    postgres: Option<ScratchPostgres>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let server = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
                    panic!("{POSTGRES_URL_VAR} must name a PostgreSQL server for PostgreSQL tests")
                });
                let _ = ScratchPostgres::drop_stale(&server, POSTGRES_PREFIX, STALE_AFTER).await;
                Some(
                    ScratchPostgres::create(&server, POSTGRES_PREFIX)
                        .await
                        .expect("create test database"),
                )
            }
        };
        TestDatabase {
            backend,
            dir,
            postgres,
        }
    }

    /// The usage service's database URL.
    pub fn usage_url(&self) -> String {
        self.url("usage")
    }

    /// The registration service's database URL.
    pub fn registration_url(&self) -> String {
        self.url("registration")
    }

    /// The billing service's database URL.
    pub fn billing_url(&self) -> String {
        self.url("billing")
    }

    fn url(&self, service: &str) -> String {
        match &self.postgres {
            None => format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join(format!("{service}.db")).display()
            ),
            Some(scratch) => scratch.url(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Drops the PostgreSQL database (SQLite's goes with the temp dir).
    pub async fn cleanup(self) {
        if let Some(scratch) = self.postgres {
            scratch.drop().await;
        }
    }
}
