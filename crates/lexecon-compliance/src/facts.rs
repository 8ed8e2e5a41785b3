//! The snapshot of facts a compliance evaluation reads.
//!
//! The engine gathers a [`Facts`] value (configuration, ledger statistics kept as entries
//! are appended, principals, oversight records, evidence, the last verification, the
//! loaded policy, signing keys, legal holds and what the technical documentation needs);
//! this crate only reads it. Time is an input too: [`Facts::now`] is the only clock the
//! evaluator knows, and every window comes from [`ConfigFacts`].
//!
//! Every field is a plain owned value so a snapshot can be built in tests, serialized and
//! compared. Counts are `u64`; ledger positions are `u64` indexes; roles are the role names
//! the configuration uses (`admin`, `compliance_officer`, `auditor`, `viewer`, `agent`).

use std::collections::BTreeMap;

use lexecon_core::Timestamp;
use serde::{Deserialize, Serialize};

/// Everything a compliance evaluation may look at, gathered at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// The instant the facts were gathered; the evaluator's only clock.
    pub now: Timestamp,
    /// Plain values copied from the configuration.
    pub config: ConfigFacts,
    /// Ledger statistics, kept as entries are appended.
    pub ledger: LedgerStats,
    /// The last full ledger verification that was recorded, if any.
    pub verification: Option<VerificationFact>,
    /// Users and API keys by role.
    pub principals: PrincipalFacts,
    /// Human oversight activity within `compliance.activity_window_secs`.
    pub oversight: OversightFacts,
    /// Registered evidence artifacts (newest first is customary, not required).
    pub evidence: Vec<EvidenceFact>,
    /// The policy the node runs, if one is loaded.
    pub policy: Option<PolicyFacts>,
    /// The node's signing keys.
    pub keys: KeyFacts,
    /// Legal holds, active and released.
    pub holds: Vec<HoldFact>,
    /// What the EU AI Act Annex IV documentation describes.
    pub system: SystemFacts,
}

/// Plain values copied from the configuration (`lexecon.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigFacts {
    /// `node.id`.
    pub node_id: String,
    /// `auth.mfa_required_roles`, as role names (`admin`, `compliance_officer`, ...).
    pub mfa_required_roles: Vec<String>,
    /// How many `[[auth.oidc]]` providers are configured.
    pub oidc_providers: u32,
    /// `oversight.auto_escalate`.
    pub auto_escalate: bool,
    /// `oversight.two_person_rule`.
    pub two_person_rule: bool,
    /// `oversight.approvers = "people"` (only MFA-verified user sessions resolve escalations).
    pub approvers_people_only: bool,
    /// `oversight.max_override_secs`.
    pub max_override_secs: u64,
    /// `oversight.approval_ttl_secs`.
    pub approval_ttl_secs: u64,
    /// `risk.escalation_threshold`.
    pub escalation_threshold: u8,
    /// `tokens.ttl_secs`: capability token lifetime.
    pub token_ttl_secs: u32,
    /// Whether the API is served over TLS.
    pub tls_enabled: bool,
    /// Whether the metrics endpoint is served (`server.metrics_listen`).
    pub metrics_enabled: bool,
    /// The database: `"sqlite"` or `"postgres"`.
    pub database: String,
    /// Whether Redis is configured (`redis.url`).
    pub redis: bool,
    /// `budget.enabled`.
    pub budget_enabled: bool,
    /// `budget.enforce_budget`.
    pub budget_enforced: bool,
    /// Whether `budget.monthly_budget` is set.
    pub monthly_budget_set: bool,
    /// Whether any `budget.model_allowlist`, `budget.model_denylist` or
    /// `budget.restricted_models` entry is configured.
    pub model_access_lists: bool,
    /// Whether checkpoints are co-signed with an RSA key.
    pub rsa_cosign: bool,
    /// `ledger.checkpoint_every_entries`.
    pub checkpoint_every_entries: u64,
    /// `mcp.record_payloads`.
    pub mcp_record_payloads: bool,
    /// How many `[[mcp.tools]]` rules are configured.
    pub mcp_tool_rules: u64,
    /// `compliance.log_retention_days`.
    pub log_retention_days: u32,
    /// `compliance.verification_max_age_secs`.
    pub verification_max_age_secs: u64,
    /// `compliance.activity_window_secs`.
    pub activity_window_secs: u64,
    /// `compliance.evidence_max_age_secs`.
    pub evidence_max_age_secs: u64,
    /// `compliance.key_max_age_secs`.
    pub key_max_age_secs: u64,
    /// `compliance.system_name`.
    pub system_name: String,
    /// `compliance.intended_purpose` (empty when not set).
    pub intended_purpose: String,
    /// `compliance.provider` (empty when not set).
    pub provider: String,
}

impl Default for ConfigFacts {
    /// The values of a fresh deployment's default configuration.
    fn default() -> Self {
        ConfigFacts {
            node_id: String::new(),
            mfa_required_roles: Vec::new(),
            oidc_providers: 0,
            auto_escalate: true,
            two_person_rule: true,
            approvers_people_only: false,
            max_override_secs: 86_400,
            approval_ttl_secs: 3_600,
            escalation_threshold: 80,
            token_ttl_secs: 300,
            tls_enabled: false,
            metrics_enabled: true,
            database: "sqlite".to_owned(),
            redis: false,
            budget_enabled: false,
            budget_enforced: false,
            monthly_budget_set: false,
            model_access_lists: false,
            rsa_cosign: false,
            checkpoint_every_entries: 10_000,
            mcp_record_payloads: false,
            mcp_tool_rules: 0,
            log_retention_days: 3_650,
            verification_max_age_secs: 86_400,
            activity_window_secs: 90 * 86_400,
            evidence_max_age_secs: 365 * 86_400,
            key_max_age_secs: 365 * 86_400,
            system_name: "AI agents governed by Lexecon".to_owned(),
            intended_purpose: String::new(),
            provider: String::new(),
        }
    }
}

/// Ledger statistics, maintained as entries are appended (never a scan per call).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerStats {
    /// Entries in the ledger.
    pub total_entries: u64,
    /// Entries whose payload was redacted.
    pub redacted_entries: u64,
    /// When the first entry was appended.
    pub oldest_at: Option<Timestamp>,
    /// When the last entry was appended.
    pub newest_at: Option<Timestamp>,
    /// Per entry kind (`decision`, `policy_loaded`, `oversight`, `compliance`, ...).
    pub by_kind: BTreeMap<String, KindStats>,
}

/// Statistics of one entry kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KindStats {
    /// Entries of this kind.
    pub count: u64,
    /// Index of the first entry of this kind.
    pub first_index: Option<u64>,
    /// When the first entry of this kind was appended.
    pub first_at: Option<Timestamp>,
    /// Index of the last entry of this kind.
    pub last_index: Option<u64>,
    /// When the last entry of this kind was appended.
    pub last_at: Option<Timestamp>,
}

/// The last full ledger verification, as recorded in its `compliance` ledger entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationFact {
    /// When the verification ran.
    pub at: Timestamp,
    /// Whether every entry, link, checkpoint and signature verified.
    pub valid: bool,
    /// How many entries were verified.
    pub entries: u64,
    /// Whether signatures were checked against the node's key ring from the data
    /// directory (`keys/`, `keys/retired/`) rather than only keys recorded in the database.
    pub trusted_key_ring: bool,
    /// How the keys were trusted, as recorded (`"key_ring"`, `"database"`, ...).
    pub basis: String,
    /// Index of the `compliance` entry that records this verification.
    pub ledger_index: u64,
    /// Who ran it (principal id or `local`).
    pub by: String,
}

/// Users and API keys by role. "Users" are people (password/OIDC sessions); "keys" are
/// active (not revoked, not expired) API keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrincipalFacts {
    /// Enabled users, all roles.
    pub users_total: u64,
    /// Enabled users with MFA enrolled, all roles.
    pub users_with_mfa: u64,
    /// Enabled users with the admin role.
    pub admins: u64,
    /// Admin users with MFA enrolled.
    pub admins_with_mfa: u64,
    /// Enabled users with the compliance_officer role.
    pub officers: u64,
    /// Compliance officer users with MFA enrolled.
    pub officers_with_mfa: u64,
    /// Enabled users with the auditor role.
    pub auditors: u64,
    /// Enabled users with the viewer role.
    pub viewers: u64,
    /// Active API keys, all roles.
    pub active_api_keys: u64,
    /// Active API keys with the admin role.
    pub admin_keys: u64,
    /// Active API keys with the compliance_officer role.
    pub officer_keys: u64,
    /// Active API keys with the auditor role.
    pub auditor_keys: u64,
    /// Active API keys with the agent role.
    pub agent_keys: u64,
    /// Agent keys bound to actors (an actor binding restricts whom they may decide for).
    pub agent_keys_bound: u64,
    /// Active API keys with no expiry.
    pub keys_without_expiry: u64,
}

/// Human oversight activity within `compliance.activity_window_secs`, plus what is
/// pending or active now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OversightFacts {
    /// Escalations created in the window.
    pub escalations_created: u64,
    /// Escalations resolved (approved or denied) by a person in the window.
    pub escalations_resolved: u64,
    /// Escalations that expired unresolved in the window.
    pub escalations_expired: u64,
    /// Escalations pending now.
    pub pending: u64,
    /// Pending escalations past their SLA deadline now.
    pub overdue_pending: u64,
    /// Overrides created in the window.
    pub overrides_created: u64,
    /// Overrides in force now.
    pub overrides_active: u64,
    /// Halts placed in the window.
    pub halts_placed: u64,
    /// Halts in force now.
    pub halts_active: u64,
    /// Interventions (`RecordIntervention`) recorded in the window.
    pub interventions: u64,
    /// Interventions in the window by kind (`disregard`, `reverse`, `override`, `stop`).
    pub interventions_by_kind: BTreeMap<String, u64>,
    /// Critical escalations approved by two distinct people in the window.
    pub two_person_approvals: u64,
    /// Capability tokens revoked in the window.
    pub tokens_revoked: u64,
    /// Index of the last oversight or intervention ledger entry (any time).
    pub last_oversight_index: Option<u64>,
    /// When that entry was appended.
    pub last_oversight_at: Option<Timestamp>,
}

/// One registered evidence artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvidenceFact {
    /// The evidence id (`sha256:<hex>` of its content).
    pub evidence_id: String,
    /// The artifact type it was registered with (`policy_document`, `training_record`, ...).
    pub artifact_type: String,
    /// Controls it supports, as `framework:control_id` (`soc2:CC6.1`, `eu_ai_act:Art. 14`).
    pub control_ids: Vec<String>,
    /// When it was registered.
    pub registered_at: Timestamp,
    /// Index of its `evidence_registered` entry.
    pub ledger_index: u64,
    /// Whether its content was erased by a redaction (it then supports nothing).
    pub erased: bool,
}

/// The policy the node runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyFacts {
    /// The policy's name.
    pub name: String,
    /// The policy's version.
    pub version: String,
    /// Hex SHA-256 of the policy as loaded.
    pub hash_hex: String,
    /// When it was loaded.
    pub loaded_at: Option<Timestamp>,
    /// Who loaded it (principal id, `local` or `startup`).
    pub loaded_by: String,
    /// Index of its `policy_loaded` entry.
    pub ledger_index: Option<u64>,
    /// Relations in the policy.
    pub relations: u64,
    /// Relations that deny (forbids).
    pub deny_relations: u64,
    /// Default mode (`permissive`, `strict`, `paranoid`).
    pub mode: String,
    /// Policy loads within `compliance.activity_window_secs`.
    pub loads_in_window: u64,
    /// Recent loads, newest first (a bounded list, e.g. the last 20).
    pub history: Vec<PolicyLoadFact>,
}

/// One policy load, from its `policy_loaded` ledger entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyLoadFact {
    /// Index of the `policy_loaded` entry.
    pub ledger_index: u64,
    /// When it was loaded.
    pub at: Timestamp,
    /// The policy's name.
    pub name: String,
    /// The policy's version.
    pub version: String,
    /// Hex SHA-256 of the policy.
    pub hash_hex: String,
    /// Who loaded it.
    pub loaded_by: String,
}

/// The node's signing keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyFacts {
    /// The current signing key's id.
    pub signing_key_id: String,
    /// When the current signing key was created.
    pub signing_key_created_at: Option<Timestamp>,
    /// Rotations recorded in the ledger (`key_rotated` entries).
    pub rotations_total: u64,
    /// Retired keys kept for verification (`keys/retired/`).
    pub retired_keys: u64,
    /// Index of the last `key_rotated` entry.
    pub last_rotation_index: Option<u64>,
}

/// One legal hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldFact {
    /// `hld_...`.
    pub hold_id: String,
    /// The matter it was placed for.
    pub matter: String,
    /// Whether it is in force.
    pub active: bool,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// Who placed it.
    pub placed_by: String,
    /// Index of the `compliance` entry that placed it.
    pub ledger_index: u64,
}

/// What the EU AI Act Annex IV technical documentation describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemFacts {
    /// The Lexecon version the node runs.
    pub lexecon_version: String,
    /// The policy's relations, one line each (`agent:* may read on data:public`, ...).
    pub relations: Vec<String>,
    /// Risk dimensions and their weights.
    pub risk_dimensions: Vec<RiskDimensionFact>,
    /// Risk rules, one line each (`id: description (+points)`).
    pub risk_rules: Vec<String>,
    /// `budget.model_allowlist`: role to the models it may use.
    pub model_allowlist: BTreeMap<String, Vec<String>>,
    /// `budget.model_denylist`: role to the models it may not use.
    pub model_denylist: BTreeMap<String, Vec<String>>,
    /// `budget.restricted_models`.
    pub restricted_models: Vec<String>,
    /// `[[mcp.tools]]` rules, one line each.
    pub mcp_tool_rules: Vec<String>,
}

/// One risk dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskDimensionFact {
    /// The dimension's name.
    pub name: String,
    /// Its weight in the score.
    pub weight: u32,
}
