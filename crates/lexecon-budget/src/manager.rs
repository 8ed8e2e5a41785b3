//! `BudgetManager`: model access, per-request caps, and two-phase accounting over a
//! `BudgetStore`, with hot reload and soft-limit callbacks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use lexecon_core::{Clock, LlmUsage, ReservationId, Timestamp};

use crate::access::AccessRules;
use crate::config::{BudgetConfig, BudgetConfigError, Limits};
use crate::glob::lower_chars;
use crate::money::format_micros;
use crate::period::{Period, PeriodCache};
use crate::pricing::{Catalog, Price};
use crate::store::{
    BudgetStore, CLOSED_RETENTION_MICROS, EventKind, LimitKind, ReleaseReason, ReserveOutcome,
    ReserveRequest, ScopeCheck, StoreError,
};

/// The user a call without `user_id` is charged to.
pub const ANONYMOUS: &str = "anonymous";

/// Why a call was refused; `as_str` is the reason string of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenialReason {
    /// The model is in `restricted_models`.
    ModelRestricted,
    /// The model matches a denylist of the user or a role.
    ModelDenied,
    /// The user or a role has an allowlist the model does not match.
    ModelNotAllowed,
    /// The model has no price and unpriced models are not allowed.
    ModelUnpriced,
    /// The monthly budget would be exceeded.
    MonthlyBudget,
    /// The worst-case cost of the call is above the per-request cap.
    MaxRequestCost,
    /// Too many requests in the last 60 seconds.
    Rpm,
    /// Too many tokens in the last 60 seconds.
    Tpm,
    /// The call asks for more tokens than one request may use.
    MaxTokensPerRequest,
}

impl DenialReason {
    /// The machine-readable reason, e.g. `"monthly_budget"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::ModelRestricted => "model_restricted",
            DenialReason::ModelDenied => "model_denied",
            DenialReason::ModelNotAllowed => "model_not_allowed",
            DenialReason::ModelUnpriced => "model_unpriced",
            DenialReason::MonthlyBudget => "monthly_budget",
            DenialReason::MaxRequestCost => "max_request_cost",
            DenialReason::Rpm => "rpm",
            DenialReason::Tpm => "tpm",
            DenialReason::MaxTokensPerRequest => "max_tokens_per_request",
        }
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Why.
    pub reason: DenialReason,
    /// `global`, `user:<id>`, `key:<name>` or `role:<name>`.
    pub scope: String,
    /// The limit's id, e.g. `budget.user:alice.rpm` or `budget.key:frontend.rpm`.
    pub limit_id: String,
    /// Usage in the limit's unit (micro-dollars, requests or tokens); 0 for model rules.
    pub current: u64,
    /// The limit in the same unit; 0 for model rules.
    pub limit: u64,
    /// When the call could be admitted again (window slide or month reset); `None` when
    /// waiting does not help.
    pub retry_after: Option<Duration>,
}

impl Denial {
    /// One human sentence.
    pub fn message(&self) -> String {
        let scope = &self.scope;
        let retry = match self.retry_after {
            Some(d) => format!("; retry in {}s", d.as_secs().max(1)),
            None => String::new(),
        };
        match self.reason {
            DenialReason::ModelRestricted => {
                "the model is restricted for everyone (budget.restricted_models)".to_owned()
            }
            DenialReason::ModelDenied => {
                format!(
                    "the model is on the denylist of {scope} ({})",
                    self.limit_id
                )
            }
            DenialReason::ModelNotAllowed => format!(
                "the model is not on the allowlist of {scope} ({})",
                self.limit_id
            ),
            DenialReason::ModelUnpriced => {
                "the model has no price; add it under [budget.pricing] or set allow_unpriced_models"
                    .to_owned()
            }
            DenialReason::MonthlyBudget => format!(
                "the monthly budget of {scope} would be exceeded: ${} used of ${}{retry}",
                format_micros(self.current),
                format_micros(self.limit)
            ),
            DenialReason::MaxRequestCost => format!(
                "the call may cost ${}, above the ${} per-request cap of {scope}",
                format_micros(self.current),
                format_micros(self.limit)
            ),
            DenialReason::Rpm => format!(
                "{scope} made {} of {} requests allowed per minute{retry}",
                self.current, self.limit
            ),
            DenialReason::Tpm => format!(
                "{scope} used {} of {} tokens allowed per minute{retry}",
                self.current, self.limit
            ),
            DenialReason::MaxTokensPerRequest => format!(
                "the call asks for {} tokens, above the {} per-request cap of {scope}",
                self.current, self.limit
            ),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied ({}): {}", self.reason, self.message())
    }
}

/// Anything but an admission. The engine turns every variant into DENIED.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A limit or model rule refused the call.
    #[error("{0}")]
    Denied(Denial),
    /// The store failed; the call must be refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such reservation (never made, or closed more than an hour ago).
    #[error("unknown reservation {0}; use the id authorize returned, within an hour of closing it")]
    UnknownReservation(ReservationId),
    /// The usage is malformed.
    #[error("invalid llm usage: {0}")]
    InvalidRequest(String),
    /// A scope string that is not `global`, `user:<id>`, `role:<name>` or `key:<name>`.
    #[error("unknown scope {0:?}; write global, user:<id>, role:<name> or key:<name>")]
    InvalidScope(String),
}

/// A scope of limits and counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole deployment.
    Global,
    /// One user.
    User(String),
    /// Everyone holding one role.
    Role(String),
    /// Every call made with one API key, whatever user it names: the key's name.
    Key(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::User(id) => write!(f, "user:{id}"),
            Scope::Role(r) => write!(f, "role:{r}"),
            Scope::Key(k) => write!(f, "key:{k}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = BudgetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "global" {
            return Ok(Scope::Global);
        }
        match s.split_once(':') {
            Some(("user", id)) if !id.is_empty() => Ok(Scope::User(id.to_owned())),
            Some(("role", r)) if !r.is_empty() => Ok(Scope::Role(r.to_owned())),
            Some(("key", k)) if !k.is_empty() => Ok(Scope::Key(k.to_owned())),
            _ => Err(BudgetError::InvalidScope(s.to_owned())),
        }
    }
}

/// What a threshold crossing was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SoftLimitKind {
    /// Spend reached `soft_limit_pct` of the budget.
    SoftLimit,
    /// Spend passed the budget while `enforce_budget = false` (recorded, allowed).
    BudgetExceeded,
}

/// Raised once per scope, kind and period, across every replica sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftLimitEvent {
    /// What was crossed.
    pub kind: SoftLimitKind,
    /// `global`, `user:<id>`, `key:<name>` or `role:<name>`.
    pub scope: String,
    /// The limit id, e.g. `budget.user:alice.soft_limit_pct`.
    pub limit_id: String,
    /// The month.
    pub period: Period,
    /// Spend plus open reservations after the call, micro-dollars.
    pub current_micros: u64,
    /// The threshold crossed (soft threshold or budget), micro-dollars.
    pub threshold_micros: u64,
    /// The monthly budget, micro-dollars.
    pub budget_micros: u64,
    /// When.
    pub at: Timestamp,
}

impl SoftLimitEvent {
    /// One human sentence.
    pub fn message(&self) -> String {
        match self.kind {
            SoftLimitKind::SoftLimit => format!(
                "{} reached the soft limit of ${} (${} used of a ${} monthly budget in {})",
                self.scope,
                format_micros(self.threshold_micros),
                format_micros(self.current_micros),
                format_micros(self.budget_micros),
                self.period
            ),
            SoftLimitKind::BudgetExceeded => format!(
                "{} exceeded its ${} monthly budget in {} (${} used; not enforced)",
                self.scope,
                format_micros(self.budget_micros),
                self.period,
                format_micros(self.current_micros)
            ),
        }
    }
}

/// An admitted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Settle or release it with this id.
    pub reservation_id: ReservationId,
    /// The worst-case cost reserved, micro-dollars.
    pub reserved_micros: u64,
    /// When the reservation is released if neither settled nor released.
    pub expires_at: Timestamp,
    /// Soft-limit events this call raised (it still proceeds).
    pub warnings: Vec<SoftLimitEvent>,
    /// Ids of every limit that applied, e.g. `budget.global.monthly_budget`.
    pub limit_ids: Vec<String>,
}

/// A settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The cost charged, micro-dollars.
    pub charged_micros: u64,
    /// The part of the reservation given back, micro-dollars.
    pub released_micros: u64,
    /// False when it had been settled before (the first result is returned).
    pub newly_settled: bool,
}

/// Usage of one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The scope.
    pub scope: Scope,
    /// The current month.
    pub period: Period,
    /// Settled spend this month, micro-dollars.
    pub spent_micros: u64,
    /// Held by open reservations, micro-dollars.
    pub reserved_micros: u64,
    /// Requests in the last 60 seconds (for scopes with an RPM or TPM limit).
    pub requests_last_minute: u64,
    /// Tokens in the last 60 seconds (same).
    pub tokens_last_minute: u64,
}

type Callback = Arc<dyn Fn(&SoftLimitEvent) + Send + Sync>;

/// A call validated and priced, ready to reserve.
struct Planned {
    id: ReservationId,
    now: Timestamp,
    expires_at: Timestamp,
    period_end: Option<Timestamp>,
    /// `None` while budgets are disabled.
    req: Option<ReserveRequest>,
    limit_ids: Vec<String>,
}

/// The configuration compiled for lookups.
#[derive(Debug)]
struct Compiled {
    config: BudgetConfig,
    periods: PeriodCache,
    catalog: Catalog,
    access: AccessRules,
    global: Limits,
    default_user: Limits,
    users: HashMap<String, Limits>,
    /// Per-key overrides of the per-user limits, which otherwise apply to each key too.
    keys: HashMap<String, Limits>,
    roles: HashMap<String, Limits>,
}

impl Compiled {
    fn new(config: BudgetConfig) -> Result<Compiled, BudgetConfigError> {
        config.validate()?;
        let tz =
            jiff::tz::TimeZone::get(&config.timezone).map_err(|e| BudgetConfigError::Invalid {
                key: "budget.timezone".to_owned(),
                problem: e.to_string(),
            })?;
        let soft_only = Limits {
            soft_limit_pct: config.soft_limit_pct,
            ..Limits::default()
        };
        let default_user = config.per_user_defaults();
        Ok(Compiled {
            periods: PeriodCache::new(tz),
            catalog: Catalog::new(&config.effective_pricing()),
            access: AccessRules::new(
                &config.restricted_models,
                &config.model_allowlist,
                &config.model_denylist,
            ),
            global: config.global.or(&soft_only),
            users: config
                .users
                .iter()
                .map(|(id, l)| (id.clone(), l.or(&default_user)))
                .collect(),
            keys: config
                .keys
                .iter()
                .map(|(k, l)| (k.clone(), l.or(&default_user)))
                .collect(),
            roles: config
                .roles
                .iter()
                .map(|(r, l)| (r.clone(), l.or(&soft_only)))
                .collect(),
            default_user,
            config,
        })
    }

    fn price(&self, model: &str) -> Option<Price> {
        let chars = lower_chars(model);
        self.catalog
            .price(&model.to_lowercase(), || chars.as_slice())
    }
}

/// `budget.<scope>.<name>`, built without the formatting machinery (hot path).
fn limit_id(scope: &str, name: &str) -> String {
    let mut id = String::with_capacity(8 + scope.len() + name.len());
    id.push_str("budget.");
    id.push_str(scope);
    id.push('.');
    id.push_str(name);
    id
}

/// `<kind>:<name>`.
fn scope_name(kind: &str, name: &str) -> String {
    let mut scope = String::with_capacity(kind.len() + 1 + name.len());
    scope.push_str(kind);
    scope.push(':');
    scope.push_str(name);
    scope
}

/// Limit ids of every limit set in `limits` for `scope`.
fn push_limit_ids(out: &mut Vec<String>, scope: &str, limits: &Limits) {
    for (set, name) in [
        (limits.monthly_budget.is_some(), "monthly_budget"),
        (
            limits.soft_limit_pct.is_some() && limits.monthly_budget.is_some(),
            "soft_limit_pct",
        ),
        (limits.max_request_cost.is_some(), "max_request_cost"),
        (limits.rpm_limit.is_some(), "rpm"),
        (limits.tpm_limit.is_some(), "tpm"),
        (
            limits.max_tokens_per_request.is_some(),
            "max_tokens_per_request",
        ),
    ] {
        if set {
            out.push(limit_id(scope, name));
        }
    }
}

fn check_text(field: &str, value: &str) -> Result<(), BudgetError> {
    if value.len() > 256 {
        return Err(BudgetError::InvalidRequest(format!(
            "{field} is longer than 256 bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(BudgetError::InvalidRequest(format!(
            "{field} contains a control character"
        )));
    }
    Ok(())
}

/// Model access and price: a synchronous step, so nothing in it is held across an await.
fn model_price(c: &Compiled, usage: &LlmUsage, user: &str) -> Result<Price, BudgetError> {
    let model_lower = usage.model.to_lowercase();
    // Glob matching needs characters; most calls need none (no lists, exact price).
    let model_chars = std::cell::OnceCell::new();
    let chars = || {
        model_chars
            .get_or_init(|| lower_chars(&usage.model))
            .as_slice()
    };
    if !c.access.is_empty() {
        c.access.check(chars(), user, &usage.roles).map_err(|d| {
            BudgetError::Denied(Denial {
                reason: d.reason,
                scope: d.scope,
                limit_id: d.limit_id,
                current: 0,
                limit: 0,
                retry_after: None,
            })
        })?;
    }
    match c.catalog.price(&model_lower, chars) {
        Some(p) => Ok(p),
        None if c.config.allow_unpriced_models => Ok(Price {
            input_per_mtok: crate::Dollars(0),
            output_per_mtok: crate::Dollars(0),
        }),
        None => Err(BudgetError::Denied(Denial {
            reason: DenialReason::ModelUnpriced,
            scope: "global".to_owned(),
            limit_id: "budget.pricing".to_owned(),
            current: 0,
            limit: 0,
            retry_after: None,
        })),
    }
}

/// LLM usage governance over one store; share it behind an `Arc`.
pub struct BudgetManager {
    compiled: RwLock<Arc<Compiled>>,
    store: Arc<dyn BudgetStore>,
    clock: Arc<dyn Clock>,
    callbacks: RwLock<Vec<Callback>>,
}

impl fmt::Debug for BudgetManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetManager")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl BudgetManager {
    /// A manager enforcing `config` over `store`, with time from `clock`.
    pub fn new(
        config: BudgetConfig,
        store: Arc<dyn BudgetStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BudgetConfigError> {
        Ok(BudgetManager {
            compiled: RwLock::new(Arc::new(Compiled::new(config)?)),
            store,
            clock,
            callbacks: RwLock::new(Vec::new()),
        })
    }

    fn current(&self) -> Arc<Compiled> {
        Arc::clone(&self.compiled.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The configuration in force.
    pub fn config(&self) -> BudgetConfig {
        self.current().config.clone()
    }

    /// Validates `config` and puts it in force atomically; counters are kept. On error
    /// the old configuration stays.
    pub fn reload(&self, config: BudgetConfig) -> Result<(), BudgetConfigError> {
        let compiled = Arc::new(Compiled::new(config)?);
        *self
            .compiled
            .write()
            .unwrap_or_else(PoisonError::into_inner) = compiled;
        Ok(())
    }

    /// Registers a callback for soft-limit (and unenforced over-budget) events.
    pub fn on_soft_limit(&self, callback: impl Fn(&SoftLimitEvent) + Send + Sync + 'static) {
        self.callbacks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(callback));
    }

    /// The cost of a call at the configured price, micro-dollars; `None` when unpriced.
    pub fn estimate_cost_micros(
        &self,
        model: &str,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Option<u64> {
        self.current()
            .price(model)
            .map(|p| p.cost_micros(input_tokens, output_tokens))
    }

    /// The limits that apply to `user_id` (default `anonymous`) with `roles`, by scope.
    pub fn effective_limits(
        &self,
        user_id: Option<&str>,
        roles: &[String],
    ) -> Vec<(Scope, Limits)> {
        self.effective_limits_for(user_id, roles, None)
    }

    /// The limits that apply to `user_id` (default `anonymous`) with `roles`, calling
    /// with the API key named `key` (when given and not empty), by scope.
    pub fn effective_limits_for(
        &self,
        user_id: Option<&str>,
        roles: &[String],
        key: Option<&str>,
    ) -> Vec<(Scope, Limits)> {
        let c = self.current();
        let user = user_id.filter(|u| !u.is_empty()).unwrap_or(ANONYMOUS);
        let mut out = vec![
            (Scope::Global, c.global.clone()),
            (
                Scope::User(user.to_owned()),
                c.users.get(user).unwrap_or(&c.default_user).clone(),
            ),
        ];
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            out.push((
                Scope::Key(key.to_owned()),
                c.keys.get(key).unwrap_or(&c.default_user).clone(),
            ));
        }
        for role in roles {
            out.push((
                Scope::Role(role.clone()),
                c.roles.get(role.as_str()).cloned().unwrap_or_default(),
            ));
        }
        out
    }

    fn deny(reason: DenialReason, scope: &str, limit: &str, current: u64, max: u64) -> BudgetError {
        BudgetError::Denied(Denial {
            reason,
            scope: scope.to_owned(),
            limit_id: format!("budget.{scope}.{limit}"),
            current,
            limit: max,
            retry_after: None,
        })
    }

    /// Checks model access and every applicable limit, and reserves the worst-case cost
    /// and tokens across every scope at once. The same as
    /// [`BudgetManager::authorize_for`] without a key.
    pub async fn authorize(&self, usage: &LlmUsage) -> Result<Authorization, BudgetError> {
        self.authorize_for(usage, None).await
    }

    /// Checks a call as [`BudgetManager::authorize_for`] does (model access, the
    /// per-request caps and the monthly budgets against current spend and open
    /// reservations) without reserving anything: for a request that waits for a person
    /// (an escalation), reserved only once the grant is used. Rate windows are not
    /// checked: they will have moved by then.
    pub async fn check_for(&self, usage: &LlmUsage, key: Option<&str>) -> Result<(), BudgetError> {
        let Planned {
            now,
            period_end,
            req,
            ..
        } = self.plan(usage, key)?;
        let Some(req) = req else {
            return Ok(());
        };
        for check in &req.scopes {
            let (Some(budget), true) = (check.budget_micros, check.enforce_budget) else {
                continue;
            };
            let u = self.store.usage(&check.scope, req.period, now).await?;
            let current = u.spent_micros.saturating_add(u.reserved_micros);
            if current.saturating_add(req.cost_micros) > budget {
                return Err(BudgetError::Denied(Denial {
                    reason: DenialReason::MonthlyBudget,
                    limit_id: format!("budget.{}.monthly_budget", check.scope),
                    scope: check.scope.clone(),
                    current,
                    limit: budget,
                    retry_after: period_end.map(|end| {
                        Duration::from_micros(
                            u64::try_from(end.unix_micros().saturating_sub(now.unix_micros()))
                                .unwrap_or(0),
                        )
                    }),
                }));
            }
        }
        Ok(())
    }

    /// Validates a call and builds its reservation request (`None` while budgets are
    /// disabled); the per-request caps refuse here.
    fn plan(&self, usage: &LlmUsage, key: Option<&str>) -> Result<Planned, BudgetError> {
        let c = self.current();
        let now = self.clock.now();
        let expires_at = now.add_secs(i64::try_from(c.config.reservation_ttl_secs).unwrap_or(600));
        let id = ReservationId::new(now, rand::random());
        if !c.config.enabled {
            return Ok(Planned {
                id,
                now,
                expires_at,
                period_end: None,
                req: None,
                limit_ids: Vec::new(),
            });
        }
        if usage.model.is_empty() {
            return Err(BudgetError::InvalidRequest(
                "model is empty; name the model the call uses".to_owned(),
            ));
        }
        check_text("model", &usage.model)?;
        let user = usage
            .user_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(ANONYMOUS);
        check_text("user_id", user)?;
        if let Some(key) = key {
            if key.is_empty() {
                return Err(BudgetError::InvalidRequest(
                    "the key name is empty; name the API key that made the call, or give none"
                        .to_owned(),
                ));
            }
            check_text("key", key)?;
        }
        let mut roles: Vec<&str> = Vec::with_capacity(usage.roles.len());
        for role in &usage.roles {
            check_text("roles", role)?;
            if role.is_empty() {
                return Err(BudgetError::InvalidRequest("a role is empty".to_owned()));
            }
            if !roles.contains(&role.as_str()) {
                roles.push(role);
            }
        }

        let price = model_price(&c, usage, user)?;
        let tokens = usage
            .estimated_input_tokens
            .saturating_add(usage.max_output_tokens);
        let cost = price.cost_micros(usage.estimated_input_tokens, usage.max_output_tokens);

        let user_limits = c.users.get(user).unwrap_or(&c.default_user);
        let empty = Limits::default();
        let mut scoped: Vec<(String, &Limits)> = Vec::with_capacity(3 + roles.len());
        scoped.push(("global".to_owned(), &c.global));
        scoped.push((scope_name("user", user), user_limits));
        if let Some(key) = key {
            scoped.push((
                scope_name("key", key),
                c.keys.get(key).unwrap_or(&c.default_user),
            ));
        }
        for role in &roles {
            scoped.push((
                scope_name("role", role),
                c.roles.get(*role).unwrap_or(&empty),
            ));
        }

        let mut limit_ids = Vec::new();
        let mut checks = Vec::with_capacity(scoped.len());
        for (scope, limits) in scoped {
            if let Some(max) = limits.max_tokens_per_request
                && tokens > max
            {
                return Err(Self::deny(
                    DenialReason::MaxTokensPerRequest,
                    &scope,
                    "max_tokens_per_request",
                    tokens,
                    max,
                ));
            }
            if let Some(max) = limits.max_request_cost
                && cost > max.micros()
            {
                return Err(Self::deny(
                    DenialReason::MaxRequestCost,
                    &scope,
                    "max_request_cost",
                    cost,
                    max.micros(),
                ));
            }
            push_limit_ids(&mut limit_ids, &scope, limits);
            let budget = limits.monthly_budget.map(crate::Dollars::micros);
            checks.push(ScopeCheck {
                scope,
                budget_micros: budget,
                enforce_budget: c.config.enforce_budget,
                soft_micros: budget.zip(limits.soft_limit_pct).map(|(b, f)| f.of(b)),
                rpm: limits.rpm_limit,
                tpm: limits.tpm_limit,
            });
        }

        let (period, period_end) = c.periods.period(now);
        Ok(Planned {
            id,
            now,
            expires_at,
            period_end,
            limit_ids,
            req: Some(ReserveRequest {
                id,
                period,
                now,
                expires_at,
                cost_micros: cost,
                tokens,
                input_per_mtok_micros: price.input_per_mtok.micros(),
                output_per_mtok_micros: price.output_per_mtok.micros(),
                scopes: checks,
            }),
        })
    }

    /// Like [`BudgetManager::authorize`], for a call made with the API key named `key`:
    /// the per-user limits (or `budget.keys.<key>` overrides) are also checked and
    /// counted under the scope `key:<key>`, in the same atomic reservation. The user id
    /// in `usage` is the caller's claim; the key scope is what a caller cannot invent.
    pub async fn authorize_for(
        &self,
        usage: &LlmUsage,
        key: Option<&str>,
    ) -> Result<Authorization, BudgetError> {
        let Planned {
            id,
            now,
            expires_at,
            period_end,
            req,
            limit_ids,
        } = self.plan(usage, key)?;
        let Some(req) = req else {
            return Ok(Authorization {
                reservation_id: id,
                reserved_micros: 0,
                expires_at,
                warnings: Vec::new(),
                limit_ids: Vec::new(),
            });
        };
        let cost = req.cost_micros;
        let period = req.period;
        match self.store.reserve(&req).await? {
            ReserveOutcome::Denied(d) => {
                let scope = req
                    .scopes
                    .get(d.scope_index)
                    .map_or_else(|| "global".to_owned(), |s| s.scope.clone());
                let (reason, name) = match d.kind {
                    LimitKind::Budget => (DenialReason::MonthlyBudget, "monthly_budget"),
                    LimitKind::Rpm => (DenialReason::Rpm, "rpm"),
                    LimitKind::Tpm => (DenialReason::Tpm, "tpm"),
                };
                let retry_after = match d.kind {
                    LimitKind::Budget => period_end.map(|end| {
                        Duration::from_micros(
                            u64::try_from(end.unix_micros().saturating_sub(now.unix_micros()))
                                .unwrap_or(0),
                        )
                    }),
                    _ => d.retry_after_micros.map(Duration::from_micros),
                };
                Err(BudgetError::Denied(Denial {
                    reason,
                    limit_id: format!("budget.{scope}.{name}"),
                    scope,
                    current: d.current,
                    limit: d.limit,
                    retry_after,
                }))
            }
            ReserveOutcome::Reserved(events) => {
                let warnings: Vec<SoftLimitEvent> = events
                    .iter()
                    .filter_map(|e| {
                        let check = req.scopes.get(e.scope_index)?;
                        let budget = check.budget_micros?;
                        let (kind, threshold, name) = match e.kind {
                            EventKind::SoftLimit => (
                                SoftLimitKind::SoftLimit,
                                check.soft_micros?,
                                "soft_limit_pct",
                            ),
                            EventKind::BudgetExceeded => {
                                (SoftLimitKind::BudgetExceeded, budget, "monthly_budget")
                            }
                        };
                        Some(SoftLimitEvent {
                            kind,
                            limit_id: format!("budget.{}.{name}", check.scope),
                            scope: check.scope.clone(),
                            period,
                            current_micros: e.current_micros,
                            threshold_micros: threshold,
                            budget_micros: budget,
                            at: now,
                        })
                    })
                    .collect();
                if !warnings.is_empty() {
                    let callbacks = self
                        .callbacks
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    for w in &warnings {
                        for cb in &callbacks {
                            cb(w);
                        }
                    }
                }
                Ok(Authorization {
                    reservation_id: id,
                    reserved_micros: cost,
                    expires_at,
                    warnings,
                    limit_ids,
                })
            }
        }
    }

    /// Charges the actual usage of a reservation once (at the price quoted when it was
    /// made) and gives back the rest. A repeated call returns the first result.
    pub async fn settle(
        &self,
        id: ReservationId,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<Settlement, BudgetError> {
        let Some(rec) = self.store.reservation(id).await? else {
            if !self.current().config.enabled {
                // Authorizations made while disabled hold nothing to settle.
                return Ok(Settlement {
                    charged_micros: 0,
                    released_micros: 0,
                    newly_settled: false,
                });
            }
            return Err(BudgetError::UnknownReservation(id));
        };
        let price = Price {
            input_per_mtok: crate::Dollars(rec.input_per_mtok_micros),
            output_per_mtok: crate::Dollars(rec.output_per_mtok_micros),
        };
        let charged = price.cost_micros(input_tokens, output_tokens);
        let tokens = input_tokens.saturating_add(output_tokens);
        let out = self
            .store
            .settle(&rec, charged, tokens, self.clock.now())
            .await?;
        Ok(Settlement {
            charged_micros: out.charged_micros,
            released_micros: out.released_micros,
            newly_settled: out.newly_settled,
        })
    }

    /// Cancels a reservation: its cost and tokens are given back. False when it was
    /// already settled, released or expired.
    pub async fn release(&self, id: ReservationId) -> Result<bool, BudgetError> {
        let Some(rec) = self.store.reservation(id).await? else {
            if !self.current().config.enabled {
                return Ok(false);
            }
            return Err(BudgetError::UnknownReservation(id));
        };
        Ok(self
            .store
            .release(&rec, ReleaseReason::Cancelled, self.clock.now())
            .await?)
    }

    /// Releases reservations whose TTL passed and forgets those closed more than 24
    /// hours ago; returns how many expired. Run it every second or so (see
    /// [`BudgetManager::spawn_sweeper`]).
    pub async fn sweep(&self) -> Result<usize, BudgetError> {
        let now = self.clock.now();
        let mut expired = 0;
        loop {
            let ids = self.store.expired(now, 500).await?;
            let batch = ids.len();
            let mut released = 0;
            for id in ids {
                if let Some(rec) = self.store.reservation(id).await?
                    && self
                        .store
                        .release(&rec, ReleaseReason::Expired, now)
                        .await?
                {
                    released += 1;
                }
            }
            expired += released;
            // A full batch that released nothing would come back unchanged: stop, and let
            // the next sweep retry rather than loop.
            if batch < 500 || released == 0 {
                break;
            }
        }
        self.store
            .purge_closed(now.add_micros(-CLOSED_RETENTION_MICROS))
            .await?;
        Ok(expired)
    }

    /// Runs [`BudgetManager::sweep`] every `every` on the current tokio runtime until the
    /// handle is aborted; errors are logged and retried.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = manager.sweep().await {
                    tracing::warn!(error = %e, "budget sweeper failed; retrying");
                }
            }
        })
    }

    /// Spend, reservations and window counts of `scope` in the current month.
    pub async fn usage(&self, scope: &Scope) -> Result<Usage, BudgetError> {
        let c = self.current();
        let now = self.clock.now();
        let (period, _) = c.periods.period(now);
        let key = scope.to_string();
        let u = self.store.usage(&key, period, now).await?;
        Ok(Usage {
            scope: scope.clone(),
            period,
            spent_micros: u.spent_micros,
            reserved_micros: u.reserved_micros,
            requests_last_minute: u.requests_last_minute,
            tokens_last_minute: u.tokens_last_minute,
        })
    }
}
