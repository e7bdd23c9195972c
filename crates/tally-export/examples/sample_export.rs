//! Writes the generated sample period (`tally_export::sample`) in every format into a folder,
//! with `expected.json` (row count, statement totals), for the checks with the real tools:
//! `cargo run -p tally-export --example sample_export -- DIR` (tests/python/check_exports.py).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use tally_export::sample::{SamplePeriod, header};
use tally_export::{ChargeWriter, ExactAmount, Format};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = PathBuf::from(std::env::args().nth(1).ok_or("usage: sample_export DIR")?);
    std::fs::create_dir_all(&folder)?;
    let sample = SamplePeriod {
        tenants: 3,
        subscriptions_per_tenant: 4,
        days: 30,
    };
    for format in [Format::Csv, Format::Jsonl, Format::Parquet, Format::Focus] {
        let sink = BufWriter::new(File::create(folder.join(format.file_name("2026-11")))?);
        let mut writer = ChargeWriter::new(format, header(), sink)?;
        for row in sample.rows() {
            writer.write(&row)?;
        }
        writer.finish()?.into_inner()?.sync_all()?;
    }
    let totals = sample.statement_totals();
    let total = totals
        .values()
        .try_fold(ExactAmount::ZERO, |sum, t| sum.checked_add(*t))
        .ok_or("overflow")?;
    let expected = serde_json::json!({
        "rows": sample.row_count(),
        "statement_totals": totals.iter().map(|(tenant, total)| (tenant.clone(), total.to_string().into())).collect::<serde_json::Map<_, _>>(),
        "total": total.to_string(),
    });
    std::fs::write(
        folder.join("expected.json"),
        serde_json::to_vec_pretty(&expected)?,
    )?;
    Ok(())
}
