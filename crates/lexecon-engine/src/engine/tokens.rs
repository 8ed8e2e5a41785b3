//! Capability tokens: verification against the node's keys and the revocation list, and
//! revocation (ledgered, stored, and seen by every replica within a sync interval).

use lexecon_capability::{Claims, RevocationList, VerifyError, VerifyOptions};
use lexecon_core::TokenId;
use lexecon_ledger::EntryKind;
use serde_json::json;

use super::{Caller, Engine, EngineError, ops};

/// The longest token accepted for verification, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The longest revocation reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// A token check's result.
#[derive(Debug)]
pub struct TokenCheck {
    /// The claims, when the token decoded (even if a later check failed).
    pub claims: Option<Claims>,
    /// Why it is invalid; `None` when valid.
    pub error: Option<VerifyError>,
}

/// What to check a token against; empty fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyTokenInput {
    /// The token (`lxc1.` ...).
    pub token: String,
    /// The subject it must name.
    pub actor: String,
    /// The action it must name.
    pub action: String,
    /// The tool it must name.
    pub tool: String,
    /// The audience it must carry.
    pub audience: String,
}

impl Engine {
    /// Verifies a capability token against the node's keys and the revocation list.
    pub fn verify_token(
        &self,
        caller: &Caller,
        input: &VerifyTokenInput,
    ) -> Result<TokenCheck, EngineError> {
        self.authorize(caller, ops::VERIFY_TOKEN)?;
        if input.token.len() > MAX_TOKEN_BYTES {
            return Err(EngineError::InvalidArgument(format!(
                "token is longer than {MAX_TOKEN_BYTES} bytes; it cannot be a Lexecon token"
            )));
        }
        let keys = self.key_ring();
        let mut opts = VerifyOptions::new(self.clock.now())
            .clock_skew_secs(self.config.tokens.clock_skew_secs);
        if !input.actor.is_empty() {
            opts = opts.actor(&input.actor);
        }
        if !input.action.is_empty() {
            opts = opts.action(&input.action);
        }
        if !input.tool.is_empty() {
            opts = opts.tool(&input.tool);
        }
        if !input.audience.is_empty() {
            opts = opts.audience(&input.audience);
        }
        Ok(
            match lexecon_capability::verify(&input.token, keys.as_ref(), &opts, &self.revoked) {
                Ok(claims) => TokenCheck {
                    claims: Some(claims),
                    error: None,
                },
                Err(error) => TokenCheck {
                    claims: None,
                    error: Some(error),
                },
            },
        )
    }

    /// Revokes a token everywhere; returns its `token_revoked` ledger index and whether
    /// it was new (a second revocation reports the first one's index).
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        token_id: &str,
        reason: &str,
    ) -> Result<(u64, bool), EngineError> {
        self.authorize(caller, ops::REVOKE_TOKEN)?;
        let token_id: TokenId = token_id
            .parse()
            .map_err(|e| EngineError::InvalidArgument(format!("token_id: {e}")))?;
        if reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
            return Err(EngineError::InvalidArgument(format!(
                "reason must be at most {MAX_REASON_BYTES} bytes without control characters"
            )));
        }
        let id = token_id.to_string();
        if let Some(index) = self.store.revocation_index(&id).await? {
            self.add_revoked(token_id);
            return Ok((u64::try_from(index).unwrap_or(0), false));
        }
        let by = caller.ledger_name();
        let receipt = self
            .ledger
            .append(
                EntryKind::TokenRevoked,
                json!({"token_id": id, "reason": reason, "revoked_by": by}),
            )
            .await?;
        self.store
            .revocation_insert(
                &id,
                receipt.timestamp.unix_micros(),
                reason,
                &by,
                i64::try_from(receipt.index).unwrap_or(i64::MAX),
            )
            .await?;
        self.add_revoked(token_id);
        Ok((receipt.index, true))
    }

    fn add_revoked(&self, token_id: TokenId) {
        if let Ok(mut ids) = self.revoked.ids.write() {
            ids.insert(token_id);
        }
    }

    /// Reads every revocation into memory.
    pub(crate) async fn refresh_revocations(&self) -> Result<(), EngineError> {
        let count = self.store.revocation_count().await?;
        let ids = self.store.revocations().await?;
        if let Ok(mut set) = self.revoked.ids.write() {
            set.extend(ids.into_iter().filter_map(|id| id.parse::<TokenId>().ok()));
        }
        self.sync.set_revocations(count);
        Ok(())
    }

    /// Picks up revocations made on other replicas (rows are only ever added).
    pub(crate) async fn sync_revocations(&self) -> Result<(), EngineError> {
        if self.store.revocation_count().await? != self.sync.revocations() {
            self.refresh_revocations().await?;
        }
        Ok(())
    }

    /// Whether a token id is revoked here.
    pub fn is_revoked(&self, token_id: &TokenId) -> bool {
        self.revoked.is_revoked(token_id)
    }
}
