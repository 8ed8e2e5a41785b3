//! Authentication and authorization.
//!
//! Owns principals (people and service API keys), roles and the permission table of
//! every RPC, Argon2id password hashing with lockout, sessions stored only as hashes,
//! TOTP MFA with backup codes, API keys with the actors they may speak for
//! ([`ActorBinding`]), OIDC ID-token validation, and the store trait they persist
//! through.
//!
//! The server calls [`required_access`] for each method; for non-open methods it calls
//! [`AuthService::authenticate`] with the bearer token and then
//! [`AuthService::authorize`]. [`AuthError::is_unauthenticated`] and
//! [`AuthError::is_permission_denied`] tell it which gRPC code to answer with.
//! Parameters and the permission table are documented in `docs/security.md`.

mod at_rest;
mod binding;
mod error;
mod oidc;
mod password;
mod permissions;
mod role;
mod secret;
mod service;
mod sql;
mod store;
pub mod totp;

pub use at_rest::{
    MASTER_KEY_BYTES, MasterKey, SecretKeys, SecretsCensus, SecretsError, StoredForm, stored_form,
};
pub use binding::{
    ActorBinding, MAX_ACTOR_PATTERN_LEN, MAX_ACTOR_PATTERNS, MAX_LLM_ROLE_LEN, MAX_LLM_ROLES,
};
pub use error::{AuthError, StoreError};
pub use oidc::{
    FileJwksSource, JwksSource, OidcError, OidcIdentity, OidcProvider, OidcProviderConfig,
    StaticJwksSource,
};
pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordParams};
pub use permissions::{
    Access, MFA_ENROLLMENT_METHODS, OPEN_SERVICES, PERMISSIONS, check_access,
    permission_table_markdown, required_access,
};
pub use role::{ParseRoleError, Role};
pub use secret::{API_KEY_PREFIX, CHALLENGE_PREFIX, SESSION_PREFIX, SecretString};
pub use service::{
    ApiKeyInfo, AuthConfig, AuthService, BACKUP_CODE_BITS, BACKUP_CODES, CreatedApiKey,
    CreatedUser, LoginOutcome, MfaEnrollment, NewApiKey, Principal, PrincipalKind, Session,
    parse_bearer, validate_password, validate_username,
};
pub use sql::{PgAuthStore, SqliteAuthStore};
pub use store::{ApiKeyRecord, AuthStore, ChallengeRecord, MfaRecord, SessionRecord, UserRecord};

#[cfg(test)]
mod tests;
