//! The named checks controls are built from. Each reads only [`Facts`] (and the control's
//! own registered evidence) and says what it found in one clause.

use serde::{Deserialize, Serialize};

use crate::facts::{EvidenceFact, Facts};
use crate::{ControlStatus, EvidenceRef};

/// A named rule implemented here; catalog rows refer to these by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// MFA is required for the admin role and every admin user has it.
    MfaForAdmins,
    /// MFA is required for admin and compliance_officer and every such user has it.
    MfaForPrivileged,
    /// Someone holds the compliance_officer role and someone the auditor role.
    OversightRolesAssigned,
    /// Overseers exist, risky decisions escalate automatically, nothing is overdue.
    HumanOversightActive,
    /// People acted on escalations, overrides, halts or interventions within the window.
    OversightExercised,
    /// Critical escalations need two distinct people.
    TwoPersonVerification,
    /// A policy with relations is loaded and not permissive.
    AccessControlEnforced,
    /// Agent keys are bound to actors and the policy denies by default.
    LeastPrivilege,
    /// API keys expire and capability tokens are short-lived.
    CredentialLifecycle,
    /// The ledger records events automatically.
    AuditLoggingEnabled,
    /// A full verification that trusted the node's key ring passed within its window.
    LedgerVerifiedRecently,
    /// The committed retention period is long enough for the control.
    RecordsRetained,
    /// Informational: lists legal holds, which block redaction; never moves a status.
    LegalHoldCapability,
    /// The signing key is younger than `compliance.key_max_age_secs`.
    SigningKeyRotation,
    /// Traffic is encrypted (TLS on, or attested by registered evidence).
    TransportEncryption,
    /// Metrics are served and the ledger is active within the window.
    MonitoringActive,
    /// Policy changes are ledger entries naming who and what.
    ChangeManagement,
    /// MCP payloads are not recorded by default.
    PrivacyByDefault,
    /// Models and tools agents may use are governed.
    ModelAndToolGovernance,
    /// Risk scoring escalates and the risk process is documented as evidence.
    RiskManagement,
    /// The Annex IV facts the configuration must give are set.
    TechnicalDocumentation,
    /// Current registered evidence proves the control.
    EvidenceRegistered,
    /// Someone can respond (halt, intervene) and a response procedure is registered.
    IncidentResponse,
}

impl Check {
    /// Every check, in declaration order.
    pub const ALL: [Check; 23] = [
        Check::MfaForAdmins,
        Check::MfaForPrivileged,
        Check::OversightRolesAssigned,
        Check::HumanOversightActive,
        Check::OversightExercised,
        Check::TwoPersonVerification,
        Check::AccessControlEnforced,
        Check::LeastPrivilege,
        Check::CredentialLifecycle,
        Check::AuditLoggingEnabled,
        Check::LedgerVerifiedRecently,
        Check::RecordsRetained,
        Check::LegalHoldCapability,
        Check::SigningKeyRotation,
        Check::TransportEncryption,
        Check::MonitoringActive,
        Check::ChangeManagement,
        Check::PrivacyByDefault,
        Check::ModelAndToolGovernance,
        Check::RiskManagement,
        Check::TechnicalDocumentation,
        Check::EvidenceRegistered,
        Check::IncidentResponse,
    ];

    /// The check's name as catalogs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Check::MfaForAdmins => "mfa_for_admins",
            Check::MfaForPrivileged => "mfa_for_privileged",
            Check::OversightRolesAssigned => "oversight_roles_assigned",
            Check::HumanOversightActive => "human_oversight_active",
            Check::OversightExercised => "oversight_exercised",
            Check::TwoPersonVerification => "two_person_verification",
            Check::AccessControlEnforced => "access_control_enforced",
            Check::LeastPrivilege => "least_privilege",
            Check::CredentialLifecycle => "credential_lifecycle",
            Check::AuditLoggingEnabled => "audit_logging_enabled",
            Check::LedgerVerifiedRecently => "ledger_verified_recently",
            Check::RecordsRetained => "records_retained",
            Check::LegalHoldCapability => "legal_hold_capability",
            Check::SigningKeyRotation => "signing_key_rotation",
            Check::TransportEncryption => "transport_encryption",
            Check::MonitoringActive => "monitoring_active",
            Check::ChangeManagement => "change_management",
            Check::PrivacyByDefault => "privacy_by_default",
            Check::ModelAndToolGovernance => "model_and_tool_governance",
            Check::RiskManagement => "risk_management",
            Check::TechnicalDocumentation => "technical_documentation",
            Check::EvidenceRegistered => "evidence_registered",
            Check::IncidentResponse => "incident_response",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: ControlStatus,
    /// One clause, no final period.
    pub(crate) why: String,
    pub(crate) evidence: Vec<EvidenceRef>,
    /// What to do; empty when satisfied.
    pub(crate) remediation: String,
}

/// What a check may look at besides the facts: the control it serves.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) facts: &'a Facts,
    /// `framework:control_id`, as evidence is tagged.
    pub(crate) key: String,
    /// Registered evidence tagged for this control, within `compliance.evidence_max_age_secs`.
    pub(crate) fresh: Vec<&'a EvidenceFact>,
    /// Tagged evidence older than the window.
    pub(crate) stale: Vec<&'a EvidenceFact>,
    pub(crate) min_days: Option<u32>,
    pub(crate) artifact: Option<&'a str>,
}

/// Seconds from `then` to `facts.now` (zero when `then` is later).
pub(crate) fn age_secs(facts: &Facts, then: lexecon_core::Timestamp) -> u64 {
    let d = facts.now.unix_secs().saturating_sub(then.unix_secs());
    u64::try_from(d).unwrap_or(0)
}

/// A duration for people: `45 seconds`, `12 minutes`, `26 hours`, `90 days`.
pub(crate) fn human_secs(secs: u64) -> String {
    fn unit(n: u64, one: &str) -> String {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    }
    if secs < 120 {
        unit(secs, "second")
    } else if secs < 2 * 3_600 {
        unit(secs / 60, "minute")
    } else if secs < 2 * 86_400 {
        unit(secs / 3_600, "hour")
    } else {
        unit(secs / 86_400, "day")
    }
}

fn config_ref(key: &str, value: impl std::fmt::Display) -> EvidenceRef {
    EvidenceRef {
        kind: "config".to_owned(),
        reference: key.to_owned(),
        detail: value.to_string(),
    }
}

fn ledger_ref(index: u64, detail: impl Into<String>) -> EvidenceRef {
    EvidenceRef {
        kind: "ledger".to_owned(),
        reference: format!("ledger:{index}"),
        detail: detail.into(),
    }
}

fn fact_ref(reference: &str, detail: impl Into<String>) -> EvidenceRef {
    EvidenceRef {
        kind: "fact".to_owned(),
        reference: reference.to_owned(),
        detail: detail.into(),
    }
}

pub(crate) fn evidence_ref(e: &EvidenceFact, facts: &Facts) -> EvidenceRef {
    EvidenceRef {
        kind: "evidence".to_owned(),
        reference: e.evidence_id.clone(),
        detail: format!(
            "{} registered {} ago (ledger:{})",
            e.artifact_type,
            human_secs(age_secs(facts, e.registered_at)),
            e.ledger_index
        ),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn roles_list(roles: &[String]) -> String {
    format!(
        "[{}]",
        roles
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn status_of(good: usize, total: usize) -> ControlStatus {
    if good == total {
        ControlStatus::Satisfied
    } else if good == 0 {
        ControlStatus::NotSatisfied
    } else {
        ControlStatus::Partial
    }
}

fn join_todo(items: Vec<String>) -> String {
    items.join("; ")
}

const ENROLL: &str = "have each of them log in and enroll TOTP MFA (AuthService/EnrollMfa)";

/// Runs `check` for the control in `ctx`.
pub(crate) fn run(check: Check, ctx: &Ctx<'_>) -> Outcome {
    match check {
        Check::MfaForAdmins => mfa(ctx, &["admin"]),
        Check::MfaForPrivileged => mfa(ctx, &["admin", "compliance_officer"]),
        Check::OversightRolesAssigned => oversight_roles(ctx),
        Check::HumanOversightActive => human_oversight(ctx),
        Check::OversightExercised => oversight_exercised(ctx),
        Check::TwoPersonVerification => two_person(ctx),
        Check::AccessControlEnforced => access_control(ctx),
        Check::LeastPrivilege => least_privilege(ctx),
        Check::CredentialLifecycle => credential_lifecycle(ctx),
        Check::AuditLoggingEnabled => audit_logging(ctx),
        Check::LedgerVerifiedRecently => verified_recently(ctx),
        Check::RecordsRetained => records_retained(ctx),
        Check::LegalHoldCapability => legal_holds(ctx),
        Check::SigningKeyRotation => key_rotation(ctx),
        Check::TransportEncryption => transport(ctx),
        Check::MonitoringActive => monitoring(ctx),
        Check::ChangeManagement => change_management(ctx),
        Check::PrivacyByDefault => privacy_by_default(ctx),
        Check::ModelAndToolGovernance => model_and_tool(ctx),
        Check::RiskManagement => risk_management(ctx),
        Check::TechnicalDocumentation => technical_documentation(ctx),
        Check::EvidenceRegistered => evidence_registered(ctx),
        Check::IncidentResponse => incident_response(ctx),
    }
}

fn mfa(ctx: &Ctx<'_>, roles: &[&str]) -> Outcome {
    let f = ctx.facts;
    let p = &f.principals;
    let required_roles = &f.config.mfa_required_roles;
    let missing: Vec<&str> = roles
        .iter()
        .copied()
        .filter(|r| !required_roles.iter().any(|x| x == r))
        .collect();
    let (people, with_mfa, who) = if roles.len() == 1 {
        (p.admins, p.admins_with_mfa, "admin users")
    } else {
        (
            p.admins + p.officers,
            p.admins_with_mfa + p.officers_with_mfa,
            "admin and compliance officer users",
        )
    };
    let with_mfa = with_mfa.min(people);
    let all_enrolled = people > 0 && with_mfa == people;
    let status = if missing.is_empty() && all_enrolled {
        ControlStatus::Satisfied
    } else if with_mfa > 0 && (missing.is_empty() || all_enrolled) {
        ControlStatus::Partial
    } else {
        ControlStatus::NotSatisfied
    };
    let config_clause = if missing.is_empty() {
        format!("auth.mfa_required_roles includes {}", roles.join(" and "))
    } else {
        format!(
            "auth.mfa_required_roles does not include {}",
            missing.join(" or ")
        )
    };
    let mut why = format!("{with_mfa} of {people} {who} have MFA enrolled; {config_clause}");
    let keys = if roles.len() == 1 {
        p.admin_keys
    } else {
        p.admin_keys + p.officer_keys
    };
    if keys > 0 {
        why.push_str(&format!(
            "; {} without MFA",
            plural(
                keys,
                "API key with these roles authenticates",
                "API keys with these roles authenticate"
            )
        ));
    }
    let mut todo = Vec::new();
    if !missing.is_empty() {
        todo.push(format!(
            "add {} to auth.mfa_required_roles in lexecon.toml and restart the server",
            missing
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    if people == 0 {
        todo.push(format!(
            "give people, not only API keys, the role: lexecon user add NAME --role {} and {ENROLL}",
            roles.first().copied().unwrap_or("admin")
        ));
    } else if with_mfa < people {
        todo.push(format!(
            "{} of the {people} {who} have no MFA yet: {ENROLL}",
            people - with_mfa
        ));
    }
    Outcome {
        status,
        why,
        evidence: vec![
            config_ref("auth.mfa_required_roles", roles_list(required_roles)),
            fact_ref(
                "principals",
                format!("{who}: {people}, with MFA: {with_mfa}; privileged API keys: {keys}"),
            ),
        ],
        remediation: if status == ControlStatus::Satisfied {
            String::new()
        } else {
            join_todo(todo)
        },
    }
}

fn officer_count(f: &Facts) -> u64 {
    f.principals.officers + f.principals.officer_keys
}

fn oversight_roles(ctx: &Ctx<'_>) -> Outcome {
    let p = &ctx.facts.principals;
    let officers = p.officers + p.officer_keys;
    let auditors = p.auditors + p.auditor_keys;
    let good = usize::from(officers > 0) + usize::from(auditors > 0);
    let status = status_of(good, 2);
    let why = format!(
        "{} ({} users, {} API keys) and {} ({} users, {} API keys) are assigned",
        plural(officers, "compliance officer", "compliance officers"),
        p.officers,
        p.officer_keys,
        plural(auditors, "auditor", "auditors"),
        p.auditors,
        p.auditor_keys
    );
    let mut todo = Vec::new();
    if officers == 0 {
        todo.push(
            "assign a compliance officer, who resolves escalations and may halt or intervene: lexecon user add NAME --role compliance_officer"
                .to_owned(),
        );
    }
    if auditors == 0 {
        todo.push(
            "assign an auditor, who reviews the ledger and verifies it: lexecon user add NAME --role auditor (or lexecon apikey create --name NAME --role auditor)"
                .to_owned(),
        );
    }
    Outcome {
        status,
        why,
        evidence: vec![fact_ref(
            "principals",
            format!(
                "compliance_officer: {} users + {} keys; auditor: {} users + {} keys",
                p.officers, p.officer_keys, p.auditors, p.auditor_keys
            ),
        )],
        remediation: join_todo(todo),
    }
}

fn window_text(f: &Facts) -> String {
    human_secs(f.config.activity_window_secs)
}

fn oversight_refs(f: &Facts) -> Vec<EvidenceRef> {
    let mut refs = vec![
        config_ref("oversight.auto_escalate", f.config.auto_escalate),
        config_ref("risk.escalation_threshold", f.config.escalation_threshold),
        config_ref(
            "compliance.activity_window_secs",
            f.config.activity_window_secs,
        ),
    ];
    if let Some(i) = f.oversight.last_oversight_index {
        refs.push(ledger_ref(i, "last oversight or intervention entry"));
    }
    refs
}

fn activity_clause(f: &Facts) -> String {
    let o = &f.oversight;
    format!(
        "in the last {}: {} created, {} resolved by people, {} expired; {}, {}, {}",
        window_text(f),
        plural(o.escalations_created, "escalation", "escalations"),
        o.escalations_resolved,
        o.escalations_expired,
        plural(o.overrides_created, "override", "overrides"),
        plural(o.halts_placed, "halt", "halts"),
        plural(o.interventions, "intervention", "interventions")
    )
}

fn human_oversight(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let officers = officer_count(f);
    let o = &f.oversight;
    let status = if officers == 0 {
        ControlStatus::NotSatisfied
    } else if f.config.auto_escalate && o.overdue_pending == 0 {
        ControlStatus::Satisfied
    } else {
        ControlStatus::Partial
    };
    let why = format!(
        "{} can resolve escalations, override, halt and intervene; oversight.auto_escalate is {} (threshold {}); {} pending, {} overdue; {}",
        plural(officers, "compliance officer", "compliance officers"),
        if f.config.auto_escalate { "on" } else { "off" },
        f.config.escalation_threshold,
        o.pending,
        o.overdue_pending,
        activity_clause(f)
    );
    let mut todo = Vec::new();
    if officers == 0 {
        todo.push("assign overseers: lexecon user add NAME --role compliance_officer".to_owned());
    }
    if !f.config.auto_escalate {
        todo.push(
            "set oversight.auto_escalate = true so risky decisions wait for a person".to_owned(),
        );
    }
    if o.overdue_pending > 0 {
        todo.push(format!(
            "resolve the overdue escalations ({}): lexecon escalations list, then approve or deny each",
            o.overdue_pending
        ));
    }
    Outcome {
        status,
        why,
        evidence: oversight_refs(f),
        remediation: join_todo(todo),
    }
}

fn oversight_exercised(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let o = &f.oversight;
    let acts = o.escalations_resolved + o.overrides_created + o.halts_placed + o.interventions;
    let neglected = o.escalations_expired + o.overdue_pending;
    let status = if acts > 0 && neglected == 0 {
        ControlStatus::Satisfied
    } else if acts == 0 && neglected > 0 {
        ControlStatus::NotSatisfied
    } else {
        ControlStatus::Partial
    };
    let why = format!(
        "{} by people in the last {} (escalations resolved, overrides, halts, interventions); {} expired unresolved, {} overdue now",
        plural(acts, "oversight act", "oversight acts"),
        window_text(f),
        plural(o.escalations_expired, "escalation", "escalations"),
        o.overdue_pending
    );
    let remediation = match status {
        ControlStatus::Satisfied => String::new(),
        _ if neglected > 0 => format!(
            "escalations were left to expire or run overdue ({} expired, {} overdue): have compliance officers work the queue within oversight.sla_secs (lexecon escalations list, then approve or deny)",
            o.escalations_expired, o.overdue_pending
        ),
        _ => format!(
            "no person acted in the last {}: review decisions and record the review (lexecon escalations approve|deny, lexecon override, lexecon halt, or lexecon compliance intervene DECISION_ID --kind K --reason R)",
            window_text(f)
        ),
    };
    Outcome {
        status,
        why,
        evidence: oversight_refs(f),
        remediation,
    }
}

fn two_person(ctx: &Ctx<'_>) -> Outcome {
    let c = &ctx.facts.config;
    let status = match (c.two_person_rule, c.approvers_people_only) {
        (true, true) => ControlStatus::Satisfied,
        (true, false) => ControlStatus::Partial,
        _ => ControlStatus::NotSatisfied,
    };
    let why = format!(
        "oversight.two_person_rule is {}; oversight.approvers is {}; {} in the last {}",
        if c.two_person_rule { "on" } else { "off" },
        if c.approvers_people_only {
            "\"people\" (MFA-verified user sessions only)"
        } else {
            "\"any\" (API keys may approve)"
        },
        plural(
            ctx.facts.oversight.two_person_approvals,
            "two-person approval",
            "two-person approvals"
        ),
        window_text(ctx.facts)
    );
    let mut todo = Vec::new();
    if !c.two_person_rule {
        todo.push("set oversight.two_person_rule = true".to_owned());
    }
    if !c.approvers_people_only {
        todo.push(
            "set oversight.approvers = \"people\" so only MFA-verified people approve".to_owned(),
        );
    }
    Outcome {
        status,
        why,
        evidence: vec![
            config_ref("oversight.two_person_rule", c.two_person_rule),
            config_ref(
                "oversight.approvers",
                if c.approvers_people_only {
                    "people"
                } else {
                    "any"
                },
            ),
        ],
        remediation: join_todo(todo),
    }
}

fn policy_ref(f: &Facts) -> Vec<EvidenceRef> {
    match &f.policy {
        Some(p) => {
            let mut refs = vec![fact_ref(
                "policy",
                format!(
                    "{} {} (sha256 {}), mode {}, {} relations ({} deny)",
                    p.name,
                    p.version,
                    short_hash(&p.hash_hex),
                    p.mode,
                    p.relations,
                    p.deny_relations
                ),
            )];
            if let Some(i) = p.ledger_index {
                refs.push(ledger_ref(i, "policy_loaded"));
            }
            refs
        }
        None => vec![fact_ref("policy", "no policy loaded")],
    }
}

pub(crate) fn short_hash(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

fn access_control(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let (status, why, remediation) = match &f.policy {
        None => (
            ControlStatus::NotSatisfied,
            "no policy is loaded, so no relation governs what agents may do".to_owned(),
            "load a policy: set policy.file in lexecon.toml (check it first with lexecon policy check FILE)".to_owned(),
        ),
        Some(p) if p.relations == 0 => (
            ControlStatus::NotSatisfied,
            format!("policy {} {} has no relations", p.name, p.version),
            "write relations that permit what each actor needs and load the policy (policy.file)".to_owned(),
        ),
        Some(p) if p.mode.eq_ignore_ascii_case("permissive") => (
            ControlStatus::Partial,
            format!(
                "policy {} {} has {} relations but runs in permissive mode, which approves whatever no relation forbids",
                p.name, p.version, p.relations
            ),
            "set the policy's mode to strict (approve only what a relation permits) and reload it".to_owned(),
        ),
        Some(p) => (
            ControlStatus::Satisfied,
            format!(
                "policy {} {} ({} mode) decides every request with {} relations, {} of them denying",
                p.name, p.version, p.mode, p.relations, p.deny_relations
            ),
            String::new(),
        ),
    };
    Outcome {
        status,
        why,
        evidence: policy_ref(f),
        remediation,
    }
}

fn least_privilege(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let p = &f.principals;
    let unbound = p.agent_keys.saturating_sub(p.agent_keys_bound);
    let default_deny = f
        .policy
        .as_ref()
        .is_some_and(|x| !x.mode.eq_ignore_ascii_case("permissive"));
    let good = usize::from(unbound == 0) + usize::from(default_deny);
    let status = status_of(good, 2);
    let mode = f.policy.as_ref().map_or_else(
        || "no policy is loaded".to_owned(),
        |x| format!("the policy runs in {} mode", x.mode),
    );
    let why = format!(
        "{} of {} agent API keys are bound to actor globs; {}",
        p.agent_keys_bound.min(p.agent_keys),
        p.agent_keys,
        mode
    );
    let mut todo = Vec::new();
    if unbound > 0 {
        todo.push(format!(
            "bind the {unbound} unbound agent keys to the actors they serve: lexecon apikey bind KEY_ID --actor GLOB"
        ));
    }
    if !default_deny {
        todo.push(
            "run a strict-mode policy so only what a relation permits is approved".to_owned(),
        );
    }
    let mut evidence = vec![fact_ref(
        "principals",
        format!(
            "agent keys: {}, bound: {}",
            p.agent_keys, p.agent_keys_bound
        ),
    )];
    evidence.extend(policy_ref(f));
    Outcome {
        status,
        why,
        evidence,
        remediation: join_todo(todo),
    }
}

fn credential_lifecycle(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let p = &f.principals;
    let ttl_ok = f.config.token_ttl_secs <= 3_600;
    let keys_ok = p.keys_without_expiry == 0;
    let good = usize::from(ttl_ok) + usize::from(keys_ok);
    let status = status_of(good, 2);
    let why = format!(
        "{} of {} active API keys never expire; capability tokens live {} (tokens.ttl_secs = {})",
        p.keys_without_expiry,
        p.active_api_keys,
        human_secs(u64::from(f.config.token_ttl_secs)),
        f.config.token_ttl_secs
    );
    let mut todo = Vec::new();
    if !keys_ok {
        todo.push(format!(
            "replace the {} keys without expiry with expiring ones (lexecon apikey create --name NAME --role ROLE --expires-in-days 90) and revoke the old ones (lexecon apikey revoke KEY_ID)",
            p.keys_without_expiry
        ));
    }
    if !ttl_ok {
        todo.push("lower tokens.ttl_secs to 3600 or less".to_owned());
    }
    Outcome {
        status,
        why,
        evidence: vec![
            config_ref("tokens.ttl_secs", f.config.token_ttl_secs),
            fact_ref(
                "principals",
                format!(
                    "active API keys: {}, without expiry: {}",
                    p.active_api_keys, p.keys_without_expiry
                ),
            ),
        ],
        remediation: join_todo(todo),
    }
}

fn kind_count(f: &Facts, kind: &str) -> u64 {
    f.ledger.by_kind.get(kind).map_or(0, |k| k.count)
}

fn audit_logging(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let l = &f.ledger;
    let mut evidence = Vec::new();
    for (kind, s) in &l.by_kind {
        if let Some(i) = s.last_index {
            evidence.push(ledger_ref(
                i,
                format!("last {kind} entry ({} in all)", s.count),
            ));
        }
    }
    if l.total_entries == 0 {
        return Outcome {
            status: ControlStatus::NotSatisfied,
            why: "the ledger holds no entries yet, so nothing has been recorded".to_owned(),
            evidence,
            remediation: "start the server with a policy (lexecon server) so policy loads and decisions are appended to the ledger".to_owned(),
        };
    }
    let span = match (l.oldest_at, l.newest_at) {
        (Some(a), Some(b)) => format!(" from {a} to {b}"),
        _ => String::new(),
    };
    Outcome {
        status: ControlStatus::Satisfied,
        why: format!(
            "the ledger holds {}{span} ({} decisions, {} oversight, {} compliance), each appended automatically before the answer is returned{}",
            plural(
                l.total_entries,
                "signed, hash-chained entry",
                "signed, hash-chained entries"
            ),
            kind_count(f, "decision"),
            kind_count(f, "oversight"),
            kind_count(f, "compliance"),
            if l.redacted_entries > 0 {
                format!(
                    "; {} payloads redacted, their leaves kept",
                    l.redacted_entries
                )
            } else {
                String::new()
            }
        ),
        evidence,
        remediation: String::new(),
    }
}

fn verified_recently(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let window = f.config.verification_max_age_secs;
    let mut evidence = vec![config_ref("compliance.verification_max_age_secs", window)];
    let run = "run a full verification against the node's key ring: lexecon verify-ledger --data-dir DIR (or LedgerService/Verify on the server)";
    let Some(v) = &f.verification else {
        return Outcome {
            status: ControlStatus::NotSatisfied,
            why: "the ledger has never been fully verified".to_owned(),
            evidence,
            remediation: format!("{run}, and repeat it at least every {}", human_secs(window)),
        };
    };
    let age = age_secs(f, v.at);
    evidence.push(EvidenceRef {
        kind: "verification".to_owned(),
        reference: format!("ledger:{}", v.ledger_index),
        detail: format!(
            "{} at {} by {}: {} entries, {}",
            if v.valid { "valid" } else { "INVALID" },
            v.at,
            v.by,
            v.entries,
            if v.trusted_key_ring {
                "trusted the key ring".to_owned()
            } else {
                format!(
                    "trust basis {}",
                    if v.basis.is_empty() {
                        "database keys"
                    } else {
                        &v.basis
                    }
                )
            }
        ),
    });
    let head = format!(
        "the last full verification ({} ago, ledger:{}) {} {} entries",
        human_secs(age),
        v.ledger_index,
        if v.valid {
            "passed over"
        } else {
            "FAILED over"
        },
        v.entries
    );
    let (status, why, remediation) = if !v.valid {
        (
            ControlStatus::NotSatisfied,
            head.clone(),
            "investigate the failure (lexecon verify-ledger names the first bad entry), restore integrity, then verify again".to_owned(),
        )
    } else if age > window {
        (
            ControlStatus::NotSatisfied,
            format!(
                "{head}, but that is older than compliance.verification_max_age_secs ({})",
                human_secs(window)
            ),
            format!("{run}; schedule it at least every {}", human_secs(window)),
        )
    } else if !v.trusted_key_ring {
        (
            ControlStatus::Partial,
            format!("{head}, but it trusted only keys recorded in the database, not the node's key ring"),
            "verify with the key ring from the data directory: lexecon verify-ledger --data-dir DIR".to_owned(),
        )
    } else {
        (
            ControlStatus::Satisfied,
            format!(
                "{head}, trusting the node's key ring, within the {} window",
                human_secs(window)
            ),
            String::new(),
        )
    };
    Outcome {
        status,
        why,
        evidence,
        remediation,
    }
}

fn records_retained(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let need = ctx.min_days.unwrap_or(183);
    let have = f.config.log_retention_days;
    let since = f
        .ledger
        .oldest_at
        .map_or_else(String::new, |t| format!("; the ledger goes back to {t}"));
    let why = format!(
        "compliance.log_retention_days is {have} ({} required here); nothing is deleted automatically{since}",
        plural(u64::from(need), "day", "days")
    );
    let ok = have >= need;
    Outcome {
        status: if ok {
            ControlStatus::Satisfied
        } else {
            ControlStatus::NotSatisfied
        },
        why,
        evidence: vec![config_ref("compliance.log_retention_days", have)],
        remediation: if ok {
            String::new()
        } else {
            format!(
                "set compliance.log_retention_days to at least {need} and keep the ledger for that long"
            )
        },
    }
}

fn legal_holds(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let active: Vec<&crate::facts::HoldFact> = f.holds.iter().filter(|h| h.active).collect();
    let mut evidence: Vec<EvidenceRef> = active
        .iter()
        .map(|h| EvidenceRef {
            kind: "hold".to_owned(),
            reference: h.hold_id.clone(),
            detail: format!(
                "{} (placed {} by {}, ledger:{})",
                h.matter, h.placed_at, h.placed_by, h.ledger_index
            ),
        })
        .collect();
    if evidence.is_empty() {
        evidence.push(fact_ref(
            "holds",
            format!("{} placed, none active", f.holds.len()),
        ));
    }
    // Informational: it explains how held records are protected but never moves a
    // control's status (a capability of the software is not a fact of the deployment).
    Outcome {
        status: ControlStatus::NotApplicable,
        why: format!(
            "redaction is refused for entries under an active legal hold; {} active, {} placed in all",
            plural(active.len() as u64, "hold", "holds"),
            f.holds.len()
        ),
        evidence,
        remediation: String::new(),
    }
}

fn key_rotation(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let k = &f.keys;
    let window = f.config.key_max_age_secs;
    let mut evidence = vec![
        config_ref("compliance.key_max_age_secs", window),
        fact_ref(
            "signing_key",
            format!(
                "{} ({} rotations, {} retired keys kept)",
                if k.signing_key_id.is_empty() {
                    "unknown"
                } else {
                    &k.signing_key_id
                },
                k.rotations_total,
                k.retired_keys
            ),
        ),
    ];
    if let Some(i) = k.last_rotation_index {
        evidence.push(ledger_ref(i, "key_rotated"));
    }
    let rotate = "rotate the signing key: lexecon keys rotate --data-dir DIR (the old key is kept in keys/retired/ so the ledger still verifies)";
    let (status, why, remediation) = match k.signing_key_created_at {
        None => (
            ControlStatus::Partial,
            "the signing key's creation time is not known, so its age cannot be checked".to_owned(),
            rotate.to_owned(),
        ),
        Some(t) => {
            let age = age_secs(f, t);
            if age <= window {
                (
                    ControlStatus::Satisfied,
                    format!(
                        "the signing key is {} old, within compliance.key_max_age_secs ({}); {}",
                        human_secs(age),
                        human_secs(window),
                        plural(k.rotations_total, "rotation recorded", "rotations recorded")
                    ),
                    String::new(),
                )
            } else {
                (
                    ControlStatus::NotSatisfied,
                    format!(
                        "the signing key is {} old, past compliance.key_max_age_secs ({})",
                        human_secs(age),
                        human_secs(window)
                    ),
                    rotate.to_owned(),
                )
            }
        }
    };
    Outcome {
        status,
        why,
        evidence,
        remediation,
    }
}

fn fresh_evidence_refs(ctx: &Ctx<'_>) -> Vec<EvidenceRef> {
    ctx.fresh
        .iter()
        .map(|e| evidence_ref(e, ctx.facts))
        .collect()
}

fn register(ctx: &Ctx<'_>, artifact: &str, what: &str) -> String {
    format!(
        "register {what}: lexecon evidence add FILE --type {artifact} --title \"...\" --control \"{}\"",
        ctx.key
    )
}

fn transport(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let mut evidence = vec![fact_ref("server.tls", f.config.tls_enabled.to_string())];
    evidence.extend(fresh_evidence_refs(ctx));
    let (status, why, remediation) = if f.config.tls_enabled {
        (
            ControlStatus::Satisfied,
            "the API is served over TLS".to_owned(),
            String::new(),
        )
    } else if let Some(e) = ctx.fresh.first() {
        (
            ControlStatus::Satisfied,
            format!(
                "the server speaks plain HTTP/2 but evidence {} attests TLS in front of it",
                e.evidence_id
            ),
            String::new(),
        )
    } else {
        (
            ControlStatus::NotSatisfied,
            "the API is served without TLS and no current evidence attests a TLS-terminating proxy in front of it".to_owned(),
            format!(
                "put a TLS-terminating proxy in front of lexecon server and {}",
                register(ctx, "external_attestation", "its configuration")
            ),
        )
    };
    Outcome {
        status,
        why,
        evidence,
        remediation,
    }
}

fn monitoring(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let window = f.config.activity_window_secs;
    let recent = f.ledger.newest_at.is_some_and(|t| age_secs(f, t) <= window);
    let metrics = f.config.metrics_enabled;
    let status = status_of(usize::from(recent) + usize::from(metrics), 2);
    let last = f.ledger.newest_at.map_or_else(
        || "the ledger has no entries".to_owned(),
        |t| {
            format!(
                "the last ledger entry is {} old",
                human_secs(age_secs(f, t))
            )
        },
    );
    let why = format!(
        "Prometheus metrics are {}; {last} (window {}); halts active now: {}",
        if metrics { "served" } else { "off" },
        human_secs(window),
        f.oversight.halts_active
    );
    let mut todo = Vec::new();
    if !metrics {
        todo.push("serve metrics (server.metrics_listen) and alert on them".to_owned());
    }
    if !recent {
        todo.push("the system recorded nothing in the window: check that agents go through lexecon and the server runs".to_owned());
    }
    let mut evidence = vec![
        config_ref("server.metrics_listen", if metrics { "on" } else { "off" }),
        config_ref("compliance.activity_window_secs", window),
    ];
    if let Some(i) = f.ledger.by_kind.values().filter_map(|k| k.last_index).max() {
        evidence.push(ledger_ref(i, "newest entry"));
    }
    Outcome {
        status,
        why,
        evidence,
        remediation: join_todo(todo),
    }
}

fn change_management(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let (status, why, remediation) = match &f.policy {
        None => (
            ControlStatus::NotSatisfied,
            "no policy is loaded, so there is no governed change to trace".to_owned(),
            "load a policy (policy.file); every load is then a ledger entry naming who loaded which hash".to_owned(),
        ),
        Some(p) => {
            let when = p
                .loaded_at
                .map_or_else(String::new, |t| format!(" at {t}"));
            match p.ledger_index {
                Some(i) => (
                    ControlStatus::Satisfied,
                    format!(
                        "policy {} {} (sha256 {}) was loaded{when} by {} as ledger:{i}; {} in the last {}, each a ledger entry",
                        p.name,
                        p.version,
                        short_hash(&p.hash_hex),
                        if p.loaded_by.is_empty() { "an unnamed principal" } else { &p.loaded_by },
                        plural(p.loads_in_window, "policy load", "policy loads"),
                        window_text(f)
                    ),
                    String::new(),
                ),
                None => (
                    ControlStatus::Partial,
                    format!(
                        "policy {} {} is loaded{when} but its load is not found in the ledger",
                        p.name, p.version
                    ),
                    "reload the policy through the server (PolicyService or a restart) so the load is ledgered".to_owned(),
                ),
            }
        }
    };
    Outcome {
        status,
        why,
        evidence: policy_ref(f),
        remediation,
    }
}

fn privacy_by_default(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let on = f.config.mcp_record_payloads;
    Outcome {
        status: if on {
            ControlStatus::Partial
        } else {
            ControlStatus::Satisfied
        },
        why: if on {
            "mcp.record_payloads is on, so tool arguments and results are kept in the ledger"
                .to_owned()
        } else {
            "mcp.record_payloads is off: the ledger keeps hashes of tool arguments and results, not their content; any entry's payload can be erased with lexecon ledger redact".to_owned()
        },
        evidence: vec![config_ref("mcp.record_payloads", on)],
        remediation: if on {
            "set mcp.record_payloads = false unless the content is needed, and erase what must go: lexecon ledger redact --index N --reason R".to_owned()
        } else {
            String::new()
        },
    }
}

fn model_and_tool(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let lists = f.config.model_access_lists;
    let tools = f.config.mcp_tool_rules;
    let policy = f.policy.is_some();
    let governed = lists || tools > 0;
    let status = match (policy, governed) {
        (true, true) => ControlStatus::Satisfied,
        (true, false) => ControlStatus::Partial,
        _ => ControlStatus::NotSatisfied,
    };
    let why = format!(
        "{}; model access lists are {}; {}",
        if policy {
            "a policy decides which actions and tools agents may use"
        } else {
            "no policy is loaded"
        },
        if lists {
            "configured"
        } else {
            "not configured"
        },
        plural(tools, "[[mcp.tools]] rule", "[[mcp.tools]] rules")
    );
    let mut todo = Vec::new();
    if !policy {
        todo.push("load a policy (policy.file)".to_owned());
    }
    if !governed {
        todo.push("restrict models per role (budget.model_allowlist, budget.model_denylist or budget.restricted_models) or classify tools with [[mcp.tools]] rules".to_owned());
    }
    let mut evidence = vec![
        config_ref(
            "budget.model_allowlist/model_denylist/restricted_models",
            if lists { "set" } else { "unset" },
        ),
        config_ref("mcp.tools", tools),
    ];
    evidence.extend(policy_ref(f));
    Outcome {
        status,
        why,
        evidence,
        remediation: join_todo(todo),
    }
}

fn risk_management(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let dims = f.system.risk_dimensions.len();
    let scoring = dims > 0 && f.config.auto_escalate;
    let documented = !ctx.fresh.is_empty();
    let status = status_of(usize::from(scoring) + usize::from(documented), 2);
    let why = format!(
        "every request is scored in {} with {} and oversight.auto_escalate is {} (threshold {}); {}",
        plural(dims as u64, "risk dimension", "risk dimensions"),
        plural(f.system.risk_rules.len() as u64, "rule", "rules"),
        if f.config.auto_escalate { "on" } else { "off" },
        f.config.escalation_threshold,
        if documented {
            format!(
                "the risk management process is documented ({})",
                ids(&ctx.fresh)
            )
        } else {
            "no current risk assessment is registered as evidence for this control".to_owned()
        }
    );
    let mut todo = Vec::new();
    if !scoring {
        todo.push(
            "turn on oversight.auto_escalate and keep the risk dimensions configured ([risk])"
                .to_owned(),
        );
    }
    if !documented {
        todo.push(register(
            ctx,
            ctx.artifact.unwrap_or("risk_assessment"),
            "the risk assessment",
        ));
    }
    let mut evidence = vec![
        config_ref("oversight.auto_escalate", f.config.auto_escalate),
        config_ref("risk.escalation_threshold", f.config.escalation_threshold),
    ];
    evidence.extend(fresh_evidence_refs(ctx));
    Outcome {
        status,
        why,
        evidence,
        remediation: join_todo(todo),
    }
}

fn ids(list: &[&EvidenceFact]) -> String {
    list.iter()
        .map(|e| e.evidence_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn technical_documentation(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let c = &f.config;
    let mut missing = Vec::new();
    if c.intended_purpose.trim().is_empty() {
        missing.push("compliance.intended_purpose");
    }
    if c.provider.trim().is_empty() {
        missing.push("compliance.provider");
    }
    let policy = f.policy.is_some();
    let good = (2 - missing.len()) + usize::from(policy);
    let status = status_of(good, 3);
    let why = if missing.is_empty() && policy {
        format!(
            "the Annex IV documentation is generated from the running configuration, policy and ledger of {:?} (provider {:?})",
            c.system_name, c.provider
        )
    } else {
        let mut gaps: Vec<String> = missing.iter().map(|m| format!("{m} is not set")).collect();
        if !policy {
            gaps.push("no policy is loaded".to_owned());
        }
        format!(
            "the Annex IV documentation is incomplete: {}",
            gaps.join(", ")
        )
    };
    let mut todo: Vec<String> = missing
        .iter()
        .map(|m| format!("set {m} in lexecon.toml"))
        .collect();
    if !policy {
        todo.push("load a policy (policy.file)".to_owned());
    }
    if !todo.is_empty() {
        todo.push("then generate it: lexecon compliance tech-doc --out FILE".to_owned());
    }
    Outcome {
        status,
        why,
        evidence: vec![
            config_ref("compliance.system_name", &c.system_name),
            config_ref(
                "compliance.intended_purpose",
                if c.intended_purpose.is_empty() {
                    "(unset)"
                } else {
                    &c.intended_purpose
                },
            ),
            config_ref(
                "compliance.provider",
                if c.provider.is_empty() {
                    "(unset)"
                } else {
                    &c.provider
                },
            ),
        ],
        remediation: join_todo(todo),
    }
}

fn evidence_registered(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let artifact = ctx.artifact.unwrap_or("external_attestation");
    let window = f.config.evidence_max_age_secs;
    let mut evidence = vec![config_ref("compliance.evidence_max_age_secs", window)];
    evidence.extend(fresh_evidence_refs(ctx));
    let (status, why, remediation) = if !ctx.fresh.is_empty() {
        (
            ControlStatus::Satisfied,
            format!(
                "{} registered for {} within {} ({})",
                plural(ctx.fresh.len() as u64, "artifact is", "artifacts are"),
                ctx.key,
                human_secs(window),
                ids(&ctx.fresh)
            ),
            String::new(),
        )
    } else if !ctx.stale.is_empty() {
        evidence.extend(ctx.stale.iter().map(|e| evidence_ref(e, f)));
        (
            ControlStatus::Partial,
            format!(
                "evidence for {} exists ({}) but is older than compliance.evidence_max_age_secs ({})",
                ctx.key,
                ids(&ctx.stale),
                human_secs(window)
            ),
            register(ctx, artifact, "a current version"),
        )
    } else {
        (
            ControlStatus::NotSatisfied,
            format!(
                "no evidence (type {artifact}) is registered for {}",
                ctx.key
            ),
            register(ctx, artifact, "the document that proves it"),
        )
    };
    Outcome {
        status,
        why,
        evidence,
        remediation,
    }
}

fn incident_response(ctx: &Ctx<'_>) -> Outcome {
    let f = ctx.facts;
    let officers = officer_count(f);
    let documented = !ctx.fresh.is_empty();
    let status = status_of(usize::from(officers > 0) + usize::from(documented), 2);
    let why = format!(
        "{} can stop agents at once (lexecon halt) and intervene on decisions; {} halts placed in the last {}, {} active; {}",
        plural(officers, "compliance officer", "compliance officers"),
        f.oversight.halts_placed,
        window_text(f),
        f.oversight.halts_active,
        if documented {
            format!("the response procedure is registered ({})", ids(&ctx.fresh))
        } else {
            "no current incident response procedure is registered as evidence".to_owned()
        }
    );
    let mut todo = Vec::new();
    if officers == 0 {
        todo.push("assign responders: lexecon user add NAME --role compliance_officer".to_owned());
    }
    if !documented {
        todo.push(register(
            ctx,
            ctx.artifact.unwrap_or("incident_report"),
            "the incident response procedure",
        ));
    }
    let mut evidence = oversight_refs(f);
    evidence.extend(fresh_evidence_refs(ctx));
    Outcome {
        status,
        why,
        evidence,
        remediation: join_todo(todo),
    }
}
