//! `DecideRequest` decoding: arbitrary bytes through prost's decoder for
//! `lexecon.v1.DecideRequest`, then the field validation the engine applies.
//!
//! The validation is lexecon-core's (`ActionRequest::new`, the name types,
//! `DataClass::new`, `ActionRequest::parse_risk_level`, `ActionRequest::validate`); the
//! order they are applied in, and the `request_id` and `policy_mode` checks, mirror
//! `ActionInput::validate` and `input::request_id` in crates/lexecon-engine/src/engine/
//! input.rs and `mode_from_pb` in crates/lexecon-server/src/convert.rs, which this
//! target cannot depend on (the engine pulls in sqlx; the server everything). Keep them
//! in step.
//!
//! Nothing panics; a decoded message re-encodes to bytes that decode to the same
//! message; a request that validates keeps every field as sent, its names read back
//! through their own constructors, and it validates again.
#![no_main]

use lexecon_core::{
    Action, ActionRequest, Actor, DataClass, LlmUsage, PolicyMode, RequestError, Tool,
};
use lexecon_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// `MAX_REQUEST_ID_BYTES` in crates/lexecon-engine/src/engine/input.rs.
const MAX_REQUEST_ID_BYTES: usize = 128;

fn mode(value: i32) -> Result<Option<PolicyMode>, String> {
    match pb::PolicyMode::try_from(value) {
        Ok(pb::PolicyMode::Unspecified) => Ok(None),
        Ok(pb::PolicyMode::Permissive) => Ok(Some(PolicyMode::Permissive)),
        Ok(pb::PolicyMode::Strict) => Ok(Some(PolicyMode::Strict)),
        Ok(pb::PolicyMode::Paranoid) => Ok(Some(PolicyMode::Paranoid)),
        Err(_) => Err(format!("policy_mode {value} is not a known mode")),
    }
}

fn request_id(id: &str) -> Result<Option<String>, String> {
    if id.len() > MAX_REQUEST_ID_BYTES || id.chars().any(char::is_control) {
        return Err("request_id is too long or has control characters".to_owned());
    }
    Ok((!id.is_empty()).then(|| id.to_owned()))
}

fn validate(
    r: &pb::DecideRequest,
    mode: Option<PolicyMode>,
) -> Result<ActionRequest, RequestError> {
    let mut req = ActionRequest::new(&r.actor, &r.proposed_action)?;
    if !r.tool.is_empty() {
        req = req.with_tool(&r.tool)?;
    }
    r.user_intent.clone_into(&mut req.user_intent);
    for class in &r.data_classes {
        req.data_classes.push(DataClass::new(class.as_str())?);
    }
    req.risk_level = ActionRequest::parse_risk_level(r.risk_level)?;
    req.mode = mode;
    req.context = r
        .context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    req.llm = r.llm.as_ref().map(|llm| LlmUsage {
        model: llm.model.clone(),
        user_id: (!llm.user_id.is_empty()).then(|| llm.user_id.clone()),
        roles: llm.roles.clone(),
        estimated_input_tokens: llm.estimated_input_tokens,
        max_output_tokens: llm.max_output_tokens,
    });
    req.validate()?;
    Ok(req)
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = pb::DecideRequest::decode(data) else {
        return;
    };
    let bytes = message.encode_to_vec();
    let again = pb::DecideRequest::decode(bytes.as_slice()).expect("re-encoded bytes decode");
    assert_eq!(
        again, message,
        "decode → encode → decode changed the message"
    );

    let Ok(mode) = mode(message.policy_mode) else {
        return;
    };
    if let Ok(Some(id)) = request_id(&message.request_id) {
        assert_eq!(id, message.request_id);
        assert!(id.len() <= MAX_REQUEST_ID_BYTES);
    }
    let Ok(req) = validate(&message, mode) else {
        return;
    };
    assert_eq!(req.actor.as_str(), message.actor);
    assert_eq!(req.action.as_str(), message.proposed_action);
    assert_eq!(
        req.tool.as_ref().map_or("", Tool::as_str),
        message.tool.as_str()
    );
    assert_eq!(req.data_classes.len(), message.data_classes.len());
    for (class, sent) in req.data_classes.iter().zip(&message.data_classes) {
        assert_eq!(class.as_str(), sent);
        assert_eq!(DataClass::new(class.as_str()).as_ref(), Ok(class));
    }
    assert_eq!(Actor::new(req.actor.as_str()).as_ref(), Ok(&req.actor));
    assert_eq!(Action::new(req.action.as_str()).as_ref(), Ok(&req.action));
    if let Some(tool) = &req.tool {
        assert_eq!(Tool::new(tool.as_str()).as_ref(), Ok(tool));
    }
    assert_eq!(req.context.len(), message.context.len());
    assert!(req.risk_level.is_none_or(|l| (1..=5).contains(&l)));
    assert_eq!(req.validate(), Ok(()));
    // The builder API agrees with the field-by-field path.
    let mut built = ActionRequest::new(&message.actor, &message.proposed_action)
        .expect("the names validated once");
    if let Some(tool) = &req.tool {
        built = built
            .with_tool(tool.as_str())
            .expect("the tool validated once");
    }
    for class in &message.data_classes {
        built = built
            .with_data_class(class)
            .expect("the data classes validated once");
    }
    assert_eq!(built.data_classes, req.data_classes);
});
