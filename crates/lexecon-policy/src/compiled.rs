//! The compiled evaluator: indexes built once per policy version, then pure evaluation
//! of requests with an explanation of every outcome.

use std::fmt::Write as _;

use lexecon_core::{ActionRequest, Glob, Outcome, PolicyMode};
use serde::Serialize;

use crate::hash::policy_hash;
use crate::index::{FastMap, PatternIndex};
use crate::model::{Policy, RelationKind, TermKind, When};
use crate::parse::split_context_pattern;

mod analysis;

/// What the risk step knows about a request, for paranoid mode's escalation.
///
/// The policy crate does not score risk; the caller (the engine, or a test) passes the
/// score the risk crate computed, or `None` when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskInput {
    /// The overall risk score, 0..=100, if known.
    pub score: Option<u8>,
    /// In paranoid mode, a score at or above this escalates an otherwise approved request.
    pub escalation_threshold: u8,
}

impl Default for RiskInput {
    fn default() -> Self {
        RiskInput {
            score: None,
            escalation_threshold: 80,
        }
    }
}

/// Why one relation that the request could touch did or did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationTrace {
    /// The relation's id.
    pub relation_id: String,
    /// Its kind.
    pub kind: RelationKind,
    /// Whether it applied (for `requires`: whether it was in force).
    pub applied: bool,
    /// Why, in a few words.
    pub why: String,
}

/// The result of evaluating one request, with its explanation.
///
/// Serializes to JSON with the keys `outcome`, `mode`, `reasons`, `matched_terms`,
/// `trace` and `reasoning`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Approved, denied or escalated.
    pub outcome: Outcome,
    /// The effective mode: the stricter of the policy's and the request's.
    pub mode: PolicyMode,
    /// What decided: relation ids (sorted), or one of `no-permit`, `paranoid-no-tool`,
    /// `paranoid-risk-level`, `paranoid-risk-score`, `invalid-risk-level`,
    /// `invalid-risk-score`.
    pub reasons: Vec<String>,
    /// Ids of the terms the request matched, directly or through `implies`, sorted.
    pub matched_terms: Vec<String>,
    /// Every relation considered, sorted by id, with why it did or did not apply.
    /// Considered are the relations indexed under a term the request matched: every
    /// `requires` and `implies` whose `from` matched, and every `permits`, `forbids`
    /// and `conflicts` whose less-used term (of `from` and `to`) matched. A relation not
    /// listed could not apply.
    pub trace: Vec<RelationTrace>,
    /// One human sentence.
    pub reasoning: String,
}

#[derive(Debug)]
struct CompiledWhen {
    tools: Option<Box<[Glob]>>,
    max_risk_level: Option<u8>,
    data_classes_within: Option<Box<[Glob]>>,
    context: Box<[(Box<str>, Glob)]>,
}

impl CompiledWhen {
    fn new(when: &When) -> Self {
        // Patterns were validated by the parser; one that somehow does not compile is
        // left out, which can only make a condition harder to meet (deny-safe).
        let globs = |list: &Option<Vec<String>>| {
            list.as_ref()
                .map(|l| l.iter().filter_map(|p| Glob::new(p).ok()).collect())
        };
        CompiledWhen {
            tools: globs(&when.tools),
            max_risk_level: when.max_risk_level,
            data_classes_within: globs(&when.data_classes_within),
            context: when
                .context
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().into(), Glob::new(v).ok()?)))
                .collect(),
        }
    }

    /// `None` when every condition holds, else the first that fails and why.
    fn failure(&self, req: &ActionRequest) -> Option<String> {
        if let Some(tools) = &self.tools {
            match &req.tool {
                None => return Some("when.tools: the request names no tool".to_owned()),
                Some(tool) if !tools.iter().any(|g| g.matches(tool.as_str())) => {
                    return Some(format!(
                        "when.tools: tool {tool} matches none of {}",
                        list(tools)
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(max) = self.max_risk_level {
            match req.risk_level {
                None => {
                    return Some(format!(
                        "when.max_risk_level {max}: the request gives no risk_level"
                    ));
                }
                Some(level) if level > max => {
                    return Some(format!(
                        "when.max_risk_level {max}: risk_level {level} is higher"
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(within) = &self.data_classes_within
            && let Some(dc) = req
                .data_classes
                .iter()
                .find(|dc| !within.iter().any(|g| g.matches(dc.as_str())))
        {
            return Some(format!(
                "when.data_classes_within: data class {dc} is not within {}",
                list(within)
            ));
        }
        for (key, glob) in &self.context {
            match req.context.get(&**key) {
                None => {
                    return Some(format!(
                        "when.context.{key}: the request has no context {key}"
                    ));
                }
                Some(value) if !glob.matches(value) => {
                    return Some(format!(
                        "when.context.{key}: {value:?} does not match {glob}"
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Whether the conditions on the tool, the risk level and the data classes hold:
    /// every condition but `context`.
    fn holds_ignoring_context(&self, req: &ActionRequest) -> bool {
        if let Some(tools) = &self.tools {
            match &req.tool {
                Some(tool) if tools.iter().any(|g| g.matches(tool.as_str())) => {}
                _ => return false,
            }
        }
        if let Some(max) = self.max_risk_level {
            match req.risk_level {
                Some(level) if level <= max => {}
                _ => return false,
            }
        }
        match &self.data_classes_within {
            Some(within) => req
                .data_classes
                .iter()
                .all(|dc| within.iter().any(|g| g.matches(dc.as_str()))),
            None => true,
        }
    }

    /// The same test as [`CompiledWhen::failure`] without building a message.
    fn holds(&self, req: &ActionRequest) -> bool {
        if let Some(tools) = &self.tools {
            match &req.tool {
                Some(tool) if tools.iter().any(|g| g.matches(tool.as_str())) => {}
                _ => return false,
            }
        }
        if let Some(max) = self.max_risk_level {
            match req.risk_level {
                Some(level) if level <= max => {}
                _ => return false,
            }
        }
        if let Some(within) = &self.data_classes_within
            && !req
                .data_classes
                .iter()
                .all(|dc| within.iter().any(|g| g.matches(dc.as_str())))
        {
            return false;
        }
        self.context.iter().all(|(key, glob)| {
            req.context
                .get(&**key)
                .is_some_and(|value| glob.matches(value))
        })
    }
}

fn list(globs: &[Glob]) -> String {
    let mut s = String::from("[");
    for (i, g) in globs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(g.as_str());
    }
    s.push(']');
    s
}

#[derive(Debug)]
struct CompiledRelation {
    id: String,
    kind: RelationKind,
    from: u32,
    to: u32,
    when: CompiledWhen,
}

/// A policy compiled for evaluation: immutable, `Send + Sync`, cheap to share in an `Arc`.
///
/// Compiling indexes terms by pattern (literals in hash maps, globs bucketed by literal
/// prefix or suffix), relations by one of their terms, and precomputes the transitive
/// closure of `implies`, so evaluating a request touches only the terms it matches and
/// the relations indexed under them, however large the policy.
#[derive(Debug)]
pub struct CompiledPolicy {
    name: String,
    version: String,
    mode: PolicyMode,
    hash: [u8; 32],
    /// Term ids; a term's number is its position, in id order.
    term_ids: Vec<String>,
    /// For each term, every term it implies, transitively (not itself).
    implied: Vec<Box<[u32]>>,
    actor: PatternIndex,
    action: PatternIndex,
    tool: PatternIndex,
    data_class: PatternIndex,
    resource: PatternIndex,
    context: FastMap<Box<str>, PatternIndex>,
    /// Relations, in id order.
    relations: Vec<CompiledRelation>,
    /// For each term, the relations indexed under it: `requires` and `implies` under
    /// their `from` (they can be in force when only `from` matches); `permits`,
    /// `forbids` and `conflicts`, which need both terms, under whichever of the two
    /// fewer relations mention, so a broad term (`ai_agent:*`) with many relations
    /// does not make every request consider all of them.
    by_term: Vec<Box<[u32]>>,
    /// The terms a request's context can match (kind `context`, and `resource`, which
    /// reads `context["resource"]`): the term's number, the context key and the glob.
    /// Only [`CompiledPolicy::always_denies`] reads them.
    context_sources: Vec<(u32, Box<str>, Glob)>,
    /// For each term some context source reaches (is, or implies), the positions in
    /// `context_sources` of those sources.
    reached_by: FastMap<u32, Vec<usize>>,
}

/// How one considered relation came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// From, to and when all hold.
    Applies,
    /// The request does not match the `from` term.
    MissesFrom,
    /// The request does not match the `to` term (a `requires` in force: violated).
    MissesTo,
    /// The `when` does not hold.
    WhenFails,
}

fn num(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl CompiledPolicy {
    /// Compiles a validated policy.
    pub fn new(policy: &Policy) -> CompiledPolicy {
        let mut terms: Vec<_> = policy.terms.iter().collect();
        terms.sort_by(|a, b| a.id.cmp(&b.id));
        let number: FastMap<&str, u32> = terms
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), num(i)))
            .collect();

        let mut compiled = CompiledPolicy {
            name: policy.name.clone(),
            version: policy.version.clone(),
            mode: policy.mode,
            hash: policy_hash(policy),
            term_ids: terms.iter().map(|t| t.id.clone()).collect(),
            implied: Vec::new(),
            actor: PatternIndex::default(),
            action: PatternIndex::default(),
            tool: PatternIndex::default(),
            data_class: PatternIndex::default(),
            resource: PatternIndex::default(),
            context: FastMap::default(),
            relations: Vec::new(),
            by_term: vec![Box::default(); terms.len()],
            context_sources: Vec::new(),
            reached_by: FastMap::default(),
        };
        for (i, t) in terms.iter().enumerate() {
            let n = num(i);
            // A pattern that does not compile (the parser rejects those) matches nothing.
            if t.kind == TermKind::Context {
                if let Ok((key, glob)) = split_context_pattern(&t.pattern) {
                    compiled.context_sources.push((n, key.into(), glob.clone()));
                    compiled
                        .context
                        .entry(key.into())
                        .or_default()
                        .insert(glob, n);
                }
                continue;
            }
            let Ok(glob) = Glob::new(&t.pattern) else {
                continue;
            };
            if t.kind == TermKind::Resource {
                compiled
                    .context_sources
                    .push((n, "resource".into(), glob.clone()));
            }
            let index = match t.kind {
                TermKind::Actor => &mut compiled.actor,
                TermKind::Action => &mut compiled.action,
                TermKind::Tool => &mut compiled.tool,
                TermKind::DataClass => &mut compiled.data_class,
                TermKind::Resource | TermKind::Context => &mut compiled.resource,
            };
            index.insert(glob, n);
        }

        let mut relations: Vec<_> = policy.relations.iter().collect();
        relations.sort_by(|a, b| a.id.cmp(&b.id));
        let mut mentions = vec![0usize; terms.len()];
        for r in &relations {
            for id in [&r.from, &r.to] {
                if let Some(m) = number
                    .get(id.as_str())
                    .and_then(|&t| mentions.get_mut(t as usize))
                {
                    *m += 1;
                }
            }
        }
        let mut by_term: Vec<Vec<u32>> = vec![Vec::new(); terms.len()];
        let mut implies: Vec<Vec<u32>> = vec![Vec::new(); terms.len()];
        for r in relations {
            let (Some(&from), Some(&to)) = (number.get(r.from.as_str()), number.get(r.to.as_str()))
            else {
                continue;
            };
            let n = num(compiled.relations.len());
            let needs_both = !matches!(r.kind, RelationKind::Requires | RelationKind::Implies);
            let fan_out = |t: u32| mentions.get(t as usize).copied().unwrap_or(0);
            let key = if needs_both && fan_out(to) < fan_out(from) {
                to
            } else {
                from
            };
            if let Some(list) = by_term.get_mut(key as usize) {
                list.push(n);
            }
            if r.kind == RelationKind::Implies
                && let Some(list) = implies.get_mut(from as usize)
            {
                list.push(to);
            }
            compiled.relations.push(CompiledRelation {
                id: r.id.clone(),
                kind: r.kind,
                from,
                to,
                when: CompiledWhen::new(&r.when),
            });
        }
        compiled.by_term = by_term.into_iter().map(Vec::into_boxed_slice).collect();

        // Transitive closure of implies, by a search from each term. The parser rejects
        // cycles; the `seen` set makes this terminate even if one slipped through.
        let mut seen = vec![false; terms.len()];
        compiled.implied = (0..terms.len())
            .map(|start| {
                let mut out = Vec::new();
                let mut stack: Vec<u32> = implies.get(start).cloned().unwrap_or_default();
                if stack.is_empty() {
                    return Box::default();
                }
                while let Some(t) = stack.pop() {
                    let Some(s) = seen.get_mut(t as usize) else {
                        continue;
                    };
                    if *s || t as usize == start {
                        continue;
                    }
                    *s = true;
                    out.push(t);
                    if let Some(next) = implies.get(t as usize) {
                        stack.extend_from_slice(next);
                    }
                }
                // Reset only what this search marked, so the closure costs what it
                // visits, not terms x terms.
                for &t in &out {
                    if let Some(s) = seen.get_mut(t as usize) {
                        *s = false;
                    }
                }
                out.sort_unstable();
                out.into_boxed_slice()
            })
            .collect();
        for (i, (source, _, _)) in compiled.context_sources.iter().enumerate() {
            let implied = compiled.implied.get(*source as usize);
            for &t in std::iter::once(source).chain(implied.into_iter().flatten()) {
                compiled.reached_by.entry(t).or_default().push(i);
            }
        }
        compiled
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The policy's own mode (a request may only make it stricter).
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// The policy version hash (see the crate docs for the exact encoding).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The policy version hash in lowercase hex.
    pub fn hash_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.hash {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// How many terms the policy has.
    pub fn term_count(&self) -> usize {
        self.term_ids.len()
    }

    /// How many relations the policy has.
    pub fn relation_count(&self) -> usize {
        self.relations.len()
    }

    /// The numbers of the terms `req` matches, directly or through `implies`, sorted.
    fn matched_terms(&self, req: &ActionRequest) -> Vec<u32> {
        let mut matched = Vec::with_capacity(16);
        self.actor.lookup(req.actor.as_str(), &mut matched);
        self.action.lookup(req.action.as_str(), &mut matched);
        if let Some(tool) = &req.tool {
            self.tool.lookup(tool.as_str(), &mut matched);
        }
        for dc in &req.data_classes {
            self.data_class.lookup(dc.as_str(), &mut matched);
        }
        if let Some(resource) = req.context.get("resource") {
            self.resource.lookup(resource, &mut matched);
        }
        if !self.context.is_empty() {
            for (key, value) in &req.context {
                if let Some(index) = self.context.get(key.as_str()) {
                    index.lookup(value, &mut matched);
                }
            }
        }
        let direct = matched.len();
        for i in 0..direct {
            if let Some(implied) = matched.get(i).and_then(|&t| self.implied.get(t as usize)) {
                matched.extend_from_slice(implied);
            }
        }
        matched.sort_unstable();
        matched.dedup();
        matched
    }

    /// Evaluates a request under this policy, with its explanation.
    ///
    /// Pure: no IO, no clock. Follows the outcome rules of the policy format (see the
    /// crate docs): any applicable `forbids`, violated `requires` or applicable
    /// `conflicts` denies; otherwise permissive approves, strict approves only with an
    /// applicable `permits`, and paranoid is strict plus: no tool denies, and risk
    /// level 4-5 or a risk score at or over the threshold escalates.
    pub fn evaluate(&self, req: &ActionRequest, risk: RiskInput) -> Evaluation {
        let mode = self.mode.effective(req.mode);
        let matched = self.matched_terms(req);
        let is_matched = |t: u32| matched.binary_search(&t).is_ok();

        // Consider every relation indexed under a matched term; no other can apply.
        let mut considered: Vec<(u32, Status)> = Vec::with_capacity(8);
        for &t in &matched {
            let Some(rels) = self.by_term.get(t as usize) else {
                continue;
            };
            for &r in rels.iter() {
                let Some(rel) = self.relations.get(r as usize) else {
                    continue;
                };
                let status = match rel.kind {
                    // Indexed under `from`, which matched.
                    RelationKind::Implies => Status::Applies,
                    RelationKind::Requires if !rel.when.holds(req) => Status::WhenFails,
                    RelationKind::Requires if is_matched(rel.to) => Status::Applies,
                    RelationKind::Requires => Status::MissesTo,
                    _ if !is_matched(rel.from) => Status::MissesFrom,
                    _ if !is_matched(rel.to) => Status::MissesTo,
                    _ if !rel.when.holds(req) => Status::WhenFails,
                    _ => Status::Applies,
                };
                considered.push((r, status));
            }
        }
        considered.sort_unstable_by_key(|&(r, _)| r);

        let mut denials: Vec<String> = Vec::new();
        let mut permits: Vec<String> = Vec::new();
        for &(r, status) in &considered {
            let Some(rel) = self.relations.get(r as usize) else {
                continue;
            };
            match (rel.kind, status) {
                (RelationKind::Forbids | RelationKind::Conflicts, Status::Applies)
                | (RelationKind::Requires, Status::MissesTo) => denials.push(rel.id.clone()),
                (RelationKind::Permits, Status::Applies) => permits.push(rel.id.clone()),
                _ => {}
            }
        }

        let (outcome, reasons, reasoning) = self.decide(req, risk, mode, denials, permits);
        let trace = considered
            .iter()
            .filter_map(|&(r, status)| self.trace(req, r, status))
            .collect();
        Evaluation {
            outcome,
            mode,
            reasons,
            matched_terms: matched
                .iter()
                .filter_map(|&t| self.term_ids.get(t as usize).cloned())
                .collect(),
            trace,
            reasoning,
        }
    }

    fn decide(
        &self,
        req: &ActionRequest,
        risk: RiskInput,
        mode: PolicyMode,
        mut denials: Vec<String>,
        permits: Vec<String>,
    ) -> (Outcome, Vec<String>, String) {
        // Input the evaluator cannot trust denies in every mode: deny is the safe failure.
        if let Some(level) = req.risk_level.filter(|l| !(1..=5).contains(l)) {
            return (
                Outcome::Denied,
                vec!["invalid-risk-level".to_owned()],
                format!("Denied: risk_level {level} is outside 1..5."),
            );
        }
        if let Some(score) = risk.score.filter(|&s| s > 100) {
            return (
                Outcome::Denied,
                vec!["invalid-risk-score".to_owned()],
                format!("Denied: risk score {score} is outside 0..100."),
            );
        }
        let paranoid = mode == PolicyMode::Paranoid;
        if paranoid && req.tool.is_none() {
            denials.push("paranoid-no-tool".to_owned());
        }
        if !denials.is_empty() {
            let reasoning = format!("Denied in {mode} mode by {}.", denials.join(", "));
            return (Outcome::Denied, denials, reasoning);
        }
        if mode != PolicyMode::Permissive && permits.is_empty() {
            return (
                Outcome::Denied,
                vec!["no-permit".to_owned()],
                format!("Denied in {mode} mode: no permits relation applies to this request."),
            );
        }
        if paranoid {
            let mut escalations = Vec::new();
            if req.risk_level.is_some_and(|l| l >= 4) {
                escalations.push("paranoid-risk-level".to_owned());
            }
            if risk.score.is_some_and(|s| s >= risk.escalation_threshold) {
                escalations.push("paranoid-risk-score".to_owned());
            }
            if !escalations.is_empty() {
                let mut why = Vec::with_capacity(2);
                if let Some(level) = req.risk_level.filter(|&l| l >= 4) {
                    why.push(format!("risk level {level}"));
                }
                if let Some(score) = risk.score.filter(|&s| s >= risk.escalation_threshold) {
                    why.push(format!(
                        "risk score {score} (threshold {})",
                        risk.escalation_threshold
                    ));
                }
                let reasoning = format!(
                    "Escalated in paranoid mode: permitted by {}, but a person must confirm because of {}.",
                    permits.join(", "),
                    why.join(" and ")
                );
                return (Outcome::Escalated, escalations, reasoning);
            }
        }
        let reasoning = if permits.is_empty() {
            format!("Approved in {mode} mode: no relation forbids this request.")
        } else {
            format!(
                "Approved in {mode} mode: permitted by {}.",
                permits.join(", ")
            )
        };
        (Outcome::Approved, permits, reasoning)
    }

    fn term(&self, t: u32) -> &str {
        self.term_ids.get(t as usize).map_or("?", String::as_str)
    }

    fn trace(&self, req: &ActionRequest, r: u32, status: Status) -> Option<RelationTrace> {
        let rel = self.relations.get(r as usize)?;
        let (from, to) = (self.term(rel.from), self.term(rel.to));
        let (applied, why) = match (rel.kind, status) {
            (RelationKind::Implies, _) => (
                true,
                format!("request matches {from}, so it also counts as matching {to}"),
            ),
            (_, Status::WhenFails) => (
                false,
                rel.when
                    .failure(req)
                    .unwrap_or_else(|| "a when condition does not hold".to_owned()),
            ),
            (RelationKind::Requires, Status::Applies) => {
                (true, format!("requirement met: request matches {to}"))
            }
            (RelationKind::Requires, Status::MissesTo) => (
                true,
                format!("requirement violated: request matches {from} but not {to}"),
            ),
            (_, Status::Applies) => (true, format!("request matches {from} and {to}")),
            (_, Status::MissesTo) => (false, format!("request does not match {to}")),
            (_, Status::MissesFrom) => (false, format!("request does not match {from}")),
        };
        Some(RelationTrace {
            relation_id: rel.id.clone(),
            kind: rel.kind,
            applied,
            why,
        })
    }
}
