//! `lexecon.v1.DecisionService`.

use std::time::Instant;

use lexecon_engine::{Decision, ErrorClass, VerifyTokenInput};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::decision_service_server::DecisionService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{decide_input, mode_to_pb, outcome_to_pb, risk_level_to_pb, timestamp_to_pb};

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

#[tonic::async_trait]
impl DecisionService for DecisionSvc {
    async fn decide(
        &self,
        request: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::DecideResponse>, Status> {
        let started = Instant::now();
        let who = caller(&request)?;
        let input = decide_input(request.get_ref())?;
        let decision = self.0.engine.decide(&who, input).await.map_err(|e| {
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
