//! What an engine operation can fail with, by cause, and the one class each cause
//! belongs to. Adapters map [`ErrorClass`] to their status codes in one exhaustive
//! `match`; nothing classifies an error by its message text.

use lexecon_auth::AuthError;
use lexecon_budget::BudgetError;
use lexecon_ledger::LedgerError;

use crate::db::DbError;
use crate::policy::PolicyLoadError;

/// Something the engine could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The ledger failed; nothing was acknowledged.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A policy is invalid (the active one stays).
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    /// The node's keys could not be loaded or used.
    #[error("keys: {0}")]
    Keys(String),
    /// The risk configuration is invalid.
    #[error("invalid configuration: {0}")]
    Risk(#[from] lexecon_risk::RiskConfigError),
    /// A budget configuration is invalid.
    #[error("invalid budget configuration: {0}")]
    BudgetConfig(#[from] lexecon_budget::BudgetConfigError),
    /// The budget store or a budget request failed.
    #[error("budget: {0}")]
    Budget(#[from] BudgetError),
    /// Authentication or an auth store operation failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Redis could not be reached or configured.
    #[error("redis: {0}; check redis.url")]
    Redis(String),
    /// A field of the request breaks a rule; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something the caller asked for was not found.
    #[error("{0}")]
    NotFound(String),
    /// The caller is authenticated but may not do this (the message says why).
    #[error("{0}")]
    PermissionDenied(String),
    /// The same idempotency key was used for a different request.
    #[error("{0}")]
    AlreadyExists(String),
    /// Another call (here or on another server) is deciding the same request; retry.
    #[error("{0}")]
    InProgress(String),
    /// Stored state contradicts itself or the ledger.
    #[error("{0}")]
    Corrupt(String),
    /// The engine cannot answer safely now (stale oversight state, an index still being
    /// built); retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The request is well formed but the state of what it names does not allow it
    /// (an escalation already resolved, an override already revoked).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The operation was cut short (a watcher fell too far behind); the message says how
    /// to carry on.
    #[error("{0}")]
    Aborted(String),
    /// The caller went away before the operation did anything; nothing changed.
    #[error("{0}")]
    Cancelled(String),
}

/// What kind of failure an error is, for adapters choosing a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The caller sent something malformed; nothing changed.
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// It exists already (or the key is taken by another request).
    AlreadyExists,
    /// No valid credentials.
    Unauthenticated,
    /// Valid credentials, not allowed.
    PermissionDenied,
    /// A dependency failed or the call raced another; retrying may work.
    Unavailable,
    /// The thing exists but its state does not allow this.
    FailedPrecondition,
    /// Cut short; the caller should resume as the message says.
    Aborted,
    /// The caller went away (cancelled, or past its deadline) before anything was done.
    Cancelled,
    /// Stored data is damaged; an operator must look.
    DataLoss,
    /// A bug or a broken deployment (keys, configuration).
    Internal,
}

impl EngineError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::InvalidArgument(_)
            | EngineError::Policy(_)
            | EngineError::BudgetConfig(_) => ErrorClass::InvalidArgument,
            EngineError::NotFound(_) => ErrorClass::NotFound,
            EngineError::PermissionDenied(_) => ErrorClass::PermissionDenied,
            EngineError::AlreadyExists(_) => ErrorClass::AlreadyExists,
            EngineError::InProgress(_) | EngineError::Db(_) | EngineError::Redis(_) => {
                ErrorClass::Unavailable
            }
            EngineError::Corrupt(_) => ErrorClass::DataLoss,
            EngineError::Unavailable(_) => ErrorClass::Unavailable,
            EngineError::FailedPrecondition(_) => ErrorClass::FailedPrecondition,
            EngineError::Aborted(_) => ErrorClass::Aborted,
            EngineError::Cancelled(_) => ErrorClass::Cancelled,
            EngineError::Config(_) | EngineError::Keys(_) | EngineError::Risk(_) => {
                ErrorClass::Internal
            }
            EngineError::Ledger(e) => ledger_class(e),
            EngineError::Budget(e) => budget_class(e),
            EngineError::Auth(e) => auth_class(e),
        }
    }
}

fn ledger_class(err: &LedgerError) -> ErrorClass {
    match err {
        LedgerError::OutOfRange { .. } | LedgerError::Proof(_) => ErrorClass::InvalidArgument,
        LedgerError::NoSuchEntry(_) => ErrorClass::NotFound,
        LedgerError::Corrupt(_) => ErrorClass::DataLoss,
        LedgerError::Shared(inner) => ledger_class(inner),
        LedgerError::Database(_)
        | LedgerError::Sqlite(_)
        | LedgerError::Closed
        | LedgerError::Io { .. } => ErrorClass::Unavailable,
        // Migrations, signing, serialization and causes added later: not the caller's.
        _ => ErrorClass::Internal,
    }
}

fn budget_class(err: &BudgetError) -> ErrorClass {
    match err {
        BudgetError::UnknownReservation(_) => ErrorClass::NotFound,
        BudgetError::InvalidRequest(_) | BudgetError::InvalidScope(_) => {
            ErrorClass::InvalidArgument
        }
        // A denial is an answer, not an error; operations return it as such. Should one
        // arrive here it refuses, which is the safe reading.
        BudgetError::Denied(_) => ErrorClass::PermissionDenied,
        _ => ErrorClass::Unavailable,
    }
}

fn auth_class(err: &AuthError) -> ErrorClass {
    if err.is_unauthenticated() {
        ErrorClass::Unauthenticated
    } else if err.is_permission_denied() {
        ErrorClass::PermissionDenied
    } else if err.is_invalid_argument() {
        ErrorClass::InvalidArgument
    } else if err.is_already_exists() {
        ErrorClass::AlreadyExists
    } else if err.is_not_found() {
        ErrorClass::NotFound
    } else {
        ErrorClass::Unavailable
    }
}

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        EngineError::Db(DbError::Query(err))
    }
}

impl From<lexecon_core::RequestError> for EngineError {
    fn from(err: lexecon_core::RequestError) -> Self {
        EngineError::InvalidArgument(err.to_string())
    }
}
