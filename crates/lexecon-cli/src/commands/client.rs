//! What every command that talks to a server shares: where the server is, which token
//! to send, and a clear message when nothing answers.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use lexecon_engine::DataDir;
use lexecon_engine::config::{Config, Sources};
use lexecon_server::coalesce::CoalescingStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// `--ca-file`, `--client-cert`, `--client-key`: TLS for every connection to a server.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TlsArgs {
    /// A PEM file of CA certificates to trust for https:// servers, beside the
    /// built-in Mozilla roots (for a server certificate from a private CA).
    #[arg(long, value_name = "FILE", env = "LEXECON_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate to present (servers that require mutual TLS).
    #[arg(
        long,
        value_name = "FILE",
        env = "LEXECON_CLIENT_CERT",
        global = true,
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of --client-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "LEXECON_CLIENT_KEY",
        global = true,
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether any TLS option was given: then a --server without a scheme means https.
    fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some()
    }
}

/// The global TLS options, set once by [`set_tls`] before a command runs.
static TLS: OnceLock<TlsArgs> = OnceLock::new();

/// Records the global TLS options for every connection this process makes.
pub(crate) fn set_tls(args: TlsArgs) {
    let _ = TLS.set(args);
}

fn tls_args() -> TlsArgs {
    TLS.get().cloned().unwrap_or_default()
}

/// The TLS settings for an https:// server: the Mozilla roots, --ca-file, and the
/// --client-cert/--client-key identity.
fn client_tls(args: &TlsArgs) -> Result<ClientTlsConfig> {
    let mut config = ClientTlsConfig::new().with_webpki_roots();
    if let Some(file) = &args.ca_file {
        let pem = std::fs::read(file)
            .with_context(|| format!("--ca-file: cannot read {}", file.display()))?;
        config = config.ca_certificate(Certificate::from_pem(pem));
    }
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        let cert_pem = std::fs::read(cert)
            .with_context(|| format!("--client-cert: cannot read {}", cert.display()))?;
        let key_pem = std::fs::read(key)
            .with_context(|| format!("--client-key: cannot read {}", key.display()))?;
        config = config.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(config)
}

/// `--server`, `--token`, `--data-dir`, `--config`: how to reach and authenticate to a server.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// The server, e.g. http://127.0.0.1:50051 [default: the configured server.listen]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The API key or session token [default: $LEXECON_TOKEN, else the contents of DIR/admin.token]
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LEXECON_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The data directory holding lexecon.toml and admin.token.
    #[arg(long, value_name = "DIR", default_value = ".lexecon")]
    pub data_dir: PathBuf,
    /// A configuration file instead of DIR/lexecon.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ServerArgs {
    /// The server URL: --server, else the configured listen address.
    pub(crate) fn server_url(&self) -> Result<String> {
        if let Some(url) = &self.server {
            let scheme = if tls_args().any() { "https" } else { "http" };
            return Ok(if url.contains("://") {
                url.clone()
            } else {
                format!("{scheme}://{url}")
            });
        }
        let config = Config::load(&Sources {
            data_dir: Some(self.data_dir.clone()),
            config_file: self.config.clone(),
        })?;
        let scheme = if config.server.tls_cert_file.is_some() || tls_args().any() {
            "https"
        } else {
            "http"
        };
        Ok(format!("{scheme}://{}", config.server.listen))
    }

    /// The bearer token: --token / $LEXECON_TOKEN, else DIR/admin.token.
    pub(crate) fn bearer(&self) -> Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.trim().to_owned());
        }
        let file = DataDir::new(&self.data_dir).admin_token();
        let token = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "no token: pass --token, set LEXECON_TOKEN, or run `lexecon init` to create {}",
                file.display()
            )
        })?;
        Ok(token.trim().to_owned())
    }

    /// A connected channel, or an error that says no server answers at the URL.
    pub(crate) async fn connect(&self) -> Result<(Channel, String)> {
        let url = self.server_url()?;
        let bearer = self.bearer()?;
        let channel = connect(&url).await?;
        Ok((channel, bearer))
    }
}

/// Connects to `url`, saying clearly when no server answers.
pub(crate) async fn connect(url: &str) -> Result<Channel> {
    let endpoint = endpoint(url)?.tcp_nodelay(true);
    endpoint.connect().await.map_err(|e| no_server(url, &e))
}

/// Connects to `url` like [`connect`], with writes gathered as the server gathers them
/// ([`CoalescingStream`]): a load generator's calls, sent by many tasks at once, then
/// leave in one write per connection instead of one each.
pub(crate) async fn connect_coalescing(url: &str) -> Result<Channel> {
    let connector = tower::service_fn(|uri: tonic::transport::Uri| async move {
        let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(CoalescingStream::new(stream)))
    });
    endpoint(url)?
        .connect_with_connector(connector)
        .await
        .map_err(|e| no_server(url, &e))
}

/// The endpoint for `url`; an https:// URL gets TLS ([`client_tls`]).
fn endpoint(url: &str) -> Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| anyhow!("invalid --server {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(3));
    if url.starts_with("https://") {
        return endpoint
            .tls_config(client_tls(&tls_args())?)
            .map_err(|e| anyhow!("TLS settings for {url}: {e}"));
    }
    let tls = tls_args();
    if tls.any() {
        return Err(anyhow!(
            "--ca-file/--client-cert apply to https:// servers only, but --server is {url}; use https://"
        ));
    }
    Ok(endpoint)
}

fn no_server(url: &str, e: &tonic::transport::Error) -> anyhow::Error {
    // tonic's own message is just "transport error": the cause is in the chain.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let detail = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    let lower = detail.to_lowercase();
    if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls") {
        return anyhow!(
            "TLS with {url} failed ({detail}); pass --ca-file with the CA that signed the server's certificate, and --client-cert/--client-key if the server requires client certificates"
        );
    }
    anyhow!(
        "no Lexecon server answers at {url} ({detail}); start one with `lexecon server` or pass --server"
    )
}

/// A request carrying `authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, bearer: &str) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {bearer}")
        .parse()
        .map_err(|_| anyhow!("the token contains characters that cannot be sent in a header"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Turns a gRPC status into a one-line error.
pub(crate) fn status_error(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow!(
            "unauthenticated: {} (check --token or DIR/admin.token)",
            status.message()
        ),
        tonic::Code::PermissionDenied => anyhow!("permission denied: {}", status.message()),
        tonic::Code::InvalidArgument => anyhow!("invalid argument: {}", status.message()),
        tonic::Code::Unavailable => anyhow!("server unavailable: {}", status.message()),
        code => anyhow!("{code:?}: {}", status.message()),
    }
}

/// A tokio runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
