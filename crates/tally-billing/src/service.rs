//! The Billing service: validates and stores price sheets and adjustments, rates HOURLY usage
//! rows as a stream ([`Billing::rated_rows`]), folds them into statements, and stores the final
//! statements of a period once, when it closes.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::Stream;
use prost::Message as _;
use tally_core::quantity::Quantity;
use tally_core::{Clock, FieldViolation, Reason, Rejection};
use tally_proto::billing::v1 as pb;
use tally_proto::convert::{timestamp, utc};
use tally_proto::registration_api::{RegistrationApi, subscription_owners};
use tally_proto::usage::v1::{
    AggregationGranularity, GetPipelineStatusRequest, ListMetersRequest,
    ListSubscriberUsageAggregatesRequest, SubscriberFilter, UsageAggregate,
};
use tally_proto::usage_api::{SubscriberPages, UsageApi};
use tally_store::BillingStore;
use tally_store::billing::{AdjustmentRow, PriceSheetRow};
use tonic::Request;

use crate::Config;
use crate::error::BillingError;
use crate::money::{Money, Price};
use crate::period::{BillingPeriod, minor_digits};
use crate::rating::{MeterRate, RatedPart, Sheet, SheetBook, Tier, rate};

/// Minor digits when no sheet fixes the installation's currency yet.
const DEFAULT_MINOR_DIGITS: u32 = 2;
/// Rows asked from the usage service per page.
const USAGE_PAGE: i32 = 1000;
/// Rated rows buffered between the reader and the consumer.
const RATED_ROWS_BUFFER: usize = 1024;

/// One HOURLY usage row, rated: what exports are made of. A statement's Usage lines are the
/// sums of these per (subscription, meter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatedRow {
    /// Owner of the subscription; empty when no owner is known.
    pub tenant_id: String,
    pub subscription_id: String,
    pub meter_id: String,
    pub meter_name: String,
    pub unit: String,
    /// The meter's resource provider (Azure's MeterCategory, FOCUS ServiceName).
    pub resource_provider: String,
    pub resource_uri: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub additional_info: BTreeMap<String, String>,
    /// The usage hour [usage_start, usage_end).
    pub usage_start: DateTime<Utc>,
    pub usage_end: DateTime<Utc>,
    pub quantity: Quantity,
    /// The priced parts: one at a flat price, one per tier crossed, none if unpriced.
    pub parts: Vec<RatedPart>,
    /// Exact sum of the parts' costs.
    pub cost: Money,
    /// The installation's currency ("" while no price sheet exists).
    pub currency: String,
    /// The sheet in force at the usage hour ("" if none).
    pub price_sheet_id: String,
}

/// A stream of rated rows, in order of usage hour (then subscription, meter, instance data).
pub type RatedRows = Pin<Box<dyn Stream<Item = Result<RatedRow, BillingError>> + Send>>;

#[derive(Clone, Debug)]
struct MeterInfo {
    name: String,
    unit: String,
    resource_provider: String,
}

/// Everything rating needs besides the rows, read once per rating run.
struct RatingContext {
    book: SheetBook,
    currency: String,
    meters: HashMap<String, MeterInfo>,
    owners: HashMap<String, String>,
}

/// Whose rows to rate.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    All,
    Tenant(String),
}

impl Scope {
    fn of(tenant_id: Option<&str>) -> Scope {
        tenant_id.map_or(Scope::All, |t| Scope::Tenant(t.to_string()))
    }
}

/// Where a period stands.
enum PeriodState {
    /// Final statements stored.
    Closed,
    /// complete_through >= end, statements not stored yet.
    Closable,
    /// Still open: usage may still arrive; rate what is folded so far.
    Open,
}

pub struct Billing {
    store: BillingStore,
    usage: Arc<dyn UsageApi>,
    registration: Arc<dyn RegistrationApi>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Config,
    /// Held while a period closes: the closer and a read that finds the period closable would
    /// otherwise both rate the whole period.
    closing: tokio::sync::Mutex<()>,
}

fn invalid(field: &str, description: impl Into<String>) -> Rejection {
    Rejection::field(Reason::InvalidProperty, field, description)
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn from_micros(value: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(value).unwrap_or_default()
}

fn parse_period(field: &str, text: &str) -> Result<BillingPeriod, Rejection> {
    BillingPeriod::parse(text).ok_or_else(|| invalid(field, "must be a month written YYYY-MM"))
}

/// The JSON form of a sheet's prices in the billing database.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredPrice {
    meter_id: String,
    unit_price: String,
    #[serde(default)]
    tiers: Vec<(String, String)>,
}

fn sheet_to_proto(row: &PriceSheetRow) -> Result<pb::PriceSheet, BillingError> {
    let prices: Vec<StoredPrice> =
        serde_json::from_str(&row.prices).map_err(|e| BillingError::Corrupt(e.to_string()))?;
    Ok(pb::PriceSheet {
        price_sheet_id: row.price_sheet_id.clone(),
        name: row.name.clone(),
        currency: row.currency.clone(),
        tenant_id: row.tenant_id.clone(),
        effective_from: Some(timestamp(from_micros(row.effective_from))),
        prices: prices
            .into_iter()
            .map(|p| pb::MeterPrice {
                meter_id: p.meter_id,
                unit_price: p.unit_price,
                tiers: p
                    .tiers
                    .into_iter()
                    .map(|(from_quantity, unit_price)| pb::PriceTier {
                        from_quantity,
                        unit_price,
                    })
                    .collect(),
            })
            .collect(),
        created_time: Some(timestamp(from_micros(row.created_time))),
    })
}

fn sheet_of(row: &PriceSheetRow) -> Result<Sheet, BillingError> {
    let prices: Vec<StoredPrice> =
        serde_json::from_str(&row.prices).map_err(|e| BillingError::Corrupt(e.to_string()))?;
    let corrupt =
        |what: &str| BillingError::Corrupt(format!("price sheet {}: {what}", row.price_sheet_id));
    let mut rates = HashMap::new();
    for price in prices {
        let rate = if price.tiers.is_empty() {
            MeterRate::Flat(
                Price::parse(&price.unit_price, false).map_err(|_| corrupt("unit price"))?,
            )
        } else {
            let mut tiers = Vec::new();
            for (from, unit_price) in &price.tiers {
                tiers.push(Tier {
                    from: Quantity::parse(from).map_err(|_| corrupt("tier"))?,
                    unit_price: Price::parse(unit_price, false)
                        .map_err(|_| corrupt("tier price"))?,
                });
            }
            MeterRate::Tiered(tiers)
        };
        rates.insert(price.meter_id, rate);
    }
    Ok(Sheet {
        price_sheet_id: row.price_sheet_id.clone(),
        tenant_id: row.tenant_id.clone(),
        effective_from: from_micros(row.effective_from),
        rates,
    })
}

fn adjustment_to_proto(row: &AdjustmentRow) -> pb::Adjustment {
    pb::Adjustment {
        adjustment_id: row.adjustment_id.clone(),
        tenant_id: row.tenant_id.clone(),
        subscription_id: row.subscription_id.clone(),
        billing_period: row.billing_period.clone(),
        amount: row.amount.clone(),
        reason: row.reason.clone(),
        created_by: row.created_by.clone(),
        created_time: Some(timestamp(from_micros(row.created_time))),
    }
}

/// Opaque page token: the offset, as text.
fn offset_of(token: &str) -> Result<usize, Rejection> {
    if token.is_empty() {
        return Ok(0);
    }
    token.parse().map_err(|_| {
        Rejection::field(
            Reason::InvalidContinuationToken,
            "page_token",
            "is not a token this service issued",
        )
    })
}

fn page_size(requested: i32) -> usize {
    match requested {
        n if n <= 0 => 100,
        n => (n as usize).min(1000),
    }
}

/// The sums of one statement's Usage lines, per (subscription, meter).
#[derive(Default)]
struct Lines {
    usage: BTreeMap<(String, String), (Quantity, Money, String, String)>,
}

impl Lines {
    fn add(&mut self, row: &RatedRow) {
        let line = self
            .usage
            .entry((row.subscription_id.clone(), row.meter_id.clone()))
            .or_insert_with(|| {
                (
                    Quantity::ZERO,
                    Money::zero(),
                    row.meter_name.clone(),
                    row.unit.clone(),
                )
            });
        line.0 += row.quantity;
        line.1 += &row.cost;
    }
}

impl Billing {
    pub async fn open(
        config: &Config,
        usage: Arc<dyn UsageApi>,
        registration: Arc<dyn RegistrationApi>,
        clock: Arc<dyn Clock>,
    ) -> Result<Billing, BillingError> {
        Ok(Billing {
            store: BillingStore::open(&config.database_url).await?,
            usage,
            registration,
            clock,
            config: config.clone(),
            closing: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the billing database answers now.
    pub async fn ping(&self) -> Result<(), BillingError> {
        Ok(self.store.ping().await?)
    }

    async fn complete_through(&self) -> Result<DateTime<Utc>, BillingError> {
        let status = self
            .usage
            .get_pipeline_status(Request::new(GetPipelineStatusRequest {}))
            .await?
            .into_inner();
        Ok(utc(status.complete_through.as_ref()).unwrap_or_default())
    }

    async fn meters(&self) -> Result<HashMap<String, MeterInfo>, BillingError> {
        let meters = self
            .usage
            .list_meters(Request::new(ListMetersRequest {
                include_deprecated: true,
            }))
            .await?
            .into_inner()
            .meters;
        Ok(meters
            .into_iter()
            .map(|m| {
                (
                    m.meter_id,
                    MeterInfo {
                        name: m.name,
                        unit: m.unit,
                        resource_provider: m.resource_provider,
                    },
                )
            })
            .collect())
    }

    /// The installation's currency: that of the first price sheet ("" before any).
    fn currency_of(rows: &[PriceSheetRow]) -> String {
        rows.first().map(|r| r.currency.clone()).unwrap_or_default()
    }

    async fn context(&self) -> Result<RatingContext, BillingError> {
        let rows = self.store.price_sheets().await?;
        let sheets = rows.iter().map(sheet_of).collect::<Result<Vec<_>, _>>()?;
        Ok(RatingContext {
            book: SheetBook::new(sheets),
            currency: Self::currency_of(&rows),
            meters: self.meters().await?,
            owners: subscription_owners(self.registration.as_ref()).await?,
        })
    }

    async fn period_state(&self, period: BillingPeriod) -> Result<PeriodState, BillingError> {
        if self.store.is_closed(&period.to_string()).await? {
            return Ok(PeriodState::Closed);
        }
        if self.complete_through().await? >= period.end() {
            return Ok(PeriodState::Closable);
        }
        Ok(PeriodState::Open)
    }

    /// Refuses a change into `period` when it is closed.
    async fn refuse_if_closed(
        &self,
        period: BillingPeriod,
        field: &str,
    ) -> Result<(), BillingError> {
        match self.period_state(period).await? {
            PeriodState::Open => Ok(()),
            _ => Err(Rejection::field(
                Reason::PeriodClosed,
                field,
                format!("billing period {period} is closed; its statements are final"),
            )
            .into()),
        }
    }

    /// The RATED HOURLY rows of `period` (usage reported in it), of one tenant (`Some("")`: the
    /// subscriptions with no known owner) or of all (`None`), one per instance data, streamed:
    /// the period is never held in memory, only the rows of one (usage hour, subscription,
    /// meter) at a time and the cumulative quantity per (subscription, meter) that tiers need.
    /// An open period is rated as far as usage is folded. Exports are built from these rows;
    /// statements rate the same usage summed over instances, which costs the same.
    pub async fn rated_rows(
        &self,
        period: &str,
        tenant_id: Option<&str>,
    ) -> Result<RatedRows, BillingError> {
        let period = parse_period("billing_period", period)?;
        let closed = !matches!(self.period_state(period).await?, PeriodState::Open);
        let context = Arc::new(self.context().await?);
        let reading = Reading {
            period,
            closed,
            scope: Scope::of(tenant_id),
            detail: Detail::PerInstance,
        };
        Ok(self.rate_period(reading, context))
    }

    fn rate_period(&self, reading: Reading, context: Arc<RatingContext>) -> RatedRows {
        let (sender, receiver) = tokio::sync::mpsc::channel(RATED_ROWS_BUFFER);
        let usage = self.usage.clone();
        let clock = self.clock.clone();
        let feeding = sender.clone();
        spawn_feeding("rating", sender, async move {
            read_and_rate(usage.as_ref(), clock.as_ref(), reading, context, &feeding).await
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
    }
}

/// Runs `feed`, which sends a stream's items into `sender`, in a task of its own; its error, or
/// a panic (logged), becomes the stream's last item, so a reader never takes a stream that
/// stopped short for a complete one.
pub(crate) fn spawn_feeding<T, E>(
    what: &'static str,
    sender: tokio::sync::mpsc::Sender<Result<T, E>>,
    feed: impl Future<Output = Result<(), BillingError>> + Send + 'static,
) where
    T: Send + 'static,
    E: From<BillingError> + Send + 'static,
{
    use futures::FutureExt;
    tokio::spawn(async move {
        let error = match std::panic::AssertUnwindSafe(feed).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => {
                tracing::error!(
                    what,
                    "a task feeding a stream panicked; the stream ends with an error"
                );
                BillingError::Panicked(what)
            }
        };
        let _ = sender.send(Err(E::from(error))).await;
    });
}

/// The usage filter of `scope`: `Some(None)` reads every subscription, `None` none at all (a
/// tenant that owns no subscription).
fn subscriber_filter(scope: &Scope, context: &RatingContext) -> Option<Option<SubscriberFilter>> {
    match scope {
        Scope::Tenant(tenant) if !tenant.is_empty() => {
            let subscription_ids: Vec<String> = context
                .owners
                .iter()
                .filter(|(_, owner)| *owner == tenant)
                .map(|(s, _)| s.clone())
                .collect();
            (!subscription_ids.is_empty()).then_some(Some(SubscriberFilter { subscription_ids }))
        }
        _ => Some(None),
    }
}

/// Whether a usage row of `subscription_id` belongs to `scope` (the filter above leaves the
/// subscriptions with no known owner to this check).
fn in_scope(scope: &Scope, context: &RatingContext, subscription_id: &str) -> bool {
    match scope {
        Scope::All => true,
        Scope::Tenant(tenant) => {
            context
                .owners
                .get(&subscription_id.to_ascii_lowercase())
                .map_or("", String::as_str)
                == tenant
        }
    }
}

impl Billing {
    /// How many usage rows an export of `period` holds, and the installation's currency ("" before
    /// any price sheet). The DAILY rows have exactly the export's grain (subscription, meter,
    /// instance data, usage day; a month is whole reported days), so counting them spares a
    /// rating pass over 24 times as many HOURLY rows. An open period is counted up to today's
    /// midnight: a lower bound, which the export's last chunk corrects.
    pub(crate) async fn export_row_count(
        &self,
        period: BillingPeriod,
        tenant_id: Option<&str>,
    ) -> Result<(u64, String), BillingError> {
        let closed = !matches!(self.period_state(period).await?, PeriodState::Open);
        let context = self.context().await?;
        let scope = Scope::of(tenant_id);
        let start = period.start();
        let end = if closed {
            period.end()
        } else {
            let today = self
                .clock
                .now()
                .duration_trunc(TimeDelta::days(1))
                .unwrap_or_default();
            today.min(period.end())
        };
        let Some(subscribers) = subscriber_filter(&scope, &context) else {
            return Ok((0, context.currency));
        };
        if end <= start {
            return Ok((0, context.currency));
        }
        let mut rows = 0;
        let mut pages = SubscriberPages::new(
            self.usage.as_ref(),
            ListSubscriberUsageAggregatesRequest {
                reported_start_time: Some(timestamp(start)),
                reported_end_time: Some(timestamp(end)),
                aggregation_granularity: AggregationGranularity::Daily as i32,
                page_size: USAGE_PAGE,
                allow_incomplete: !closed,
                subscribers,
                ..Default::default()
            },
        );
        while let Some(page) = pages.next().await {
            rows += page?
                .iter()
                .filter(|row| in_scope(&scope, &context, &row.subscription_id))
                .count() as u64;
        }
        Ok((rows, context.currency))
    }
}

/// What one rating pass reads.
struct Reading {
    period: BillingPeriod,
    /// Closed (or closable): the whole period, complete; else as far as folded.
    closed: bool,
    scope: Scope,
    detail: Detail,
}

/// How finely rated rows are cut within a usage hour of a subscription and meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detail {
    /// One row per instance data: what exports carry.
    PerInstance,
    /// One row for all instances, summed by the usage service: all a statement needs, since
    /// per (subscription, meter) and hour the rating does not depend on the order within the
    /// hour, and many times fewer rows to read and rate.
    SummedOverInstances,
}

/// Pages through the HOURLY rows reported in `period` (as far as folded, unless `closed`) and
/// rates them hour by hour into `sender`.
async fn read_and_rate(
    usage: &dyn UsageApi,
    clock: &dyn Clock,
    reading: Reading,
    context: Arc<RatingContext>,
    sender: &tokio::sync::mpsc::Sender<Result<RatedRow, BillingError>>,
) -> Result<(), BillingError> {
    let Reading {
        period,
        closed,
        scope,
        detail,
    } = reading;
    let start = period.start();
    let end = if closed {
        period.end()
    } else {
        // An open window may end at the boundary that closes the current hour.
        let hour = clock
            .now()
            .duration_trunc(TimeDelta::hours(1))
            .unwrap_or_default();
        (hour + TimeDelta::hours(1)).min(period.end())
    };
    if end <= start {
        return Ok(());
    }
    let Some(subscribers) = subscriber_filter(&scope, &context) else {
        return Ok(());
    };
    let mut consumed: HashMap<(String, String), Quantity> = HashMap::new();
    // The rows of one (usage hour, subscription, meter): the usage service's order keeps them
    // together, and tiers only need each such group in the contract's order.
    let mut group: Vec<UsageAggregate> = Vec::new();
    let mut pages = SubscriberPages::new(
        usage,
        ListSubscriberUsageAggregatesRequest {
            reported_start_time: Some(timestamp(start)),
            reported_end_time: Some(timestamp(end)),
            aggregation_granularity: AggregationGranularity::Hourly as i32,
            page_size: USAGE_PAGE,
            allow_incomplete: !closed,
            subscribers,
            sum_instances: detail == Detail::SummedOverInstances,
            ..Default::default()
        },
    );
    while let Some(page) = pages.next().await {
        for row in page? {
            if !in_scope(&scope, &context, &row.subscription_id) {
                continue;
            }
            if group.first().is_some_and(|first| {
                first.usage_start_time != row.usage_start_time
                    || first.subscription_id != row.subscription_id
                    || first.meter_id != row.meter_id
            }) {
                let rows = std::mem::take(&mut group);
                if !rate_group(rows, &context, &mut consumed, sender).await {
                    return Ok(());
                }
            }
            group.push(row);
        }
    }
    rate_group(group, &context, &mut consumed, sender).await;
    Ok(())
}

impl Billing {
    /// Folds the rated rows of `scope` into Usage lines per tenant.
    async fn fold_lines(
        &self,
        period: BillingPeriod,
        closed: bool,
        scope: Scope,
        context: Arc<RatingContext>,
    ) -> Result<BTreeMap<String, Lines>, BillingError> {
        use futures::StreamExt as _;
        let reading = Reading {
            period,
            closed,
            scope,
            detail: Detail::SummedOverInstances,
        };
        let mut rows = self.rate_period(reading, context);
        let mut lines: BTreeMap<String, Lines> = BTreeMap::new();
        while let Some(row) = rows.next().await {
            let row = row?;
            lines.entry(row.tenant_id.clone()).or_default().add(&row);
        }
        Ok(lines)
    }

    fn statement(
        tenant_id: &str,
        period: BillingPeriod,
        currency: &str,
        is_final: bool,
        lines: Option<&Lines>,
        adjustments: &[AdjustmentRow],
    ) -> pb::Statement {
        let mut total = Money::zero();
        let mut out = Vec::new();
        if let Some(lines) = lines {
            for ((subscription_id, meter_id), (quantity, cost, meter_name, unit)) in &lines.usage {
                total += cost;
                out.push(pb::StatementLine {
                    kind: "Usage".into(),
                    subscription_id: subscription_id.clone(),
                    meter_id: meter_id.clone(),
                    meter_name: meter_name.clone(),
                    unit: unit.clone(),
                    quantity: quantity.to_string(),
                    cost: cost.to_string(),
                    description: String::new(),
                });
            }
        }
        for adjustment in adjustments.iter().filter(|a| a.tenant_id == tenant_id) {
            let amount = Price::parse(&adjustment.amount, true)
                .map(|a| a.to_money())
                .unwrap_or_default();
            total += &amount;
            out.push(pb::StatementLine {
                kind: "Adjustment".into(),
                subscription_id: adjustment.subscription_id.clone(),
                cost: amount.to_string(),
                description: adjustment.reason.clone(),
                ..Default::default()
            });
        }
        let digits = minor_digits(currency).unwrap_or(DEFAULT_MINOR_DIGITS);
        let mut statement = pb::Statement {
            tenant_id: tenant_id.to_string(),
            billing_period: period.to_string(),
            period_start: Some(timestamp(period.start())),
            period_end: Some(timestamp(period.end())),
            currency: currency.to_string(),
            r#final: is_final,
            lines: out,
            amount_due: total.round_half_even(digits),
            total: total.to_string(),
            etag: String::new(),
        };
        let hash = xxhash_rust::xxh3::xxh3_128(&statement.encode_to_vec());
        statement.etag = format!("\"{hash:032x}\"");
        statement
    }

    /// Every tenant's statement of `period` (with usage or adjustments), in tenant order, rated
    /// now; `closed` marks them final.
    async fn every_statement(
        &self,
        period: BillingPeriod,
        closed: bool,
    ) -> Result<Vec<pb::Statement>, BillingError> {
        let context = Arc::new(self.context().await?);
        let lines = self
            .fold_lines(period, closed, Scope::All, context.clone())
            .await?;
        let adjustments = self.store.adjustments(&period.to_string(), None).await?;
        let mut tenants: Vec<&str> = lines.keys().map(String::as_str).collect();
        tenants.extend(adjustments.iter().map(|a| a.tenant_id.as_str()));
        tenants.sort_unstable();
        tenants.dedup();
        Ok(tenants
            .into_iter()
            .map(|tenant| {
                Self::statement(
                    tenant,
                    period,
                    &context.currency,
                    closed,
                    lines.get(tenant),
                    &adjustments,
                )
            })
            .collect())
    }

    /// Rates a closable period once and stores every tenant's final statement.
    async fn close(&self, period: BillingPeriod) -> Result<(), BillingError> {
        let _closing = self.closing.lock().await;
        if self.store.is_closed(&period.to_string()).await? {
            return Ok(());
        }
        let bodies: Vec<(String, String)> = self
            .every_statement(period, true)
            .await?
            .into_iter()
            .map(|statement| {
                let body =
                    base64::engine::general_purpose::STANDARD.encode(statement.encode_to_vec());
                (statement.tenant_id, body)
            })
            .collect();
        let closed_time = micros(self.clock.now());
        if self
            .store
            .store_final_statements(&period.to_string(), closed_time, &bodies)
            .await?
        {
            tracing::info!(%period, statements = bodies.len(), "billing period closed");
        }
        Ok(())
    }

    /// Makes sure a closed period's statements are stored; true when the period is closed.
    async fn ensure_closed(&self, period: BillingPeriod) -> Result<bool, BillingError> {
        match self.period_state(period).await? {
            PeriodState::Closed => Ok(true),
            PeriodState::Closable => {
                self.close(period).await?;
                Ok(true)
            }
            PeriodState::Open => Ok(false),
        }
    }

    fn decode(body: &str) -> Result<pb::Statement, BillingError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| BillingError::Corrupt(e.to_string()))?;
        pb::Statement::decode(bytes.as_slice()).map_err(|e| BillingError::Corrupt(e.to_string()))
    }

    /// Closes, in the background, every period that has become closable since the last look:
    /// the month before the one `complete_through` is in.
    pub(crate) async fn close_completed(&self) -> Result<(), BillingError> {
        let complete_through = self.complete_through().await?;
        let last_complete = BillingPeriod::of(complete_through - TimeDelta::microseconds(1));
        let candidate = if complete_through >= last_complete.end() {
            last_complete
        } else {
            BillingPeriod::of(last_complete.start() - TimeDelta::microseconds(1))
        };
        if complete_through > DateTime::<Utc>::default() {
            self.ensure_closed(candidate).await?;
        }
        Ok(())
    }

    pub async fn get_statement(
        &self,
        request: pb::GetStatementRequest,
    ) -> Result<pb::Statement, BillingError> {
        let period = parse_period("billing_period", &request.billing_period)?;
        if self.ensure_closed(period).await? {
            if let Some(body) = self
                .store
                .final_statement(&period.to_string(), &request.tenant_id)
                .await?
            {
                return Self::decode(&body);
            }
            let rows = self.store.price_sheets().await?;
            return Ok(Self::statement(
                &request.tenant_id,
                period,
                &Self::currency_of(&rows),
                true,
                None,
                &[],
            ));
        }
        let context = Arc::new(self.context().await?);
        let lines = self
            .fold_lines(
                period,
                false,
                Scope::Tenant(request.tenant_id.clone()),
                context.clone(),
            )
            .await?;
        let adjustments = self
            .store
            .adjustments(&period.to_string(), Some(&request.tenant_id))
            .await?;
        Ok(Self::statement(
            &request.tenant_id,
            period,
            &context.currency,
            false,
            lines.get(&request.tenant_id),
            &adjustments,
        ))
    }

    pub async fn list_statements(
        &self,
        request: pb::ListStatementsRequest,
    ) -> Result<pb::ListStatementsResponse, BillingError> {
        let period = parse_period("billing_period", &request.billing_period)?;
        let limit = page_size(request.page_size);
        let after = (!request.page_token.is_empty()).then(|| {
            String::from_utf8(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&request.page_token)
                    .unwrap_or_default(),
            )
            .unwrap_or_default()
        });
        if after.as_deref() == Some("") {
            return Err(Rejection::field(
                Reason::InvalidContinuationToken,
                "page_token",
                "is not a token this service issued",
            )
            .into());
        }
        // Tokens hold "t" + the last tenant id, so the empty tenant id has a token too.
        let after_tenant = match after.as_deref() {
            Some(text) => Some(
                text.strip_prefix('t')
                    .ok_or_else(|| {
                        Rejection::field(
                            Reason::InvalidContinuationToken,
                            "page_token",
                            "is not a token this service issued",
                        )
                    })?
                    .to_string(),
            ),
            None => None,
        };
        let statements = if self.ensure_closed(period).await? {
            self.store
                .final_statements(
                    &period.to_string(),
                    after_tenant.as_deref(),
                    limit as u64 + 1,
                )
                .await?
                .iter()
                .map(|(_, body)| Self::decode(body))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            self.every_statement(period, false)
                .await?
                .into_iter()
                .filter(|s| {
                    after_tenant
                        .as_deref()
                        .is_none_or(|after| s.tenant_id.as_str() > after)
                })
                .take(limit + 1)
                .collect()
        };
        let mut statements = statements;
        let next_page_token = if statements.len() > limit {
            statements.truncate(limit);
            let last = statements
                .last()
                .map(|s| s.tenant_id.clone())
                .unwrap_or_default();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("t{last}"))
        } else {
            String::new()
        };
        Ok(pb::ListStatementsResponse {
            statements,
            next_page_token,
        })
    }

    pub async fn create_price_sheet(
        &self,
        request: pb::CreatePriceSheetRequest,
    ) -> Result<pb::PriceSheet, BillingError> {
        let sheet = request.price_sheet.unwrap_or_default();
        let existing = self.store.price_sheets().await?;
        let installation_currency = Self::currency_of(&existing);
        let meters = self.meters().await?;
        let mut violations: Vec<FieldViolation> = Vec::new();
        let mut unknown_meters = 0;
        let mut bad = |field: String, description: String| {
            violations.push(FieldViolation::new(field, description))
        };
        if sheet.name.trim().is_empty() {
            bad("price_sheet.name".into(), "is required".into());
        }
        if minor_digits(&sheet.currency).is_none() {
            bad(
                "price_sheet.currency".into(),
                format!(
                    "{:?} is not an ISO 4217 currency Tally knows",
                    sheet.currency
                ),
            );
        } else if !installation_currency.is_empty() && sheet.currency != installation_currency {
            bad(
                "price_sheet.currency".into(),
                format!("must be the installation's currency {installation_currency}"),
            );
        }
        let effective_from = utc(sheet.effective_from.as_ref());
        match effective_from {
            None => bad("price_sheet.effective_from".into(), "is required".into()),
            Some(t) if t.duration_trunc(TimeDelta::hours(1)).ok() != Some(t) => bad(
                "price_sheet.effective_from".into(),
                "must be on a UTC hour boundary".into(),
            ),
            Some(_) => {}
        }
        let mut stored = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, price) in sheet.prices.iter().enumerate() {
            let field = format!("price_sheet.prices[{i}]");
            if !meters.contains_key(&price.meter_id) {
                unknown_meters += 1;
                bad(
                    format!("{field}.meter_id"),
                    format!("meter {:?} is not in the catalog", price.meter_id),
                );
            } else if !seen.insert(price.meter_id.clone()) {
                bad(
                    format!("{field}.meter_id"),
                    "is priced twice on this sheet".into(),
                );
            }
            let mut tiers = Vec::new();
            if price.tiers.is_empty() {
                if let Err(e) = Price::parse(&price.unit_price, false) {
                    bad(format!("{field}.unit_price"), e.to_string());
                }
            } else {
                let mut previous: Option<Quantity> = None;
                for (j, tier) in price.tiers.iter().enumerate() {
                    let tier_field = format!("{field}.tiers[{j}]");
                    match Quantity::parse(&tier.from_quantity) {
                        Err(e) => bad(format!("{tier_field}.from_quantity"), e.to_string()),
                        Ok(from) => {
                            if j == 0 && from != Quantity::ZERO {
                                bad(
                                    format!("{tier_field}.from_quantity"),
                                    "the first tier must start at 0".into(),
                                );
                            }
                            if previous.is_some_and(|p| from <= p) {
                                bad(
                                    format!("{tier_field}.from_quantity"),
                                    "tiers must be in strictly ascending order".into(),
                                );
                            }
                            previous = Some(from);
                        }
                    }
                    if let Err(e) = Price::parse(&tier.unit_price, false) {
                        bad(format!("{tier_field}.unit_price"), e.to_string());
                    }
                    tiers.push((tier.from_quantity.clone(), tier.unit_price.clone()));
                }
            }
            stored.push(StoredPrice {
                meter_id: price.meter_id.clone(),
                unit_price: price.unit_price.clone(),
                tiers,
            });
        }
        if !violations.is_empty() {
            let reason = if unknown_meters == violations.len() {
                Reason::UnknownMeter
            } else {
                Reason::InvalidProperty
            };
            let message = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Rejection {
                reason,
                message,
                violations,
            }
            .into());
        }
        let Some(effective_from) = effective_from else {
            return Err(invalid("price_sheet.effective_from", "is required").into());
        };
        self.refuse_if_closed(
            BillingPeriod::of(effective_from),
            "price_sheet.effective_from",
        )
        .await?;
        let row = PriceSheetRow {
            price_sheet_id: uuid::Uuid::new_v4().to_string(),
            name: sheet.name,
            currency: sheet.currency,
            tenant_id: sheet.tenant_id,
            effective_from: micros(effective_from),
            created_time: micros(self.clock.now()),
            prices: serde_json::to_string(&stored)
                .map_err(|e| BillingError::Corrupt(e.to_string()))?,
        };
        self.store.insert_price_sheet(&row).await?;
        sheet_to_proto(&row)
    }

    pub async fn list_price_sheets(
        &self,
        request: pb::ListPriceSheetsRequest,
    ) -> Result<pb::ListPriceSheetsResponse, BillingError> {
        let offset = offset_of(&request.page_token)?;
        let limit = page_size(request.page_size);
        let rows: Vec<PriceSheetRow> = self
            .store
            .price_sheets()
            .await?
            .into_iter()
            .filter(|r| request.tenant_id.is_empty() || r.tenant_id == request.tenant_id)
            .collect();
        let page = rows
            .iter()
            .skip(offset)
            .take(limit)
            .map(sheet_to_proto)
            .collect::<Result<Vec<_>, _>>()?;
        let next = offset + page.len();
        Ok(pb::ListPriceSheetsResponse {
            price_sheets: page,
            next_page_token: if next < rows.len() {
                next.to_string()
            } else {
                String::new()
            },
        })
    }

    /// `created_by` is taken as given: the gateway's guard sets it from the caller's token.
    pub async fn create_adjustment(
        &self,
        request: pb::CreateAdjustmentRequest,
    ) -> Result<pb::Adjustment, BillingError> {
        let adjustment = request.adjustment.unwrap_or_default();
        let mut violations = Vec::new();
        let period = BillingPeriod::parse(&adjustment.billing_period);
        if period.is_none() {
            violations.push(FieldViolation::new(
                "adjustment.billing_period",
                "must be a month written YYYY-MM",
            ));
        }
        if let Err(e) = Price::parse(&adjustment.amount, true) {
            violations.push(FieldViolation::new("adjustment.amount", e.to_string()));
        }
        if adjustment.reason.trim().is_empty() {
            violations.push(FieldViolation::new("adjustment.reason", "is required"));
        }
        if !violations.is_empty() {
            let message = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Rejection {
                reason: Reason::InvalidProperty,
                message,
                violations,
            }
            .into());
        }
        let (Some(period), Ok(amount)) = (period, Price::parse(&adjustment.amount, true)) else {
            return Err(invalid("adjustment", "is not valid").into());
        };
        self.refuse_if_closed(period, "adjustment.billing_period")
            .await?;
        let row = AdjustmentRow {
            adjustment_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: adjustment.tenant_id,
            subscription_id: adjustment.subscription_id,
            billing_period: period.to_string(),
            amount: amount.to_string(),
            reason: adjustment.reason,
            created_by: adjustment.created_by,
            created_time: micros(self.clock.now()),
        };
        self.store.insert_adjustment(&row).await?;
        Ok(adjustment_to_proto(&row))
    }

    pub async fn list_adjustments(
        &self,
        request: pb::ListAdjustmentsRequest,
    ) -> Result<pb::ListAdjustmentsResponse, BillingError> {
        let period = parse_period("billing_period", &request.billing_period)?;
        let offset = offset_of(&request.page_token)?;
        let limit = page_size(request.page_size);
        let tenant = (!request.tenant_id.is_empty()).then_some(request.tenant_id.as_str());
        let rows = self.store.adjustments(&period.to_string(), tenant).await?;
        let page: Vec<_> = rows
            .iter()
            .skip(offset)
            .take(limit)
            .map(adjustment_to_proto)
            .collect();
        let next = offset + page.len();
        Ok(pb::ListAdjustmentsResponse {
            adjustments: page,
            next_page_token: if next < rows.len() {
                next.to_string()
            } else {
                String::new()
            },
        })
    }
}

/// Rates the rows of one (usage hour, subscription, meter) in the contract's order (resource
/// URI, then the rest of the instance data) and sends them; false when the receiver is gone.
async fn rate_group(
    mut rows: Vec<UsageAggregate>,
    context: &RatingContext,
    consumed: &mut HashMap<(String, String), Quantity>,
    sender: &tokio::sync::mpsc::Sender<Result<RatedRow, BillingError>>,
) -> bool {
    let key = |r: &UsageAggregate| {
        let instance = r.instance_data.clone().unwrap_or_default();
        (
            instance.resource_uri,
            instance.location,
            instance.tags.into_iter().collect::<Vec<_>>(),
            instance.additional_info.into_iter().collect::<Vec<_>>(),
        )
    };
    rows.sort_by_cached_key(key);
    for row in rows {
        let rated = rate_row(row, context, consumed);
        if sender.send(rated).await.is_err() {
            return false;
        }
    }
    true
}

fn rate_row(
    row: UsageAggregate,
    context: &RatingContext,
    consumed: &mut HashMap<(String, String), Quantity>,
) -> Result<RatedRow, BillingError> {
    let quantity = Quantity::parse(&row.quantity).map_err(|e| {
        BillingError::Corrupt(format!("usage row quantity {:?}: {e}", row.quantity))
    })?;
    let usage_start = utc(row.usage_start_time.as_ref()).unwrap_or_default();
    let usage_end = utc(row.usage_end_time.as_ref()).unwrap_or_default();
    let tenant_id = context
        .owners
        .get(&row.subscription_id.to_ascii_lowercase())
        .cloned()
        .unwrap_or_default();
    let sheet = context.book.in_force(&tenant_id, usage_start);
    let meter_rate = sheet.and_then(|s| s.rates.get(&row.meter_id));
    let so_far = consumed
        .entry((row.subscription_id.clone(), row.meter_id.clone()))
        .or_default();
    let parts = rate(meter_rate, so_far, quantity);
    let mut cost = Money::zero();
    for part in &parts {
        cost += &part.cost;
    }
    let meter = context
        .meters
        .get(&row.meter_id)
        .cloned()
        .unwrap_or(MeterInfo {
            name: String::new(),
            unit: String::new(),
            resource_provider: String::new(),
        });
    let instance = row.instance_data.unwrap_or_default();
    Ok(RatedRow {
        tenant_id,
        subscription_id: row.subscription_id,
        meter_id: row.meter_id,
        meter_name: meter.name,
        unit: meter.unit,
        resource_provider: meter.resource_provider,
        resource_uri: instance.resource_uri,
        location: instance.location,
        tags: instance.tags,
        additional_info: instance.additional_info,
        usage_start,
        usage_end,
        quantity,
        parts,
        cost,
        currency: context.currency.clone(),
        price_sheet_id: sheet.map(|s| s.price_sheet_id.clone()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_feed_ends_its_stream_with_an_error_not_short() {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<u32, BillingError>>(4);
        let feeding = sender.clone();
        spawn_feeding("the test feed", sender, async move {
            let _ = feeding.send(Ok(1)).await;
            panic!("a bug while feeding")
        });
        assert!(matches!(receiver.recv().await, Some(Ok(1))));
        assert!(matches!(
            receiver.recv().await,
            Some(Err(BillingError::Panicked("the test feed")))
        ));
        assert!(receiver.recv().await.is_none());
    }
}
