//! LLM usage governance.
//!
//! Owns monthly budgets with soft limits, per-request caps, RPM and TPM sliding windows,
//! per-user and per-role model allow and deny lists, the price catalog, and two-phase
//! accounting (reserve, settle, release) behind a [`BudgetStore`] trait with memory,
//! database and Redis implementations.
//!
//! ```text
//! BudgetManager::authorize_for(&LlmUsage, Option<key name>)   (authorize = no key)
//!   model access (restricted, deny lists, allow lists) -> price (unpriced is denied)
//!   -> per-request caps (max_tokens_per_request, max_request_cost) for every scope
//!   -> store.reserve: monthly budget, RPM, TPM of global, user:<id>, key:<name>,
//!      role:<name>... checked and reserved in one atomic step
//! BudgetManager::settle(id, input, output)  charges actual cost once, gives back the rest
//! BudgetManager::release(id)                 cancels; the sweeper expires the forgotten
//! ```
//!
//! Money is integer micro-dollars throughout; configuration in dollars is parsed as
//! exact decimal text. See `docs/budget.md` for the model and `lexecon.toml` examples.

mod access;
mod config;
mod glob;
mod manager;
mod money;
mod period;
mod pricing;
pub mod store;

pub use config::{BudgetConfig, BudgetConfigError, Limits};
pub use glob::Glob;
pub use manager::{
    ANONYMOUS, Authorization, BudgetError, BudgetManager, Denial, DenialReason, Scope, Settlement,
    SoftLimitEvent, SoftLimitKind, Usage,
};
pub use money::{Dollars, Fraction, MAX_MICROS, format_micros};
pub use period::{Period, PeriodError};
pub use pricing::{Price, builtin_prices};
pub use store::sql::{migrate_postgres, migrate_sqlite};
pub use store::{BudgetStore, MemoryBudgetStore, RedisBudgetStore, SqlBudgetStore, StoreError};

#[cfg(test)]
mod tests;
