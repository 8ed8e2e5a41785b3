//! The gRPC services: thin adapters from `lexecon.v1` to engine operations. Each
//! handler converts its request, calls one engine method with the authenticated
//! caller, and converts the answer back.

pub mod audit;
pub mod auth;
pub mod budget;
pub mod compliance;
pub mod decision;
pub mod evidence;
pub mod ledger;
pub mod oversight;
pub mod policy;
pub mod risk;

use std::sync::Arc;

use lexecon_engine::{Caller, Engine, EngineError, ErrorClass};
use tonic::Status;

use crate::auth::Authenticated;
use crate::metrics::Metrics;

/// What every service holds.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Held (shared) by each Decide running in a task of its own, so that shutdown can
    /// wait for decisions whose callers went away before it closes the ledger.
    pub detached: Arc<tokio::sync::RwLock<()>>,
}

/// The authenticated caller of a request (the auth layer put it there).
pub fn authenticated<T>(request: &tonic::Request<T>) -> Result<Authenticated, Status> {
    request
        .extensions()
        .get::<Authenticated>()
        .cloned()
        .ok_or_else(|| {
            Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <api key or session token>`",
            )
        })
}

/// The caller of a request that needs one.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    authenticated(request).map(|a| a.caller)
}

/// The gRPC status of an engine error: one match over its class. Internal details of
/// failures that are not the caller's stay in the log.
pub fn status(err: EngineError) -> Status {
    match err.class() {
        ErrorClass::InvalidArgument => Status::invalid_argument(err.to_string()),
        ErrorClass::NotFound => Status::not_found(err.to_string()),
        ErrorClass::AlreadyExists => Status::already_exists(err.to_string()),
        ErrorClass::Unauthenticated => Status::unauthenticated(err.to_string()),
        ErrorClass::PermissionDenied => Status::permission_denied(err.to_string()),
        ErrorClass::FailedPrecondition => Status::failed_precondition(err.to_string()),
        ErrorClass::Aborted => Status::aborted(err.to_string()),
        ErrorClass::Cancelled => Status::cancelled(err.to_string()),
        ErrorClass::Unavailable => {
            tracing::warn!(error = %err, "request failed; the caller may retry");
            Status::unavailable(format!("the server could not complete the request: {err}"))
        }
        ErrorClass::DataLoss => {
            tracing::error!(error = %err, "stored data is damaged");
            Status::data_loss(format!("stored data is damaged: {err}"))
        }
        ErrorClass::Internal => {
            tracing::error!(error = %err, "request failed");
            Status::internal("the server failed; see its log")
        }
    }
}
