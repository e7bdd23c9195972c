//! The text formats: CSV (RFC 4180 through the `csv` crate, UTF-8, a header row), FOCUS 1.0 CSV
//! and JSON lines. Each row is encoded and handed to the sink at once: nothing accumulates.

use std::io::Write;

use crate::ExportError;
use crate::columns::{FOCUS_COLUMNS, PLAIN_COLUMNS, Value, focus_values, plain_values};
use crate::row::{ChargeRow, ExportHeader, iso_utc};

fn cell(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone().unwrap_or_default(),
        Value::Quantity(quantity) => quantity.map(|q| q.to_string()).unwrap_or_default(),
        Value::Amount(amount) => amount.map(|a| a.to_string()).unwrap_or_default(),
        Value::Time(time) => iso_utc(*time),
    }
}

/// CSV with a header row; `focus` selects the FOCUS 1.0 column set.
pub struct CsvWriter<W: Write> {
    csv: csv::Writer<W>,
    header: ExportHeader,
    focus: bool,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(sink: W, header: ExportHeader, focus: bool) -> Result<Self, ExportError> {
        // RFC 4180: CRLF line ends, fields quoted when they hold a comma, a quote or a newline.
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(sink);
        if focus {
            csv.write_record(FOCUS_COLUMNS)?;
        } else {
            csv.write_record(PLAIN_COLUMNS.iter().map(|(name, _)| *name))?;
        }
        Ok(CsvWriter { csv, header, focus })
    }

    pub fn write(&mut self, row: &ChargeRow) -> Result<(), ExportError> {
        if self.focus {
            self.csv
                .write_record(focus_values(&self.header, row).iter().map(cell))?;
        } else {
            self.csv
                .write_record(plain_values(&self.header, row).iter().map(cell))?;
        }
        Ok(())
    }

    /// Hands buffered bytes to the sink.
    pub fn flush(&mut self) -> Result<(), ExportError> {
        self.csv.flush()?;
        Ok(())
    }

    pub fn finish(self) -> Result<W, ExportError> {
        self.csv
            .into_inner()
            .map_err(|error| ExportError::Io(error.into_error()))
    }
}

/// JSON lines: one object per row with the plain columns; decimals as strings with their full
/// scale (a JSON number would be read as a binary float by most tools), times ISO 8601 UTC.
pub struct JsonLinesWriter<W: Write> {
    sink: W,
    header: ExportHeader,
    line: Vec<u8>,
}

impl<W: Write> JsonLinesWriter<W> {
    pub fn new(sink: W, header: ExportHeader) -> Self {
        JsonLinesWriter {
            sink,
            header,
            line: Vec::with_capacity(1024),
        }
    }

    pub fn write(&mut self, row: &ChargeRow) -> Result<(), ExportError> {
        self.line.clear();
        self.line.push(b'{');
        for (index, ((name, _), value)) in PLAIN_COLUMNS
            .iter()
            .zip(plain_values(&self.header, row))
            .enumerate()
        {
            if index > 0 {
                self.line.push(b',');
            }
            serde_json::to_writer(&mut self.line, name)?;
            self.line.push(b':');
            match value {
                Value::Text(None) | Value::Quantity(None) | Value::Amount(None) => {
                    self.line.extend_from_slice(b"null")
                }
                other => serde_json::to_writer(&mut self.line, &cell(&other))?,
            }
        }
        self.line.extend_from_slice(b"}\n");
        self.sink.write_all(&self.line)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), ExportError> {
        self.sink.flush()?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, ExportError> {
        self.sink.flush()?;
        Ok(self.sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::FOCUS_COLUMNS;
    use crate::sample::{AWKWARD_TAG, SamplePeriod, header};

    fn sample() -> SamplePeriod {
        SamplePeriod {
            tenants: 2,
            subscriptions_per_tenant: 2,
            days: 2,
        }
    }

    fn read_csv(bytes: &[u8]) -> (csv::StringRecord, Vec<csv::StringRecord>) {
        let mut reader = csv::Reader::from_reader(bytes);
        let headers = reader.headers().unwrap().clone();
        (headers, reader.records().map(Result::unwrap).collect())
    }

    #[test]
    fn csv_quotes_awkward_tags_and_keeps_the_decimal_scale() {
        let mut writer = CsvWriter::new(Vec::new(), header(), false).unwrap();
        for row in sample().rows() {
            writer.write(&row).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("BillingAccountId,SubAccountId,ChargeCategory,"));
        assert!(text.contains("\r\n"));
        let (headers, records) = read_csv(&bytes);
        assert_eq!(records.len(), sample().row_count());
        let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let tags: serde_json::Value = serde_json::from_str(&records[0][column("Tags")]).unwrap();
        assert_eq!(tags["owner"], AWKWARD_TAG);
        assert!(
            records[0][column("ConsumedQuantity")]
                .split_once('.')
                .unwrap()
                .1
                .len()
                == 10
        );
        assert!(
            records[0][column("BilledCost")]
                .split_once('.')
                .unwrap()
                .1
                .len()
                == 20
        );
        assert_eq!(
            &records[0][column("ChargePeriodStart")],
            "2026-11-01T00:00:00Z"
        );
        let last = records.last().unwrap();
        assert_eq!(&last[column("ChargeCategory")], "Adjustment");
        assert_eq!(&last[column("ConsumedQuantity")], "");
    }

    #[test]
    fn focus_has_every_published_column_and_no_null_where_focus_forbids_it() {
        let mut writer = CsvWriter::new(Vec::new(), header(), true).unwrap();
        for row in sample().rows() {
            writer.write(&row).unwrap();
        }
        let (headers, records) = read_csv(&writer.finish().unwrap());
        assert_eq!(headers.iter().collect::<Vec<_>>(), FOCUS_COLUMNS);
        let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
        for record in &records {
            for name in [
                "BilledCost",
                "EffectiveCost",
                "ListCost",
                "ContractedCost",
                "BillingAccountId",
                "BillingCurrency",
                "ChargeCategory",
                "ChargeFrequency",
                "ChargePeriodStart",
                "ServiceName",
                "ServiceCategory",
                "ProviderName",
                "InvoiceIssuerName",
                "PublisherName",
            ] {
                assert!(!record[column(name)].is_empty(), "{name} is empty");
            }
            assert_eq!(
                record[column("BilledCost")],
                record[column("EffectiveCost")]
            );
        }
        let categories: Vec<&str> = records
            .iter()
            .map(|r| &r[column("ChargeCategory")])
            .collect();
        assert!(
            categories.contains(&"Usage")
                && categories.contains(&"Credit")
                && categories.contains(&"Adjustment")
        );
    }

    #[test]
    fn json_lines_are_one_object_per_row_with_exact_strings() {
        let mut writer = JsonLinesWriter::new(Vec::new(), header());
        for row in sample().rows() {
            writer.write(&row).unwrap();
        }
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), sample().row_count());
        let first = sample().rows().next().unwrap();
        assert_eq!(lines[0]["BilledCost"], first.cost.to_string());
        assert_eq!(lines[0]["ChargePeriodEnd"], "2026-11-02T00:00:00Z");
        assert!(lines.last().unwrap()["ConsumedQuantity"].is_null());
        assert_eq!(lines.last().unwrap()["x_AdjustmentId"], "adj-1");
    }
}
