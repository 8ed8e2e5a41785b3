//! The engine: the one door. Every operation any adapter offers (decide, tokens, policy
//! administration, users and keys, budgets, ledger reads) is a method here that
//! validates its input, authorizes its caller, audits in the ledger and stores; the
//! gRPC server and the CLI only convert. Run-time state (the active policy, token
//! revocations, budget limits) lives in the shared database and reaches every replica
//! within [`SYNC_EVERY`] plus a query.

mod audit;
mod budget_ops;
mod caller;
mod compliance;
mod decide;
mod error;
mod evidence;
mod evidence_store;
#[cfg(test)]
mod evidence_tests;
mod gone;
mod input;
mod journal;
mod ledger_ops;
mod mcp_ops;
mod oversight;
mod page;
mod payload;
mod policy_ops;
mod principals;
mod refusals;
mod secrets_ops;
mod store;
mod sync;
mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use lexecon_auth::{AuthConfig, AuthService, PgAuthStore, SqliteAuthStore};
use lexecon_budget::{BudgetManager, BudgetStore, RedisBudgetStore, SqlBudgetStore};
use lexecon_capability::{KeyRing, RevocationList};
use lexecon_core::{Clock, TokenId};
use lexecon_ledger::{EntryKind, Ledger, LedgerStore, PgLedgerStore, SqliteLedgerStore};
use lexecon_risk::RiskScorer;
use serde_json::json;
use tokio::sync::OnceCell;

pub use audit::{
    AuditExportRecord, AuditExportStream, BackfillProgress, BundleChunk, DecisionQuery,
    DecisionRecord, ExportQuery, MAX_CHUNK_BYTES, MAX_SCAN_ROWS,
};
pub use budget_ops::{AuthorizeInput, LlmAuthorization, MAX_LIMITS_BYTES};
pub use caller::Caller;
pub use compliance::{
    HoldInput, HoldRecord, InterventionInput, InterventionKind, InterventionRecord,
    MAX_COMPLIANCE_TEXT_BYTES, MAX_HOLD_DECISION_IDS, RecordKeeping, Redaction,
};
pub use error::{EngineError, ErrorClass};
pub use evidence::{
    ArtifactType, EVIDENCE_CHUNK_BYTES, EvidenceCheck, EvidenceFilter, EvidenceInput,
    EvidenceRecord, MAX_CONTROL_ID_BYTES, MAX_EVIDENCE_LINKS, MAX_EVIDENCE_MEDIA_TYPE_BYTES,
    MAX_EVIDENCE_TITLE_BYTES, Registered, UnknownArtifactType,
};
pub use gone::{CallerGone, GoneOnDrop};
pub use input::{ActionInput, DecideInput, MAX_REQUEST_ID_BYTES};
pub use ledger_ops::{Checkpoint, EntryPage, MAX_PAGE, VerifyReport};
pub use mcp_ops::{
    CompletionInput, CompletionRecord, MAX_COMPLETION_JSON_BYTES, MAX_TOOL_PROBES, ToolProbe,
};
pub use oversight::{
    Accountability, AccountablePolicy, ApprovalRecord, DecisionMaker, EscalationPriority,
    EscalationQuery, EscalationResolution, EscalationState, EscalationView, Event, EventStream,
    HaltRecord, MAX_OVERSIGHT_TEXT_BYTES, MIN_JUSTIFICATION_CHARS, OverrideEffect, OverrideInput,
    OverrideKind, OverrideRecord, OverrideRevocation, ResponsibilityLevel, SweepReport,
};
pub use page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};
pub use policy_ops::{MAX_POLICY_BYTES, PolicyRecord, PolicyValidation, Reloaded};
pub use principals::{CreatedKey, LoginResult};
pub use tokens::{MAX_REASON_BYTES, MAX_TOKEN_BYTES, TokenCheck, VerifyTokenInput};

use crate::config::Config;
use crate::db::{Database, DbError};
use crate::decision::Decision;
use crate::policy::PolicySlot;

/// How often the engine re-reads run-time state that other replicas may have changed.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The gRPC method paths the permission table of `lexecon-auth` is keyed by: each
/// engine operation authorizes its caller under the path of the RPC that exposes it.
pub(crate) mod ops {
    pub(crate) const DECIDE: &str = "/lexecon.v1.DecisionService/Decide";
    pub(crate) const VERIFY_TOKEN: &str = "/lexecon.v1.DecisionService/VerifyToken";
    pub(crate) const REVOKE_TOKEN: &str = "/lexecon.v1.DecisionService/RevokeToken";
    pub(crate) const GET_ACTIVE_POLICY: &str = "/lexecon.v1.PolicyService/GetActivePolicy";
    pub(crate) const VALIDATE_POLICY: &str = "/lexecon.v1.PolicyService/ValidatePolicy";
    pub(crate) const LOAD_POLICY: &str = "/lexecon.v1.PolicyService/LoadPolicy";
    pub(crate) const LIST_POLICY_VERSIONS: &str = "/lexecon.v1.PolicyService/ListPolicyVersions";
    pub(crate) const EXPLAIN: &str = "/lexecon.v1.PolicyService/Explain";
    pub(crate) const GET_ENTRIES: &str = "/lexecon.v1.LedgerService/GetEntries";
    pub(crate) const GET_ENTRY: &str = "/lexecon.v1.LedgerService/GetEntry";
    pub(crate) const VERIFY_LEDGER: &str = "/lexecon.v1.LedgerService/Verify";
    pub(crate) const GET_CHECKPOINT: &str = "/lexecon.v1.LedgerService/GetCheckpoint";
    pub(crate) const GET_INCLUSION_PROOF: &str = "/lexecon.v1.LedgerService/GetInclusionProof";
    pub(crate) const GET_CONSISTENCY_PROOF: &str = "/lexecon.v1.LedgerService/GetConsistencyProof";
    pub(crate) const ASSESS: &str = "/lexecon.v1.RiskService/Assess";
    pub(crate) const AUTHORIZE: &str = "/lexecon.v1.BudgetService/Authorize";
    pub(crate) const SETTLE: &str = "/lexecon.v1.BudgetService/Settle";
    pub(crate) const RELEASE: &str = "/lexecon.v1.BudgetService/Release";
    pub(crate) const GET_USAGE: &str = "/lexecon.v1.BudgetService/GetUsage";
    pub(crate) const GET_LIMITS: &str = "/lexecon.v1.BudgetService/GetLimits";
    pub(crate) const UPDATE_LIMITS: &str = "/lexecon.v1.BudgetService/UpdateLimits";
    pub(crate) const LOGOUT: &str = "/lexecon.v1.AuthService/Logout";
    pub(crate) const WHO_AM_I: &str = "/lexecon.v1.AuthService/WhoAmI";
    pub(crate) const CREATE_USER: &str = "/lexecon.v1.AuthService/CreateUser";
    pub(crate) const ENROLL_MFA: &str = "/lexecon.v1.AuthService/EnrollMfa";
    pub(crate) const CREATE_API_KEY: &str = "/lexecon.v1.AuthService/CreateApiKey";
    pub(crate) const REVOKE_API_KEY: &str = "/lexecon.v1.AuthService/RevokeApiKey";
    pub(crate) const SET_API_KEY_ACTORS: &str = "/lexecon.v1.AuthService/SetApiKeyActors";
    pub(crate) const LIST_ESCALATIONS: &str = "/lexecon.v1.OversightService/ListEscalations";
    pub(crate) const GET_ESCALATION: &str = "/lexecon.v1.OversightService/GetEscalation";
    pub(crate) const RESOLVE_ESCALATION: &str = "/lexecon.v1.OversightService/ResolveEscalation";
    pub(crate) const CREATE_OVERRIDE: &str = "/lexecon.v1.OversightService/CreateOverride";
    pub(crate) const LIST_OVERRIDES: &str = "/lexecon.v1.OversightService/ListOverrides";
    pub(crate) const REVOKE_OVERRIDE: &str = "/lexecon.v1.OversightService/RevokeOverride";
    pub(crate) const HALT: &str = "/lexecon.v1.OversightService/Halt";
    pub(crate) const RESUME: &str = "/lexecon.v1.OversightService/Resume";
    pub(crate) const GET_HALT_STATUS: &str = "/lexecon.v1.OversightService/GetHaltStatus";
    pub(crate) const WATCH_EVENTS: &str = "/lexecon.v1.OversightService/WatchEvents";
    pub(crate) const GET_ACCOUNTABILITY: &str = "/lexecon.v1.OversightService/GetAccountability";
    pub(crate) const REGISTER_EVIDENCE: &str = "/lexecon.v1.EvidenceService/RegisterEvidence";
    pub(crate) const GET_EVIDENCE: &str = "/lexecon.v1.EvidenceService/GetEvidence";
    pub(crate) const LIST_EVIDENCE: &str = "/lexecon.v1.EvidenceService/ListEvidence";
    pub(crate) const VERIFY_EVIDENCE: &str = "/lexecon.v1.EvidenceService/VerifyEvidence";
    pub(crate) const QUERY_DECISIONS: &str = "/lexecon.v1.AuditService/QueryDecisions";
    pub(crate) const EXPORT_AUDIT: &str = "/lexecon.v1.AuditService/ExportAudit";
    pub(crate) const LIST_AUDIT_EXPORTS: &str = "/lexecon.v1.AuditService/ListAuditExports";
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

/// A decision being made for one `(principal, request_id)`; concurrent calls share it.
type InFlight = Arc<OnceCell<Decision>>;

/// The governance engine.
pub struct Engine {
    config: Config,
    clock: Arc<dyn Clock>,
    db: Database,
    store: Arc<dyn store::EngineStore>,
    policy: PolicySlot,
    policy_load: tokio::sync::Mutex<()>,
    risk: RwLock<Arc<RiskScorer>>,
    keys: RwLock<Arc<KeyRing>>,
    ledger: Ledger,
    auth: Arc<AuthService>,
    budget: Arc<BudgetManager>,
    revoked: Revocations,
    in_flight: Mutex<HashMap<(String, String), InFlight>>,
    refusals: refusals::Refusals,
    sync: sync::SyncState,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens everything the configuration names for a server: the database (migrated),
    /// the keys, the active policy (§1 of the contract says whether the file or the
    /// database wins), the risk scorer, the budget limits and the ledger writer, and
    /// starts the background tasks that keep run-time state in step with other replicas.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Engine>, EngineError> {
        Self::open_as(config, clock, true).await
    }

    /// Opens the engine for a command that works on the database directly (`init`,
    /// `user add`, `apikey ...`): its operations are ledgered like a server's, but it
    /// loads neither the policy file nor `[budget]` into the database (that is a
    /// server's start or SIGHUP) and runs no background task.
    pub async fn open_local(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Engine>, EngineError> {
        Self::open_as(config, clock, false).await
    }

    async fn open_as(
        config: Config,
        clock: Arc<dyn Clock>,
        serving: bool,
    ) -> Result<Arc<Engine>, EngineError> {
        let risk = RiskScorer::new(config.risk.clone())?;
        let db = Database::connect(&config.database_url(), config.database.max_connections).await?;
        migrate_all(&db).await?;
        let secret_keys = crate::secrets::open_keys(&config, &db).await?;
        let keys = KeyRing::load(&config.keys_dir(), crate::layout::NODE_KEY_NAME)
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
        // Governance events (everything but decisions) get an `engine_events` row in
        // their entry's transaction, for WatchEvents.
        ledger.set_side_hook(oversight::events_hook(Arc::clone(&clock)));
        let store = store::on(&db);
        let auth = Arc::new(auth_service_with(
            &db,
            Arc::clone(&clock),
            auth_config(&config)?,
            secret_keys,
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
        let active = policy_ops::startup_policy(&config, store.as_ref(), clock.now()).await?;
        let engine = Engine {
            auth,
            budget,
            policy: PolicySlot::new(active.policy),
            policy_load: tokio::sync::Mutex::new(()),
            risk: RwLock::new(Arc::new(risk)),
            keys: RwLock::new(Arc::new(keys)),
            revoked: Revocations::default(),
            in_flight: Mutex::new(HashMap::new()),
            refusals: refusals::Refusals::default(),
            sync: sync::SyncState::default(),
            tasks: Mutex::new(Vec::new()),
            ledger,
            store,
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
        if !serving {
            return Ok(Arc::new(engine));
        }
        engine
            .finish_startup_policy(active.record, &active.why)
            .await?;
        engine.startup_budget().await?;
        engine.refresh_revocations().await?;
        let engine = Arc::new(engine);
        let sweeper = engine
            .budget
            .spawn_sweeper(std::time::Duration::from_secs(5));
        let syncer = sync::spawn(Arc::downgrade(&engine));
        // Decisions written before the decision index existed are indexed in the
        // background; QueryDecisions answers UNAVAILABLE (with the progress) until then.
        let backfill = Engine::spawn_decision_index_backfill(Arc::downgrade(&engine));
        engine.tasks_mut().extend([sweeper, syncer, backfill]);
        Ok(engine)
    }

    fn tasks_mut(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Observes every ledger batch commit (entries, how long the commit took): metrics.
    pub fn on_ledger_commit(
        &self,
        observer: impl Fn(usize, std::time::Duration) + Send + Sync + 'static,
    ) {
        self.ledger.on_commit(observer);
    }

    /// Observes every refused actor claim with the key's name: metrics. Set once.
    pub fn on_actor_refused(&self, observer: impl Fn(&str) + Send + Sync + 'static) {
        self.refusals.set_observer(Arc::new(observer));
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

    /// Whether `caller` may perform the operation exposed as `op` (the permission table
    /// of `lexecon-auth`); local and system callers may do everything.
    fn authorize(&self, caller: &Caller, op: &str) -> Result<(), EngineError> {
        match caller {
            Caller::Principal(p) => Ok(lexecon_auth::check_access(
                p,
                op,
                &self.auth.config().mfa_required_roles,
            )?),
            Caller::Local(_) | Caller::System(_) => Ok(()),
        }
    }

    /// An empty actor from a key bound to exactly one literal actor means that actor.
    fn resolve_actor(&self, caller: &Caller, actor: &mut String) {
        if !actor.is_empty() {
            return;
        }
        if let Some(binding) = caller.principal().and_then(|p| p.actors.as_ref())
            && let Some(literal) = binding.sole_literal()
        {
            literal.clone_into(actor);
        }
    }

    /// Refuses (and records) an actor outside the caller's binding (contract §3).
    async fn speaks_for(&self, caller: &Caller, actor: &str) -> Result<(), EngineError> {
        if caller.speaks_for_anyone() {
            return Ok(());
        }
        let Some(p) = caller.principal() else {
            return Ok(());
        };
        let why = match &p.actors {
            Some(binding) if binding.permits(actor) => return Ok(()),
            Some(binding) => format!(
                "key {:?} may not speak for actor {actor:?}: its binding allows only {}",
                p.name,
                binding.patterns().join(", ")
            ),
            None => format!(
                "key {:?} may not speak for actor {actor:?}: the key has no actor binding (it \
                 was created before bindings existed); bind it with `lexecon apikey bind {} \
                 --actor GLOB` (AuthService/SetApiKeyActors), or create a new key with --actor",
                p.name, p.id
            ),
        };
        let principal = caller.ledger_name();
        for payload in self
            .refusals
            .refuse(&principal, &p.name, actor, self.clock.now())
        {
            if let Err(e) = self.ledger.append(EntryKind::AuthEvent, payload).await {
                tracing::error!(error = %e, "recording a refused actor claim failed");
            }
        }
        Err(EngineError::PermissionDenied(why))
    }

    /// From an `agent` key, the LLM roles a request names must be among the key's.
    fn may_name_llm_roles(caller: &Caller, roles: &[String]) -> Result<(), EngineError> {
        let Some(p) = caller.principal() else {
            return Ok(());
        };
        if p.role != lexecon_auth::Role::Agent {
            return Ok(());
        }
        match roles.iter().find(|r| !p.llm_roles.contains(r)) {
            None => Ok(()),
            Some(role) => Err(EngineError::PermissionDenied(format!(
                "key {:?} may not name the LLM role {role:?}; its llm_roles are [{}] (set them \
                 with --llm-role when creating or binding the key)",
                p.name,
                p.llm_roles.join(", ")
            ))),
        }
    }

    /// Flushes refusal summaries and the ledger, signs a final checkpoint, stops the
    /// background tasks and closes the database.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        for task in self.tasks_mut().drain(..) {
            task.abort();
        }
        for payload in self.refusals.close(self.clock.now(), true) {
            if let Err(e) = self.ledger.append(EntryKind::AuthEvent, payload).await {
                tracing::error!(error = %e, "recording refused actor claims at shutdown failed");
            }
        }
        self.ledger.shutdown().await?;
        self.db.close().await;
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for task in self.tasks_mut().drain(..) {
            task.abort();
        }
    }
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
    // The database even while budgets are disabled: enabling them later (SIGHUP or
    // UpdateLimits) must not keep counters in one process's memory.
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

/// The auth service on the shared database with `config`, sealing TOTP seeds under
/// `keys` (see [`crate::secrets::open_keys`]).
pub fn auth_service_with(
    db: &Database,
    clock: Arc<dyn Clock>,
    config: AuthConfig,
    keys: Arc<lexecon_auth::SecretKeys>,
) -> AuthService {
    let store: Arc<dyn lexecon_auth::AuthStore> = match db {
        Database::Sqlite(pool) => Arc::new(SqliteAuthStore::new(pool.clone(), keys)),
        Database::Postgres(pool) => Arc::new(PgAuthStore::new(pool.clone(), keys)),
    };
    AuthService::new(store, clock, config)
}

fn load_rsa(config: &Config) -> Result<Option<rsa::RsaPrivateKey>, EngineError> {
    use rsa::pkcs8::DecodePrivateKey;
    let path = config.layout().rsa_key();
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

#[cfg(test)]
mod door_tests;
#[cfg(test)]
mod tests;
