//! The `[budget]` configuration: limits per scope, model access lists, prices, time zone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::money::{Dollars, Fraction, MAX_MICROS};
use crate::pricing::Price;

/// A budget configuration that does not validate, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetConfigError {
    /// A value is out of range or malformed.
    #[error("invalid budget configuration: {key} {problem}")]
    Invalid {
        /// The dotted key, e.g. `budget.users.alice.rpm_limit`.
        key: String,
        /// What is wrong and what to write instead.
        problem: String,
    },
    /// The TOML text does not parse or has an unknown key.
    #[error("invalid budget configuration: {0}")]
    Parse(String),
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> BudgetConfigError {
    BudgetConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Limits of one scope. Every limit is optional; an absent limit does not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Spend allowed per calendar month, in dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_budget: Option<Dollars>,
    /// Fraction of `monthly_budget` (0 < x <= 1) at which one soft-limit event is raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_limit_pct: Option<Fraction>,
    /// The most one call may cost at worst, in dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_cost: Option<Dollars>,
    /// Requests in any 60-second window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<u64>,
    /// Tokens (input plus output) in any 60-second window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    /// The most tokens (estimated input plus max output) one call may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_request: Option<u64>,
}

impl Limits {
    /// `self` with every limit it leaves unset taken from `defaults`.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            monthly_budget: self.monthly_budget.or(defaults.monthly_budget),
            soft_limit_pct: self.soft_limit_pct.or(defaults.soft_limit_pct),
            max_request_cost: self.max_request_cost.or(defaults.max_request_cost),
            rpm_limit: self.rpm_limit.or(defaults.rpm_limit),
            tpm_limit: self.tpm_limit.or(defaults.tpm_limit),
            max_tokens_per_request: self
                .max_tokens_per_request
                .or(defaults.max_tokens_per_request),
        }
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    fn validate(&self, prefix: &str) -> Result<(), BudgetConfigError> {
        if self.soft_limit_pct == Some(Fraction(0)) {
            return Err(invalid(
                format!("{prefix}soft_limit_pct"),
                "must be above 0; write a fraction such as 0.8, or remove the key",
            ));
        }
        for (name, value) in [
            ("rpm_limit", self.rpm_limit),
            ("tpm_limit", self.tpm_limit),
            ("max_tokens_per_request", self.max_tokens_per_request),
        ] {
            if value.is_some_and(|v| v > MAX_MICROS) {
                return Err(invalid(
                    format!("{prefix}{name}"),
                    format!("is too large; the most is {MAX_MICROS}"),
                ));
            }
        }
        Ok(())
    }
}

/// The `[budget]` table of `lexecon.toml`.
///
/// The limits at the top apply to each user separately (a request without a user id
/// counts as user `anonymous`) and, because a user id is only the caller's claim, to
/// each API key separately as well; `global` limits the whole deployment; `users.<id>`
/// and `keys.<name>` override the per-user limits for one user or one key;
/// `roles.<role>` limits everyone holding that role together. Every applicable scope must admit a call. The default is
/// zero-config: no limits, but model access lists and pricing are still checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Master switch; `false` admits every call without checks or accounting.
    pub enabled: bool,
    /// Per-user spend allowed per calendar month, in dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_budget: Option<Dollars>,
    /// Deny calls that would exceed a monthly budget; `false` records and allows them.
    pub enforce_budget: bool,
    /// Fraction of a monthly budget at which one soft-limit event is raised per scope and
    /// month (applies to every scope that does not set its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_limit_pct: Option<Fraction>,
    /// Per-user cap on the worst-case cost of one call, in dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_cost: Option<Dollars>,
    /// Per-user requests in any 60-second window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<u64>,
    /// Per-user tokens in any 60-second window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    /// Per-user cap on the tokens of one call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_request: Option<u64>,
    /// Model globs nobody may use.
    pub restricted_models: Vec<String>,
    /// User id or role name (or `user:<id>` / `role:<name>`) to the model globs it may use.
    pub model_allowlist: BTreeMap<String, Vec<String>>,
    /// User id or role name (or `user:<id>` / `role:<name>`) to model globs it may not use.
    pub model_denylist: BTreeMap<String, Vec<String>>,
    /// Limits for the whole deployment.
    pub global: Limits,
    /// Per-user overrides of the per-user limits.
    pub users: BTreeMap<String, Limits>,
    /// Per-key overrides of the per-user limits, which otherwise apply to the calls of
    /// each API key together (scope `key:<name>`). Left out of the TOML when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, Limits>,
    /// Limits shared by everyone holding a role.
    pub roles: BTreeMap<String, Limits>,
    /// Prices in dollars per million tokens, by model name or glob; added to (and
    /// overriding) the built-in catalog.
    pub pricing: BTreeMap<String, Price>,
    /// Start from the built-in catalog; `false` prices only what `pricing` lists.
    pub builtin_pricing: bool,
    /// Admit models without a price at cost 0; by default they are denied.
    pub allow_unpriced_models: bool,
    /// The IANA time zone whose calendar months are the budget periods.
    pub timezone: String,
    /// Seconds a reservation lives unless settled or released (1..=86400).
    pub reservation_ttl_secs: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            enabled: true,
            monthly_budget: None,
            enforce_budget: true,
            soft_limit_pct: None,
            max_request_cost: None,
            rpm_limit: None,
            tpm_limit: None,
            max_tokens_per_request: None,
            restricted_models: Vec::new(),
            model_allowlist: BTreeMap::new(),
            model_denylist: BTreeMap::new(),
            global: Limits::default(),
            users: BTreeMap::new(),
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            pricing: BTreeMap::new(),
            builtin_pricing: true,
            allow_unpriced_models: false,
            timezone: "UTC".to_owned(),
            reservation_ttl_secs: 600,
        }
    }
}

fn check_name(key: &str, name: &str) -> Result<(), BudgetConfigError> {
    if name.is_empty() {
        return Err(invalid(
            key,
            "has an empty name; remove it or name a user, key, role or model",
        ));
    }
    if name.len() > 256 {
        return Err(invalid(
            key,
            format!("name {name:?} is longer than 256 bytes"),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(invalid(
            key,
            format!("name {name:?} contains the control character {c:?}"),
        ));
    }
    Ok(())
}

impl BudgetConfig {
    /// The limits applied to each user, and to each API key (the top-level keys).
    pub fn per_user_defaults(&self) -> Limits {
        Limits {
            monthly_budget: self.monthly_budget,
            soft_limit_pct: self.soft_limit_pct,
            max_request_cost: self.max_request_cost,
            rpm_limit: self.rpm_limit,
            tpm_limit: self.tpm_limit,
            max_tokens_per_request: self.max_tokens_per_request,
        }
    }

    /// The effective price catalog: built-in (unless disabled) overridden by `pricing`.
    pub fn effective_pricing(&self) -> BTreeMap<String, Price> {
        let mut prices = if self.builtin_pricing {
            crate::pricing::builtin_prices()
        } else {
            BTreeMap::new()
        };
        for (name, price) in &self.pricing {
            // A configured name replaces a built-in one whatever its case.
            prices.retain(|k, _| !k.eq_ignore_ascii_case(name));
            prices.insert(name.clone(), *price);
        }
        prices
    }

    /// Checks everything serde could not: ranges, names, patterns and the time zone.
    pub fn validate(&self) -> Result<(), BudgetConfigError> {
        self.per_user_defaults().validate("budget.")?;
        self.global.validate("budget.global.")?;
        for (map, section) in [
            (&self.users, "users"),
            (&self.keys, "keys"),
            (&self.roles, "roles"),
        ] {
            for (name, limits) in map {
                check_name(&format!("budget.{section}"), name)?;
                limits.validate(&format!("budget.{section}.{name}."))?;
            }
        }
        for (i, pattern) in self.restricted_models.iter().enumerate() {
            check_name(&format!("budget.restricted_models[{i}]"), pattern)?;
        }
        for (map, section) in [
            (&self.model_allowlist, "model_allowlist"),
            (&self.model_denylist, "model_denylist"),
        ] {
            for (who, patterns) in map {
                check_name(&format!("budget.{section}"), who)?;
                for (i, pattern) in patterns.iter().enumerate() {
                    check_name(&format!("budget.{section}.{who}[{i}]"), pattern)?;
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for name in self.pricing.keys() {
            check_name("budget.pricing", name)?;
            if !seen.insert(name.to_lowercase()) {
                return Err(invalid(
                    format!("budget.pricing.{name}"),
                    "is listed twice (model names ignore case); keep one",
                ));
            }
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(invalid(
                "budget.timezone",
                format!(
                    "{:?} is not a known IANA time zone; write one such as UTC or Europe/Paris",
                    self.timezone
                ),
            ));
        }
        if !(1..=86_400).contains(&self.reservation_ttl_secs) {
            return Err(invalid(
                "budget.reservation_ttl_secs",
                format!("is {}; use 1 to 86400 seconds", self.reservation_ttl_secs),
            ));
        }
        Ok(())
    }

    /// Parses a `[budget]` table from TOML (with or without the `[budget]` header) and
    /// validates it.
    pub fn from_toml(text: &str) -> Result<BudgetConfig, BudgetConfigError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| BudgetConfigError::Parse(e.to_string()))?;
        let table = match table.get("budget") {
            Some(toml::Value::Table(inner)) if table.len() == 1 => inner.clone(),
            _ => table,
        };
        let config: BudgetConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| BudgetConfigError::Parse(format!("budget: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as the TOML body of a `[budget]` table (amounts as exact
    /// strings).
    pub fn to_toml(&self) -> Result<String, BudgetConfigError> {
        toml::to_string(self).map_err(|e| BudgetConfigError::Parse(e.to_string()))
    }
}
