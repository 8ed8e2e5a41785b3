//! `lexecon mcp serve`: the gateway over Streamable HTTP (MCP 2025-03-26 / 2025-06-18),
//! several upstreams behind one listener, each at `/mcp/NAME`.
//!
//! Agents authenticate with their Lexecon API key (`Authorization: Bearer`), checked
//! before anything is forwarded and never forwarded. POST bodies are classified and
//! governed like stdio lines; upstream answers (`application/json` or
//! `text/event-stream`) are relayed with the decision added to each forwarded call's
//! result. GET (the server's stream) and DELETE (end of session) are relayed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use lexecon_engine::Engine;
use lexecon_engine::config::McpConfig;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::decider::Decider;
use crate::deciders::{EngineDecider, GrpcDecider};
use crate::gateway::{Gateway, Session, Step};
use crate::jsonrpc::{self, GATEWAY_ERROR};
use crate::mapping::Settings;
use crate::run::{StartError, load_settings, open_engine};
use crate::stdio::MAX_CLIENT_MESSAGE_BYTES;

/// The actor header: which of the key's actors a request speaks for.
pub const ACTOR_HEADER: &str = "x-lexecon-actor";
/// How long a key checked with the server is trusted without asking again.
const AUTH_CACHE: Duration = Duration::from_secs(2);
/// Request headers relayed to the upstream (besides `--upstream-header` ones).
const RELAYED_REQUEST_HEADERS: [&str; 5] = [
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Where `mcp serve` gets decisions from.
#[derive(Debug, Clone)]
pub enum ServeBackend {
    /// The embedded engine on this data directory; it also authenticates the keys.
    DataDir(PathBuf),
    /// A running server; each agent's key is sent with its own calls.
    Server(String),
}

/// `lexecon mcp serve` as parsed.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--listen ADDR`.
    pub listen: String,
    /// `--upstream NAME=URL`, in order.
    pub upstreams: Vec<String>,
    /// `--upstream-header NAME:HEADER=VALUE`.
    pub upstream_headers: Vec<String>,
    /// Where decisions come from.
    pub backend: ServeBackend,
    /// `--config FILE`: only its `[mcp]` table is used.
    pub config: Option<PathBuf>,
    /// `--tls-cert FILE`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key FILE`.
    pub tls_key: Option<PathBuf>,
}

fn err(message: impl Into<String>) -> StartError {
    StartError(message.into())
}

/// One upstream.
#[derive(Debug)]
struct Upstream {
    url: hyper::Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Who authenticates agents and decides for them.
enum Auth {
    Engine(Arc<Engine>),
    Server(tonic::transport::Channel),
}

/// An authenticated agent.
#[derive(Clone)]
struct Agent {
    /// How the ledger names it (`key:<name>`).
    principal: String,
    decider: Arc<dyn Decider>,
}

struct SessionEntry {
    owner: String,
    session: Arc<Session>,
}

/// A refusal, as the response it becomes.
type Refusal = (StatusCode, String);

struct ServeState {
    upstreams: HashMap<String, Upstream>,
    auth: Auth,
    settings: Settings,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    recorders: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    sessions: Mutex<HashMap<(String, String), SessionEntry>>,
    checked: Mutex<HashMap<[u8; 32], (Instant, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Parses `--upstream NAME=URL` and `--upstream-header NAME:HEADER=VALUE`.
fn upstreams(options: &ServeOptions) -> Result<HashMap<String, Upstream>, StartError> {
    let mut out = HashMap::new();
    for spec in &options.upstreams {
        let Some((name, url)) = spec.split_once('=') else {
            return Err(err(format!(
                "--upstream {spec:?}: write NAME=URL, e.g. --upstream files=http://127.0.0.1:3001/mcp"
            )));
        };
        if name.is_empty() || name.contains('/') {
            return Err(err(format!(
                "--upstream {spec:?}: the name must be non-empty and without '/'"
            )));
        }
        let url: hyper::Uri = url
            .parse()
            .map_err(|e| err(format!("--upstream {spec:?}: {e}")))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            return Err(err(format!(
                "--upstream {spec:?}: the URL must start with http:// or https://"
            )));
        }
        if out
            .insert(
                name.to_owned(),
                Upstream {
                    url,
                    headers: Vec::new(),
                },
            )
            .is_some()
        {
            return Err(err(format!("--upstream {name:?} is given twice")));
        }
    }
    if out.is_empty() {
        return Err(err("give at least one --upstream NAME=URL"));
    }
    for spec in &options.upstream_headers {
        let parsed = spec
            .split_once(':')
            .and_then(|(name, rest)| rest.split_once('=').map(|(h, v)| (name, h, v)));
        let Some((name, header, value)) = parsed else {
            return Err(err(format!(
                "--upstream-header {spec:?}: write NAME:HEADER=VALUE, e.g. files:Authorization=Bearer\\ abc"
            )));
        };
        let upstream = out.get_mut(name).ok_or_else(|| {
            err(format!(
                "--upstream-header {spec:?}: no --upstream named {name:?}"
            ))
        })?;
        let header = HeaderName::try_from(header)
            .map_err(|e| err(format!("--upstream-header {spec:?}: header name: {e}")))?;
        let value = HeaderValue::try_from(value)
            .map_err(|e| err(format!("--upstream-header {spec:?}: header value: {e}")))?;
        upstream.headers.push((header, value));
    }
    Ok(out)
}

/// Runs `lexecon mcp serve` until SIGINT or SIGTERM.
pub async fn run_serve(options: ServeOptions) -> Result<(), StartError> {
    let listen: SocketAddr = options.listen.parse().map_err(|e| {
        err(format!(
            "--listen {:?}: {e} (e.g. 127.0.0.1:8930)",
            options.listen
        ))
    })?;
    if options.tls_cert.is_some() || options.tls_key.is_some() {
        return Err(err(
            "--tls-cert/--tls-key: this build of `lexecon mcp serve` does not terminate TLS; listen on a loopback address behind a TLS proxy",
        ));
    }
    if !listen.ip().is_loopback() {
        return Err(err(format!(
            "--listen {listen}: without --tls-cert and --tls-key the gateway listens only on a loopback address (127.0.0.1, ::1)"
        )));
    }
    let upstreams = upstreams(&options)?;
    let (auth, settings, engine) = match &options.backend {
        ServeBackend::DataDir(dir) => {
            let engine = open_engine(dir).await?;
            let settings = load_settings(&engine.config().mcp, options.config.as_deref())?;
            (Auth::Engine(Arc::clone(&engine)), settings, Some(engine))
        }
        ServeBackend::Server(url) => {
            let url = if url.contains("://") {
                url.clone()
            } else {
                format!("http://{url}")
            };
            let channel = tonic::transport::Endpoint::from_shared(url.clone())
                .map_err(|e| err(format!("invalid --server {url:?}: {e}")))?
                .connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
                .connect_lazy();
            let settings = load_settings(&McpConfig::default(), options.config.as_deref())?;
            (Auth::Server(channel), settings, None)
        }
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let state = Arc::new(ServeState {
        upstreams,
        auth,
        settings,
        client,
        recorders: Mutex::new(Vec::new()),
        sessions: Mutex::new(HashMap::new()),
        checked: Mutex::new(HashMap::new()),
    });
    let router = axum::Router::new()
        .route("/mcp/{name}", axum::routing::any(handle))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| err(format!("--listen {listen}: {e}")))?;
    eprintln!("lexecon mcp serve: listening on http://{listen}/mcp/NAME");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(crate::run::shutdown_signal())
        .await;
    // Record what is in flight before the engine closes (each request's gateway is
    // gone, so each recorder ends once its completions are recorded).
    let recorders: Vec<_> = lock(&state.recorders).drain(..).collect();
    for recorder in recorders {
        let _ = tokio::time::timeout(Duration::from_secs(10), recorder).await;
    }
    if let Some(engine) = engine
        && let Err(e) = engine.shutdown().await
    {
        tracing::warn!(error = %e, "closing the engine failed");
    }
    served.map_err(|e| err(format!("serving on {listen}: {e}")))
}

fn plain(status: StatusCode, message: &str) -> Response {
    let body = jsonrpc::error_response(None, GATEWAY_ERROR, message);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"lexecon\""),
        );
    }
    response
}

/// The Origin check of the Streamable HTTP transport: a browser page of another origin
/// may not reach the gateway (DNS rebinding). No Origin (a non-browser client), a
/// loopback origin, or the gateway's own origin pass.
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Ok(uri) = origin.parse::<hyper::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_matches(['[', ']']);
    if host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    let own = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    uri.authority().is_some_and(|a| a.as_str() == own)
}

impl ServeState {
    /// The agent behind `Authorization: Bearer`, or the response refusing it.
    async fn agent(&self, headers: &HeaderMap) -> Result<Agent, Response> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                plain(
                    StatusCode::UNAUTHORIZED,
                    "send your Lexecon API key as Authorization: Bearer <key>",
                )
            })?;
        match &self.auth {
            Auth::Engine(engine) => {
                let caller = engine.authenticate(bearer).await.map_err(|e| {
                    plain(StatusCode::UNAUTHORIZED, &format!("unauthenticated: {e}"))
                })?;
                Ok(Agent {
                    principal: caller.ledger_name(),
                    decider: Arc::new(EngineDecider::new(Arc::clone(engine), caller)),
                })
            }
            Auth::Server(channel) => {
                let decider = GrpcDecider::new(channel.clone(), bearer)
                    .map_err(|e| plain(StatusCode::UNAUTHORIZED, &e.to_string()))?;
                let digest: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
                let cached = lock(&self.checked)
                    .get(&digest)
                    .filter(|(at, _)| at.elapsed() < AUTH_CACHE)
                    .map(|(_, p)| p.clone());
                let principal = match cached {
                    Some(p) => p,
                    None => {
                        let me = decider.who_am_i().await.map_err(|e| {
                            if e.0.contains("Unauthenticated") {
                                plain(StatusCode::UNAUTHORIZED, &e.0)
                            } else {
                                plain(StatusCode::SERVICE_UNAVAILABLE, &e.0)
                            }
                        })?;
                        let mut checked = lock(&self.checked);
                        if checked.len() > 10_000 {
                            checked.retain(|_, (at, _)| at.elapsed() < AUTH_CACHE);
                        }
                        checked.insert(digest, (Instant::now(), me.principal.clone()));
                        me.principal
                    }
                };
                Ok(Agent {
                    principal,
                    decider: Arc::new(decider),
                })
            }
        }
    }

    /// A gateway for one request: the agent as authenticated just now (a changed
    /// binding or a revoked key applies at once). Its completions are recorded by a task
    /// kept until shutdown.
    fn gateway(&self, name: &str, agent: &Agent, actor: &str) -> Arc<Gateway<dyn Decider>> {
        let (gateway, recorder) = Gateway::new(
            name,
            actor,
            self.settings.clone(),
            Arc::clone(&agent.decider),
        );
        let mut recorders = lock(&self.recorders);
        recorders.retain(|r| !r.is_finished());
        recorders.push(recorder);
        Arc::new(gateway)
    }

    /// The session a request belongs to; refused when another key owns it.
    fn session(
        &self,
        name: &str,
        headers: &HeaderMap,
        principal: &str,
    ) -> Result<Arc<Session>, Refusal> {
        let Some(id) = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
        else {
            // No session (initialize, or an upstream that keeps none): calls are
            // decided without idempotency.
            return Ok(Arc::new(Session::new(None)));
        };
        let mut sessions = lock(&self.sessions);
        let entry = sessions
            .entry((name.to_owned(), id.to_owned()))
            .or_insert_with(|| SessionEntry {
                owner: principal.to_owned(),
                session: Arc::new(Session::new(Some(id.as_bytes().to_vec()))),
            });
        if entry.owner != principal {
            return Err((
                StatusCode::FORBIDDEN,
                "this MCP session belongs to another API key".to_owned(),
            ));
        }
        Ok(Arc::clone(&entry.session))
    }

    fn claim_session(&self, name: &str, id: &str, principal: &str) {
        lock(&self.sessions)
            .entry((name.to_owned(), id.to_owned()))
            .or_insert_with(|| SessionEntry {
                owner: principal.to_owned(),
                session: Arc::new(Session::new(Some(id.as_bytes().to_vec()))),
            });
    }

    fn upstream_request(
        &self,
        upstream: &Upstream,
        method: Method,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<hyper::Request<Full<Bytes>>, Refusal> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(upstream.url.clone());
        for name in RELAYED_REQUEST_HEADERS {
            if let Some(value) = headers.get(name) {
                builder = builder.header(name, value.clone());
            }
        }
        for (name, value) in &upstream.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        builder
            .body(Full::new(body))
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

async fn handle(
    State(state): State<Arc<ServeState>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !origin_ok(&parts.headers) {
        return plain(StatusCode::FORBIDDEN, "Origin not allowed");
    }
    let Some(upstream) = state.upstreams.get(&name) else {
        return plain(
            StatusCode::NOT_FOUND,
            &format!("no upstream named {name:?} at this gateway"),
        );
    };
    let agent = match state.agent(&parts.headers).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let actor = parts
        .headers
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let session = match state.session(&name, &parts.headers, &agent.principal) {
        Ok(session) => session,
        Err((status, message)) => return plain(status, &message),
    };
    let gateway = state.gateway(&name, &agent, &actor);
    match parts.method {
        Method::POST => {
            let body = match axum::body::to_bytes(body, MAX_CLIENT_MESSAGE_BYTES).await {
                Ok(body) => body,
                Err(_) => {
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("the body exceeds {MAX_CLIENT_MESSAGE_BYTES} bytes"),
                    );
                }
            };
            post(
                &state,
                upstream,
                &gateway,
                session,
                &agent,
                &parts.headers,
                body,
            )
            .await
        }
        Method::GET | Method::DELETE => {
            let Ok(request) = state.upstream_request(
                upstream,
                parts.method.clone(),
                &parts.headers,
                Bytes::new(),
            ) else {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "bad upstream request");
            };
            let response = match state.client.request(request).await {
                Ok(r) => r,
                Err(e) => {
                    return plain(StatusCode::BAD_GATEWAY, &format!("upstream {name:?}: {e}"));
                }
            };
            if parts.method == Method::DELETE
                && response.status().is_success()
                && let Some(id) = parts
                    .headers
                    .get("mcp-session-id")
                    .and_then(|v| v.to_str().ok())
            {
                lock(&state.sessions).remove(&(name.clone(), id.to_owned()));
            }
            relay_response(response, gateway, session, Vec::new()).await
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE"),
    }
}

async fn post(
    state: &ServeState,
    upstream: &Upstream,
    gateway: &Arc<Gateway<dyn Decider>>,
    session: Arc<Session>,
    agent: &Agent,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut forwards = Vec::new();
    let mut replies = Vec::new();
    for step in gateway.from_client(&session, &body) {
        match step {
            Step::Forward(bytes) => forwards.push(bytes),
            Step::Reply(bytes) => replies.push(bytes),
            Step::Decide { call, raw } => match gateway.decide(&session, call, raw).await {
                Step::Forward(bytes) => forwards.push(bytes),
                Step::Reply(bytes) => replies.push(bytes),
                Step::Decide { .. } => {}
            },
        }
    }
    if forwards.is_empty() {
        return match replies.len() {
            0 => StatusCode::ACCEPTED.into_response(),
            1 => json_response(replies.concat()),
            _ => json_response(format!("[{}]", replies.join(","))),
        };
    }
    let outgoing = if forwards.len() == 1 {
        forwards.concat()
    } else {
        format!("[{}]", forwards.join(","))
    };
    let request =
        match state.upstream_request(upstream, Method::POST, headers, Bytes::from(outgoing)) {
            Ok(r) => r,
            Err((status, message)) => return plain(status, &message),
        };
    let response = match state.client.request(request).await {
        Ok(r) => r,
        Err(e) => {
            let why = format!("the upstream {:?} did not answer: {e}", gateway.server());
            let mut errors: Vec<String> = forwards
                .iter()
                .filter_map(|f| session.unreachable(f, &why))
                .collect();
            errors.extend(replies);
            let mut response = json_response(if errors.len() == 1 {
                errors.concat()
            } else {
                format!("[{}]", errors.join(","))
            });
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    if let Some(id) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        state.claim_session(gateway.server(), id, &agent.principal);
    }
    if !response.status().is_success() {
        // Nothing in it answers the forwarded requests: forget them.
        for f in &forwards {
            session.unreachable(f, "");
        }
    }
    relay_response(response, Arc::clone(gateway), session, replies).await
}

fn json_response(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Relays an upstream response: JSON bodies through the gateway at once, event streams
/// event by event; `replies` (refused calls of the same POST) are added.
async fn relay_response(
    response: hyper::Response<hyper::body::Incoming>,
    gateway: Arc<Gateway<dyn Decider>>,
    session: Arc<Session>,
    replies: Vec<String>,
) -> Response {
    let (parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut builder = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        let keep = name == header::CONTENT_TYPE
            || name == header::CACHE_CONTROL
            || name.as_str().starts_with("mcp-");
        if keep {
            builder = builder.header(name, value);
        }
    }
    let built = if content_type.starts_with("text/event-stream") {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(stream_events(body, gateway, session, replies, tx));
        builder.body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    } else {
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("reading the upstream's answer: {e}"),
                );
            }
        };
        let mut out = if content_type.starts_with("application/json") && !bytes.is_empty() {
            gateway
                .from_upstream(&session, &bytes)
                .await
                .unwrap_or_default()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        if !replies.is_empty() {
            let mut all = replies;
            if !out.trim().is_empty() {
                all.insert(0, out);
            }
            out = format!("[{}]", all.join(","));
        }
        builder.body(Body::from(out))
    };
    built.unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, &e.to_string()))
}

/// Rewrites a server-sent event stream: each event's data is a JSON-RPC message, passed
/// through the gateway; every other field is kept.
async fn stream_events(
    mut body: hyper::body::Incoming,
    gateway: Arc<Gateway<dyn Decider>>,
    session: Arc<Session>,
    replies: Vec<String>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    for reply in replies {
        if tx
            .send(Ok(Bytes::from(format!(
                "event: message\ndata: {reply}\n\n"
            ))))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the upstream's event stream broke");
                break;
            }
            None => break,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some((end, skip)) = event_end(&buf) {
            let event: Vec<u8> = buf.drain(..end + skip).take(end).collect();
            let out = rewrite_event(&event, &gateway, &session).await;
            if tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
        }
        if buf.len() > crate::stdio::MAX_UPSTREAM_MESSAGE_BYTES {
            tracing::warn!("dropped an event from the upstream that exceeds the limit");
            buf.clear();
        }
    }
    if !buf.is_empty() {
        let out = rewrite_event(&buf, &gateway, &session).await;
        let _ = tx.send(Ok(Bytes::from(out))).await;
    }
}

/// Where the first event ends (a blank line), and the length of the separator.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

async fn rewrite_event(event: &[u8], gateway: &Gateway<dyn Decider>, session: &Session) -> String {
    let text = String::from_utf8_lossy(event);
    let mut others = Vec::new();
    let mut data = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = line.strip_prefix("data:") {
            data.push(rest.strip_prefix(' ').unwrap_or(rest));
        } else {
            others.push(line);
        }
    }
    let mut out = String::new();
    for line in others {
        out.push_str(line);
        out.push('\n');
    }
    if !data.is_empty() {
        let joined = data.join("\n");
        let rewritten = gateway
            .from_upstream(session, joined.as_bytes())
            .await
            .unwrap_or(joined);
        for line in rewritten.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins() {
        assert!(origin_ok(&headers(&[])));
        assert!(origin_ok(&headers(&[("origin", "http://localhost:3000")])));
        assert!(origin_ok(&headers(&[("origin", "http://127.0.0.1")])));
        assert!(origin_ok(&headers(&[("origin", "http://[::1]:8080")])));
        assert!(origin_ok(&headers(&[
            ("origin", "https://gw.example:8443"),
            ("host", "gw.example:8443")
        ])));
        assert!(!origin_ok(&headers(&[("origin", "http://evil.example")])));
        assert!(!origin_ok(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8930")
        ])));
        assert!(!origin_ok(&headers(&[("origin", "null")])));
    }

    #[test]
    fn upstream_flags() {
        let options = |u: &[&str], h: &[&str]| ServeOptions {
            listen: "127.0.0.1:0".to_owned(),
            upstreams: u.iter().map(|s| (*s).to_owned()).collect(),
            upstream_headers: h.iter().map(|s| (*s).to_owned()).collect(),
            backend: ServeBackend::Server("http://127.0.0.1:1".to_owned()),
            config: None,
            tls_cert: None,
            tls_key: None,
        };
        let ok = upstreams(&options(
            &[
                "files=http://127.0.0.1:3001/mcp",
                "time=https://t.example/mcp",
            ],
            &["files:X-Secret=a=b"],
        ))
        .unwrap();
        assert_eq!(ok["files"].headers.len(), 1);
        assert_eq!(ok["files"].headers[0].1, "a=b");
        assert!(ok["time"].headers.is_empty());
        for (u, h, want) in [
            (&["files"][..], &[][..], "NAME=URL"),
            (&["a/b=http://x"][..], &[][..], "without '/'"),
            (&["f=ftp://x"][..], &[][..], "http://"),
            (&["f=http://x", "f=http://y"][..], &[][..], "twice"),
            (&["f=http://x"][..], &["g:X=1"][..], "no --upstream named"),
            (&["f=http://x"][..], &["fX=1"][..], "NAME:HEADER=VALUE"),
            (&[][..], &[][..], "at least one"),
        ] {
            let e = upstreams(&options(u, h))
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(e.contains(want), "{u:?} {h:?}: {e}");
        }
    }

    #[test]
    fn events_split_on_blank_lines() {
        assert_eq!(event_end(b"data: x\n\nrest"), Some((7, 2)));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some((7, 4)));
        assert_eq!(event_end(b"data: x\n"), None);
    }
}
