//! The action an agent proposes: the input of every decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Action, Actor, DataClass, NameError, PolicyMode, Tool};

/// The most data classes one request may name.
pub const MAX_DATA_CLASSES: usize = 32;
/// The most context entries one request may carry.
pub const MAX_CONTEXT_ENTRIES: usize = 32;
/// The longest context key, in bytes.
pub const MAX_CONTEXT_KEY_LEN: usize = 64;
/// The longest context value, in bytes.
pub const MAX_CONTEXT_VALUE_LEN: usize = 256;
/// The longest `user_intent`, in bytes.
pub const MAX_INTENT_LEN: usize = 1024;
/// The most roles an LLM usage may name.
pub const MAX_ROLES: usize = 16;

/// A request field that breaks a rule; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A name field (actor, action, tool, data class) is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// `risk_level` is outside 1..=5.
    #[error("risk_level must be between 1 and 5, got {0}")]
    RiskLevel(u32),
    /// Any other field: which one and what is wrong.
    #[error("{field} {problem}")]
    Field {
        /// The field, as named in the API (`context.region`, `llm.model`, ...).
        field: String,
        /// What is wrong with it, e.g. "must not be empty".
        problem: String,
    },
}

impl RequestError {
    /// The name of the offending field, as the API names it.
    pub fn field(&self) -> &str {
        match self {
            RequestError::Name(e) => e.field(),
            RequestError::RiskLevel(_) => "risk_level",
            RequestError::Field { field, .. } => field,
        }
    }

    fn field_err(field: impl Into<String>, problem: impl Into<String>) -> Self {
        RequestError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// An LLM call the action makes, for budget, rate and model-access checks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LlmUsage {
    /// The model, e.g. `gpt-4o-mini` (matched case-insensitively by the budget).
    pub model: String,
    /// The user the spend is charged to; `anonymous` when absent.
    pub user_id: Option<String>,
    /// Roles of that user, for per-role limits and model lists.
    pub roles: Vec<String>,
    /// Estimated prompt tokens.
    pub estimated_input_tokens: u64,
    /// The most completion tokens the call may produce.
    pub max_output_tokens: u64,
}

/// A proposed action, validated field by field.
///
/// Names are validated by their types; [`ActionRequest::validate`] checks the rest
/// (counts, lengths, the risk level range). Build one with [`ActionRequest::new`]
/// and the `with_*` methods, each of which validates what it adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// Who proposes the action.
    pub actor: Actor,
    /// What they propose to do.
    pub action: Action,
    /// The tool the action goes through, if any.
    pub tool: Option<Tool>,
    /// Why, in the agent's words (recorded, never matched).
    #[serde(default)]
    pub user_intent: String,
    /// Classes of data the action touches.
    #[serde(default)]
    pub data_classes: Vec<DataClass>,
    /// The caller's own risk estimate, 1..=5.
    pub risk_level: Option<u8>,
    /// A mode the caller asks for; it can only make the decision stricter.
    pub mode: Option<PolicyMode>,
    /// Free-form attributes (`region`, `resource`, `volume`, ...).
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// The LLM call this action makes, if it is one.
    pub llm: Option<LlmUsage>,
}

fn check_text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<(), RequestError> {
    if !allow_empty && value.is_empty() {
        return Err(RequestError::field_err(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(RequestError::field_err(
            field,
            format!("is {} bytes long; at most {max} are allowed", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(RequestError::field_err(
            field,
            format!("contains the control character {c:?}"),
        ));
    }
    Ok(())
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

impl ActionRequest {
    /// A request with the two fields every request has.
    pub fn new(actor: &str, action: &str) -> Result<Self, RequestError> {
        Ok(ActionRequest {
            actor: Actor::new(actor)?,
            action: Action::new(action)?,
            tool: None,
            user_intent: String::new(),
            data_classes: Vec::new(),
            risk_level: None,
            mode: None,
            context: BTreeMap::new(),
            llm: None,
        })
    }

    /// Sets the tool.
    pub fn with_tool(mut self, tool: &str) -> Result<Self, RequestError> {
        self.tool = Some(Tool::new(tool)?);
        Ok(self)
    }

    /// Adds a data class.
    pub fn with_data_class(mut self, class: &str) -> Result<Self, RequestError> {
        self.data_classes.push(DataClass::new(class)?);
        self.validate()?;
        Ok(self)
    }

    /// Sets the caller's risk level (1..=5).
    pub fn with_risk_level(mut self, level: u32) -> Result<Self, RequestError> {
        self.risk_level =
            Some(Self::parse_risk_level(level)?.ok_or(RequestError::RiskLevel(level))?);
        Ok(self)
    }

    /// Asks for a mode (it can only tighten the policy's).
    pub fn with_mode(mut self, mode: PolicyMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Sets the intent.
    pub fn with_intent(mut self, intent: &str) -> Result<Self, RequestError> {
        intent.clone_into(&mut self.user_intent);
        self.validate()?;
        Ok(self)
    }

    /// Adds a context entry.
    pub fn with_context(mut self, key: &str, value: &str) -> Result<Self, RequestError> {
        self.context.insert(key.to_owned(), value.to_owned());
        self.validate()?;
        Ok(self)
    }

    /// Attaches an LLM call.
    pub fn with_llm(mut self, llm: LlmUsage) -> Result<Self, RequestError> {
        self.llm = Some(llm);
        self.validate()?;
        Ok(self)
    }

    /// The API's encoding of a risk level: 0 means not given, 1..=5 a level,
    /// anything else is an error.
    pub fn parse_risk_level(level: u32) -> Result<Option<u8>, RequestError> {
        match level {
            0 => Ok(None),
            1..=5 => Ok(u8::try_from(level).ok()),
            _ => Err(RequestError::RiskLevel(level)),
        }
    }

    /// Checks the limits that the field types do not carry themselves.
    pub fn validate(&self) -> Result<(), RequestError> {
        check_text("user_intent", &self.user_intent, MAX_INTENT_LEN, true)?;
        if self.data_classes.len() > MAX_DATA_CLASSES {
            return Err(RequestError::field_err(
                "data_classes",
                format!(
                    "has {} entries; at most {MAX_DATA_CLASSES} are allowed",
                    self.data_classes.len()
                ),
            ));
        }
        if let Some(level) = self.risk_level.filter(|l| !(1..=5).contains(l)) {
            return Err(RequestError::RiskLevel(u32::from(level)));
        }
        if self.context.len() > MAX_CONTEXT_ENTRIES {
            return Err(RequestError::field_err(
                "context",
                format!(
                    "has {} entries; at most {MAX_CONTEXT_ENTRIES} are allowed",
                    self.context.len()
                ),
            ));
        }
        for (key, value) in &self.context {
            check_text("context key", key, MAX_CONTEXT_KEY_LEN, false)?;
            if let Some(c) = key.chars().find(|&c| !is_key_char(c)) {
                return Err(RequestError::field_err(
                    format!("context.{}", key.escape_debug()),
                    format!("key contains {c:?}; keys use ASCII letters, digits and _ - ."),
                ));
            }
            check_text(
                &format!("context.{key}"),
                value,
                MAX_CONTEXT_VALUE_LEN,
                true,
            )?;
        }
        if let Some(llm) = &self.llm {
            check_text("llm.model", &llm.model, 128, false)?;
            if let Some(user) = &llm.user_id {
                check_text("llm.user_id", user, 256, false)?;
            }
            if llm.roles.len() > MAX_ROLES {
                return Err(RequestError::field_err(
                    "llm.roles",
                    format!(
                        "has {} entries; at most {MAX_ROLES} are allowed",
                        llm.roles.len()
                    ),
                ));
            }
            for role in &llm.roles {
                check_text("llm.roles", role, 64, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_full_request() {
        let req = ActionRequest::new("ai_agent:support", "read:customer_data")
            .and_then(|r| r.with_tool("database_query"))
            .and_then(|r| r.with_data_class("pii"))
            .and_then(|r| r.with_risk_level(2))
            .and_then(|r| r.with_context("region", "eu-west"))
            .and_then(|r| r.with_intent("answer a ticket"))
            .map(|r| r.with_mode(PolicyMode::Paranoid))
            .unwrap();
        assert_eq!(req.tool.as_ref().map(Tool::as_str), Some("database_query"));
        assert_eq!(req.risk_level, Some(2));
        assert_eq!(req.mode, Some(PolicyMode::Paranoid));
        assert!(req.validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = ActionRequest::new("a", "b").unwrap();
        let cases: Vec<(Result<ActionRequest, RequestError>, &str)> = vec![
            (ActionRequest::new("", "b"), "actor"),
            (ActionRequest::new("a", "b c"), "proposed_action"),
            (base.clone().with_tool(&"t".repeat(129)), "tool"),
            (base.clone().with_data_class("p i i"), "data_classes"),
            (base.clone().with_risk_level(9), "risk_level"),
            (base.clone().with_risk_level(0), "risk_level"),
            (base.clone().with_context("re gion", "x"), "context.re gion"),
            (
                base.clone().with_context("region", "eu\nwest"),
                "context.region",
            ),
            (
                base.clone().with_context("region", &"x".repeat(257)),
                "context.region",
            ),
            (base.clone().with_intent(&"i".repeat(1025)), "user_intent"),
            (base.clone().with_llm(LlmUsage::default()), "llm.model"),
        ];
        for (result, field) in cases {
            let err = result.unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn too_many_entries_are_refused() {
        let mut req = ActionRequest::new("a", "b").unwrap();
        for i in 0..MAX_DATA_CLASSES {
            req = req.with_data_class(&format!("c{i}")).unwrap();
        }
        assert_eq!(
            req.clone().with_data_class("one_more").unwrap_err().field(),
            "data_classes"
        );
        let mut req = ActionRequest::new("a", "b").unwrap();
        for i in 0..MAX_CONTEXT_ENTRIES {
            req = req.with_context(&format!("k{i}"), "v").unwrap();
        }
        assert_eq!(
            req.with_context("one_more", "v").unwrap_err().field(),
            "context"
        );
    }

    #[test]
    fn risk_level_wire_encoding() {
        assert_eq!(ActionRequest::parse_risk_level(0), Ok(None));
        assert_eq!(ActionRequest::parse_risk_level(5), Ok(Some(5)));
        assert_eq!(
            ActionRequest::parse_risk_level(6),
            Err(RequestError::RiskLevel(6))
        );
    }
}
