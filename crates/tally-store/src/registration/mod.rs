//! The registration service's tables: registration, tenants, subscriptions, CSP mappings.

mod entity;

use sea_orm::sea_query::{Condition, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use tally_core::registration::{
    BillingModel, Registration, Subscription, SubscriptionState, Tenant,
};
use tally_migrations::RegistrationMigrator;
use uuid::Uuid;

use crate::db::Database;
use crate::error::StoreError;
use entity::{customer_subscription, registration_info, subscription, tenant};

/// The only row of `registration_info`: one registration per installation.
const REGISTRATION_ROW: i32 = 1;

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

fn guid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("{text:?} is not a GUID")))
}

fn id(guid: &Uuid) -> String {
    guid.hyphenated().to_string()
}

fn billing_model_name(model: BillingModel) -> &'static str {
    match model {
        BillingModel::PayAsYouUse => "PayAsYouUse",
        BillingModel::Capacity => "Capacity",
        BillingModel::Development => "Development",
    }
}

impl RegistrationStore {
    pub async fn open(url: &str) -> Result<RegistrationStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<RegistrationMigrator>().await?;
        Ok(RegistrationStore { db })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub async fn registration(&self) -> Result<Option<Registration>, StoreError> {
        let Some(row) = registration_info::Entity::find_by_id(REGISTRATION_ROW)
            .one(self.db.reader())
            .await?
        else {
            return Ok(None);
        };
        let billing_model = match row.billing_model.as_str() {
            "PayAsYouUse" => BillingModel::PayAsYouUse,
            "Capacity" => BillingModel::Capacity,
            "Development" => BillingModel::Development,
            other => return Err(StoreError::Corrupt(format!("billing model {other:?}"))),
        };
        Ok(Some(Registration {
            name: row.registration_name,
            cloud_id: guid(&row.cloud_id)?,
            subscription_id: guid(&row.registration_subscription_id)?,
            resource_group: row.resource_group,
            billing_model,
            usage_reporting_enabled: row.usage_reporting_enabled,
            agreement_number: row.agreement_number,
            multi_tenancy_enabled: row.multi_tenancy_enabled,
        }))
    }

    /// Creates or replaces the registration.
    pub async fn set_registration(&self, r: &Registration) -> Result<(), StoreError> {
        let row = registration_info::ActiveModel {
            id: Set(REGISTRATION_ROW),
            registration_name: Set(r.name.clone()),
            cloud_id: Set(id(&r.cloud_id)),
            registration_subscription_id: Set(id(&r.subscription_id)),
            resource_group: Set(r.resource_group.clone()),
            billing_model: Set(billing_model_name(r.billing_model).to_string()),
            usage_reporting_enabled: Set(r.usage_reporting_enabled),
            agreement_number: Set(r.agreement_number.clone()),
            multi_tenancy_enabled: Set(r.multi_tenancy_enabled),
        };
        registration_info::Entity::insert(row)
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
        let inserted = tenant::Entity::insert(tenant::ActiveModel {
            tenant_id: Set(id(&t.id)),
            display_name: Set(t.display_name.clone()),
        })
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
            .map(to_tenant)
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
            .map(to_tenant)
            .collect()
    }

    /// `false` if the subscription already exists.
    pub async fn create_subscription(&self, s: &Subscription) -> Result<bool, StoreError> {
        let inserted = subscription::Entity::insert(subscription::ActiveModel {
            subscription_id: Set(id(&s.id)),
            display_name: Set(s.display_name.clone()),
            owner_tenant_id: Set(id(&s.owner_tenant_id)),
            delegated_provider_subscription_id: Set(s
                .delegated_provider_subscription_id
                .as_ref()
                .map(id)),
            state: Set(s.state.as_str().to_string()),
        })
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
            .map(to_subscription)
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
            .map(to_subscription)
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
            .map(to_subscription)
            .transpose()
    }
}

fn to_tenant(m: tenant::Model) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: guid(&m.tenant_id)?,
        display_name: m.display_name,
    })
}

fn to_subscription(m: subscription::Model) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: guid(&m.subscription_id)?,
        display_name: m.display_name,
        owner_tenant_id: guid(&m.owner_tenant_id)?,
        delegated_provider_subscription_id: m
            .delegated_provider_subscription_id
            .as_deref()
            .map(guid)
            .transpose()?,
        state: SubscriptionState::parse(&m.state)
            .ok_or_else(|| StoreError::Corrupt(format!("subscription state {:?}", m.state)))?,
    })
}
