//! A decision as the engine returns it and records it.

use lexecon_core::{
    DecisionId, EscalationId, Outcome, OverrideId, PolicyMode, RiskLevel, Timestamp,
};
use serde::{Deserialize, Serialize};

/// One factor of a risk dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorView {
    /// The rule that fired.
    pub rule_id: String,
    /// The points it added.
    pub points: u8,
    /// What it means.
    pub description: String,
}

/// One risk dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionView {
    /// security, privacy, compliance, operational, reputational or financial.
    pub dimension: String,
    /// 0..=100.
    pub score: u8,
    /// The rules behind the score.
    pub factors: Vec<FactorView>,
}

/// The decision, everything a caller gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// `dec_` + ULID.
    pub decision_id: DecisionId,
    /// The caller's idempotency key, if any.
    pub request_id: Option<String>,
    /// The actor decided for (the binding's literal actor when the request left it empty).
    #[serde(default)]
    pub actor: String,
    /// What was decided.
    pub outcome: Outcome,
    /// The effective mode.
    pub effective_mode: PolicyMode,
    /// One human sentence.
    pub reasoning: String,
    /// Deciding relation ids or limit ids.
    pub reasons: Vec<String>,
    /// The risk level.
    pub risk_level: RiskLevel,
    /// The overall risk score.
    pub risk_score: u8,
    /// The six dimensions, in the order security, privacy, compliance, operational,
    /// reputational, financial.
    pub risk_dimensions: Vec<DimensionView>,
    /// The capability token, when approved.
    pub capability_token: Option<String>,
    /// The token's expiry, when approved.
    pub token_expires_at: Option<Timestamp>,
    /// The budget reservation, for an approved LLM call.
    pub reservation_id: Option<String>,
    /// Soft-limit warnings this decision's budget check raised.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The decision's ledger index.
    pub ledger_index: u64,
    /// Its leaf hash.
    pub ledger_leaf_hash: [u8; 32],
    /// The deciding policy's version hash.
    pub policy_version_hash: [u8; 32],
    /// When it was decided.
    pub decided_at: Timestamp,
    /// The escalation an ESCALATED decision created, or whose grant an APPROVED one used.
    #[serde(default)]
    pub escalation_id: Option<EscalationId>,
    /// The override that decided it, or that matched an escalation it could not decide.
    #[serde(default)]
    pub override_id: Option<OverrideId>,
    /// The escalation's state when this answer was given (ESCALATED decisions; a
    /// retried Decide reads it afresh).
    #[serde(default)]
    pub escalation_state: Option<EscalationState>,
    /// SHA-256 of the request, for decisions with a `request_id` (kept beside the
    /// idempotency row, not in it).
    #[serde(skip)]
    pub fingerprint: Vec<u8>,
}

/// The state of an escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationState {
    /// Waiting for people.
    Pending,
    /// Approved (by two distinct people for a critical one under the two-person rule).
    Approved,
    /// Denied by one person.
    Denied,
    /// Nobody resolved it before `due_at`; the action stays refused.
    Expired,
    /// Cancelled because the asking API key was revoked.
    Cancelled,
}

impl EscalationState {
    /// Every state.
    pub const ALL: [EscalationState; 5] = [
        EscalationState::Pending,
        EscalationState::Approved,
        EscalationState::Denied,
        EscalationState::Expired,
        EscalationState::Cancelled,
    ];

    /// The name in payloads and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationState::Pending => "pending",
            EscalationState::Approved => "approved",
            EscalationState::Denied => "denied",
            EscalationState::Expired => "expired",
            EscalationState::Cancelled => "cancelled",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<EscalationState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
