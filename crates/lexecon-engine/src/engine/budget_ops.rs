//! LLM budgets as engine operations: direct `Authorize`, `Settle` and `Release` (each
//! ledgered as a `budget_event`, the actor checked like a Decide's), usage and limits,
//! and the limits in force, kept in the database so that `UpdateLimits` survives
//! restarts and reaches every replica.

use lexecon_budget::{BudgetConfig, BudgetError, Denial, Scope, Settlement, Usage};
use lexecon_core::{LlmUsage, ReservationId};
use lexecon_ledger::EntryKind;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Caller, Engine, EngineError, ops};

/// The setting that holds the `[budget]` limits in force.
const BUDGET_SETTING: &str = "budget";
/// Largest `UpdateLimits` document accepted, in bytes.
pub const MAX_LIMITS_BYTES: usize = 1024 * 1024;

/// A direct budget authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeInput {
    /// The agent the call is for; checked against the caller's binding when given
    /// (empty from a key bound to one literal actor means that actor).
    pub actor: String,
    /// The model.
    pub model: String,
    /// The end user; empty means `anonymous`.
    pub user_id: String,
    /// The end user's roles.
    pub roles: Vec<String>,
    /// Estimated prompt tokens.
    pub estimated_input_tokens: u64,
    /// The most completion tokens the call may produce.
    pub max_output_tokens: u64,
}

/// The answer to a direct authorization: a reservation, or a denial (not an error).
#[derive(Debug, Clone)]
pub enum LlmAuthorization {
    /// Admitted: settle or release the reservation.
    Allowed(lexecon_budget::Authorization),
    /// Refused by a limit or a model rule.
    Denied(Denial),
}

/// The hash that says which `[budget]` section was last loaded from the file.
fn hash_of(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_toml(config: &BudgetConfig) -> Result<String, EngineError> {
    toml::to_string(config)
        .map_err(|e| EngineError::InvalidArgument(format!("budget: cannot encode the limits: {e}")))
}

impl Engine {
    /// At start: the file's `[budget]` unless the database holds limits and the file's
    /// section is unchanged since it was last loaded (then `UpdateLimits` wins).
    pub(crate) async fn startup_budget(&self) -> Result<(), EngineError> {
        let config = self.config.budget.clone();
        self.budget_from_file(&config, "system:start").await?;
        Ok(())
    }

    /// Applies the file's `[budget]` by the rule of contract §1; true when the limits in
    /// force changed.
    pub(crate) async fn budget_from_file(
        &self,
        file: &BudgetConfig,
        by: &str,
    ) -> Result<bool, EngineError> {
        let text = to_toml(file)?;
        let file_hash = hash_of(&text);
        let stored = self.store.setting(BUDGET_SETTING).await?;
        let chosen = match &stored {
            Some(row) if row.file_hash.as_deref() == Some(file_hash.as_str()) => {
                // The file is unchanged: the database's limits stay in force.
                self.sync.set_budget_version(row.version);
                if row.origin != "file" {
                    tracing::info!(
                        "budget limits: those set by UpdateLimits stay in force (the [budget] section is unchanged)"
                    );
                }
                parse_limits(&row.value)?
            }
            _ => {
                let version = self
                    .store
                    .setting_put(
                        BUDGET_SETTING,
                        &text,
                        "file",
                        Some(&file_hash),
                        self.clock.now().unix_micros(),
                        by,
                    )
                    .await?;
                self.sync.set_budget_version(version);
                file.clone()
            }
        };
        if chosen == self.budget.config() {
            return Ok(false);
        }
        self.budget.reload(chosen)?;
        Ok(true)
    }

    /// Replaces the limits in force on every replica (counters kept), recorded in the
    /// ledger; an invalid document changes nothing and its error names the key.
    pub async fn update_limits(
        &self,
        caller: &Caller,
        config_toml: &str,
    ) -> Result<(), EngineError> {
        self.authorize(caller, ops::UPDATE_LIMITS)?;
        if config_toml.len() > MAX_LIMITS_BYTES {
            return Err(EngineError::InvalidArgument(
                "config_toml is larger than 1 MiB".to_owned(),
            ));
        }
        let config = parse_limits(config_toml)?;
        config.validate()?;
        let text = to_toml(&config)?;
        let version = self
            .store
            .setting_put(
                BUDGET_SETTING,
                &text,
                "api",
                None,
                self.clock.now().unix_micros(),
                &caller.ledger_name(),
            )
            .await?;
        self.budget.reload(config)?;
        self.sync.set_budget_version(version);
        self.ledger
            .append(
                EntryKind::ConfigReloaded,
                json!({"section": "budget", "by": caller.ledger_name(), "version": version}),
            )
            .await?;
        Ok(())
    }

    /// Puts limits another replica stored in force here.
    pub(crate) async fn sync_budget(&self) -> Result<(), EngineError> {
        let Some(row) = self.store.setting(BUDGET_SETTING).await? else {
            return Ok(());
        };
        if row.version <= self.sync.budget_version() {
            return Ok(());
        }
        let config = parse_limits(&row.value)?;
        if config != self.budget.config() {
            self.budget.reload(config)?;
            tracing::info!(
                version = row.version,
                "budget limits changed on another replica; in force here now"
            );
        }
        self.sync.set_budget_version(row.version);
        Ok(())
    }

    /// Authorizes an LLM call directly (outside a Decide), reserving its worst-case
    /// cost. A denial is an answer, not an error. Both are ledgered.
    pub async fn authorize_llm(
        &self,
        caller: &Caller,
        input: AuthorizeInput,
    ) -> Result<LlmAuthorization, EngineError> {
        self.authorize(caller, ops::AUTHORIZE)?;
        let AuthorizeInput {
            mut actor,
            model,
            user_id,
            roles,
            estimated_input_tokens,
            max_output_tokens,
        } = input;
        if model.is_empty() {
            return Err(EngineError::InvalidArgument(
                "model must not be empty".to_owned(),
            ));
        }
        self.resolve_actor(caller, &mut actor);
        if !actor.is_empty() {
            lexecon_core::Actor::new(&actor).map_err(lexecon_core::RequestError::from)?;
            self.speaks_for(caller, &actor).await?;
        }
        Self::may_name_llm_roles(caller, &roles)?;
        let usage = LlmUsage {
            model,
            user_id: (!user_id.is_empty()).then_some(user_id),
            roles,
            estimated_input_tokens,
            max_output_tokens,
        };
        let (result, payload) = match self.budget.authorize_for(&usage, caller.key_name()).await {
            Ok(a) => {
                let payload = json!({
                    "event": "authorized",
                    "reservation_id": a.reservation_id.to_string(),
                    "reserved_micros": a.reserved_micros,
                    "model": usage.model,
                    "user_id": usage.user_id,
                    "actor": actor,
                    "principal": caller.ledger_name(),
                });
                (LlmAuthorization::Allowed(a), payload)
            }
            Err(BudgetError::Denied(d)) => {
                let payload = json!({
                    "event": "denied",
                    "reason": d.reason.as_str(),
                    "limit_id": d.limit_id,
                    "model": usage.model,
                    "user_id": usage.user_id,
                    "actor": actor,
                    "principal": caller.ledger_name(),
                });
                (LlmAuthorization::Denied(d), payload)
            }
            Err(other) => return Err(other.into()),
        };
        if let Err(e) = self.ledger.append(EntryKind::BudgetEvent, payload).await {
            // Not acknowledged: give the reservation back.
            if let LlmAuthorization::Allowed(a) = &result {
                self.release_reservation(Some(a.reservation_id)).await;
            }
            return Err(e.into());
        }
        Ok(result)
    }

    /// Charges a reservation its actual cost (idempotent; ledgered the first time).
    pub async fn settle(
        &self,
        caller: &Caller,
        reservation_id: &str,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<Settlement, EngineError> {
        self.authorize(caller, ops::SETTLE)?;
        let id = reservation(reservation_id)?;
        let s = self.budget.settle(id, input_tokens, output_tokens).await?;
        if s.newly_settled {
            self.ledger
                .append(
                    EntryKind::BudgetEvent,
                    json!({
                        "event": "settled",
                        "reservation_id": reservation_id,
                        "input_tokens": input_tokens,
                        "output_tokens": output_tokens,
                        "charged_micros": s.charged_micros,
                        "released_micros": s.released_micros,
                        "principal": caller.ledger_name(),
                    }),
                )
                .await?;
        }
        Ok(s)
    }

    /// Cancels a reservation; false when it was already closed. Ledgered when released.
    pub async fn release(
        &self,
        caller: &Caller,
        reservation_id: &str,
    ) -> Result<bool, EngineError> {
        self.authorize(caller, ops::RELEASE)?;
        let id = reservation(reservation_id)?;
        let released = self.budget.release(id).await?;
        if released {
            self.ledger
                .append(
                    EntryKind::BudgetEvent,
                    json!({
                        "event": "released",
                        "reservation_id": reservation_id,
                        "principal": caller.ledger_name(),
                    }),
                )
                .await?;
        }
        Ok(released)
    }

    /// Spend and window counts of a scope (`global`, `user:<id>`, `role:<name>`,
    /// `key:<name>`); an empty scope means the caller's own user scope.
    pub async fn usage(&self, caller: &Caller, scope: &str) -> Result<Usage, EngineError> {
        self.authorize(caller, ops::GET_USAGE)?;
        let scope = match scope {
            "" => Scope::User(match caller {
                Caller::Principal(p) => p.name.clone(),
                Caller::Local(u) => u.clone(),
                Caller::System(t) => (*t).to_owned(),
            }),
            s => s.parse::<Scope>()?,
        };
        Ok(self.budget.usage(&scope).await?)
    }

    /// The limits in force for a user and their roles, as a TOML table by scope.
    pub fn limits(
        &self,
        caller: &Caller,
        user_id: &str,
        roles: &[String],
    ) -> Result<String, EngineError> {
        self.authorize(caller, ops::GET_LIMITS)?;
        let user = (!user_id.is_empty()).then_some(user_id);
        let mut table = toml::Table::new();
        for (scope, l) in self
            .budget
            .effective_limits_for(user, roles, caller.key_name())
        {
            let value = toml::Value::try_from(&l)
                .map_err(|e| EngineError::Corrupt(format!("cannot encode the limits: {e}")))?;
            table.insert(scope.to_string(), value);
        }
        toml::to_string(&table)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode the limits: {e}")))
    }
}

fn reservation(s: &str) -> Result<ReservationId, EngineError> {
    s.parse()
        .map_err(|e| EngineError::InvalidArgument(format!("reservation_id: {e}")))
}

/// A `[budget]` document: the error names the key (`budget.<key>`).
fn parse_limits(text: &str) -> Result<BudgetConfig, EngineError> {
    toml::from_str(text).map_err(|e| EngineError::InvalidArgument(format!("budget.{e}")))
}
