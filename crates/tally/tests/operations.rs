//! `tally serve` as operators run it: over TLS (a CA and a certificate made here with rcgen),
//! gRPC and REST (HTTP/1.1 and HTTP/2) on one listener, and `/metrics` without a token on
//! `--metrics-listen`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{Duration as Span, Utc};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject as _;
use tally_core::Granularity;
use tally_proto::bearer::Bearer;
use tally_proto::usage::v1::{GetPipelineStatusRequest, usage_admin_client::UsageAdminClient};
use tally_spawn::Listening;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A test CA, and a server certificate it signed for `localhost` and 127.0.0.1.
struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn test_ca() -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Tally test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    TestCa {
        ca_pem: ca_cert.pem(),
        cert_pem: server.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` over HTTP/1.1 on `io`, with an optional bearer token; the status and the body.
async fn http_get(
    mut io: impl AsyncRead + AsyncWrite + Unpin,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let authorization = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\n{authorization}connection: close\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    io.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A TLS client that trusts only `ca_pem`, offering HTTP/1.1.
fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn serve_speaks_grpc_and_rest_over_tls_and_metrics_on_their_own_listener() {
    let data = tempfile::tempdir().unwrap();
    let ca = test_ca();
    let cert = data.path().join("server.pem");
    let key = data.path().join("server.key");
    std::fs::write(&cert, &ca.cert_pem).unwrap();
    std::fs::write(&key, &ca.key_pem).unwrap();
    let metrics_addr = free_port();
    let tally = env!("CARGO_BIN_EXE_tally");
    let data_dir = data.path().display().to_string();
    let server = Listening::start(
        Command::new(tally)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir])
            .args(["--tls-cert", &cert.display().to_string()])
            .args(["--tls-key", &key.display().to_string()])
            .args(["--metrics-listen", &metrics_addr.to_string()])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
    .expect("start tally serve with TLS");
    let token = Command::new(tally)
        .args(["token", "--role", "operator", "--data-dir", &data_dir])
        .output()
        .expect("tally token");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let port = server.addr().port();

    // gRPC over TLS (HTTP/2), trusting the test CA only.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.ca_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection trusting the test CA");
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health over TLS")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    let status = UsageAdminClient::new(InterceptedService::new(channel, Bearer::new(Some(&token))))
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .expect("an authenticated call over TLS")
        .into_inner();
    assert_eq!(status.records_stored, 0);

    // Plain text is not served on a TLS listener.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a plain-text call was answered on the TLS listener"
    );

    // REST over TLS and HTTP/1.1, as the Azure SDKs speak it.
    let connector = tls_connector(&ca.ca_pem);
    let connect = || async {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake offering HTTP/1.1")
    };
    assert_eq!(
        http_get(connect().await, "/readyz", None).await,
        (200, "ready\n".into())
    );
    let today = Granularity::Daily.bucket_start(Utc::now());
    let path = format!(
        "/subscriptions/1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?api-version=2015-06-01-preview&reportedStartTime={}&reportedEndTime={}",
        (today - Span::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        today.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let (status, body) = http_get(connect().await, &path, Some(&token)).await;
    assert_eq!((status, body.as_str()), (200, r#"{"value":[]}"#));

    // Metrics with no token on --metrics-listen (plain text, a private address).
    let (status, metrics) = http_get(
        TcpStream::connect(metrics_addr).await.unwrap(),
        "/metrics",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "tally_grpc_request_duration_seconds_count{rpc=\"/tally.usage.v1.UsageAdmin/GetPipelineStatus\",code=\"OK\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tally_rest_request_duration_seconds_count{route=\"/subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates\",method=\"GET\",status=\"200\"} 1"),
        "{metrics}"
    );
    // The main listener wants an operator token for the same page.
    let (status, _) = http_get(connect().await, "/metrics", None).await;
    assert_eq!(status, 401);
}
