//! `GET /bridge/v1/status` and `GET /bridge/v1/uploads`: the usage bridge's GetBridgeStatus and
//! ListUploads as JSON (operators only, decided by the guard), for the portal and scripts.
//! Uploads are paged with `pageSize` / `pageToken` and may be limited to reported days with
//! `reportedStartTime` / `reportedEndTime` (RFC 3339).

use axum::http::StatusCode;
use serde::Serialize;
use tally_proto::bridge::v1 as pb;
use tally_proto::bridge_api::BridgeApi;

use super::{Context, RestError, RestResult, json, utc_text};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    state: String,
    sealed_through: Option<String>,
    acknowledged_through: Option<String>,
    pending_batches: u32,
    parked_batches: u32,
    last_error: String,
    next_attempt_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Uploads {
    uploads: Vec<Upload>,
    next_page_token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Upload {
    batch_id: String,
    reported_start_time: Option<String>,
    batch_index: u32,
    batch_count: u32,
    records: u32,
    state: String,
    attempts: u32,
    last_error: String,
    acknowledged_time: Option<String>,
}

pub(crate) async fn status(context: Context<'_>) -> RestResult {
    let s = context
        .state
        .bridge
        .get_bridge_status(context.request(pb::GetBridgeStatusRequest {}))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    Ok(json(
        StatusCode::OK,
        &Status {
            state: s.state,
            sealed_through: utc_text(s.sealed_through.as_ref()),
            acknowledged_through: utc_text(s.acknowledged_through.as_ref()),
            pending_batches: s.pending_batches,
            parked_batches: s.parked_batches,
            last_error: s.last_error,
            next_attempt_time: utc_text(s.next_attempt_time.as_ref()),
        },
    ))
}

fn time_param(
    context: &Context<'_>,
    name: &str,
) -> Result<Option<tally_proto::convert::Timestamp>, RestError> {
    match context.params.get(name) {
        None => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Some(tally_proto::convert::timestamp(t.to_utc())))
            .map_err(|_| RestError::invalid(format!("{name} {text:?} is not an RFC 3339 time"))),
    }
}

pub(crate) async fn uploads(context: Context<'_>) -> RestResult {
    let request = pb::ListUploadsRequest {
        reported_start_time: time_param(&context, "reportedStartTime")?,
        reported_end_time: time_param(&context, "reportedEndTime")?,
        page_size: context.params.number("pageSize")?,
        page_token: context
            .params
            .get("pageToken")
            .unwrap_or_default()
            .to_string(),
    };
    let page = context
        .state
        .bridge
        .list_uploads(context.request(request))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    let uploads = page
        .uploads
        .into_iter()
        .map(|u| Upload {
            reported_start_time: utc_text(u.reported_start_time.as_ref()),
            acknowledged_time: utc_text(u.acknowledged_time.as_ref()),
            batch_id: u.batch_id,
            batch_index: u.batch_index,
            batch_count: u.batch_count,
            records: u.records,
            state: u.state,
            attempts: u.attempts,
            last_error: u.last_error,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &Uploads {
            uploads,
            next_page_token: page.next_page_token,
        },
    ))
}
