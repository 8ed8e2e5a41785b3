//! `lexecon.v1.DecisionService`.

use std::sync::Arc;
use std::time::Instant;

use lexecon_core::PolicyMode;
use lexecon_engine::{
    CallerGone, CompletionInput, Decision, ErrorClass, ToolProbe, VerifyTokenInput,
};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::decision_service_server::DecisionService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{decide_input, mode_to_pb, outcome_to_pb, risk_level_to_pb, timestamp_to_pb};
use crate::limits::CallPermit;

/// The decision service.
#[derive(Debug, Clone)]
pub struct DecisionSvc(pub Shared);

/// The proto form of a decision.
pub fn decision_to_pb(d: Decision) -> pb::DecideResponse {
    let dims = |name: &str| {
        d.risk_dimensions
            .iter()
            .find(|v| v.dimension == name)
            .map(|v| pb::RiskDimension {
                score: u32::from(v.score),
                factors: v
                    .factors
                    .iter()
                    .map(|f| pb::RiskFactor {
                        rule_id: f.rule_id.clone(),
                        points: u32::from(f.points),
                        description: f.description.clone(),
                    })
                    .collect(),
            })
    };
    pb::DecideResponse {
        decision_id: d.decision_id.to_string(),
        request_id: d.request_id.clone().unwrap_or_default(),
        outcome: outcome_to_pb(d.outcome) as i32,
        reasoning: d.reasoning.clone(),
        reasons: d.reasons.clone(),
        risk_level: risk_level_to_pb(d.risk_level) as i32,
        risk_score: u32::from(d.risk_score),
        risk_dimensions: Some(pb::RiskDimensions {
            security: dims("security"),
            privacy: dims("privacy"),
            compliance: dims("compliance"),
            operational: dims("operational"),
            reputational: dims("reputational"),
            financial: dims("financial"),
        }),
        capability_token: d.capability_token.clone().unwrap_or_default(),
        token_expires_at: d.token_expires_at.map(timestamp_to_pb),
        ledger_index: d.ledger_index,
        ledger_leaf_hash: d.ledger_leaf_hash.to_vec(),
        policy_version_hash: d.policy_version_hash.to_vec(),
        decided_at: Some(timestamp_to_pb(d.decided_at)),
        effective_mode: mode_to_pb(d.effective_mode) as i32,
        reservation_id: d.reservation_id.unwrap_or_default(),
        warnings: d.warnings,
        actor: d.actor,
        escalation_id: d.escalation_id.map(|id| id.to_string()).unwrap_or_default(),
        override_id: d.override_id.map(|id| id.to_string()).unwrap_or_default(),
        escalation_state: d
            .escalation_state
            .map_or(pb::EscalationState::Unspecified, |s| {
                super::oversight::escalation_state_to_pb(s)
            }) as i32,
    }
}

/// The engine's completion input; `result_sha256` must be 32 bytes, and empty JSON
/// fields mean "not recorded".
fn completion_input(r: pb::RecordCompletionRequest) -> Result<CompletionInput, Status> {
    let result_sha256: [u8; 32] = r.result_sha256.as_slice().try_into().map_err(|_| {
        Status::invalid_argument(format!(
            "result_sha256: {} bytes; send the 32-byte SHA-256 of the result's canonical JSON",
            r.result_sha256.len()
        ))
    })?;
    Ok(CompletionInput {
        decision_id: r.decision_id,
        is_error: r.is_error,
        duration_us: r.duration_us,
        result_sha256,
        arguments_json: (!r.arguments_json.is_empty()).then_some(r.arguments_json),
        result_json: (!r.result_json.is_empty()).then_some(r.result_json),
    })
}

/// The engine's tool probes; a bad field is named `tools[i].field`.
fn tool_probes(tools: Vec<pb::ToolProbe>) -> Result<Vec<ToolProbe>, Status> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let risk_level = u8::try_from(t.risk_level).map_err(|_| {
                Status::invalid_argument(format!(
                    "tools[{i}].risk_level: {} is outside 0..5 (0 = not given)",
                    t.risk_level
                ))
            })?;
            let policy_mode = match pb::PolicyMode::try_from(t.policy_mode) {
                Ok(pb::PolicyMode::Unspecified) => None,
                Ok(pb::PolicyMode::Permissive) => Some(PolicyMode::Permissive),
                Ok(pb::PolicyMode::Strict) => Some(PolicyMode::Strict),
                Ok(pb::PolicyMode::Paranoid) => Some(PolicyMode::Paranoid),
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "tools[{i}].policy_mode: {} is not a known mode; use \
                         POLICY_MODE_PERMISSIVE, _STRICT or _PARANOID",
                        t.policy_mode
                    )));
                }
            };
            Ok(ToolProbe {
                tool: t.tool,
                proposed_action: t.proposed_action,
                data_classes: t.data_classes,
                risk_level,
                policy_mode,
                context: t.context.into_iter().collect(),
            })
        })
        .collect()
}

#[tonic::async_trait]
impl DecisionService for DecisionSvc {
    async fn decide(
        &self,
        request: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::DecideResponse>, Status> {
        let started = Instant::now();
        let who = caller(&request)?;
        let input = decide_input(request.get_ref())?;
        // The engine call runs in a task of its own: the transport drops this future
        // when the caller hangs up or its deadline passes, and a decision that has
        // claimed its request or a budget must still complete (contract §10). The guard
        // tells the engine, which stops only if it has not started yet.
        let gone = CallerGone::new();
        let guard = gone.on_drop();
        let engine = Arc::clone(&self.0.engine);
        // The call's place among the calls in flight goes with the work, so a caller who
        // hangs up does not free it while the decision still runs.
        let place = request.extensions().get::<CallPermit>().cloned();
        let running = Arc::clone(&self.0.detached).read_owned().await;
        let task = tokio::spawn(async move {
            let decided = engine.decide_unless_gone(&who, input, &gone).await;
            drop((place, running));
            decided
        });
        let joined = task.await;
        guard.disarm();
        let result = joined.map_err(|e| {
            tracing::error!(error = %e, "a decision task failed");
            Status::internal("the server failed; see its log")
        })?;
        let decision = result.map_err(|e| {
            if e.class() == ErrorClass::InvalidArgument {
                let field = e
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("request")
                    .to_owned();
                self.0
                    .metrics
                    .invalid_requests
                    .get_or_create(&crate::metrics::ReasonLabel { reason: field })
                    .inc();
            }
            status(e)
        })?;
        self.0
            .metrics
            .decided(decision.outcome.as_str(), started.elapsed());
        Ok(Response::new(decision_to_pb(decision)))
    }

    async fn record_completion(
        &self,
        request: Request<pb::RecordCompletionRequest>,
    ) -> Result<Response<pb::RecordCompletionResponse>, Status> {
        let who = caller(&request)?;
        let input = completion_input(request.into_inner())?;
        let record = self
            .0
            .engine
            .record_completion(&who, input)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordCompletionResponse {
            ledger_index: record.ledger_index,
            newly_recorded: record.newly_recorded,
        }))
    }

    async fn check_tools(
        &self,
        request: Request<pb::CheckToolsRequest>,
    ) -> Result<Response<pb::CheckToolsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let probes = tool_probes(r.tools)?;
        let always_denied = self
            .0
            .engine
            .check_tools(&who, &r.actor, &probes)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CheckToolsResponse { always_denied }))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let check = self
            .0
            .engine
            .verify_token(
                &who,
                &VerifyTokenInput {
                    token: r.token,
                    actor: r.actor,
                    action: r.action,
                    tool: r.tool,
                    audience: r.audience,
                },
            )
            .map_err(status)?;
        let mut response = pb::VerifyTokenResponse {
            valid: check.error.is_none(),
            ..Default::default()
        };
        if let Some(err) = &check.error {
            response.error_kind = err.kind().to_owned();
            response.error = err.to_string();
        }
        if let Some(c) = check.claims {
            response.token_id = c.token_id.to_string();
            response.decision_id = c.decision_id.to_string();
            response.actor = c.actor.to_string();
            response.action = c.action.to_string();
            response.tool = c.tool.map(|t| t.to_string()).unwrap_or_default();
            response.expires_at = Some(timestamp_to_pb(c.expires_at));
            response.key_id = c.key_id;
        }
        Ok(Response::new(response))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let (ledger_index, newly_revoked) = self
            .0
            .engine
            .revoke_token(&who, &r.token_id, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeTokenResponse {
            ledger_index,
            newly_revoked,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    #[test]
    fn a_completion_needs_a_32_byte_hash_and_empty_json_means_none() {
        let request = pb::RecordCompletionRequest {
            decision_id: "dec_x".into(),
            result_sha256: vec![1; 31],
            ..Default::default()
        };
        let err = completion_input(request.clone()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().starts_with("result_sha256: 31 bytes"),
            "{err:?}"
        );
        let input = completion_input(pb::RecordCompletionRequest {
            result_sha256: vec![1; 32],
            result_json: "{}".into(),
            ..request
        })
        .unwrap();
        assert_eq!(input.result_sha256, [1; 32]);
        assert_eq!(input.arguments_json, None);
        assert_eq!(input.result_json.as_deref(), Some("{}"));
    }

    #[test]
    fn a_bad_probe_field_is_named_with_its_position() {
        let probe = |mode: i32, risk_level: u32| pb::ToolProbe {
            tool: "files/read".into(),
            proposed_action: "call:read".into(),
            policy_mode: mode,
            risk_level,
            ..Default::default()
        };
        let ok = tool_probes(vec![probe(pb::PolicyMode::Paranoid as i32, 3)]).unwrap();
        assert_eq!(ok[0].policy_mode, Some(PolicyMode::Paranoid));
        assert_eq!(ok[0].risk_level, 3);
        let err = tool_probes(vec![probe(0, 0), probe(42, 0)]).unwrap_err();
        assert!(err.message().starts_with("tools[1].policy_mode"), "{err:?}");
        let err = tool_probes(vec![probe(0, 300)]).unwrap_err();
        assert!(err.message().starts_with("tools[0].risk_level"), "{err:?}");
    }
}
