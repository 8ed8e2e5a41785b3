//! Fetching an OIDC provider's JWKS from its URL.
//!
//! [`HttpJwksSource`] is the [`JwksSource`] for `[[auth.oidc]] jwks_url`. Caching is the
//! provider's ([`lexecon_auth::OidcProvider`] keeps a fetched key set for
//! `jwks_cache_secs` and refetches early only for an unknown key id, at most every 30 s),
//! so this type only fetches: HTTPS with the Mozilla root certificates (rustls), or plain
//! HTTP to a loopback address (a local identity provider, tests). A key set decides who
//! may log in, so the fetch is strict: status 200 only (no redirects followed), at most
//! [`MAX_JWKS_BYTES`], within [`FETCH_TIMEOUT`].

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use lexecon_auth::{JwksSource, OidcError};

/// The largest JWKS document accepted (real ones are a few KiB).
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// How long one fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A JWKS fetched over HTTPS (or HTTP to a loopback address).
#[derive(Clone)]
pub struct HttpJwksSource {
    url: hyper::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for HttpJwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJwksSource")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpJwksSource {
    /// A source for `url`, which must be `https://`, or `http://` to a loopback host.
    pub fn new(url: &str) -> Result<Self, String> {
        let url = check_jwks_url(url)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, Empty<Bytes>>(connector);
        Ok(HttpJwksSource { url, client })
    }

    async fn fetch_once(&self) -> Result<String, String> {
        let request = hyper::Request::get(self.url.clone())
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("lexecon/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = self.client.request(request).await.map_err(|e| {
            // hyper-util's error says only "client error (Connect)"; the cause says why.
            let cause =
                std::error::Error::source(&e).map_or_else(String::new, |c| format!(": {c}"));
            format!("{e}{cause}")
        })?;
        let status = response.status();
        if status != hyper::StatusCode::OK {
            let location = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(String::new, |l| {
                    format!(" (redirect to {l}: configure that URL instead)")
                });
            return Err(format!("HTTP status {status}{location}"));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e} (at most {MAX_JWKS_BYTES} bytes)"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_owned())
    }
}

#[async_trait::async_trait]
impl JwksSource for HttpJwksSource {
    async fn fetch(&self) -> Result<String, OidcError> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch_once()).await {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(OidcError::Jwks(format!("fetching {}: {e}", self.url))),
            Err(_) => Err(OidcError::Jwks(format!(
                "fetching {}: no answer within {} s",
                self.url,
                FETCH_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// Parses a JWKS URL: `https://`, or `http://` only to a loopback host (a key set read
/// over plain HTTP from elsewhere could be swapped in transit).
pub fn check_jwks_url(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("is not a URL ({e}): give e.g. https://login.example.com/jwks"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(format!(
            "uses plain http to {host}: use https (http is allowed only to 127.0.0.1, ::1 or localhost)"
        )),
        _ => Err("must be an https:// URL with a host".to_owned()),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A one-route HTTP server on 127.0.0.1 answering every request with `status` and
    /// `body`; returns its address and a request counter.
    async fn serve(status: &'static str, body: String) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nlocation: https://elsewhere.example/jwks\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}/jwks"), hits)
    }

    #[tokio::test]
    async fn fetches_the_document_from_a_loopback_server() {
        let (url, hits) = serve("200 OK", r#"{"keys":[]}"#.to_owned()).await;
        let source = HttpJwksSource::new(&url).unwrap();
        assert_eq!(source.fetch().await.unwrap(), r#"{"keys":[]}"#);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_redirect_is_refused_and_names_the_target() {
        let (url, _) = serve("302 Found", String::new()).await;
        let err = HttpJwksSource::new(&url)
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("302"), "{text}");
        assert!(text.contains("https://elsewhere.example/jwks"), "{text}");
    }

    #[tokio::test]
    async fn an_oversized_document_is_refused() {
        let (url, _) = serve("200 OK", "x".repeat(MAX_JWKS_BYTES + 1)).await;
        let err = HttpJwksSource::new(&url)
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_a_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = HttpJwksSource::new(&format!("http://{addr}/jwks"))
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        for ok in [
            "https://login.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
        ] {
            assert!(check_jwks_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com/jwks",
            "http://10.0.0.1/jwks",
            "ftp://login.example.com/jwks",
            "/etc/jwks.json",
            "not a url",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad}");
        }
    }
}
