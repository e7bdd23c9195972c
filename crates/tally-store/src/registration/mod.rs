//! The registration service's tables: registration, tenants, subscriptions, CSP mappings.

mod entity;
mod rows;

use sea_orm::sea_query::{Condition, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use tally_core::registration::{Registration, Subscription, SubscriptionState, Tenant};
use tally_migrations::RegistrationMigrator;
use uuid::Uuid;

use crate::db::Database;
use crate::error::StoreError;
use crate::guid::{from_text as guid, to_text as id};
use entity::{customer_subscription, registration_info, subscription, tenant};
use rows::{REGISTRATION_ROW, registration_row, subscription_row, tenant_row};

#[derive(Debug)]
pub struct RegistrationStore {
    db: Database,
}

/// Which subscriptions to list.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionFilter {
    pub owner_tenant_id: Option<Uuid>,
    pub delegated_provider_subscription_id: Option<Uuid>,
    pub include_deleted: bool,
}

impl RegistrationStore {
    /// Whether the registration database answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    pub async fn open(url: &str) -> Result<RegistrationStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<RegistrationMigrator>().await?;
        Ok(RegistrationStore { db })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub async fn registration(&self) -> Result<Option<Registration>, StoreError> {
        registration_info::Entity::find_by_id(REGISTRATION_ROW)
            .one(self.db.reader())
            .await?
            .map(rows::registration)
            .transpose()
    }

    /// Creates or replaces the registration.
    pub async fn set_registration(&self, r: &Registration) -> Result<(), StoreError> {
        registration_info::Entity::insert(registration_row(r))
            .on_conflict(
                OnConflict::column(registration_info::Column::Id)
                    .update_columns([
                        registration_info::Column::RegistrationName,
                        registration_info::Column::CloudId,
                        registration_info::Column::RegistrationSubscriptionId,
                        registration_info::Column::ResourceGroup,
                        registration_info::Column::BillingModel,
                        registration_info::Column::UsageReportingEnabled,
                        registration_info::Column::AgreementNumber,
                        registration_info::Column::MultiTenancyEnabled,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.db.writer())
            .await?;
        Ok(())
    }

    /// Removes the registration and its customer mappings; `false` if there was none.
    pub async fn remove_registration(&self) -> Result<bool, StoreError> {
        let txn = self.db.writer().begin().await?;
        customer_subscription::Entity::delete_many()
            .exec(&txn)
            .await?;
        let removed = registration_info::Entity::delete_by_id(REGISTRATION_ROW)
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(removed > 0)
    }

    /// Maps `tenant` to `customer`, replacing the tenant's earlier mapping (one per tenant) and
    /// any earlier owner of `customer`.
    pub async fn put_customer_subscription(
        &self,
        tenant: Uuid,
        customer: Uuid,
    ) -> Result<(), StoreError> {
        let txn = self.db.writer().begin().await?;
        customer_subscription::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(customer_subscription::Column::TenantId.eq(id(&tenant)))
                    .add(customer_subscription::Column::CustomerSubscriptionId.eq(id(&customer))),
            )
            .exec(&txn)
            .await?;
        customer_subscription::Entity::insert(customer_subscription::ActiveModel {
            customer_subscription_id: Set(id(&customer)),
            tenant_id: Set(id(&tenant)),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Mappings ordered by customer subscription, after `after`.
    pub async fn customer_subscriptions(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        let mut query = customer_subscription::Entity::find()
            .order_by_asc(customer_subscription::Column::CustomerSubscriptionId)
            .limit(limit);
        if let Some(after) = after {
            query =
                query.filter(customer_subscription::Column::CustomerSubscriptionId.gt(id(&after)));
        }
        query
            .all(self.db.reader())
            .await?
            .into_iter()
            .map(|m| Ok((guid(&m.customer_subscription_id)?, guid(&m.tenant_id)?)))
            .collect()
    }

    pub async fn customer_subscription(&self, customer: Uuid) -> Result<Option<Uuid>, StoreError> {
        customer_subscription::Entity::find_by_id(id(&customer))
            .one(self.db.reader())
            .await?
            .map(|m| guid(&m.tenant_id))
            .transpose()
    }

    /// `false` if `customer` was not mapped.
    pub async fn delete_customer_subscription(&self, customer: Uuid) -> Result<bool, StoreError> {
        Ok(customer_subscription::Entity::delete_by_id(id(&customer))
            .exec(self.db.writer())
            .await?
            .rows_affected
            > 0)
    }

    pub async fn mapping_of_tenant(&self, tenant: Uuid) -> Result<Option<Uuid>, StoreError> {
        customer_subscription::Entity::find()
            .filter(customer_subscription::Column::TenantId.eq(id(&tenant)))
            .one(self.db.reader())
            .await?
            .map(|m| guid(&m.customer_subscription_id))
            .transpose()
    }

    /// `false` if the tenant already exists.
    pub async fn create_tenant(&self, t: &Tenant) -> Result<bool, StoreError> {
        let inserted = tenant::Entity::insert(tenant_row(t))
            .on_conflict(
                OnConflict::column(tenant::Column::TenantId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.db.writer())
            .await?;
        Ok(inserted > 0)
    }

    pub async fn tenant(&self, tenant_id: Uuid) -> Result<Option<Tenant>, StoreError> {
        tenant::Entity::find_by_id(id(&tenant_id))
            .one(self.db.reader())
            .await?
            .map(rows::tenant)
            .transpose()
    }

    pub async fn tenants(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Tenant>, StoreError> {
        let mut query = tenant::Entity::find()
            .order_by_asc(tenant::Column::TenantId)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(tenant::Column::TenantId.gt(id(&after)));
        }
        query
            .all(self.db.reader())
            .await?
            .into_iter()
            .map(rows::tenant)
            .collect()
    }

    /// `false` if the subscription already exists.
    pub async fn create_subscription(&self, s: &Subscription) -> Result<bool, StoreError> {
        let inserted = subscription::Entity::insert(subscription_row(s))
            .on_conflict(
                OnConflict::column(subscription::Column::SubscriptionId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.db.writer())
            .await?;
        Ok(inserted > 0)
    }

    pub async fn subscription(
        &self,
        subscription_id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        subscription::Entity::find_by_id(id(&subscription_id))
            .one(self.db.reader())
            .await?
            .map(rows::subscription)
            .transpose()
    }

    pub async fn subscriptions(
        &self,
        filter: &SubscriptionFilter,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Subscription>, StoreError> {
        let mut query = subscription::Entity::find()
            .order_by_asc(subscription::Column::SubscriptionId)
            .limit(limit);
        if let Some(owner) = &filter.owner_tenant_id {
            query = query.filter(subscription::Column::OwnerTenantId.eq(id(owner)));
        }
        if let Some(provider) = &filter.delegated_provider_subscription_id {
            query = query
                .filter(subscription::Column::DelegatedProviderSubscriptionId.eq(id(provider)));
        }
        if !filter.include_deleted {
            query =
                query.filter(subscription::Column::State.ne(SubscriptionState::Deleted.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(subscription::Column::SubscriptionId.gt(id(&after)));
        }
        query
            .all(self.db.reader())
            .await?
            .into_iter()
            .map(rows::subscription)
            .collect()
    }

    /// Marks a subscription Deleted (soft); `None` if it does not exist.
    pub async fn delete_subscription(
        &self,
        subscription_id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        subscription::Entity::update_many()
            .col_expr(
                subscription::Column::State,
                sea_orm::sea_query::Expr::value(SubscriptionState::Deleted.as_str()),
            )
            .filter(subscription::Column::SubscriptionId.eq(id(&subscription_id)))
            .exec(self.db.writer())
            .await?;
        subscription::Entity::find_by_id(id(&subscription_id))
            .one(self.db.writer())
            .await?
            .map(rows::subscription)
            .transpose()
    }
}
