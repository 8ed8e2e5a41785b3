//! The six risk dimensions and per-dimension arrays.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the six dimensions a risk assessment scores, each 0-100.
///
/// The order of declaration is the order of [`Dimension::ALL`], of the arrays indexed
/// by dimension, and of every listing (human output, JSON, docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// Compromise of systems, credentials or code execution.
    Security,
    /// Exposure of personal data.
    Privacy,
    /// Breach of a law, regulation or contract (GDPR, HIPAA, PCI DSS, ...).
    Compliance,
    /// Damage to running systems: outages, data loss, irreversible changes.
    Operational,
    /// Harm to the organisation's standing: public or external-facing mistakes.
    Reputational,
    /// Money moved, spent or lost.
    Financial,
}

impl Dimension {
    /// Every dimension, in declaration order.
    pub const ALL: [Dimension; 6] = [
        Dimension::Security,
        Dimension::Privacy,
        Dimension::Compliance,
        Dimension::Operational,
        Dimension::Reputational,
        Dimension::Financial,
    ];

    /// The number of dimensions.
    pub const COUNT: usize = 6;

    /// The lowercase name used in configuration, the CLI and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Security => "security",
            Dimension::Privacy => "privacy",
            Dimension::Compliance => "compliance",
            Dimension::Operational => "operational",
            Dimension::Reputational => "reputational",
            Dimension::Financial => "financial",
        }
    }

    /// The position of this dimension in [`Dimension::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A word that names no dimension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown dimension {0:?}: use security, privacy, compliance, operational, reputational or financial"
)]
pub struct UnknownDimension(pub String);

impl FromStr for Dimension {
    type Err = UnknownDimension;

    fn from_str(s: &str) -> Result<Self, UnknownDimension> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDimension(s.to_owned()))
    }
}
