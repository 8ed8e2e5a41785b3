//! The `[risk]` table of `lexecon.toml`: weights, thresholds and rules, as data.
//!
//! [`RiskConfig::default`] is the compiled-in rule set. A `[risk]` table is laid over
//! it the way configuration layers merge (and reading it with serde alone gives the
//! same result as the engine's layered loading): every key left out keeps its default;
//! `weights` and the entries of `verbs`, `data_classes` and `caller_risk_level` (and
//! `unknown_verb`, `unknown_data_class`, `missing_tool`) merge key by key, so
//! `[risk.verbs.delete] points = { security = 50 }` changes only delete's security
//! points; a rule of `tools`, `context` or `llm_cost` with the `id` of a default rule
//! replaces that rule whole. A new name or id adds a rule. To switch a default
//! dimension off, set its points to 0.

use std::collections::{BTreeMap, BTreeSet};

use lexecon_core::{Action, DataClass};
use serde::{Deserialize, Deserializer, Serialize};

use crate::Dimension;
use crate::defaults::{self, When};

/// Points a rule adds, per dimension name (`security = 30`); each 0..=100.
pub type Points = BTreeMap<String, u8>;

/// A rule of a named table (`verbs`, `data_classes`, `caller_risk_level`) or a
/// single rule (`unknown_verb`, `unknown_data_class`, `missing_tool`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Why the rule adds points, shown with each factor.
    #[serde(default)]
    pub description: String,
    /// Points per dimension.
    #[serde(default)]
    pub points: Points,
}

/// A rule that applies when the request's tool matches one of its patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// The rule id shown in factors, e.g. `tool.database`.
    pub id: String,
    /// Why the rule adds points.
    #[serde(default)]
    pub description: String,
    /// Full-match globs (`*`, `?`), lowercase; tool names match case-insensitively.
    pub patterns: Vec<String>,
    /// Points per dimension.
    #[serde(default)]
    pub points: Points,
}

/// One test of a request's context; exactly one of `equals`, `at_least` and
/// `differs_from` is given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The context key looked at, e.g. `recipient`.
    pub key: String,
    /// Holds when the value is one of these (ASCII case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Vec<String>>,
    /// Holds when the value is a whole number at least this large, or is present
    /// but not a whole number (an unreadable volume is taken as a large one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u64>,
    /// Holds when both keys are present and their values differ (ASCII
    /// case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs_from: Option<String>,
}

/// A rule that applies when any of its conditions holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextRule {
    /// The rule id shown in factors, e.g. `context.external_recipient`.
    pub id: String,
    /// Why the rule adds points.
    #[serde(default)]
    pub description: String,
    /// The rule applies when at least one holds.
    pub when: Vec<Condition>,
    /// Points per dimension.
    #[serde(default)]
    pub points: Points,
}

/// A rule that applies when an LLM call's estimated cost reaches a threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostRule {
    /// The rule id shown in factors, e.g. `llm_cost.high`.
    pub id: String,
    /// Why the rule adds points.
    #[serde(default)]
    pub description: String,
    /// Applies when the estimated cost is at least this many micro-dollars.
    pub at_least_micros: u64,
    /// Points per dimension.
    #[serde(default)]
    pub points: Points,
}

/// Scores at which the levels start: low < `medium` <= medium < `high` <= high <
/// `critical` <= critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Levels {
    /// First medium score (default 30).
    pub medium: u8,
    /// First high score (default 60).
    pub high: u8,
    /// First critical score (default 80).
    pub critical: u8,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            medium: 30,
            high: 60,
            critical: 80,
        }
    }
}

/// The `[risk]` configuration: weights, thresholds and every rule.
///
/// Build one with [`RiskConfig::default`] or by deserializing a `[risk]` table, then
/// hand it to [`crate::RiskScorer::new`], which validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Overall score at which an assessment asks for escalation (paranoid mode
    /// escalates); 1..=100, default 80.
    pub escalation_threshold: u8,
    /// A dimension scoring at least this much is extreme; 1..=100, default 90.
    pub extreme_dimension: u8,
    /// The overall score is never below this when a dimension is extreme, so one
    /// critical dimension is not averaged away; 0..=100, default 80.
    pub extreme_floor: u8,
    /// Where the levels start.
    pub levels: Levels,
    /// Weight of each dimension in the overall score; each 0..=1, adding up to 1. A
    /// dimension left out keeps its default weight.
    #[serde(deserialize_with = "merge_weights")]
    pub weights: BTreeMap<String, f64>,
    /// Points per verb of `proposed_action` (`delete` in `delete:customer_records`).
    #[serde(deserialize_with = "merge_verbs")]
    pub verbs: BTreeMap<String, Rule>,
    /// Points for a verb not in `verbs`.
    #[serde(deserialize_with = "merge_unknown_verb")]
    pub unknown_verb: Rule,
    /// Points per data class the request names.
    #[serde(deserialize_with = "merge_data_classes")]
    pub data_classes: BTreeMap<String, Rule>,
    /// Points once for any data classes not in `data_classes`.
    #[serde(deserialize_with = "merge_unknown_data_class")]
    pub unknown_data_class: Rule,
    /// Points for a request that names no tool.
    #[serde(deserialize_with = "merge_missing_tool")]
    pub missing_tool: Rule,
    /// Points per caller `risk_level`, keys `1` to `5`.
    #[serde(deserialize_with = "merge_caller_risk_level")]
    pub caller_risk_level: BTreeMap<String, Rule>,
    /// Rules on the tool; every matching rule applies.
    #[serde(deserialize_with = "merge_tools")]
    pub tools: Vec<ToolRule>,
    /// Rules on context hints; every rule with a holding condition applies.
    #[serde(deserialize_with = "merge_context")]
    pub context: Vec<ContextRule>,
    /// Rules on an LLM call's estimated cost; every reached threshold applies.
    #[serde(deserialize_with = "merge_llm_cost")]
    pub llm_cost: Vec<CostRule>,
}

pub(crate) fn points_of(points: [u8; 6]) -> Points {
    Dimension::ALL
        .into_iter()
        .zip(points)
        .filter(|&(_, p)| p > 0)
        .map(|(d, p)| (d.as_str().to_owned(), p))
        .collect()
}

fn rule(points: [u8; 6], description: &str) -> Rule {
    Rule {
        description: description.to_owned(),
        points: points_of(points),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|&v| v.to_owned()).collect()
}

fn default_verbs() -> BTreeMap<String, Rule> {
    defaults::VERBS
        .iter()
        .map(|&(id, _, points, description)| {
            let verb = id.strip_prefix("verb.").unwrap_or(id);
            (verb.to_owned(), rule(points, description))
        })
        .collect()
}

fn default_data_classes() -> BTreeMap<String, Rule> {
    defaults::DATA_CLASSES
        .iter()
        .map(|&(id, points, description)| {
            let class = id.strip_prefix("data_class.").unwrap_or(id);
            (class.to_owned(), rule(points, description))
        })
        .collect()
}

fn default_caller_risk_level() -> BTreeMap<String, Rule> {
    (1u8..)
        .zip(defaults::CALLER_RISK_LEVEL)
        .map(|(level, (_, points, description))| {
            (level.to_string(), rule([points; 6], description))
        })
        .collect()
}

fn default_tools() -> Vec<ToolRule> {
    defaults::TOOLS
        .iter()
        .map(|&(id, patterns, points, description)| ToolRule {
            id: id.to_owned(),
            description: description.to_owned(),
            patterns: strings(patterns),
            points: points_of(points),
        })
        .collect()
}

fn default_context() -> Vec<ContextRule> {
    defaults::CONTEXT
        .iter()
        .map(|(id, when, points, description)| ContextRule {
            id: (*id).to_owned(),
            description: (*description).to_owned(),
            when: when
                .iter()
                .map(|w| match *w {
                    When::Equals(key, values) => Condition {
                        key: key.to_owned(),
                        equals: Some(strings(values)),
                        ..Condition::default()
                    },
                    When::AtLeast(key, min) => Condition {
                        key: key.to_owned(),
                        at_least: Some(min),
                        ..Condition::default()
                    },
                    When::Differs(key, other) => Condition {
                        key: key.to_owned(),
                        differs_from: Some(other.to_owned()),
                        ..Condition::default()
                    },
                })
                .collect(),
            points: points_of(*points),
        })
        .collect()
}

fn default_llm_cost() -> Vec<CostRule> {
    defaults::LLM_COST
        .iter()
        .map(|&(id, at_least_micros, points, description)| CostRule {
            id: id.to_owned(),
            description: description.to_owned(),
            at_least_micros,
            points: points_of(points),
        })
        .collect()
}

fn default_weights() -> BTreeMap<String, f64> {
    Dimension::ALL
        .into_iter()
        .zip([0.25, 0.20, 0.20, 0.15, 0.10, 0.10])
        .map(|(d, w)| (d.as_str().to_owned(), w))
        .collect()
}

impl Default for RiskConfig {
    fn default() -> Self {
        let (unknown_verb, unknown_verb_why) = defaults::UNKNOWN_VERB;
        let (unknown_class, unknown_class_why) = defaults::UNKNOWN_DATA_CLASS;
        let (missing_tool, missing_tool_why) = defaults::MISSING_TOOL;
        RiskConfig {
            escalation_threshold: 80,
            extreme_dimension: 90,
            extreme_floor: 80,
            levels: Levels::default(),
            weights: default_weights(),
            verbs: default_verbs(),
            unknown_verb: rule(unknown_verb, unknown_verb_why),
            data_classes: default_data_classes(),
            unknown_data_class: rule(unknown_class, unknown_class_why),
            missing_tool: rule(missing_tool, missing_tool_why),
            caller_risk_level: default_caller_risk_level(),
            tools: default_tools(),
            context: default_context(),
            llm_cost: default_llm_cost(),
        }
    }
}

/// Lays `given` over `base` key by key, the way configuration layers merge: the
/// points given replace those dimensions' points, the others keep theirs; a
/// non-empty description replaces the description.
fn merge_rule(base: &mut Rule, given: Rule) {
    base.points.extend(given.points);
    if !given.description.is_empty() {
        base.description = given.description;
    }
}

fn merge_map<'de, D: Deserializer<'de>>(
    deserializer: D,
    mut base: BTreeMap<String, Rule>,
) -> Result<BTreeMap<String, Rule>, D::Error> {
    for (name, given) in BTreeMap::<String, Rule>::deserialize(deserializer)? {
        match base.get_mut(&name) {
            Some(rule) => merge_rule(rule, given),
            None => {
                base.insert(name, given);
            }
        }
    }
    Ok(base)
}

fn merge_single<'de, D: Deserializer<'de>>(
    deserializer: D,
    (points, description): ([u8; 6], &str),
) -> Result<Rule, D::Error> {
    let mut base = rule(points, description);
    merge_rule(&mut base, Rule::deserialize(deserializer)?);
    Ok(base)
}

fn merge_unknown_verb<'de, D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
    merge_single(d, defaults::UNKNOWN_VERB)
}

fn merge_unknown_data_class<'de, D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
    merge_single(d, defaults::UNKNOWN_DATA_CLASS)
}

fn merge_missing_tool<'de, D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
    merge_single(d, defaults::MISSING_TOOL)
}

fn merge_weights<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let mut base = default_weights();
    base.extend(BTreeMap::<String, f64>::deserialize(d)?);
    Ok(base)
}

fn merge_verbs<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Rule>, D::Error> {
    merge_map(d, default_verbs())
}

fn merge_data_classes<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Rule>, D::Error> {
    merge_map(d, default_data_classes())
}

fn merge_caller_risk_level<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Rule>, D::Error> {
    merge_map(d, default_caller_risk_level())
}

/// Rules with an id: a given rule replaces the default with its id, in place; new
/// ids follow the defaults in the order given.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for ToolRule {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for ContextRule {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for CostRule {
    fn id(&self) -> &str {
        &self.id
    }
}

fn merge_by_id<'de, D: Deserializer<'de>, R: HasId + Deserialize<'de>>(
    deserializer: D,
    mut base: Vec<R>,
) -> Result<Vec<R>, D::Error> {
    for given in Vec::<R>::deserialize(deserializer)? {
        match base.iter_mut().find(|r| r.id() == given.id()) {
            Some(slot) => *slot = given,
            None => base.push(given),
        }
    }
    Ok(base)
}

fn merge_tools<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ToolRule>, D::Error> {
    merge_by_id(d, default_tools())
}

fn merge_context<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ContextRule>, D::Error> {
    merge_by_id(d, default_context())
}

fn merge_llm_cost<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CostRule>, D::Error> {
    merge_by_id(d, default_llm_cost())
}

/// A `[risk]` setting that is out of range or inconsistent; the message names the
/// key (`risk.weights.security`, ...) and says what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RiskConfigError {
    /// A number outside its range.
    #[error("{key} must be {expected}, got {got}")]
    OutOfRange {
        /// The full key, e.g. `risk.weights.security`.
        key: String,
        /// The allowed range, in words.
        expected: &'static str,
        /// The value given.
        got: String,
    },
    /// A key that names no dimension.
    #[error(
        "{key} names no dimension: use security, privacy, compliance, operational, reputational or financial"
    )]
    UnknownDimension {
        /// The full key, e.g. `risk.weights.safety`.
        key: String,
    },
    /// The weights do not add up to 1.
    #[error(
        "risk.weights must add up to 1, they add up to {sum}; give all six (a dimension left out keeps its default weight)"
    )]
    WeightsSum {
        /// What they add up to.
        sum: f64,
    },
    /// A threshold not above the one before it.
    #[error("{key} must be above {after} ({after_value}), got {value}")]
    OutOfOrder {
        /// The full key, e.g. `risk.levels.high`.
        key: String,
        /// Its value.
        value: u8,
        /// The key it must be above.
        after: &'static str,
        /// That key's value.
        after_value: u8,
    },
    /// Any other problem with a key.
    #[error("{key} {problem}")]
    Invalid {
        /// The full key.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

impl RiskConfigError {
    /// The full key the error is about (`risk.weights` for their sum).
    pub fn key(&self) -> &str {
        match self {
            RiskConfigError::OutOfRange { key, .. }
            | RiskConfigError::UnknownDimension { key }
            | RiskConfigError::OutOfOrder { key, .. }
            | RiskConfigError::Invalid { key, .. } => key,
            RiskConfigError::WeightsSum { .. } => "risk.weights",
        }
    }

    fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        RiskConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// How far the weights' sum may be from 1 (decimal weights rarely add up exactly).
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;

fn percent(key: &str, value: u8, min: u8) -> Result<(), RiskConfigError> {
    if (min..=100).contains(&value) {
        Ok(())
    } else {
        Err(RiskConfigError::OutOfRange {
            key: key.to_owned(),
            expected: if min == 0 {
                "between 0 and 100"
            } else {
                "between 1 and 100"
            },
            got: value.to_string(),
        })
    }
}

fn check_points(key: &str, points: &Points) -> Result<(), RiskConfigError> {
    for (name, &value) in points {
        let key = format!("{key}.points.{name}");
        if name.parse::<Dimension>().is_err() {
            return Err(RiskConfigError::UnknownDimension { key });
        }
        percent(&key, value, 0)?;
    }
    Ok(())
}

fn check_rule_id(key: &str, id: &str, seen: &mut BTreeSet<String>) -> Result<(), RiskConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if !ok {
        return Err(RiskConfigError::invalid(
            format!("{key}.id"),
            format!("must be 1 to 64 of a-z 0-9 . _ -, got {id:?}"),
        ));
    }
    if !seen.insert(id.to_owned()) {
        return Err(RiskConfigError::invalid(
            format!("{key}.id"),
            format!("repeats the rule id {id:?}; give each rule its own id"),
        ));
    }
    Ok(())
}

fn check_name_key(key: &str, name: &str, valid: bool) -> Result<(), RiskConfigError> {
    if !valid || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RiskConfigError::invalid(
            key,
            "must be a lowercase name of ASCII letters, digits and . _ - / @ + =",
        ));
    }
    if name == "unknown" {
        return Err(RiskConfigError::invalid(
            key,
            "is reserved for the rule on names the table does not hold; use unknown_verb or unknown_data_class",
        ));
    }
    Ok(())
}

impl RiskConfig {
    /// Checks every key; the first problem found is returned, naming its key.
    pub fn validate(&self) -> Result<(), RiskConfigError> {
        percent("risk.escalation_threshold", self.escalation_threshold, 1)?;
        percent("risk.extreme_dimension", self.extreme_dimension, 1)?;
        percent("risk.extreme_floor", self.extreme_floor, 0)?;
        self.validate_levels()?;
        self.validate_weights()?;

        for (verb, rule) in &self.verbs {
            let key = format!("risk.verbs.{verb}");
            let valid = Action::new(verb.as_str()).is_ok() && !verb.contains(':');
            check_name_key(&key, verb, valid)?;
            check_points(&key, &rule.points)?;
        }
        check_points("risk.unknown_verb", &self.unknown_verb.points)?;
        for (class, rule) in &self.data_classes {
            let key = format!("risk.data_classes.{class}");
            check_name_key(&key, class, DataClass::new(class.as_str()).is_ok())?;
            check_points(&key, &rule.points)?;
        }
        check_points("risk.unknown_data_class", &self.unknown_data_class.points)?;
        check_points("risk.missing_tool", &self.missing_tool.points)?;
        for (level, rule) in &self.caller_risk_level {
            let key = format!("risk.caller_risk_level.{level}");
            if !matches!(level.as_str(), "1" | "2" | "3" | "4" | "5") {
                return Err(RiskConfigError::invalid(key, "must be a level from 1 to 5"));
            }
            check_points(&key, &rule.points)?;
        }

        let mut ids = BTreeSet::new();
        for (i, rule) in self.tools.iter().enumerate() {
            let key = format!("risk.tools[{i}]");
            check_rule_id(&key, &rule.id, &mut ids)?;
            if rule.patterns.is_empty() {
                return Err(RiskConfigError::invalid(
                    format!("{key}.patterns"),
                    "must hold at least one pattern",
                ));
            }
            for (j, pattern) in rule.patterns.iter().enumerate() {
                let ok = !pattern.is_empty()
                    && pattern.len() <= 128
                    && pattern.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(
                                b,
                                b'.' | b'_' | b'-' | b':' | b'/' | b'@' | b'+' | b'=' | b'*' | b'?'
                            )
                    });
                if !ok {
                    return Err(RiskConfigError::invalid(
                        format!("{key}.patterns[{j}]"),
                        format!(
                            "must be a lowercase glob of tool-name characters, * and ?, got {pattern:?}"
                        ),
                    ));
                }
            }
            check_points(&key, &rule.points)?;
        }
        for (i, rule) in self.context.iter().enumerate() {
            let key = format!("risk.context[{i}]");
            check_rule_id(&key, &rule.id, &mut ids)?;
            if rule.when.is_empty() {
                return Err(RiskConfigError::invalid(
                    format!("{key}.when"),
                    "must hold at least one condition",
                ));
            }
            for (j, cond) in rule.when.iter().enumerate() {
                let key = format!("{key}.when[{j}]");
                if cond.key.is_empty() {
                    return Err(RiskConfigError::invalid(
                        format!("{key}.key"),
                        "must name a context key",
                    ));
                }
                let given = usize::from(cond.equals.is_some())
                    + usize::from(cond.at_least.is_some())
                    + usize::from(cond.differs_from.is_some());
                if given != 1 {
                    return Err(RiskConfigError::invalid(
                        key,
                        "must give exactly one of equals, at_least and differs_from",
                    ));
                }
                if cond.equals.as_ref().is_some_and(Vec::is_empty) {
                    return Err(RiskConfigError::invalid(
                        format!("{key}.equals"),
                        "must hold at least one value",
                    ));
                }
                if cond.differs_from.as_ref().is_some_and(String::is_empty) {
                    return Err(RiskConfigError::invalid(
                        format!("{key}.differs_from"),
                        "must name a context key",
                    ));
                }
            }
            check_points(&key, &rule.points)?;
        }
        for (i, rule) in self.llm_cost.iter().enumerate() {
            let key = format!("risk.llm_cost[{i}]");
            check_rule_id(&key, &rule.id, &mut ids)?;
            check_points(&key, &rule.points)?;
        }
        Ok(())
    }

    fn validate_levels(&self) -> Result<(), RiskConfigError> {
        let Levels {
            medium,
            high,
            critical,
        } = self.levels;
        percent("risk.levels.medium", medium, 1)?;
        percent("risk.levels.high", high, 1)?;
        percent("risk.levels.critical", critical, 1)?;
        if high <= medium {
            return Err(RiskConfigError::OutOfOrder {
                key: "risk.levels.high".to_owned(),
                value: high,
                after: "risk.levels.medium",
                after_value: medium,
            });
        }
        if critical <= high {
            return Err(RiskConfigError::OutOfOrder {
                key: "risk.levels.critical".to_owned(),
                value: critical,
                after: "risk.levels.high",
                after_value: high,
            });
        }
        Ok(())
    }

    fn validate_weights(&self) -> Result<(), RiskConfigError> {
        let mut sum = 0.0;
        for (name, &weight) in &self.weights {
            let key = format!("risk.weights.{name}");
            if name.parse::<Dimension>().is_err() {
                return Err(RiskConfigError::UnknownDimension { key });
            }
            if !(0.0..=1.0).contains(&weight) {
                return Err(RiskConfigError::OutOfRange {
                    key,
                    expected: "between 0 and 1",
                    got: weight.to_string(),
                });
            }
            sum += weight;
        }
        if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
            // Rounded so the message shows 1.65, not 1.6500000000000001.
            let sum = (sum * 1e9).round() / 1e9;
            return Err(RiskConfigError::WeightsSum { sum });
        }
        Ok(())
    }

    /// The weight of each dimension, in [`Dimension::ALL`] order (0 for a dimension
    /// missing from a configuration built in code).
    pub fn weight_array(&self) -> [f64; 6] {
        Dimension::ALL.map(|d| self.weights.get(d.as_str()).copied().unwrap_or(0.0))
    }
}
