//! The HTTP/JSON API (contract §9), served on the gRPC port beside gRPC.
//!
//! Nothing is decided here. Each JSON request is transcoded to the RPC's protobuf
//! request (by `lexecon-json`, from the descriptors), framed as a gRPC call carrying the
//! caller's `authorization` header, and sent through the same [`GrpcStack`] as every
//! gRPC call, so authentication, permissions, validation and metrics are the gRPC
//! ones. The answer's message is transcoded back to JSON, or its status to a JSON error
//! ([`error`]). [`Front`] splits the two doors on the one listener by content type:
//! `application/grpc*` goes to the stack, everything else to the JSON [`router`].

pub mod error;
pub mod grpc;
pub mod stream;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use lexecon_json::{Api, Method, Verb};
use tower::ServiceExt;

pub use crate::http::error::ApiError;
pub use crate::http::grpc::GrpcStack;
use crate::http::stream::Bounds;

/// The largest JSON body accepted, except for `RegisterEvidence`.
pub const BODY_LIMIT: usize = 1 << 20;
/// Room for the other fields of a `RegisterEvidence` body beside its artifact.
pub const EVIDENCE_ENVELOPE: usize = 64 * 1024;
/// The RPC whose body holds an artifact, base64-encoded.
const REGISTER_EVIDENCE: &str = "EvidenceService/RegisterEvidence";

/// The largest `RegisterEvidence` body: the artifact of `evidence.max_bytes` in base64
/// (⌈4/3 · max⌉) plus [`EVIDENCE_ENVELOPE`].
pub fn evidence_body_limit(max_bytes: usize) -> usize {
    // ⌈4m/3⌉ = 4⌊m/3⌋ + ⌈4(m mod 3)/3⌉, without overflowing for a huge m.
    (max_bytes / 3)
        .saturating_mul(4)
        .saturating_add((max_bytes % 3 * 4).div_ceil(3))
        .saturating_add(EVIDENCE_ENVELOPE)
}

/// Whether the server is ready for traffic: SERVING and not draining. It changes with
/// the gRPC health status, and `/readyz` reports it.
#[derive(Debug, Clone, Default)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    /// Marks the server ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the server is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The size limits the JSON routes apply, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `server.max_request_bytes`: the largest request message of the gRPC services.
    pub max_request_bytes: usize,
    /// `evidence.max_bytes`: the largest artifact `RegisterEvidence` takes.
    pub evidence_max_bytes: usize,
}

/// What the JSON handlers share.
#[derive(Debug)]
struct HttpState {
    grpc: GrpcStack,
    api: &'static Api,
    /// The largest `RegisterEvidence` JSON body.
    evidence_limit: usize,
    /// The largest request message the services decode: `server.max_request_bytes`, and
    /// for `RegisterEvidence` its artifact limit plus envelope (as the services set it).
    message_limit: usize,
    evidence_message_limit: usize,
    openapi: OnceLock<Bytes>,
    docs: OnceLock<Bytes>,
}

type Shared = Arc<HttpState>;

/// The JSON routes: every RPC at `POST /v1/<Service>/<Rpc>`, the friendly routes of
/// `api`, `/healthz`, `/readyz`, `/openapi.json` and `/docs`. Every RPC goes through `grpc`.
pub fn router(grpc: GrpcStack, api: &'static Api, limits: Limits, ready: Ready) -> Router {
    let state = Arc::new(HttpState {
        grpc,
        api,
        evidence_limit: evidence_body_limit(limits.evidence_max_bytes),
        message_limit: limits.max_request_bytes,
        evidence_message_limit: limits
            .evidence_max_bytes
            .saturating_add(crate::services::evidence::ENVELOPE_BYTES),
        openapi: OnceLock::new(),
        docs: OnceLock::new(),
    });
    with_probes(json_routes(api).with_state(state), ready)
}

/// The JSON routes over the shared state (built apart from it, so that a test can lay
/// them out without a server).
fn json_routes(api: &'static Api) -> Router<Shared> {
    let mut router: Router<Shared> = Router::new().route(
        "/v1/{service}/{rpc}",
        only(MethodFilter::POST, "POST", generic),
    );
    // Friendly routes, grouped by path so that a path may carry several verbs.
    let mut by_path: BTreeMap<&'static str, Vec<(&'static lexecon_json::Route, &'static Method)>> =
        BTreeMap::new();
    for route in api.routes() {
        let Some(method) = route
            .rpc
            .split_once('/')
            .and_then(|(service, rpc)| api.method(service, rpc))
        else {
            tracing::error!(
                path = route.path,
                rpc = route.rpc,
                "friendly route names no RPC; left out"
            );
            continue;
        };
        by_path.entry(route.path).or_default().push((route, method));
    }
    for (path, routes) in by_path {
        let allowed = routes
            .iter()
            .map(|(r, _)| verb_name(r.verb))
            .collect::<Vec<_>>()
            .join(", ");
        let mut methods = MethodRouter::<Shared>::new();
        for (route, method) in routes {
            let has_params = route.path.contains('{');
            methods = methods.on(
                verb_filter(route.verb),
                move |State(state): State<Shared>, request: Request| {
                    handle(
                        state,
                        method,
                        route.verb,
                        route.aliases,
                        has_params,
                        request,
                    )
                },
            );
        }
        router = router.route(
            path,
            methods.fallback(move |method: axum::http::Method, uri: Uri| {
                let allowed = allowed.clone();
                async move { method_not_allowed(&method, &uri, &allowed) }
            }),
        );
    }
    router
        .route("/openapi.json", only(MethodFilter::GET, "GET", openapi))
        .route("/docs", only(MethodFilter::GET, "GET", docs))
        .fallback(not_found)
}

/// `/healthz` (200 while the process serves) and `/readyz` (200 when ready, 503 with
/// `Retry-After` otherwise) on `router`; neither needs a token. The metrics listener
/// serves them too.
pub fn with_probes(router: Router, ready: Ready) -> Router {
    router
        .route(
            "/healthz",
            only(MethodFilter::GET, "GET", || async {
                json_response(Bytes::from_static(br#"{"status":"serving"}"#))
            }),
        )
        .route(
            "/readyz",
            only(MethodFilter::GET, "GET", move || {
                let ready = ready.clone();
                async move {
                    if ready.get() {
                        json_response(Bytes::from_static(br#"{"status":"serving"}"#))
                    } else {
                        ApiError {
                            retry_after: Some(HeaderValue::from_static("1")),
                            ..ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "unavailable",
                                "the server is starting or draining; send traffic to another replica or retry later",
                            )
                        }
                        .into_response()
                    }
                }
            }),
        )
}

/// A route answering one verb, and a JSON 405 naming it for the others.
fn only<H, T, S>(filter: MethodFilter, allowed: &'static str, handler: H) -> MethodRouter<S>
where
    H: axum::handler::Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    on(filter, handler).fallback(move |method: axum::http::Method, uri: Uri| async move {
        method_not_allowed(&method, &uri, allowed)
    })
}

fn verb_filter(verb: Verb) -> MethodFilter {
    match verb {
        Verb::Get => MethodFilter::GET,
        Verb::Post => MethodFilter::POST,
    }
}

fn verb_name(verb: Verb) -> &'static str {
    match verb {
        Verb::Get => "GET",
        Verb::Post => "POST",
    }
}

fn method_not_allowed(method: &axum::http::Method, uri: &Uri, allowed: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "unimplemented",
        format!("{method} is not allowed on {}; use {allowed}", uri.path()),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(allowed) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

async fn not_found(method: axum::http::Method, uri: Uri) -> Response {
    let path = uri.path();
    let hint = if path.starts_with("/lexecon.v1.") || path.starts_with("/grpc.") {
        " (gRPC paths need content-type: application/grpc; over JSON call POST /v1/<Service>/<Rpc>)"
    } else {
        ""
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {method} {path}{hint}; every RPC is at POST /v1/<Service>/<Rpc> and the routes are listed at /docs and /openapi.json"
        ),
    )
    .into_response()
}

fn json_response(body: impl Into<axum::body::Body>) -> Response {
    let mut response = (StatusCode::OK, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn openapi(State(state): State<Shared>) -> Response {
    let body = state
        .openapi
        .get_or_init(|| Bytes::from(state.api.openapi()))
        .clone();
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn docs(State(state): State<Shared>) -> Response {
    let body = state
        .docs
        .get_or_init(|| Bytes::from(state.api.docs_html()))
        .clone();
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `POST /v1/<Service>/<Rpc>`; the service may be short or full.
async fn generic(State(state): State<Shared>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params,
        Err(e) => return ApiError::invalid(None, e.body_text()).into_response(),
    };
    let (mut service, mut rpc) = ("", "");
    for (name, value) in &params {
        match name {
            "service" => service = value,
            "rpc" => rpc = value,
            _ => {}
        }
    }
    let Some(method) = state.api.method(service, rpc) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "there is no RPC {service}/{rpc}; call POST /v1/<Service>/<Rpc> with a service and RPC listed at /docs (e.g. /v1/DecisionService/Decide)"
            ),
        )
        .into_response();
    };
    let request = Request::from_parts(parts, body);
    handle(state, method, Verb::Post, &[], false, request).await
}

/// Transcodes one request, calls its RPC and answers.
async fn handle(
    state: Shared,
    method: &'static Method,
    verb: Verb,
    aliases: &'static [(&'static str, &'static str)],
    has_params: bool,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let path_params = if has_params {
        match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(params) => params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(e) => return ApiError::invalid(None, e.body_text()).into_response(),
        }
    } else {
        Vec::new()
    };
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    let prepared = match verb {
        Verb::Get => from_query(method, aliases, parts.uri.query(), path_params),
        Verb::Post => {
            from_body(
                &state,
                method,
                aliases,
                &parts.headers,
                parts.uri.query(),
                path_params,
                body,
            )
            .await
        }
    };
    let (message, bounds) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // The services would refuse a larger message with a bare OUT_OF_RANGE; say which
    // limit it is instead, as for a body over the HTTP limit.
    let (message_limit, setting) = if method.name() == REGISTER_EVIDENCE {
        (state.evidence_message_limit, "evidence.max_bytes")
    } else {
        (state.message_limit, "server.max_request_bytes")
    };
    if message.len() > message_limit {
        return ApiError::message_too_large(message.len(), message_limit, method.name(), setting)
            .into_response();
    }
    if method.server_streaming() {
        return stream::respond(state.grpc.clone(), method, authorization, &message, bounds).await;
    }
    let answer = match grpc::unary(state.grpc.clone(), method, authorization, &message).await {
        Ok(answer) => answer,
        Err(e) => return e.into_response(),
    };
    match method.encode_response(&answer) {
        Ok(json) => json_response(json),
        Err(e) => ApiError::internal(&format!("{}: {e}", method.name())).into_response(),
    }
}

/// Query parameters by name, in order.
pub fn query_params(query: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        params
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    params
}

/// Takes the streaming bounds out of `params` for a streaming `method`.
fn take_bounds(
    method: &Method,
    params: &mut BTreeMap<String, Vec<String>>,
) -> Result<Bounds, ApiError> {
    let mut bounds = Bounds::default();
    if method.server_streaming() {
        for name in ["max_events", "wait_ms"] {
            if let Some(values) = params.remove(name) {
                bounds.take(name, &values)?;
            }
        }
    }
    Ok(bounds)
}

/// A GET route's request message, from its query and path parameters.
fn from_query(
    method: &Method,
    aliases: &[(&str, &str)],
    query: Option<&str>,
    path_params: Vec<(String, String)>,
) -> Result<(Vec<u8>, Bounds), ApiError> {
    let mut params = query_params(query);
    let bounds = take_bounds(method, &mut params)?;
    for (name, value) in path_params {
        params.entry(name).or_default().push(value);
    }
    let value = method.params_to_value(&params, aliases)?;
    Ok((method.request_from_value(value)?, bounds))
}

/// A POST route's request message, from its JSON body (and path parameters).
async fn from_body(
    state: &HttpState,
    method: &Method,
    aliases: &[(&str, &str)],
    headers: &HeaderMap,
    query: Option<&str>,
    path_params: Vec<(String, String)>,
    body: axum::body::Body,
) -> Result<(Vec<u8>, Bounds), ApiError> {
    let mut params = query_params(query);
    let bounds = take_bounds(method, &mut params)?;
    if let Some(name) = params.keys().next() {
        return Err(ApiError::invalid(
            Some(name.clone()),
            format!(
                "{name} is not a query parameter of {}; send request fields in the JSON body",
                method.name()
            ),
        ));
    }
    check_content_type(headers)?;
    let limit = if method.name() == REGISTER_EVIDENCE {
        state.evidence_limit
    } else {
        BODY_LIMIT
    };
    let body = read_body(body, headers, limit, method.name()).await?;
    if path_params.is_empty() {
        return Ok((method.decode_request(&body)?, bounds));
    }
    let mut value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(
                None,
                format!("the body is not valid JSON ({e}); send a JSON object"),
            )
        })?
    };
    let serde_json::Value::Object(fields) = &mut value else {
        return Err(ApiError::invalid(
            None,
            "the body is not a JSON object; send the request message as an object",
        ));
    };
    let from_path: BTreeMap<String, Vec<String>> = path_params
        .into_iter()
        .map(|(name, value)| (name, vec![value]))
        .collect();
    if let serde_json::Value::Object(from_path) = method.params_to_value(&from_path, aliases)? {
        for (name, value) in from_path {
            if fields.get(&name).is_some_and(|v| *v != value) {
                return Err(ApiError::invalid(
                    Some(name.clone()),
                    format!(
                        "{name} is given in the path and differently in the body; give it once"
                    ),
                ));
            }
            fields.insert(name, value);
        }
    }
    Ok((method.request_from_value(value)?, bounds))
}

/// A POST body must be JSON: `content-type: application/json` (any parameters) or none.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some("") => Ok(()),
        Some(e) if e.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_argument",
            format!(
                "content-type {:?} is not accepted; send the request as JSON with content-type: application/json",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )),
    }
}

/// The body, at most `limit` bytes; 413 beyond.
pub async fn read_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    limit: usize,
    rpc: &str,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit, rpc));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large(limit, rpc))
        }
        Err(e) => Err(ApiError::invalid(
            None,
            format!("the request body could not be read ({e}); send it again"),
        )),
    }
}

/// The one service on the gRPC port: `application/grpc*` requests go to the gRPC
/// stack, every other request to the JSON routes (which reach the services only
/// through the same stack).
#[derive(Debug, Clone)]
pub struct Front {
    grpc: GrpcStack,
    http: Router,
}

impl Front {
    /// The front over `grpc` and the JSON `http` router.
    pub fn new(grpc: GrpcStack, http: Router) -> Front {
        Front { grpc, http }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<axum::http::Request<tonic::body::Body>> for Front {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both sides are clones of always-ready routers, driven with `oneshot`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        if grpc::is_grpc(request.headers()) {
            let grpc = self.grpc.clone();
            Box::pin(async move {
                let Ok(response) = grpc.oneshot(request).await;
                Ok(response)
            })
        } else {
            let http = self.http.clone();
            Box::pin(async move {
                let Ok(response) = http.oneshot(request).await;
                Ok(response.map(tonic::body::Body::new))
            })
        }
    }
}
