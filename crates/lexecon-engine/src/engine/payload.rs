//! A decision's ledger payload, serialized directly (no intermediate JSON tree: this
//! runs for every decision), and the views of its risk dimensions.

use lexecon_capability::Claims;
use lexecon_core::{
    ActionRequest, DecisionId, EscalationId, Outcome, OverrideId, Timestamp, TokenId,
};
use lexecon_policy::Evaluation;
use lexecon_risk::Assessment;

use super::EngineError;
use super::oversight::EscalationPriority;
use crate::decision::{DimensionView, FactorView};
use crate::policy::ActivePolicy;

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn dimension_views(a: &Assessment) -> Vec<DimensionView> {
    a.dimensions
        .iter()
        .map(|d| DimensionView {
            dimension: d.dimension.to_string(),
            score: d.score,
            factors: d
                .factors
                .iter()
                .map(|f| FactorView {
                    rule_id: f.rule_id.to_string(),
                    points: f.points,
                    description: f.description.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// A decision's ledger payload, serialized directly (no intermediate JSON tree: this
/// runs for every decision). The capability token is a bearer credential and never
/// enters the ledger; its id does.
#[derive(serde::Serialize)]
struct DecisionPayload<'a> {
    decision_id: &'a DecisionId,
    request_id: Option<&'a str>,
    principal: &'a str,
    request: &'a ActionRequest,
    outcome: Outcome,
    effective_mode: lexecon_core::PolicyMode,
    reasons: &'a [String],
    reasoning: &'a str,
    matched_terms: &'a [String],
    risk: RiskPayload,
    policy: PolicyPayload<'a>,
    token: Option<TokenPayload<'a>>,
    reservation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    escalation: Option<EscalationPayload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    override_id: Option<&'a OverrideId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_escalation_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct EscalationPayload<'a> {
    escalation_id: &'a EscalationId,
    priority: EscalationPriority,
    due_at: Timestamp,
}

/// What oversight adds to a decision's payload; absent fields are left out, so the
/// payload of a decision oversight did not touch is as before.
#[derive(Debug, Default)]
pub(crate) struct OversightFields<'a> {
    /// The escalation an ESCALATED decision created: id, priority, due_at.
    pub(crate) escalation: Option<(&'a EscalationId, EscalationPriority, Timestamp)>,
    /// The override that decided it (or matched an escalation it could not decide).
    pub(crate) override_id: Option<&'a OverrideId>,
    /// The escalation whose grant this decision used.
    pub(crate) grant_escalation_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct RiskPayload {
    score: u8,
    level: lexecon_core::RiskLevel,
    dimensions: DimensionScores,
}

#[derive(serde::Serialize)]
struct DimensionScores {
    security: u8,
    privacy: u8,
    compliance: u8,
    operational: u8,
    reputational: u8,
    financial: u8,
}

#[derive(serde::Serialize)]
struct PolicyPayload<'a> {
    name: &'a str,
    version: &'a str,
    hash: String,
}

#[derive(serde::Serialize)]
struct TokenPayload<'a> {
    token_id: &'a TokenId,
    key_id: &'a str,
    expires_at: Timestamp,
}

#[allow(
    clippy::too_many_arguments,
    reason = "one payload field per pipeline step"
)]
pub(crate) fn decision_payload(
    principal: &str,
    decision_id: &DecisionId,
    request_id: Option<&str>,
    req: &ActionRequest,
    eval: &Evaluation,
    (outcome, reasons, reasoning): (Outcome, &[String], &str),
    risk: &Assessment,
    policy: &ActivePolicy,
    token: Option<&Claims>,
    reservation_id: Option<&str>,
    oversight: &OversightFields<'_>,
) -> Result<Vec<u8>, EngineError> {
    let d = &risk.dimensions;
    let payload = DecisionPayload {
        decision_id,
        request_id,
        principal,
        request: req,
        outcome,
        effective_mode: eval.mode,
        reasons,
        reasoning,
        matched_terms: &eval.matched_terms,
        risk: RiskPayload {
            score: risk.score,
            level: risk.level,
            dimensions: DimensionScores {
                security: d.security.score,
                privacy: d.privacy.score,
                compliance: d.compliance.score,
                operational: d.operational.score,
                reputational: d.reputational.score,
                financial: d.financial.score,
            },
        },
        policy: PolicyPayload {
            name: policy.compiled.name(),
            version: policy.compiled.version(),
            hash: hex(&policy.compiled.hash()),
        },
        token: token.map(|c| TokenPayload {
            token_id: &c.token_id,
            key_id: &c.key_id,
            expires_at: c.expires_at,
        }),
        reservation_id,
        escalation: oversight
            .escalation
            .map(|(escalation_id, priority, due_at)| EscalationPayload {
                escalation_id,
                priority,
                due_at,
            }),
        override_id: oversight.override_id,
        grant_escalation_id: oversight.grant_escalation_id,
    };
    serde_json::to_vec(&payload)
        .map_err(|e| EngineError::InvalidArgument(format!("cannot encode the decision: {e}")))
}
