//! The authentication and authorization layer: every RPC passes through it.
//!
//! Health and reflection (and the RPCs that obtain a session) are open; every other
//! method needs `authorization: Bearer <api key or session token>` and a role the
//! permission table of `lexecon-auth` allows. The caller is put in the request's
//! extensions for the handlers. Successful API-key lookups are cached for a few
//! seconds, keyed by a SHA-256 of the key, so the hot path does not hit the database
//! on every call; a revoked key stops working within that time.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lexecon_auth::{
    Access, AuthError, AuthService, Principal, PrincipalKind, Role, check_access, required_access,
};
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::codegen::http;

use crate::metrics::{Metrics, ReasonLabel};

/// How long a successful API-key lookup is reused.
pub const API_KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `user` or `api_key`.
    pub kind: &'static str,
    /// The user id or key id.
    pub id: String,
    /// The user or key name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Whether the session completed MFA.
    pub mfa_verified: bool,
    /// The bearer token the call carried (for Logout and WhoAmI; never logged).
    pub bearer: Arc<str>,
}

impl Caller {
    /// The key under which idempotent requests of this caller are remembered.
    pub fn principal_key(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }

    /// The principal, for the auth service.
    pub fn principal(&self) -> Principal {
        Principal {
            kind: if self.kind == "user" {
                PrincipalKind::User
            } else {
                PrincipalKind::ApiKey
            },
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            mfa_verified: self.mfa_verified,
        }
    }
}

/// Authenticates bearer tokens with a short cache for API keys.
#[derive(Debug)]
pub struct Authenticator {
    auth: Arc<AuthService>,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    /// An authenticator over `auth`.
    pub fn new(auth: Arc<AuthService>, metrics: Arc<Metrics>) -> Self {
        Authenticator {
            auth,
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn fail(&self, reason: &str) {
        self.metrics
            .auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    async fn principal(&self, bearer: &str) -> Result<Principal, AuthError> {
        let is_key = bearer.starts_with(lexecon_auth::API_KEY_PREFIX);
        let digest: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        if is_key
            && let Ok(cache) = self.cache.lock()
            && let Some((p, at)) = cache.get(&digest)
            && at.elapsed() < API_KEY_CACHE_TTL
        {
            return Ok(p.clone());
        }
        let principal = self.auth.authenticate(bearer).await?;
        if is_key && let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.retain(|_, (_, at)| at.elapsed() < API_KEY_CACHE_TTL);
            }
            cache.insert(digest, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }

    /// Checks one call; `Ok(None)` for an open method.
    pub async fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Caller>, Status> {
        if required_access(path) == Access::Open {
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
        let principal = match self.principal(bearer).await {
            Ok(p) => p,
            Err(e) if e.is_unauthenticated() => {
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
        if let Err(e) = check_access(&principal, path, &self.auth.config().mfa_required_roles) {
            self.fail("permission_denied");
            return Err(if e.is_unauthenticated() {
                Status::unauthenticated(e.to_string())
            } else {
                Status::permission_denied(e.to_string())
            });
        }
        Ok(Some(Caller {
            kind: principal.kind.as_str(),
            id: principal.id,
            name: principal.name,
            role: principal.role,
            mfa_verified: principal.mfa_verified,
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
