//! ExportCharges: the rated HOURLY rows of a period summed exactly to the daily grain (one row
//! per subscription, meter, instance data and usage day), plus one row per adjustment, encoded by
//! `tally-export` and streamed as chunks. Rows arrive in order of usage hour, so only one usage
//! day's rows are held at a time; the usage service's DAILY rows, counted first, give
//! `rows_total`.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use futures::StreamExt as _;
use tally_core::error::{Reason, Rejection};
use tally_core::quantity::Quantity;
use tally_export::{
    ChargeKind, ChargeRow, ChargeWriter, ExactAmount, ExactQuantity, ExportHeader, Format,
    SharedBuffer,
};
use tally_proto::billing::v1 as pb;
use tally_proto::service_api::BoxStream;
use tonic::Status;

use crate::money::{Money, Price};
use crate::period::BillingPeriod;
use crate::{Billing, BillingError, RatedRow};

/// Bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the encoder and the client.
const CHUNKS_BUFFER: usize = 8;
/// Provider, publisher and invoice issuer in FOCUS.
const PROVIDER: &str = "Tally";
/// ISO 4217's "no currency": before any price sheet.
const NO_CURRENCY: &str = "XXX";

fn invalid(field: &str, description: &str) -> BillingError {
    Rejection::field(Reason::InvalidProperty, field, description).into()
}

/// (subscription, meter, resource URI, location, tags, additional info) of a rated row: the
/// daily row it adds to.
type DayKey = (
    String,
    String,
    String,
    String,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
);

fn day_of(time: DateTime<Utc>) -> DateTime<Utc> {
    time.duration_trunc(TimeDelta::days(1)).unwrap_or(time)
}

/// One daily row being summed: what its hourly rows share beyond the key, and the sums. A
/// usage day of these is all an export holds, so it keeps nothing else.
struct Day {
    tenant_id: String,
    meter_name: String,
    unit: String,
    resource_provider: String,
    usage_start: DateTime<Utc>,
    quantity: Quantity,
    cost: Money,
    /// The one (sheet, price) that rated every part so far; `None` once two differ.
    price: Option<(String, Price)>,
    priced_alike: bool,
}

impl Day {
    /// Adds `row` to its day in `days`, moving its fields rather than copying them.
    fn add_to(days: &mut BTreeMap<DayKey, Day>, row: RatedRow) {
        let RatedRow {
            tenant_id,
            subscription_id,
            meter_id,
            meter_name,
            unit,
            resource_provider,
            resource_uri,
            location,
            tags,
            additional_info,
            usage_start,
            quantity,
            parts,
            cost,
            price_sheet_id,
            ..
        } = row;
        let key = (
            subscription_id,
            meter_id,
            resource_uri,
            location,
            tags,
            additional_info,
        );
        let day = days.entry(key).or_insert_with(|| Day {
            tenant_id,
            meter_name,
            unit,
            resource_provider,
            usage_start,
            quantity: Quantity::ZERO,
            cost: Money::zero(),
            price: None,
            priced_alike: true,
        });
        day.quantity += quantity;
        day.cost += &cost;
        if parts.is_empty() {
            day.priced_alike = false;
        }
        for part in parts {
            match &day.price {
                None if day.priced_alike => {
                    day.price = Some((price_sheet_id.clone(), part.unit_price))
                }
                Some((sheet, price)) if *sheet == price_sheet_id && *price == part.unit_price => {}
                _ => day.priced_alike = false,
            }
        }
    }

    fn into_row(self, key: DayKey) -> Result<ChargeRow, BillingError> {
        let start = day_of(self.usage_start);
        let (unit_price, sheet) = match self.price.filter(|_| self.priced_alike) {
            Some((sheet, price)) => (Some(amount(&price.to_string())?), Some(sheet)),
            None => (None, None),
        };
        let (subscription_id, meter_id, resource_uri, location, tags, additional_info) = key;
        Ok(ChargeRow {
            kind: ChargeKind::Usage,
            tenant_id: self.tenant_id,
            subscription_id,
            charge_period_start: start,
            charge_period_end: start + TimeDelta::days(1),
            meter_id,
            description: self.meter_name,
            service_name: self.resource_provider,
            unit: self.unit,
            resource_id: resource_uri,
            region: location,
            tags,
            additional_info,
            quantity: Some(ExactQuantity::from_units(
                i128::try_from(self.quantity.steps()).map_err(|_| too_large())?,
            )),
            unit_price,
            price_sheet_id: sheet,
            cost: amount(&self.cost.to_string())?,
            adjustment_id: None,
        })
    }
}

fn too_large() -> BillingError {
    BillingError::Corrupt("a value exceeds the export's decimal128(38, 20)".to_string())
}

fn amount(text: &str) -> Result<ExactAmount, BillingError> {
    text.parse().map_err(|_| too_large())
}

fn adjustment_row(
    period: BillingPeriod,
    adjustment: pb::Adjustment,
) -> Result<ChargeRow, BillingError> {
    Ok(ChargeRow {
        kind: ChargeKind::Adjustment,
        tenant_id: adjustment.tenant_id,
        subscription_id: adjustment.subscription_id,
        charge_period_start: period.start(),
        charge_period_end: period.end(),
        meter_id: String::new(),
        description: adjustment.reason,
        service_name: String::new(),
        unit: String::new(),
        resource_id: String::new(),
        region: String::new(),
        tags: BTreeMap::new(),
        additional_info: BTreeMap::new(),
        quantity: None,
        unit_price: None,
        price_sheet_id: None,
        cost: amount(&adjustment.amount)?,
        adjustment_id: Some(adjustment.adjustment_id),
    })
}

/// Encodes rows into the shared buffer and sends a chunk whenever enough bytes gathered.
struct Encoder {
    writer: ChargeWriter<SharedBuffer>,
    buffer: SharedBuffer,
    rows_so_far: u64,
    rows_total: u64,
    sender: tokio::sync::mpsc::Sender<Result<pb::ExportChunk, Status>>,
}

impl Encoder {
    async fn write(&mut self, row: &ChargeRow) -> Result<(), BillingError> {
        self.writer
            .write(row)
            .map_err(|e| BillingError::Corrupt(e.to_string()))?;
        self.rows_so_far += 1;
        if self.buffer.len() >= CHUNK_BYTES {
            self.writer
                .flush()
                .map_err(|e| BillingError::Corrupt(e.to_string()))?;
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> Result<(), BillingError> {
        // An open period may grow between the counting pass and this one.
        self.rows_total = self.rows_total.max(self.rows_so_far);
        let chunk = pb::ExportChunk {
            data: self.buffer.take(),
            rows_so_far: self.rows_so_far,
            rows_total: self.rows_total,
        };
        self.sender
            .send(Ok(chunk))
            .await
            .map_err(|_| BillingError::Corrupt("the client went away".to_string()))
    }

    /// Ends the file (Parquet: the last row group and the footer) and sends the last chunk.
    async fn finish(self) -> Result<(), BillingError> {
        let Encoder {
            writer,
            buffer,
            rows_so_far,
            rows_total,
            sender,
        } = self;
        writer
            .finish()
            .map_err(|e| BillingError::Corrupt(e.to_string()))?;
        let chunk = pb::ExportChunk {
            data: buffer.take(),
            rows_so_far,
            rows_total: rows_total.max(rows_so_far),
        };
        sender
            .send(Ok(chunk))
            .await
            .map_err(|_| BillingError::Corrupt("the client went away".to_string()))
    }

    async fn write_days(&mut self, days: BTreeMap<DayKey, Day>) -> Result<(), BillingError> {
        for (key, day) in days {
            self.write(&day.into_row(key)?).await?;
        }
        Ok(())
    }
}

impl Billing {
    /// ExportCharges: validates the request, counts the rows, then streams the encoded file.
    pub async fn export_charges(
        &self,
        request: pb::ExportChargesRequest,
    ) -> Result<BoxStream<pb::ExportChunk>, BillingError> {
        let format = match pb::ExportFormat::try_from(request.format) {
            Ok(pb::ExportFormat::Csv) => Format::Csv,
            Ok(pb::ExportFormat::Jsonl) => Format::Jsonl,
            Ok(pb::ExportFormat::Parquet) => Format::Parquet,
            Ok(pb::ExportFormat::Focus) => Format::Focus,
            _ => {
                return Err(invalid(
                    "format",
                    "must be EXPORT_FORMAT_CSV, _JSONL, _PARQUET or _FOCUS",
                ));
            }
        };
        let period = BillingPeriod::parse(&request.billing_period)
            .ok_or_else(|| invalid("billing_period", "must be a month written YYYY-MM"))?;
        if period.start() > self.clock.now() {
            return Err(invalid(
                "billing_period",
                "is in the future: nothing is billed in it yet",
            ));
        }
        let tenant = (!request.tenant_id.is_empty()).then_some(request.tenant_id.as_str());
        let mut adjustments = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .list_adjustments(pb::ListAdjustmentsRequest {
                    tenant_id: request.tenant_id.clone(),
                    billing_period: request.billing_period.clone(),
                    page_size: 1000,
                    page_token,
                })
                .await?;
            adjustments.extend(page.adjustments);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }

        let (usage_rows, currency) = self.export_row_count(period, tenant).await?;
        let rows_total = usage_rows + adjustments.len() as u64;
        let header = ExportHeader {
            billing_period: period.to_string(),
            period_start: period.start(),
            period_end: period.end(),
            currency: if currency.is_empty() {
                NO_CURRENCY.to_string()
            } else {
                currency
            },
            provider_name: PROVIDER.to_string(),
        };
        let buffer = SharedBuffer::new();
        let writer = ChargeWriter::new(format, header, buffer.clone())
            .map_err(|e| BillingError::Corrupt(e.to_string()))?;
        let rows = self.rated_rows(&request.billing_period, tenant).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_BUFFER);
        let encoder = Encoder {
            writer,
            buffer,
            rows_so_far: 0,
            rows_total,
            sender: sender.clone(),
        };
        crate::service::spawn_feeding(
            "the export",
            sender,
            encode(encoder, rows, period, adjustments),
        );
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }
}

/// Second pass: sums each usage day, writes it, then the adjustments, then ends the file.
async fn encode(
    mut encoder: Encoder,
    mut rows: crate::RatedRows,
    period: BillingPeriod,
    adjustments: Vec<pb::Adjustment>,
) -> Result<(), BillingError> {
    let (mut current, mut days) = (None, BTreeMap::<DayKey, Day>::new());
    while let Some(row) = rows.next().await {
        let row = row?;
        let day = day_of(row.usage_start);
        if current != Some(day) {
            encoder.write_days(std::mem::take(&mut days)).await?;
            current = Some(day);
        }
        Day::add_to(&mut days, row);
    }
    encoder.write_days(days).await?;
    for adjustment in adjustments {
        encoder.write(&adjustment_row(period, adjustment)?).await?;
    }
    encoder.finish().await
}
