//! Accepting connections: at most `max_connections` open at once (the rest wait in the listen
//! backlog), each with TCP_NODELAY, and, with [`Tls`], a TLS handshake (in its own task, bounded
//! in time, so a slow client never holds up the others) that offers both HTTP/2 and HTTP/1.1,
//! so gRPC and REST share the listener over TLS as they do in plain text.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::{Limits, ServeError};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server certificate chain and key, for serving over TLS.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// The PEM certificate chain in `cert` (leaf first) and the PEM private key in `key`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, ServeError> {
        let cert_pem =
            std::fs::read(cert).map_err(|e| ServeError::open("the TLS certificate", e))?;
        let key_pem = std::fs::read(key).map_err(|e| ServeError::open("the TLS key", e))?;
        Tls::from_pem(&cert_pem, &key_pem)
    }

    /// A PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Tls, ServeError> {
        let invalid =
            |what: &str, e: &dyn std::fmt::Display| ServeError::Config(format!("TLS {what}: {e}"));
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate", &e))?;
        if chain.is_empty() {
            return Err(ServeError::Config(
                "TLS certificate: no CERTIFICATE block in the file".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid("key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("protocol versions", &e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid("certificate and key", &e))?;
        // gRPC needs HTTP/2; REST clients (Azure SDKs over urllib3) ask for HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// In a request's extensions when it arrived over TLS (so links it returns say `https`).
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// Marks every request of a TLS listener with [`OverTls`].
pub(super) async fn mark_over_tls(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request.extensions_mut().insert(OverTls);
    next.run(request).await
}

/// One accepted connection, plain or TLS, holding its place among the open connections.
pub(super) struct Conn {
    io: Io,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    _open: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The connections `listener` accepts, as the server reads them.
pub(super) fn incoming(
    listener: TcpListener,
    tls: Option<Tls>,
    limits: &Limits,
) -> impl Stream<Item = Result<Conn, io::Error>> + Send + 'static {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (ready, accepted) = mpsc::channel::<Conn>(64);
    tokio::spawn(accept_loop(listener, tls, open, ready));
    futures::stream::unfold(accepted, |mut accepted| async move {
        accepted
            .recv()
            .await
            .map(|conn| (Ok::<_, io::Error>(conn), accepted))
    })
}

/// Accepts until the server stops reading connections (it dropped the stream): the listener is
/// closed then, so its port is free again.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Tls>,
    open: Arc<Semaphore>,
    ready: mpsc::Sender<Conn>,
) {
    loop {
        let permit = tokio::select! {
            _ = ready.closed() => return,
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause, then go on accepting.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        match &tls {
            None => {
                let conn = Conn {
                    io: Io::Plain(stream),
                    local,
                    remote: Some(remote),
                    _open: permit,
                };
                if ready.send(conn).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let acceptor = tls.acceptor.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = Conn {
                                io: Io::Tls(Box::new(stream)),
                                local,
                                remote: Some(remote),
                                _open: permit,
                            };
                            let _ = ready.send(conn).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %remote, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local,
            remote_addr: self.remote,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(stream) => stream.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
