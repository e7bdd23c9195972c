//! Tally's schema as sea-orm migrations. Each service owns its tables and migrates them with its
//! own migrator and its own bookkeeping table, so services can be deployed and upgraded apart.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub use sea_orm_migration::MigratorTrait;

mod m20261127_000001_usage;
mod m20261127_000002_registration;
mod m20261127_000003_batch_usage_start;
mod m20261127_000004_billing;

/// The usage service's tables (`usage_*`).
pub struct UsageMigrator;

impl MigratorTrait for UsageMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_usage::Migration),
            Box::new(m20261127_000003_batch_usage_start::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "usage_migrations".into_iden()
    }
}

/// The registration service's tables (`registration_*`, `tenancy_*`).
pub struct RegistrationMigrator;

impl MigratorTrait for RegistrationMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261127_000002_registration::Migration)]
    }

    fn migration_table_name() -> DynIden {
        "registration_migrations".into_iden()
    }
}

/// The billing service's tables (`billing_*`).
pub struct BillingMigrator;

impl MigratorTrait for BillingMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261127_000004_billing::Migration)]
    }

    fn migration_table_name() -> DynIden {
        "billing_migrations".into_iden()
    }
}

/// The engines Tally runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// The engine `manager` migrates.
pub(crate) fn engine(manager: &SchemaManager<'_>) -> Result<Engine, DbErr> {
    match manager.get_database_backend() {
        DatabaseBackend::Sqlite => Ok(Engine::Sqlite),
        DatabaseBackend::Postgres => Ok(Engine::Postgres),
        other => Err(DbErr::Migration(format!(
            "unsupported database backend {other:?}"
        ))),
    }
}

/// Runs hand-written statements in order. The storage-critical tables are spelled out in SQL
/// because their exact shape (SQLite rowid tables, clustered keys, partial indexes) is the design.
pub(crate) async fn execute(
    manager: &SchemaManager<'_>,
    statements: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(), DbErr> {
    engine(manager)?;
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql.as_ref()).await?;
    }
    Ok(())
}
