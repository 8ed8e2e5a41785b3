//! The inputs of engine operations as adapters hand them over: plain fields, not yet
//! checked. The engine validates every one (adapters only convert), and a bad field is
//! [`EngineError::InvalidArgument`] whose message starts with the field's name.

use std::collections::BTreeMap;

use lexecon_core::{ActionRequest, DataClass, LlmUsage, PolicyMode};

use super::EngineError;

/// The fields shared by Decide, Explain and Assess.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionInput {
    /// Who acts (for Decide, checked against the caller's actor binding).
    pub actor: String,
    /// What they propose to do.
    pub action: String,
    /// The tool, or empty.
    pub tool: String,
    /// Why, in the agent's words.
    pub user_intent: String,
    /// The data classes touched.
    pub data_classes: Vec<String>,
    /// 0 = not given, else 1..=5.
    pub risk_level: u32,
    /// A stricter mode the caller asks for.
    pub mode: Option<PolicyMode>,
    /// Context entries.
    pub context: BTreeMap<String, String>,
    /// The LLM call this action makes, if it is one.
    pub llm: Option<LlmUsage>,
}

/// A Decide: the action and the caller's idempotency key (empty for none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecideInput {
    /// The action.
    pub action: ActionInput,
    /// The idempotency key: the same caller sending it again gets the same decision.
    pub request_id: String,
}

/// The longest `request_id` accepted, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

impl ActionInput {
    /// The validated domain request.
    pub fn validate(&self) -> Result<ActionRequest, EngineError> {
        let mut req = ActionRequest::new(&self.actor, &self.action)?;
        if !self.tool.is_empty() {
            req = req.with_tool(&self.tool)?;
        }
        self.user_intent.clone_into(&mut req.user_intent);
        for class in &self.data_classes {
            req.data_classes
                .push(DataClass::new(class.as_str()).map_err(lexecon_core::RequestError::from)?);
        }
        req.risk_level = ActionRequest::parse_risk_level(self.risk_level)?;
        req.mode = self.mode;
        req.context.clone_from(&self.context);
        req.llm.clone_from(&self.llm);
        req.validate()?;
        Ok(req)
    }
}

/// Checks an idempotency key: `None` for empty.
pub(crate) fn request_id(id: &str) -> Result<Option<String>, EngineError> {
    if id.len() > MAX_REQUEST_ID_BYTES || id.chars().any(char::is_control) {
        return Err(EngineError::InvalidArgument(format!(
            "request_id must be at most {MAX_REQUEST_ID_BYTES} bytes without control characters"
        )));
    }
    Ok((!id.is_empty()).then(|| id.to_owned()))
}
