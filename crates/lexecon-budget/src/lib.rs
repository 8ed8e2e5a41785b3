//! LLM usage governance.
//!
//! Owns monthly budgets with soft limits, per-request caps, RPM and TPM sliding windows,
//! per-user and per-role model allow and deny lists, the price catalog, and two-phase
//! accounting (reserve, settle, release) behind a `BudgetStore` trait with memory,
//! database and Redis implementations.
