//! Redaction (contract §8, GDPR Art. 17): an entry's payload is erased while its leaf
//! stays, so the ledger and every proof still verify. In one database transaction: the
//! legal-hold check (active holds read inside the transaction), the payload tombstone,
//! and the erasure of every copy the engine keeps of the entry's fields. Then a
//! `compliance` entry records who redacted what and why (never the erased data).

use lexecon_core::HoldId;
use lexecon_ledger::{EntryKind, LedgerError, RedactErase, RedactGuard, RedactPlan, SideValue};
use serde_json::json;

use super::holds::{ACTIVE_HOLDS_GUARD, HeldKeys, covering_hold};
use super::{Redaction, ops, required_text, store, to_i64};
use crate::engine::{Caller, Engine, EngineError};

/// The decision index keeps `idx`, `decision_id`, `decided_at` and `outcome`; filters on
/// the erased columns never match a NULL.
const ERASE_DECISION_INDEX: &str = "UPDATE engine_decision_index SET principal = NULL, \
     actor = NULL, action = NULL, tool = NULL, risk_score = NULL, policy_hash = NULL, \
     reasons = NULL, escalation_id = NULL, override_id = NULL WHERE idx = $1";

/// The stored response of the decision, replaced by its erased form ($1), its token
/// claims dropped.
const ERASE_IDEMPOTENCY: &str = "UPDATE engine_idempotency SET decision = $1, token_claims = NULL \
     WHERE principal = $2 AND request_id = $3";

/// The escalation a decision created: the request and who asked.
const ERASE_ESCALATION: &str = "UPDATE engine_escalations SET principal_name = '', actor = '', \
     action = '', tool = NULL, request_json = 'null' WHERE decision_id = $1";

/// The claims of a grant's token (they repeat the request).
const ERASE_ESCALATION_TOKEN: &str = "UPDATE engine_escalation_state SET token_claims = NULL \
     WHERE escalation_id IN (SELECT escalation_id FROM engine_escalations WHERE decision_id = $1)";

/// An override's globs and justification (the guard makes sure it is no longer in force).
const ERASE_OVERRIDE: &str = "UPDATE engine_overrides SET actor_glob = '', action_glob = '', \
     tool_glob = '', justification = '' WHERE idx = $1";

const ERASE_OVERRIDE_REVOCATION: &str =
    "UPDATE engine_override_revocations SET reason = '' WHERE idx = $1";

const ERASE_APPROVAL: &str = "UPDATE engine_escalation_approvals SET reason = '' WHERE idx = $1";

const ERASE_RESOLUTION: &str =
    "UPDATE engine_escalation_state SET resolution_reason = NULL WHERE resolved_idx = $1";

/// A halt's reason; its actor glob stays, as it still decides what is halted.
const ERASE_HALT: &str = "UPDATE engine_halts SET reason = '' WHERE idx = $1";

const ERASE_HALT_END: &str = "UPDATE engine_halt_ends SET reason = '' WHERE idx = $1";

const ERASE_REVOCATION: &str = "UPDATE engine_revocations SET reason = '' WHERE ledger_index = $1";

/// The content of an evidence artifact (its hash, type and size stay; VerifyEvidence
/// then answers `erased`).
const ERASE_EVIDENCE_CONTENT: &str = "DELETE FROM engine_evidence_chunks WHERE evidence_id IN \
     (SELECT evidence_id FROM engine_evidence WHERE idx = $1)";

const ERASE_EVIDENCE_TITLE: &str = "UPDATE engine_evidence SET title = '' WHERE idx = $1";

/// The arguments and result a completion of a forwarded MCP call recorded (table of
/// migration 4010).
const ERASE_MCP_COMPLETION: &str =
    "UPDATE engine_mcp_completions SET payload_json = NULL WHERE idx = $1";

/// An escalation of the decision still waiting for people, or with a grant not used yet.
const OPEN_ESCALATION_GUARD: &str = "SELECT e.escalation_id, s.state, \
     CAST(s.grant_used_at AS TEXT), CAST(s.grant_expires_at AS TEXT) \
     FROM engine_escalations e JOIN engine_escalation_state s \
     ON s.escalation_id = e.escalation_id WHERE e.decision_id = $1";

/// An override created by the entry, still in force at $2.
const ACTIVE_OVERRIDE_GUARD: &str = "SELECT o.override_id FROM engine_overrides o \
     WHERE o.idx = $1 AND o.expires_at > $2 AND NOT EXISTS \
     (SELECT 1 FROM engine_override_revocations r WHERE r.override_id = o.override_id)";

fn erase(name: &'static str, sql: &'static str, binds: Vec<SideValue>) -> RedactErase {
    RedactErase { name, sql, binds }
}

/// The decision as its idempotency row keeps it, with every field of the request and
/// of the evaluation erased: what a retried Decide then returns (same decision id,
/// outcome, ledger index and time).
fn erased_decision(stored: &str) -> Result<String, EngineError> {
    let mut v: serde_json::Value = serde_json::from_str(stored)
        .map_err(|e| EngineError::Corrupt(format!("stored decision is unreadable: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        for (field, value) in [
            ("actor", json!("")),
            ("reasoning", json!("")),
            ("reasons", json!([])),
            ("risk_score", json!(0)),
            ("risk_dimensions", json!([])),
            ("capability_token", json!(null)),
            ("token_expires_at", json!(null)),
            ("reservation_id", json!(null)),
            ("warnings", json!([])),
            ("escalation_id", json!(null)),
            ("override_id", json!(null)),
            ("escalation_state", json!(null)),
        ] {
            if o.contains_key(field) {
                o.insert(field.to_owned(), value);
            }
        }
    }
    serde_json::to_string(&v)
        .map_err(|e| EngineError::Corrupt(format!("cannot encode the erased decision: {e}")))
}

impl Engine {
    /// Erases entry `index`'s payload and every copy the engine keeps of its fields,
    /// unless a legal hold covers it (FAILED_PRECONDITION naming the hold). Recorded as
    /// an `entry_redacted` compliance entry naming the caller and the reason.
    pub async fn redact_entry(
        &self,
        caller: &Caller,
        index: u64,
        reason: &str,
    ) -> Result<Redaction, EngineError> {
        self.authorize(caller, ops::REDACT)?;
        required_text("reason", reason)?;
        let entry =
            self.ledger.entry(index).await?.ok_or_else(|| {
                EngineError::NotFound(format!("no ledger entry at index {index}"))
            })?;
        if entry.tombstone.is_some() {
            return Err(EngineError::FailedPrecondition(format!(
                "entry {index} is already redacted"
            )));
        }
        let kind = entry
            .decode_leaf()
            .map_err(|e| EngineError::Corrupt(format!("entry {index}: {e}")))?
            .kind;
        if kind == EntryKind::Compliance {
            return Err(EngineError::FailedPrecondition(format!(
                "entry {index} is a compliance record (a legal hold, an intervention, a \
                 redaction or a verification); compliance records cannot be redacted"
            )));
        }
        let payload = entry.payload_json();
        let keys = HeldKeys::of(index, payload.as_ref());
        let plan = self
            .redact_plan(index, kind, payload.as_ref(), &keys)
            .await?;
        let by = caller.ledger_name();
        let erased = self
            .ledger
            .redact_guarded(index, &by, reason, &plan)
            .await
            .map_err(|e| match e {
                LedgerError::Refused(why) => EngineError::FailedPrecondition(why),
                LedgerError::AlreadyRedacted(i) => {
                    EngineError::FailedPrecondition(format!("entry {i} is already redacted"))
                }
                LedgerError::NoSuchEntry(i) => {
                    EngineError::NotFound(format!("no ledger entry at index {i}"))
                }
                other => EngineError::Ledger(other),
            })?;
        let mut names = vec!["payload".to_owned()];
        names.extend(erased.iter().map(|s| (*s).to_owned()));
        let record = json!({
            "event": "entry_redacted",
            "by": by,
            "index": index,
            "kind": kind.to_string(),
            "reason": reason,
            "erased": names,
            "at": self.clock.now(),
        });
        let ledger_index = self.append_compliance(&record, Vec::new()).await?;
        Ok(Redaction {
            index,
            ledger_index,
            erased: names,
        })
    }

    /// The checks and erasures of redacting entry `index` of `kind`.
    async fn redact_plan(
        &self,
        index: u64,
        kind: EntryKind,
        payload: Option<&serde_json::Value>,
        keys: &HeldKeys,
    ) -> Result<RedactPlan, EngineError> {
        let idx = || vec![SideValue::Int(to_i64(index))];
        let held_keys = keys.clone();
        let mut plan = RedactPlan {
            guards: vec![RedactGuard {
                query: ACTIVE_HOLDS_GUARD,
                binds: Vec::new(),
                check: Box::new(move |rows| match covering_hold(rows, &held_keys) {
                    None => Ok(()),
                    Some(hold) => Err(held_message(held_keys.index, &hold)),
                }),
            }],
            erase: Vec::new(),
        };
        let str_field = |f: &str| {
            payload
                .and_then(|p| p.get(f))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        match kind {
            EntryKind::Decision => {
                plan.erase
                    .push(erase("decision_index", ERASE_DECISION_INDEX, idx()));
                if let Some(decision_id) = str_field("decision_id") {
                    let now = self.clock.now().unix_micros();
                    let id = decision_id.clone();
                    plan.guards.push(RedactGuard {
                        query: OPEN_ESCALATION_GUARD,
                        binds: vec![SideValue::Text(decision_id.clone())],
                        check: Box::new(move |rows| open_escalation(rows, &id, now)),
                    });
                    plan.erase.push(erase(
                        "escalation",
                        ERASE_ESCALATION,
                        vec![SideValue::Text(decision_id.clone())],
                    ));
                    plan.erase.push(erase(
                        "escalation",
                        ERASE_ESCALATION_TOKEN,
                        vec![SideValue::Text(decision_id.clone())],
                    ));
                    if let Some(request_id) = str_field("request_id") {
                        let found = store::on(&self.db)
                            .idempotency_of(&request_id, &decision_id)
                            .await?;
                        if let Some((principal, stored)) = found {
                            plan.erase.push(erase(
                                "idempotency",
                                ERASE_IDEMPOTENCY,
                                vec![
                                    SideValue::Text(erased_decision(&stored)?),
                                    SideValue::Text(principal),
                                    SideValue::Text(request_id),
                                ],
                            ));
                        }
                    }
                }
            }
            EntryKind::Oversight => {
                let now = self.clock.now().unix_micros();
                plan.guards.push(RedactGuard {
                    query: ACTIVE_OVERRIDE_GUARD,
                    binds: vec![SideValue::Int(to_i64(index)), SideValue::Int(now)],
                    check: Box::new(move |rows| match rows.first().and_then(|r| r.first()) {
                        None => Ok(()),
                        Some(id) => Err(format!(
                            "entry {index} created override {} which is still in force: \
                             revoke it first (lexecon override revoke {})",
                            id.as_deref().unwrap_or("?"),
                            id.as_deref().unwrap_or("?"),
                        )),
                    }),
                });
                for (name, sql) in [
                    ("override", ERASE_OVERRIDE),
                    ("override", ERASE_OVERRIDE_REVOCATION),
                    ("escalation", ERASE_APPROVAL),
                    ("escalation", ERASE_RESOLUTION),
                    ("halt", ERASE_HALT),
                    ("halt", ERASE_HALT_END),
                ] {
                    plan.erase.push(erase(name, sql, idx()));
                }
            }
            EntryKind::EvidenceRegistered => {
                plan.erase
                    .push(erase("evidence_content", ERASE_EVIDENCE_CONTENT, idx()));
                plan.erase
                    .push(erase("evidence_content", ERASE_EVIDENCE_TITLE, idx()));
            }
            EntryKind::TokenRevoked => {
                plan.erase
                    .push(erase("revocation", ERASE_REVOCATION, idx()));
            }
            EntryKind::McpCompletion => {
                plan.erase
                    .push(erase("mcp_completion", ERASE_MCP_COMPLETION, idx()));
            }
            _ => {}
        }
        Ok(plan)
    }
}

/// The refusal naming the hold that covers entry `index`.
fn held_message(index: u64, hold_id: &str) -> String {
    let id = hold_id
        .parse::<HoldId>()
        .map_or_else(|_| hold_id.to_owned(), |h| h.to_string());
    format!(
        "entry {index} is under legal hold {id}: release it first (lexecon compliance hold \
         release {id} --reason ...)"
    )
}

/// Refuses while the decision's escalation waits for people or holds an unused grant.
fn open_escalation(
    rows: &lexecon_ledger::GuardRows,
    decision_id: &str,
    now: i64,
) -> Result<(), String> {
    for row in rows {
        let col = |i: usize| row.get(i).cloned().flatten();
        let id = col(0).unwrap_or_default();
        let state = col(1).unwrap_or_default();
        let used = col(2).is_some();
        let grant_open = col(3)
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|expires| expires > now);
        if state == "pending" {
            return Err(format!(
                "decision {decision_id} has escalation {id} pending: resolve it first \
                 (lexecon escalations approve|deny {id} --reason ...)"
            ));
        }
        if state == "approved" && !used && grant_open {
            return Err(format!(
                "decision {decision_id} has escalation {id} approved with a grant not used \
                 yet: redact it once the grant is used or lapses"
            ));
        }
    }
    Ok(())
}
