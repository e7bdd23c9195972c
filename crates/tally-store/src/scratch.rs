//! Scratch PostgreSQL databases, for tests and benchmarks: created with a
//! unique name on a server the caller names, dropped when done, and found again by age when a
//! run that crashed left them behind.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

use crate::error::StoreError;

/// A database of its own on a PostgreSQL server, named `{prefix}_{unix seconds}_{random}`.
#[derive(Clone, Debug)]
pub struct ScratchPostgres {
    server_url: String,
    name: String,
}

impl ScratchPostgres {
    /// Creates a database on the server of `server_url` (the URL of any database there that
    /// the user may create databases from).
    pub async fn create(server_url: &str, prefix: &str) -> Result<ScratchPostgres, StoreError> {
        let name = format!(
            "{prefix}_{}_{}",
            Utc::now().timestamp(),
            Uuid::new_v4().simple()
        );
        let conn = connect(server_url).await?;
        let created = conn
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await;
        let _ = conn.close().await;
        created?;
        Ok(ScratchPostgres {
            server_url: server_url.to_string(),
            name,
        })
    }

    /// Drops the databases of `prefix` created more than `age` ago, left behind by runs that
    /// crashed before dropping their own.
    pub async fn drop_stale(
        server_url: &str,
        prefix: &str,
        age: Duration,
    ) -> Result<(), StoreError> {
        let conn = connect(server_url).await?;
        let cutoff = Utc::now().timestamp() - age.as_secs() as i64;
        let rows = conn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT datname FROM pg_database",
            ))
            .await?;
        for row in rows {
            let name: String = row.try_get_by_index(0)?;
            if created_at(&name, prefix).is_some_and(|created| created < cutoff) {
                drop_database(&conn, &name).await;
            }
        }
        let _ = conn.close().await;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of this database: the server's URL with its database replaced.
    pub fn url(&self) -> String {
        with_database(&self.server_url, &self.name)
    }

    /// Drops the database, closing any connection still open to it. Best effort: a database
    /// left behind is found by [`ScratchPostgres::drop_stale`].
    pub async fn drop(self) {
        if let Ok(conn) = connect(&self.server_url).await {
            drop_database(&conn, &self.name).await;
            let _ = conn.close().await;
        }
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection, StoreError> {
    Ok(sea_orm::Database::connect(url).await?)
}

async fn drop_database(conn: &DatabaseConnection, name: &str) {
    let _ = conn
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// When the scratch database `name` of `prefix` was created, in Unix seconds.
fn created_at(name: &str, prefix: &str) -> Option<i64> {
    name.strip_prefix(prefix)?
        .strip_prefix('_')?
        .split('_')
        .next()?
        .parse()
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn names_carry_their_creation_time() {
        assert_eq!(
            created_at("tally_test_1764201600_ab12", "tally_test"),
            Some(1_764_201_600)
        );
        assert_eq!(created_at("tally_test_x_ab12", "tally_test"), None);
        assert_eq!(
            created_at("tally_bench_1764201600_ab12", "tally_test"),
            None
        );
        assert_eq!(
            created_at("tally_testing_1764201600_ab12", "tally_test"),
            None
        );
    }
}
