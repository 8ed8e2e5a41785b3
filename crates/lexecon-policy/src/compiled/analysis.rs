//! Whether a policy denies a request whatever context it carries (contract §11,
//! "tools/list"): the MCP gateway leaves such tools out of the list it relays.
//!
//! The question is asked with a request whose context holds only the keys whose values
//! are known in advance (the gateway knows `mcp.server`; `mcp.args_sha256` and the
//! context arguments depend on each call). A *completion* of that request keeps those
//! keys and their values and may add any other key with any value. The request is
//! *always denied* when one of these holds:
//!
//! 1. it is denied for a reason no context can lift: an invalid risk level, paranoid
//!    mode without a tool, an applicable `forbids` or `conflicts` (adding context only
//!    adds matched terms and satisfied `when.context` conditions, so a relation that
//!    applies to the request applies to every completion), or a violated `requires`
//!    whose `to` term no context term (nor `resource` term) can reach through `implies`;
//! 2. the effective mode is strict or paranoid and no `permits` relation can apply to
//!    any completion: its tool, risk-level and data-class conditions fail on the
//!    request, a `when.context` condition on a known key fails, or its `from` or `to`
//!    term is neither matched already nor reachable from a term on an unknown context
//!    key whose glob can hold together with the other conditions on that key.
//!
//! Both are sufficient for "every completion is denied" (the tests check this against
//! the evaluator over enumerated contexts). The converse holds for denials of one
//! relation and for "no permit applies": a tool that only a *combination* of relations
//! denies in every context (a context making the only permit apply also triggers a
//! `forbids`) is not reported, which only means the tool stays listed and its calls are
//! denied one by one.

use std::collections::{BTreeMap, HashSet};

use lexecon_core::{ActionRequest, Glob, Outcome, PolicyMode};

use super::{CompiledPolicy, RiskInput};
use crate::model::RelationKind;

/// Patterns longer than this many wildcards-and-characters are not intersected exactly;
/// the analysis then assumes they can hold together (which can only keep a tool listed).
const MAX_GLOB_TOKENS: usize = 63;

impl CompiledPolicy {
    /// Whether this policy denies `req` whatever context it carries beyond the context
    /// keys `req` holds (their values are taken as fixed; every other key may be absent
    /// or hold any value). See the module documentation of the analysis for the exact
    /// rule: true means every such context is denied; false means a context may be
    /// approved or escalated, or that only a combination of relations denies them all.
    ///
    /// Pure and cheap: one evaluation plus a pass over the `permits` relations.
    pub fn always_denies(&self, req: &ActionRequest) -> bool {
        let eval = self.evaluate(req, RiskInput::default());
        if eval.outcome != Outcome::Denied {
            return false;
        }
        let reachable_sources = |term: u32| self.unknown_sources_reaching(req, term);
        for reason in &eval.reasons {
            match reason.as_str() {
                "invalid-risk-level" | "paranoid-no-tool" => return true,
                "no-permit" => {}
                id => {
                    let Some(rel) = self.relations.iter().find(|r| r.id == id) else {
                        continue;
                    };
                    match rel.kind {
                        RelationKind::Forbids | RelationKind::Conflicts => return true,
                        RelationKind::Requires if reachable_sources(rel.to).is_empty() => {
                            return true;
                        }
                        _ => {}
                    }
                }
            }
        }
        let mode = self.mode.effective(req.mode);
        mode != PolicyMode::Permissive && !self.permit_possible(req)
    }

    /// The context sources (context and resource terms on keys `req` does not fix) that
    /// are `term` or imply it: setting their key to a value their glob matches makes a
    /// completion match `term`.
    fn unknown_sources_reaching(&self, req: &ActionRequest, term: u32) -> Vec<usize> {
        self.reached_by
            .get(&term)
            .map(|sources| {
                sources
                    .iter()
                    .copied()
                    .filter(|&i| {
                        self.context_sources
                            .get(i)
                            .is_some_and(|(_, key, _)| !req.context.contains_key(&**key))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether some completion of `req` makes some `permits` relation apply.
    pub(crate) fn permit_possible(&self, req: &ActionRequest) -> bool {
        let matched = self.matched_terms(req);
        let is_matched = |t: u32| matched.binary_search(&t).is_ok();
        'relations: for rel in &self.relations {
            if rel.kind != RelationKind::Permits || !rel.when.holds_ignoring_context(req) {
                continue;
            }
            // Conditions on unknown keys; a condition on a known key holds or not now.
            let mut base: BTreeMap<&str, Vec<&Glob>> = BTreeMap::new();
            for (key, glob) in rel.when.context.iter() {
                match req.context.get(&**key) {
                    Some(value) if glob.matches(value) => {}
                    Some(_) => continue 'relations,
                    None => base.entry(&**key).or_default().push(glob),
                }
            }
            // Each term is matched already, or needs one source on an unknown key.
            let choices = |t: u32| -> Option<Vec<Option<usize>>> {
                if is_matched(t) {
                    return Some(vec![None]);
                }
                let sources = self.unknown_sources_reaching(req, t);
                (!sources.is_empty()).then(|| sources.into_iter().map(Some).collect())
            };
            let (Some(froms), Some(tos)) = (choices(rel.from), choices(rel.to)) else {
                continue;
            };
            for f in &froms {
                for t in &tos {
                    let mut keys = base.clone();
                    for source in [f, t].into_iter().flatten() {
                        if let Some((_, key, glob)) = self.context_sources.get(*source) {
                            keys.entry(&**key).or_default().push(glob);
                        }
                    }
                    if keys.values().all(|globs| globs_intersect(globs)) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// One element of a glob, as `lexecon_core::Glob` reads its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    One,
    Star,
}

fn tokens(glob: &Glob) -> Vec<Tok> {
    glob.as_str()
        .chars()
        .map(|c| match c {
            '*' => Tok::Star,
            '?' => Tok::One,
            c => Tok::Char(c),
        })
        .collect()
}

/// Adds to `mask` every position reachable by skipping stars.
fn closure(toks: &[Tok], mut mask: u64) -> u64 {
    for (p, tok) in toks.iter().enumerate() {
        if mask & (1 << p) != 0 && *tok == Tok::Star {
            mask |= 1 << (p + 1);
        }
    }
    mask
}

/// Whether one string matches every glob of `globs`: a search over the product of
/// their automata (a set of positions per glob), reading the characters the globs name
/// plus one they do not.
pub(crate) fn globs_intersect(globs: &[&Glob]) -> bool {
    if globs.len() < 2 {
        return true;
    }
    let toks: Vec<Vec<Tok>> = globs.iter().map(|g| tokens(g)).collect();
    if toks.iter().any(|t| t.len() > MAX_GLOB_TOKENS) {
        return true;
    }
    let mut alphabet: Vec<char> = toks
        .iter()
        .flatten()
        .filter_map(|t| match t {
            Tok::Char(c) => Some(*c),
            Tok::One | Tok::Star => None,
        })
        .collect();
    alphabet.sort_unstable();
    alphabet.dedup();
    // One character no glob names stands for all of them.
    if let Some(other) = ('a'..='z')
        .chain('0'..='9')
        .chain(['\u{e000}'])
        .find(|c| alphabet.binary_search(c).is_err())
    {
        alphabet.push(other);
    }
    let start: Vec<u64> = toks.iter().map(|t| closure(t, 1)).collect();
    let accepts = |state: &[u64]| {
        state
            .iter()
            .zip(&toks)
            .all(|(mask, t)| mask & (1 << t.len()) != 0)
    };
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    let mut stack = vec![start];
    while let Some(state) = stack.pop() {
        if accepts(&state) {
            return true;
        }
        if !seen.insert(state.clone()) {
            continue;
        }
        for &c in &alphabet {
            let next: Vec<u64> = state
                .iter()
                .zip(&toks)
                .map(|(&mask, t)| {
                    let mut out = 0u64;
                    for (p, tok) in t.iter().enumerate() {
                        if mask & (1 << p) == 0 {
                            continue;
                        }
                        match tok {
                            Tok::Star => out |= 1 << p,
                            Tok::One => out |= 1 << (p + 1),
                            Tok::Char(x) if *x == c => out |= 1 << (p + 1),
                            Tok::Char(_) => {}
                        }
                    }
                    closure(t, out)
                })
                .collect();
            if next.iter().all(|&m| m != 0) && !seen.contains(&next) {
                stack.push(next);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests;
