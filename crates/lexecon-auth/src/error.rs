//! Errors of authentication, authorization and the store, sorted by what the caller
//! should be told: unauthenticated, permission denied, invalid argument, or internal.

use lexecon_core::Timestamp;

use crate::{OidcError, Role};

/// An authentication or authorization failure. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token was sent.
    #[error(
        "missing credentials: send the metadata \"authorization: Bearer <api key or session token>\""
    )]
    MissingCredentials,
    /// Unknown token, unknown user or wrong password (deliberately not told apart).
    #[error("invalid credentials: check the user name and password, or the token")]
    InvalidCredentials,
    /// Too many failed logins; the account is locked until then.
    #[error("account locked after too many failed logins: try again after {until}")]
    AccountLocked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The session passed its idle timeout or absolute lifetime.
    #[error("session expired: log in again")]
    SessionExpired,
    /// The session was logged out.
    #[error("session revoked: log in again")]
    SessionRevoked,
    /// The API key passed its expiry.
    #[error("api key expired: ask an admin for a new key")]
    ApiKeyExpired,
    /// The API key was revoked.
    #[error("api key revoked: ask an admin for a new key")]
    ApiKeyRevoked,
    /// The MFA code is wrong.
    #[error("invalid mfa code: enter the current 6-digit code or an unused backup code")]
    InvalidMfaCode,
    /// The TOTP code was already used.
    #[error("mfa code already used: wait for the next code")]
    MfaCodeReused,
    /// The MFA challenge is unknown, used, expired or failed too often.
    #[error("mfa challenge invalid or expired: log in again")]
    InvalidMfaChallenge,
    /// The ID token was rejected.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// The principal's role may not call this method.
    #[error("permission denied: role {role} may not call {method}")]
    PermissionDenied {
        /// The method path.
        method: String,
        /// The caller's role.
        role: Role,
    },
    /// A person whose role requires MFA has not completed it.
    #[error("permission denied: role {role} requires mfa; enroll with EnrollMfa and log in again")]
    MfaEnrollmentRequired {
        /// The caller's role.
        role: Role,
    },
    /// A request field is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A user of that name exists already.
    #[error("user {0:?} already exists: choose another name")]
    UserExists(String),
    /// No such user.
    #[error("no user {0:?}: check the name")]
    UnknownUser(String),
    /// Bad configuration (e.g. Argon2 parameters).
    #[error("auth configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// Whether this maps to gRPC `UNAUTHENTICATED`.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AuthError::MissingCredentials
                | AuthError::InvalidCredentials
                | AuthError::AccountLocked { .. }
                | AuthError::SessionExpired
                | AuthError::SessionRevoked
                | AuthError::ApiKeyExpired
                | AuthError::ApiKeyRevoked
                | AuthError::InvalidMfaCode
                | AuthError::MfaCodeReused
                | AuthError::InvalidMfaChallenge
                | AuthError::Oidc(_)
        )
    }

    /// Whether this maps to gRPC `PERMISSION_DENIED`.
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            AuthError::PermissionDenied { .. } | AuthError::MfaEnrollmentRequired { .. }
        )
    }

    /// Whether this maps to gRPC `INVALID_ARGUMENT`.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, AuthError::InvalidArgument { .. })
    }

    /// Whether this maps to gRPC `ALREADY_EXISTS`.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, AuthError::UserExists(_))
    }

    /// Whether this maps to gRPC `NOT_FOUND`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, AuthError::UnknownUser(_))
    }
}

/// A failure of the auth store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A row with that unique key exists.
    #[error("already exists")]
    Conflict,
    /// The database failed.
    #[error("auth database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrating the database failed.
    #[error("auth database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not what we wrote.
    #[error("auth database holds an invalid value in {0}: restore from a backup")]
    Corrupt(&'static str),
    /// A secret at rest could not be sealed or opened (wrong or missing master key).
    #[error(transparent)]
    Secrets(#[from] crate::at_rest::SecretsError),
}
