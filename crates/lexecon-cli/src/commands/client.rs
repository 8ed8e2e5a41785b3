//! What every command that talks to a server shares: where the server is, which token
//! to send, and a clear message when nothing answers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use lexecon_engine::DataDir;
use lexecon_engine::config::{Config, Sources};
use lexecon_server::coalesce::CoalescingStream;
use tonic::transport::{Channel, Endpoint};

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
            return Ok(if url.contains("://") {
                url.clone()
            } else {
                format!("http://{url}")
            });
        }
        let config = Config::load(&Sources {
            data_dir: Some(self.data_dir.clone()),
            config_file: self.config.clone(),
        })?;
        Ok(format!("http://{}", config.server.listen))
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

fn endpoint(url: &str) -> Result<Endpoint> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| anyhow!("invalid --server {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(3)))
}

fn no_server(url: &str, e: &tonic::transport::Error) -> anyhow::Error {
    anyhow!(
        "no Lexecon server answers at {url} ({e}); start one with `lexecon server` or pass --server"
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
