//! The usage service's operations, as the [`UsageApi`] the gateway and the gRPC server call.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use tally_core::meter::custom_meter_id;
use tally_core::time::WindowFields;
use tally_core::{
    Clock, Granularity, Meter, Reason, Rejection, ReportedWindow, UsageRecordInput, guid_field,
    optional_guid_field, parse_guid, validate_batch,
};
use tally_proto::Rpc;
use tally_proto::convert::{timestamp, utc};
use tally_proto::metrics;
use tally_proto::server::Readiness;
use tally_proto::status::MAX_BATCH_BYTES;
use tally_proto::usage::v1 as pb;
use tally_proto::usage_api::UsageApi;
use tally_store::UsageStore;
use tally_store::usage::PageRequest;
use tokio::sync::Semaphore;
use tonic::{Request, Response};
use uuid::Uuid;

use crate::Config;
use crate::error::UsageError;
use crate::token::TokenKey;

/// Rows per page: the contract's default and maximum.
const MAX_PAGE_SIZE: usize = 1_000;

pub struct Aggregator {
    pub(crate) store: UsageStore,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    tokens: TokenKey,
    /// Bytes of batches being stored now may not exceed `config.ingest_budget_bytes`.
    ingest_budget: Semaphore,
    ingest_budget_bytes: usize,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("store", &self.store)
            .finish()
    }
}

/// Which query a page belongs to; tokens are bound to it.
enum Scope {
    /// ProviderUsage: every subscription, or one (`subscriber`), within `among` when set.
    Provider {
        subscriber: Option<Uuid>,
        among: Option<Vec<Uuid>>,
    },
    /// TenantUsage: one subscription.
    Tenant(Uuid),
}

impl Scope {
    /// The subscriptions the page may show; `None` means all.
    fn subscriptions(&self) -> Option<Vec<Uuid>> {
        match self {
            Scope::Provider {
                subscriber: None,
                among,
            } => among.clone(),
            Scope::Provider {
                subscriber: Some(id),
                among: None,
            }
            | Scope::Tenant(id) => Some(vec![*id]),
            Scope::Provider {
                subscriber: Some(id),
                among: Some(among),
            } => Some(among.iter().filter(|s| *s == id).copied().collect()),
        }
    }
}

struct ListQuery {
    scope: Scope,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    granularity: i32,
    page_size: i32,
    continuation_token: String,
    allow_incomplete: bool,
    /// One row per (usage bucket, subscription, meter), summed over instance data.
    sum_instances: bool,
}

impl Aggregator {
    pub async fn open(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Aggregator, tally_store::StoreError> {
        let store = UsageStore::open(&config.database_url).await?;
        let tokens = TokenKey::new(store.token_secret().await?);
        // Permits count bytes; a semaphore holds at most u32::MAX of them per acquisition.
        let budget = config
            .ingest_budget_bytes
            .clamp(MAX_BATCH_BYTES, u32::MAX as usize);
        Ok(Aggregator {
            store,
            clock,
            config: config.clone(),
            tokens,
            ingest_budget: Semaphore::new(budget),
            ingest_budget_bytes: budget,
        })
    }

    async fn post(
        &self,
        request: pb::PostUsageRequest,
    ) -> Result<pb::PostUsageResponse, UsageError> {
        let size = request.encoded_len();
        if size > MAX_BATCH_BYTES {
            return Err(Rejection::field(
                Reason::BatchTooLarge,
                "records",
                format!("the batch is {size} bytes; at most {MAX_BATCH_BYTES}"),
            )
            .into());
        }
        // Refused, not queued: the caller retries, and nothing piles up in memory meanwhile.
        let _budget = self
            .ingest_budget
            .try_acquire_many(size.max(1) as u32)
            .map_err(|_| UsageError::Overloaded {
                in_use: self.ingest_budget_bytes - self.ingest_budget.available_permits(),
                budget: self.ingest_budget_bytes,
            })?;
        let now = self.clock.now();
        let inputs: Vec<UsageRecordInput> = request.records.into_iter().map(Into::into).collect();
        // Another instance may have created a custom meter since the catalog was loaded.
        for input in &inputs {
            if let Some(meter) = parse_guid(&input.meter_id)
                && self.store.meter(&meter).is_none()
            {
                self.store.is_known_meter(&meter).await?;
                break;
            }
        }
        let batch = validate_batch(inputs, |m| self.store.meter(m).is_some(), now)?;
        let outcome = self.store.ingest(batch.records, now).await?;
        // Committed, not yet acknowledged: crash tests hold a batch here and kill the process.
        // `return(ms)` holds it for ms, asleep without blocking a worker thread.
        #[cfg(feature = "failpoints")]
        {
            let hold = (|| {
                fail::fail_point!("ingest-after-commit", |ms| ms
                    .and_then(|ms| ms.parse::<u64>().ok()));
                None
            })();
            if let Some(ms) = hold {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
        }
        Ok(pb::PostUsageResponse {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates + batch.repeated_in_batch,
            reported_time: Some(timestamp(outcome.reported_at)),
        })
    }

    async fn list(&self, query: ListQuery) -> Result<pb::ListUsageAggregatesResponse, UsageError> {
        let granularity = match query.granularity {
            g if g == pb::AggregationGranularity::Unspecified as i32
                || g == pb::AggregationGranularity::Daily as i32 =>
            {
                Granularity::Daily
            }
            g if g == pb::AggregationGranularity::Hourly as i32 => Granularity::Hourly,
            other => {
                return Err(Rejection::field(
                    Reason::InvalidAggregationGranularity,
                    "aggregation_granularity",
                    format!("{other} is not DAILY (1) or HOURLY (2)"),
                )
                .into());
            }
        };
        let page_size = match query.page_size {
            0 => MAX_PAGE_SIZE,
            n if n > 0 && n as usize <= MAX_PAGE_SIZE => n as usize,
            n => {
                return Err(Rejection::field(
                    Reason::InvalidProperty,
                    "page_size",
                    format!("{n} is not between 0 and {MAX_PAGE_SIZE}"),
                )
                .into());
            }
        };
        let now = self.clock.now();
        let window = ReportedWindow::validate(
            query.start,
            query.end,
            granularity,
            query.allow_incomplete,
            now,
            WindowFields::GRPC,
        )?;
        let fingerprint = query_fingerprint(&query.scope, &window, query.sum_instances);
        let after = if query.continuation_token.is_empty() {
            None
        } else {
            Some(
                self.tokens
                    .verify(&fingerprint, &query.continuation_token)
                    .ok_or_else(|| {
                        Rejection::field(
                            Reason::InvalidContinuationToken,
                            "continuation_token",
                            "is malformed, altered, or from another query",
                        )
                    })?,
            )
        };
        let progress = self.store.progress().await?;
        if !window.allow_incomplete && window.end > progress.complete_through {
            return Err(UsageError::ProcessingNotComplete {
                end: window.end,
                complete_through: progress.complete_through,
            });
        }
        let subscriptions = query.scope.subscriptions();
        let page = self
            .store
            .page(
                &PageRequest {
                    granularity,
                    reported_start: window.start,
                    reported_end: window.end,
                    subscriptions,
                    after,
                    limit: page_size,
                    sum_instances: query.sum_instances,
                },
                &progress,
            )
            .await?;
        let continuation_token = match (page.more, page.rows.last()) {
            (true, Some(last)) => self.tokens.issue(&fingerprint, last.key),
            _ => String::new(),
        };
        Ok(pb::ListUsageAggregatesResponse {
            usage_aggregates: page
                .rows
                .into_iter()
                .map(|row| pb::UsageAggregate {
                    subscription_id: row.subscription_id.hyphenated().to_string(),
                    meter_id: row.meter_id.hyphenated().to_string(),
                    usage_start_time: Some(timestamp(row.usage_start)),
                    usage_end_time: Some(timestamp(row.usage_end)),
                    quantity: row.quantity.to_string(),
                    instance_data: (!query.sum_instances).then(|| row.instance.into()),
                })
                .collect(),
            continuation_token,
            complete_through: Some(timestamp(progress.complete_through)),
        })
    }

    async fn create(&self, meter: Option<pb::Meter>) -> Result<pb::Meter, UsageError> {
        let meter = meter
            .ok_or_else(|| Rejection::field(Reason::InvalidProperty, "meter", "is required"))?;
        for (field, value) in [
            ("meter.name", &meter.name),
            ("meter.unit", &meter.unit),
            ("meter.resource_provider", &meter.resource_provider),
        ] {
            if value.trim().is_empty() || value.chars().count() > 256 {
                return Err(Rejection::field(
                    Reason::InvalidProperty,
                    field,
                    "must be 1 to 256 characters",
                )
                .into());
            }
        }
        let id = if meter.meter_id.is_empty() {
            custom_meter_id(&meter.resource_provider, &meter.name)
        } else {
            parse_guid(&meter.meter_id).ok_or_else(|| {
                Rejection::field(Reason::InvalidProperty, "meter.meter_id", "is not a GUID")
            })?
        };
        let meter = Meter {
            id,
            name: meter.name.trim().to_string(),
            unit: meter.unit.trim().to_string(),
            resource_provider: meter.resource_provider.trim().to_string(),
            chargeable: meter.chargeable,
            deprecated: meter.deprecated,
        };
        match self.store.create_meter(&meter).await? {
            Some(created) => Ok((&created).into()),
            None => Err(Rejection::field(
                Reason::MeterAlreadyExists,
                "meter.meter_id",
                format!("meter {} already exists", id.hyphenated()),
            )
            .into()),
        }
    }
}

/// What a continuation token is bound to.
fn query_fingerprint(scope: &Scope, window: &ReportedWindow, sum_instances: bool) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    match scope {
        Scope::Provider { subscriber, among } => {
            bytes.push(b'P');
            if let Some(id) = subscriber {
                bytes.push(b'S');
                bytes.extend_from_slice(id.as_bytes());
            }
            if let Some(among) = among {
                bytes.push(b'A');
                bytes.extend_from_slice(&(among.len() as u64).to_le_bytes());
                for id in among {
                    bytes.extend_from_slice(id.as_bytes());
                }
            }
        }
        Scope::Tenant(id) => {
            bytes.push(b'T');
            bytes.extend_from_slice(id.as_bytes());
        }
    }
    bytes.push(match window.granularity {
        Granularity::Hourly => b'H',
        Granularity::Daily => b'D',
    });
    bytes.extend_from_slice(&window.start.timestamp().to_le_bytes());
    bytes.extend_from_slice(&window.end.timestamp().to_le_bytes());
    bytes.push(window.allow_incomplete as u8);
    bytes.push(sum_instances as u8);
    bytes
}

/// Ready while the usage database answers.
#[tonic::async_trait]
impl Readiness for Aggregator {
    async fn check(&self) -> Result<(), String> {
        self.store
            .database()
            .ping()
            .await
            .map_err(|e| e.to_string())
    }
}

#[tonic::async_trait]
impl UsageApi for Aggregator {
    async fn post_usage(
        &self,
        request: Request<pb::PostUsageRequest>,
    ) -> Rpc<pb::PostUsageResponse> {
        let batch = request.into_inner();
        let records = batch.records.len();
        let posted = self.post(batch).await;
        match &posted {
            Ok(response) => metrics::batch_stored(response.accepted, response.duplicates),
            Err(error) => metrics::batch_refused(error.batch_outcome(), records),
        }
        Ok(Response::new(posted?))
    }

    async fn list_subscriber_usage_aggregates(
        &self,
        request: Request<pb::ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<pb::ListUsageAggregatesResponse> {
        let r = request.into_inner();
        let subscriber =
            optional_guid_field("subscriber_id", &r.subscriber_id).map_err(UsageError::from)?;
        let among = match r.subscribers {
            None => None,
            Some(filter) => {
                let mut ids = Vec::with_capacity(filter.subscription_ids.len());
                for (i, text) in filter.subscription_ids.iter().enumerate() {
                    let field = format!("subscribers.subscription_ids[{i}]");
                    ids.push(parse_guid(text).ok_or_else(|| {
                        UsageError::from(Rejection::field(
                            Reason::InvalidProperty,
                            field,
                            "is not a GUID",
                        ))
                    })?);
                }
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
        };
        let query = ListQuery {
            scope: Scope::Provider { subscriber, among },
            start: utc(r.reported_start_time.as_ref()),
            end: utc(r.reported_end_time.as_ref()),
            granularity: r.aggregation_granularity,
            page_size: r.page_size,
            continuation_token: r.continuation_token,
            allow_incomplete: r.allow_incomplete,
            sum_instances: r.sum_instances,
        };
        Ok(Response::new(self.list(query).await?))
    }

    async fn list_usage_aggregates(
        &self,
        request: Request<pb::ListUsageAggregatesRequest>,
    ) -> Rpc<pb::ListUsageAggregatesResponse> {
        let r = request.into_inner();
        let subscription =
            guid_field("subscription_id", &r.subscription_id).map_err(UsageError::from)?;
        let query = ListQuery {
            scope: Scope::Tenant(subscription),
            start: utc(r.reported_start_time.as_ref()),
            end: utc(r.reported_end_time.as_ref()),
            granularity: r.aggregation_granularity,
            page_size: r.page_size,
            continuation_token: r.continuation_token,
            allow_incomplete: r.allow_incomplete,
            sum_instances: false,
        };
        Ok(Response::new(self.list(query).await?))
    }

    async fn list_meters(
        &self,
        request: Request<pb::ListMetersRequest>,
    ) -> Rpc<pb::ListMetersResponse> {
        let include_deprecated = request.into_inner().include_deprecated;
        let meters = self
            .store
            .meters()
            .iter()
            .filter(|m| include_deprecated || !m.deprecated)
            .map(Into::into)
            .collect();
        Ok(Response::new(pb::ListMetersResponse { meters }))
    }

    async fn create_meter(&self, request: Request<pb::CreateMeterRequest>) -> Rpc<pb::Meter> {
        Ok(Response::new(
            self.create(request.into_inner().meter).await?,
        ))
    }

    async fn get_pipeline_status(
        &self,
        _request: Request<pb::GetPipelineStatusRequest>,
    ) -> Rpc<pb::PipelineStatus> {
        let counts = self
            .store
            .pipeline_counts()
            .await
            .map_err(UsageError::from)?;
        Ok(Response::new(pb::PipelineStatus {
            complete_through: Some(timestamp(counts.complete_through)),
            records_stored: counts.records_stored,
            records_pending_fold: counts.records_pending_fold,
        }))
    }
}
