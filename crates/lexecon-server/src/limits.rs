//! Overload protection: a bound on calls in flight, a per-principal share of it, and a
//! per-principal rate limit (contract §10).
//!
//! [`LimitLayer`] sits inside the auth layer, so it sees the authenticated caller, and
//! in front of every service, so gRPC calls and transcoded HTTP/JSON calls meet the same
//! limits. A call beyond a limit is answered at once with `RESOURCE_EXHAUSTED` (HTTP
//! 429) and a `retry-after` hint in seconds; nothing is ever queued.
//!
//! - **Global bound** (`server.max_concurrent_requests`): counted with one atomic. A
//!   call holds its place until its response body ends or is dropped, so an open stream
//!   (`WatchEvents`) holds its place while it is open.
//! - **Share**: one principal may hold at most half of the bound.
//! - **Rate** (`server.rate_limit`): a token bucket per principal.
//! - Health and reflection are never limited. Calls without a principal (the open
//!   sign-in RPCs) count toward the global bound only.
//!
//! The common path costs two atomic operations and one map lookup under a sharded,
//! never-awaited mutex. Idle principals are evicted so memory stays bounded.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tonic::Status;
use tonic::codegen::http;
use tonic::metadata::MetadataValue;

use crate::auth::Authenticated;
use crate::metrics::{Metrics, ReasonLabel};

/// The shards of the principal map.
const SHARDS: usize = 16;
/// Principals kept per shard before idle ones are evicted.
const SHARD_CAPACITY: usize = 4096;

/// The limits in force, from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `server.max_concurrent_requests`.
    pub max_concurrent: u32,
    /// `server.rate_limit.per_principal_rps` and the bucket size; `None`: no rate limit.
    pub rate: Option<Rate>,
}

/// A token bucket's rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// The bucket's size.
    pub burst: f64,
}

impl Limits {
    /// The limits `[server]` configures.
    pub fn from_config(server: &lexecon_engine::config::ServerConfig) -> Limits {
        Limits {
            max_concurrent: server.max_concurrent_requests,
            rate: server
                .rate_limit
                .per_principal_rps
                .zip(server.rate_limit.effective_burst())
                .map(|(rps, burst)| Rate {
                    per_sec: f64::from(rps),
                    burst: f64::from(burst),
                }),
        }
    }

    /// The most one principal may hold in flight: half the bound, at least one.
    pub fn share(&self) -> u32 {
        (self.max_concurrent / 2).max(1)
    }
}

/// Whether `path` is never limited: health and reflection.
fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// One principal's state.
#[derive(Debug)]
struct PrincipalState {
    in_flight: Arc<AtomicU32>,
    tokens: f64,
    refilled: Instant,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Concurrency,
    Share,
    Rate { retry_after_secs: u64 },
}

/// What the layer shares between connections.
#[derive(Debug)]
struct State {
    limits: Limits,
    in_flight: AtomicU32,
    hasher: std::collections::hash_map::RandomState,
    shards: [Mutex<HashMap<Box<str>, PrincipalState>>; SHARDS],
    metrics: Arc<Metrics>,
}

impl State {
    fn shard(&self, id: &str) -> MutexGuard<'_, HashMap<Box<str>, PrincipalState>> {
        let index = usize::try_from(self.hasher.hash_one(id) % SHARDS as u64).unwrap_or(0);
        let [first, ..] = &self.shards;
        let shard = self.shards.get(index).unwrap_or(first);
        // A panic while holding a shard cannot leave it inconsistent: every update is a
        // plain field write.
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a place for a call by `principal` (`None`: no principal), or says why not.
    fn admit(self: &Arc<Self>, principal: Option<&str>) -> Result<Permit, Refusal> {
        let max = self.limits.max_concurrent;
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Concurrency);
        }
        let mut permit = Permit {
            state: Some(Arc::clone(self)),
            principal: None,
        };
        if let Some(id) = principal {
            permit.principal = Some(self.admit_principal(id)?);
        }
        Ok(permit)
    }

    /// The per-principal checks: share first (a refused call spends no token), then rate.
    fn admit_principal(&self, id: &str) -> Result<Arc<AtomicU32>, Refusal> {
        let now = self.limits.rate.map(|_| Instant::now());
        let mut shard = self.shard(id);
        if !shard.contains_key(id) {
            if shard.len() >= SHARD_CAPACITY {
                evict(&mut shard, self.limits.rate, now);
            }
            shard.insert(
                Box::from(id),
                PrincipalState {
                    in_flight: Arc::new(AtomicU32::new(0)),
                    tokens: self.limits.rate.map_or(0.0, |r| r.burst),
                    refilled: now.unwrap_or_else(Instant::now),
                },
            );
        }
        let Some(entry) = shard.get_mut(id) else {
            return Err(Refusal::Concurrency);
        };
        if entry.in_flight.load(Ordering::Acquire) >= self.limits.share() {
            return Err(Refusal::Share);
        }
        if let (Some(rate), Some(now)) = (self.limits.rate, now) {
            let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * rate.per_sec).min(rate.burst);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                let wait = ((1.0 - entry.tokens) / rate.per_sec).ceil();
                // `wait` is finite and positive: per_sec ≥ 1 and tokens < 1.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a small positive whole number of seconds"
                )]
                let retry_after_secs = (wait as u64).max(1);
                return Err(Refusal::Rate { retry_after_secs });
            }
            entry.tokens -= 1.0;
        }
        entry.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Arc::clone(&entry.in_flight))
    }

    fn refuse(&self, refusal: Refusal) -> Status {
        let max = self.limits.max_concurrent;
        let (message, retry_after) = match refusal {
            Refusal::Concurrency => {
                self.shed("concurrency");
                (
                    format!(
                        "the server is at its limit of {max} concurrent requests \
                         (server.max_concurrent_requests); retry after a moment"
                    ),
                    1,
                )
            }
            Refusal::Share => {
                self.shed("principal_share");
                (
                    format!(
                        "this principal already has {} requests in flight, its share (half of \
                         server.max_concurrent_requests = {max}); wait for some to finish, then retry",
                        self.limits.share()
                    ),
                    1,
                )
            }
            Refusal::Rate { retry_after_secs } => {
                self.metrics.requests_rate_limited.inc();
                let rate = self.limits.rate.map_or(0.0, |r| r.per_sec);
                let burst = self.limits.rate.map_or(0.0, |r| r.burst);
                (
                    format!(
                        "this principal is over its rate limit of {rate} requests per second \
                         (burst {burst}, server.rate_limit); retry after {retry_after_secs} s"
                    ),
                    retry_after_secs,
                )
            }
        };
        let mut status = Status::resource_exhausted(message);
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from(retry_after));
        status
    }

    fn shed(&self, reason: &str) {
        self.metrics
            .requests_shed
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Drops principals with nothing in flight whose bucket is full again (forgetting them
/// changes nothing); if the shard is still full, every principal with nothing in flight
/// (they may then burst again). Those in flight are bounded by the global bound.
fn evict(shard: &mut HashMap<Box<str>, PrincipalState>, rate: Option<Rate>, now: Option<Instant>) {
    let full_again = |s: &PrincipalState| match (rate, now) {
        (Some(rate), Some(now)) => {
            s.tokens + now.saturating_duration_since(s.refilled).as_secs_f64() * rate.per_sec
                >= rate.burst
        }
        _ => true,
    };
    shard.retain(|_, s| s.in_flight.load(Ordering::Acquire) > 0 || !full_again(s));
    if shard.len() >= SHARD_CAPACITY {
        shard.retain(|_, s| s.in_flight.load(Ordering::Acquire) > 0);
    }
}

/// A call's place; released when dropped.
#[derive(Debug)]
struct Permit {
    state: Option<Arc<State>>,
    principal: Option<Arc<AtomicU32>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(principal) = self.principal.take() {
            principal.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(state) = self.state.take() {
            state.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A call's place among the calls in flight, as the handler sees it (in the request's
/// extensions): work that outlives the request future (a Decide that has claimed its
/// request runs to completion) keeps a clone, so the place is held until that work ends
/// and a caller who hangs up cannot start unbounded work.
#[derive(Debug, Clone)]
pub(crate) struct CallPermit(#[allow(dead_code, reason = "held for its Drop")] Arc<Permit>);

/// A response body that holds its call's [`Permit`] until it ends or is dropped.
#[derive(Debug)]
struct PermitBody {
    inner: tonic::body::Body,
    permit: Option<Arc<Permit>>,
}

impl Body for PermitBody {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The tower layer applying [`Limits`].
#[derive(Debug, Clone)]
pub struct LimitLayer {
    state: Arc<State>,
}

impl LimitLayer {
    /// A layer enforcing `limits`, counting refusals in `metrics`.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> LimitLayer {
        LimitLayer {
            state: Arc::new(State {
                limits,
                in_flight: AtomicU32::new(0),
                hasher: std::collections::hash_map::RandomState::new(),
                shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
                metrics,
            }),
        }
    }
}

impl<S> tower::Layer<S> for LimitLayer {
    type Service = LimitMiddleware<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitMiddleware {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// The service [`LimitLayer`] wraps around the services.
#[derive(Debug, Clone)]
pub struct LimitMiddleware<S> {
    inner: S,
    state: Arc<State>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for LimitMiddleware<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if exempt(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let principal = request
            .extensions()
            .get::<Authenticated>()
            .and_then(|a| a.caller.principal())
            .map(|p| p.id.as_str());
        let permit = match self.state.admit(principal) {
            Ok(permit) => Arc::new(permit),
            Err(refusal) => {
                let status = self.state.refuse(refusal);
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let mut request = request;
        request
            .extensions_mut()
            .insert(CallPermit(Arc::clone(&permit)));
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(|body| {
                tonic::body::Body::new(PermitBody {
                    inner: body,
                    permit: Some(permit),
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use std::time::Duration;

    use lexecon_auth::{Principal, PrincipalKind, Role};
    use lexecon_engine::Caller;
    use tokio::sync::{Semaphore, oneshot};
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    /// A body that ends when its sender fires or is dropped.
    struct Gate(oneshot::Receiver<()>);

    impl Body for Gate {
        type Data = tonic::codegen::Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Pin::new(&mut self.0).poll(cx).map(|_| None)
        }
    }

    /// A service whose `Decide` calls wait for a permit of `gate` before they answer;
    /// other calls answer at once.
    fn blocking(
        gate: Arc<Semaphore>,
    ) -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = BoxFuture<Result<http::Response<tonic::body::Body>, std::convert::Infallible>>,
    > + Clone {
        tower::service_fn(move |request: http::Request<()>| {
            let gate = Arc::clone(&gate);
            let blocks = request.uri().path() == DECIDE;
            Box::pin(async move {
                if blocks {
                    gate.acquire().await.unwrap().forget();
                }
                Ok(http::Response::new(tonic::body::Body::empty()))
            }) as BoxFuture<_>
        })
    }

    fn request(path: &str, principal: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::builder().uri(path).body(()).unwrap();
        if let Some(id) = principal {
            request.extensions_mut().insert(Authenticated {
                caller: Caller::Principal(Principal {
                    kind: PrincipalKind::ApiKey,
                    id: id.to_owned(),
                    name: id.to_owned(),
                    role: Role::Agent,
                    mfa_verified: false,
                    actors: None,
                    llm_roles: Arc::from(Vec::new()),
                    created_by: None,
                }),
                bearer: Arc::from("lxk_test"),
            });
        }
        request
    }

    const DECIDE: &str = "/lexecon.v1.DecisionService/Decide";
    const AUTHORIZE: &str = "/lexecon.v1.DecisionService/Authorize";

    fn layer(max: u32, rate: Option<Rate>) -> (LimitLayer, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let layer = LimitLayer::new(
            Limits {
                max_concurrent: max,
                rate,
            },
            Arc::clone(&metrics),
        );
        (layer, metrics)
    }

    fn code(response: &http::Response<tonic::body::Body>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn work_that_keeps_the_call_permit_holds_its_place_after_the_answer() {
        let (layer, _) = layer(4, None);
        let kept: Arc<std::sync::Mutex<Vec<CallPermit>>> = Arc::default();
        let inner = {
            let kept = Arc::clone(&kept);
            tower::service_fn(move |request: http::Request<()>| {
                // As the Decide handler does: the work it detaches keeps the place.
                let place = request.extensions().get::<CallPermit>().cloned();
                kept.lock().unwrap().extend(place);
                std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
                    tonic::body::Body::empty(),
                )))
            })
        };
        let service = layer.layer(inner);
        let response = service
            .clone()
            .oneshot(request(DECIDE, Some("key_1")))
            .await
            .unwrap();
        drop(response);
        assert_eq!(kept.lock().unwrap().len(), 1, "the handler saw its permit");
        assert_eq!(
            service.state.in_flight.load(Ordering::Acquire),
            1,
            "the place is held while the detached work runs"
        );
        kept.lock().unwrap().clear();
        assert_eq!(service.state.in_flight.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn the_call_beyond_the_bound_is_refused_at_once_and_health_is_exempt() {
        let (layer, metrics) = layer(4, None);
        let gate = Arc::new(Semaphore::new(0));
        let service = layer.layer(blocking(Arc::clone(&gate)));
        // Four principals, two calls each (each within its share of 2): the bound is full.
        let mut held = Vec::new();
        for i in 0..4 {
            let principal = format!("key_{}", i / 2);
            held.push(tokio::spawn(
                service.clone().oneshot(request(DECIDE, Some(&principal))),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = tokio::time::timeout(
            Duration::from_secs(1),
            service.clone().oneshot(request(DECIDE, Some("key_9"))),
        )
        .await
        .expect("refused at once, never queued")
        .unwrap();
        assert_eq!(code(&refused), Some("8"), "RESOURCE_EXHAUSTED");
        let message = refused.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("limit%20of%204%20concurrent"), "{message}");
        assert_eq!(refused.headers()["retry-after"], "1");
        let refused = service
            .clone()
            .oneshot(request(AUTHORIZE, None))
            .await
            .unwrap();
        assert_eq!(
            code(&refused),
            Some("8"),
            "calls without a principal count too"
        );
        // Health answers whatever the load.
        let health = service
            .clone()
            .oneshot(request("/grpc.health.v1.Health/Check", None));
        let health = tokio::time::timeout(Duration::from_secs(1), health)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code(&health), None, "health went through the bound");
        gate.add_permits(4);
        for call in held {
            let response = call.await.unwrap().unwrap();
            assert_eq!(code(&response), None);
            drop(response);
        }
        assert_eq!(service.state.in_flight.load(Ordering::Acquire), 0);
        assert!(
            metrics
                .encode()
                .contains("lexecon_requests_shed_total{reason=\"concurrency\"} 2")
        );
    }

    #[tokio::test]
    async fn one_principal_gets_at_most_half_and_others_still_get_in() {
        let (layer, metrics) = layer(6, None);
        let gate = Arc::new(Semaphore::new(0));
        let service = layer.layer(blocking(Arc::clone(&gate)));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(tokio::spawn(
                service.clone().oneshot(request(DECIDE, Some("key_a"))),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = service
            .clone()
            .oneshot(request(DECIDE, Some("key_a")))
            .await
            .unwrap();
        assert_eq!(code(&refused), Some("8"));
        let message = refused.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("its%20share"), "{message}");
        // Another principal is not refused: it still has room in the bound.
        let other = service.clone().oneshot(request(AUTHORIZE, Some("key_b")));
        let other = tokio::time::timeout(Duration::from_secs(1), other)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code(&other), None);
        gate.add_permits(3);
        for call in held {
            drop(call.await.unwrap().unwrap());
        }
        assert!(
            metrics
                .encode()
                .contains("lexecon_requests_shed_total{reason=\"principal_share\"} 1")
        );
    }

    #[tokio::test]
    async fn the_place_is_held_until_the_body_ends_or_is_dropped() {
        let (layer, _) = layer(2, None);
        let (tx, rx) = oneshot::channel::<()>();
        let (_never, rx_never) = oneshot::channel::<()>();
        let bodies = Arc::new(Mutex::new(vec![rx_never, rx]));
        let mut service = layer.layer(tower::service_fn(move |_r: http::Request<()>| {
            let body = bodies.lock().unwrap().pop();
            async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(match body {
                    Some(rx) => tonic::body::Body::new(Gate(rx)),
                    None => tonic::body::Body::empty(),
                }))
            }
        }));
        let streaming = service
            .ready()
            .await
            .unwrap()
            .call(request(DECIDE, Some("key_a")))
            .await
            .unwrap();
        assert_eq!(service.state.in_flight.load(Ordering::Acquire), 1);
        // The body is still open: the place is held.
        let mut body = streaming.into_body();
        tx.send(()).unwrap();
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none());
        assert_eq!(
            service.state.in_flight.load(Ordering::Acquire),
            0,
            "released when the body ended"
        );
        drop(body);
        // A response dropped unread releases its place too.
        let unread = service
            .ready()
            .await
            .unwrap()
            .call(request(DECIDE, Some("key_a")))
            .await
            .unwrap();
        assert_eq!(service.state.in_flight.load(Ordering::Acquire), 1);
        drop(unread);
        assert_eq!(service.state.in_flight.load(Ordering::Acquire), 0);
        let shard = service.state.shard("key_a");
        assert_eq!(shard["key_a"].in_flight.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn the_bucket_refuses_with_a_retry_hint_and_refills() {
        let (layer, metrics) = layer(
            16,
            Some(Rate {
                per_sec: 20.0,
                burst: 2.0,
            }),
        );
        let gate = Arc::new(Semaphore::new(1000));
        let service = layer.layer(blocking(gate));
        for _ in 0..2 {
            let ok = service
                .clone()
                .oneshot(request(DECIDE, Some("key_a")))
                .await
                .unwrap();
            assert_eq!(code(&ok), None);
        }
        let limited = service
            .clone()
            .oneshot(request(DECIDE, Some("key_a")))
            .await
            .unwrap();
        assert_eq!(code(&limited), Some("8"));
        assert_eq!(limited.headers()["retry-after"], "1");
        // Another principal has its own bucket; an unauthenticated call has none.
        let other = service
            .clone()
            .oneshot(request(DECIDE, Some("key_b")))
            .await
            .unwrap();
        assert_eq!(code(&other), None);
        // 20 per second: one token back after 50 ms.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let refilled = service
            .clone()
            .oneshot(request(DECIDE, Some("key_a")))
            .await
            .unwrap();
        assert_eq!(code(&refilled), None);
        assert!(
            metrics
                .encode()
                .contains("lexecon_requests_rate_limited_total 1")
        );
    }

    #[test]
    fn retry_after_counts_whole_seconds_until_a_token() {
        let (layer, _) = layer(
            16,
            Some(Rate {
                per_sec: 1.0,
                burst: 1.0,
            }),
        );
        let state = layer.state;
        drop(state.admit(Some("key_a")).unwrap());
        assert_eq!(
            state.admit(Some("key_a")).unwrap_err(),
            Refusal::Rate {
                retry_after_secs: 1
            }
        );
        let status = state.refuse(Refusal::Rate {
            retry_after_secs: 3,
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.metadata().get("retry-after").unwrap(), "3");
        assert!(
            status.message().contains("rate limit of 1"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn idle_principals_are_evicted_and_busy_ones_kept() {
        let (layer, _) = layer(1_000_000, None);
        let state = layer.state;
        let busy = state.admit(Some("busy")).unwrap();
        for i in 0..(SHARDS * SHARD_CAPACITY * 2) {
            drop(state.admit(Some(&format!("key_{i}"))).unwrap());
        }
        let total: usize = state.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * SHARD_CAPACITY, "{total} principals kept");
        assert!(state.shard("busy").contains_key("busy"));
        drop(busy);
        assert_eq!(state.in_flight.load(Ordering::Acquire), 0);
    }
}
