//! `lexecon decide`: ask a server whether an action may go ahead.

use anyhow::Result;
use lexecon_core::LlmUsage;
use lexecon_proto::v1::decision_service_client::DecisionServiceClient;
use lexecon_proto::v1::{DecideRequest, DecideResponse, Outcome, PolicyMode, RiskLevel};
use serde_json::json;

use super::action::{ActionArgs, ModeArg, decide_request};
use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// `--llm-*`: the LLM call a decided action makes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LlmArgs {
    /// For an LLM call: the model (turns on budget, rate and model-access checks).
    #[arg(long = "llm-model", value_name = "MODEL")]
    pub llm_model: Option<String>,
    /// For an LLM call: the user charged [default: anonymous].
    #[arg(long = "llm-user", value_name = "USER", requires = "llm_model")]
    pub llm_user: Option<String>,
    /// For an LLM call: a role of the user (repeatable).
    #[arg(long = "llm-role", value_name = "ROLE", requires = "llm_model")]
    pub llm_roles: Vec<String>,
    /// For an LLM call: estimated prompt tokens.
    #[arg(
        long = "llm-input-tokens",
        value_name = "N",
        default_value_t = 0,
        requires = "llm_model"
    )]
    pub llm_input_tokens: u64,
    /// For an LLM call: the most completion tokens.
    #[arg(
        long = "llm-max-output-tokens",
        value_name = "N",
        default_value_t = 0,
        requires = "llm_model"
    )]
    pub llm_max_output_tokens: u64,
}

impl LlmArgs {
    fn usage(&self) -> Option<LlmUsage> {
        self.llm_model.as_ref().map(|model| LlmUsage {
            model: model.clone(),
            user_id: self.llm_user.clone(),
            roles: self.llm_roles.clone(),
            estimated_input_tokens: self.llm_input_tokens,
            max_output_tokens: self.llm_max_output_tokens,
        })
    }
}

/// `lexecon decide`.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("actor", |actor| actor.help(
        "Who proposes the action, e.g. ai_agent:customer_service. Leave it out when the \
         API key is bound to exactly one literal actor: an empty actor is sent and the \
         server decides for that actor"
    )),
    after_long_help = "\
Exit codes: 0 approved, or escalated and carrying a capability token (an approved
escalation's grant, fetched by retrying with the same --request-id); 1 denied, or
escalated and waiting for people (the escalation id and state are printed); 2 error (no
server, bad token, bad input).

Examples:
  lexecon decide --actor ai_agent:customer_service --action read:customer_data \\
      --tool database_query --data-class pii --intent 'answer ticket 4711'
  lexecon decide --actor ai_agent:assistant --action llm:chat --tool openai_api \\
      --llm-model gpt-4o-mini --llm-user alice --llm-input-tokens 1200 --llm-max-output-tokens 400 --json"
)]
pub(crate) struct DecideArgs {
    #[command(flatten)]
    pub action: ActionArgs,
    /// Why, in the agent's words (recorded, never matched).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub intent: String,
    #[command(flatten)]
    pub mode: ModeArg,
    /// Idempotency key: the same key from the same caller returns the same decision.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

impl DecideArgs {
    /// The `DecideRequest` these flags ask for.
    pub(crate) fn request(&self) -> DecideRequest {
        let mut input = self.action.input();
        self.intent.clone_into(&mut input.user_intent);
        input.mode = self.mode.mode;
        input.llm = self.llm.usage();
        decide_request(&input, self.request_id.as_deref().unwrap_or_default())
    }
}

pub(crate) fn run_decide(args: &DecideArgs) -> Result<Verdict> {
    let rt = runtime()?;
    let response = rt.block_on(async {
        let (channel, bearer) = args.server.connect().await?;
        let mut client = DecisionServiceClient::new(channel);
        client
            .decide(authed(args.request(), &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let response = response.into_inner();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decision_json(&response))?
        );
    } else {
        print_decision(&response);
    }
    Ok(verdict(&response))
}

/// Exit 0 for an approval, and for an escalated answer that carries a token (the
/// approved escalation's grant, fetched by a retry with the original request_id).
pub(crate) fn verdict(r: &DecideResponse) -> Verdict {
    let carries_token = !r.capability_token.is_empty();
    match r.outcome() {
        Outcome::Approved => Verdict::Yes,
        Outcome::Escalated if carries_token => Verdict::Yes,
        Outcome::Escalated | Outcome::Denied | Outcome::Unspecified => Verdict::No,
    }
}

pub(crate) fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Approved => "approved",
        Outcome::Denied => "denied",
        Outcome::Escalated => "escalated",
        Outcome::Unspecified => "unspecified",
    }
}

fn risk_word(level: RiskLevel) -> &'static str {
    match level {
        RiskLevel::Low => "low",
        RiskLevel::Medium => "medium",
        RiskLevel::High => "high",
        RiskLevel::Critical => "critical",
        RiskLevel::Unspecified => "unspecified",
    }
}

fn mode_word(mode: PolicyMode) -> &'static str {
    match mode {
        PolicyMode::Permissive => "permissive",
        PolicyMode::Strict => "strict",
        PolicyMode::Paranoid => "paranoid",
        PolicyMode::Unspecified => "unspecified",
    }
}

fn rfc3339(ts: Option<&lexecon_proto::prost_types::Timestamp>) -> Option<String> {
    let ts = ts?;
    let micros = ts
        .seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(ts.nanos / 1_000))?;
    Some(lexecon_core::Timestamp::from_unix_micros(micros).to_rfc3339())
}

/// The decision as JSON: enums as words, bytes as hex, times as RFC 3339.
pub(crate) fn decision_json(r: &DecideResponse) -> serde_json::Value {
    let dims = r.risk_dimensions.as_ref().map(|d| {
        let one = |dim: &Option<lexecon_proto::v1::RiskDimension>| {
            dim.as_ref().map(|d| {
                json!({
                    "score": d.score,
                    "factors": d.factors.iter().map(|f| json!({"rule_id": f.rule_id, "points": f.points, "description": f.description})).collect::<Vec<_>>(),
                })
            })
        };
        json!({
            "security": one(&d.security), "privacy": one(&d.privacy), "compliance": one(&d.compliance),
            "operational": one(&d.operational), "reputational": one(&d.reputational), "financial": one(&d.financial),
        })
    });
    json!({
        "decision_id": r.decision_id,
        "request_id": r.request_id,
        "outcome": outcome_word(r.outcome()),
        "effective_mode": mode_word(r.effective_mode()),
        "reasoning": r.reasoning,
        "reasons": r.reasons,
        "risk_level": risk_word(r.risk_level()),
        "risk_score": r.risk_score,
        "risk_dimensions": dims,
        "capability_token": r.capability_token,
        "token_expires_at": rfc3339(r.token_expires_at.as_ref()),
        "reservation_id": r.reservation_id,
        "escalation_id": (!r.escalation_id.is_empty()).then_some(&r.escalation_id),
        "escalation_state": (!r.escalation_id.is_empty())
            .then(|| super::oversight::state_name(r.escalation_state)),
        "override_id": (!r.override_id.is_empty()).then_some(&r.override_id),
        "ledger_index": r.ledger_index,
        "ledger_leaf_hash": hex_string(&r.ledger_leaf_hash),
        "policy_version_hash": hex_string(&r.policy_version_hash),
        "decided_at": rfc3339(r.decided_at.as_ref()),
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_decision(r: &DecideResponse) {
    println!(
        "{}  {}",
        outcome_word(r.outcome()).to_uppercase(),
        r.decision_id
    );
    println!("  reasoning: {}", r.reasoning);
    if !r.reasons.is_empty() {
        println!("  reasons:   {}", r.reasons.join(", "));
    }
    println!("  mode:      {}", mode_word(r.effective_mode()));
    println!(
        "  risk:      {} ({}/100)",
        risk_word(r.risk_level()),
        r.risk_score
    );
    if !r.escalation_id.is_empty() {
        println!(
            "  escalation: {} ({})",
            r.escalation_id,
            super::oversight::state_name(r.escalation_state)
        );
        if r.outcome() == Outcome::Escalated && r.capability_token.is_empty() {
            println!(
                "              waiting for people: retry with the same --request-id, or \
                 `lexecon escalations show {}`, to get the token once approved",
                r.escalation_id
            );
        }
    }
    if !r.override_id.is_empty() {
        println!("  override:  {}", r.override_id);
    }
    if !r.capability_token.is_empty() {
        println!("  token:     {}", r.capability_token);
        if let Some(exp) = rfc3339(r.token_expires_at.as_ref()) {
            println!("  expires:   {exp}");
        }
    }
    if !r.reservation_id.is_empty() {
        println!("  budget:    reservation {}", r.reservation_id);
    }
    println!(
        "  ledger:    #{} leaf {}",
        r.ledger_index,
        hex_string(&r.ledger_leaf_hash)
    );
    println!("  policy:    {}", hex_string(&r.policy_version_hash));
}
