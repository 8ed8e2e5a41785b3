//! The auth service: authentication of bearer tokens, authorization of methods, and
//! the flows that create credentials (users, logins, MFA, API keys, OIDC).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use lexecon_core::{Clock, Timestamp};
use rand_core::{CryptoRngCore, OsRng};

use crate::binding::{ActorBinding, validate_actors, validate_llm_roles};
use crate::password::{self, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordParams};
use crate::permissions::check_access;
use crate::secret::{
    API_KEY_PREFIX, CHALLENGE_PREFIX, SESSION_PREFIX, SecretString, ct_eq, random_id, random_token,
    token_hash,
};
use crate::store::{ApiKeyRecord, AuthStore, ChallengeRecord, SessionRecord, UserRecord};
use crate::{AuthError, OidcError, OidcProvider, OidcProviderConfig, Role, StoreError, totp};

/// Tunables of the auth service; `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Argon2id parameters for new password hashes.
    pub password: PasswordParams,
    /// Failed logins (passwords or MFA codes) that lock an account.
    pub max_failed_logins: u32,
    /// How long a lock lasts.
    pub lockout_secs: i64,
    /// A session unused this long expires.
    pub session_idle_secs: i64,
    /// A session expires this long after login, however busy.
    pub session_lifetime_secs: i64,
    /// How long an MFA challenge may be answered.
    pub mfa_challenge_secs: i64,
    /// Wrong codes one challenge tolerates before it is void.
    pub mfa_challenge_attempts: u32,
    /// Roles that must use MFA (a user of another role may still enroll).
    pub mfa_required_roles: Vec<Role>,
    /// The issuer name shown in authenticator apps.
    pub totp_issuer: String,
    /// The OIDC providers.
    pub oidc_providers: Vec<OidcProvider>,
    /// Seconds a valid API key (with its compiled actor binding) is remembered in
    /// memory, sparing the database lookup on every call. A revocation or binding change
    /// through this service takes effect at once on this node; on another node sharing
    /// the database it takes effect within this time. 0 disables the cache.
    pub api_key_cache_secs: i64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password: PasswordParams::default(),
            max_failed_logins: 5,
            lockout_secs: 30 * 60,
            session_idle_secs: 15 * 60,
            session_lifetime_secs: 12 * 60 * 60,
            mfa_challenge_secs: 5 * 60,
            mfa_challenge_attempts: 5,
            mfa_required_roles: vec![Role::Admin, Role::ComplianceOfficer],
            totp_issuer: "Lexecon".to_owned(),
            oidc_providers: Vec::new(),
            // Run-time state reaches every replica within 2 seconds.
            api_key_cache_secs: 2,
        }
    }
}

/// What kind of principal is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person with a session (password or OIDC login).
    User,
    /// A service with an API key.
    ApiKey,
}

impl PrincipalKind {
    /// `user` or `api_key`, as `WhoAmI` reports it.
    pub const fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User or API key.
    pub kind: PrincipalKind,
    /// The user id (`usr_...`) or key id (`key_...`).
    pub id: String,
    /// The user name or key name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Whether this session completed MFA (always false for API keys).
    pub mfa_verified: bool,
    /// The actors an API key may speak for. `None` for users, and for keys without a
    /// binding (created before bindings existed), which speak for no actor.
    pub actors: Option<Arc<ActorBinding>>,
    /// The LLM roles requests made with an API key may name; empty for users.
    pub llm_roles: Arc<[String]>,
    /// Who created an API key (its creator's ledger name); `None` for users and for
    /// keys created before creators were recorded (shown as `unknown`).
    pub created_by: Option<String>,
}

/// A session handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The opaque token (`lxs_...`), shown only to the client.
    pub token: SecretString,
    /// End of the absolute lifetime.
    pub expires_at: Timestamp,
    /// The idle timeout in seconds.
    pub idle_timeout_secs: u32,
    /// Whether MFA was completed.
    pub mfa_verified: bool,
}

/// The result of a password login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Logged in.
    Session(Session),
    /// An MFA code must follow through [`AuthService::verify_mfa`].
    MfaRequired {
        /// The challenge (`lxc_...`).
        challenge: SecretString,
    },
}

/// A created user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    /// The user id.
    pub user_id: String,
    /// Whether the role requires MFA enrollment before a full session.
    pub mfa_required: bool,
}

/// MFA enrollment secrets, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaEnrollment {
    /// The TOTP seed in base32 (no padding).
    pub secret_base32: SecretString,
    /// An `otpauth://` URI for authenticator apps.
    pub otpauth_uri: SecretString,
    /// Ten single-use backup codes (`XXXX-XXXX-XXXX-XXXX`).
    pub backup_codes: Vec<SecretString>,
}

/// What [`AuthService::create_api_key`] needs to make a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// A name for people, 1-128 bytes; ledger entries name the key `key:<name>`.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Expiry, when set (must be in the future).
    pub expires_at: Option<Timestamp>,
    /// Full-match globs of the actors the key may speak for; at least one for role
    /// `agent`. Empty for another role means no binding.
    pub actors: Vec<String>,
    /// The LLM roles requests made with the key may name.
    pub llm_roles: Vec<String>,
    /// Who creates the key: the creator's ledger name, as the engine records it.
    pub created_by: Option<String>,
}

impl NewApiKey {
    /// A key of `name` and `role` without expiry, actors or LLM roles; set the other
    /// fields with struct update syntax.
    pub fn new(name: impl Into<String>, role: Role) -> NewApiKey {
        NewApiKey {
            name: name.into(),
            role,
            expires_at: None,
            actors: Vec::new(),
            llm_roles: Vec::new(),
            created_by: None,
        }
    }
}

/// A created API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    /// The key id (not secret).
    pub key_id: String,
    /// The key (`lxk_...`), shown only this once.
    pub api_key: SecretString,
    /// The actor patterns stored for the key (`None`: no binding).
    pub actors: Option<Vec<String>>,
    /// The LLM roles stored for the key.
    pub llm_roles: Vec<String>,
}

/// An API key as an admin may see it: everything stored but the key's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The key id.
    pub key_id: String,
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry, when set.
    pub expires_at: Option<Timestamp>,
    /// When revoked.
    pub revoked_at: Option<Timestamp>,
    /// The actor patterns (`None`: no binding, the key speaks for no actor).
    pub actors: Option<Vec<String>>,
    /// The LLM roles.
    pub llm_roles: Vec<String>,
    /// Who created the key (`None`: created before creators were recorded).
    pub created_by: Option<String>,
}

/// Number of backup codes per enrollment.
pub const BACKUP_CODES: usize = 10;
/// Random bits per backup code (16 base32 characters): enough that a SHA-256 of one
/// cannot be reversed by guessing.
pub const BACKUP_CODE_BITS: u32 = 80;

type SharedRng = Mutex<Box<dyn CryptoRngCore + Send>>;

/// Upper bound on remembered API keys; the cache is emptied when it is reached.
const API_KEY_CACHE_MAX: usize = 10_000;

/// An API key as read from the store, with its binding compiled once so that
/// authenticating with it never compiles a glob.
#[derive(Debug)]
struct ResolvedKey {
    record: ApiKeyRecord,
    actors: Option<Arc<ActorBinding>>,
    llm_roles: Arc<[String]>,
}

impl ResolvedKey {
    fn new(mut record: ApiKeyRecord) -> ResolvedKey {
        let actors = record.actors.take().map(|patterns| {
            let binding = ActorBinding::new(&patterns).unwrap_or_else(|e| {
                // Bindings are validated before they are stored, so this means the row
                // was edited by hand. Fail closed: the key speaks for no actor.
                tracing::warn!(
                    key_id = %record.key_id,
                    key = %record.name,
                    error = %e,
                    "api key's stored actor binding does not compile; the key speaks for no \
                     actor until it is bound again"
                );
                ActorBinding::nothing()
            });
            Arc::new(binding)
        });
        let llm_roles = Arc::from(std::mem::take(&mut record.llm_roles));
        ResolvedKey {
            record,
            actors,
            llm_roles,
        }
    }
}

/// API keys by key hash, with when each was read from the store.
#[derive(Debug, Default)]
struct KeyCache {
    keys: HashMap<[u8; 32], (Arc<ResolvedKey>, Timestamp)>,
    /// Bumped by every purge (revocation, binding change), so that a lookup that read
    /// the store before the purge does not put its stale copy back.
    generation: u64,
}

impl KeyCache {
    fn purge(&mut self, key_id: &str) {
        self.keys.retain(|_, (k, _)| k.record.key_id != key_id);
        self.generation = self.generation.wrapping_add(1);
    }
}

/// Authentication and authorization over an [`AuthStore`].
pub struct AuthService {
    store: Arc<dyn AuthStore>,
    clock: Arc<dyn Clock>,
    config: AuthConfig,
    rng: SharedRng,
    key_cache: Mutex<KeyCache>,
    /// A hash to verify against when the user does not exist, so that an unknown user
    /// costs the same time as a wrong password.
    dummy_hash: String,
}

impl fmt::Debug for AuthService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service drawing randomness from the operating system.
    pub fn new(store: Arc<dyn AuthStore>, clock: Arc<dyn Clock>, config: AuthConfig) -> Self {
        Self::with_rng(store, clock, config, Box::new(OsRng))
    }

    /// A service drawing randomness from `rng` (a seeded one in tests).
    pub fn with_rng(
        store: Arc<dyn AuthStore>,
        clock: Arc<dyn Clock>,
        config: AuthConfig,
        mut rng: Box<dyn CryptoRngCore + Send>,
    ) -> Self {
        let dummy_hash =
            password::hash_password("dummy password for timing", config.password, &mut *rng)
                .unwrap_or_default();
        AuthService {
            store,
            clock,
            config,
            rng: Mutex::new(rng),
            key_cache: Mutex::new(KeyCache::default()),
            dummy_hash,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn with_rng_do<T>(&self, f: impl FnOnce(&mut dyn CryptoRngCore) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-draw; the RNG itself
        // is still fine to use.
        let mut guard = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut **guard)
    }

    fn mfa_required_for(&self, role: Role) -> bool {
        self.config.mfa_required_roles.contains(&role)
    }

    /// Who is calling, from a bearer token (API key or session). A session's idle
    /// timer restarts.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<Principal, AuthError> {
        let token = bearer_token.trim();
        if token.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        let now = self.clock.now();
        let hash = token_hash(token);
        if token.starts_with(API_KEY_PREFIX) {
            let key = self.api_key(&hash, now).await?;
            let record = &key.record;
            if record.revoked_at.is_some() {
                return Err(AuthError::ApiKeyRevoked);
            }
            if record.expires_at.is_some_and(|e| now >= e) {
                return Err(AuthError::ApiKeyExpired);
            }
            return Ok(Principal {
                kind: PrincipalKind::ApiKey,
                id: record.key_id.clone(),
                name: record.name.clone(),
                role: record.role,
                mfa_verified: false,
                actors: key.actors.clone(),
                llm_roles: Arc::clone(&key.llm_roles),
                created_by: record.created_by.clone(),
            });
        }
        if !token.starts_with(SESSION_PREFIX) {
            return Err(AuthError::InvalidCredentials);
        }
        let session = self.store.session(&hash).await?;
        let session = session
            .filter(|s| ct_eq(&s.token_hash, &hash))
            .ok_or(AuthError::InvalidCredentials)?;
        if session.revoked_at.is_some() {
            return Err(AuthError::SessionRevoked);
        }
        let idle_end = session.last_seen_at.add_secs(self.config.session_idle_secs);
        if now >= session.expires_at || now >= idle_end {
            return Err(AuthError::SessionExpired);
        }
        let user = self
            .store
            .user_by_id(&session.user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        self.store.touch_session(&hash, now).await?;
        Ok(Principal {
            kind: PrincipalKind::User,
            id: user.id,
            name: user.username,
            role: user.role,
            mfa_verified: session.mfa_verified,
            actors: None,
            llm_roles: Arc::default(),
            created_by: None,
        })
    }

    async fn api_key(
        &self,
        hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Arc<ResolvedKey>, AuthError> {
        let ttl = self.config.api_key_cache_secs;
        let generation = {
            let cache = self.lock_cache();
            if ttl > 0
                && let Some((key, read_at)) = cache.keys.get(hash)
                && now >= *read_at
                && now < read_at.add_secs(ttl)
                && ct_eq(&key.record.key_hash, hash)
            {
                return Ok(Arc::clone(key));
            }
            cache.generation
        };
        let record = self.store.api_key_by_hash(hash).await?;
        let record = record
            .filter(|k| ct_eq(&k.key_hash, hash))
            .ok_or(AuthError::InvalidCredentials)?;
        let key = Arc::new(ResolvedKey::new(record));
        if ttl > 0 && key.record.revoked_at.is_none() {
            let mut cache = self.lock_cache();
            // A purge since our read may concern this key; then what we read may be
            // older than the change, so it is not remembered.
            if cache.generation == generation {
                if cache.keys.len() >= API_KEY_CACHE_MAX {
                    cache.keys.clear();
                }
                cache.keys.insert(*hash, (Arc::clone(&key), now));
            }
        }
        Ok(key)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // The map holds no invariant a panicking holder could break.
        self.key_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` may call `method_path` (`/package.Service/Method`).
    ///
    /// Open methods need no principal; use [`crate::required_access`] first to skip
    /// authentication for them.
    pub fn authorize(&self, principal: &Principal, method_path: &str) -> Result<(), AuthError> {
        check_access(principal, method_path, &self.config.mfa_required_roles)
    }

    /// Creates a user with a password. `agent` is refused: services use API keys.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<CreatedUser, AuthError> {
        validate_username(username)?;
        validate_password(password)?;
        if !role.is_human() {
            return Err(AuthError::InvalidArgument {
                field: "role",
                reason: "agent is for API keys only: create an API key instead".to_owned(),
            });
        }
        let hash =
            self.with_rng_do(|rng| password::hash_password(password, self.config.password, rng))?;
        let user = UserRecord {
            id: self.with_rng_do(|rng| random_id(rng, "usr_")),
            username: username.to_owned(),
            password_hash: Some(hash),
            role,
            created_at: self.clock.now(),
            failed_logins: 0,
            locked_until: None,
            mfa_enabled: false,
        };
        match self.store.insert_user(&user).await {
            Err(StoreError::Conflict) => return Err(AuthError::UserExists(username.to_owned())),
            other => other?,
        }
        Ok(CreatedUser {
            user_id: user.id,
            mfa_required: self.mfa_required_for(role),
        })
    }

    /// Checks a password. Returns a session, or an MFA challenge when the user has MFA
    /// enrolled. A user whose role requires MFA but who has not enrolled gets a session
    /// that can only enroll ([`AuthService::authorize`] refuses everything else).
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginOutcome, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let now = self.clock.now();
        let user = self.store.user_by_name(username).await?;
        let Some(user) = user.filter(|u| u.password_hash.is_some()) else {
            // Spend the same time as a real check so timing does not reveal names.
            password::verify_password(password, &self.dummy_hash);
            return Err(AuthError::InvalidCredentials);
        };
        if let Some(until) = user.locked_until.filter(|u| now < *u) {
            return Err(AuthError::AccountLocked { until });
        }
        let stored = user.password_hash.as_deref().unwrap_or_default();
        if !password::verify_password(password, stored) {
            return Err(self.login_failed(&user.id, now).await);
        }
        self.store.clear_failed_logins(&user.id).await?;
        if user.mfa_enabled {
            let challenge = self.with_rng_do(|rng| random_token(rng, CHALLENGE_PREFIX));
            self.store
                .insert_challenge(&ChallengeRecord {
                    challenge_hash: token_hash(challenge.expose()),
                    user_id: user.id,
                    expires_at: now.add_secs(self.config.mfa_challenge_secs),
                    failed_attempts: 0,
                })
                .await?;
            return Ok(LoginOutcome::MfaRequired { challenge });
        }
        Ok(LoginOutcome::Session(
            self.new_session(&user.id, false).await?,
        ))
    }

    async fn login_failed(&self, user_id: &str, now: Timestamp) -> AuthError {
        let until = now.add_secs(self.config.lockout_secs);
        match self
            .store
            .record_failed_login(user_id, self.config.max_failed_logins, until)
            .await
        {
            Ok(true) => AuthError::AccountLocked { until },
            Ok(false) => AuthError::InvalidCredentials,
            Err(e) => e.into(),
        }
    }

    /// Completes an MFA challenge with a TOTP code or an unused backup code.
    pub async fn verify_mfa(&self, challenge: &str, code: &str) -> Result<Session, AuthError> {
        let now = self.clock.now();
        let hash = token_hash(challenge.trim());
        let record = self
            .store
            .challenge(&hash)
            .await?
            .filter(|c| ct_eq(&c.challenge_hash, &hash))
            .ok_or(AuthError::InvalidMfaChallenge)?;
        if now >= record.expires_at || record.failed_attempts >= self.config.mfa_challenge_attempts
        {
            self.store.delete_challenge(&hash).await?;
            return Err(AuthError::InvalidMfaChallenge);
        }
        let user = self
            .store
            .user_by_id(&record.user_id)
            .await?
            .ok_or(AuthError::InvalidMfaChallenge)?;
        if let Some(until) = user.locked_until.filter(|u| now < *u) {
            return Err(AuthError::AccountLocked { until });
        }
        match self.check_mfa_code(&user.id, code, now).await {
            Ok(()) => {}
            Err(AuthError::InvalidMfaCode) => {
                self.store.fail_challenge(&hash).await?;
                return Err(match self.login_failed(&user.id, now).await {
                    AuthError::InvalidCredentials => AuthError::InvalidMfaCode,
                    other => other,
                });
            }
            Err(e) => return Err(e),
        }
        // Single use: of two concurrent correct answers only one gets a session.
        if !self.store.delete_challenge(&hash).await? {
            return Err(AuthError::InvalidMfaChallenge);
        }
        self.store.clear_failed_logins(&user.id).await?;
        self.new_session(&user.id, true).await
    }

    async fn check_mfa_code(
        &self,
        user_id: &str,
        code: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let mfa = self
            .store
            .mfa(user_id)
            .await?
            .ok_or(AuthError::InvalidMfaCode)?;
        let code = code.trim();
        if code.len() == totp::DIGITS as usize {
            let step = totp::matching_step(&mfa.totp_secret, code, totp::step_at(now.unix_secs()))
                .ok_or(AuthError::InvalidMfaCode)?;
            if !self.store.advance_totp_step(user_id, step).await? {
                return Err(AuthError::MfaCodeReused);
            }
            return Ok(());
        }
        let normalized: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let hash = token_hash(&normalized);
        let mut found = None;
        for (id, stored) in self.store.unused_backup_codes(user_id).await? {
            if ct_eq(&stored, &hash) && found.is_none() {
                found = Some(id);
            }
        }
        match found {
            Some(id) if self.store.use_backup_code(user_id, id, now).await? => Ok(()),
            _ => Err(AuthError::InvalidMfaCode),
        }
    }

    async fn new_session(&self, user_id: &str, mfa_verified: bool) -> Result<Session, AuthError> {
        let now = self.clock.now();
        let token = self.with_rng_do(|rng| random_token(rng, SESSION_PREFIX));
        let expires_at = now.add_secs(self.config.session_lifetime_secs);
        self.store
            .insert_session(&SessionRecord {
                token_hash: token_hash(token.expose()),
                user_id: user_id.to_owned(),
                created_at: now,
                last_seen_at: now,
                expires_at,
                revoked_at: None,
                mfa_verified,
            })
            .await?;
        Ok(Session {
            token,
            expires_at,
            idle_timeout_secs: u32::try_from(self.config.session_idle_secs).unwrap_or(u32::MAX),
            mfa_verified,
        })
    }

    /// Revokes a session; false when it was unknown or already revoked.
    pub async fn logout(&self, session_token: &str) -> Result<bool, AuthError> {
        let hash = token_hash(session_token.trim());
        Ok(self.store.revoke_session(&hash, self.clock.now()).await?)
    }

    /// Starts (or restarts) TOTP for the calling user and returns the secrets once.
    ///
    /// Re-enrolling when MFA is already on requires a session that completed MFA, so a
    /// stolen password alone cannot replace the second factor.
    pub async fn enroll_mfa(&self, principal: &Principal) -> Result<MfaEnrollment, AuthError> {
        if principal.kind != PrincipalKind::User {
            return Err(AuthError::PermissionDenied {
                method: "/lexecon.v1.AuthService/EnrollMfa".to_owned(),
                role: principal.role,
            });
        }
        let user = self
            .store
            .user_by_id(&principal.id)
            .await?
            .ok_or_else(|| AuthError::UnknownUser(principal.name.clone()))?;
        if user.mfa_enabled && !principal.mfa_verified {
            return Err(AuthError::PermissionDenied {
                method: "/lexecon.v1.AuthService/EnrollMfa".to_owned(),
                role: principal.role,
            });
        }
        let (secret, codes) = self.with_rng_do(|rng| {
            let mut secret = vec![0u8; totp::SECRET_BYTES];
            rng.fill_bytes(&mut secret);
            let codes: Vec<String> = (0..BACKUP_CODES).map(|_| backup_code(rng)).collect();
            (secret, codes)
        });
        let hashes: Vec<[u8; 32]> = codes
            .iter()
            .map(|c| token_hash(&c.replace('-', "")))
            .collect();
        self.store
            .set_mfa(&user.id, &secret, &hashes, self.clock.now())
            .await?;
        let secret_base32 = data_encoding::BASE32_NOPAD.encode(&secret);
        let uri = totp::otpauth_uri(&self.config.totp_issuer, &user.username, &secret_base32);
        Ok(MfaEnrollment {
            secret_base32: SecretString::new(secret_base32),
            otpauth_uri: SecretString::new(uri),
            backup_codes: codes.into_iter().map(SecretString::new).collect(),
        })
    }

    /// Creates an API key; the plaintext is returned only here.
    ///
    /// An `agent` key must be bound to at least one actor pattern (`actors`); the
    /// patterns follow the glob rules of policies. Refusals are `InvalidArgument`
    /// naming the field.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey, AuthError> {
        let NewApiKey {
            name,
            role,
            expires_at,
            actors,
            llm_roles,
            created_by,
        } = new;
        if name.trim().is_empty() || name.len() > 128 {
            return Err(AuthError::InvalidArgument {
                field: "name",
                reason: "give the key a name of 1-128 bytes".to_owned(),
            });
        }
        let now = self.clock.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::InvalidArgument {
                field: "expires_at",
                reason: "must be in the future".to_owned(),
            });
        }
        let binding = validate_actors(role, &actors)?;
        validate_llm_roles(&llm_roles)?;
        let actors = binding.map(|_| actors);
        let (key_id, api_key) =
            self.with_rng_do(|rng| (random_id(rng, "key_"), random_token(rng, API_KEY_PREFIX)));
        self.store
            .insert_api_key(&ApiKeyRecord {
                key_id: key_id.clone(),
                name,
                role,
                key_hash: token_hash(api_key.expose()),
                created_at: now,
                expires_at,
                revoked_at: None,
                actors: actors.clone(),
                llm_roles: llm_roles.clone(),
                created_by,
            })
            .await?;
        Ok(CreatedApiKey {
            key_id,
            api_key,
            actors,
            llm_roles,
        })
    }

    /// Replaces the actors an API key may speak for and the LLM roles it may name,
    /// checked as [`AuthService::create_api_key`] checks them (an `agent` key needs at
    /// least one actor pattern; for another role an empty list removes the binding).
    /// False when the key is unknown or revoked.
    ///
    /// Takes effect at once on this node; on another node sharing the database within
    /// [`AuthConfig::api_key_cache_secs`].
    pub async fn set_api_key_binding(
        &self,
        key_id: &str,
        actors: Vec<String>,
        llm_roles: Vec<String>,
    ) -> Result<bool, AuthError> {
        // The patterns are checked before the key is looked up, so a bad request is
        // refused the same way whether or not the key exists.
        if !actors.is_empty() {
            ActorBinding::new(&actors)?;
        }
        validate_llm_roles(&llm_roles)?;
        let Some(key) = self.store.api_key_by_id(key_id).await? else {
            return Ok(false);
        };
        if key.revoked_at.is_some() {
            return Ok(false);
        }
        if actors.is_empty() {
            validate_actors(key.role, &actors)?;
        }
        let updated = self
            .store
            .set_api_key_binding(key_id, &actors, &llm_roles)
            .await?;
        self.lock_cache().purge(key_id);
        Ok(updated)
    }

    /// An API key's stored state without its hash; `None` when the id is unknown.
    pub async fn api_key_info(&self, key_id: &str) -> Result<Option<ApiKeyInfo>, AuthError> {
        Ok(self.store.api_key_by_id(key_id).await?.map(|k| ApiKeyInfo {
            key_id: k.key_id,
            name: k.name,
            role: k.role,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            actors: k.actors,
            llm_roles: k.llm_roles,
            created_by: k.created_by,
        }))
    }

    /// Revokes an API key; false when unknown or already revoked.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, AuthError> {
        let revoked = self.store.revoke_api_key(key_id, self.clock.now()).await?;
        self.lock_cache().purge(key_id);
        Ok(revoked)
    }

    /// The configured OIDC providers.
    pub fn oidc_providers(&self) -> impl Iterator<Item = &OidcProviderConfig> {
        self.config.oidc_providers.iter().map(|p| &p.config)
    }

    /// Validates an ID token from `provider` and returns a session for its subject.
    ///
    /// Accounts are linked by the provider's `sub`, never by email. The session counts
    /// as MFA-verified only when the token's `amr` says the provider used MFA.
    pub async fn exchange_oidc_token(
        &self,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<(Session, Role), AuthError> {
        let p = self
            .config
            .oidc_providers
            .iter()
            .find(|p| p.config.name == provider)
            .ok_or_else(|| OidcError::UnknownProvider(provider.chars().take(64).collect()))?;
        let identity = p.validate(id_token, nonce, self.clock.now()).await?;
        let username = format!("{}:{}", identity.provider, identity.subject);
        let user_id = match self.store.user_by_name(&username).await? {
            Some(u) => {
                if u.role != identity.role {
                    self.store.set_user_role(&u.id, identity.role).await?;
                }
                u.id
            }
            None => {
                let user = UserRecord {
                    id: self.with_rng_do(|rng| random_id(rng, "usr_")),
                    username,
                    password_hash: None,
                    role: identity.role,
                    created_at: self.clock.now(),
                    failed_logins: 0,
                    locked_until: None,
                    mfa_enabled: false,
                };
                match self.store.insert_user(&user).await {
                    Ok(()) => user.id,
                    // A concurrent first exchange for the same subject created it.
                    Err(StoreError::Conflict) => {
                        self.store
                            .user_by_name(&user.username)
                            .await?
                            .ok_or(AuthError::InvalidCredentials)?
                            .id
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let session = self.new_session(&user_id, identity.mfa).await?;
        Ok((session, identity.role))
    }

    /// Deletes sessions and challenges that can no longer be used.
    pub async fn purge_expired(&self) -> Result<u64, AuthError> {
        let now = self.clock.now();
        let idle_cutoff = now.add_secs(-self.config.session_idle_secs);
        Ok(self.store.purge_expired(now, idle_cutoff).await?)
    }
}

/// The token of an `authorization` header value `Bearer <token>` (the scheme is
/// case-insensitive, as RFC 7235 says); `None` for any other form.
pub fn parse_bearer(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

fn backup_code(rng: &mut dyn CryptoRngCore) -> String {
    let mut bytes = [0u8; (BACKUP_CODE_BITS / 8) as usize];
    rng.fill_bytes(&mut bytes);
    let raw = data_encoding::BASE32_NOPAD.encode(&bytes);
    let chars: Vec<char> = raw.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Checks a user name: 1-64 bytes of letters, digits and `. _ - @`.
pub fn validate_username(username: &str) -> Result<(), AuthError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidArgument {
            field: "username",
            reason: "use 1-64 letters, digits and . _ - @".to_owned(),
        })
    }
}

/// Checks a new password: at least 12 characters, at most 1024 bytes.
pub fn validate_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::InvalidArgument {
            field: "password",
            reason: format!("use at least {MIN_PASSWORD_CHARS} characters"),
        });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::InvalidArgument {
            field: "password",
            reason: format!("use at most {MAX_PASSWORD_BYTES} bytes"),
        });
    }
    Ok(())
}
