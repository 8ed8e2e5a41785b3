//! Six-dimension risk scoring.
//!
//! Owns the security, privacy, compliance, operational, reputational and financial
//! dimensions, the rules and weights that score a proposed action from its own fields
//! (data classes, verb, tool, caller's risk level, context, LLM cost), the overall
//! score with its floor for one extreme dimension, the levels and the escalation
//! threshold. Pure: no IO.
