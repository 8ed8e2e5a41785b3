//! Persistence of users, MFA state, sessions, MFA challenges and API keys.
//!
//! Secrets never reach the database in the clear: sessions, challenges, API keys and
//! backup codes are kept as SHA-256 hashes, passwords as Argon2id PHC strings, and the
//! TOTP seed (which HMAC needs back) is sealed with AES-256-GCM under the master key by
//! the SQL stores (see `at_rest`). Records here carry the seed in the clear, in memory.

use std::fmt;

use lexecon_core::Timestamp;

use crate::{Role, StoreError};

/// A user (a person, or an OIDC identity).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `usr_` + 32 hex digits.
    pub id: String,
    /// Unique name; OIDC identities are `provider:subject`.
    pub username: String,
    /// Argon2id PHC string; `None` for OIDC identities (no password login).
    pub password_hash: Option<String>,
    /// The role.
    pub role: Role,
    /// Creation time.
    pub created_at: Timestamp,
    /// Failed logins since the last success or lock.
    pub failed_logins: u32,
    /// Locked until then, when set.
    pub locked_until: Option<Timestamp>,
    /// Whether TOTP is enrolled.
    pub mfa_enabled: bool,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .field("mfa_enabled", &self.mfa_enabled)
            .finish()
    }
}

/// A user's TOTP state.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaRecord {
    /// The TOTP seed (HMAC key).
    pub totp_secret: Vec<u8>,
    /// The last step a code was accepted for (replay protection).
    pub last_used_step: Option<i64>,
}

impl fmt::Debug for MfaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaRecord")
            .field("totp_secret", &"<redacted>")
            .field("last_used_step", &self.last_used_step)
            .finish()
    }
}

/// A session, keyed by the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Whose session.
    pub user_id: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use (for the idle timeout).
    pub last_seen_at: Timestamp,
    /// End of the absolute lifetime.
    pub expires_at: Timestamp,
    /// When logged out.
    pub revoked_at: Option<Timestamp>,
    /// Whether MFA was completed for this session.
    pub mfa_verified: bool,
}

/// A pending MFA challenge, keyed by the SHA-256 of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// SHA-256 of the challenge.
    pub challenge_hash: [u8; 32],
    /// Whose login.
    pub user_id: String,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Wrong codes sent against it.
    pub failed_attempts: u32,
}

/// An API key, keyed by the SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// `key_` + 32 hex digits (not secret).
    pub key_id: String,
    /// A name for people.
    pub name: String,
    /// The role.
    pub role: Role,
    /// SHA-256 of the key.
    pub key_hash: [u8; 32],
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry, when set.
    pub expires_at: Option<Timestamp>,
    /// When revoked.
    pub revoked_at: Option<Timestamp>,
    /// Full-match globs of the actors the key may speak for; `None` for a key created
    /// before bindings existed (it speaks for no actor until bound).
    pub actors: Option<Vec<String>>,
    /// The LLM roles requests made with the key may name.
    pub llm_roles: Vec<String>,
    /// The creator's ledger name; `None` for a key created before creators were
    /// recorded.
    pub created_by: Option<String>,
}

/// Where auth state lives. Implementations: [`crate::SqliteAuthStore`],
/// [`crate::PgAuthStore`]. Methods that change a counter or consume something are
/// atomic, so concurrent logins cannot reuse a code or dodge the lockout.
#[async_trait::async_trait]
pub trait AuthStore: Send + Sync + fmt::Debug {
    /// Adds a user; `StoreError::Conflict` when the name is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// A user by name.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// A user by id.
    async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Changes a user's role.
    async fn set_user_role(&self, user_id: &str, role: Role) -> Result<(), StoreError>;
    /// Counts a failed login; at `max_failures` sets `locked_until = lock_until` and
    /// resets the count. Returns whether the account is now locked.
    async fn record_failed_login(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Resets the failure count after a successful login.
    async fn clear_failed_logins(&self, user_id: &str) -> Result<(), StoreError>;
    /// Replaces a user's TOTP seed and backup codes and marks MFA enabled.
    async fn set_mfa(
        &self,
        user_id: &str,
        totp_secret: &[u8],
        backup_code_hashes: &[[u8; 32]],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// A user's TOTP state.
    async fn mfa(&self, user_id: &str) -> Result<Option<MfaRecord>, StoreError>;
    /// Records `step` as used if it is later than the last used one; false otherwise
    /// (the code was replayed).
    async fn advance_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;
    /// The unused backup codes of a user: (id, SHA-256).
    async fn unused_backup_codes(&self, user_id: &str) -> Result<Vec<(i64, [u8; 32])>, StoreError>;
    /// Marks a backup code used; false when it was used already.
    async fn use_backup_code(
        &self,
        user_id: &str,
        id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Adds a session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// A session by token hash.
    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError>;
    /// Records a use of the session.
    async fn touch_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<(), StoreError>;
    /// Revokes a session; false when unknown or already revoked.
    async fn revoke_session(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Adds an MFA challenge.
    async fn insert_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError>;
    /// A challenge by hash.
    async fn challenge(
        &self,
        challenge_hash: &[u8; 32],
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Counts a wrong code against a challenge.
    async fn fail_challenge(&self, challenge_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Deletes a challenge; true only for the one caller that deleted it (single use).
    async fn delete_challenge(&self, challenge_hash: &[u8; 32]) -> Result<bool, StoreError>;
    /// Adds an API key.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// An API key by hash.
    async fn api_key_by_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// An API key by id.
    async fn api_key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Replaces the actors and LLM roles of a key that is not revoked; an empty `actors`
    /// removes the binding (stored as NULL). False when the key is unknown or revoked.
    async fn set_api_key_binding(
        &self,
        key_id: &str,
        actors: &[String],
        llm_roles: &[String],
    ) -> Result<bool, StoreError>;
    /// Revokes an API key; false when unknown or already revoked.
    async fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Deletes sessions and challenges that can no longer be used (past their lifetime,
    /// revoked, or idle since before `idle_cutoff`); returns how many.
    async fn purge_expired(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError>;
}
