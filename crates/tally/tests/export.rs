//! `tally export` against a stand-in Billing service on its own runtime: a complete stream lands
//! as a file at `--out`; a server killed mid-stream leaves no file (nor a temporary one) and a
//! non-zero exit with a clear message; a refused request names its reason.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use tally_proto::Rpc;
use tally_proto::billing::v1::*;
use tally_proto::billing_api::{BillingApi, BillingGrpc};
use tally_proto::service_api::BoxStream;
use tonic::{Request, Status};

/// Streams `chunks` chunks of `rows_total` rows (one row each), `pause` apart.
struct StandIn {
    chunks: u64,
    pause: Duration,
}

#[tonic::async_trait]
impl BillingApi for StandIn {
    async fn create_price_sheet(&self, _: Request<CreatePriceSheetRequest>) -> Rpc<PriceSheet> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn list_price_sheets(
        &self,
        _: Request<ListPriceSheetsRequest>,
    ) -> Rpc<ListPriceSheetsResponse> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn create_adjustment(&self, _: Request<CreateAdjustmentRequest>) -> Rpc<Adjustment> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn list_adjustments(
        &self,
        _: Request<ListAdjustmentsRequest>,
    ) -> Rpc<ListAdjustmentsResponse> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn get_statement(&self, _: Request<GetStatementRequest>) -> Rpc<Statement> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn list_statements(
        &self,
        _: Request<ListStatementsRequest>,
    ) -> Rpc<ListStatementsResponse> {
        Err(Status::unimplemented("stand-in"))
    }
    async fn export_charges(
        &self,
        request: Request<ExportChargesRequest>,
    ) -> Rpc<BoxStream<ExportChunk>> {
        let request = request.into_inner();
        if request.billing_period != "2026-11" {
            return Err(Status::invalid_argument(
                "billing_period: must be a month such as 2026-11",
            ));
        }
        let (chunks, pause) = (self.chunks, self.pause);
        let stream = futures::stream::unfold(0u64, move |sent| async move {
            if sent == chunks {
                return None;
            }
            tokio::time::sleep(pause).await;
            let chunk = ExportChunk {
                data: format!("row {sent}\n").into_bytes(),
                rows_so_far: sent + 1,
                rows_total: chunks,
            };
            Some((Ok(chunk), sent + 1))
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

/// Serves the stand-in on a runtime of its own, so dropping that runtime kills every
/// connection at once, as a killed server would.
fn serve(stand_in: StandIn) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let services = BillingGrpc::services(Arc::new(stand_in));
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(services.billing)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (address, runtime)
}

fn export(server: &str, out: &Path, period: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "export", "--period", period, "--format", "csv", "--server", server, "--token", "t",
        ])
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn files_in(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

#[test]
fn a_complete_export_lands_at_out() {
    let (server, _runtime) = serve(StandIn {
        chunks: 5,
        pause: Duration::from_millis(10),
    });
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("charges.csv");
    let Output { status, stderr, .. } =
        export(&server, &out, "2026-11").wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "row 0\nrow 1\nrow 2\nrow 3\nrow 4\n"
    );
    assert_eq!(files_in(folder.path()), ["charges.csv"]);
}

#[test]
fn a_server_killed_mid_stream_leaves_no_file_and_a_non_zero_exit() {
    let (server, runtime) = serve(StandIn {
        chunks: 1000,
        pause: Duration::from_millis(20),
    });
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("charges.csv");
    let child = export(&server, &out, "2026-11");
    // Wait until the export is under way (its temporary file has data), then kill the server.
    let started = std::time::Instant::now();
    while !files_in(folder.path())
        .iter()
        .any(|name| name.starts_with(".tally-export-"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the export never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    runtime.shutdown_background();
    let Output { status, stderr, .. } = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(!status.success(), "exited 0: {stderr}");
    assert!(
        stderr.contains("export failed; no file written"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert_eq!(
        files_in(folder.path()),
        Vec::<String>::new(),
        "temporary files left behind"
    );
}

#[test]
fn a_refused_request_exits_non_zero_naming_the_field() {
    let (server, _runtime) = serve(StandIn {
        chunks: 1,
        pause: Duration::ZERO,
    });
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("charges.csv");
    let Output { status, stderr, .. } =
        export(&server, &out, "2026-13").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(!status.success());
    assert!(stderr.contains("billing_period"), "{stderr}");
    assert!(!out.exists());
}
