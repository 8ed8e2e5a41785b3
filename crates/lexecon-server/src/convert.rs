//! Proto <-> domain conversions, by hand, at the edge. Every field of a request is
//! validated here, and a bad one becomes `INVALID_ARGUMENT` naming the field.

use lexecon_core::{
    ActionRequest, LlmUsage, Outcome, PolicyMode, RequestError, RiskLevel, Timestamp,
};
use lexecon_proto::v1 as pb;
use tonic::Status;

/// The status for a request field that breaks a rule: `INVALID_ARGUMENT` naming it.
pub fn invalid(err: &RequestError) -> Status {
    Status::invalid_argument(err.to_string())
}

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

/// A proto timestamp.
pub fn timestamp_to_pb(ts: Timestamp) -> lexecon_proto::prost_types::Timestamp {
    let micros = ts.unix_micros();
    lexecon_proto::prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // The remainder is below 10^6, so the product fits an i32.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// The fields shared by Decide, Explain and Assess, validated into a domain request.
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the proto fields one to one"
)]
pub fn action_request(
    actor: &str,
    proposed_action: &str,
    tool: &str,
    user_intent: &str,
    data_classes: &[String],
    risk_level: u32,
    policy_mode: i32,
    context: &std::collections::HashMap<String, String>,
    llm: Option<&pb::LlmUsage>,
) -> Result<ActionRequest, Status> {
    let v = |r: Result<ActionRequest, RequestError>| r.map_err(|e| invalid(&e));
    let mut req = v(ActionRequest::new(actor, proposed_action))?;
    if !tool.is_empty() {
        req = v(req.with_tool(tool))?;
    }
    req.user_intent = user_intent.to_owned();
    for class in data_classes {
        req.data_classes
            .push(lexecon_core::DataClass::new(class.as_str()).map_err(|e| invalid(&e.into()))?);
    }
    req.risk_level = ActionRequest::parse_risk_level(risk_level).map_err(|e| invalid(&e))?;
    req.mode = mode_from_pb(policy_mode)?;
    req.context = context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(llm) = llm {
        req.llm = Some(LlmUsage {
            model: llm.model.clone(),
            user_id: (!llm.user_id.is_empty()).then(|| llm.user_id.clone()),
            roles: llm.roles.clone(),
            estimated_input_tokens: llm.estimated_input_tokens,
            max_output_tokens: llm.max_output_tokens,
        });
    }
    req.validate().map_err(|e| invalid(&e))?;
    Ok(req)
}

/// Validates a `DecideRequest`.
pub fn decide_request(r: &pb::DecideRequest) -> Result<(ActionRequest, Option<String>), Status> {
    let req = action_request(
        &r.actor,
        &r.proposed_action,
        &r.tool,
        &r.user_intent,
        &r.data_classes,
        r.risk_level,
        r.policy_mode,
        &r.context,
        r.llm.as_ref(),
    )?;
    if r.request_id.len() > 128 || r.request_id.chars().any(char::is_control) {
        return Err(Status::invalid_argument(
            "request_id must be at most 128 bytes without control characters",
        ));
    }
    Ok((
        req,
        (!r.request_id.is_empty()).then(|| r.request_id.clone()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> pb::DecideRequest {
        pb::DecideRequest {
            actor: "ai_agent:support".into(),
            proposed_action: "read:customer_data".into(),
            tool: "database_query".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_request_converts() {
        let (req, id) = decide_request(&pb::DecideRequest {
            risk_level: 3,
            request_id: "r1".into(),
            ..base()
        })
        .unwrap();
        assert_eq!(req.actor.as_str(), "ai_agent:support");
        assert_eq!(req.risk_level, Some(3));
        assert_eq!(id.as_deref(), Some("r1"));
    }

    #[test]
    fn every_bad_field_is_invalid_argument_naming_it() {
        let cases: Vec<(pb::DecideRequest, &str)> = vec![
            (
                pb::DecideRequest {
                    actor: "x".repeat(300),
                    ..base()
                },
                "actor",
            ),
            (
                pb::DecideRequest {
                    actor: "bad actor".into(),
                    ..base()
                },
                "actor",
            ),
            (
                pb::DecideRequest {
                    proposed_action: String::new(),
                    ..base()
                },
                "proposed_action",
            ),
            (
                pb::DecideRequest {
                    tool: "t*".into(),
                    ..base()
                },
                "tool",
            ),
            (
                pb::DecideRequest {
                    data_classes: vec!["p ii".into()],
                    ..base()
                },
                "data_classes",
            ),
            (
                pb::DecideRequest {
                    risk_level: 9,
                    ..base()
                },
                "risk_level",
            ),
            (
                pb::DecideRequest {
                    policy_mode: 42,
                    ..base()
                },
                "policy_mode",
            ),
            (
                pb::DecideRequest {
                    context: [("k".to_owned(), "v\n".to_owned())].into(),
                    ..base()
                },
                "context.k",
            ),
            (
                pb::DecideRequest {
                    request_id: "r".repeat(200),
                    ..base()
                },
                "request_id",
            ),
            (
                pb::DecideRequest {
                    llm: Some(pb::LlmUsage::default()),
                    ..base()
                },
                "llm.model",
            ),
        ];
        for (request, field) in cases {
            let status = decide_request(&request).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().starts_with(field),
                "{field}: {}",
                status.message()
            );
        }
    }

    #[test]
    fn timestamps_convert_with_micro_precision() {
        let ts = timestamp_to_pb(Timestamp::from_unix_micros(1_500_000_000_123_456));
        assert_eq!((ts.seconds, ts.nanos), (1_500_000_000, 123_456_000));
        let neg = timestamp_to_pb(Timestamp::from_unix_micros(-1));
        assert_eq!((neg.seconds, neg.nanos), (-1, 999_999_000));
    }
}
