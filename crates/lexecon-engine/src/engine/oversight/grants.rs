//! Grants: an approved escalation may be used once, within `oversight.approval_ttl_secs`
//! of the approval, by the principal whose request escalated, either (a) by fetching it
//! (`GetEscalation`, or a `Decide` retried with the original `request_id`), which mints
//! a token for the original decision, or (b) by a new `Decide` of the same request,
//! which is APPROVED with reason `escalation:<id>`. Using a grant is a claim on the
//! escalation's state row (exactly one caller or replica wins) and one ledger entry.

use lexecon_capability::Claims;
use lexecon_core::{ActionRequest, DecisionId, Outcome, Timestamp};
use lexecon_ledger::{EntryKind, SideRow};
use rand::Rng as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::store::{self, Claimable, EscRow, StateRow, tables};
use super::{CLAIM_LEASE_MICROS, GroupEntry, claim_owner, int, opt_int, opt_text, text};
use crate::engine::{Engine, EngineError};

/// SHA-256 over what a grant is good for: the request's actor, action, tool, data
/// classes and context (through the MCP gateway the context holds `mcp.args_sha256`),
/// not its intent, risk level, mode or LLM usage.
pub(crate) fn grant_fingerprint(req: &ActionRequest) -> [u8; 32] {
    #[derive(serde::Serialize)]
    struct Granted<'a> {
        actor: &'a str,
        action: &'a str,
        tool: Option<&'a str>,
        data_classes: Vec<&'a str>,
        context: &'a std::collections::BTreeMap<String, String>,
    }
    let granted = Granted {
        actor: req.actor.as_str(),
        action: req.action.as_str(),
        tool: req.tool.as_ref().map(|t| t.as_str()),
        data_classes: req.data_classes.iter().map(|d| d.as_str()).collect(),
        context: &req.context,
    };
    // Plain strings and a BTreeMap always serialize.
    let bytes = serde_json::to_vec(&granted).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// Internal names of the transition that wrote a state row (`last_event`).
pub(crate) mod last {
    pub(crate) const CREATED: &str = "created";
    pub(crate) const WARNED: &str = "warned";
    pub(crate) const APPROVAL: &str = "approval";
    pub(crate) const RESOLVED: &str = "resolved";
    pub(crate) const EXPIRED: &str = "expired";
    pub(crate) const CANCELLED: &str = "cancelled";
    pub(crate) const GRANT_USED: &str = "grant_used";
    pub(crate) const GRANT_LAPSED: &str = "grant_lapsed";
}

/// The state as of its row, with the index of the transition that wrote it moved into
/// its own column (a row never knows its own index; `idx` holds it).
pub(crate) fn effective(s: &StateRow) -> StateRow {
    let mut e = s.clone();
    match s.last_event.as_str() {
        last::WARNED => e.warned_idx = Some(s.idx),
        last::RESOLVED | last::EXPIRED | last::CANCELLED => e.resolved_idx = Some(s.idx),
        last::GRANT_USED => e.grant_idx = Some(s.idx),
        _ => {}
    }
    e
}

/// The side row that writes state `s` (from [`effective`], changed by one transition
/// named `event`) for `escalation_id`, releasing any claim.
pub(crate) fn state_row(escalation_id: &str, s: &StateRow, event: &str) -> SideRow {
    let own = |name: &str, v: Option<i64>| if event == name { None } else { v };
    let resolved_own = matches!(event, last::RESOLVED | last::EXPIRED | last::CANCELLED);
    SideRow {
        table: &tables::STATE,
        values: vec![
            text(escalation_id),
            text(&s.state),
            text(event),
            int(s.approvals),
            opt_int(own(last::WARNED, s.warned_idx)),
            opt_text(s.resolved_by.as_deref()),
            opt_text(s.resolution_reason.as_deref()),
            opt_int(s.resolved_at),
            opt_int(if resolved_own { None } else { s.resolved_idx }),
            opt_int(s.grant_expires_at),
            opt_int(s.grant_used_at),
            opt_text(s.grant_decision_id.as_deref()),
            opt_int(own(last::GRANT_USED, s.grant_idx)),
            opt_text(s.token_claims.as_deref()),
            opt_text(s.token_id.as_deref()),
            opt_int(s.token_expires_at),
            opt_text(s.reservation_id.as_deref()),
            lexecon_ledger::SideValue::Null,
            lexecon_ledger::SideValue::Null,
        ],
    }
}

/// A claim on an escalation's state row, held while one transition is recorded.
#[derive(Debug)]
pub(crate) struct EscClaim {
    pub(crate) row: EscRow,
    pub(crate) owner: String,
}

impl Engine {
    /// Claims escalation `id` and reads it under the claim; `None` when another call
    /// holds it.
    pub(crate) async fn claim_escalation(&self, id: &str) -> Result<Option<EscClaim>, EngineError> {
        let store = store::on(&self.db);
        let now = self.clock.now().unix_micros();
        let owner = claim_owner();
        if !store
            .claim(
                Claimable::Escalation,
                id,
                now,
                now - CLAIM_LEASE_MICROS,
                &owner,
            )
            .await?
        {
            return Ok(None);
        }
        match store.escalation(id).await {
            Ok(Some(row)) => Ok(Some(EscClaim { row, owner })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.release_claim(id, &owner).await;
                Err(e)
            }
        }
    }

    /// Gives a claim back (its transition was not recorded).
    pub(crate) async fn release_claim(&self, id: &str, owner: &str) {
        if let Err(e) = store::on(&self.db)
            .unclaim(Claimable::Escalation, id, owner)
            .await
        {
            tracing::warn!(error = %e, escalation_id = id, "could not clear an escalation claim; it expires");
        }
    }

    /// Claims the grant of an approved escalation of `principal_key` for this request,
    /// if one can be used at `now` (path b).
    pub(crate) async fn claim_grant(
        &self,
        principal_key: &str,
        req: &ActionRequest,
        now: Timestamp,
    ) -> Result<Option<EscClaim>, EngineError> {
        let fp = grant_fingerprint(req);
        let store = store::on(&self.db);
        let Some(id) = store
            .grant_for(principal_key, &fp, now.unix_micros())
            .await?
        else {
            return Ok(None);
        };
        let Some(claim) = self.claim_escalation(&id).await? else {
            return Ok(None);
        };
        if grant_usable(&claim.row, now) {
            return Ok(Some(claim));
        }
        self.release_claim(&id, &claim.owner).await;
        Ok(None)
    }

    /// The `escalation_grant_used` entry and state row of a grant used by decision
    /// `decision_id` (path b) or fetched (path a, with `token_claims`).
    pub(crate) fn grant_used_entry(
        &self,
        claim: &EscClaim,
        used: GrantUse<'_>,
    ) -> Result<GroupEntry, EngineError> {
        let now = self.clock.now();
        let row = &claim.row;
        let mut s = effective(&row.state);
        s.grant_used_at = Some(now.unix_micros());
        s.grant_decision_id = used.decision_id.map(|d| d.to_string());
        s.token_claims = used.token_claims.map(str::to_owned);
        s.token_id = used.token.map(|c| c.token_id.to_string());
        s.token_expires_at = used.token.map(|c| c.expires_at.unix_micros());
        s.reservation_id = used.reservation_id.map(str::to_owned);
        let payload = json!({
            "event": "escalation_grant_used",
            "by": used.by,
            "escalation_id": row.escalation_id,
            "decision_id": row.decision_id,
            "used_by_decision_id": used.decision_id,
            "outcome": used.outcome,
            "token": used.token.map(|c| json!({
                "token_id": c.token_id,
                "key_id": c.key_id,
                "expires_at": c.expires_at,
            })),
            "reservation_id": used.reservation_id,
            "at": now,
        });
        let bytes = serde_json::to_vec(&payload)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode an oversight entry: {e}")))?;
        Ok((
            EntryKind::Oversight,
            bytes,
            vec![state_row(&row.escalation_id, &s, last::GRANT_USED)],
        ))
    }

    /// Mints the claims of a token for the escalated request of `row` (path a).
    pub(crate) fn grant_claims(&self, row: &EscRow) -> Result<Claims, EngineError> {
        let req: ActionRequest = serde_json::from_str(&row.request_json).map_err(|e| {
            EngineError::Corrupt(format!(
                "escalation {} keeps an unreadable request: {e}",
                row.escalation_id
            ))
        })?;
        let decision_id: DecisionId = row.decision_id.parse().map_err(|_| {
            EngineError::Corrupt(format!(
                "escalation {} names an unreadable decision id",
                row.escalation_id
            ))
        })?;
        let policy_hash: [u8; 32] = row.policy_hash.as_slice().try_into().map_err(|_| {
            EngineError::Corrupt(format!(
                "escalation {} keeps a policy hash that is not 32 bytes",
                row.escalation_id
            ))
        })?;
        let keys = self.key_ring();
        Claims::builder(decision_id, req.actor, req.action, policy_hash)
            .tool(req.tool)
            .audience(
                (!self.config.tokens.audience.is_empty())
                    .then(|| self.config.tokens.audience.clone()),
            )
            .ttl_secs(self.config.tokens.ttl_secs)
            .build(
                keys.active().key_id(),
                self.clock.now(),
                rand::thread_rng().r#gen(),
            )
            .map_err(|e| EngineError::Keys(e.to_string()))
    }
}

/// How a grant is used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrantUse<'a> {
    /// `Caller::ledger_name` of the asking principal.
    pub(crate) by: &'a str,
    /// The new decision that used it (path b).
    pub(crate) decision_id: Option<&'a DecisionId>,
    /// That decision's outcome (a budget refusal spends the grant), or APPROVED (path a).
    pub(crate) outcome: Outcome,
    /// The token's claims.
    pub(crate) token: Option<&'a Claims>,
    /// The claims kept to sign the same token again (path a).
    pub(crate) token_claims: Option<&'a str>,
    /// The budget reservation made.
    pub(crate) reservation_id: Option<&'a str>,
}

/// Whether the grant of `row` can be used at `now`.
pub(crate) fn grant_usable(row: &EscRow, now: Timestamp) -> bool {
    row.state.state == "approved"
        && row.state.grant_used_at.is_none()
        && row.state.last_event != last::GRANT_LAPSED
        && row
            .state
            .grant_expires_at
            .is_some_and(|t| now.unix_micros() < t)
}
