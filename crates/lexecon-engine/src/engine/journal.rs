//! The decision index: one side row per decision entry (migration 4004), written in the
//! entry's own transaction (engineering.md, "The ledger write seam"), so the index never
//! disagrees with the ledger, also after a crash.
//!
//! The row is built from the entry's payload bytes, the same way for a live decision
//! (`decide.rs::record`) and for the backfill of a ledger written before the index
//! (`audit/backfill.rs`): what an auditor reads in the payload is what the index holds.

use std::borrow::Cow;

use lexecon_core::{DecisionId, Outcome, Timestamp};
use lexecon_ledger::{SideRow, SideTable, SideType, SideValue};
use serde::Deserialize;

use super::EngineError;
use crate::decision::Decision;

/// `engine_decision_index`; the store prepends `idx`.
pub(crate) static DECISION_INDEX: SideTable = SideTable {
    name: "engine_decision_index",
    columns: &[
        ("decision_id", SideType::Text),
        ("decided_at", SideType::Int),
        ("principal", SideType::Text),
        ("actor", SideType::Text),
        ("action", SideType::Text),
        ("tool", SideType::Text),
        ("outcome", SideType::Int),
        ("risk_score", SideType::Int),
        ("policy_hash", SideType::Bytes),
        ("reasons", SideType::Text),
        ("escalation_id", SideType::Text),
        ("override_id", SideType::Text),
    ],
    // A backfill racing a live append cannot write the same idx twice (live rows are
    // only for entries above the backfill's range), but the clause keeps a retried
    // backfill page harmless.
    on_conflict: "ON CONFLICT DO NOTHING",
};

/// The stored code of an outcome (the protobuf `Outcome` numbers).
pub(crate) fn outcome_code(o: Outcome) -> i64 {
    match o {
        Outcome::Approved => 1,
        Outcome::Denied => 2,
        Outcome::Escalated => 3,
    }
}

/// The outcome of a stored code.
pub(crate) fn outcome_of(code: i64) -> Result<Outcome, EngineError> {
    match code {
        1 => Ok(Outcome::Approved),
        2 => Ok(Outcome::Denied),
        3 => Ok(Outcome::Escalated),
        other => Err(EngineError::Corrupt(format!(
            "engine_decision_index holds the outcome code {other}"
        ))),
    }
}

#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default)]
    tool: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RiskView {
    score: u8,
}

#[derive(Deserialize)]
struct PolicyView<'a> {
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

#[derive(Deserialize)]
struct EscalationView {
    escalation_id: String,
}

/// The fields of a decision payload the index keeps (everything else is skipped).
#[derive(Deserialize)]
struct PayloadView<'a> {
    #[serde(borrow)]
    decision_id: Cow<'a, str>,
    #[serde(borrow)]
    principal: Cow<'a, str>,
    #[serde(borrow)]
    request: RequestView<'a>,
    outcome: Outcome,
    #[serde(default)]
    reasons: Vec<String>,
    risk: RiskView,
    #[serde(borrow)]
    policy: PolicyView<'a>,
    #[serde(default)]
    escalation: Option<EscalationView>,
    #[serde(default)]
    grant_escalation_id: Option<String>,
    #[serde(default)]
    override_id: Option<String>,
}

/// What the index holds of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexRow {
    pub(crate) decision_id: String,
    pub(crate) decided_at: Timestamp,
    pub(crate) principal: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) tool: Option<String>,
    pub(crate) outcome: Outcome,
    pub(crate) risk_score: u8,
    pub(crate) policy_hash: Vec<u8>,
    pub(crate) reasons: Vec<String>,
    pub(crate) escalation_id: Option<String>,
    pub(crate) override_id: Option<String>,
}

impl IndexRow {
    /// Reads a decision payload. `decided_at` is the decision's time when known (a live
    /// decision); `None` takes the millisecond its `decision_id` carries (the backfill).
    pub(crate) fn from_payload(
        payload: &[u8],
        decided_at: Option<Timestamp>,
    ) -> Result<IndexRow, EngineError> {
        let v: PayloadView<'_> = serde_json::from_slice(payload).map_err(|e| {
            EngineError::Corrupt(format!("a decision payload is not readable: {e}"))
        })?;
        let decided_at = match decided_at {
            Some(t) => t,
            None => v
                .decision_id
                .parse::<DecisionId>()
                .map_err(|e| EngineError::Corrupt(format!("a decision payload's id: {e}")))?
                .timestamp(),
        };
        let policy_hash = unhex(&v.policy.hash).ok_or_else(|| {
            EngineError::Corrupt("a decision payload's policy.hash is not hex".into())
        })?;
        Ok(IndexRow {
            decision_id: v.decision_id.into_owned(),
            decided_at,
            principal: v.principal.into_owned(),
            actor: v.request.actor.into_owned(),
            action: v.request.action.into_owned(),
            tool: v.request.tool.map(Cow::into_owned),
            outcome: v.outcome,
            risk_score: v.risk.score,
            policy_hash,
            reasons: v.reasons,
            escalation_id: v
                .escalation
                .map(|e| e.escalation_id)
                .or(v.grant_escalation_id),
            override_id: v.override_id,
        })
    }

    /// The side row.
    pub(crate) fn side_row(self) -> SideRow {
        let text = |s: Option<String>| s.map_or(SideValue::Null, SideValue::Text);
        let reasons = serde_json::to_string(&self.reasons).unwrap_or_else(|_| "[]".into());
        SideRow {
            table: &DECISION_INDEX,
            values: vec![
                SideValue::Text(self.decision_id),
                SideValue::Int(self.decided_at.unix_micros()),
                SideValue::Text(self.principal),
                SideValue::Text(self.actor),
                SideValue::Text(self.action),
                text(self.tool),
                SideValue::Int(outcome_code(self.outcome)),
                SideValue::Int(i64::from(self.risk_score)),
                SideValue::Bytes(self.policy_hash),
                SideValue::Text(reasons),
                text(self.escalation_id),
                text(self.override_id),
            ],
        }
    }
}

/// Lowercase or uppercase hex to bytes.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            match pair {
                [hi, lo] => Some(u8::try_from(digit(*hi)? * 16 + digit(*lo)?).ok()?),
                _ => None,
            }
        })
        .collect()
}

/// The index row of a decision about to be appended with `payload`. The decision's own
/// fields win where it has them (its time to the microsecond, its escalation and
/// override).
pub(crate) fn decision_index_row(
    decision: &Decision,
    payload: &[u8],
) -> Result<SideRow, EngineError> {
    let mut row = IndexRow::from_payload(payload, Some(decision.decided_at))?;
    if let Some(id) = &decision.escalation_id {
        row.escalation_id = Some(id.to_string());
    }
    if let Some(id) = &decision.override_id {
        row.override_id = Some(id.to_string());
    }
    Ok(row.side_row())
}
