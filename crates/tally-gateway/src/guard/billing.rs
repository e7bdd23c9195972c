//! The billing guard: operators create price sheets and adjustments and read every statement;
//! a tenant reads only its own statements, adjustments and charges (another tenant's, or the
//! no-owner statement, is refused with `StatementNotVisible`, never answered empty) and the price
//! sheets that apply to it. An adjustment's `created_by` is the caller's token subject.

use std::sync::Arc;

use tally_core::Reason;
use tally_proto::Rpc;
use tally_proto::billing::v1 as pb;
use tally_proto::billing_api::BillingApi;
use tally_proto::service_api::BoxStream;
use tally_proto::status;
use tonic::{Request, Status};

use super::{is_own_tenant, operator_only, principal_of};
use crate::auth::TokenSubject;
use crate::principal::Principal;

pub(crate) struct GuardedBilling {
    inner: Arc<dyn BillingApi>,
}

impl GuardedBilling {
    pub(crate) fn new(inner: Arc<dyn BillingApi>) -> Self {
        Self { inner }
    }
}

fn not_visible(tenant: &str) -> Status {
    status::status(
        Reason::StatementNotVisible,
        format!("tenant {tenant:?} is not the caller's tenant"),
    )
}

/// Lets an operator, or the caller's own tenant, read `tenant`'s billing data.
fn own_tenant_only<T>(request: &Request<T>, tenant: &str) -> Result<(), Status> {
    match principal_of(request)? {
        Principal::Operator => Ok(()),
        Principal::Limited(grants) if is_own_tenant(&grants, tenant) => Ok(()),
        Principal::Limited(_) => Err(not_visible(tenant)),
    }
}

#[tonic::async_trait]
impl BillingApi for GuardedBilling {
    async fn create_price_sheet(
        &self,
        request: Request<pb::CreatePriceSheetRequest>,
    ) -> Rpc<pb::PriceSheet> {
        operator_only(&request, "creating a price sheet")?;
        self.inner.create_price_sheet(request).await
    }

    async fn list_price_sheets(
        &self,
        request: Request<pb::ListPriceSheetsRequest>,
    ) -> Rpc<pb::ListPriceSheetsResponse> {
        match principal_of(&request)? {
            Principal::Operator => self.inner.list_price_sheets(request).await,
            Principal::Limited(grants) => {
                let Some(tenant) = grants.tenant else {
                    return Err(not_visible(&request.get_ref().tenant_id));
                };
                let asked = request.get_ref().tenant_id.clone();
                if !asked.is_empty() && !is_own_tenant(&grants, &asked) {
                    return Err(not_visible(&asked));
                }
                // The default sheets and the tenant's own, nobody else's.
                let mut response = self.inner.list_price_sheets(request).await?;
                response.get_mut().price_sheets.retain(|s| {
                    s.tenant_id.is_empty() || tally_core::parse_guid(&s.tenant_id) == Some(tenant)
                });
                Ok(response)
            }
        }
    }

    async fn create_adjustment(
        &self,
        mut request: Request<pb::CreateAdjustmentRequest>,
    ) -> Rpc<pb::Adjustment> {
        operator_only(&request, "creating an adjustment")?;
        let subject = request
            .extensions()
            .get::<TokenSubject>()
            .map(|s| s.subject.clone())
            .unwrap_or_default();
        if let Some(adjustment) = request.get_mut().adjustment.as_mut() {
            adjustment.created_by = subject;
        }
        self.inner.create_adjustment(request).await
    }

    async fn list_adjustments(
        &self,
        request: Request<pb::ListAdjustmentsRequest>,
    ) -> Rpc<pb::ListAdjustmentsResponse> {
        if !matches!(principal_of(&request)?, Principal::Operator) {
            let tenant = request.get_ref().tenant_id.clone();
            own_tenant_only(&request, &tenant)?;
        }
        self.inner.list_adjustments(request).await
    }

    async fn get_statement(&self, request: Request<pb::GetStatementRequest>) -> Rpc<pb::Statement> {
        let tenant = request.get_ref().tenant_id.clone();
        own_tenant_only(&request, &tenant)?;
        self.inner.get_statement(request).await
    }

    async fn list_statements(
        &self,
        request: Request<pb::ListStatementsRequest>,
    ) -> Rpc<pb::ListStatementsResponse> {
        operator_only(&request, "listing every tenant's statements")?;
        self.inner.list_statements(request).await
    }

    async fn export_charges(
        &self,
        request: Request<pb::ExportChargesRequest>,
    ) -> Rpc<BoxStream<pb::ExportChunk>> {
        if !matches!(principal_of(&request)?, Principal::Operator) {
            let tenant = request.get_ref().tenant_id.clone();
            own_tenant_only(&request, &tenant)?;
        }
        self.inner.export_charges(request).await
    }
}
