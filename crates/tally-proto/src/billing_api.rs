//! The billing service (`tally.billing.v1`) as a Rust trait ([`BillingApi`]), implemented
//! in-process by `tally-billing` and over gRPC by [`BillingClient`]; [`BillingGrpc`] serves any
//! implementation as the Billing tonic service.

use crate::billing::v1::{
    Adjustment, CreateAdjustmentRequest, CreatePriceSheetRequest, ExportChargesRequest,
    ExportChunk, GetStatementRequest, ListAdjustmentsRequest, ListAdjustmentsResponse,
    ListPriceSheetsRequest, ListPriceSheetsResponse, ListStatementsRequest, ListStatementsResponse,
    PriceSheet, Statement,
    billing_client::BillingClient as BillingStub,
    billing_server::{self, Billing, BillingServer},
};
use crate::service_api::service_api;

service_api! {
    /// The Billing service as one object-safe trait. Requests keep their metadata and
    /// extensions, so the caller's identity travels with them.
    trait BillingApi;
    /// The billing service over gRPC.
    client BillingClient("the billing service");
    /// Serves any [`BillingApi`] as the Billing tonic service.
    server BillingGrpc, BillingServices;

    Billing / billing (
        BillingStub<tonic::transport::Channel>,
        BillingServer,
        billing_server::SERVICE_NAME
    ) {
        create_price_sheet(CreatePriceSheetRequest) -> PriceSheet;
        list_price_sheets(ListPriceSheetsRequest) -> ListPriceSheetsResponse;
        create_adjustment(CreateAdjustmentRequest) -> Adjustment;
        list_adjustments(ListAdjustmentsRequest) -> ListAdjustmentsResponse;
        get_statement(GetStatementRequest) -> Statement;
        list_statements(ListStatementsRequest) -> ListStatementsResponse;
        #[stream] export_charges(ExportChargesRequest) -> ExportChunk as ExportChargesStream;
    }
}
