//! Roles: what kind of principal is calling, and so what it may do.

use std::fmt;
use std::str::FromStr;

/// A principal's role.
///
/// People hold `viewer` < `auditor` < `compliance_officer` < `admin`; services hold
/// `agent`, which asks for decisions, tokens, budget and risk and nothing administrative.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads decisions, policies and the ledger.
    Viewer,
    /// As viewer, plus ledger verification.
    Auditor,
    /// As auditor, plus token revocation and compliance work.
    ComplianceOfficer,
    /// Everything.
    Admin,
    /// A service that asks for decisions; API keys only.
    Agent,
}

impl Role {
    /// Every role, people first in rising order, then `agent`.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Auditor,
        Role::ComplianceOfficer,
        Role::Admin,
        Role::Agent,
    ];

    /// The role's name as used in configuration, the CLI and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::ComplianceOfficer => "compliance_officer",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// Whether the role is for people (users) rather than services.
    pub const fn is_human(self) -> bool {
        !matches!(self, Role::Agent)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {input:?}: use viewer, auditor, compliance_officer, admin or agent")]
pub struct ParseRoleError {
    input: String,
}

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseRoleError {
                input: s.to_owned(),
            })
    }
}
