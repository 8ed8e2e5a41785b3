//! The authentication layer: every RPC passes through it.
//!
//! Health and reflection (and the RPCs that obtain a session) are open; every other
//! method needs `authorization: Bearer <api key or session token>`. The engine
//! authenticates it (one API-key cache, in `lexecon-auth`, purged on revocation) and
//! checks the permission table; the caller is put in the request's extensions for the
//! handlers, whose engine operations authorize it again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lexecon_engine::{Caller, Engine, ErrorClass};
use tonic::Status;
use tonic::codegen::http;

use crate::metrics::{Metrics, ReasonLabel};

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who is calling.
    pub caller: Caller,
    /// The bearer token the call carried (for Logout; never logged).
    pub bearer: Arc<str>,
}

/// Authenticates bearer tokens through the engine.
#[derive(Debug)]
pub struct Authenticator {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    /// An authenticator over `engine`.
    pub fn new(engine: Arc<Engine>, metrics: Arc<Metrics>) -> Self {
        Authenticator { engine, metrics }
    }

    fn fail(&self, reason: &str) {
        self.metrics
            .auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Checks one call; `Ok(None)` for an open method.
    pub async fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Authenticated>, Status> {
        if Engine::is_open(path) {
            return Ok(None);
        }
        let Some(bearer) = authorization.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        }) else {
            self.fail("missing_token");
            return Err(Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <api key or session token>`",
            ));
        };
        let bearer = bearer.trim();
        let caller = match self.engine.authenticate(bearer).await {
            Ok(c) => c,
            Err(e) if e.class() == ErrorClass::Unauthenticated => {
                self.fail("bad_token");
                return Err(Status::unauthenticated(e.to_string()));
            }
            Err(e) => {
                tracing::error!(error = %e, "authentication store failed");
                return Err(Status::unavailable(
                    "authentication is unavailable; try again",
                ));
            }
        };
        if let Err(e) = self.engine.check_access(&caller, path) {
            self.fail("permission_denied");
            return Err(crate::services::status(e));
        }
        Ok(Some(Authenticated {
            caller,
            bearer: Arc::from(bearer),
        }))
    }
}

/// The tower layer that runs [`Authenticator::check`] before every call.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer using `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        AuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthMiddleware<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthMiddleware {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// The service [`AuthLayer`] wraps around the gRPC router.
#[derive(Debug, Clone)]
pub struct AuthMiddleware<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for AuthMiddleware<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let header = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match auth.check(&path, header.as_deref()).await {
                Ok(Some(caller)) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Ok(None) => inner.call(request).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
