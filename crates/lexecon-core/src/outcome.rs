//! The answers of the pipeline: outcomes, risk levels and policy modes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A word that does not name a value of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {input:?}: expected one of {expected}")]
pub struct ParseEnumError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

macro_rules! word_enum {
    ($name:ident, $what:literal, $expected:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase word used in files, the CLI and JSON.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, ParseEnumError> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { what: $what, input: s.to_owned(), expected: $expected }),
                }
            }
        }
    };
}

/// What the pipeline decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The action may go ahead; a capability token is issued.
    Approved,
    /// The action may not go ahead.
    Denied,
    /// A person must confirm before the action goes ahead.
    Escalated,
}

word_enum!(Outcome, "outcome", "approved, denied, escalated", {
    Approved => "approved",
    Denied => "denied",
    Escalated => "escalated",
});

/// A coarse risk level derived from a 0-100 risk score.
///
/// Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Score below 30.
    Low,
    /// Score 30 to 59.
    Medium,
    /// Score 60 to 79.
    High,
    /// Score 80 and above.
    Critical,
}

word_enum!(RiskLevel, "risk level", "low, medium, high, critical", {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

impl RiskLevel {
    /// The level of a 0-100 score: low < 30 <= medium < 60 <= high < 80 <= critical.
    pub const fn from_score(score: u8) -> Self {
        match score {
            0..30 => RiskLevel::Low,
            30..60 => RiskLevel::Medium,
            60..80 => RiskLevel::High,
            _ => RiskLevel::Critical,
        }
    }
}

/// How strictly a policy decides.
///
/// Ordered by strictness: `Permissive < Strict < Paranoid`. The effective mode of a
/// decision is the stricter of the policy's and the request's ([`PolicyMode::stricter`]),
/// so a request can tighten the mode but never loosen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Approved unless something forbids it.
    Permissive,
    /// Approved only when a permit applies.
    Strict,
    /// As strict; no tool or any error denies, and high risk escalates.
    Paranoid,
}

word_enum!(PolicyMode, "policy mode", "permissive, strict, paranoid", {
    Permissive => "permissive",
    Strict => "strict",
    Paranoid => "paranoid",
});

impl PolicyMode {
    /// The stricter of two modes.
    pub fn stricter(self, other: PolicyMode) -> PolicyMode {
        self.max(other)
    }

    /// The effective mode for a request that may ask for a mode of its own.
    pub fn effective(self, requested: Option<PolicyMode>) -> PolicyMode {
        requested.map_or(self, |r| self.stricter(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_order_and_effective_mode() {
        use PolicyMode::*;
        assert!(Permissive < Strict && Strict < Paranoid);
        for &policy in PolicyMode::ALL {
            for &request in PolicyMode::ALL {
                let eff = policy.effective(Some(request));
                assert!(eff >= policy, "a request loosened {policy} to {eff}");
                assert!(eff >= request);
            }
            assert_eq!(policy.effective(None), policy);
        }
        assert_eq!(Paranoid.effective(Some(Permissive)), Paranoid);
        assert_eq!(Permissive.effective(Some(Strict)), Strict);
    }

    #[test]
    fn risk_level_boundaries() {
        let cases = [
            (0, RiskLevel::Low),
            (29, RiskLevel::Low),
            (30, RiskLevel::Medium),
            (59, RiskLevel::Medium),
            (60, RiskLevel::High),
            (79, RiskLevel::High),
            (80, RiskLevel::Critical),
            (100, RiskLevel::Critical),
            (255, RiskLevel::Critical),
        ];
        for (score, level) in cases {
            assert_eq!(RiskLevel::from_score(score), level, "score {score}");
        }
    }

    #[test]
    fn words_round_trip_and_unknown_words_are_named() {
        for &o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        for &m in PolicyMode::ALL {
            assert_eq!(m.to_string().parse::<PolicyMode>(), Ok(m));
        }
        let err = "lenient".parse::<PolicyMode>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown policy mode \"lenient\": expected one of permissive, strict, paranoid"
        );
        assert!(
            "Strict".parse::<PolicyMode>().is_err(),
            "words are case-sensitive"
        );
    }
}
