//! The compiled scorer and what an assessment returns.

use std::collections::HashMap;

use lexecon_core::{ActionRequest, RiskLevel};
use serde::Serialize;

use crate::config::{Condition, Levels, Points, Rule};
use crate::defaults::{MISSING_TOOL_ID, UNKNOWN_DATA_CLASS_ID, UNKNOWN_VERB_ID};
use crate::glob::Glob;
use crate::{Dimension, RiskConfig, RiskConfigError, RuleText};

/// One rule's contribution to one dimension: why the dimension scored what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Factor {
    /// The rule, e.g. `verb.delete`, `data_class.pii`, `tool.database`.
    pub rule_id: RuleText,
    /// The points it added to this dimension (1..=100).
    pub points: u8,
    /// Why, in words.
    pub description: RuleText,
}

/// The score of one dimension and the factors that add up to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionScore {
    /// Which dimension.
    #[serde(skip)]
    pub dimension: Dimension,
    /// The sum of the factors' points, capped at 100.
    pub score: u8,
    /// The dimension's weight in the overall score.
    pub weight: f64,
    /// Every rule that added points, in the order applied.
    pub factors: Vec<Factor>,
}

/// The six dimension scores, one named field each (so JSON holds one entry per
/// dimension, keyed by its name).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dimensions {
    /// Security.
    pub security: DimensionScore,
    /// Privacy.
    pub privacy: DimensionScore,
    /// Compliance.
    pub compliance: DimensionScore,
    /// Operational.
    pub operational: DimensionScore,
    /// Reputational.
    pub reputational: DimensionScore,
    /// Financial.
    pub financial: DimensionScore,
}

impl Dimensions {
    /// The score of `dimension`.
    pub fn get(&self, dimension: Dimension) -> &DimensionScore {
        match dimension {
            Dimension::Security => &self.security,
            Dimension::Privacy => &self.privacy,
            Dimension::Compliance => &self.compliance,
            Dimension::Operational => &self.operational,
            Dimension::Reputational => &self.reputational,
            Dimension::Financial => &self.financial,
        }
    }

    /// All six, in [`Dimension::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = &DimensionScore> {
        Dimension::ALL.into_iter().map(|d| self.get(d))
    }

    /// The six scores, in [`Dimension::ALL`] order.
    pub fn scores(&self) -> [u8; 6] {
        Dimension::ALL.map(|d| self.get(d).score)
    }
}

/// The risk of one request: overall score and level, the six dimensions with their
/// factors, and whether it reaches the escalation threshold.
///
/// Serializes as `{"risk_score", "level", "escalate", "escalation_threshold",
/// "floor_applied", "dimensions": {"security": {"score", "weight", "factors"}, ...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The overall score, 0..=100: the weighted sum of the dimensions, rounded, and
    /// at least the configured floor when a dimension is extreme.
    #[serde(rename = "risk_score")]
    pub score: u8,
    /// The level of `score`.
    pub level: RiskLevel,
    /// Whether `score` reaches the escalation threshold.
    pub escalate: bool,
    /// The threshold `escalate` was decided against.
    pub escalation_threshold: u8,
    /// Whether the floor for an extreme dimension raised the weighted sum.
    pub floor_applied: bool,
    /// The six dimensions.
    pub dimensions: Dimensions,
}

#[derive(Debug)]
struct Compiled {
    id: RuleText,
    description: RuleText,
    points: [u8; 6],
}

impl Compiled {
    fn new(id: String, description: &str, points: &Points) -> Self {
        let description = if description.is_empty() {
            format!("rule {id}")
        } else {
            description.to_owned()
        };
        Compiled {
            id: RuleText::new(&id),
            description: RuleText::new(&description),
            points: Dimension::ALL.map(|d| points.get(d.as_str()).copied().unwrap_or(0)),
        }
    }

    fn from_rule(id: String, rule: &Rule) -> Self {
        Compiled::new(id, &rule.description, &rule.points)
    }
}

#[derive(Debug)]
enum Test {
    Equals(Box<[Box<str>]>),
    AtLeast(u64),
    Differs(Box<str>),
}

#[derive(Debug)]
struct CompiledCondition {
    key: Box<str>,
    test: Test,
}

impl CompiledCondition {
    fn new(cond: &Condition) -> Self {
        let test = match (&cond.equals, cond.at_least, &cond.differs_from) {
            (Some(values), _, _) => {
                Test::Equals(values.iter().map(|v| v.as_str().into()).collect())
            }
            (None, Some(min), _) => Test::AtLeast(min),
            // validate() guarantees exactly one is present, so this is `differs_from`.
            (None, None, other) => Test::Differs(other.as_deref().unwrap_or_default().into()),
        };
        CompiledCondition {
            key: cond.key.as_str().into(),
            test,
        }
    }

    fn holds(&self, req: &ActionRequest) -> bool {
        let Some(value) = req.context.get(&*self.key) else {
            return false;
        };
        match &self.test {
            Test::Equals(values) => values.iter().any(|v| v.eq_ignore_ascii_case(value)),
            // An unreadable number is taken as a large one: a caller cannot lower the
            // score by writing `volume = "lots"`.
            Test::AtLeast(min) => value.trim().parse::<u64>().map_or(true, |n| n >= *min),
            Test::Differs(other) => req
                .context
                .get(&**other)
                .is_some_and(|o| !o.eq_ignore_ascii_case(value)),
        }
    }
}

/// The tool rules, with their patterns indexed by the first or last byte they fix,
/// so a tool name is tested against the few patterns that could match it rather
/// than all of them.
#[derive(Debug)]
struct ToolRules {
    rules: Vec<Compiled>,
    /// `(rule index, pattern)` by the lowercase first byte the pattern requires.
    by_first: HashMap<u8, Vec<(usize, Glob)>>,
    /// `(rule index, pattern)` by the lowercase last byte the pattern requires.
    by_last: HashMap<u8, Vec<(usize, Glob)>>,
    /// Patterns that fix neither, tested against every name.
    other: Vec<(usize, Glob)>,
}

impl ToolRules {
    fn new(config: &[crate::ToolRule]) -> Self {
        let mut tools = ToolRules {
            rules: Vec::with_capacity(config.len()),
            by_first: HashMap::new(),
            by_last: HashMap::new(),
            other: Vec::new(),
        };
        for (i, rule) in config.iter().enumerate() {
            tools.rules.push(Compiled::new(
                rule.id.clone(),
                &rule.description,
                &rule.points,
            ));
            for pattern in &rule.patterns {
                let glob = Glob::new(pattern);
                match (glob.first_byte(), glob.last_byte()) {
                    (Some(b), _) => tools.by_first.entry(b).or_default().push((i, glob)),
                    (None, Some(b)) => tools.by_last.entry(b).or_default().push((i, glob)),
                    (None, None) => tools.other.push((i, glob)),
                }
            }
        }
        tools
    }

    /// Adds every rule with a pattern matching `name`, once each, in rule order.
    fn apply<'a>(&'a self, name: &str, tally: &mut Tally<'a>) {
        let name = name.as_bytes();
        let candidates = |bucket: Option<&'a Vec<(usize, Glob)>>| bucket.into_iter().flatten();
        let first = name.first().map(u8::to_ascii_lowercase);
        let last = name.last().map(u8::to_ascii_lowercase);
        let hits = candidates(first.and_then(|b| self.by_first.get(&b)))
            .chain(candidates(last.and_then(|b| self.by_last.get(&b))))
            .chain(self.other.iter())
            .filter(|(_, glob)| glob.matches(name))
            .map(|&(i, _)| i);
        if self.rules.len() <= 128 {
            let mut matched = 0u128;
            for i in hits {
                matched |= 1 << i;
            }
            for (i, rule) in self.rules.iter().enumerate() {
                if matched & (1 << i) != 0 {
                    tally.add(rule);
                }
            }
        } else {
            let mut matched = vec![false; self.rules.len()];
            for i in hits {
                if let Some(m) = matched.get_mut(i) {
                    *m = true;
                }
            }
            for (rule, _) in self.rules.iter().zip(matched).filter(|(_, m)| *m) {
                tally.add(rule);
            }
        }
    }
}

/// A validated [`RiskConfig`] compiled into lookup tables; [`RiskScorer::assess`]
/// scores requests against it. Cheap to share (`Arc`) and immutable.
#[derive(Debug)]
pub struct RiskScorer {
    config: RiskConfig,
    weights: [f64; 6],
    levels: Levels,
    verbs: HashMap<Box<str>, Compiled>,
    unknown_verb: Compiled,
    data_classes: HashMap<Box<str>, Compiled>,
    unknown_data_class: Compiled,
    missing_tool: Compiled,
    caller_risk_level: [Compiled; 5],
    tools: ToolRules,
    context: Vec<(Box<[CompiledCondition]>, Compiled)>,
    llm_cost: Vec<(u64, Compiled)>,
}

/// The longest name looked up through a stack buffer when it holds upper case
/// letters; names are at most 256 bytes (`Action::MAX_LEN`).
const LOWER_BUF: usize = 256;

/// Looks `name` up in a table of lowercase keys, ASCII case-insensitively, without
/// allocating.
fn lookup<'a>(table: &'a HashMap<Box<str>, Compiled>, name: &str) -> Option<&'a Compiled> {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return table.get(name);
    }
    let mut buf = [0u8; LOWER_BUF];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    table.get(std::str::from_utf8(lower).ok()?)
}

/// How many matched rules are kept on the stack; more spill into a `Vec`.
const INLINE_MATCHES: usize = 32;

/// The rules that applied to a request, in the order applied. Collected first so
/// each dimension's factor list is allocated once at its exact size.
struct Tally<'a> {
    inline: [Option<&'a Compiled>; INLINE_MATCHES],
    len: usize,
    overflow: Vec<&'a Compiled>,
}

impl<'a> Tally<'a> {
    fn new() -> Self {
        Tally {
            inline: [None; INLINE_MATCHES],
            len: 0,
            overflow: Vec::new(),
        }
    }

    fn add(&mut self, rule: &'a Compiled) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(rule);
                self.len += 1;
            }
            None => self.overflow.push(rule),
        }
    }

    fn rules(&self) -> impl Iterator<Item = &'a Compiled> + '_ {
        self.inline
            .iter()
            .take(self.len)
            .flatten()
            .copied()
            .chain(self.overflow.iter().copied())
    }

    /// The factors of dimension `d` (an index into `Dimension::ALL`).
    fn factors(&self, d: usize) -> Vec<Factor> {
        let points = |rule: &Compiled| rule.points.get(d).copied().unwrap_or(0);
        let count = self.rules().filter(|&r| points(r) > 0).count();
        let mut factors = Vec::with_capacity(count);
        for rule in self.rules() {
            let points = points(rule);
            if points > 0 {
                factors.push(Factor {
                    rule_id: rule.id.clone(),
                    points,
                    description: rule.description.clone(),
                });
            }
        }
        factors
    }
}

impl RiskScorer {
    /// Validates `config` and compiles its rules.
    pub fn new(config: RiskConfig) -> Result<Self, RiskConfigError> {
        config.validate()?;
        let table = |prefix: &str, rules: &std::collections::BTreeMap<String, Rule>| {
            rules
                .iter()
                .map(|(name, rule)| {
                    (
                        Box::<str>::from(name.as_str()),
                        Compiled::from_rule(format!("{prefix}.{name}"), rule),
                    )
                })
                .collect::<HashMap<_, _>>()
        };
        let caller_risk_level = [1, 2, 3, 4, 5].map(|level: u8| {
            let id = format!("caller_risk_level.{level}");
            match config.caller_risk_level.get(&level.to_string()) {
                Some(rule) => Compiled::from_rule(id, rule),
                None => Compiled::new(id, "", &Points::new()),
            }
        });
        Ok(RiskScorer {
            weights: config.weight_array(),
            levels: config.levels,
            verbs: table("verb", &config.verbs),
            unknown_verb: Compiled::from_rule(UNKNOWN_VERB_ID.into(), &config.unknown_verb),
            data_classes: table("data_class", &config.data_classes),
            unknown_data_class: Compiled::from_rule(
                UNKNOWN_DATA_CLASS_ID.into(),
                &config.unknown_data_class,
            ),
            missing_tool: Compiled::from_rule(MISSING_TOOL_ID.into(), &config.missing_tool),
            caller_risk_level,
            tools: ToolRules::new(&config.tools),
            context: config
                .context
                .iter()
                .map(|r| {
                    (
                        r.when.iter().map(CompiledCondition::new).collect(),
                        Compiled::new(r.id.clone(), &r.description, &r.points),
                    )
                })
                .collect(),
            llm_cost: config
                .llm_cost
                .iter()
                .map(|r| {
                    (
                        r.at_least_micros,
                        Compiled::new(r.id.clone(), &r.description, &r.points),
                    )
                })
                .collect(),
            config,
        })
    }

    /// The configuration this scorer was built from.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    /// The level of an overall score under the configured thresholds (with the
    /// defaults, the same as [`RiskLevel::from_score`]).
    pub fn level(&self, score: u8) -> RiskLevel {
        if score >= self.levels.critical {
            RiskLevel::Critical
        } else if score >= self.levels.high {
            RiskLevel::High
        } else if score >= self.levels.medium {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }

    /// Scores `req`; `llm_cost_micros` is the estimated cost of the LLM call it makes,
    /// if any, in micro-dollars. Pure: the same input always gives the same output.
    pub fn assess(&self, req: &ActionRequest, llm_cost_micros: Option<u64>) -> Assessment {
        let mut tally = Tally::new();

        tally.add(lookup(&self.verbs, req.action.verb()).unwrap_or(&self.unknown_verb));

        // A class named twice counts once; unknown classes count once between them.
        let mut unknown_seen = false;
        for (i, class) in req.data_classes.iter().enumerate() {
            let class = class.as_str();
            if req
                .data_classes
                .iter()
                .take(i)
                .any(|c| c.as_str().eq_ignore_ascii_case(class))
            {
                continue;
            }
            match lookup(&self.data_classes, class) {
                Some(rule) => tally.add(rule),
                None if !unknown_seen => {
                    unknown_seen = true;
                    tally.add(&self.unknown_data_class);
                }
                None => {}
            }
        }

        match &req.tool {
            None => tally.add(&self.missing_tool),
            Some(tool) => {
                self.tools.apply(tool.as_str(), &mut tally);
            }
        }

        // Levels above 5 cannot pass request validation; should one arrive anyway it
        // is scored as 5, never as less.
        if let Some(level) = req.risk_level.filter(|&l| l > 0) {
            let index = usize::from(level.min(5)) - 1;
            if let Some(rule) = self.caller_risk_level.get(index) {
                tally.add(rule);
            }
        }

        if !req.context.is_empty() {
            for (conditions, rule) in &self.context {
                if conditions.iter().any(|c| c.holds(req)) {
                    tally.add(rule);
                }
            }
        }

        if let Some(cost) = llm_cost_micros {
            for (at_least, rule) in &self.llm_cost {
                if cost >= *at_least {
                    tally.add(rule);
                }
            }
        }

        self.finish(&tally)
    }

    fn finish(&self, tally: &Tally<'_>) -> Assessment {
        let factors: [Vec<Factor>; 6] = std::array::from_fn(|d| tally.factors(d));
        let scores = factors.each_ref().map(|f| {
            let sum: u32 = f.iter().map(|f| u32::from(f.points)).sum();
            u8::try_from(sum.min(100)).unwrap_or(100)
        });
        let weighted: f64 = scores
            .iter()
            .zip(self.weights.iter())
            .map(|(&s, &w)| f64::from(s) * w)
            .sum();
        // Weights add up to 1 within 1e-6, so the sum is within 0..=100 up to that;
        // clamp before the conversion so rounding noise cannot wrap.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 0..=100 first"
        )]
        let weighted = weighted.round().clamp(0.0, 100.0) as u8;
        let extreme = scores.iter().any(|&s| s >= self.config.extreme_dimension);
        let score = if extreme {
            weighted.max(self.config.extreme_floor)
        } else {
            weighted
        };
        // Arrays of six zipped by iterators: no indexing; the fallback cannot happen.
        let mut parts = scores.into_iter().zip(self.weights).zip(factors);
        let [
            security,
            privacy,
            compliance,
            operational,
            reputational,
            financial,
        ] = Dimension::ALL.map(|dimension| {
            let ((score, weight), factors) = parts.next().unwrap_or_default();
            DimensionScore {
                dimension,
                score,
                weight,
                factors,
            }
        });
        let dimensions = Dimensions {
            security,
            privacy,
            compliance,
            operational,
            reputational,
            financial,
        };
        Assessment {
            score,
            level: self.level(score),
            escalate: score >= self.config.escalation_threshold,
            escalation_threshold: self.config.escalation_threshold,
            floor_applied: score > weighted,
            dimensions,
        }
    }
}
