//! Gathering the [`Facts`] the pure `lexecon-compliance` crate evaluates: configuration
//! values, ledger statistics (kept as entries are appended), the last recorded
//! verification, principals, oversight activity, evidence, the active policy, the keys
//! and the legal holds. Every read is an indexed query or a small table; none scans the
//! ledger.

use lexecon_compliance::Facts;
use lexecon_compliance::facts::{
    ConfigFacts, EvidenceFact, HoldFact, KeyFacts, OversightFacts, PolicyFacts, PolicyLoadFact,
    PrincipalFacts, RiskDimensionFact, SystemFacts,
};
use lexecon_core::Timestamp;

use super::store::{self, ComplianceStore};
use super::{HoldRecord, to_u64};
use crate::db::Database;
use crate::engine::{Engine, EngineError};

/// How many recent policy loads the facts carry.
const POLICY_HISTORY: i64 = 20;

fn secs_micros(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
}

impl Engine {
    /// Every fact compliance evaluates, as of now.
    pub(super) async fn gather_facts(&self) -> Result<Facts, EngineError> {
        let now = self.clock.now();
        let store = store::on(&self.db);
        let ledger = self.ledger_stats().await?;
        let config = self.config_facts();
        let window_start = now
            .unix_micros()
            .saturating_sub(secs_micros(config.activity_window_secs));
        let verification = store
            .latest_verification()
            .await?
            .map(super::store::VerificationRow::fact);
        let principals = principal_facts(store.as_ref(), now.unix_micros()).await?;
        let oversight = self
            .oversight_facts(store.as_ref(), window_start, now.unix_micros())
            .await?;
        let evidence = evidence_facts(store.as_ref()).await?;
        let policy = self.policy_facts(store.as_ref(), window_start).await?;
        let ring = self.key_ring();
        let rotations = ledger.by_kind.get("key_rotated");
        let keys = KeyFacts {
            signing_key_id: ring.active().key_id().to_owned(),
            // The current key entered the ledger with the last rotation, or with the
            // ledger's first entry when it was never rotated.
            signing_key_created_at: rotations.and_then(|r| r.last_at).or(ledger.oldest_at),
            rotations_total: rotations.map_or(0, |r| r.count),
            retired_keys: ring.retired().len() as u64,
            last_rotation_index: rotations.and_then(|r| r.last_index),
        };
        let holds = store
            .holds(true)
            .await?
            .into_iter()
            .map(HoldRecord::of)
            .map(|h| HoldFact {
                hold_id: h.hold_id,
                matter: h.matter,
                active: h.active,
                placed_at: h.placed_at,
                placed_by: h.placed_by,
                ledger_index: h.ledger_index,
            })
            .collect();
        let system = self.system_facts();
        Ok(Facts {
            now,
            config,
            ledger,
            verification,
            principals,
            oversight,
            evidence,
            policy,
            keys,
            holds,
            system,
        })
    }

    fn config_facts(&self) -> ConfigFacts {
        let c = &self.config;
        let b = &c.budget;
        ConfigFacts {
            node_id: c.node.id.clone(),
            mfa_required_roles: c
                .auth
                .mfa_required_roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            oidc_providers: u32::try_from(c.auth.oidc.len()).unwrap_or(u32::MAX),
            auto_escalate: c.oversight.auto_escalate,
            two_person_rule: c.oversight.two_person_rule,
            approvers_people_only: c.oversight.approvers == crate::config::Approvers::People,
            max_override_secs: c.oversight.max_override_secs,
            approval_ttl_secs: c.oversight.approval_ttl_secs,
            escalation_threshold: c.risk.escalation_threshold,
            token_ttl_secs: c.tokens.ttl_secs,
            // The server has no TLS settings of its own: TLS is terminated in front.
            tls_enabled: false,
            metrics_enabled: true,
            database: match &self.db {
                Database::Sqlite(_) => "sqlite".to_owned(),
                Database::Postgres(_) => "postgres".to_owned(),
            },
            redis: c.redis.url.is_some(),
            budget_enabled: b.enabled,
            budget_enforced: b.enforce_budget,
            monthly_budget_set: b.monthly_budget.is_some(),
            model_access_lists: !b.model_allowlist.is_empty()
                || !b.model_denylist.is_empty()
                || !b.restricted_models.is_empty(),
            rsa_cosign: c.layout().rsa_key().exists(),
            checkpoint_every_entries: c.ledger.checkpoint_every_entries,
            mcp_record_payloads: c.mcp.record_payloads,
            mcp_tool_rules: c.mcp.tools.len() as u64,
            log_retention_days: c.compliance.log_retention_days,
            verification_max_age_secs: c.compliance.verification_max_age_secs,
            activity_window_secs: c.compliance.activity_window_secs,
            evidence_max_age_secs: c.compliance.evidence_max_age_secs,
            key_max_age_secs: c.compliance.key_max_age_secs,
            system_name: c.compliance.system_name.clone(),
            intended_purpose: c.compliance.intended_purpose.clone(),
            provider: c.compliance.provider.clone(),
        }
    }

    async fn oversight_facts(
        &self,
        store: &dyn ComplianceStore,
        since: i64,
        now: i64,
    ) -> Result<OversightFacts, EngineError> {
        let c = store.oversight_counts(since, now).await?;
        let last = store.last_oversight().await?;
        let last_oversight_at = match last {
            Some(idx) => self
                .ledger
                .entry(to_u64(idx))
                .await?
                .and_then(|e| e.decode_leaf().ok())
                .map(|l| l.timestamp),
            None => None,
        };
        let interventions_by_kind: std::collections::BTreeMap<String, u64> = c
            .interventions
            .iter()
            .map(|(k, n)| (k.clone(), to_u64(*n)))
            .collect();
        Ok(OversightFacts {
            escalations_created: to_u64(c.escalations_created),
            escalations_resolved: to_u64(c.escalations_resolved),
            escalations_expired: to_u64(c.escalations_expired),
            pending: to_u64(c.pending),
            overdue_pending: to_u64(c.overdue_pending),
            overrides_created: to_u64(c.overrides_created),
            overrides_active: to_u64(c.overrides_active),
            halts_placed: to_u64(c.halts_placed),
            halts_active: to_u64(c.halts_active),
            interventions: interventions_by_kind.values().sum(),
            interventions_by_kind,
            two_person_approvals: to_u64(c.two_person_approvals),
            tokens_revoked: to_u64(c.tokens_revoked),
            last_oversight_index: last.map(to_u64),
            last_oversight_at,
        })
    }

    async fn policy_facts(
        &self,
        store: &dyn ComplianceStore,
        since: i64,
    ) -> Result<Option<PolicyFacts>, EngineError> {
        let active = self.policy.current();
        let compiled = &active.compiled;
        let history = self.store.policy_history(POLICY_HISTORY).await?;
        let (relations, deny_relations) = match lexecon_policy::Policy::parse(&active.source, "") {
            Ok((p, _)) => (
                p.relations().len() as u64,
                p.relations()
                    .iter()
                    .filter(|r| {
                        matches!(
                            r.kind(),
                            lexecon_policy::RelationKind::Forbids
                                | lexecon_policy::RelationKind::Conflicts
                        )
                    })
                    .count() as u64,
            ),
            Err(_) => (compiled.relation_count() as u64, 0),
        };
        let hash_hex = compiled.hash_hex();
        let ledger_index = history
            .iter()
            .find(|h| crate::engine::payload::hex(&h.hash) == hash_hex)
            .map(|h| to_u64(h.ledger_index));
        Ok(Some(PolicyFacts {
            name: compiled.name().to_owned(),
            version: compiled.version().to_owned(),
            hash_hex,
            loaded_at: Some(active.loaded_at),
            loaded_by: active.loaded_by.clone(),
            ledger_index,
            relations,
            deny_relations,
            mode: compiled.mode().to_string(),
            loads_in_window: to_u64(store.policy_loads_since(since).await?),
            history: history
                .iter()
                .map(|h| PolicyLoadFact {
                    ledger_index: to_u64(h.ledger_index),
                    at: Timestamp::from_unix_micros(h.loaded_at),
                    name: h.name.clone(),
                    version: h.version.clone(),
                    hash_hex: crate::engine::payload::hex(&h.hash),
                    loaded_by: h.loaded_by.clone(),
                })
                .collect(),
        }))
    }

    fn system_facts(&self) -> SystemFacts {
        let active = self.policy.current();
        let relations = lexecon_policy::Policy::parse(&active.source, "")
            .map(|(p, _)| {
                p.relations()
                    .iter()
                    .map(|r| format!("{}: {} {} {}", r.id(), r.from(), r.kind(), r.to()))
                    .collect()
            })
            .unwrap_or_default();
        let risk = &self.config.risk;
        let mut risk_rules: Vec<String> = risk
            .verbs
            .iter()
            .map(|(verb, rule)| format!("verb {verb}: {}", rule.description))
            .collect();
        risk_rules.extend(
            risk.data_classes
                .iter()
                .map(|(class, rule)| format!("data class {class}: {}", rule.description)),
        );
        let b = &self.config.budget;
        SystemFacts {
            lexecon_version: env!("CARGO_PKG_VERSION").to_owned(),
            relations,
            risk_dimensions: risk
                .weights
                .iter()
                .map(|(name, w)| RiskDimensionFact {
                    name: name.clone(),
                    // Weights are fractions of 1; the fact carries percent.
                    weight: (w * 100.0).round().clamp(0.0, 100.0) as u32,
                })
                .collect(),
            risk_rules,
            model_allowlist: b.model_allowlist.clone(),
            model_denylist: b.model_denylist.clone(),
            restricted_models: b.restricted_models.clone(),
            mcp_tool_rules: self
                .config
                .mcp
                .tools
                .iter()
                .map(|t| {
                    format!(
                        "{} -> {}",
                        t.pattern,
                        t.action.as_deref().unwrap_or("(the tool's own name)")
                    )
                })
                .collect(),
        }
    }
}

async fn principal_facts(
    store: &dyn ComplianceStore,
    now: i64,
) -> Result<PrincipalFacts, EngineError> {
    let mut f = PrincipalFacts::default();
    for (role, mfa, n) in store.user_counts().await? {
        let n = to_u64(n);
        f.users_total += n;
        if mfa {
            f.users_with_mfa += n;
        }
        match role.as_str() {
            "admin" => {
                f.admins += n;
                if mfa {
                    f.admins_with_mfa += n;
                }
            }
            "compliance_officer" => {
                f.officers += n;
                if mfa {
                    f.officers_with_mfa += n;
                }
            }
            "auditor" => f.auditors += n,
            "viewer" => f.viewers += n,
            _ => {}
        }
    }
    for (role, bound, forever, n) in store.key_counts(now).await? {
        let n = to_u64(n);
        f.active_api_keys += n;
        if forever {
            f.keys_without_expiry += n;
        }
        match role.as_str() {
            "admin" => f.admin_keys += n,
            "compliance_officer" => f.officer_keys += n,
            "auditor" => f.auditor_keys += n,
            "agent" => {
                f.agent_keys += n;
                if bound {
                    f.agent_keys_bound += n;
                }
            }
            _ => {}
        }
    }
    Ok(f)
}

async fn evidence_facts(store: &dyn ComplianceStore) -> Result<Vec<EvidenceFact>, EngineError> {
    let rows = store.evidence().await?;
    let indexes: Vec<i64> = rows.iter().map(|r| r.idx).collect();
    let erased: std::collections::HashSet<i64> =
        store.redacted_among(&indexes).await?.into_iter().collect();
    Ok(rows
        .into_iter()
        .map(|r| EvidenceFact {
            erased: erased.contains(&r.idx),
            evidence_id: r.evidence_id,
            artifact_type: r.artifact_type,
            control_ids: r.control_ids,
            registered_at: Timestamp::from_unix_micros(r.registered_at),
            ledger_index: to_u64(r.idx),
        })
        .collect())
}
