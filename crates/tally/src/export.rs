//! `tally export`: streams `Billing/ExportCharges` into a file, atomically (a temporary file in
//! the destination's folder, renamed only once the last row arrived), with a progress bar of
//! rows, rate and ETA when stderr is a terminal.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use tally_export::Format;
use tally_proto::billing::v1::{ExportChargesRequest, ExportFormat};
use tally_proto::billing_api::{BillingApi as _, BillingClient};

use crate::cli::{ExportArgs, ExportFileFormat};

fn formats(format: ExportFileFormat) -> (Format, ExportFormat) {
    match format {
        ExportFileFormat::Csv => (Format::Csv, ExportFormat::Csv),
        ExportFileFormat::Jsonl => (Format::Jsonl, ExportFormat::Jsonl),
        ExportFileFormat::Parquet => (Format::Parquet, ExportFormat::Parquet),
        ExportFileFormat::Focus => (Format::Focus, ExportFormat::Focus),
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} rows  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `tally export`.
pub(crate) async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let (format, wire_format) = formats(args.format);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format.file_name(&args.period)));
    let token = match (&args.token, &args.data_dir) {
        (Some(token), _) => token.clone(),
        (None, Some(data_dir)) => crate::keys::operator_token(data_dir, "tally-export")?,
        (None, None) => {
            bail!("pass --token (or TALLY_TOKEN), or --data-dir to sign an operator token")
        }
    };
    let client = BillingClient::connect_lazy(&args.server)
        .with_context(|| format!("bad --server {:?}", args.server))?;
    let mut request = tonic::Request::new(ExportChargesRequest {
        billing_period: args.period.clone(),
        format: wire_format as i32,
        tenant_id: args.tenant_id.clone().unwrap_or_default(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?,
    );
    let folder = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Dropped on any error (or Ctrl-C): the temporary file goes, and `out` is never touched.
    let mut file = tempfile::Builder::new()
        .prefix(".tally-export-")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot create a temporary file in {}", folder.display()))?;
    let bar = progress_bar();
    let result = tokio::select! {
        result = receive(&client, request, file.as_file_mut(), &bar) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    bar.finish_and_clear();
    let rows = result.context("export failed; no file written")?;
    file.as_file_mut().sync_all()?;
    file.persist(&out)
        .with_context(|| format!("cannot move the export to {}", out.display()))?;
    eprintln!("{} rows written to {}", rows, display(&out));
    Ok(())
}

/// Streams the chunks into `file`; the row count once the last row arrived.
async fn receive(
    client: &BillingClient,
    request: tonic::Request<ExportChargesRequest>,
    file: &mut std::fs::File,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut stream = client
        .export_charges(request)
        .await
        .map_err(status)?
        .into_inner();
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let (mut rows, mut total) = (0, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(status)?;
        writer.write_all(&chunk.data)?;
        rows = chunk.rows_so_far;
        total = Some(chunk.rows_total);
        bar.set_length(chunk.rows_total);
        bar.set_position(chunk.rows_so_far);
    }
    writer.flush()?;
    match total {
        Some(total) if rows == total => Ok(rows),
        Some(total) => bail!("the stream ended after {rows} of {total} rows"),
        None => bail!("the server sent no data"),
    }
}

fn status(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", status.code(), status.message())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
