//! The registration service's tables: the installation's registration (one row), directory
//! tenants, user subscriptions and CSP customer-subscription mappings. Plain relational tables,
//! declared with sea-query so both backends get the same schema.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RegistrationInfo {
    Table,
    Id,
    RegistrationName,
    CloudId,
    RegistrationSubscriptionId,
    ResourceGroup,
    BillingModel,
    UsageReportingEnabled,
    AgreementNumber,
    MultiTenancyEnabled,
}

#[derive(DeriveIden)]
enum TenancyTenant {
    Table,
    TenantId,
    DisplayName,
}

#[derive(DeriveIden)]
enum TenancySubscription {
    Table,
    SubscriptionId,
    DisplayName,
    OwnerTenantId,
    DelegatedProviderSubscriptionId,
    State,
}

#[derive(DeriveIden)]
enum RegistrationCustomerSubscription {
    Table,
    CustomerSubscriptionId,
    TenantId,
}

#[allow(elided_lifetimes_in_paths)] // the trait is declared that way
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RegistrationInfo::Table)
                    .col(
                        ColumnDef::new(RegistrationInfo::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::RegistrationName)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::CloudId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::RegistrationSubscriptionId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::ResourceGroup)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::BillingModel)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::UsageReportingEnabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::AgreementNumber)
                            .string()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RegistrationInfo::MultiTenancyEnabled)
                            .boolean()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TenancyTenant::Table)
                    .col(
                        ColumnDef::new(TenancyTenant::TenantId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenancyTenant::DisplayName)
                            .string()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TenancySubscription::Table)
                    .col(
                        ColumnDef::new(TenancySubscription::SubscriptionId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenancySubscription::DisplayName)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenancySubscription::OwnerTenantId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenancySubscription::DelegatedProviderSubscriptionId)
                            .string()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TenancySubscription::State)
                            .string()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tenancy_subscription_owner")
                    .table(TenancySubscription::Table)
                    .col(TenancySubscription::OwnerTenantId)
                    .col(TenancySubscription::SubscriptionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tenancy_subscription_provider")
                    .table(TenancySubscription::Table)
                    .col(TenancySubscription::DelegatedProviderSubscriptionId)
                    .col(TenancySubscription::SubscriptionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RegistrationCustomerSubscription::Table)
                    .col(
                        ColumnDef::new(RegistrationCustomerSubscription::CustomerSubscriptionId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RegistrationCustomerSubscription::TenantId)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RegistrationCustomerSubscription::Table.into_iden(),
            TenancySubscription::Table.into_iden(),
            TenancyTenant::Table.into_iden(),
            RegistrationInfo::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
