//! The permission table: which roles may call each gRPC method.
//!
//! Every RPC of every service in `proto/lexecon/v1` is listed here (a test parses the
//! `.proto` files and fails on a missing one), health and reflection are open, and a
//! path that is not listed is denied to everyone: a new RPC stays closed until someone
//! decides who may call it.

use crate::{AuthError, Principal, PrincipalKind, Role};

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, reflection, and the RPCs that obtain a session).
    Open,
    /// A principal holding one of these roles; an empty list denies everyone.
    Roles(&'static [Role]),
}

use Role::{Admin, Agent, Auditor, ComplianceOfficer, Viewer};

const PEOPLE: &[Role] = &[Viewer, Auditor, ComplianceOfficer, Admin];
const EVERYONE: &[Role] = &[Viewer, Auditor, ComplianceOfficer, Admin, Agent];
const AUDITOR_UP: &[Role] = &[Auditor, ComplianceOfficer, Admin];
const OFFICER_UP: &[Role] = &[ComplianceOfficer, Admin];
const ADMIN: &[Role] = &[Admin];
const AGENT_ADMIN: &[Role] = &[Agent, Admin];
/// Auditors and up, and agents for what their own requests created (the engine checks
/// that the escalation is the agent's own).
const AGENT_AUDITOR_UP: &[Role] = &[Agent, Auditor, ComplianceOfficer, Admin];
const DENY_ALL: &[Role] = &[];

/// Every RPC of the `lexecon.v1` services with the access it requires, in proto order.
pub const PERMISSIONS: &[(&str, Access)] = &[
    (
        "/lexecon.v1.DecisionService/Decide",
        Access::Roles(AGENT_ADMIN),
    ),
    (
        "/lexecon.v1.DecisionService/VerifyToken",
        Access::Roles(EVERYONE),
    ),
    (
        "/lexecon.v1.DecisionService/RevokeToken",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.DecisionService/RecordCompletion",
        Access::Roles(AGENT_ADMIN),
    ),
    (
        "/lexecon.v1.DecisionService/CheckTools",
        Access::Roles(AGENT_ADMIN),
    ),
    (
        "/lexecon.v1.PolicyService/GetActivePolicy",
        Access::Roles(PEOPLE),
    ),
    (
        "/lexecon.v1.PolicyService/ValidatePolicy",
        Access::Roles(PEOPLE),
    ),
    ("/lexecon.v1.PolicyService/LoadPolicy", Access::Roles(ADMIN)),
    (
        "/lexecon.v1.PolicyService/ListPolicyVersions",
        Access::Roles(PEOPLE),
    ),
    ("/lexecon.v1.PolicyService/Explain", Access::Roles(PEOPLE)),
    (
        "/lexecon.v1.LedgerService/GetEntries",
        Access::Roles(PEOPLE),
    ),
    ("/lexecon.v1.LedgerService/GetEntry", Access::Roles(PEOPLE)),
    (
        "/lexecon.v1.LedgerService/Verify",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.LedgerService/GetCheckpoint",
        Access::Roles(PEOPLE),
    ),
    (
        "/lexecon.v1.LedgerService/GetInclusionProof",
        Access::Roles(PEOPLE),
    ),
    (
        "/lexecon.v1.LedgerService/GetConsistencyProof",
        Access::Roles(PEOPLE),
    ),
    ("/lexecon.v1.RiskService/Assess", Access::Roles(EVERYONE)),
    (
        "/lexecon.v1.BudgetService/Authorize",
        Access::Roles(AGENT_ADMIN),
    ),
    (
        "/lexecon.v1.BudgetService/Settle",
        Access::Roles(AGENT_ADMIN),
    ),
    (
        "/lexecon.v1.BudgetService/Release",
        Access::Roles(AGENT_ADMIN),
    ),
    ("/lexecon.v1.BudgetService/GetUsage", Access::Roles(PEOPLE)),
    ("/lexecon.v1.BudgetService/GetLimits", Access::Roles(PEOPLE)),
    (
        "/lexecon.v1.BudgetService/UpdateLimits",
        Access::Roles(ADMIN),
    ),
    ("/lexecon.v1.AuthService/Login", Access::Open),
    ("/lexecon.v1.AuthService/VerifyMfa", Access::Open),
    ("/lexecon.v1.AuthService/Logout", Access::Roles(PEOPLE)),
    // Every principal, agent keys included, may see who it is and which actors it
    // may speak for.
    ("/lexecon.v1.AuthService/WhoAmI", Access::Roles(EVERYONE)),
    ("/lexecon.v1.AuthService/CreateUser", Access::Roles(ADMIN)),
    ("/lexecon.v1.AuthService/EnrollMfa", Access::Roles(PEOPLE)),
    ("/lexecon.v1.AuthService/CreateApiKey", Access::Roles(ADMIN)),
    ("/lexecon.v1.AuthService/RevokeApiKey", Access::Roles(ADMIN)),
    (
        "/lexecon.v1.AuthService/SetApiKeyActors",
        Access::Roles(ADMIN),
    ),
    ("/lexecon.v1.AuthService/ListOidcProviders", Access::Open),
    ("/lexecon.v1.AuthService/ExchangeOidcToken", Access::Open),
    (
        "/lexecon.v1.OversightService/ListEscalations",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.OversightService/GetEscalation",
        Access::Roles(AGENT_AUDITOR_UP),
    ),
    (
        "/lexecon.v1.OversightService/ResolveEscalation",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.OversightService/CreateOverride",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.OversightService/ListOverrides",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.OversightService/RevokeOverride",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.OversightService/Halt",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.OversightService/Resume",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.OversightService/GetHaltStatus",
        Access::Roles(EVERYONE),
    ),
    (
        "/lexecon.v1.OversightService/WatchEvents",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.OversightService/GetAccountability",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.EvidenceService/RegisterEvidence",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.EvidenceService/GetEvidence",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.EvidenceService/ListEvidence",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.EvidenceService/VerifyEvidence",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.AuditService/QueryDecisions",
        Access::Roles(PEOPLE),
    ),
    (
        "/lexecon.v1.AuditService/ExportAudit",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.AuditService/ListAuditExports",
        Access::Roles(AUDITOR_UP),
    ),
    ("/lexecon.v1.LedgerService/Redact", Access::Roles(ADMIN)),
    (
        "/lexecon.v1.ComplianceService/ListFrameworks",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/GetComplianceStatus",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/GetGaps",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/GetTechnicalDocumentation",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/GetRecordKeepingStatus",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/PlaceLegalHold",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/ReleaseLegalHold",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/ListLegalHolds",
        Access::Roles(AUDITOR_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/RecordIntervention",
        Access::Roles(OFFICER_UP),
    ),
    (
        "/lexecon.v1.ComplianceService/GetComplianceReport",
        Access::Roles(AUDITOR_UP),
    ),
];

/// Services whose every method is open: health checks and server reflection.
pub const OPEN_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Methods a person whose role requires MFA may call before completing MFA enrollment:
/// enough to enroll, see who they are and log out, nothing else.
pub const MFA_ENROLLMENT_METHODS: &[&str] = &[
    "/lexecon.v1.AuthService/EnrollMfa",
    "/lexecon.v1.AuthService/WhoAmI",
    "/lexecon.v1.AuthService/Logout",
];

/// The access a gRPC method (full path, `/package.Service/Method`) requires.
///
/// Unknown paths get `Access::Roles(&[])`: denied to everyone.
pub fn required_access(method_path: &str) -> Access {
    if let Some(&(_, access)) = PERMISSIONS.iter().find(|(p, _)| *p == method_path) {
        return access;
    }
    let open = OPEN_SERVICES.iter().any(|svc| {
        method_path
            .strip_prefix(svc)
            .is_some_and(|method| !method.is_empty() && !method.contains('/'))
    });
    if open {
        Access::Open
    } else {
        Access::Roles(DENY_ALL)
    }
}

/// The permission table as Markdown, one row per RPC and a column per role; this is
/// the table in `docs/security.md` (a test keeps the two equal).
pub fn permission_table_markdown() -> String {
    let mut out = String::from("| method |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|");
    for _ in Role::ALL {
        out.push_str(":-:|");
    }
    out.push('\n');
    for (path, access) in PERMISSIONS {
        out.push_str(&format!("| `{path}` |"));
        for role in Role::ALL {
            let cell = match access {
                Access::Open => "open",
                Access::Roles(roles) if roles.contains(&role) => "yes",
                Access::Roles(_) => "-",
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    for svc in OPEN_SERVICES {
        out.push_str(&format!("| `{svc}*` |"));
        for _ in Role::ALL {
            out.push_str(" open |");
        }
        out.push('\n');
    }
    out
}

/// Whether `principal` may call `method_path`, given the roles that must use MFA.
///
/// A person whose role requires MFA and whose session has not completed it may call
/// only [`MFA_ENROLLMENT_METHODS`]; API keys are exempt (they are machine credentials
/// with 256 random bits, not passwords).
pub fn check_access(
    principal: &Principal,
    method_path: &str,
    mfa_required_roles: &[Role],
) -> Result<(), AuthError> {
    match required_access(method_path) {
        Access::Open => Ok(()),
        Access::Roles(roles) => {
            if !roles.contains(&principal.role) {
                return Err(AuthError::PermissionDenied {
                    method: method_path.chars().take(200).collect(),
                    role: principal.role,
                });
            }
            let needs_mfa = principal.kind == PrincipalKind::User
                && mfa_required_roles.contains(&principal.role)
                && !principal.mfa_verified;
            if needs_mfa && !MFA_ENROLLMENT_METHODS.contains(&method_path) {
                return Err(AuthError::MfaEnrollmentRequired {
                    role: principal.role,
                });
            }
            Ok(())
        }
    }
}
