//! [`BillingApi`] for [`Billing`]: the contract's RPCs, each one call into the service. Access
//! decisions are the gateway's (`guard/billing.rs`); ExportCharges is `export.rs`, built on
//! [`Billing::rated_rows`].

use tally_proto::Rpc;
use tally_proto::billing::v1::{
    Adjustment, CreateAdjustmentRequest, CreatePriceSheetRequest, ExportChargesRequest,
    ExportChunk, GetStatementRequest, ListAdjustmentsRequest, ListAdjustmentsResponse,
    ListPriceSheetsRequest, ListPriceSheetsResponse, ListStatementsRequest, ListStatementsResponse,
    PriceSheet, Statement,
};
use tally_proto::billing_api::BillingApi;
use tally_proto::server::Readiness;
use tally_proto::service_api::BoxStream;
use tonic::{Request, Response, Status};

use crate::service::Billing;

fn answer<T>(result: Result<T, crate::BillingError>) -> Rpc<T> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl BillingApi for Billing {
    async fn create_price_sheet(
        &self,
        request: Request<CreatePriceSheetRequest>,
    ) -> Rpc<PriceSheet> {
        answer(Billing::create_price_sheet(self, request.into_inner()).await)
    }

    async fn list_price_sheets(
        &self,
        request: Request<ListPriceSheetsRequest>,
    ) -> Rpc<ListPriceSheetsResponse> {
        answer(Billing::list_price_sheets(self, request.into_inner()).await)
    }

    async fn create_adjustment(
        &self,
        request: Request<CreateAdjustmentRequest>,
    ) -> Rpc<Adjustment> {
        answer(Billing::create_adjustment(self, request.into_inner()).await)
    }

    async fn list_adjustments(
        &self,
        request: Request<ListAdjustmentsRequest>,
    ) -> Rpc<ListAdjustmentsResponse> {
        answer(Billing::list_adjustments(self, request.into_inner()).await)
    }

    async fn get_statement(&self, request: Request<GetStatementRequest>) -> Rpc<Statement> {
        answer(Billing::get_statement(self, request.into_inner()).await)
    }

    async fn list_statements(
        &self,
        request: Request<ListStatementsRequest>,
    ) -> Rpc<ListStatementsResponse> {
        answer(Billing::list_statements(self, request.into_inner()).await)
    }

    async fn export_charges(
        &self,
        request: Request<ExportChargesRequest>,
    ) -> Rpc<BoxStream<ExportChunk>> {
        answer(Billing::export_charges(self, request.into_inner()).await)
    }
}

#[tonic::async_trait]
impl Readiness for Billing {
    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| e.to_string())
    }
}
