//! Validated names: actors, actions, tools and data classes.
//!
//! Values arrive from agents, so they are checked before anything looks at them:
//! bounded length, and only characters that cannot hide in logs or confuse the
//! policy's glob patterns (no whitespace, no control characters, no `*` or `?`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A name that is empty, too long, or holds a character it may not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The value is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field that was checked (`actor`, `proposed_action`, ...).
        field: &'static str,
    },
    /// The value is longer than the field allows.
    #[error("{field} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The field that was checked.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value holds a character outside the field's alphabet.
    #[error("{field} contains {ch:?} at byte {at}; allowed are {allowed}")]
    BadChar {
        /// The field that was checked.
        field: &'static str,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
        /// The alphabet, in words.
        allowed: &'static str,
    },
}

impl NameError {
    /// The name of the field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            NameError::Empty { field }
            | NameError::TooLong { field, .. }
            | NameError::BadChar { field, .. } => field,
        }
    }
}

pub(crate) const IDENT_CHARS: &str = "ASCII letters, digits and . _ - : / @ + =";

/// What the error for a bad action says is allowed: the alphabet, and how actions are
/// named, for callers who send a sentence (`"Read customer data"`) where a name belongs.
const ACTION_CHARS: &str =
    "ASCII letters, digits and . _ - : / @ + =; name actions verb:object, e.g. read:customer_data";

pub(crate) fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'@' | b'+' | b'=')
}

fn check(
    field: &'static str,
    value: &str,
    max: usize,
    ok: fn(u8) -> bool,
    allowed: &'static str,
) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { field });
    }
    if value.len() > max {
        return Err(NameError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    match value
        .char_indices()
        .find(|&(_, c)| !c.is_ascii() || !ok(c as u8))
    {
        Some((at, ch)) => Err(NameError::BadChar {
            field,
            ch,
            at,
            allowed,
        }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;
            /// The request field this type validates, as named in the API.
            pub const FIELD: &'static str = $field;

            /// Validates `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check($field, &value, $max, is_ident_char, $allowed)?;
                Ok($name(value))
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                $name::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(value: &str) -> Result<Self, NameError> {
                $name::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(value: &str) -> Result<Self, NameError> {
                $name::new(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// Who proposes an action, e.g. `ai_agent:customer_service` (at most 256 bytes).
    Actor,
    "actor",
    256,
    IDENT_CHARS
);
name_type!(
    /// What the actor proposes to do, `verb:object` by convention, e.g.
    /// `read:customer_data` (at most 256 bytes).
    Action,
    "proposed_action",
    256,
    ACTION_CHARS
);
name_type!(
    /// The tool the action goes through, e.g. `database_query` (at most 128 bytes).
    Tool,
    "tool",
    128,
    IDENT_CHARS
);
name_type!(
    /// A class of data the action touches, e.g. `pii` (at most 64 bytes).
    DataClass,
    "data_classes",
    64,
    IDENT_CHARS
);

impl Action {
    /// The verb of a `verb:object` action (`delete` in `delete:customer_records`);
    /// the whole action when it has no `:`.
    pub fn verb(&self) -> &str {
        self.0
            .split_once(':')
            .map_or(self.0.as_str(), |(verb, _)| verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_names() {
        for ok in [
            "ai_agent:customer_service",
            "a",
            "svc/billing@eu-west-1",
            "key=value+1.0",
        ] {
            assert_eq!(Actor::new(ok).unwrap().as_str(), ok);
        }
        assert_eq!(
            Action::new("delete:customer_records").unwrap().verb(),
            "delete"
        );
        assert_eq!(Action::new("execute").unwrap().verb(), "execute");
    }

    #[test]
    fn rejects_empty_long_and_odd_characters_naming_the_field() {
        assert_eq!(
            Actor::new("").unwrap_err(),
            NameError::Empty { field: "actor" }
        );
        let long = "x".repeat(257);
        assert_eq!(
            Actor::new(long).unwrap_err(),
            NameError::TooLong {
                field: "actor",
                len: 257,
                max: 256
            }
        );
        assert!(Actor::new("x".repeat(256)).is_ok());
        for (bad, ch) in [
            ("a b", ' '),
            ("a*", '*'),
            ("q?", '?'),
            ("tab\t", '\t'),
            ("é", 'é'),
            ("nul\0", '\0'),
        ] {
            match Tool::new(bad).unwrap_err() {
                NameError::BadChar { field, ch: got, .. } => {
                    assert_eq!(field, "tool");
                    assert_eq!(got, ch);
                }
                other => panic!("{bad:?}: {other}"),
            }
        }
        let msg = DataClass::new("p ii").unwrap_err().to_string();
        assert_eq!(
            msg,
            "data_classes contains ' ' at byte 1; allowed are ASCII letters, digits and . _ - : / @ + ="
        );
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<Actor>("\"ok\"").is_ok());
        let err = serde_json::from_str::<Actor>("\"not ok\"").unwrap_err();
        assert!(err.to_string().contains("actor contains ' '"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_accepts_exactly_the_alphabet(s in "\\PC{0,300}") {
            let ok = !s.is_empty() && s.len() <= 256 && s.bytes().all(is_ident_char);
            proptest::prop_assert_eq!(Actor::new(s).is_ok(), ok);
        }
    }
}
