//! TLS on the API port: rustls with ring, ALPN `h2` and `http/1.1`, optional client
//! certificates (mutual TLS), and files re-read on SIGHUP.
//!
//! When `server.tls_cert_file` and `server.tls_key_file` are set, the one listener that
//! answers gRPC and HTTP/JSON speaks TLS only: a plaintext client fails the handshake and
//! is never served. Each accepted connection reads the current [`rustls::ServerConfig`]
//! once, so a reload ([`Tls::reload`]) applies to new handshakes while connections already
//! open keep their session. Without TLS none of this runs: the plaintext path is the one
//! it always was.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use lexecon_engine::config::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::coalesce::CoalescingStream;

/// How long a client may take to complete the handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 256;

/// A TLS file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("{key}: cannot read {}: {source}; check the path and its permissions", file.display())]
    Read {
        /// The configuration key, e.g. `server.tls_cert_file`.
        key: &'static str,
        /// The file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file holds no usable PEM item, or rustls refused what it holds.
    #[error("{key}: {}: {problem}", file.display())]
    Invalid {
        /// The configuration key.
        key: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// Where the PEM files are: the configured paths, re-read on every reload.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// The API port's TLS settings, swappable while the server runs.
#[derive(Debug)]
pub struct Tls {
    files: Files,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl Tls {
    /// The TLS settings `server` asks for, loaded and checked now; `None` without
    /// `tls_cert_file`/`tls_key_file` (plaintext).
    pub fn from_config(server: &ServerConfig) -> Result<Option<Arc<Tls>>, TlsError> {
        let (Some(cert), Some(key)) = (&server.tls_cert_file, &server.tls_key_file) else {
            return Ok(None);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: server.tls_client_ca_file.clone(),
        };
        let config = build(&files)?;
        Ok(Some(Arc::new(Tls {
            files,
            current: RwLock::new(config),
        })))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Re-reads the certificate, key and client CA files. On success new handshakes use
    /// them; on failure the previous settings stay in force and the error names the file.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        match self.current.write() {
            Ok(mut slot) => *slot = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    /// An acceptor with the settings in force now.
    fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(slot) => Arc::clone(&slot),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }
}

fn read(key: &'static str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        key,
        file: file.to_path_buf(),
        source,
    })
}

fn certs(key: &'static str, file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, file)?;
    let invalid = |problem: String| TlsError::Invalid {
        key,
        file: file.to_path_buf(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not valid PEM ({e}); expected CERTIFICATE blocks")))?;
    if certs.is_empty() {
        return Err(invalid(
            "holds no PEM CERTIFICATE block; expected one or more certificates".to_owned(),
        ));
    }
    Ok(certs)
}

fn build(files: &Files) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs("server.tls_cert_file", &files.cert)?;
    let key_pem = read("server.tls_key_file", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        key: "server.tls_key_file",
        file: files.key.clone(),
        problem: format!(
            "no usable private key ({e}); expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block"
        ),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            key: "server.tls_cert_file",
            file: files.cert.clone(),
            problem: format!("no TLS protocol version available: {e}"),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let invalid = |problem: String| TlsError::Invalid {
                key: "server.tls_client_ca_file",
                file: ca_file.clone(),
                problem,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs("server.tls_client_ca_file", ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| invalid(format!("cannot check client certificates with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid {
            key: "server.tls_key_file",
            file: files.key.clone(),
            problem: format!(
                "does not go with the certificate in {} ({e}); give the key the certificate was issued for",
                files.cert.display()
            ),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection that finished its handshake: TLS over TCP, with writes gathered as on
/// the plaintext path ([`CoalescingStream`]) before they are encrypted.
#[derive(Debug)]
pub struct TlsConn {
    inner: CoalescingStream<TlsStream<TcpStream>>,
    info: TcpConnectInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts on `listener` and yields each connection once its TLS handshake succeeds.
/// Handshakes run concurrently, each in its own task, so a slow or plaintext client holds
/// up no one; a failed handshake is logged at debug level and the connection dropped.
/// Stops accepting when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Tls>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsConn>> {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let info = stream.connect_info();
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let conn = TlsConn {
                            inner: CoalescingStream::new(tls_stream),
                            info,
                        };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_config(dir: &Path, cert: &str, key: &str, ca: Option<&str>) -> ServerConfig {
        ServerConfig {
            tls_cert_file: Some(dir.join(cert)),
            tls_key_file: Some(dir.join(key)),
            tls_client_ca_file: ca.map(|c| dir.join(c)),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn no_files_is_plaintext_and_bad_files_name_key_and_file() {
        assert!(
            Tls::from_config(&ServerConfig::default())
                .unwrap()
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("garbage.pem"), "not pem at all\n").unwrap();
        let err = Tls::from_config(&server_config(dir.path(), "missing.crt", "k", None))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("server.tls_cert_file: cannot read "),
            "{err}"
        );
        assert!(err.contains("missing.crt"), "{err}");
        let err = Tls::from_config(&server_config(dir.path(), "garbage.pem", "k", None))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.tls_cert_file: "), "{err}");
        assert!(err.contains("garbage.pem"), "{err}");
        assert!(err.contains("no PEM CERTIFICATE"), "{err}");
    }
}
