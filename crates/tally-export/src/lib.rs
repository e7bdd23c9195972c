//! Billing export encoders: [`ChargeRow`]s to CSV, JSON lines, Parquet and FinOps FOCUS 1.0 CSV,
//! written row by row into any `std::io::Write`.
//!
//! Pure: no protobuf, no database, no I/O but the sink it is given. The billing service turns its
//! rated rows into [`ChargeRow`]s and drains the sink into a stream as it goes; nothing here
//! holds more than one Parquet row group.

// Request paths never panic: errors are typed. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod columns;
pub mod decimal;
pub mod parquet;
pub mod row;
// Test data, not a request path: it may assert its own invariants.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod sample;
pub mod sink;
pub mod text;

use std::io::Write;

pub use columns::{FOCUS_COLUMNS, PLAIN_COLUMNS};
pub use decimal::{DecimalError, ExactAmount, ExactQuantity, Scaled};
pub use row::{ChargeKind, ChargeRow, ExportHeader, Format, iso_utc, service_category};
pub use sink::SharedBuffer;

/// An export could not be encoded or written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("building Arrow arrays: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// A streaming writer of one format.
pub enum ChargeWriter<W: Write + Send> {
    Csv(Box<text::CsvWriter<W>>),
    JsonLines(text::JsonLinesWriter<W>),
    Parquet(Box<parquet::ParquetWriter<W>>),
}

impl<W: Write + Send> ChargeWriter<W> {
    /// Starts an export (CSV writes its header row now).
    pub fn new(format: Format, header: ExportHeader, sink: W) -> Result<Self, ExportError> {
        Ok(match format {
            Format::Csv => ChargeWriter::Csv(Box::new(text::CsvWriter::new(sink, header, false)?)),
            Format::Focus => ChargeWriter::Csv(Box::new(text::CsvWriter::new(sink, header, true)?)),
            Format::Jsonl => ChargeWriter::JsonLines(text::JsonLinesWriter::new(sink, header)),
            Format::Parquet => {
                ChargeWriter::Parquet(Box::new(parquet::ParquetWriter::new(sink, header)?))
            }
        })
    }

    pub fn write(&mut self, row: &ChargeRow) -> Result<(), ExportError> {
        match self {
            ChargeWriter::Csv(writer) => writer.write(row),
            ChargeWriter::JsonLines(writer) => writer.write(row),
            ChargeWriter::Parquet(writer) => writer.write(row),
        }
    }

    /// Pushes what is encoded so far into the sink (Parquet: whole row groups only).
    pub fn flush(&mut self) -> Result<(), ExportError> {
        match self {
            ChargeWriter::Csv(writer) => writer.flush(),
            ChargeWriter::JsonLines(writer) => writer.flush(),
            ChargeWriter::Parquet(writer) => writer.flush(),
        }
    }

    /// Ends the export (Parquet: the last row group and the footer) and returns the sink.
    pub fn finish(self) -> Result<W, ExportError> {
        match self {
            ChargeWriter::Csv(writer) => writer.finish(),
            ChargeWriter::JsonLines(writer) => writer.finish(),
            ChargeWriter::Parquet(writer) => writer.finish(),
        }
    }
}
