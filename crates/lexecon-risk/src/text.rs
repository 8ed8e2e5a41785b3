//! Rule ids and descriptions as carried by factors: free to copy for the
//! compiled-in rules, reference-counted for rules from a configuration file.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::defaults;

/// A rule id or description, read as a `&str` (it derefs to one).
///
/// Assessments copy the id and description of every factor; for the default rules
/// that copy is a pointer, so scoring does not touch reference counts.
#[derive(Clone)]
pub struct RuleText(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl RuleText {
    pub(crate) fn new(text: &str) -> Self {
        RuleText(match defaults::intern(text) {
            Some(s) => Repr::Static(s),
            None => Repr::Shared(text.into()),
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for RuleText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for RuleText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for RuleText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RuleText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq for RuleText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RuleText {}

impl PartialEq<str> for RuleText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RuleText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for RuleText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Repr, RuleText};

    #[test]
    fn default_rule_texts_are_static_and_others_shared() {
        for (text, is_static) in [
            ("verb.delete", true),
            ("deletes data: hard or impossible to undo", true),
            ("tool.missing", true),
            ("caller_risk_level.5", true),
            ("context.vip", false),
            ("verb.archive", false),
        ] {
            let t = RuleText::new(text);
            assert_eq!(matches!(t.0, Repr::Static(_)), is_static, "{text}");
            assert_eq!(t, text);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("{text:?}"));
        }
    }
}
