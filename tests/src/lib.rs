//! The contract-test harness: a fresh database per test (SQLite in a temp dir, or a new
//! PostgreSQL database), services started in-process on 127.0.0.1:0 with an injected clock, and
//! the generated gRPC clients to drive them.

pub mod cluster;
pub mod database;
pub mod proxy;
pub mod records;
pub mod rest;
pub mod world;

pub use cluster::{Clients, Cluster, Identity, Topology, sign, sign_rs256};
pub use database::{Backend, TestDatabase};

/// Runs a scenario once on SQLite and once on PostgreSQL. The PostgreSQL variant is an ignored
/// test, with the reason shown, unless `TALLY_TEST_POSTGRES_URL` was set when it was built.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "TALLY_TEST_POSTGRES_URL is not set")]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}
