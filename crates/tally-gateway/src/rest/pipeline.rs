//! `GET /usage/v1/pipeline`: the usage pipeline's state for operators (`UsageAdmin`
//! GetPipelineStatus), with how far `complete_through` is behind the installation's clock.

use axum::http::StatusCode;
use serde::Serialize;
use tally_proto::clock::v1 as clock;
use tally_proto::clock_api::ClockApi;
use tally_proto::convert::utc;
use tally_proto::usage::v1 as pb;
use tally_proto::usage_api::UsageApi;

use super::{Context, RestError, RestResult, json, utc_text};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pipeline {
    /// Every record reported before this is folded into the aggregates.
    complete_through: Option<String>,
    records_stored: u64,
    records_pending_fold: u64,
    /// The installation's clock when the status was read.
    now: Option<String>,
    /// `now - complete_through` in whole seconds (0 when caught up).
    behind_seconds: i64,
}

pub(crate) async fn status(context: Context<'_>) -> RestResult {
    // The pipeline first: only operators may see it, and a refusal needs no clock.
    let status = context
        .state
        .usage
        .get_pipeline_status(context.request(pb::GetPipelineStatusRequest {}))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    let now = context
        .state
        .clock
        .get_time(context.request(clock::GetTimeRequest {}))
        .await
        .map_err(RestError::from_service)?
        .into_inner()
        .now;
    let behind_seconds = match (utc(now.as_ref()), utc(status.complete_through.as_ref())) {
        (Some(now), Some(complete)) => (now - complete).num_seconds().max(0),
        _ => 0,
    };
    Ok(json(
        StatusCode::OK,
        &Pipeline {
            complete_through: utc_text(status.complete_through.as_ref()),
            records_stored: status.records_stored,
            records_pending_fold: status.records_pending_fold,
            now: utc_text(now.as_ref()),
            behind_seconds,
        },
    ))
}
