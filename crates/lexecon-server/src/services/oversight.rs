//! `lexecon.v1.OversightService`: escalations, overrides, the stop button,
//! accountability and the governance event stream (contract §6). Conversion only: the
//! engine validates and authorizes every call.

use std::pin::Pin;
use std::task::{Context, Poll};

use lexecon_engine::{
    Accountability, ApprovalRecord, DecisionMaker, EscalationPriority, EscalationQuery,
    EscalationState, EscalationView, Event, EventStream, HaltRecord, OverrideEffect, OverrideInput,
    OverrideKind, OverrideRecord, ResponsibilityLevel,
};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::oversight_service_server::{OversightService, OversightServiceServer};
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{timestamp_from_pb, timestamp_to_pb};

/// The oversight service.
#[derive(Debug, Clone)]
pub struct OversightSvc(pub Shared);

/// The oversight service with the server's request size limit.
pub fn server(shared: Shared) -> OversightServiceServer<OversightSvc> {
    let max = shared.engine.config().server.max_request_bytes;
    OversightServiceServer::new(OversightSvc(shared)).max_decoding_message_size(max)
}

/// The proto value of an escalation state.
pub fn escalation_state_to_pb(state: EscalationState) -> pb::EscalationState {
    match state {
        EscalationState::Pending => pb::EscalationState::Pending,
        EscalationState::Approved => pb::EscalationState::Approved,
        EscalationState::Denied => pb::EscalationState::Denied,
        EscalationState::Expired => pb::EscalationState::Expired,
        EscalationState::Cancelled => pb::EscalationState::Cancelled,
    }
}

/// The engine's escalation state of a proto value; unspecified is `None`.
fn escalation_state_from_pb(value: i32) -> Result<Option<EscalationState>, Status> {
    Ok(match pb::EscalationState::try_from(value) {
        Ok(pb::EscalationState::Unspecified) => None,
        Ok(pb::EscalationState::Pending) => Some(EscalationState::Pending),
        Ok(pb::EscalationState::Approved) => Some(EscalationState::Approved),
        Ok(pb::EscalationState::Denied) => Some(EscalationState::Denied),
        Ok(pb::EscalationState::Expired) => Some(EscalationState::Expired),
        Ok(pb::EscalationState::Cancelled) => Some(EscalationState::Cancelled),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "state {value} is not an escalation state; use ESCALATION_STATE_PENDING, \
                 _APPROVED, _DENIED, _EXPIRED or _CANCELLED"
            )));
        }
    })
}

fn priority_to_pb(p: EscalationPriority) -> pb::EscalationPriority {
    match p {
        EscalationPriority::Critical => pb::EscalationPriority::Critical,
        EscalationPriority::High => pb::EscalationPriority::High,
        EscalationPriority::Medium => pb::EscalationPriority::Medium,
        EscalationPriority::Low => pb::EscalationPriority::Low,
    }
}

fn override_kind_from_pb(value: i32) -> Result<OverrideKind, Status> {
    match pb::OverrideKind::try_from(value) {
        Ok(pb::OverrideKind::EmergencyBypass) => Ok(OverrideKind::EmergencyBypass),
        Ok(pb::OverrideKind::ExecutiveOverride) => Ok(OverrideKind::ExecutiveOverride),
        Ok(pb::OverrideKind::TimeLimitedException) => Ok(OverrideKind::TimeLimitedException),
        Ok(pb::OverrideKind::RiskAccepted) => Ok(OverrideKind::RiskAccepted),
        Ok(pb::OverrideKind::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "kind {value} is not an override kind; use OVERRIDE_KIND_EMERGENCY_BYPASS, \
             _EXECUTIVE_OVERRIDE, _TIME_LIMITED_EXCEPTION or _RISK_ACCEPTED"
        ))),
    }
}

fn override_kind_to_pb(k: OverrideKind) -> pb::OverrideKind {
    match k {
        OverrideKind::EmergencyBypass => pb::OverrideKind::EmergencyBypass,
        OverrideKind::ExecutiveOverride => pb::OverrideKind::ExecutiveOverride,
        OverrideKind::TimeLimitedException => pb::OverrideKind::TimeLimitedException,
        OverrideKind::RiskAccepted => pb::OverrideKind::RiskAccepted,
    }
}

fn override_effect_from_pb(value: i32) -> Result<OverrideEffect, Status> {
    match pb::OverrideEffect::try_from(value) {
        Ok(pb::OverrideEffect::Approve) => Ok(OverrideEffect::Approve),
        Ok(pb::OverrideEffect::Deny) => Ok(OverrideEffect::Deny),
        Ok(pb::OverrideEffect::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "effect {value} is not an override effect; use OVERRIDE_EFFECT_APPROVE or \
             OVERRIDE_EFFECT_DENY"
        ))),
    }
}

fn override_effect_to_pb(e: OverrideEffect) -> pb::OverrideEffect {
    match e {
        OverrideEffect::Approve => pb::OverrideEffect::Approve,
        OverrideEffect::Deny => pb::OverrideEffect::Deny,
    }
}

fn decision_maker_to_pb(m: DecisionMaker) -> pb::DecisionMaker {
    match m {
        DecisionMaker::AiSystem => pb::DecisionMaker::AiSystem,
        DecisionMaker::Human => pb::DecisionMaker::Human,
        DecisionMaker::Hybrid => pb::DecisionMaker::Hybrid,
    }
}

fn responsibility_to_pb(l: ResponsibilityLevel) -> pb::ResponsibilityLevel {
    match l {
        ResponsibilityLevel::Automated => pb::ResponsibilityLevel::Automated,
        ResponsibilityLevel::Supervised => pb::ResponsibilityLevel::Supervised,
        ResponsibilityLevel::Shared => pb::ResponsibilityLevel::Shared,
        ResponsibilityLevel::Full => pb::ResponsibilityLevel::Full,
    }
}

/// The proto form of an approval or denial.
pub fn approver_to_pb(a: &ApprovalRecord) -> pb::Approver {
    pb::Approver {
        principal: a.principal.clone(),
        principal_kind: a.principal_kind.clone(),
        key_creator: a.key_creator.clone().unwrap_or_default(),
        mfa_verified: a.mfa_verified,
        at: Some(timestamp_to_pb(a.at)),
        reason: a.reason.clone(),
        ledger_index: a.ledger_index,
        approve: a.approve,
    }
}

/// The proto form of an escalation.
pub fn escalation_to_pb(e: &EscalationView) -> pb::Escalation {
    pb::Escalation {
        escalation_id: e.escalation_id.to_string(),
        decision_id: e.decision_id.to_string(),
        priority: priority_to_pb(e.priority).into(),
        state: escalation_state_to_pb(e.state).into(),
        created_at: Some(timestamp_to_pb(e.created_at)),
        due_at: Some(timestamp_to_pb(e.due_at)),
        warn_at: Some(timestamp_to_pb(e.warn_at)),
        actor: e.actor.clone(),
        proposed_action: e.proposed_action.clone(),
        tool: e.tool.clone().unwrap_or_default(),
        asking_principal: e.asking_principal.clone(),
        approvals: e.approvals.iter().map(approver_to_pb).collect(),
        resolution: e.resolution.as_ref().map(|r| pb::Resolution {
            state: escalation_state_to_pb(r.state).into(),
            by: r.by.clone(),
            reason: r.reason.clone(),
            at: Some(timestamp_to_pb(r.at)),
            ledger_index: r.ledger_index,
        }),
        override_id: e
            .override_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        capability_token: e.capability_token.clone().unwrap_or_default(),
        token_id: e
            .token_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        token_expires_at: e.token_expires_at.map(timestamp_to_pb),
        reservation_id: e.reservation_id.clone().unwrap_or_default(),
        grant_expires_at: e.grant_expires_at.map(timestamp_to_pb),
        approvals_required: e.approvals_required,
        grant_decision_id: e
            .grant_decision_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

fn override_to_pb(o: &OverrideRecord, now: lexecon_core::Timestamp) -> pb::Override {
    pb::Override {
        override_id: o.override_id.to_string(),
        kind: override_kind_to_pb(o.kind).into(),
        effect: override_effect_to_pb(o.effect).into(),
        actor: o.actor.clone(),
        action: o.action.clone(),
        tool: o.tool.clone(),
        justification: o.justification.clone(),
        created_by: o.created_by.clone(),
        creator_role: o.creator_role.clone(),
        created_at: Some(timestamp_to_pb(o.created_at)),
        expires_at: Some(timestamp_to_pb(o.expires_at)),
        revoked_by: o.revoked.as_ref().map(|r| r.by.clone()).unwrap_or_default(),
        revoked_at: o.revoked.as_ref().map(|r| timestamp_to_pb(r.at)),
        active: o.is_active(now),
        ledger_index: o.ledger_index,
    }
}

fn halt_to_pb(h: &HaltRecord) -> pb::HaltRecord {
    pb::HaltRecord {
        halt_id: h.halt_id.to_string(),
        actor: h.actor.clone(),
        reason: h.reason.clone(),
        placed_by: h.placed_by.clone(),
        placed_at: Some(timestamp_to_pb(h.placed_at)),
        ledger_index: h.ledger_index,
    }
}

fn event_to_pb(e: Event) -> pb::Event {
    pb::Event {
        ledger_index: e.ledger_index,
        kind: e.kind,
        timestamp: Some(timestamp_to_pb(e.timestamp)),
        payload_json: e.payload_json,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

fn accountability_to_pb(a: &Accountability) -> pb::GetAccountabilityResponse {
    pb::GetAccountabilityResponse {
        decision_id: a.decision_id.to_string(),
        decision_maker: decision_maker_to_pb(a.decision_maker).into(),
        responsibility_level: responsibility_to_pb(a.responsibility_level).into(),
        asking_principal: a.asking_principal.clone(),
        policy: Some(pb::AccountablePolicy {
            name: a.policy.name.clone(),
            version: a.policy.version.clone(),
            hash: unhex(&a.policy.hash),
            loaded_by: a.policy.loaded_by.clone(),
            ledger_index: a.policy.ledger_index.unwrap_or_default(),
        }),
        resolvers: a.resolvers.iter().map(approver_to_pb).collect(),
        override_author: a.override_author.clone().unwrap_or_default(),
        override_id: a
            .override_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        escalation_id: a
            .escalation_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        ledger_indexes: a.ledger_indexes.clone(),
    }
}

/// The engine's event stream as a gRPC response stream; dropping it (the client went
/// away) stops the watcher.
#[derive(Debug)]
pub struct Events(EventStream);

impl tokio_stream::Stream for Events {
    type Item = Result<pb::WatchEventsResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_next(cx).map(|next| {
            next.map(|r| {
                r.map(|e| pb::WatchEventsResponse {
                    event: Some(event_to_pb(e)),
                })
                .map_err(status)
            })
        })
    }
}

#[tonic::async_trait]
impl OversightService for OversightSvc {
    async fn list_escalations(
        &self,
        request: Request<pb::ListEscalationsRequest>,
    ) -> Result<Response<pb::ListEscalationsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let query = EscalationQuery {
            state: escalation_state_from_pb(r.state)?,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let page = self
            .0
            .engine
            .list_escalations(&who, query)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListEscalationsResponse {
            escalations: page.items.iter().map(escalation_to_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_escalation(
        &self,
        request: Request<pb::GetEscalationRequest>,
    ) -> Result<Response<pb::GetEscalationResponse>, Status> {
        let who = caller(&request)?;
        let view = self
            .0
            .engine
            .get_escalation(&who, &request.get_ref().escalation_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetEscalationResponse {
            escalation: Some(escalation_to_pb(&view)),
        }))
    }

    async fn resolve_escalation(
        &self,
        request: Request<pb::ResolveEscalationRequest>,
    ) -> Result<Response<pb::ResolveEscalationResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let (view, ledger_index) = self
            .0
            .engine
            .resolve_escalation(&who, &r.escalation_id, r.approve, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResolveEscalationResponse {
            escalation: Some(escalation_to_pb(&view)),
            ledger_index,
        }))
    }

    async fn create_override(
        &self,
        request: Request<pb::CreateOverrideRequest>,
    ) -> Result<Response<pb::CreateOverrideResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let expires_at = r
            .expires_at
            .as_ref()
            .map(timestamp_from_pb)
            .ok_or_else(|| {
                Status::invalid_argument(
                    "expires_at is required: an override ends at most \
                     oversight.max_override_secs from now",
                )
            })?;
        let input = OverrideInput {
            kind: override_kind_from_pb(r.kind)?,
            effect: override_effect_from_pb(r.effect)?,
            actor: r.actor,
            action: r.action,
            tool: r.tool,
            justification: r.justification,
            expires_at,
        };
        let record = self
            .0
            .engine
            .create_override(&who, input)
            .await
            .map_err(status)?;
        let now = self.0.engine.clock().now();
        Ok(Response::new(pb::CreateOverrideResponse {
            ledger_index: record.ledger_index,
            r#override: Some(override_to_pb(&record, now)),
        }))
    }

    async fn list_overrides(
        &self,
        request: Request<pb::ListOverridesRequest>,
    ) -> Result<Response<pb::ListOverridesResponse>, Status> {
        let who = caller(&request)?;
        let records = self
            .0
            .engine
            .list_overrides(&who, request.get_ref().include_inactive)
            .await
            .map_err(status)?;
        let now = self.0.engine.clock().now();
        Ok(Response::new(pb::ListOverridesResponse {
            overrides: records.iter().map(|o| override_to_pb(o, now)).collect(),
        }))
    }

    async fn revoke_override(
        &self,
        request: Request<pb::RevokeOverrideRequest>,
    ) -> Result<Response<pb::RevokeOverrideResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let record = self
            .0
            .engine
            .revoke_override(&who, &r.override_id, &r.reason)
            .await
            .map_err(status)?;
        let now = self.0.engine.clock().now();
        Ok(Response::new(pb::RevokeOverrideResponse {
            ledger_index: record
                .revoked
                .as_ref()
                .map_or(record.ledger_index, |r| r.ledger_index),
            r#override: Some(override_to_pb(&record, now)),
        }))
    }

    async fn halt(
        &self,
        request: Request<pb::HaltRequest>,
    ) -> Result<Response<pb::HaltResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let halt = self
            .0
            .engine
            .halt(&who, &r.actor, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::HaltResponse {
            halt_id: halt.halt_id.to_string(),
            ledger_index: halt.ledger_index,
        }))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let ledger_index = self
            .0
            .engine
            .resume(&who, &r.halt_id, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResumeResponse { ledger_index }))
    }

    async fn get_halt_status(
        &self,
        request: Request<pb::GetHaltStatusRequest>,
    ) -> Result<Response<pb::GetHaltStatusResponse>, Status> {
        let who = caller(&request)?;
        let halts = self.0.engine.halt_status(&who).await.map_err(status)?;
        Ok(Response::new(pb::GetHaltStatusResponse {
            halted_all: halts.iter().any(|h| h.actor.chars().all(|c| c == '*')),
            halts: halts.iter().map(halt_to_pb).collect(),
        }))
    }

    type WatchEventsStream = Events;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let stream = self
            .0
            .engine
            .watch_events(&who, r.from_index, r.kinds)
            .await
            .map_err(status)?;
        Ok(Response::new(Events(stream)))
    }

    async fn get_accountability(
        &self,
        request: Request<pb::GetAccountabilityRequest>,
    ) -> Result<Response<pb::GetAccountabilityResponse>, Status> {
        let who = caller(&request)?;
        let a = self
            .0
            .engine
            .accountability(&who, &request.get_ref().decision_id)
            .await
            .map_err(status)?;
        Ok(Response::new(accountability_to_pb(&a)))
    }
}
