//! Contract tests: the services in-process on loopback, driven only through the generated gRPC
//! clients, on SQLite and on PostgreSQL.

mod access;
mod billing;
mod bridge;
mod clock;
mod csp;
mod errors;
mod exactness;
mod exports;
mod ingestion;
mod operations;
mod paging;
mod portal;
mod recovery;
mod rest;
mod serving;
mod windows;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tally_contract_tests::Cluster;
use tally_core::Quantity;
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    AggregationGranularity, ListSubscriberUsageAggregatesRequest, ListUsageAggregatesResponse,
    UsageAggregate,
};

/// A row's identity in assertions: subscription, meter, resource, usage start (Unix seconds).
pub type RowId = (String, String, String, i64);

pub fn row_id(row: &UsageAggregate) -> RowId {
    (
        row.subscription_id.clone(),
        row.meter_id.clone(),
        row.instance_data
            .as_ref()
            .map(|i| i.resource_uri.clone())
            .unwrap_or_default(),
        row.usage_start_time
            .as_ref()
            .map(|t| t.seconds)
            .unwrap_or_default(),
    )
}

pub fn provider_request(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    granularity: AggregationGranularity,
) -> ListSubscriberUsageAggregatesRequest {
    ListSubscriberUsageAggregatesRequest {
        reported_start_time: Some(timestamp(start)),
        reported_end_time: Some(timestamp(end)),
        aggregation_granularity: granularity as i32,
        ..Default::default()
    }
}

/// Every page of a provider query, in order.
pub async fn provider_pages(
    cluster: &Cluster,
    mut request: ListSubscriberUsageAggregatesRequest,
) -> Vec<ListUsageAggregatesResponse> {
    let mut pages = Vec::new();
    loop {
        let page = cluster
            .provider()
            .list_subscriber_usage_aggregates(request.clone())
            .await
            .expect("page")
            .into_inner();
        let token = page.continuation_token.clone();
        pages.push(page);
        if token.is_empty() {
            return pages;
        }
        request.continuation_token = token;
    }
}

/// Every row of a provider query, as exact quantities by row.
pub async fn provider_rows(
    cluster: &Cluster,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    granularity: AggregationGranularity,
) -> BTreeMap<RowId, Quantity> {
    let mut rows = BTreeMap::new();
    for page in provider_pages(cluster, provider_request(start, end, granularity)).await {
        for row in page.usage_aggregates {
            let quantity = Quantity::parse(&row.quantity).expect("exact decimal");
            assert!(
                rows.insert(row_id(&row), quantity).is_none(),
                "row returned twice: {row:?}"
            );
        }
    }
    rows
}

pub fn q(text: &str) -> Quantity {
    Quantity::parse(text).unwrap()
}
