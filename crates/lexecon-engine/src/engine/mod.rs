//! The engine: one value that owns the database, the active policy, the risk scorer,
//! the keys, the ledger writer and the revocation list, and runs the decision pipeline.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use lexecon_auth::{AuthConfig, AuthService, PgAuthStore, SqliteAuthStore};
use lexecon_budget::{
    BudgetError, BudgetManager, BudgetStore, MemoryBudgetStore, RedisBudgetStore, SqlBudgetStore,
};
use lexecon_capability::{Claims, KeyRing, RevocationList, VerifyError, VerifyOptions};
use lexecon_core::{ActionRequest, Clock, DecisionId, Outcome, ReservationId, Timestamp, TokenId};
use lexecon_ledger::{
    EntryKind, Ledger, LedgerError, LedgerStore, PgLedgerStore, Receipt, SqliteLedgerStore,
};
use lexecon_policy::{Evaluation, RiskInput};
use lexecon_risk::{Assessment, RiskScorer};
use rand::Rng;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::db::{Database, DbError};
use crate::decision::{Decision, DimensionView, FactorView};
use crate::policy::{ActivePolicy, PolicyLoadError, PolicySlot, compile, compile_file};

/// Something the engine could not do. Each variant maps to one gRPC status class.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The ledger failed; nothing was acknowledged.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A policy is invalid (the active one stays).
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    /// The node's keys could not be loaded or used.
    #[error("keys: {0}")]
    Keys(String),
    /// The risk configuration is invalid.
    #[error("invalid configuration: {0}")]
    Risk(#[from] lexecon_risk::RiskConfigError),
    /// The budget configuration is invalid.
    #[error("invalid configuration: {0}")]
    Budget(#[from] lexecon_budget::BudgetConfigError),
    /// Redis could not be reached or configured.
    #[error("redis: {0}; check redis.url")]
    Redis(String),
    /// The caller asked for something that does not exist or is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something the caller asked for was not found.
    #[error("{0}")]
    NotFound(String),
    /// Another call (here or on another server) is deciding the same request; retry.
    #[error("{0}")]
    InProgress(String),
}

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        EngineError::Db(DbError::Query(err))
    }
}

/// Revoked token ids, shared with the verifier.
#[derive(Debug, Default)]
struct Revocations {
    ids: RwLock<HashSet<TokenId>>,
}

impl RevocationList for Revocations {
    fn is_revoked(&self, token_id: &TokenId) -> bool {
        self.ids.read().map_or(true, |ids| ids.contains(token_id))
    }
}

type IdemKey = (String, String);

/// How long an unfinished idempotency claim protects its request. A claim lives from
/// just before its ledger append to just after it (milliseconds); one older than this
/// belongs to a call that crashed, and if its entry is not in the ledger it answered
/// nobody, so the request may be decided again.
const CLAIM_LEASE_SECS: i64 = 30;

/// How long a call waits for another call's unfinished claim before answering
/// [`EngineError::InProgress`].
const IN_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// An idempotency row. Its decision has no capability token: the token's claims are kept
/// unsigned beside it (`token_claims`) and signed again on replay.
enum Stored {
    /// Recorded in the ledger: the answer.
    Done {
        decision: Decision,
        token_claims: Option<String>,
    },
    /// Claimed before its ledger append and not (yet) marked recorded.
    Claimed {
        decision: Decision,
        token_claims: Option<String>,
        /// The ledger's size when it was claimed: its entry, if any, is at or after.
        ledger_from: u64,
        /// Unix microseconds; with the key, identifies the claim.
        claimed_at: i64,
    },
}

/// A decision made, its token minted and its ledger payload built, not yet appended.
struct Prepared {
    /// With a zero receipt.
    decision: Decision,
    payload: Vec<u8>,
    reservation: Option<ReservationId>,
}

/// The governance engine.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    clock: Arc<dyn Clock>,
    db: Database,
    policy: PolicySlot,
    policy_load: tokio::sync::Mutex<()>,
    risk: RwLock<Arc<RiskScorer>>,
    keys: RwLock<Arc<KeyRing>>,
    ledger: Ledger,
    ledger_store: Arc<dyn LedgerStore>,
    auth: Arc<AuthService>,
    budget: Arc<BudgetManager>,
    revoked: Revocations,
    in_flight: Mutex<HashMap<IdemKey, Arc<OnceCell<Decision>>>>,
}

/// A token check's result.
#[derive(Debug)]
pub struct TokenCheck {
    /// The claims, when the token decoded (even if a later check failed).
    pub claims: Option<Claims>,
    /// Why it is invalid; `None` when valid.
    pub error: Option<VerifyError>,
}

impl Engine {
    /// Opens everything the configuration names: the database (migrated), the keys, the
    /// policy file, the risk scorer and the ledger writer.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Engine, EngineError> {
        let risk = RiskScorer::new(config.risk.clone())?;
        let db = Database::connect(&config.database_url(), config.database.max_connections).await?;
        migrate_all(&db).await?;
        let keys = KeyRing::load(&config.keys_dir(), "node")
            .map_err(|e| EngineError::Keys(e.to_string()))?;
        let signer = lexecon_ledger::CheckpointSigner::new(
            &config.ledger_origin(),
            keys.active().signing_key().clone(),
        )
        .map_err(|e| EngineError::Keys(e.to_string()))?;
        let signer = match load_rsa(&config)? {
            Some(rsa) => signer
                .with_rsa(rsa)
                .map_err(|e| EngineError::Keys(e.to_string()))?,
            None => signer,
        };
        let ledger_store: Arc<dyn LedgerStore> = match &db {
            Database::Sqlite(pool) => Arc::new(SqliteLedgerStore::new(pool.clone())),
            Database::Postgres(pool) => Arc::new(PgLedgerStore::new(pool.clone())),
        };
        let ledger_config = lexecon_ledger::LedgerConfig {
            checkpoint_every_entries: config.ledger.checkpoint_every_entries,
            checkpoint_interval_ms: config.ledger.checkpoint_interval_ms,
            max_batch: config.ledger.max_batch,
        };
        // A node key the ledger has not seen before (first start, or `lexecon keys rotate`)
        // is recorded as a key_rotated entry once the ledger is open.
        let vkey = signer.verifier().vkey();
        let known_vkeys = ledger_store
            .meta(lexecon_ledger::VKEYS_META)
            .await?
            .unwrap_or_default();
        let new_key = !known_vkeys.lines().any(|l| l == vkey);
        let had_keys = !known_vkeys.trim().is_empty();
        let ledger = Ledger::open(
            Arc::clone(&ledger_store),
            signer,
            ledger_config,
            Arc::clone(&clock),
        )
        .await?;
        let (compiled, source, warnings) = compile_file(&config.policy_file())?;
        let now = clock.now();
        let active = ActivePolicy {
            compiled,
            source,
            loaded_at: now,
            loaded_by: "file".to_owned(),
            warnings,
        };
        let auth = Arc::new(auth_service_with(
            &db,
            Arc::clone(&clock),
            auth_config(&config)?,
        ));
        let budget_store = budget_store(&config, &db)?;
        let budget = Arc::new(BudgetManager::new(
            config.budget.clone(),
            budget_store,
            Arc::clone(&clock),
        )?);
        {
            // Soft-limit events are recorded in the ledger; the call itself proceeds.
            let ledger = ledger.clone();
            budget.on_soft_limit(move |event| {
                let payload = json!({
                    "event": format!("{:?}", event.kind).to_lowercase(),
                    "scope": event.scope,
                    "limit_id": event.limit_id,
                    "period": event.period.to_string(),
                    "current_micros": event.current_micros,
                    "threshold_micros": event.threshold_micros,
                    "budget_micros": event.budget_micros,
                    "message": event.message(),
                });
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    if let Err(e) = ledger.append(EntryKind::BudgetEvent, payload).await {
                        tracing::error!(error = %e, "recording a budget event failed");
                    }
                });
            });
        }
        budget.spawn_sweeper(std::time::Duration::from_secs(5));
        let engine = Engine {
            auth,
            budget,
            policy: PolicySlot::new(active),
            policy_load: tokio::sync::Mutex::new(()),
            risk: RwLock::new(Arc::new(risk)),
            keys: RwLock::new(Arc::new(keys)),
            revoked: Revocations::default(),
            in_flight: Mutex::new(HashMap::new()),
            ledger,
            ledger_store,
            db,
            clock,
            config,
        };
        if new_key {
            let kind = if had_keys {
                EntryKind::KeyRotated
            } else {
                EntryKind::Note
            };
            let key_id = engine.key_ring().active().key_id().to_owned();
            let payload = if had_keys {
                json!({"key_id": key_id, "vkey": vkey, "retired": engine.key_ring().retired().iter().map(|r| r.key.key_id().to_owned()).collect::<Vec<_>>()})
            } else {
                json!({"note": "ledger opened with this node key", "key_id": key_id, "vkey": vkey})
            };
            engine.ledger.append(kind, payload).await?;
        }
        engine.record_policy_if_new().await?;
        engine.load_revocations().await?;
        Ok(engine)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shared database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// LLM budgets, rates and model access.
    pub fn budget(&self) -> &Arc<BudgetManager> {
        &self.budget
    }

    /// Users, sessions, MFA and API keys.
    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }

    /// The ledger writer.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger's store, for reads and verification.
    pub fn ledger_store(&self) -> &Arc<dyn LedgerStore> {
        &self.ledger_store
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The active policy.
    pub fn active_policy(&self) -> Arc<ActivePolicy> {
        self.policy.current()
    }

    fn risk_scorer(&self) -> Arc<RiskScorer> {
        self.risk
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }

    fn key_ring(&self) -> Arc<KeyRing> {
        self.keys
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }

    /// Scores the risk of a request without deciding it (an LLM call's cost estimate
    /// comes from the budget's price catalog).
    pub fn assess(&self, req: &ActionRequest) -> Assessment {
        let cost = req.llm.as_ref().and_then(|l| {
            self.budget.estimate_cost_micros(
                &l.model,
                l.estimated_input_tokens,
                l.max_output_tokens,
            )
        });
        self.risk_scorer().assess(req, cost)
    }

    /// What the active policy would decide (no ledger, no token, no budget).
    pub fn explain(&self, req: &ActionRequest) -> (Evaluation, [u8; 32]) {
        let policy = self.policy.current();
        let risk = self.assess(req);
        let eval = policy.compiled.evaluate(
            req,
            RiskInput {
                score: Some(risk.score),
                escalation_threshold: risk.escalation_threshold,
            },
        );
        (eval, policy.compiled.hash())
    }

    /// Decides a request for `principal`. With a `request_id`, the same principal asking
    /// again gets the same decision back and no second ledger entry, from this server or
    /// any other on the same database, and after a crash.
    pub async fn decide(
        &self,
        principal: &str,
        req: ActionRequest,
        request_id: Option<String>,
    ) -> Result<Decision, EngineError> {
        let Some(request_id) = request_id else {
            let prepared = self.prepare(principal, req, None).await?;
            return self.record(prepared).await;
        };
        let key = (principal.to_owned(), request_id.clone());
        let cell = {
            // A panic elsewhere cannot leave this map half-updated; keep using it.
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(map.entry(key.clone()).or_default())
        };
        let result = cell
            .get_or_try_init(|| self.decide_once_per_key(principal, req, &request_id))
            .await
            .cloned();
        // Once the decision is stored, the database answers repeats; keep the map small.
        if let Ok(mut map) = self.in_flight.lock() {
            map.remove(&key);
        }
        result
    }

    /// The database side of idempotency. The decision is claimed in `engine_idempotency`
    /// before its ledger entry is appended (with the ledger's size at that moment) and
    /// completed after. A claim found unfinished means another call is appending, or
    /// one crashed: if the ledger holds the claimed decision, that decision is the
    /// answer; if not and the claim is older than [`CLAIM_LEASE_SECS`], the crashed call
    /// answered nobody and the request is decided afresh.
    async fn decide_once_per_key(
        &self,
        principal: &str,
        req: ActionRequest,
        request_id: &str,
    ) -> Result<Decision, EngineError> {
        let give_up = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
        let in_progress = || {
            EngineError::InProgress(format!(
                "request_id {request_id:?} is being decided by another call; retry in a few seconds"
            ))
        };
        loop {
            match self.stored_decision(principal, request_id).await? {
                Some(Stored::Done {
                    decision,
                    token_claims: None,
                }) => return Ok(decision),
                Some(Stored::Done {
                    decision,
                    token_claims: Some(kept),
                }) => {
                    let entry = self.ledger.entry(decision.ledger_index).await?;
                    return self.with_token(decision, &kept, entry.as_ref());
                }
                Some(Stored::Claimed {
                    mut decision,
                    token_claims,
                    ledger_from,
                    claimed_at,
                }) => {
                    if let Some(entry) = self.locate(&decision.decision_id, ledger_from).await? {
                        decision.ledger_index = entry.index;
                        decision.ledger_leaf_hash = entry.leaf_hash;
                        // The entry is the answer whether this call or the claim's owner
                        // completes the row (`false`: the owner did, with the same receipt).
                        self.complete(principal, request_id, claimed_at, &decision)
                            .await?;
                        if let Some(kept) = token_claims {
                            return self.with_token(decision, &kept, Some(&entry));
                        }
                        return Ok(decision);
                    }
                    let age_secs = (self.clock.now().unix_micros() - claimed_at) / 1_000_000;
                    if age_secs >= CLAIM_LEASE_SECS {
                        tracing::warn!(
                            request_id,
                            age_secs,
                            "an unfinished decision claim has no ledger entry; deciding afresh"
                        );
                        if self.drop_claim(principal, request_id, claimed_at).await? {
                            let reservation = decision
                                .reservation_id
                                .as_deref()
                                .and_then(|r| r.parse().ok());
                            self.release_reservation(reservation).await;
                        }
                        continue;
                    }
                    if tokio::time::Instant::now() >= give_up {
                        return Err(in_progress());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
                None => {}
            }
            let prepared = self
                .prepare(principal, req.clone(), Some(request_id.to_owned()))
                .await?;
            let ledger_from = match self.ledger.tree_size().await {
                Ok(size) => size,
                Err(e) => {
                    self.release_reservation(prepared.reservation).await;
                    return Err(e.into());
                }
            };
            let claimed_at = self.clock.now().unix_micros();
            match self
                .claim(
                    principal,
                    request_id,
                    &prepared.decision,
                    ledger_from,
                    claimed_at,
                )
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Another server claimed it first: its decision is the answer.
                    self.release_reservation(prepared.reservation).await;
                    continue;
                }
                Err(e) => {
                    self.release_reservation(prepared.reservation).await;
                    return Err(e);
                }
            }
            let decision_id = prepared.decision.decision_id;
            let decision = match self.record(prepared).await {
                Ok(decision) => decision,
                Err(e) => {
                    // A retry may decide at once unless the entry was written after all
                    // (an append can fail after its commit); then the claim answers it.
                    match self.locate(&decision_id, ledger_from).await {
                        Ok(None) => {
                            if let Err(drop_err) =
                                self.drop_claim(principal, request_id, claimed_at).await
                            {
                                tracing::warn!(error = %drop_err, "could not drop a failed decision claim; it expires");
                            }
                        }
                        Ok(Some(_)) => {}
                        Err(locate_err) => {
                            tracing::warn!(error = %locate_err, "could not check the ledger after a failed append; the claim expires");
                        }
                    }
                    return Err(e);
                }
            };
            if !self
                .complete(principal, request_id, claimed_at, &decision)
                .await?
            {
                // Our claim outlived its lease and another call took the key over: its
                // decision is the one every retry gets, so do not hand out ours.
                tracing::error!(
                    request_id,
                    ledger_index = decision.ledger_index,
                    "a decision claim was taken over before its append completed"
                );
                return Err(in_progress());
            }
            return Ok(decision);
        }
    }

    /// The ledger entry of `decision_id`, looked for from `from` on.
    async fn locate(
        &self,
        decision_id: &DecisionId,
        from: u64,
    ) -> Result<Option<lexecon_ledger::Entry>, EngineError> {
        const PAGE: u64 = 1_000;
        let id = decision_id.to_string();
        let mut from = from;
        loop {
            let entries = self.ledger.entries(from, PAGE).await?;
            let Some(last) = entries.last() else {
                return Ok(None);
            };
            from = last.index + 1;
            let full = entries.len() as u64 == PAGE;
            for entry in entries {
                let Some(payload) = entry.payload.as_deref() else {
                    continue;
                };
                // Parse only the entries that mention the id.
                if !payload.windows(id.len()).any(|w| w == id.as_bytes()) {
                    continue;
                }
                if entry
                    .payload_json()
                    .as_ref()
                    .and_then(|j| j.get("decision_id")?.as_str())
                    == Some(&id)
                {
                    return Ok(Some(entry));
                }
            }
            if !full {
                return Ok(None);
            }
        }
    }

    /// `decision` with its capability token: the kept claims signed again, once they are
    /// checked against the decision's ledger entry, so that only a token the ledger
    /// recorded is ever signed again (a row written into the database by hand is not).
    fn with_token(
        &self,
        mut decision: Decision,
        kept: &str,
        entry: Option<&lexecon_ledger::Entry>,
    ) -> Result<Decision, EngineError> {
        let mismatch = || {
            EngineError::Keys(format!(
                "the stored token of {} does not match its ledger entry {}; not signing it",
                decision.decision_id, decision.ledger_index
            ))
        };
        let mut claims = lexecon_capability::unsigned_claims(kept).map_err(|_| mismatch())?;
        let recorded = entry.and_then(lexecon_ledger::Entry::payload_json);
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(recorded.as_ref()?, |v, k| v.get(*k))
                .cloned()
        };
        let matches = entry.is_some_and(|e| e.index == decision.ledger_index)
            && claims.decision_id == decision.decision_id
            && field(&["decision_id"]) == serde_json::to_value(decision.decision_id).ok()
            && field(&["token", "token_id"]) == serde_json::to_value(claims.token_id).ok()
            && field(&["token", "key_id"]) == serde_json::to_value(&claims.key_id).ok()
            && field(&["token", "expires_at"]) == serde_json::to_value(claims.expires_at).ok();
        if !matches {
            return Err(mismatch());
        }
        // What `lexecon_capability::resign` does, without decoding the claims again.
        let keys = self.key_ring();
        keys.active().key_id().clone_into(&mut claims.key_id);
        let token = lexecon_capability::mint(keys.active(), &claims)
            .map_err(|e| EngineError::Keys(format!("stored token claims: {e}")))?;
        decision.capability_token = Some(token);
        Ok(decision)
    }

    /// Validates nothing (the caller did), decides, mints the token and builds the ledger
    /// payload: everything but the append.
    async fn prepare(
        &self,
        principal: &str,
        req: ActionRequest,
        request_id: Option<String>,
    ) -> Result<Prepared, EngineError> {
        let now = self.clock.now();
        let decision_id = DecisionId::new(now, rand::thread_rng().r#gen());
        let policy = self.policy.current();
        let policy_hash = policy.compiled.hash();
        let assessment = self.assess(&req);
        let eval = policy.compiled.evaluate(
            &req,
            RiskInput {
                score: Some(assessment.score),
                escalation_threshold: assessment.escalation_threshold,
            },
        );
        let mut outcome = eval.outcome;
        let mut reasons = eval.reasons.clone();
        let mut reasoning = eval.reasoning.clone();

        // Budget, rate and model access for an LLM call the policy approved. Any failure
        // of the budget step denies: deny is the safe failure.
        let mut reservation = None;
        if let (Outcome::Approved, Some(llm)) = (outcome, &req.llm) {
            match self.budget.authorize(llm).await {
                Ok(auth) => reservation = Some(auth.reservation_id),
                Err(BudgetError::Denied(denial)) => {
                    outcome = Outcome::Denied;
                    reasons = vec![denial.limit_id.clone()];
                    reasoning = format!("Denied by the LLM budget: {}.", denial.message());
                }
                Err(other) => {
                    tracing::error!(error = %other, "budget check failed; denying");
                    outcome = Outcome::Denied;
                    reasons = vec!["budget-unavailable".to_owned()];
                    reasoning = format!("Denied because the budget check failed: {other}.");
                }
            }
        }

        let mut token = None;
        let mut token_claims = None;
        if outcome == Outcome::Approved {
            let keys = self.key_ring();
            let claims = Claims::builder(
                decision_id,
                req.actor.clone(),
                req.action.clone(),
                policy_hash,
            )
            .tool(req.tool.clone())
            .audience(
                (!self.config.tokens.audience.is_empty())
                    .then(|| self.config.tokens.audience.clone()),
            )
            .ttl_secs(self.config.tokens.ttl_secs)
            .build(keys.active().key_id(), now, rand::thread_rng().r#gen())
            .map_err(|e| EngineError::Keys(e.to_string()))?;
            token = Some(
                lexecon_capability::mint(keys.active(), &claims)
                    .map_err(|e| EngineError::Keys(e.to_string()))?,
            );
            token_claims = Some(claims);
        }

        let reservation_text = reservation.map(|r| r.to_string());
        let payload = decision_payload(
            principal,
            &decision_id,
            request_id.as_deref(),
            &req,
            &eval,
            outcome,
            &reasons,
            &reasoning,
            &assessment,
            &policy,
            token_claims.as_ref(),
            reservation_text.as_deref(),
        );
        let payload = match payload {
            Ok(bytes) => bytes,
            Err(e) => {
                self.release_reservation(reservation).await;
                return Err(e);
            }
        };
        Ok(Prepared {
            decision: Decision {
                decision_id,
                request_id,
                outcome,
                effective_mode: eval.mode,
                reasoning,
                reasons,
                risk_level: assessment.level,
                risk_score: assessment.score,
                risk_dimensions: dimension_views(&assessment),
                capability_token: token,
                token_expires_at: token_claims.as_ref().map(|c| c.expires_at),
                reservation_id: reservation_text,
                ledger_index: 0,
                ledger_leaf_hash: [0; 32],
                policy_version_hash: policy_hash,
                decided_at: now,
            },
            payload,
            reservation,
        })
    }

    /// Appends a prepared decision's entry and returns the decision with its receipt.
    /// On failure nothing was acknowledged, and the budget reservation is given back.
    async fn record(&self, prepared: Prepared) -> Result<Decision, EngineError> {
        let Prepared {
            mut decision,
            payload,
            reservation,
        } = prepared;
        match self.ledger.append_bytes(EntryKind::Decision, payload).await {
            Ok(receipt) => {
                decision.ledger_index = receipt.index;
                decision.ledger_leaf_hash = receipt.leaf_hash;
                Ok(decision)
            }
            Err(e) => {
                self.release_reservation(reservation).await;
                Err(e.into())
            }
        }
    }

    async fn release_reservation(&self, reservation: Option<ReservationId>) {
        if let Some(id) = reservation {
            let _ = self.budget.release(id).await;
        }
    }

    /// The idempotency row of `(principal, request_id)`, if any.
    async fn stored_decision(
        &self,
        principal: &str,
        request_id: &str,
    ) -> Result<Option<Stored>, EngineError> {
        let row: Option<(String, i64, Option<i64>, Option<String>)> = match &self.db {
            Database::Sqlite(pool) => sqlx::query_as(
                "SELECT decision, created_at, ledger_from, token_claims FROM engine_idempotency WHERE principal = ?1 AND request_id = ?2",
            )
            .bind(principal)
            .bind(request_id)
            .fetch_optional(pool)
            .await?,
            Database::Postgres(pool) => sqlx::query_as(
                "SELECT decision, created_at, ledger_from, token_claims FROM engine_idempotency WHERE principal = $1 AND request_id = $2",
            )
            .bind(principal)
            .bind(request_id)
            .fetch_optional(pool)
            .await?,
        };
        let Some((json, created_at, ledger_from, token_claims)) = row else {
            return Ok(None);
        };
        let decision: Decision = serde_json::from_str(&json)
            .map_err(|e| EngineError::NotFound(format!("stored decision is unreadable: {e}")))?;
        Ok(Some(match ledger_from {
            None => Stored::Done {
                decision,
                token_claims,
            },
            Some(from) => Stored::Claimed {
                decision,
                token_claims,
                ledger_from: u64::try_from(from).unwrap_or(0),
                claimed_at: created_at,
            },
        }))
    }

    /// Claims `(principal, request_id)` for `decision`, not yet recorded; `false` when
    /// another call holds the key already.
    async fn claim(
        &self,
        principal: &str,
        request_id: &str,
        decision: &Decision,
        ledger_from: u64,
        claimed_at: i64,
    ) -> Result<bool, EngineError> {
        let (json, token_claims) = row_of(decision)?;
        let from = i64::try_from(ledger_from).unwrap_or(i64::MAX);
        let inserted = match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query("INSERT OR IGNORE INTO engine_idempotency (principal, request_id, decision, created_at, ledger_from, token_claims) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                    .bind(principal)
                    .bind(request_id)
                    .bind(json)
                    .bind(claimed_at)
                    .bind(from)
                    .bind(token_claims)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Database::Postgres(pool) => {
                sqlx::query("INSERT INTO engine_idempotency (principal, request_id, decision, created_at, ledger_from, token_claims) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
                    .bind(principal)
                    .bind(request_id)
                    .bind(json)
                    .bind(claimed_at)
                    .bind(from)
                    .bind(token_claims)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(inserted == 1)
    }

    /// Marks the claim of `(principal, request_id)` made at `claimed_at` recorded, with
    /// the decision's receipt (the token's claims were kept with the claim). `false` when
    /// that claim is no longer there: completed by another call, or taken over.
    async fn complete(
        &self,
        principal: &str,
        request_id: &str,
        claimed_at: i64,
        decision: &Decision,
    ) -> Result<bool, EngineError> {
        let (json, _) = row_of(decision)?;
        self.on_claim(
            "UPDATE engine_idempotency SET decision = ?4, ledger_from = NULL WHERE principal = ?1 AND request_id = ?2 AND created_at = ?3 AND ledger_from IS NOT NULL",
            "UPDATE engine_idempotency SET decision = $4, ledger_from = NULL WHERE principal = $1 AND request_id = $2 AND created_at = $3 AND ledger_from IS NOT NULL",
            (principal, request_id, claimed_at),
            Some(json),
        )
        .await
    }

    /// Removes the unfinished claim made at `claimed_at` (and no other); `false` when it
    /// was no longer there.
    async fn drop_claim(
        &self,
        principal: &str,
        request_id: &str,
        claimed_at: i64,
    ) -> Result<bool, EngineError> {
        self.on_claim(
            "DELETE FROM engine_idempotency WHERE principal = ?1 AND request_id = ?2 AND created_at = ?3 AND ledger_from IS NOT NULL",
            "DELETE FROM engine_idempotency WHERE principal = $1 AND request_id = $2 AND created_at = $3 AND ledger_from IS NOT NULL",
            (principal, request_id, claimed_at),
            None,
        )
        .await
    }

    /// Runs `sqlite` or `postgres` (by the database) on one unfinished claim, bound to
    /// `(principal, request_id, claimed_at)` and then `decision` when given; `true` when
    /// it changed that row.
    async fn on_claim(
        &self,
        sqlite: &str,
        postgres: &str,
        (principal, request_id, claimed_at): (&str, &str, i64),
        decision: Option<String>,
    ) -> Result<bool, EngineError> {
        let changed = match &self.db {
            Database::Sqlite(pool) => {
                let q = sqlx::query(sqlite)
                    .bind(principal)
                    .bind(request_id)
                    .bind(claimed_at);
                match decision {
                    Some(json) => q.bind(json),
                    None => q,
                }
                .execute(pool)
                .await?
                .rows_affected()
            }
            Database::Postgres(pool) => {
                let q = sqlx::query(postgres)
                    .bind(principal)
                    .bind(request_id)
                    .bind(claimed_at);
                match decision {
                    Some(json) => q.bind(json),
                    None => q,
                }
                .execute(pool)
                .await?
                .rows_affected()
            }
        };
        Ok(changed == 1)
    }

    /// Validates and activates a new policy, recording it in history and the ledger.
    /// An invalid policy changes nothing.
    pub async fn load_policy(
        &self,
        source: &str,
        origin: &str,
        loaded_by: &str,
    ) -> Result<Arc<ActivePolicy>, EngineError> {
        let _serial = self.policy_load.lock().await;
        let (compiled, warnings) = compile(source, origin)?;
        let active = ActivePolicy {
            compiled,
            source: source.to_owned(),
            loaded_at: self.clock.now(),
            loaded_by: loaded_by.to_owned(),
            warnings,
        };
        let receipt = self.record_policy(&active).await?;
        let _ = receipt;
        Ok(self.policy.swap(active))
    }

    /// SIGHUP: re-reads the configuration and the policy file. The risk rules and budget
    /// limits take effect atomically (budget counters are kept) and a `config_reloaded`
    /// entry records it; an invalid configuration or policy changes nothing. Keys that
    /// need a restart (listeners, database, Redis, node id) are reported, not applied.
    pub async fn reload(&self) -> Result<Reloaded, EngineError> {
        let new = self.config.reload()?;
        let scorer = RiskScorer::new(new.risk.clone())?;
        // Validate the policy before anything changes.
        let (compiled, source, warnings) = compile_file(&new.policy_file())?;
        let risk_changed = &new.risk != self.risk_scorer().config();
        let budget_changed = new.budget != self.budget.config();
        if budget_changed {
            self.budget.reload(new.budget.clone())?;
        }
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
                    json!({"applied": applied, "needs_restart": needs_restart}),
                )
                .await?;
        }
        let policy = if compiled.hash() == self.policy.current().compiled.hash() {
            self.policy.current()
        } else {
            let _serial = self.policy_load.lock().await;
            let active = ActivePolicy {
                compiled,
                source,
                loaded_at: self.clock.now(),
                loaded_by: "file".to_owned(),
                warnings,
            };
            self.record_policy(&active).await?;
            self.policy.swap(active)
        };
        Ok(Reloaded {
            risk_changed,
            budget_changed,
            needs_restart,
            policy,
        })
    }

    /// Re-reads the policy file. An invalid file changes nothing.
    pub async fn reload_policy_file(&self) -> Result<Arc<ActivePolicy>, EngineError> {
        let path = self.config.policy_file();
        let source = std::fs::read_to_string(&path).map_err(|e| {
            EngineError::InvalidArgument(format!("cannot read {}: {e}", path.display()))
        })?;
        self.load_policy(&source, &path.display().to_string(), "file")
            .await
    }

    async fn record_policy_if_new(&self) -> Result<(), EngineError> {
        let active = self.policy.current();
        let last = self.policy_history(1).await?;
        if last.first().map(|p| p.hash) != Some(active.compiled.hash()) {
            self.record_policy(&active).await?;
        }
        Ok(())
    }

    async fn record_policy(&self, active: &ActivePolicy) -> Result<Receipt, EngineError> {
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
        let index = i64::try_from(receipt.index).unwrap_or(i64::MAX);
        let at = active.loaded_at.unix_micros();
        let q = "INSERT INTO engine_policies (hash, name, version, mode, source, loaded_at, loaded_by, ledger_index) VALUES ";
        match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query(&format!("{q}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))
                    .bind(hash.as_slice())
                    .bind(compiled.name())
                    .bind(compiled.version())
                    .bind(compiled.mode().as_str())
                    .bind(&active.source)
                    .bind(at)
                    .bind(&active.loaded_by)
                    .bind(index)
                    .execute(pool)
                    .await?;
            }
            Database::Postgres(pool) => {
                sqlx::query(&format!("{q}($1, $2, $3, $4, $5, $6, $7, $8)"))
                    .bind(hash.as_slice())
                    .bind(compiled.name())
                    .bind(compiled.version())
                    .bind(compiled.mode().as_str())
                    .bind(&active.source)
                    .bind(at)
                    .bind(&active.loaded_by)
                    .bind(index)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(receipt)
    }

    /// Loaded policy versions, newest first.
    pub async fn policy_history(&self, limit: u32) -> Result<Vec<PolicyRecord>, EngineError> {
        let limit = i64::from(if limit == 0 { 100 } else { limit.min(1000) });
        type Row = (Vec<u8>, String, String, String, i64, String, i64);
        let q = "SELECT hash, name, version, mode, loaded_at, loaded_by, ledger_index FROM engine_policies ORDER BY seq DESC LIMIT ";
        let rows: Vec<Row> = match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query_as(&format!("{q}?1"))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Database::Postgres(pool) => {
                sqlx::query_as(&format!("{q}$1"))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(
                |(hash, name, version, mode, loaded_at, loaded_by, ledger_index)| PolicyRecord {
                    hash: hash.try_into().unwrap_or([0; 32]),
                    name,
                    version,
                    mode,
                    loaded_at: Timestamp::from_unix_micros(loaded_at),
                    loaded_by,
                    ledger_index: u64::try_from(ledger_index).unwrap_or(0),
                },
            )
            .collect())
    }

    async fn load_revocations(&self) -> Result<(), EngineError> {
        let rows: Vec<(String,)> = match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query_as("SELECT token_id FROM engine_revocations")
                    .fetch_all(pool)
                    .await?
            }
            Database::Postgres(pool) => {
                sqlx::query_as("SELECT token_id FROM engine_revocations")
                    .fetch_all(pool)
                    .await?
            }
        };
        if let Ok(mut ids) = self.revoked.ids.write() {
            ids.extend(
                rows.into_iter()
                    .filter_map(|(id,)| id.parse::<TokenId>().ok()),
            );
        }
        Ok(())
    }

    /// Revokes a token; returns its `token_revoked` ledger index and whether it was new.
    pub async fn revoke_token(
        &self,
        token_id: TokenId,
        reason: &str,
        by: &str,
    ) -> Result<(u64, bool), EngineError> {
        if self.revoked.is_revoked(&token_id) {
            let id = token_id.to_string();
            let q = "SELECT ledger_index FROM engine_revocations WHERE token_id = ";
            let row: Option<(i64,)> = match &self.db {
                Database::Sqlite(pool) => {
                    sqlx::query_as(&format!("{q}?1"))
                        .bind(&id)
                        .fetch_optional(pool)
                        .await?
                }
                Database::Postgres(pool) => {
                    sqlx::query_as(&format!("{q}$1"))
                        .bind(&id)
                        .fetch_optional(pool)
                        .await?
                }
            };
            let index = row.map_or(0, |(i,)| u64::try_from(i).unwrap_or(0));
            return Ok((index, false));
        }
        let receipt = self
            .ledger
            .append(
                EntryKind::TokenRevoked,
                json!({"token_id": token_id.to_string(), "reason": reason, "revoked_by": by}),
            )
            .await?;
        let index = i64::try_from(receipt.index).unwrap_or(i64::MAX);
        let at = receipt.timestamp.unix_micros();
        let id = token_id.to_string();
        match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query("INSERT OR IGNORE INTO engine_revocations (token_id, revoked_at, reason, revoked_by, ledger_index) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .bind(&id).bind(at).bind(reason).bind(by).bind(index).execute(pool).await?;
            }
            Database::Postgres(pool) => {
                sqlx::query("INSERT INTO engine_revocations (token_id, revoked_at, reason, revoked_by, ledger_index) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                    .bind(&id).bind(at).bind(reason).bind(by).bind(index).execute(pool).await?;
            }
        }
        if let Ok(mut ids) = self.revoked.ids.write() {
            ids.insert(token_id);
        }
        Ok((receipt.index, true))
    }

    /// Verifies a capability token against the node's keys and the revocation list.
    pub fn verify_token(
        &self,
        token: &str,
        actor: Option<&str>,
        action: Option<&str>,
        tool: Option<&str>,
        audience: Option<&str>,
    ) -> TokenCheck {
        let keys = self.key_ring();
        let mut opts = VerifyOptions::new(self.clock.now())
            .clock_skew_secs(self.config.tokens.clock_skew_secs);
        if let Some(a) = actor {
            opts = opts.actor(a);
        }
        if let Some(a) = action {
            opts = opts.action(a);
        }
        if let Some(t) = tool {
            opts = opts.tool(t);
        }
        if let Some(a) = audience {
            opts = opts.audience(a);
        }
        match lexecon_capability::verify(token, keys.as_ref(), &opts, &self.revoked) {
            Ok(claims) => TokenCheck {
                claims: Some(claims),
                error: None,
            },
            Err(error) => TokenCheck {
                claims: None,
                error: Some(error),
            },
        }
    }

    /// Puts new budget limits in force atomically (counters kept) and records it; an
    /// invalid configuration changes nothing.
    pub async fn reload_budget(
        &self,
        config: lexecon_budget::BudgetConfig,
    ) -> Result<(), EngineError> {
        self.budget.reload(config)?;
        self.ledger
            .append(EntryKind::ConfigReloaded, json!({"section": "budget"}))
            .await?;
        Ok(())
    }

    /// Records an authentication event (a user or key created, a login) in the ledger.
    /// The payload must not hold secrets.
    pub async fn record_auth_event(&self, payload: serde_json::Value) -> Result<u64, EngineError> {
        Ok(self
            .ledger
            .append(EntryKind::AuthEvent, payload)
            .await?
            .index)
    }

    /// Flushes the ledger and signs a final checkpoint.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        self.ledger.shutdown().await?;
        self.db.close().await;
        Ok(())
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
}

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
    /// Who loaded it.
    pub loaded_by: String,
    /// Its `policy_loaded` ledger index.
    pub ledger_index: u64,
}

/// Runs every crate's migrations on the shared database.
pub async fn migrate_all(db: &Database) -> Result<(), EngineError> {
    db.migrate_engine().await?;
    let auth_err = |e: lexecon_auth::StoreError| {
        EngineError::Db(DbError::Other(format!("auth migrations: {e}")))
    };
    match db {
        Database::Sqlite(pool) => {
            SqliteLedgerStore::new(pool.clone()).migrate().await?;
            SqliteAuthStore::migrate(pool).await.map_err(auth_err)?;
            lexecon_budget::migrate_sqlite(pool)
                .await
                .map_err(|e| EngineError::Db(DbError::Other(format!("budget migrations: {e}"))))?;
        }
        Database::Postgres(pool) => {
            PgLedgerStore::new(pool.clone()).migrate().await?;
            PgAuthStore::migrate(pool).await.map_err(auth_err)?;
            lexecon_budget::migrate_postgres(pool)
                .await
                .map_err(|e| EngineError::Db(DbError::Other(format!("budget migrations: {e}"))))?;
        }
    }
    Ok(())
}

fn budget_store(config: &Config, db: &Database) -> Result<Arc<dyn BudgetStore>, EngineError> {
    if let Some(url) = &config.redis.url {
        let pool = deadpool_redis::Config::from_url(url.clone())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| EngineError::Redis(e.to_string()))?;
        return Ok(Arc::new(RedisBudgetStore::new(
            pool,
            config.redis.key_prefix.clone(),
        )));
    }
    if !config.budget.enabled {
        return Ok(Arc::new(MemoryBudgetStore::new()));
    }
    Ok(match db {
        Database::Sqlite(pool) => Arc::new(SqlBudgetStore::sqlite(pool.clone())),
        Database::Postgres(pool) => Arc::new(SqlBudgetStore::postgres(pool.clone())),
    })
}

/// The auth settings of `config`: MFA roles and OIDC providers with their key sources
/// (a JWKS file, or a URL fetched over HTTPS).
pub fn auth_config(config: &Config) -> Result<AuthConfig, crate::ConfigError> {
    let oidc_providers = config
        .auth
        .oidc
        .iter()
        .map(|p| {
            let mut provider =
                lexecon_auth::OidcProviderConfig::new(&p.name, &p.issuer, &p.client_id);
            provider.role_claim = p.role_claim.clone();
            provider.role_map = p.role_map.clone();
            provider.default_role = p.default_role;
            provider.jwks_cache_secs = p.jwks_cache_secs;
            let source: Arc<dyn lexecon_auth::JwksSource> = match (&p.jwks_url, &p.jwks_file) {
                (Some(url), _) => {
                    Arc::new(crate::jwks::HttpJwksSource::new(url).map_err(|problem| {
                        crate::ConfigError::OutOfRange {
                            key: "auth.oidc",
                            problem: format!("({:?}) jwks_url {url:?} {problem}", p.name),
                            source_name: "configuration".to_owned(),
                        }
                    })?)
                }
                (None, file) => Arc::new(lexecon_auth::FileJwksSource::new(
                    file.clone().unwrap_or_default(),
                )),
            };
            Ok(lexecon_auth::OidcProvider::new(provider, source))
        })
        .collect::<Result<_, crate::ConfigError>>()?;
    Ok(AuthConfig {
        mfa_required_roles: config.auth.mfa_required_roles.clone(),
        oidc_providers,
        ..AuthConfig::default()
    })
}

/// The auth service on the shared database with `config`.
pub fn auth_service_with(db: &Database, clock: Arc<dyn Clock>, config: AuthConfig) -> AuthService {
    let store: Arc<dyn lexecon_auth::AuthStore> = match db {
        Database::Sqlite(pool) => Arc::new(SqliteAuthStore::new(pool.clone())),
        Database::Postgres(pool) => Arc::new(PgAuthStore::new(pool.clone())),
    };
    AuthService::new(store, clock, config)
}

/// The auth service on the shared database, with default settings (for admin commands).
pub fn auth_service(db: &Database, clock: Arc<dyn Clock>) -> AuthService {
    let store: Arc<dyn lexecon_auth::AuthStore> = match db {
        Database::Sqlite(pool) => Arc::new(SqliteAuthStore::new(pool.clone())),
        Database::Postgres(pool) => Arc::new(PgAuthStore::new(pool.clone())),
    };
    AuthService::new(store, clock, AuthConfig::default())
}

fn load_rsa(config: &Config) -> Result<Option<rsa::RsaPrivateKey>, EngineError> {
    use rsa::pkcs8::DecodePrivateKey;
    let path = config.keys_dir().join("node.rsa4096.pem");
    if !path.exists() {
        return Ok(None);
    }
    let pem = std::fs::read_to_string(&path)
        .map_err(|e| EngineError::Keys(format!("cannot read {}: {e}", path.display())))?;
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .map(Some)
        .map_err(|e| {
            EngineError::Keys(format!(
                "{} is not a PKCS#8 PEM RSA key: {e}",
                path.display()
            ))
        })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn dimension_views(a: &Assessment) -> Vec<DimensionView> {
    a.dimensions
        .iter()
        .map(|d| DimensionView {
            dimension: d.dimension.to_string(),
            score: d.score,
            factors: d
                .factors
                .iter()
                .map(|f| FactorView {
                    rule_id: f.rule_id.to_string(),
                    points: f.points,
                    description: f.description.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// A decision's ledger payload, serialized directly (no intermediate JSON tree: this
/// runs for every decision). The capability token is a bearer credential and never
/// enters the ledger; its id does.
#[derive(serde::Serialize)]
struct DecisionPayload<'a> {
    decision_id: &'a DecisionId,
    request_id: Option<&'a str>,
    principal: &'a str,
    request: &'a ActionRequest,
    outcome: Outcome,
    effective_mode: lexecon_core::PolicyMode,
    reasons: &'a [String],
    reasoning: &'a str,
    matched_terms: &'a [String],
    risk: RiskPayload,
    policy: PolicyPayload<'a>,
    token: Option<TokenPayload<'a>>,
    reservation_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct RiskPayload {
    score: u8,
    level: lexecon_core::RiskLevel,
    dimensions: DimensionScores,
}

#[derive(serde::Serialize)]
struct DimensionScores {
    security: u8,
    privacy: u8,
    compliance: u8,
    operational: u8,
    reputational: u8,
    financial: u8,
}

#[derive(serde::Serialize)]
struct PolicyPayload<'a> {
    name: &'a str,
    version: &'a str,
    hash: String,
}

#[derive(serde::Serialize)]
struct TokenPayload<'a> {
    token_id: &'a TokenId,
    key_id: &'a str,
    expires_at: Timestamp,
}

/// A decision as its idempotency row keeps it: the JSON without the capability token,
/// and the token's claims without the signature. A stored token would be a credential
/// anyone who reads the database could use; the claims grant nothing.
fn row_of(decision: &Decision) -> Result<(String, Option<String>), EngineError> {
    let token_claims = decision
        .capability_token
        .as_deref()
        .map(lexecon_capability::unsigned)
        .transpose()
        .map_err(|e| EngineError::Keys(format!("cannot keep the token's claims: {e}")))?;
    let json = serde_json::to_string(&Decision {
        capability_token: None,
        ..decision.clone()
    })
    .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    Ok((json, token_claims))
}

#[allow(
    clippy::too_many_arguments,
    reason = "one payload field per pipeline step"
)]
fn decision_payload(
    principal: &str,
    decision_id: &DecisionId,
    request_id: Option<&str>,
    req: &ActionRequest,
    eval: &Evaluation,
    outcome: Outcome,
    reasons: &[String],
    reasoning: &str,
    risk: &Assessment,
    policy: &ActivePolicy,
    token: Option<&Claims>,
    reservation_id: Option<&str>,
) -> Result<Vec<u8>, EngineError> {
    let d = &risk.dimensions;
    let payload = DecisionPayload {
        decision_id,
        request_id,
        principal,
        request: req,
        outcome,
        effective_mode: eval.mode,
        reasons,
        reasoning,
        matched_terms: &eval.matched_terms,
        risk: RiskPayload {
            score: risk.score,
            level: risk.level,
            dimensions: DimensionScores {
                security: d.security.score,
                privacy: d.privacy.score,
                compliance: d.compliance.score,
                operational: d.operational.score,
                reputational: d.reputational.score,
                financial: d.financial.score,
            },
        },
        policy: PolicyPayload {
            name: policy.compiled.name(),
            version: policy.compiled.version(),
            hash: hex(&policy.compiled.hash()),
        },
        token: token.map(|c| TokenPayload {
            token_id: &c.token_id,
            key_id: &c.key_id,
            expires_at: c.expires_at,
        }),
        reservation_id,
    };
    serde_json::to_vec(&payload)
        .map_err(|e| EngineError::InvalidArgument(format!("cannot encode the decision: {e}")))
}

#[cfg(test)]
mod tests;
