//! The two real deciders: the embedded engine (`--data-dir`) and a Lexecon server over
//! gRPC (`--server`).

use std::sync::Arc;

use lexecon_core::PolicyMode;
use lexecon_engine::{ActionInput, Caller, CompletionInput, DecideInput, Engine, ToolProbe};
use lexecon_proto::v1 as pb;
use tonic::transport::Channel;

use crate::decider::{
    Completion, Decider, DeciderError, DecisionAnswer, DecisionRequest, EscalationAnswer,
    EscalationState, Outcome, Probe,
};

fn mode(mode: Option<&str>) -> Result<Option<PolicyMode>, DeciderError> {
    mode.map(|m| {
        m.parse::<PolicyMode>()
            .map_err(|e| DeciderError(format!("mode {m:?}: {e}")))
    })
    .transpose()
}

fn state_of(state: lexecon_engine::EscalationState) -> EscalationState {
    match state {
        lexecon_engine::EscalationState::Pending => EscalationState::Pending,
        lexecon_engine::EscalationState::Approved => EscalationState::Approved,
        lexecon_engine::EscalationState::Denied => EscalationState::Denied,
        lexecon_engine::EscalationState::Expired => EscalationState::Expired,
        lexecon_engine::EscalationState::Cancelled => EscalationState::Cancelled,
    }
}

fn engine_error(e: &lexecon_engine::EngineError) -> DeciderError {
    DeciderError(format!("the embedded engine refused: {e}"))
}

/// Decides in-process with the embedded engine, as `caller` (`local:<os user>` for
/// `mcp proxy --data-dir`; the agent's key for `mcp serve --data-dir`).
#[derive(Debug, Clone)]
pub struct EngineDecider {
    engine: Arc<Engine>,
    caller: Caller,
}

impl EngineDecider {
    /// A decider over `engine` for `caller`.
    pub fn new(engine: Arc<Engine>, caller: Caller) -> EngineDecider {
        EngineDecider { engine, caller }
    }
}

#[async_trait::async_trait]
impl Decider for EngineDecider {
    async fn decide(&self, request: &DecisionRequest) -> Result<DecisionAnswer, DeciderError> {
        let input = DecideInput {
            action: ActionInput {
                actor: request.actor.clone(),
                action: request.action.clone(),
                tool: request.tool.clone(),
                user_intent: request.user_intent.clone(),
                data_classes: request.data_classes.clone(),
                risk_level: request.risk_level,
                mode: mode(request.mode.as_deref())?,
                context: request.context.clone(),
                llm: None,
            },
            request_id: request.request_id.clone(),
        };
        let d = self
            .engine
            .decide(&self.caller, input)
            .await
            .map_err(|e| engine_error(&e))?;
        Ok(DecisionAnswer {
            decision_id: d.decision_id.to_string(),
            request_id: d.request_id.unwrap_or_default(),
            outcome: match d.outcome {
                lexecon_core::Outcome::Approved => Outcome::Approved,
                lexecon_core::Outcome::Denied => Outcome::Denied,
                lexecon_core::Outcome::Escalated => Outcome::Escalated,
            },
            reasoning: d.reasoning,
            reasons: d.reasons,
            capability_token: d.capability_token.filter(|t| !t.is_empty()),
            escalation_id: d.escalation_id.map(|e| e.to_string()),
            escalation_state: d.escalation_state.map(state_of),
        })
    }

    async fn escalation(&self, escalation_id: &str) -> Result<EscalationAnswer, DeciderError> {
        let v = self
            .engine
            .get_escalation(&self.caller, escalation_id)
            .await
            .map_err(|e| engine_error(&e))?;
        Ok(EscalationAnswer {
            escalation_id: v.escalation_id.to_string(),
            decision_id: v.decision_id.to_string(),
            state: state_of(v.state),
            capability_token: v.capability_token.filter(|t| !t.is_empty()),
        })
    }

    async fn record_completion(&self, c: Completion) -> Result<(), DeciderError> {
        self.engine
            .record_completion(
                &self.caller,
                CompletionInput {
                    decision_id: c.decision_id,
                    is_error: c.is_error,
                    duration_us: c.duration_us,
                    result_sha256: c.result_sha256,
                    arguments_json: c.arguments_json,
                    result_json: c.result_json,
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| engine_error(&e))
    }

    async fn check_tools(&self, actor: &str, probes: &[Probe]) -> Result<Vec<bool>, DeciderError> {
        let probes = probes
            .iter()
            .map(|p| {
                Ok(ToolProbe {
                    tool: p.tool.clone(),
                    proposed_action: p.action.clone(),
                    data_classes: p.data_classes.clone(),
                    risk_level: u8::try_from(p.risk_level).unwrap_or(u8::MAX),
                    policy_mode: mode(p.mode.as_deref())?,
                    context: p.context.clone(),
                })
            })
            .collect::<Result<Vec<_>, DeciderError>>()?;
        self.engine
            .check_tools(&self.caller, actor, &probes)
            .await
            .map_err(|e| engine_error(&e))
    }
}

/// Decides through a Lexecon server, authenticated with an API key.
#[derive(Debug, Clone)]
pub struct GrpcDecider {
    channel: Channel,
    authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

fn pb_mode(mode: Option<&str>) -> i32 {
    match mode {
        Some("permissive") => pb::PolicyMode::Permissive as i32,
        Some("strict") => pb::PolicyMode::Strict as i32,
        Some("paranoid") => pb::PolicyMode::Paranoid as i32,
        _ => pb::PolicyMode::Unspecified as i32,
    }
}

fn pb_state(state: i32) -> Option<EscalationState> {
    match pb::EscalationState::try_from(state).ok()? {
        pb::EscalationState::Pending => Some(EscalationState::Pending),
        pb::EscalationState::Approved => Some(EscalationState::Approved),
        pb::EscalationState::Denied => Some(EscalationState::Denied),
        pb::EscalationState::Expired => Some(EscalationState::Expired),
        pb::EscalationState::Cancelled => Some(EscalationState::Cancelled),
        pb::EscalationState::Unspecified => None,
    }
}

fn status_error(s: &tonic::Status) -> DeciderError {
    DeciderError(format!(
        "the Lexecon server answered {:?}: {}",
        s.code(),
        s.message()
    ))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl GrpcDecider {
    /// A decider that sends `bearer` with every call on `channel`.
    pub fn new(channel: Channel, bearer: &str) -> Result<GrpcDecider, DeciderError> {
        let authorization = format!("Bearer {bearer}").parse().map_err(|_| {
            DeciderError("the token contains characters that cannot be sent in a header".to_owned())
        })?;
        Ok(GrpcDecider {
            channel,
            authorization,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// `AuthService/WhoAmI` with this decider's key.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, DeciderError> {
        pb::auth_service_client::AuthServiceClient::new(self.channel.clone())
            .who_am_i(self.request(pb::WhoAmIRequest {}))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| status_error(&s))
    }
}

#[async_trait::async_trait]
impl Decider for GrpcDecider {
    async fn decide(&self, request: &DecisionRequest) -> Result<DecisionAnswer, DeciderError> {
        let message = pb::DecideRequest {
            actor: request.actor.clone(),
            proposed_action: request.action.clone(),
            tool: request.tool.clone(),
            user_intent: request.user_intent.clone(),
            data_classes: request.data_classes.clone(),
            risk_level: request.risk_level,
            policy_mode: pb_mode(request.mode.as_deref()),
            context: request.context.clone().into_iter().collect(),
            request_id: request.request_id.clone(),
            llm: None,
        };
        let r = pb::decision_service_client::DecisionServiceClient::new(self.channel.clone())
            .decide(self.request(message))
            .await
            .map_err(|s| status_error(&s))?
            .into_inner();
        let outcome = match pb::Outcome::try_from(r.outcome) {
            Ok(pb::Outcome::Approved) => Outcome::Approved,
            Ok(pb::Outcome::Denied) => Outcome::Denied,
            Ok(pb::Outcome::Escalated) => Outcome::Escalated,
            _ => {
                return Err(DeciderError(format!(
                    "the Lexecon server answered decision {} with no known outcome ({})",
                    r.decision_id, r.outcome
                )));
            }
        };
        Ok(DecisionAnswer {
            decision_id: r.decision_id,
            request_id: r.request_id,
            outcome,
            reasoning: r.reasoning,
            reasons: r.reasons,
            capability_token: non_empty(r.capability_token),
            escalation_id: non_empty(r.escalation_id),
            escalation_state: pb_state(r.escalation_state),
        })
    }

    async fn escalation(&self, escalation_id: &str) -> Result<EscalationAnswer, DeciderError> {
        let r = pb::oversight_service_client::OversightServiceClient::new(self.channel.clone())
            .get_escalation(self.request(pb::GetEscalationRequest {
                escalation_id: escalation_id.to_owned(),
            }))
            .await
            .map_err(|s| status_error(&s))?
            .into_inner();
        let e = r.escalation.ok_or_else(|| {
            DeciderError(format!(
                "the Lexecon server sent no escalation {escalation_id}"
            ))
        })?;
        Ok(EscalationAnswer {
            state: pb_state(e.state).ok_or_else(|| {
                DeciderError(format!(
                    "escalation {escalation_id} has no known state ({})",
                    e.state
                ))
            })?,
            escalation_id: e.escalation_id,
            decision_id: e.decision_id,
            capability_token: non_empty(e.capability_token),
        })
    }

    async fn record_completion(&self, c: Completion) -> Result<(), DeciderError> {
        pb::decision_service_client::DecisionServiceClient::new(self.channel.clone())
            .record_completion(self.request(pb::RecordCompletionRequest {
                decision_id: c.decision_id,
                is_error: c.is_error,
                duration_us: c.duration_us,
                result_sha256: c.result_sha256.to_vec(),
                arguments_json: c.arguments_json.unwrap_or_default(),
                result_json: c.result_json.unwrap_or_default(),
            }))
            .await
            .map(|_| ())
            .map_err(|s| status_error(&s))
    }

    async fn check_tools(&self, actor: &str, probes: &[Probe]) -> Result<Vec<bool>, DeciderError> {
        let tools = probes
            .iter()
            .map(|p| pb::ToolProbe {
                tool: p.tool.clone(),
                proposed_action: p.action.clone(),
                data_classes: p.data_classes.clone(),
                risk_level: p.risk_level,
                policy_mode: pb_mode(p.mode.as_deref()),
                context: p.context.clone().into_iter().collect(),
            })
            .collect();
        pb::decision_service_client::DecisionServiceClient::new(self.channel.clone())
            .check_tools(self.request(pb::CheckToolsRequest {
                actor: actor.to_owned(),
                tools,
            }))
            .await
            .map(|r| r.into_inner().always_denied)
            .map_err(|s| status_error(&s))
    }
}
