//! A fresh, isolated database per test.

use chrono::Utc;
use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The environment variable naming the PostgreSQL server tests create databases on.
pub const POSTGRES_URL_VAR: &str = "TALLY_TEST_POSTGRES_URL";

pub struct TestDatabase {
    pub backend: Backend,
    dir: TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
                    panic!("{POSTGRES_URL_VAR} must name a PostgreSQL server for PostgreSQL tests")
                });
                let name = format!(
                    "tally_test_{}_{}",
                    Utc::now().timestamp(),
                    uuid::Uuid::new_v4().simple()
                );
                let conn = Database::connect(admin.as_str())
                    .await
                    .expect("connect to PostgreSQL");
                drop_stale_databases(&conn).await;
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                Some((admin, name))
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

    fn url(&self, service: &str) -> String {
        match &self.postgres {
            None => format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join(format!("{service}.db")).display()
            ),
            Some((admin, name)) => with_database(admin, name),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Drops the PostgreSQL database (SQLite's goes with the temp dir).
    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(conn) = Database::connect(admin.as_str()).await
        {
            let _ = conn
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = conn.close().await;
        }
    }
}

/// `postgres://user@host:port/db?x` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Databases left behind by tests that panicked more than an hour ago.
async fn drop_stale_databases(conn: &sea_orm::DatabaseConnection) {
    let Ok(rows) = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT datname FROM pg_database WHERE datname LIKE 'tally_test_%'",
        ))
        .await
    else {
        return;
    };
    let cutoff = Utc::now().timestamp() - 3_600;
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else {
            continue;
        };
        let created = name
            .strip_prefix("tally_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<i64>().ok());
        if created.is_some_and(|t| t < cutoff) {
            let _ = conn
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1", "x"),
            "postgres://127.0.0.1/x"
        );
        assert_eq!(
            with_database("postgres://h/test?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
