//! The Lexecon policy graph: TOML policies, validation, compiled evaluation, explanations.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod cases;
mod compiled;
mod hash;
mod index;
mod keys;
mod model;
mod parse;

pub use cases::{CaseResult, TestCase, TestReport, parse_cases, run_cases};
pub use compiled::{CompiledPolicy, Evaluation, RelationTrace, RiskInput};
pub use hash::POLICY_HASH_DOMAIN;
/// The full-match glob of policy patterns; it lives in `lexecon-core` so that every crate
/// granting by pattern (API-key actor bindings too) matches exactly as policies do.
pub use lexecon_core::{Glob, GlobError};
pub use model::{Diagnostic, Policy, Relation, RelationKind, Severity, Term, TermKind, When};
pub use parse::RESERVED_REASONS;

/// The starter policy `lexecon init` writes: strict mode, approving and denying some of
/// the README's examples (support agents reading customer data through the database,
/// assistants calling LLMs; nobody deleting customer records).
pub const STARTER_POLICY: &str = include_str!("starter_policy.toml");

#[cfg(test)]
mod tests;
