//! Sealing: each reported day, once it has closed, becomes a fixed list of batches. The rows are
//! read page by page (never the whole day in memory), only chargeable meters are kept, each
//! row's billing subscription is resolved at sealing time (owners listed once per day, each
//! tenant's billing subscription asked once), and every 1000 rows in the usage service's stable
//! order make one batch with a deterministic id. A sealed day's batches never change; a day that
//! closes while usage may not be reported is recorded as skipped, with the reason.

use std::collections::{HashMap, HashSet};

use chrono::{TimeZone, Utc};
use prost::Message as _;
use tally_proto::commerce::v1::{CommerceUsageRecord, UploadUsageRequest};
use tally_proto::convert::{timestamp, utc};
use tally_proto::registration::v1::{
    GetRegistrationRequest, ResolveBillingSubscriptionRequest,
    resolve_billing_subscription_request::Target,
};
use tally_proto::registration_api::subscription_owners;
use tally_proto::usage::v1::{
    AggregationGranularity, GetPipelineStatusRequest, ListMetersRequest,
    ListSubscriberUsageAggregatesRequest, UsageAggregate,
};
use tally_proto::usage_api::SubscriberPages;
use tally_store::bridge::DayHeader;
use tonic::Request;

use crate::error::BridgeError;
use crate::service::{Bridge, DAY};

/// Records in one batch, at most (the contract's limit).
pub const BATCH_RECORDS: usize = 1000;

/// The deterministic id of batch `index` of `day`: the same day and position always get the
/// same id, so a retry after any failure is recognised upstream.
pub fn batch_id(cloud_id: &str, day: i64, index: u32) -> String {
    let date = Utc
        .timestamp_opt(day, 0)
        .single()
        .map(|d| d.format("%Y%m%d").to_string())
        .unwrap_or_else(|| day.to_string());
    format!("tally-{cloud_id}-{date}-{index:05}")
}

fn skipped_id(day: i64) -> String {
    batch_id("skipped", day, 0)
}

/// Who pays, as known while sealing one day.
struct Billing {
    registration_subscription: String,
    /// Subscription id (lower case) -> owner tenant id.
    owners: HashMap<String, String>,
    /// Owner tenant id -> billing subscription id, filled as tenants are met.
    by_tenant: HashMap<String, String>,
}

impl Bridge {
    /// Seals (or skips) every reported day that has closed since the last one.
    pub(crate) async fn seal_closed_days(&self) -> Result<(), BridgeError> {
        let now = self.clock.now();
        let today = now.timestamp().div_euclid(DAY) * DAY;
        let mut day = self.store.next_day(today).await?;
        while day + DAY <= now.timestamp() {
            let complete_through = self
                .usage
                .get_pipeline_status(Request::new(GetPipelineStatusRequest {}))
                .await
                .map_err(BridgeError::peer("the usage service"))?
                .into_inner()
                .complete_through;
            let complete = utc(complete_through.as_ref()).map_or(0, |t| t.timestamp());
            if complete < day + DAY {
                return Ok(());
            }
            match self.reporting().await? {
                Some(skip) => {
                    tracing::info!(day, reason = skip.reason(), "reported day skipped");
                    self.store
                        .skip_day(day, &skipped_id(day), skip.reason(), now.timestamp())
                        .await?;
                }
                None => self.seal_day(day).await?,
            }
            day += DAY;
        }
        Ok(())
    }

    async fn seal_day(&self, day: i64) -> Result<(), BridgeError> {
        let started = std::time::Instant::now();
        let registration = self
            .registration
            .get_registration(Request::new(GetRegistrationRequest {}))
            .await
            .map_err(BridgeError::peer("the registration service"))?
            .into_inner();
        let chargeable: HashSet<String> = self
            .usage
            .list_meters(Request::new(ListMetersRequest {
                include_deprecated: true,
            }))
            .await
            .map_err(BridgeError::peer("the usage service"))?
            .into_inner()
            .meters
            .into_iter()
            .filter(|m| m.chargeable)
            .map(|m| m.meter_id.to_ascii_lowercase())
            .collect();
        let header = DayHeader {
            cloud_id: registration.cloud_id.clone(),
            registration_name: registration.registration_name.clone(),
            billing_model: registration.billing_model,
        };
        let now = self.clock.now().timestamp();
        self.store.begin_day(day, &header, now).await?;
        let mut billing = Billing {
            registration_subscription: registration.registration_subscription_id.clone(),
            owners: subscription_owners(self.registration.as_ref())
                .await
                .map_err(BridgeError::peer("the registration service"))?,
            by_tenant: HashMap::new(),
        };
        // Days come from `complete_through`, a time the usage service holds: always in range.
        let start = Utc.timestamp_opt(day, 0).single().unwrap_or_default();
        let end = Utc.timestamp_opt(day + DAY, 0).single().unwrap_or_default();
        let mut batch: Vec<CommerceUsageRecord> = Vec::with_capacity(BATCH_RECORDS);
        let mut index = 0u32;
        let mut rows = 0u64;
        let mut pages = SubscriberPages::new(
            self.usage.as_ref(),
            ListSubscriberUsageAggregatesRequest {
                reported_start_time: Some(timestamp(start)),
                reported_end_time: Some(timestamp(end)),
                aggregation_granularity: AggregationGranularity::Daily as i32,
                page_size: 1000,
                ..Default::default()
            },
        );
        while let Some(page) = pages.next().await {
            for row in page.map_err(BridgeError::peer("the usage service"))? {
                if !chargeable.contains(&row.meter_id.to_ascii_lowercase()) {
                    continue;
                }
                batch.push(self.record(&mut billing, row).await?);
                rows += 1;
                if batch.len() == BATCH_RECORDS {
                    self.put_batch(&header.cloud_id, day, index, &mut batch)
                        .await?;
                    index += 1;
                }
            }
        }
        if !batch.is_empty() {
            self.put_batch(&header.cloud_id, day, index, &mut batch)
                .await?;
            index += 1;
        }
        self.store.finish_day(day, index).await?;
        tracing::info!(
            day = %start.date_naive(),
            rows,
            batches = index,
            seconds = started.elapsed().as_secs_f64(),
            "reported day sealed"
        );
        Ok(())
    }

    async fn put_batch(
        &self,
        cloud_id: &str,
        day: i64,
        index: u32,
        batch: &mut Vec<CommerceUsageRecord>,
    ) -> Result<(), BridgeError> {
        let records = batch.len() as u32;
        // Only the records are stored; the day's header joins them at upload time.
        let payload = UploadUsageRequest {
            records: std::mem::take(batch),
            ..Default::default()
        }
        .encode_to_vec();
        self.store
            .put_batch(
                &batch_id(cloud_id, day, index),
                day,
                index,
                records,
                payload,
            )
            .await?;
        Ok(())
    }

    /// One DAILY row as uploaded, with its billing subscription.
    async fn record(
        &self,
        billing: &mut Billing,
        row: UsageAggregate,
    ) -> Result<CommerceUsageRecord, BridgeError> {
        let (tenant_id, billing_subscription_id) =
            self.billing_of(billing, &row.subscription_id).await?;
        let instance = row.instance_data.unwrap_or_default();
        Ok(CommerceUsageRecord {
            billing_subscription_id,
            subscription_id: row.subscription_id,
            tenant_id,
            meter_id: row.meter_id,
            quantity: row.quantity,
            usage_start_time: row.usage_start_time,
            usage_end_time: row.usage_end_time,
            resource_uri: instance.resource_uri,
            location: instance.location,
            tags: instance.tags,
            additional_info: instance.additional_info,
        })
    }

    /// The owner tenant and billing subscription of `subscription`; each tenant's billing
    /// subscription is asked once while sealing a day.
    async fn billing_of(
        &self,
        billing: &mut Billing,
        subscription: &str,
    ) -> Result<(String, String), BridgeError> {
        let Some(tenant) = billing.owners.get(&subscription.to_ascii_lowercase()) else {
            // Tally does not know it: the registration subscription pays.
            return Ok((String::new(), billing.registration_subscription.clone()));
        };
        if let Some(billed) = billing.by_tenant.get(tenant) {
            return Ok((tenant.clone(), billed.clone()));
        }
        let billed = self
            .registration
            .resolve_billing_subscription(Request::new(ResolveBillingSubscriptionRequest {
                target: Some(Target::TenantId(tenant.clone())),
            }))
            .await
            .map_err(BridgeError::peer("the registration service"))?
            .into_inner()
            .billing_subscription_id;
        billing.by_tenant.insert(tenant.clone(), billed.clone());
        Ok((tenant.clone(), billed))
    }
}

#[cfg(test)]
mod tests {
    use super::batch_id;

    #[test]
    fn batch_ids_are_deterministic_and_short() {
        let cloud = "5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b";
        let day = 1_795_737_600; // 2026-11-27
        assert_eq!(batch_id(cloud, day, 7), batch_id(cloud, day, 7));
        assert_eq!(
            batch_id(cloud, day, 7),
            "tally-5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b-20261127-00007"
        );
        assert_ne!(batch_id(cloud, day, 7), batch_id(cloud, day + 86_400, 7));
        assert!(batch_id(cloud, day, u32::MAX).len() <= 128);
    }
}
