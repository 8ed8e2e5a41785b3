//! Users, sessions, MFA and API keys as engine operations. Every user, key, role or MFA
//! change is one `auth_event` ledger entry naming its authenticated author, whatever
//! the door (gRPC, CLI on the local database, `init`); no payload holds a secret.

use lexecon_auth::{
    CreatedUser, LoginOutcome, MfaEnrollment, NewApiKey, OidcProviderConfig, Principal, Role,
    SecretString, Session,
};
use lexecon_core::Timestamp;
use lexecon_ledger::EntryKind;
use serde_json::json;

use super::{Caller, Engine, EngineError, ops};

/// A created API key: the secret is shown only here.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The key id (not secret).
    pub key_id: String,
    /// The key (`lxk_...`).
    pub api_key: SecretString,
    /// Its role.
    pub role: Role,
    /// The actor globs it may speak for (`None`: no binding).
    pub actors: Option<Vec<String>>,
    /// The LLM roles it may name.
    pub llm_roles: Vec<String>,
    /// Its expiry.
    pub expires_at: Option<Timestamp>,
    /// The ledger index of its `auth_event`.
    pub ledger_index: u64,
}

/// The result of a password login.
#[derive(Debug, Clone)]
pub enum LoginResult {
    /// Logged in.
    Session(Session),
    /// An MFA code must follow ([`Engine::verify_mfa`]).
    MfaRequired(SecretString),
}

impl Engine {
    /// Who a bearer token (API key or session) belongs to. A revoked or expired key is
    /// refused at once on this node (one cache, purged on revocation) and within the
    /// auth cache's lifetime (2 s by default) on other nodes.
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller, EngineError> {
        Ok(Caller::Principal(self.auth.authenticate(bearer).await?))
    }

    /// Whether the method at `path` needs no credentials (health, reflection, login).
    pub fn is_open(path: &str) -> bool {
        lexecon_auth::required_access(path) == lexecon_auth::Access::Open
    }

    /// Checks `caller` against the permission table for the RPC at `path` (adapters
    /// call this before decoding a request; every operation checks again itself).
    pub fn check_access(&self, caller: &Caller, path: &str) -> Result<(), EngineError> {
        self.authorize(caller, path)
    }

    async fn audit(&self, payload: serde_json::Value) -> Result<u64, EngineError> {
        Ok(self
            .ledger
            .append(EntryKind::AuthEvent, payload)
            .await?
            .index)
    }

    /// A password login; failures and successes are ledgered (never the password).
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResult, EngineError> {
        let username_shown: String = username.chars().take(64).collect();
        match self.auth.login(username, password).await {
            Ok(LoginOutcome::Session(s)) => {
                self.audit(json!({"event": "login", "username": username_shown, "mfa": false}))
                    .await?;
                Ok(LoginResult::Session(s))
            }
            Ok(LoginOutcome::MfaRequired { challenge }) => Ok(LoginResult::MfaRequired(challenge)),
            Err(e) => {
                if e.is_unauthenticated() {
                    self.audit(json!({"event": "login_failed", "username": username_shown}))
                        .await?;
                }
                Err(e.into())
            }
        }
    }

    /// Completes a login with a TOTP or backup code.
    pub async fn verify_mfa(&self, challenge: &str, code: &str) -> Result<Session, EngineError> {
        let session = self.auth.verify_mfa(challenge, code).await?;
        self.audit(json!({"event": "login", "mfa": true})).await?;
        Ok(session)
    }

    /// Ends the caller's session; false when it was not a live session.
    pub async fn logout(&self, caller: &Caller, bearer: &str) -> Result<bool, EngineError> {
        self.authorize(caller, ops::LOGOUT)?;
        let revoked = self.auth.logout(bearer).await?;
        if revoked {
            self.audit(json!({"event": "logout", "by": caller.ledger_name()}))
                .await?;
        }
        Ok(revoked)
    }

    /// The caller as authentication established it.
    pub fn who_am_i(&self, caller: &Caller) -> Result<Option<Principal>, EngineError> {
        self.authorize(caller, ops::WHO_AM_I)?;
        Ok(caller.principal().cloned())
    }

    /// Creates a user with a password.
    pub async fn create_user(
        &self,
        caller: &Caller,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<(CreatedUser, u64), EngineError> {
        self.authorize(caller, ops::CREATE_USER)?;
        let created = self.auth.create_user(username, password, role).await?;
        let index = self
            .audit(json!({
                "event": "user_created",
                "user_id": created.user_id,
                "username": username,
                "role": role.to_string(),
                "by": caller.ledger_name(),
            }))
            .await?;
        Ok((created, index))
    }

    /// Starts TOTP enrollment for the calling user.
    pub async fn enroll_mfa(&self, caller: &Caller) -> Result<MfaEnrollment, EngineError> {
        self.authorize(caller, ops::ENROLL_MFA)?;
        let Some(principal) = caller.principal() else {
            return Err(EngineError::InvalidArgument(
                "MFA enrollment is for a signed-in user".to_owned(),
            ));
        };
        let enrollment = self.auth.enroll_mfa(principal).await?;
        self.audit(
            json!({"event": "mfa_enrolled", "user_id": principal.id, "by": caller.ledger_name()}),
        )
        .await?;
        Ok(enrollment)
    }

    /// Creates an API key (role `agent` needs at least one actor glob).
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        key: NewApiKey,
    ) -> Result<CreatedKey, EngineError> {
        self.authorize(caller, ops::CREATE_API_KEY)?;
        let (name, role, expires_at) = (key.name.clone(), key.role, key.expires_at);
        let key = NewApiKey {
            created_by: Some(caller.ledger_name()),
            ..key
        };
        let created = self.auth.create_api_key(key).await?;
        let audited = self
            .audit(json!({
                "event": "api_key_created",
                "key_id": created.key_id,
                "name": name,
                "role": role.to_string(),
                "actors": created.actors,
                "llm_roles": created.llm_roles,
                "expires_at": expires_at.map(Timestamp::to_rfc3339),
                "by": caller.ledger_name(),
            }))
            .await;
        let ledger_index = match audited {
            Ok(index) => index,
            Err(e) => {
                // An unaudited key must not stay usable.
                if let Err(revoke) = self.auth.revoke_api_key(&created.key_id).await {
                    tracing::error!(error = %revoke, key_id = %created.key_id, "could not revoke a key whose creation was not ledgered");
                }
                return Err(e);
            }
        };
        Ok(CreatedKey {
            key_id: created.key_id,
            api_key: created.api_key,
            role,
            actors: created.actors,
            llm_roles: created.llm_roles,
            expires_at,
            ledger_index,
        })
    }

    /// Revokes an API key at once on this node (false when unknown or already revoked),
    /// and cancels the pending escalations its requests created.
    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<(bool, u64), EngineError> {
        self.authorize(caller, ops::REVOKE_API_KEY)?;
        let revoked = self.auth.revoke_api_key(key_id).await?;
        let index = if revoked {
            self.audit(
                json!({"event": "api_key_revoked", "key_id": key_id, "by": caller.ledger_name()}),
            )
            .await?
        } else {
            0
        };
        // Its pending escalations are cancelled (also when it was revoked before, so a
        // retry finishes what a failed call started).
        let principal_key = format!("{}:{key_id}", lexecon_auth::PrincipalKind::ApiKey.as_str());
        self.cancel_escalations_of(&principal_key, &caller.ledger_name())
            .await?;
        Ok((revoked, index))
    }

    /// Replaces the actors and LLM roles a key may speak for, at once on this node.
    pub async fn set_api_key_actors(
        &self,
        caller: &Caller,
        key_id: &str,
        actors: Vec<String>,
        llm_roles: Vec<String>,
    ) -> Result<(bool, u64), EngineError> {
        self.authorize(caller, ops::SET_API_KEY_ACTORS)?;
        let shown = (actors.clone(), llm_roles.clone());
        let updated = self
            .auth
            .set_api_key_binding(key_id, actors, llm_roles)
            .await?;
        let index = if updated {
            self.audit(json!({
                "event": "api_key_bound",
                "key_id": key_id,
                "actors": shown.0,
                "llm_roles": shown.1,
                "by": caller.ledger_name(),
            }))
            .await?
        } else {
            0
        };
        Ok((updated, index))
    }

    /// The configured OIDC providers.
    pub fn oidc_providers(&self) -> Vec<OidcProviderConfig> {
        self.auth.oidc_providers().cloned().collect()
    }

    /// Exchanges a provider's ID token for a session.
    pub async fn exchange_oidc_token(
        &self,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<(Session, Role), EngineError> {
        let (session, role) = self
            .auth
            .exchange_oidc_token(provider, id_token, nonce)
            .await?;
        self.audit(json!({"event": "oidc_login", "provider": provider, "role": role.to_string()}))
            .await?;
        Ok((session, role))
    }
}
