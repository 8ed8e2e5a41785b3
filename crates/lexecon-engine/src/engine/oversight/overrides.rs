//! Overrides: a person's decision over the policy for requests that match full-match
//! globs, with a kind, an effect, a justification and a bounded expiry. Applied after
//! risk and before budgets; never lifting a budget limit or a halt; revocable.

use lexecon_core::{OverrideId, Timestamp};
use serde::Serialize;

/// The kind of an override (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKind {
    /// An emergency bypass; approving ones are for admins only.
    EmergencyBypass,
    /// An executive override; approving ones are for admins only.
    ExecutiveOverride,
    /// An exception for a time.
    TimeLimitedException,
    /// A risk accepted.
    RiskAccepted,
}

impl OverrideKind {
    /// Every kind.
    pub const ALL: [OverrideKind; 4] = [
        OverrideKind::EmergencyBypass,
        OverrideKind::ExecutiveOverride,
        OverrideKind::TimeLimitedException,
        OverrideKind::RiskAccepted,
    ];

    /// The name in payloads and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::EmergencyBypass => "emergency_bypass",
            OverrideKind::ExecutiveOverride => "executive_override",
            OverrideKind::TimeLimitedException => "time_limited_exception",
            OverrideKind::RiskAccepted => "risk_accepted",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<OverrideKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a matching override does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideEffect {
    /// Approves what the policy or risk denied or escalated.
    Approve,
    /// Denies.
    Deny,
}

impl OverrideEffect {
    /// The name in payloads and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideEffect::Approve => "approve",
            OverrideEffect::Deny => "deny",
        }
    }

    /// The effect named `s`.
    pub fn parse(s: &str) -> Option<OverrideEffect> {
        match s {
            "approve" => Some(OverrideEffect::Approve),
            "deny" => Some(OverrideEffect::Deny),
            _ => None,
        }
    }
}

/// A `CreateOverride` request. The author is the caller, never a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideInput {
    /// The kind.
    pub kind: OverrideKind,
    /// The effect.
    pub effect: OverrideEffect,
    /// Actor glob (full match).
    pub actor: String,
    /// Action glob (full match).
    pub action: String,
    /// Tool glob (full match); empty = any tool, and requests without one.
    pub tool: String,
    /// Why; at least [`MIN_JUSTIFICATION_CHARS`] characters.
    pub justification: String,
    /// When it ends; at most `oversight.max_override_secs` ahead.
    pub expires_at: Timestamp,
}

/// The shortest justification accepted.
pub const MIN_JUSTIFICATION_CHARS: usize = 20;

/// How an override was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideRevocation {
    /// Who revoked it.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
    /// The ledger index of its `override_revoked` entry.
    pub ledger_index: u64,
}

/// An override as created, with its revocation if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideRecord {
    /// `ovr_` + ULID.
    pub override_id: OverrideId,
    /// The kind.
    pub kind: OverrideKind,
    /// The effect.
    pub effect: OverrideEffect,
    /// Actor glob.
    pub actor: String,
    /// Action glob.
    pub action: String,
    /// Tool glob; empty = any.
    pub tool: String,
    /// Why.
    pub justification: String,
    /// The author (`Caller::ledger_name`).
    pub created_by: String,
    /// The author's role (`admin`, `compliance_officer`, or `local`/`system`).
    pub creator_role: String,
    /// When.
    pub created_at: Timestamp,
    /// When it ends.
    pub expires_at: Timestamp,
    /// The ledger index of its `override_created` entry.
    pub ledger_index: u64,
    /// The revocation, if revoked.
    pub revoked: Option<OverrideRevocation>,
}

impl OverrideRecord {
    /// Whether it decides requests at `now`: not revoked and not expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked.is_none() && now < self.expires_at
    }
}

use lexecon_auth::Role;
use lexecon_core::glob::{Alphabet, Glob};
use lexecon_ledger::SideRow;
use rand::Rng as _;
use serde_json::json;

use super::store::{self, Claimable, OverrideRow, tables};
use super::{CLAIM_LEASE_MICROS, claim_owner, index_of, int, required_text, role_name, text, ts};
use crate::engine::{Caller, Engine, EngineError, ops};

impl OverrideRecord {
    fn of(row: OverrideRow) -> Result<OverrideRecord, EngineError> {
        let bad = |what: &str| {
            EngineError::Corrupt(format!(
                "override {} has an unreadable {what}",
                row.override_id
            ))
        };
        Ok(OverrideRecord {
            override_id: row.override_id.parse().map_err(|_| bad("id"))?,
            kind: OverrideKind::parse(&row.kind).ok_or_else(|| bad("kind"))?,
            effect: OverrideEffect::parse(&row.effect).ok_or_else(|| bad("effect"))?,
            actor: row.actor_glob,
            action: row.action_glob,
            tool: row.tool_glob,
            justification: row.justification,
            created_by: row.created_by,
            creator_role: row.creator_role,
            created_at: ts(row.created_at),
            expires_at: ts(row.expires_at),
            ledger_index: index_of(row.idx),
            revoked: row.revoked.map(|(by, at, reason, idx)| OverrideRevocation {
                by,
                at: ts(at),
                reason,
                ledger_index: index_of(idx),
            }),
        })
    }
}

fn glob_field(field: &'static str, pattern: &str) -> Result<(), EngineError> {
    Glob::for_field(pattern, Alphabet::Name(field))
        .map(drop)
        .map_err(|e| EngineError::InvalidArgument(format!("{field}: {e}")))
}

impl Engine {
    /// Creates an override authored by `caller`. Only an admin creates an approving
    /// emergency bypass or executive override; a compliance officer's approving override
    /// needs actor and action globs that are not just `*`.
    pub async fn create_override(
        &self,
        caller: &Caller,
        input: OverrideInput,
    ) -> Result<OverrideRecord, EngineError> {
        self.authorize(caller, ops::CREATE_OVERRIDE)?;
        let OverrideInput {
            kind,
            effect,
            actor,
            action,
            tool,
            justification,
            expires_at,
        } = input;
        glob_field("actor", &actor)?;
        glob_field("action", &action)?;
        if !tool.is_empty() {
            glob_field("tool", &tool)?;
        }
        let chars = justification.trim().chars().count();
        if chars < MIN_JUSTIFICATION_CHARS {
            return Err(EngineError::InvalidArgument(format!(
                "justification is {chars} characters; at least {MIN_JUSTIFICATION_CHARS} are \
                 required: say why this override is needed"
            )));
        }
        required_text("justification", &justification)?;
        let now = self.clock.now();
        let max_secs = i64::try_from(self.config.oversight.max_override_secs).unwrap_or(i64::MAX);
        if expires_at <= now {
            return Err(EngineError::InvalidArgument(format!(
                "expires_at {expires_at} is not in the future (now is {now})"
            )));
        }
        if expires_at.unix_micros()
            > now
                .unix_micros()
                .saturating_add(max_secs.saturating_mul(1_000_000))
        {
            return Err(EngineError::InvalidArgument(format!(
                "expires_at {expires_at} is more than oversight.max_override_secs ({max_secs} s) \
                 ahead"
            )));
        }
        if let Caller::Principal(p) = caller
            && effect == OverrideEffect::Approve
        {
            let admin = p.role == Role::Admin;
            if !admin
                && matches!(
                    kind,
                    OverrideKind::EmergencyBypass | OverrideKind::ExecutiveOverride
                )
            {
                return Err(EngineError::PermissionDenied(format!(
                    "only an admin may create an approving {} override; {} is {}",
                    kind.as_str(),
                    caller.ledger_name(),
                    p.role.as_str()
                )));
            }
            if !admin {
                let everything = |g: &str| g.chars().all(|c| c == '*');
                for (field, glob) in [("actor", &actor), ("action", &action)] {
                    if everything(glob) {
                        return Err(EngineError::PermissionDenied(format!(
                            "{field}: a compliance officer's approving override must name \
                             the {field}s it covers, not {glob:?}"
                        )));
                    }
                }
            }
        }
        let override_id = OverrideId::new(now, rand::thread_rng().r#gen());
        let by = caller.ledger_name();
        let creator_role = role_name(caller);
        let payload = json!({
            "event": "override_created",
            "by": by,
            "override_id": override_id,
            "kind": kind.as_str(),
            "effect": effect.as_str(),
            "actor": actor,
            "action": action,
            "tool": tool,
            "justification": justification,
            "creator_role": creator_role,
            "expires_at": expires_at,
            "at": now,
        });
        let row = SideRow {
            table: &tables::OVERRIDES,
            values: vec![
                text(&override_id.to_string()),
                text(kind.as_str()),
                text(effect.as_str()),
                text(&actor),
                text(&action),
                text(&tool),
                text(&justification),
                text(&by),
                text(creator_role),
                int(now.unix_micros()),
                int(expires_at.unix_micros()),
            ],
        };
        let index = self.append_oversight(&payload, vec![row]).await?;
        self.sync_oversight_after_change().await;
        Ok(OverrideRecord {
            override_id,
            kind,
            effect,
            actor,
            action,
            tool,
            justification,
            created_by: by,
            creator_role: creator_role.to_owned(),
            created_at: now,
            expires_at,
            ledger_index: index,
            revoked: None,
        })
    }

    /// Overrides in force (or every override, with `include_inactive`), newest first.
    pub async fn list_overrides(
        &self,
        caller: &Caller,
        include_inactive: bool,
    ) -> Result<Vec<OverrideRecord>, EngineError> {
        self.authorize(caller, ops::LIST_OVERRIDES)?;
        let now = self.clock.now().unix_micros();
        store::on(&self.db)
            .overrides(now, include_inactive)
            .await?
            .into_iter()
            .map(OverrideRecord::of)
            .collect()
    }

    /// Revokes an override; the record comes back with its revocation.
    pub async fn revoke_override(
        &self,
        caller: &Caller,
        override_id: &str,
        reason: &str,
    ) -> Result<OverrideRecord, EngineError> {
        self.authorize(caller, ops::REVOKE_OVERRIDE)?;
        let parsed: OverrideId = override_id.parse().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "override_id {override_id:?} is not an override id (ovr_ followed by 26 characters)"
            ))
        })?;
        let id = parsed.to_string();
        required_text("reason", reason)?;
        let store = store::on(&self.db);
        let revoked =
            || EngineError::FailedPrecondition(format!("override {id} was already revoked"));
        match store.override_row(&id).await? {
            None => return Err(EngineError::NotFound(format!("no override {id}"))),
            Some(row) if row.revoked.is_some() => return Err(revoked()),
            Some(_) => {}
        }
        let now = self.clock.now();
        let micros = now.unix_micros();
        let owner = claim_owner();
        if !store
            .claim(
                Claimable::Override,
                &id,
                micros,
                micros - CLAIM_LEASE_MICROS,
                &owner,
            )
            .await?
        {
            return Err(EngineError::InProgress(format!(
                "override {id} is being revoked by another call"
            )));
        }
        let by = caller.ledger_name();
        let result = async {
            let Some(row) = store.override_row(&id).await? else {
                return Err(EngineError::NotFound(format!("no override {id}")));
            };
            if row.revoked.is_some() {
                return Err(revoked());
            }
            let payload = json!({
                "event": "override_revoked",
                "by": by,
                "override_id": id,
                "reason": reason,
                "at": now,
            });
            let side = SideRow {
                table: &tables::OVERRIDE_REVOCATIONS,
                values: vec![text(&id), text(&by), int(micros), text(reason)],
            };
            let index = self.append_oversight(&payload, vec![side]).await?;
            Ok((row, index))
        }
        .await;
        if result.is_err()
            && let Err(e) = store.unclaim(Claimable::Override, &id, &owner).await
        {
            tracing::warn!(error = %e, "could not clear a revoke claim; it expires");
        }
        let (row, index) = result?;
        self.sync_oversight_after_change().await;
        let mut record = OverrideRecord::of(row)?;
        record.revoked = Some(OverrideRevocation {
            by,
            at: now,
            reason: reason.to_owned(),
            ledger_index: index,
        });
        Ok(record)
    }
}
