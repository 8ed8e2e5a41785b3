//! Proto <-> engine conversions, by hand, at the edge. Conversion only: the engine
//! validates every field (a bad one is `INVALID_ARGUMENT` naming it); the one check
//! here is that an enum number is one the proto defines.

use lexecon_core::{LlmUsage, Outcome, PolicyMode, RiskLevel, Timestamp};
use lexecon_engine::{ActionInput, DecideInput};
use lexecon_proto::v1 as pb;
use tonic::Status;

fn mode_from_pb(value: i32) -> Result<Option<PolicyMode>, Status> {
    match pb::PolicyMode::try_from(value) {
        Ok(pb::PolicyMode::Unspecified) => Ok(None),
        Ok(pb::PolicyMode::Permissive) => Ok(Some(PolicyMode::Permissive)),
        Ok(pb::PolicyMode::Strict) => Ok(Some(PolicyMode::Strict)),
        Ok(pb::PolicyMode::Paranoid) => Ok(Some(PolicyMode::Paranoid)),
        Err(_) => Err(Status::invalid_argument(format!(
            "policy_mode {value} is not a known mode; use POLICY_MODE_PERMISSIVE, _STRICT or _PARANOID"
        ))),
    }
}

/// The proto value of a mode.
pub fn mode_to_pb(mode: PolicyMode) -> pb::PolicyMode {
    match mode {
        PolicyMode::Permissive => pb::PolicyMode::Permissive,
        PolicyMode::Strict => pb::PolicyMode::Strict,
        PolicyMode::Paranoid => pb::PolicyMode::Paranoid,
    }
}

/// The proto value of an outcome.
pub fn outcome_to_pb(outcome: Outcome) -> pb::Outcome {
    match outcome {
        Outcome::Approved => pb::Outcome::Approved,
        Outcome::Denied => pb::Outcome::Denied,
        Outcome::Escalated => pb::Outcome::Escalated,
    }
}

/// The proto value of a risk level.
pub fn risk_level_to_pb(level: RiskLevel) -> pb::RiskLevel {
    match level {
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
        RiskLevel::Critical => pb::RiskLevel::Critical,
    }
}

/// The proto value of a role.
pub fn role_to_pb(role: lexecon_auth::Role) -> pb::Role {
    match role {
        lexecon_auth::Role::Viewer => pb::Role::Viewer,
        lexecon_auth::Role::Auditor => pb::Role::Auditor,
        lexecon_auth::Role::ComplianceOfficer => pb::Role::ComplianceOfficer,
        lexecon_auth::Role::Admin => pb::Role::Admin,
        lexecon_auth::Role::Agent => pb::Role::Agent,
    }
}

/// A role from its proto value; an undefined number is `INVALID_ARGUMENT`.
pub fn role_from_pb(value: i32) -> Result<lexecon_auth::Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Viewer) => Ok(lexecon_auth::Role::Viewer),
        Ok(pb::Role::Auditor) => Ok(lexecon_auth::Role::Auditor),
        Ok(pb::Role::ComplianceOfficer) => Ok(lexecon_auth::Role::ComplianceOfficer),
        Ok(pb::Role::Admin) => Ok(lexecon_auth::Role::Admin),
        Ok(pb::Role::Agent) => Ok(lexecon_auth::Role::Agent),
        _ => Err(Status::invalid_argument(format!(
            "role {value} is not a role; use ROLE_VIEWER, _AUDITOR, _COMPLIANCE_OFFICER, _ADMIN or _AGENT"
        ))),
    }
}

/// A proto timestamp.
pub fn timestamp_to_pb(ts: Timestamp) -> lexecon_proto::prost_types::Timestamp {
    let micros = ts.unix_micros();
    lexecon_proto::prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // The remainder is below 10^6, so the product fits an i32.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// The fields shared by Decide, Explain and Assess, as the engine takes them (it
/// validates them).
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the proto fields one to one"
)]
pub fn action_input(
    actor: &str,
    proposed_action: &str,
    tool: &str,
    user_intent: &str,
    data_classes: &[String],
    risk_level: u32,
    policy_mode: i32,
    context: &std::collections::HashMap<String, String>,
    llm: Option<&pb::LlmUsage>,
) -> Result<ActionInput, Status> {
    Ok(ActionInput {
        actor: actor.to_owned(),
        action: proposed_action.to_owned(),
        tool: tool.to_owned(),
        user_intent: user_intent.to_owned(),
        data_classes: data_classes.to_vec(),
        risk_level,
        mode: mode_from_pb(policy_mode)?,
        context: context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        llm: llm.map(|llm| LlmUsage {
            model: llm.model.clone(),
            user_id: (!llm.user_id.is_empty()).then(|| llm.user_id.clone()),
            roles: llm.roles.clone(),
            estimated_input_tokens: llm.estimated_input_tokens,
            max_output_tokens: llm.max_output_tokens,
        }),
    })
}

/// A `DecideRequest` as the engine takes it.
pub fn decide_input(r: &pb::DecideRequest) -> Result<DecideInput, Status> {
    Ok(DecideInput {
        action: action_input(
            &r.actor,
            &r.proposed_action,
            &r.tool,
            &r.user_intent,
            &r.data_classes,
            r.risk_level,
            r.policy_mode,
            &r.context,
            r.llm.as_ref(),
        )?,
        request_id: r.request_id.clone(),
    })
}

/// A proto timestamp as a domain one (micro-second precision).
pub fn timestamp_from_pb(t: &lexecon_proto::prost_types::Timestamp) -> Timestamp {
    Timestamp::from_unix_micros(
        t.seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(t.nanos / 1_000)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_policy_mode_is_invalid_argument_naming_it() {
        let status = decide_input(&pb::DecideRequest {
            policy_mode: 42,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("policy_mode"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_request_converts_field_for_field() {
        let input = decide_input(&pb::DecideRequest {
            actor: "ai_agent:support".into(),
            proposed_action: "read:customer_data".into(),
            risk_level: 3,
            request_id: "r1".into(),
            policy_mode: pb::PolicyMode::Paranoid as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(input.action.actor, "ai_agent:support");
        assert_eq!(input.action.risk_level, 3);
        assert_eq!(input.action.mode, Some(PolicyMode::Paranoid));
        assert_eq!(input.request_id, "r1");
    }

    #[test]
    fn timestamps_convert_with_micro_precision() {
        let ts = timestamp_to_pb(Timestamp::from_unix_micros(1_500_000_000_123_456));
        assert_eq!((ts.seconds, ts.nanos), (1_500_000_000, 123_456_000));
        assert_eq!(timestamp_from_pb(&ts).unix_micros(), 1_500_000_000_123_456);
        let neg = timestamp_to_pb(Timestamp::from_unix_micros(-1));
        assert_eq!((neg.seconds, neg.nanos), (-1, 999_999_000));
    }
}
