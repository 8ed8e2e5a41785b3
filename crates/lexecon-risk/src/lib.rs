//! Six-dimension risk scoring.
//!
//! Owns the security, privacy, compliance, operational, reputational and financial
//! dimensions, the rules and weights that score a proposed action from its own fields
//! (data classes, verb, tool, caller's risk level, context, LLM cost), the overall
//! score with its floor for one extreme dimension, the levels and the escalation
//! threshold. Pure: no IO.
//!
//! ```
//! use lexecon_core::ActionRequest;
//! use lexecon_risk::{RiskConfig, RiskScorer};
//!
//! let scorer = RiskScorer::new(RiskConfig::default())?;
//! let req = ActionRequest::new("ai_agent:ops", "delete:customer_records")?
//!     .with_tool("database_query")?
//!     .with_data_class("pii")?
//!     .with_risk_level(3)?
//!     .with_context("volume", "10000")?;
//! let risk = scorer.assess(&req, None);
//! assert_eq!(risk.score, 70);
//! assert_eq!(risk.level, lexecon_core::RiskLevel::High);
//! assert!(!risk.escalate);
//! assert!(risk.dimensions.privacy.factors.iter().any(|f| &*f.rule_id == "data_class.pii"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! How a score is made:
//! - each rule that applies adds its points to one or more dimensions, and is listed
//!   as a [`Factor`] of each; a dimension is the sum of its factors, capped at 100;
//! - the overall score is the weighted sum of the six dimensions, rounded, but never
//!   below [`RiskConfig::extreme_floor`] (80) when one dimension reaches
//!   [`RiskConfig::extreme_dimension`] (90), so one critical dimension is not
//!   averaged away;
//! - the level comes from [`RiskConfig::levels`] (by default low < 30 <= medium < 60
//!   <= high < 80 <= critical, as [`lexecon_core::RiskLevel::from_score`]);
//!   [`Assessment::escalate`] is set at [`RiskConfig::escalation_threshold`] (80).
//!
//! Rules only add points, and weights are never negative, so adding a data class, a
//! context hint or a more destructive verb never lowers any score. `docs/risk.md`
//! lists every default rule.

mod config;
mod defaults;
mod dimension;
mod glob;
mod scorer;
mod text;

pub use config::{
    Condition, ContextRule, CostRule, Levels, Points, RiskConfig, RiskConfigError, Rule, ToolRule,
    WEIGHT_SUM_TOLERANCE,
};
pub use dimension::{Dimension, UnknownDimension};
pub use scorer::{Assessment, DimensionScore, Dimensions, Factor, RiskScorer};
pub use text::RuleText;

#[cfg(test)]
mod tests;
