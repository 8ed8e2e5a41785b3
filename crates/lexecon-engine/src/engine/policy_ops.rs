//! Policy administration: which policy is active at start and after SIGHUP (the file or
//! the database, contract §1), `LoadPolicy`, validation, history, explanations and risk
//! assessments, and the configuration reload.

use std::sync::Arc;

use lexecon_core::Timestamp;
use lexecon_ledger::EntryKind;
use lexecon_policy::{Diagnostic, Evaluation, RiskInput};
use lexecon_risk::{Assessment, RiskScorer};
use serde_json::json;

use super::payload::hex;
use super::store::{EngineStore, NewPolicy, PolicyRow};
use super::{ActionInput, Caller, Engine, EngineError, ops};
use crate::config::Config;
use crate::policy::{ActivePolicy, PolicyLoadError, compile, compile_file};

/// Largest policy source accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

/// Who the policy file's loads are recorded as (`loaded_by`).
const FROM_FILE: &str = "file";

/// A row of policy history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// The version hash.
    pub hash: [u8; 32],
    /// The policy's name.
    pub name: String,
    /// Its version string.
    pub version: String,
    /// Its mode word.
    pub mode: String,
    /// When it was loaded.
    pub loaded_at: Timestamp,
    /// Who loaded it: `file`, or the ledger name of the principal.
    pub loaded_by: String,
    /// Its `policy_loaded` ledger index.
    pub ledger_index: u64,
    /// Its number of terms.
    pub terms: u64,
    /// Its number of relations.
    pub relations: u64,
}

impl From<PolicyRow> for PolicyRecord {
    fn from(r: PolicyRow) -> Self {
        PolicyRecord {
            hash: r.hash.try_into().unwrap_or([0; 32]),
            name: r.name,
            version: r.version,
            mode: r.mode,
            loaded_at: Timestamp::from_unix_micros(r.loaded_at),
            loaded_by: r.loaded_by,
            ledger_index: u64::try_from(r.ledger_index).unwrap_or(0),
            terms: u64::try_from(r.terms).unwrap_or(0),
            relations: u64::try_from(r.relations).unwrap_or(0),
        }
    }
}

/// What a reload changed.
#[derive(Debug)]
pub struct Reloaded {
    /// The risk rules were replaced.
    pub risk_changed: bool,
    /// The budget limits were replaced.
    pub budget_changed: bool,
    /// Sections that changed but need a restart to take effect.
    pub needs_restart: Vec<&'static str>,
    /// The policy now active.
    pub policy: Arc<ActivePolicy>,
    /// Why that policy is the active one.
    pub policy_source: String,
}

/// A policy checked without loading it.
#[derive(Debug, Clone)]
pub struct PolicyValidation {
    /// The version hash, when valid.
    pub hash: Option<[u8; 32]>,
    /// Every error and warning.
    pub diagnostics: Vec<Diagnostic>,
}

/// The policy the engine starts with, and whether it is new to the database.
pub(crate) struct StartupPolicy {
    pub(crate) policy: ActivePolicy,
    /// Record it as a new version (loaded from the file).
    pub(crate) record: bool,
    pub(crate) why: String,
}

fn check_size(source: &str) -> Result<(), EngineError> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(EngineError::InvalidArgument(format!(
            "source is {} bytes; at most {MAX_POLICY_BYTES} are allowed",
            source.len()
        )));
    }
    Ok(())
}

/// The file is loaded when the database has no active policy yet, or when the file's
/// hash differs from the last policy loaded from the file; otherwise the database's
/// newest version (perhaps loaded with `LoadPolicy`) stays active.
pub(crate) async fn startup_policy(
    config: &Config,
    store: &dyn EngineStore,
    now: Timestamp,
) -> Result<StartupPolicy, EngineError> {
    let file = compile_file(&config.policy_file());
    let latest = store.policy_latest().await?;
    let last_from_file = store.policy_latest_from_file().await?;
    let from_file = |(compiled, source, warnings), why: String| StartupPolicy {
        policy: ActivePolicy {
            compiled,
            source,
            loaded_at: now,
            loaded_by: FROM_FILE.to_owned(),
            warnings,
        },
        record: true,
        why,
    };
    match (file, latest) {
        (Ok(file), None) => Ok(from_file(
            file,
            "the database had no policy yet: loaded the policy file".to_owned(),
        )),
        (Ok(file), Some(_)) if last_from_file.as_deref() != Some(file.0.hash().as_slice()) => {
            Ok(from_file(
                file,
                "the policy file changed since it was last loaded: loaded it".to_owned(),
            ))
        }
        (Err(e), None) => Err(e.into()),
        (file, Some((row, source))) => {
            if let Err(e) = &file {
                tracing::warn!(error = %e, "the policy file is invalid; keeping the database's active policy");
            }
            let (compiled, warnings) = compile(&source, "database")?;
            let why = if row.loaded_by == FROM_FILE {
                "the policy file is unchanged since it was last loaded".to_owned()
            } else {
                format!(
                    "the policy loaded by {} stays active until another load (the file is unchanged)",
                    row.loaded_by
                )
            };
            Ok(StartupPolicy {
                policy: ActivePolicy {
                    compiled,
                    source,
                    loaded_at: Timestamp::from_unix_micros(row.loaded_at),
                    loaded_by: row.loaded_by,
                    warnings,
                },
                record: false,
                why,
            })
        }
    }
}

impl Engine {
    pub(crate) async fn finish_startup_policy(
        &self,
        record: bool,
        why: &str,
    ) -> Result<(), EngineError> {
        let active = self.policy.current();
        if record {
            self.record_policy(&active).await?;
        } else {
            self.sync.set_policy_seq(self.store.policy_seq().await?);
        }
        tracing::info!(
            policy = active.compiled.name(),
            hash = %active.compiled.hash_hex(),
            loaded_by = %active.loaded_by,
            "active policy: {why}"
        );
        Ok(())
    }

    /// The active policy with its history record.
    pub async fn active_policy(
        &self,
        caller: &Caller,
    ) -> Result<(Arc<ActivePolicy>, PolicyRecord), EngineError> {
        self.authorize(caller, ops::GET_ACTIVE_POLICY)?;
        let active = self.policy.current();
        let hash = active.compiled.hash();
        let history = self.store.policy_history(100).await?;
        let record = history
            .into_iter()
            .map(PolicyRecord::from)
            .find(|r| r.hash == hash)
            .unwrap_or_else(|| record_of(&active, 0));
        Ok((active, record))
    }

    /// Checks a policy without loading it.
    pub fn validate_policy(
        &self,
        caller: &Caller,
        source: &str,
    ) -> Result<PolicyValidation, EngineError> {
        self.authorize(caller, ops::VALIDATE_POLICY)?;
        check_size(source)?;
        Ok(match compile(source, "request") {
            Ok((compiled, warnings)) => PolicyValidation {
                hash: Some(compiled.hash()),
                diagnostics: warnings,
            },
            Err(e) => PolicyValidation {
                hash: None,
                diagnostics: e.diagnostics,
            },
        })
    }

    /// Validates and activates a new policy on every replica, recording it in history
    /// and the ledger under the caller's name. An invalid policy changes nothing
    /// ([`EngineError::Policy`] carries every diagnostic).
    pub async fn load_policy(
        &self,
        caller: &Caller,
        source: &str,
    ) -> Result<(Arc<ActivePolicy>, PolicyRecord), EngineError> {
        self.authorize(caller, ops::LOAD_POLICY)?;
        check_size(source)?;
        let _serial = self.policy_load.lock().await;
        let (compiled, warnings) = compile(source, "LoadPolicy")?;
        let active = ActivePolicy {
            compiled,
            source: source.to_owned(),
            loaded_at: self.clock.now(),
            loaded_by: caller.ledger_name(),
            warnings,
        };
        let record = self.record_policy(&active).await?;
        Ok((self.policy.swap(active), record))
    }

    /// Loaded policy versions, newest first (`limit` 0 means 100; at most 1000).
    pub async fn policy_versions(
        &self,
        caller: &Caller,
        limit: u32,
    ) -> Result<Vec<PolicyRecord>, EngineError> {
        self.authorize(caller, ops::LIST_POLICY_VERSIONS)?;
        let limit = i64::from(if limit == 0 { 100 } else { limit.min(1000) });
        Ok(self
            .store
            .policy_history(limit)
            .await?
            .into_iter()
            .map(PolicyRecord::from)
            .collect())
    }

    /// What the active policy would decide (no ledger, no token, no budget).
    pub fn explain(
        &self,
        caller: &Caller,
        input: &ActionInput,
    ) -> Result<(Evaluation, [u8; 32]), EngineError> {
        self.authorize(caller, ops::EXPLAIN)?;
        let req = input.validate()?;
        let policy = self.policy.current();
        let risk = self.assess_request(&req);
        let eval = policy.compiled.evaluate(
            &req,
            RiskInput {
                score: Some(risk.score),
                escalation_threshold: risk.escalation_threshold,
            },
        );
        Ok((eval, policy.compiled.hash()))
    }

    /// Scores the risk of a request without deciding it. The actor may be left empty:
    /// no risk rule depends on it.
    pub fn assess(&self, caller: &Caller, input: &ActionInput) -> Result<Assessment, EngineError> {
        self.authorize(caller, ops::ASSESS)?;
        let req = if input.actor.is_empty() {
            ActionInput {
                actor: "unknown".to_owned(),
                ..input.clone()
            }
            .validate()?
        } else {
            input.validate()?
        };
        Ok(self.assess_request(&req))
    }

    /// The risk of a validated request (an LLM call's cost estimate comes from the
    /// budget's price catalog).
    pub(crate) fn assess_request(&self, req: &lexecon_core::ActionRequest) -> Assessment {
        let cost = req.llm.as_ref().and_then(|l| {
            self.budget.estimate_cost_micros(
                &l.model,
                l.estimated_input_tokens,
                l.max_output_tokens,
            )
        });
        self.risk_scorer().assess(req, cost)
    }

    /// SIGHUP: re-reads the configuration and the policy file. The risk rules take
    /// effect atomically and a `config_reloaded` entry records it; the policy file and
    /// the `[budget]` section are loaded by the rule of contract §1 (only when they
    /// changed since last loaded from the file); an invalid configuration or policy
    /// changes nothing. Keys that need a restart are reported, not applied.
    pub async fn reload(&self) -> Result<Reloaded, EngineError> {
        let new = self.config.reload()?;
        let scorer = RiskScorer::new(new.risk.clone())?;
        // Validate the policy before anything changes.
        let (compiled, source, warnings) = compile_file(&new.policy_file())?;
        new.budget.validate()?;
        let risk_changed = &new.risk != self.risk_scorer().config();
        let budget_changed = self.budget_from_file(&new.budget, "system:reload").await?;
        if risk_changed {
            match self.risk.write() {
                Ok(mut slot) => *slot = Arc::new(scorer),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(scorer),
            }
        }
        let mut needs_restart = Vec::new();
        for (key, changed) in [
            ("server", new.server != self.config.server),
            ("database", new.database != self.config.database),
            ("redis", new.redis != self.config.redis),
            ("node", new.node != self.config.node),
            ("ledger", new.ledger != self.config.ledger),
            ("tokens", new.tokens != self.config.tokens),
            ("auth", new.auth != self.config.auth),
            ("log", new.log != self.config.log),
            ("oversight", new.oversight != self.config.oversight),
            ("evidence", new.evidence != self.config.evidence),
            ("compliance", new.compliance != self.config.compliance),
            ("mcp", new.mcp != self.config.mcp),
        ] {
            if changed {
                needs_restart.push(key);
            }
        }
        if risk_changed || budget_changed {
            let applied: Vec<&str> = [("risk", risk_changed), ("budget", budget_changed)]
                .into_iter()
                .filter(|(_, c)| *c)
                .map(|(k, _)| k)
                .collect();
            self.ledger
                .append(
                    EntryKind::ConfigReloaded,
                    json!({"applied": applied, "needs_restart": needs_restart, "by": "system:reload"}),
                )
                .await?;
        }
        let _serial = self.policy_load.lock().await;
        let last_from_file = self.store.policy_latest_from_file().await?;
        let (policy, policy_source) =
            if last_from_file.as_deref() == Some(compiled.hash().as_slice()) {
                (
                    self.policy.current(),
                    "the policy file is unchanged since it was last loaded; the active policy stays"
                        .to_owned(),
                )
            } else {
                let active = ActivePolicy {
                    compiled,
                    source,
                    loaded_at: self.clock.now(),
                    loaded_by: FROM_FILE.to_owned(),
                    warnings,
                };
                self.record_policy(&active).await?;
                (
                    self.policy.swap(active),
                    "the policy file changed: loaded it".to_owned(),
                )
            };
        Ok(Reloaded {
            risk_changed,
            budget_changed,
            needs_restart,
            policy,
            policy_source,
        })
    }

    /// Appends a `policy_loaded` entry and the history row; the caller swaps it in.
    async fn record_policy(&self, active: &ActivePolicy) -> Result<PolicyRecord, EngineError> {
        let compiled = &active.compiled;
        let hash = compiled.hash();
        let payload = json!({
            "name": compiled.name(),
            "version": compiled.version(),
            "mode": compiled.mode().as_str(),
            "hash": hex(&hash),
            "terms": compiled.term_count(),
            "relations": compiled.relation_count(),
            "loaded_by": active.loaded_by,
        });
        let receipt = self.ledger.append(EntryKind::PolicyLoaded, payload).await?;
        let record = record_of(active, receipt.index);
        let seq = self
            .store
            .policy_insert(NewPolicy {
                hash: &hash,
                name: compiled.name(),
                version: compiled.version(),
                mode: compiled.mode().as_str(),
                source: &active.source,
                loaded_at: active.loaded_at.unix_micros(),
                loaded_by: &active.loaded_by,
                ledger_index: i64::try_from(receipt.index).unwrap_or(i64::MAX),
                terms: i64::try_from(record.terms).unwrap_or(i64::MAX),
                relations: i64::try_from(record.relations).unwrap_or(i64::MAX),
            })
            .await?;
        self.sync.set_policy_seq(seq);
        Ok(record)
    }

    /// Activates the newest version in the database when another replica loaded one.
    pub(crate) async fn sync_policy(&self) -> Result<(), EngineError> {
        let seq = self.store.policy_seq().await?;
        if seq <= self.sync.policy_seq() {
            return Ok(());
        }
        let _serial = self.policy_load.lock().await;
        let Some((row, source)) = self.store.policy_latest().await? else {
            return Ok(());
        };
        if row.hash.as_slice() != self.policy.current().compiled.hash().as_slice() {
            let (compiled, warnings) =
                compile(&source, "database").map_err(|e: PolicyLoadError| {
                    EngineError::Corrupt(format!("stored policy {}: {e}", row.seq))
                })?;
            tracing::info!(policy = compiled.name(), hash = %compiled.hash_hex(), loaded_by = %row.loaded_by, "another replica loaded a policy; it is active here now");
            self.policy.swap(ActivePolicy {
                compiled,
                source,
                loaded_at: Timestamp::from_unix_micros(row.loaded_at),
                loaded_by: row.loaded_by,
                warnings,
            });
        }
        self.sync.set_policy_seq(row.seq);
        Ok(())
    }
}

fn record_of(active: &ActivePolicy, ledger_index: u64) -> PolicyRecord {
    let c = &active.compiled;
    PolicyRecord {
        hash: c.hash(),
        name: c.name().to_owned(),
        version: c.version().to_owned(),
        mode: c.mode().as_str().to_owned(),
        loaded_at: active.loaded_at,
        loaded_by: active.loaded_by.clone(),
        ledger_index,
        terms: c.term_count() as u64,
        relations: c.relation_count() as u64,
    }
}
