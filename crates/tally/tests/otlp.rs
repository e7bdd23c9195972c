//! Traces over OTLP (a build with the `otlp` feature; CI runs `cargo test -p tally --features
//! otlp --test otlp`): `tally serve --otlp-endpoint` sends the span of a gRPC call to a tiny
//! OTLP/gRPC collector in the test.
#![cfg(feature = "otlp")]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use http_body_util::StreamBody;
use tally_proto::bearer::Bearer;
use tally_proto::usage::v1::{GetPipelineStatusRequest, usage_admin_client::UsageAdminClient};
use tally_spawn::Listening;
use tonic::service::interceptor::InterceptedService;

/// Everything the collector was sent, as raw protobuf (span names are in it verbatim).
type Received = Arc<Mutex<Vec<u8>>>;

/// TraceService/Export: keeps the request, answers an empty ExportTraceServiceResponse.
async fn export(State(received): State<Received>, body: Bytes) -> Response {
    received.lock().unwrap().extend_from_slice(&body);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = tokio_stream::iter([
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ]))),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    Response::builder()
        .header("content-type", "application/grpc")
        .body(Body::new(StreamBody::new(frames)))
        .unwrap()
}

#[tokio::test]
async fn serve_sends_the_span_of_a_call_to_the_otlp_collector() {
    let received = Received::default();
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = collector.local_addr().unwrap();
    let router = axum::Router::new()
        .route(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            axum::routing::post(export),
        )
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(collector, router).await });

    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let tally = env!("CARGO_BIN_EXE_tally");
    let server = Listening::start(
        Command::new(tally)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir])
            .args(["--otlp-endpoint", &format!("http://{collector_addr}")])
            .env("RUST_LOG", "warn")
            // Export every 100 ms rather than every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stderr(Stdio::inherit()),
    )
    .expect("start tally serve");
    let token = Command::new(tally)
        .args(["token", "--role", "operator", "--data-dir", &data_dir])
        .output()
        .expect("tally token");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    UsageAdminClient::new(InterceptedService::new(channel, Bearer::new(Some(&token))))
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .expect("GetPipelineStatus");

    let wanted = b"/tally.usage.v1.UsageAdmin/GetPipelineStatus";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        {
            let received = received.lock().unwrap();
            if received.windows(wanted.len()).any(|w| w == wanted) {
                assert!(
                    received.windows(5).any(|w| w == b"tally"),
                    "the resource names the service"
                );
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the collector never received the call's span"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
