//! `GET /clock/v1/time`: the clock every service of the installation runs on (`tally.clock.v1`
//! GetTime), for clients whose own clock says nothing about a manual one.

use axum::http::StatusCode;
use serde::Serialize;
use tally_proto::clock::v1 as pb;
use tally_proto::clock_api::ClockApi;

use super::{Context, RestError, RestResult, json, utc_text};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClockTime {
    now: Option<String>,
    /// Whether the clock is a manual one, moved only by operators.
    manual: bool,
}

pub(crate) async fn time(context: Context<'_>) -> RestResult {
    let time = context
        .state
        .clock
        .get_time(context.request(pb::GetTimeRequest {}))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    Ok(json(
        StatusCode::OK,
        &ClockTime {
            now: utc_text(time.now.as_ref()),
            manual: time.manual,
        },
    ))
}
