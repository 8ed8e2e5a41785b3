//! Starting the gateway: the settings, the decider, the identity checks, and
//! `lexecon mcp proxy` from start to exit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use lexecon_engine::config::{Config, McpConfig, Sources};
use lexecon_engine::{Caller, Engine};
use lexecon_proto::v1 as pb;
use tokio::io::BufReader;

use crate::decider::Decider;
use crate::deciders::{EngineDecider, GrpcDecider};
use crate::gateway::{Gateway, Session};
use crate::mapping::Settings;

/// Why the gateway does not start (or stopped); the message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn err(message: impl Into<String>) -> StartError {
    StartError(message.into())
}

/// How long the upstream may take to exit after its input is closed.
const UPSTREAM_GRACE: Duration = Duration::from_secs(5);
/// How long the last completions may take to be recorded at exit.
const RECORD_GRACE: Duration = Duration::from_secs(10);

/// Where decisions come from.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded engine on this data directory (`--data-dir`).
    DataDir(PathBuf),
    /// A running server (`--server URL`) and the API key to send.
    Server {
        /// The server's URL (`http://` added when no scheme is given).
        url: String,
        /// The API key (`--token` or `LEXECON_TOKEN`).
        token: Option<String>,
        /// Accept a key whose role is not `agent`.
        allow_admin_key: bool,
    },
}

/// `lexecon mcp proxy` as parsed.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The upstream's name (`NAME` in `NAME/TOOL`).
    pub name: String,
    /// Where decisions come from.
    pub backend: Backend,
    /// `--actor`.
    pub actor: Option<String>,
    /// `--config FILE`: only its `[mcp]` table is used.
    pub config: Option<PathBuf>,
    /// The upstream command and its arguments.
    pub command: Vec<String>,
}

/// The `[mcp]` settings: `base` (defaults, or `DIR/lexecon.toml`'s), then the `[mcp]`
/// table of `file` over it, key by key.
pub fn load_settings(base: &McpConfig, file: Option<&Path>) -> Result<Settings, StartError> {
    let mcp = match file {
        None => base.clone(),
        Some(file) => {
            if !file.is_file() {
                return Err(err(format!(
                    "--config {}: no such file; give a TOML file with an [mcp] table",
                    file.display()
                )));
            }
            Figment::from(Serialized::defaults(base))
                .merge(Figment::from(Toml::file(file)).focus("mcp"))
                .extract::<McpConfig>()
                .map_err(|e| err(format!("--config {}: [mcp]: {e}", file.display())))?
        }
    };
    Settings::new(&mcp).map_err(|e| {
        err(format!(
            "{e} (in {})",
            file.map_or_else(
                || "the configuration".to_owned(),
                |f| f.display().to_string()
            )
        ))
    })
}

/// Refuses an upstream command that could reach the data directory: an argument (or
/// the value of an `--opt=VALUE` argument) naming a directory that contains it.
pub fn check_upstream_args(command: &[String], data_dir: &Path) -> Result<(), StartError> {
    let Ok(data_dir) = data_dir.canonicalize() else {
        return Ok(());
    };
    for arg in command {
        let candidates = [Some(arg.as_str()), arg.split_once('=').map(|(_, v)| v)];
        for candidate in candidates.into_iter().flatten() {
            let path = Path::new(candidate);
            if !path.is_dir() {
                continue;
            }
            if let Ok(dir) = path.canonicalize()
                && data_dir.starts_with(&dir)
            {
                return Err(err(format!(
                    "the upstream command's argument {candidate:?} is a directory that contains the data directory {}: the upstream could read or change the ledger and keys. Give it a directory outside the data directory, or keep the data directory elsewhere (--data-dir)",
                    data_dir.display()
                )));
            }
        }
    }
    Ok(())
}

fn server_url(url: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// Connects to a server and checks the key: refused unless its role is `agent` (or
/// `allow_admin_key`). A server that does not answer yet is not an error: the gateway
/// starts and refuses every call until it answers (see [`RoleChecked`]).
pub async fn grpc_decider(
    url: &str,
    token: Option<&str>,
    allow_admin_key: bool,
) -> Result<RoleChecked, StartError> {
    let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
        err("no API key: pass --token or set LEXECON_TOKEN to an agent key (`lexecon apikey create --role agent --actor ...`); the gateway never reads DIR/admin.token")
    })?;
    let url = server_url(url);
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| err(format!("invalid --server {url:?}: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    let decider =
        GrpcDecider::new(endpoint.connect_lazy(), token).map_err(|e| err(e.to_string()))?;
    let checked = RoleChecked {
        inner: decider,
        allow_admin_key,
        ok: tokio::sync::OnceCell::new(),
        url,
    };
    match checked.check_role().await {
        Ok(()) => {}
        Err(RoleProblem::Refused(message)) => return Err(err(message)),
        Err(RoleProblem::Unreachable(message)) => {
            tracing::warn!(%message, "starting anyway: every call is refused until the server answers");
            eprintln!(
                "lexecon mcp: {message}; every tool call is refused until the server answers"
            );
        }
    }
    Ok(checked)
}

enum RoleProblem {
    /// Definitive: the key may not run the gateway.
    Refused(String),
    /// The server did not answer; ask again later.
    Unreachable(String),
}

/// A [`GrpcDecider`] whose key's role was checked once the server answered.
#[derive(Debug)]
pub struct RoleChecked {
    inner: GrpcDecider,
    allow_admin_key: bool,
    ok: tokio::sync::OnceCell<Result<(), String>>,
    url: String,
}

impl RoleChecked {
    async fn check_role(&self) -> Result<(), RoleProblem> {
        if let Some(done) = self.ok.get() {
            return done.clone().map_err(RoleProblem::Refused);
        }
        let me = self.inner.who_am_i().await.map_err(|e| {
            RoleProblem::Unreachable(format!("cannot check the API key at {}: {e}", self.url))
        })?;
        let role = pb::Role::try_from(me.role).unwrap_or(pb::Role::Unspecified);
        let verdict = if role == pb::Role::Agent || self.allow_admin_key {
            Ok(())
        } else {
            Err(format!(
                "the API key {} has role {}, not agent: an agent's gateway runs with an agent key bound to its actors (`lexecon apikey create --name N --role agent --actor GLOB`), or pass --allow-admin-key to accept this one",
                me.principal,
                role.as_str_name()
                    .to_lowercase()
                    .trim_start_matches("role_")
            ))
        };
        let _ = self.ok.set(verdict.clone());
        verdict.map_err(RoleProblem::Refused)
    }

    async fn ready(&self) -> Result<(), crate::decider::DeciderError> {
        self.check_role().await.map_err(|p| match p {
            RoleProblem::Refused(m) | RoleProblem::Unreachable(m) => {
                crate::decider::DeciderError(m)
            }
        })
    }
}

#[async_trait::async_trait]
impl Decider for RoleChecked {
    async fn decide(
        &self,
        request: &crate::decider::DecisionRequest,
    ) -> Result<crate::decider::DecisionAnswer, crate::decider::DeciderError> {
        self.ready().await?;
        self.inner.decide(request).await
    }

    async fn escalation(
        &self,
        escalation_id: &str,
    ) -> Result<crate::decider::EscalationAnswer, crate::decider::DeciderError> {
        self.ready().await?;
        self.inner.escalation(escalation_id).await
    }

    async fn record_completion(
        &self,
        completion: crate::decider::Completion,
    ) -> Result<(), crate::decider::DeciderError> {
        self.inner.record_completion(completion).await
    }

    async fn check_tools(
        &self,
        actor: &str,
        probes: &[crate::decider::Probe],
    ) -> Result<Vec<bool>, crate::decider::DeciderError> {
        self.ready().await?;
        self.inner.check_tools(actor, probes).await
    }
}

/// Opens the embedded engine on `dir` as a long-running process (like a server: it
/// keeps halts, overrides and the policy in step with the database).
pub async fn open_engine(dir: &Path) -> Result<Arc<Engine>, StartError> {
    if !lexecon_engine::config::is_initialised(dir) {
        return Err(err(format!(
            "{} is not initialised; run `lexecon init --data-dir {}` first, or pass --server URL",
            dir.display(),
            dir.display()
        )));
    }
    let config = Config::load(&Sources {
        data_dir: Some(dir.to_path_buf()),
        config_file: None,
    })
    .map_err(|e| err(format!("{}: {e}", dir.display())))?;
    Engine::open(config, Arc::new(lexecon_core::SystemClock))
        .await
        .map_err(|e| err(format!("opening the engine on {}: {e}", dir.display())))
}

/// Runs `lexecon mcp proxy` until the host or the upstream closes.
pub async fn run_proxy(options: ProxyOptions) -> Result<(), StartError> {
    if options.name.is_empty() || options.name.contains('/') {
        return Err(err(format!(
            "--name {:?}: give the upstream a name without '/', e.g. --name files",
            options.name
        )));
    }
    let Some((program, args)) = options.command.split_first() else {
        return Err(err(
            "no upstream command: put it after `--`, e.g. `lexecon mcp proxy --name files -- npx @modelcontextprotocol/server-filesystem /srv/docs`",
        ));
    };
    match &options.backend {
        Backend::DataDir(dir) => {
            check_upstream_args(&options.command, dir)?;
            let engine = open_engine(dir).await?;
            let settings = load_settings(&engine.config().mcp, options.config.as_deref())?;
            let actor = options
                .actor
                .clone()
                .unwrap_or_else(|| format!("mcp:{}", options.name));
            let decider = Arc::new(EngineDecider::new(Arc::clone(&engine), Caller::local()));
            let result = proxy_with(&options.name, &actor, settings, decider, program, args).await;
            if let Err(e) = engine.shutdown().await {
                tracing::warn!(error = %e, "closing the engine failed");
            }
            result
        }
        Backend::Server {
            url,
            token,
            allow_admin_key,
        } => {
            let settings = load_settings(&McpConfig::default(), options.config.as_deref())?;
            let decider = Arc::new(grpc_decider(url, token.as_deref(), *allow_admin_key).await?);
            let actor = options.actor.clone().unwrap_or_default();
            proxy_with(&options.name, &actor, settings, decider, program, args).await
        }
    }
}

async fn proxy_with<D: Decider>(
    name: &str,
    actor: &str,
    settings: Settings,
    decider: Arc<D>,
    program: &str,
    args: &[String],
) -> Result<(), StartError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            err(format!(
                "cannot start the upstream command {program:?}: {e}"
            ))
        })?;
    let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(err(
            "the upstream command's stdin and stdout could not be piped",
        ));
    };
    let (gateway, recorder) = Gateway::new(name, actor, settings, decider);
    let gateway = Arc::new(gateway);
    let session = Arc::new(Session::random());
    let relay = crate::stdio::relay(
        Arc::clone(&gateway),
        session,
        BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
        BufReader::new(child_out),
        child_in,
        UPSTREAM_GRACE,
    );
    tokio::select! {
        end = relay => tracing::debug!(?end, "the relay ended"),
        () = shutdown_signal() => tracing::info!("stopping on a signal"),
    }
    // Reap the upstream: it has had its grace period already when the client closed.
    match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
        Ok(Ok(status)) => tracing::debug!(%status, "the upstream exited"),
        _ => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
    gateway.finish();
    if tokio::time::timeout(RECORD_GRACE, recorder).await.is_err() {
        tracing::error!("some completions were not recorded before exit");
    }
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
