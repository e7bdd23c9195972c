//! `GET /billing/v1/periods/{period}/statements` (operators: every tenant's statement, paged with
//! `pageSize` / `pageToken`) and `GET /billing/v1/periods/{period}/statements/{tenantId}` (an
//! operator, or that tenant): `Billing` ListStatements and GetStatement as JSON, with the
//! proto JSON names. The guard decides who sees what.

use axum::http::StatusCode;
use serde::Serialize;
use tally_proto::billing::v1 as pb;
use tally_proto::billing_api::BillingApi;

use super::{Context, RestError, RestResult, json, utc_text};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Statements {
    statements: Vec<Statement>,
    next_page_token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    tenant_id: String,
    billing_period: String,
    period_start: Option<String>,
    period_end: Option<String>,
    currency: String,
    r#final: bool,
    lines: Vec<Line>,
    total: String,
    amount_due: String,
    etag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    kind: String,
    subscription_id: String,
    meter_id: String,
    meter_name: String,
    unit: String,
    quantity: String,
    cost: String,
    description: String,
}

fn statement(s: pb::Statement) -> Statement {
    Statement {
        tenant_id: s.tenant_id,
        billing_period: s.billing_period,
        period_start: utc_text(s.period_start.as_ref()),
        period_end: utc_text(s.period_end.as_ref()),
        currency: s.currency,
        r#final: s.r#final,
        lines: s
            .lines
            .into_iter()
            .map(|l| Line {
                kind: l.kind,
                subscription_id: l.subscription_id,
                meter_id: l.meter_id,
                meter_name: l.meter_name,
                unit: l.unit,
                quantity: l.quantity,
                cost: l.cost,
                description: l.description,
            })
            .collect(),
        total: s.total,
        amount_due: s.amount_due,
        etag: s.etag,
    }
}

fn billing<'a>(context: &Context<'a>) -> Result<&'a dyn BillingApi, RestError> {
    context.state.billing.as_deref().ok_or_else(|| {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "this gateway fronts no billing service",
        )
    })
}

/// `GET /billing/v1/periods/{period}/statements[?pageSize=&pageToken=]`.
pub(crate) async fn list(context: Context<'_>) -> RestResult {
    let request = pb::ListStatementsRequest {
        billing_period: context
            .path_params
            .get("period")
            .unwrap_or_default()
            .to_string(),
        page_size: context.params.number("pageSize")?,
        page_token: context
            .params
            .get("pageToken")
            .unwrap_or_default()
            .to_string(),
    };
    let page = billing(&context)?
        .list_statements(context.request(request))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    Ok(json(
        StatusCode::OK,
        &Statements {
            statements: page.statements.into_iter().map(statement).collect(),
            next_page_token: page.next_page_token,
        },
    ))
}

/// `GET /billing/v1/periods/{period}/statements/{tenantId}`.
pub(crate) async fn get(context: Context<'_>) -> RestResult {
    let request = pb::GetStatementRequest {
        billing_period: context
            .path_params
            .get("period")
            .unwrap_or_default()
            .to_string(),
        tenant_id: context
            .path_params
            .get("tenantId")
            .unwrap_or_default()
            .to_string(),
    };
    let found = billing(&context)?
        .get_statement(context.request(request))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    Ok(json(StatusCode::OK, &statement(found)))
}

/// `GET /billing/v1/periods/{period}/charges?format=csv|jsonl|parquet|focus[&tenantId=]`:
/// the export streamed as it is encoded, with a `Content-Disposition` file name.
pub(crate) async fn charges(context: Context<'_>) -> RestResult {
    use futures::StreamExt as _;
    let period = context
        .path_params
        .get("period")
        .unwrap_or_default()
        .to_string();
    let format = context
        .params
        .get("format")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (wire, file, content_type) = match format.as_str() {
        "csv" => (
            pb::ExportFormat::Csv,
            format!("tally-charges-{period}.csv"),
            "text/csv; charset=utf-8",
        ),
        "jsonl" => (
            pb::ExportFormat::Jsonl,
            format!("tally-charges-{period}.jsonl"),
            "application/x-ndjson",
        ),
        "parquet" => (
            pb::ExportFormat::Parquet,
            format!("tally-charges-{period}.parquet"),
            "application/vnd.apache.parquet",
        ),
        "focus" => (
            pb::ExportFormat::Focus,
            format!("tally-focus-{period}.csv"),
            "text/csv; charset=utf-8",
        ),
        // The billing service refuses it, naming `format`.
        _ => (pb::ExportFormat::Unspecified, String::new(), ""),
    };
    let request = pb::ExportChargesRequest {
        billing_period: period.clone(),
        format: wire as i32,
        tenant_id: context
            .params
            .get("tenantId")
            .unwrap_or_default()
            .to_string(),
    };
    let stream = billing(&context)?
        .export_charges(context.request(request))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    let body = axum::body::Body::from_stream(stream.map(|chunk| chunk.map(|chunk| chunk.data)));
    axum::response::Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header(
            "content-disposition",
            format!("attachment; filename=\"{file}\""),
        )
        .body(body)
        .map_err(|e| {
            RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })
}
