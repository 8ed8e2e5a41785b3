//! The Lexecon policy graph.
//!
//! Owns terms (actor, action, tool, data class, resource, context patterns), relations
//! between them (permits, forbids, requires, implies, conflicts) with `when` conditions,
//! the three modes, the TOML policy format, validation with located diagnostics, a
//! compiled evaluator that indexes relations once per policy version, explanations of
//! every outcome, the policy version hash and policy test files.
//!
//! Evaluation is pure: no IO, no clock.
