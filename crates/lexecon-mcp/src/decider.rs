//! Who decides: the embedded engine or a Lexecon server. The relay is generic over
//! [`Decider`], so the same code serves both, and tests use a fake.

use std::collections::BTreeMap;

/// One decision the gateway asks for (the fields of a `Decide`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRequest {
    /// The actor; empty means the API key's one bound actor (`--server` only).
    pub actor: String,
    /// The proposed action (`call:TOOL` unless a config row maps it).
    pub action: String,
    /// `NAME/TOOL`.
    pub tool: String,
    /// From `params._meta["lexecon/intent"]`, else empty.
    pub user_intent: String,
    /// From the config row.
    pub data_classes: Vec<String>,
    /// 0 = none, else 1..=5.
    pub risk_level: u32,
    /// `permissive`, `strict` or `paranoid`.
    pub mode: Option<String>,
    /// `mcp.server`, `mcp.args_sha256` and the config row's `context_args`.
    pub context: BTreeMap<String, String>,
    /// Hex SHA-256 of (session, canonical JSON-RPC id); empty = no idempotency.
    pub request_id: String,
}

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// May go ahead.
    Approved,
    /// Refused.
    Denied,
    /// Waits for people.
    Escalated,
}

/// The state of an escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationState {
    /// Waiting for people.
    Pending,
    /// Approved: a grant exists (or was used).
    Approved,
    /// Denied by a person.
    Denied,
    /// Past its deadline.
    Expired,
    /// Cancelled (its key was revoked).
    Cancelled,
}

impl EscalationState {
    /// The state in lower case, as messages show it.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationState::Pending => "pending",
            EscalationState::Approved => "approved",
            EscalationState::Denied => "denied",
            EscalationState::Expired => "expired",
            EscalationState::Cancelled => "cancelled",
        }
    }
}

/// A decision as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionAnswer {
    /// `dec_` + ULID.
    pub decision_id: String,
    /// The request id echoed.
    pub request_id: String,
    /// What was decided.
    pub outcome: Outcome,
    /// One human sentence.
    pub reasoning: String,
    /// Ids of the deciding relations, limits, halts or overrides.
    pub reasons: Vec<String>,
    /// The capability token, when there is one.
    pub capability_token: Option<String>,
    /// The escalation created (or whose grant was used).
    pub escalation_id: Option<String>,
    /// The escalation's state at answer time.
    pub escalation_state: Option<EscalationState>,
}

/// An escalation as polled while a call waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationAnswer {
    /// `esc_` + ULID.
    pub escalation_id: String,
    /// The escalated decision.
    pub decision_id: String,
    /// Its state.
    pub state: EscalationState,
    /// The capability token, once the grant is used (shown to the asker only).
    pub capability_token: Option<String>,
}

/// A forwarded call's completion, for its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The decision that let the call through.
    pub decision_id: String,
    /// `result.isError`, or a JSON-RPC error.
    pub is_error: bool,
    /// From forwarding to the upstream's answer.
    pub duration_us: u64,
    /// SHA-256 of the canonical JSON of the `result` (or `error`) member.
    pub result_sha256: [u8; 32],
    /// The arguments, with `mcp.record_payloads` only.
    pub arguments_json: Option<String>,
    /// The result, with `mcp.record_payloads` only.
    pub result_json: Option<String>,
}

/// One tool to check for `tools/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `NAME/TOOL`.
    pub tool: String,
    /// The action a call would be decided as.
    pub action: String,
    /// The row's data classes.
    pub data_classes: Vec<String>,
    /// The row's risk level (0 = none).
    pub risk_level: u32,
    /// The row's mode.
    pub mode: Option<String>,
    /// Only `mcp.server`.
    pub context: BTreeMap<String, String>,
}

/// No decision could be had; the message says why. The gateway fails closed on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeciderError(pub String);

/// Makes decisions for the gateway, records completions, and says which tools are
/// always denied.
#[async_trait::async_trait]
pub trait Decider: Send + Sync + 'static {
    /// One `Decide`.
    async fn decide(&self, request: &DecisionRequest) -> Result<DecisionAnswer, DeciderError>;
    /// One `GetEscalation` by the asking principal (which uses an approved grant).
    async fn escalation(&self, escalation_id: &str) -> Result<EscalationAnswer, DeciderError>;
    /// One completion entry.
    async fn record_completion(&self, completion: Completion) -> Result<(), DeciderError>;
    /// For each probe, whether the policy denies it for `actor` whatever the context.
    async fn check_tools(&self, actor: &str, probes: &[Probe]) -> Result<Vec<bool>, DeciderError>;
}
