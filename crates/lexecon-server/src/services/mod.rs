//! The gRPC services: thin adapters from `lexecon.v1` to the engine.

pub mod auth;
pub mod budget;
pub mod decision;
pub mod ledger;
pub mod policy;
pub mod risk;

use std::sync::Arc;

use lexecon_engine::{Engine, EngineError};
use tonic::Status;

use crate::auth::Caller;
use crate::metrics::Metrics;

/// What every service holds.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// The authenticated caller of a request (the auth layer put it there).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <api key or session token>`",
            )
        })
}

/// The gRPC status of an engine error. Internal details stay in the log.
pub fn status(err: EngineError) -> Status {
    match err {
        EngineError::InvalidArgument(msg) => Status::invalid_argument(msg),
        EngineError::NotFound(msg) => Status::not_found(msg),
        EngineError::InProgress(msg) => Status::unavailable(msg),
        EngineError::Policy(e) => Status::invalid_argument(e.to_string()),
        other => {
            tracing::error!(error = %other, "request failed");
            Status::unavailable(format!(
                "the server could not complete the request: {other}"
            ))
        }
    }
}
