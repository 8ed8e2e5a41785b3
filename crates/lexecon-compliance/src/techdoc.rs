//! EU AI Act Art. 11: the Annex IV technical documentation, generated from facts.
//!
//! One structure renders to Markdown and JSON, so both carry the same content. A fact
//! the configuration must give but does not says `not provided: set compliance.X`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::checks::{age_secs, human_secs, short_hash};
use crate::facts::Facts;

/// The Annex IV documentation in two renderings with the same content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TechDoc {
    /// For people.
    pub markdown: String,
    /// For tools: `{"system_name", "generated_at", "sections": [{"number", "id", "title", "fields": [{"key", "label", "value"}]}]}`.
    pub json: Value,
}

/// A field's value: one line or a list of lines.
#[derive(Debug, Clone)]
enum FieldValue {
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct Field {
    key: &'static str,
    label: &'static str,
    value: FieldValue,
}

#[derive(Debug, Clone)]
struct Section {
    number: u32,
    id: &'static str,
    title: &'static str,
    fields: Vec<Field>,
}

fn text(key: &'static str, label: &'static str, v: impl Into<String>) -> Field {
    Field {
        key,
        label,
        value: FieldValue::Text(v.into()),
    }
}

fn list(key: &'static str, label: &'static str, v: Vec<String>, empty: &str) -> Field {
    Field {
        key,
        label,
        value: if v.is_empty() {
            FieldValue::Text(empty.to_owned())
        } else {
            FieldValue::List(v)
        },
    }
}

fn or_missing(v: &str, key: &str) -> String {
    if v.trim().is_empty() {
        format!("not provided: set {key}")
    } else {
        v.to_owned()
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn tagged(facts: &Facts, key: &str) -> Vec<String> {
    facts
        .evidence
        .iter()
        .filter(|e| {
            !e.erased
                && e.control_ids
                    .iter()
                    .any(|t| t.replace(' ', "") == key.replace(' ', ""))
        })
        .map(|e| {
            format!(
                "{} ({}, registered {}, ledger:{})",
                e.evidence_id, e.artifact_type, e.registered_at, e.ledger_index
            )
        })
        .collect()
}

fn sections(f: &Facts) -> Vec<Section> {
    let c = &f.config;
    let s = &f.system;
    let o = &f.oversight;
    let window = human_secs(c.activity_window_secs);
    let policy_line = f.policy.as_ref().map_or_else(
        || "no policy loaded".to_owned(),
        |p| {
            format!(
                "{} {} (sha256 {}), {} mode, {} relations ({} deny)",
                p.name, p.version, p.hash_hex, p.mode, p.relations, p.deny_relations
            )
        },
    );
    let map_lines = |m: &std::collections::BTreeMap<String, Vec<String>>| -> Vec<String> {
        m.iter()
            .map(|(role, models)| format!("{role}: {}", models.join(", ")))
            .collect()
    };
    let verification = f.verification.as_ref().map_or_else(
        || "never verified".to_owned(),
        |v| {
            format!(
                "{} at {} ({} ago) by {}, {} entries, {} (ledger:{})",
                if v.valid { "valid" } else { "INVALID" },
                v.at,
                human_secs(age_secs(f, v.at)),
                v.by,
                v.entries,
                if v.trusted_key_ring {
                    "trusting the node's key ring"
                } else {
                    "trusting database keys only"
                },
                v.ledger_index
            )
        },
    );
    let by_kind: Vec<String> = f
        .ledger
        .by_kind
        .iter()
        .map(|(k, st)| {
            let last = st
                .last_at
                .map_or_else(String::new, |t| format!(", last at {t}"));
            format!("{k}: {}{last}", st.count)
        })
        .collect();
    let span = match (f.ledger.oldest_at, f.ledger.newest_at) {
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => "the ledger is empty".to_owned(),
    };
    let history: Vec<String> = f
        .policy
        .as_ref()
        .map(|p| {
            p.history
                .iter()
                .map(|h| {
                    format!(
                        "ledger:{} at {}: {} {} (sha256 {}) loaded by {}",
                        h.ledger_index,
                        h.at,
                        h.name,
                        h.version,
                        short_hash(&h.hash_hex),
                        h.loaded_by
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let standards: Vec<String> = crate::frameworks()
        .iter()
        .filter_map(|fw| {
            crate::evaluate(&fw.id, f).ok().map(|st| {
                format!(
                    "{} {} ({}): {} controls, coverage {}% from live facts",
                    fw.name, fw.version, fw.id, fw.control_count, st.coverage_percent
                )
            })
        })
        .collect();
    let holds: Vec<String> = f
        .holds
        .iter()
        .filter(|h| h.active)
        .map(|h| {
            format!(
                "{}: {} (placed {} by {})",
                h.hold_id, h.matter, h.placed_at, h.placed_by
            )
        })
        .collect();

    vec![
        Section {
            number: 1,
            id: "general_description",
            title: "General description of the AI system",
            fields: vec![
                text(
                    "system_name",
                    "System name",
                    or_missing(&c.system_name, "compliance.system_name"),
                ),
                text(
                    "intended_purpose",
                    "Intended purpose",
                    or_missing(&c.intended_purpose, "compliance.intended_purpose"),
                ),
                text(
                    "provider",
                    "Provider",
                    or_missing(&c.provider, "compliance.provider"),
                ),
                text(
                    "version",
                    "Governing software",
                    if s.lexecon_version.is_empty() {
                        "Lexecon (version not reported)".to_owned()
                    } else {
                        format!("Lexecon {}", s.lexecon_version)
                    },
                ),
                text("node", "Node", or_missing(&c.node_id, "node.id")),
                text(
                    "deployment",
                    "Deployment",
                    format!(
                        "{} database, Redis {}",
                        c.database,
                        if c.redis {
                            "configured"
                        } else {
                            "not configured"
                        }
                    ),
                ),
                text("governed_by", "Policy in force", policy_line.clone()),
            ],
        },
        Section {
            number: 2,
            id: "elements_and_development",
            title: "Elements of the system and its development",
            fields: vec![
                text("policy", "Policy", policy_line),
                list("relations", "Relations", s.relations.clone(), "none"),
                list(
                    "risk_dimensions",
                    "Risk dimensions",
                    s.risk_dimensions
                        .iter()
                        .map(|d| format!("{} (weight {})", d.name, d.weight))
                        .collect(),
                    "none configured",
                ),
                list(
                    "risk_rules",
                    "Risk rules",
                    s.risk_rules.clone(),
                    "none configured",
                ),
                text(
                    "escalation_threshold",
                    "Escalation threshold",
                    format!(
                        "risk score {} (risk.escalation_threshold)",
                        c.escalation_threshold
                    ),
                ),
                list(
                    "model_allowlist",
                    "Model allowlist",
                    map_lines(&s.model_allowlist),
                    "none (budget.model_allowlist)",
                ),
                list(
                    "model_denylist",
                    "Model denylist",
                    map_lines(&s.model_denylist),
                    "none (budget.model_denylist)",
                ),
                list(
                    "restricted_models",
                    "Restricted models",
                    s.restricted_models.clone(),
                    "none (budget.restricted_models)",
                ),
                list(
                    "mcp_tool_rules",
                    "MCP tool rules",
                    s.mcp_tool_rules.clone(),
                    "none ([[mcp.tools]])",
                ),
            ],
        },
        Section {
            number: 3,
            id: "monitoring_functioning_control",
            title: "Monitoring, functioning and control (human oversight, logging)",
            fields: vec![
                text(
                    "auto_escalate",
                    "Automatic escalation",
                    format!(
                        "{} (oversight.auto_escalate), at risk score {}",
                        on_off(c.auto_escalate),
                        c.escalation_threshold
                    ),
                ),
                text(
                    "two_person_rule",
                    "Two-person rule",
                    format!(
                        "{} (oversight.two_person_rule); approvers: {}",
                        on_off(c.two_person_rule),
                        if c.approvers_people_only {
                            "people only"
                        } else {
                            "any officer or admin principal"
                        }
                    ),
                ),
                text(
                    "overrides",
                    "Overrides",
                    format!(
                        "at most {} ahead (oversight.max_override_secs)",
                        human_secs(c.max_override_secs)
                    ),
                ),
                text(
                    "overseers",
                    "Overseers",
                    format!(
                        "{} compliance officers ({} users, {} API keys), {} auditors ({} users, {} API keys), {} admins",
                        f.principals.officers + f.principals.officer_keys,
                        f.principals.officers,
                        f.principals.officer_keys,
                        f.principals.auditors + f.principals.auditor_keys,
                        f.principals.auditors,
                        f.principals.auditor_keys,
                        f.principals.admins
                    ),
                ),
                text(
                    "interventions",
                    "Interventions available",
                    "disregard, override, reverse (revokes the decision's token), stop (halts the actor): lexecon compliance intervene",
                ),
                text(
                    "logging",
                    "Logging",
                    format!(
                        "automatic: {} ledger entries, {span}; signed checkpoints every {} entries{}",
                        f.ledger.total_entries,
                        c.checkpoint_every_entries,
                        if c.rsa_cosign {
                            ", co-signed with RSA"
                        } else {
                            ""
                        }
                    ),
                ),
                text(
                    "mfa",
                    "MFA required for roles",
                    if c.mfa_required_roles.is_empty() {
                        "none (auth.mfa_required_roles)".to_owned()
                    } else {
                        c.mfa_required_roles.join(", ")
                    },
                ),
            ],
        },
        Section {
            number: 4,
            id: "performance_metrics",
            title: "Appropriateness of the performance metrics",
            fields: vec![
                text(
                    "decisions",
                    "Decisions recorded",
                    f.ledger
                        .by_kind
                        .get("decision")
                        .map_or(0, |k| k.count)
                        .to_string(),
                ),
                text(
                    "oversight_window",
                    "Oversight in the last window",
                    format!(
                        "{window}: {} escalations created, {} resolved by people, {} expired, {} pending ({} overdue); {} overrides, {} halts, {} interventions",
                        o.escalations_created,
                        o.escalations_resolved,
                        o.escalations_expired,
                        o.pending,
                        o.overdue_pending,
                        o.overrides_created,
                        o.halts_placed,
                        o.interventions
                    ),
                ),
                text("integrity", "Ledger integrity", verification.clone()),
                text(
                    "accuracy",
                    "Accuracy and robustness",
                    "Lexecon records decisions, not model accuracy: register test results as evidence for eu_ai_act:Art. 15",
                ),
                list(
                    "accuracy_evidence",
                    "Evidence for Art. 15",
                    tagged(f, "eu_ai_act:Art. 15"),
                    "not provided: register it with lexecon evidence add FILE --type test_result --control \"eu_ai_act:Art. 15\"",
                ),
            ],
        },
        Section {
            number: 5,
            id: "risk_management",
            title: "Risk management system (Art. 9)",
            fields: vec![
                text(
                    "scoring",
                    "Risk scoring",
                    format!(
                        "every request is scored in {} dimensions with {} rules; scores at or above {} escalate to a person when oversight.auto_escalate is on ({})",
                        s.risk_dimensions.len(),
                        s.risk_rules.len(),
                        c.escalation_threshold,
                        on_off(c.auto_escalate)
                    ),
                ),
                list(
                    "risk_evidence",
                    "Documented risk assessment",
                    tagged(f, "eu_ai_act:Art. 9"),
                    "not provided: register it with lexecon evidence add FILE --type risk_assessment --control \"eu_ai_act:Art. 9\"",
                ),
            ],
        },
        Section {
            number: 6,
            id: "changes",
            title: "Changes made over the lifecycle",
            fields: vec![
                list(
                    "policy_loads",
                    "Policy loads",
                    history,
                    "no policy load recorded",
                ),
                text(
                    "loads_in_window",
                    "Policy loads in the last window",
                    f.policy
                        .as_ref()
                        .map_or(0, |p| p.loads_in_window)
                        .to_string(),
                ),
                text(
                    "config_reloads",
                    "Configuration reloads",
                    f.ledger
                        .by_kind
                        .get("config_reloaded")
                        .map_or(0, |k| k.count)
                        .to_string(),
                ),
                text(
                    "key_rotations",
                    "Signing key rotations",
                    format!(
                        "{} (current key {}, {} retired keys kept)",
                        f.keys.rotations_total,
                        if f.keys.signing_key_id.is_empty() {
                            "unknown"
                        } else {
                            &f.keys.signing_key_id
                        },
                        f.keys.retired_keys
                    ),
                ),
            ],
        },
        Section {
            number: 7,
            id: "standards_applied",
            title: "Standards and specifications applied",
            fields: vec![list(
                "frameworks",
                "Control catalogs evaluated",
                standards,
                "none",
            )],
        },
        Section {
            number: 8,
            id: "eu_declaration",
            title: "EU declaration of conformity",
            fields: vec![text(
                "declaration",
                "Declaration",
                "not generated by Lexecon: the provider draws it up (Art. 47) and keeps a copy with this documentation",
            )],
        },
        Section {
            number: 9,
            id: "post_market_monitoring",
            title: "Post-market monitoring (Art. 72)",
            fields: vec![
                text(
                    "ledger",
                    "Ledger",
                    format!(
                        "{} entries, {span}; {} payloads redacted",
                        f.ledger.total_entries, f.ledger.redacted_entries
                    ),
                ),
                list("entries_by_kind", "Entries by kind", by_kind, "none"),
                text("verification", "Last full verification", verification),
                text(
                    "retention",
                    "Retention commitment",
                    format!(
                        "{} days (compliance.log_retention_days); nothing is deleted automatically",
                        c.log_retention_days
                    ),
                ),
                list("legal_holds", "Active legal holds", holds, "none"),
                text(
                    "events",
                    "Oversight events",
                    format!(
                        "in the last {window}: {} escalations, {} overrides, {} halts, {} interventions, {} tokens revoked",
                        o.escalations_created,
                        o.overrides_created,
                        o.halts_placed,
                        o.interventions,
                        o.tokens_revoked
                    ),
                ),
            ],
        },
    ]
}

/// The Annex IV documentation from `facts`.
pub fn technical_documentation(facts: &Facts) -> TechDoc {
    let secs = sections(facts);
    let mut md = String::new();
    md.push_str(&format!(
        "# Technical documentation (EU AI Act Annex IV): {}\n\nGenerated {} by Lexecon from the running configuration, policy, risk rules, model access lists and ledger statistics.\n",
        or_missing(&facts.config.system_name, "compliance.system_name"),
        facts.now
    ));
    let mut json_sections = Vec::new();
    for s in &secs {
        md.push_str(&format!("\n## {}. {}\n\n", s.number, s.title));
        let mut fields = Vec::new();
        for fd in &s.fields {
            match &fd.value {
                FieldValue::Text(t) => {
                    md.push_str(&format!("- **{}:** {}\n", fd.label, t));
                }
                FieldValue::List(items) => {
                    md.push_str(&format!("- **{}:**\n", fd.label));
                    for i in items {
                        md.push_str(&format!("  - {i}\n"));
                    }
                }
            }
            let value = match &fd.value {
                FieldValue::Text(t) => Value::String(t.clone()),
                FieldValue::List(items) => {
                    Value::Array(items.iter().cloned().map(Value::String).collect())
                }
            };
            let mut m = Map::new();
            m.insert("key".to_owned(), Value::String(fd.key.to_owned()));
            m.insert("label".to_owned(), Value::String(fd.label.to_owned()));
            m.insert("value".to_owned(), value);
            fields.push(Value::Object(m));
        }
        json_sections.push(json!({
            "number": s.number,
            "id": s.id,
            "title": s.title,
            "fields": fields,
        }));
    }
    TechDoc {
        markdown: md,
        json: json!({
            "system_name": facts.config.system_name,
            "generated_at": facts.now,
            "sections": json_sections,
        }),
    }
}
