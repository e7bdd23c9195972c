//! Parquet through the Apache Arrow crates: quantities decimal128(38, 10), costs and prices
//! decimal128(38, 20), times timestamp(microsecond, UTC), text UTF-8. Rows are collected into
//! Arrow batches of [`BATCH_ROWS`] and the writer closes a row group every
//! [`ROW_GROUP_ROWS`], so memory stays bounded whatever the period's size.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::ExportError;
use crate::columns::{ColumnType, PLAIN_COLUMNS, Value, plain_values};
use crate::decimal::{ExactAmount, ExactQuantity};
use crate::row::{ChargeRow, ExportHeader};

/// Rows per Arrow batch handed to the Parquet writer.
pub const BATCH_ROWS: usize = 8192;
/// Rows per Parquet row group (each is written out when full; the writer holds one encoded).
pub const ROW_GROUP_ROWS: usize = 16_384;

enum Column {
    Text(StringBuilder),
    Quantity(Decimal128Builder),
    Amount(Decimal128Builder),
    Time(TimestampMicrosecondBuilder),
}

fn data_type(column: ColumnType) -> DataType {
    match column {
        ColumnType::Text => DataType::Utf8,
        ColumnType::Quantity => {
            DataType::Decimal128(ExactQuantity::PRECISION, ExactQuantity::SCALE)
        }
        ColumnType::Amount => DataType::Decimal128(ExactAmount::PRECISION, ExactAmount::SCALE),
        ColumnType::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// The Arrow schema of the Parquet export.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        PLAIN_COLUMNS
            .iter()
            .map(|(name, column)| {
                Field::new(
                    *name,
                    data_type(*column),
                    !matches!(column, ColumnType::Time),
                )
            })
            .collect::<Vec<_>>(),
    ))
}

pub struct ParquetWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    header: ExportHeader,
    schema: SchemaRef,
    columns: Vec<Column>,
    buffered: usize,
}

impl<W: Write + Send> ParquetWriter<W> {
    pub fn new(sink: W, header: ExportHeader) -> Result<Self, ExportError> {
        let schema = schema();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(properties))?;
        Ok(ParquetWriter {
            writer,
            header,
            schema,
            columns: new_columns(),
            buffered: 0,
        })
    }

    pub fn write(&mut self, row: &ChargeRow) -> Result<(), ExportError> {
        for (column, value) in self.columns.iter_mut().zip(plain_values(&self.header, row)) {
            match (column, value) {
                (Column::Text(builder), Value::Text(text)) => builder.append_option(text),
                (Column::Quantity(builder), Value::Quantity(q)) => {
                    builder.append_option(q.map(|q| q.units()))
                }
                (Column::Amount(builder), Value::Amount(a)) => {
                    builder.append_option(a.map(|a| a.units()))
                }
                (Column::Time(builder), Value::Time(time)) => {
                    builder.append_value(time.timestamp_micros())
                }
                _ => unreachable!("PLAIN_COLUMNS and plain_values agree on every column's type"),
            }
        }
        self.buffered += 1;
        if self.buffered == BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), ExportError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|column| -> Result<ArrayRef, ExportError> {
                Ok(match column {
                    Column::Text(builder) => Arc::new(builder.finish()),
                    Column::Quantity(builder) => {
                        Arc::new(builder.finish().with_precision_and_scale(
                            ExactQuantity::PRECISION,
                            ExactQuantity::SCALE,
                        )?)
                    }
                    Column::Amount(builder) => Arc::new(
                        builder
                            .finish()
                            .with_precision_and_scale(ExactAmount::PRECISION, ExactAmount::SCALE)?,
                    ),
                    Column::Time(builder) => Arc::new(builder.finish().with_timezone("UTC")),
                })
            })
            .collect::<Result<_, _>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.writer.write(&batch)?;
        self.buffered = 0;
        Ok(())
    }

    /// Parquet's bytes reach the sink a row group at a time; nothing to do between rows.
    pub fn flush(&mut self) -> Result<(), ExportError> {
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, ExportError> {
        self.write_batch()?;
        Ok(self.writer.into_inner()?)
    }
}

fn new_columns() -> Vec<Column> {
    PLAIN_COLUMNS
        .iter()
        .map(|(_, column)| match column {
            ColumnType::Text => Column::Text(StringBuilder::new()),
            ColumnType::Quantity => Column::Quantity(Decimal128Builder::new()),
            ColumnType::Amount => Column::Amount(Decimal128Builder::new()),
            ColumnType::Time => Column::Time(TimestampMicrosecondBuilder::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::{Array, Decimal128Array, StringArray, TimestampMicrosecondArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::sample::{AWKWARD_TAG, SamplePeriod, header};

    #[test]
    fn parquet_reads_back_with_exact_decimals_utc_times_and_several_row_groups() {
        // More rows than a row group, so the writer must close groups as it goes.
        let sample = SamplePeriod {
            tenants: 3,
            subscriptions_per_tenant: 800,
            days: 30,
        };
        let file = tempfile::tempfile().unwrap();
        let mut writer = ParquetWriter::new(file, header()).unwrap();
        let mut expected = ExactAmount::ZERO;
        for row in sample.rows() {
            expected = expected.checked_add(row.cost).unwrap();
            writer.write(&row).unwrap();
        }
        let file = writer.finish().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert!(
            reader.metadata().num_row_groups() >= 3,
            "row groups: {}",
            reader.metadata().num_row_groups()
        );
        let schema = reader.schema().clone();
        assert_eq!(
            schema
                .field_with_name("ConsumedQuantity")
                .unwrap()
                .data_type(),
            &DataType::Decimal128(38, 10)
        );
        assert_eq!(
            schema.field_with_name("BilledCost").unwrap().data_type(),
            &DataType::Decimal128(38, 20)
        );
        assert_eq!(
            schema.field_with_name("ListUnitPrice").unwrap().data_type(),
            &DataType::Decimal128(38, 20)
        );
        assert_eq!(
            schema
                .field_with_name("ChargePeriodStart")
                .unwrap()
                .data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let (mut rows, mut total, mut tags_seen) = (0, 0i128, BTreeMap::new());
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            rows += batch.num_rows();
            let costs = batch
                .column_by_name("BilledCost")
                .unwrap()
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap();
            total += costs.iter().map(Option::unwrap).sum::<i128>();
            let tags = batch
                .column_by_name("Tags")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for tag in tags.iter().flatten() {
                *tags_seen
                    .entry(tag.contains(&serde_json::to_string(AWKWARD_TAG).unwrap()))
                    .or_insert(0) += 1;
            }
            let starts = batch.column_by_name("ChargePeriodStart").unwrap();
            let starts = starts
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            assert_eq!(starts.null_count(), 0);
        }
        assert_eq!(rows, sample.row_count());
        assert_eq!(total, expected.units());
        assert_eq!(
            ExactAmount::from_units(total),
            sample
                .statement_totals()
                .into_values()
                .fold(ExactAmount::ZERO, |a, b| a.checked_add(b).unwrap())
        );
        assert!(tags_seen.get(&true).copied().unwrap_or(0) > 0);
    }
}
