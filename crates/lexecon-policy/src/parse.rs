//! Reading a policy file: TOML with serde (unknown keys rejected), then validation that
//! collects every problem with its location.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use lexecon_core::PolicyMode;
use lexecon_core::glob::{Alphabet, Glob};
use serde::Deserialize;
use toml::Spanned;

use crate::model::{
    Diagnostic, Locator, Policy, Relation, RelationKind, Severity, Term, TermKind, When,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policy: RawHeader,
    #[serde(default)]
    terms: Vec<RawTerm>,
    #[serde(default)]
    relations: Vec<RawRelation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    version: Spanned<String>,
    mode: PolicyMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerm {
    id: Spanned<String>,
    kind: TermKind,
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelation {
    id: Spanned<String>,
    kind: Spanned<RelationKind>,
    from: Spanned<String>,
    to: Spanned<String>,
    when: Option<Spanned<RawWhen>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    tools: Option<Spanned<Vec<Spanned<String>>>>,
    max_risk_level: Option<Spanned<i64>>,
    data_classes_within: Option<Spanned<Vec<Spanned<String>>>>,
    context: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

/// Words the evaluator uses as reasons; a relation may not take one as its id, so a
/// reason always means one thing.
pub const RESERVED_REASONS: &[&str] = &[
    "no-permit",
    "paranoid-no-tool",
    "paranoid-risk-level",
    "paranoid-risk-score",
    "invalid-risk-level",
    "invalid-risk-score",
];

/// Checks an id: non-empty, ASCII letters, digits and `_ - . :` only.
fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("id must not be empty".to_owned());
    }
    id.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        .map(|c| format!("id {id:?} contains {c:?}; ids use ASCII letters, digits and _ - . :"))
}

/// Checks a context key the way `lexecon_core` checks request context keys.
fn context_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("context key must not be empty".to_owned());
    }
    key.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map(|c| {
            format!("context key {key:?} contains {c:?}; keys use ASCII letters, digits and _ - .")
        })
}

/// The alphabet a term's pattern is checked against.
fn term_alphabet(kind: TermKind) -> Alphabet {
    match kind {
        TermKind::Actor => Alphabet::Name("actor"),
        TermKind::Action => Alphabet::Name("action"),
        TermKind::Tool => Alphabet::Name("tool"),
        TermKind::DataClass => Alphabet::Name("data class"),
        TermKind::Resource => Alphabet::Text("resource"),
        TermKind::Context => Alphabet::Text("context value"),
    }
}

/// Splits a context term's `KEY=VALUE_GLOB` and compiles the glob.
pub(crate) fn split_context_pattern(pattern: &str) -> Result<(&str, Glob), String> {
    let Some((key, value)) = pattern.split_once('=') else {
        return Err(format!(
            "context term pattern {pattern:?} has no `=`; write KEY=VALUE_GLOB, e.g. \"region=eu-*\""
        ));
    };
    if let Some(problem) = context_key_problem(key) {
        return Err(problem);
    }
    let glob =
        Glob::for_field(value, Alphabet::Text("context value")).map_err(|e| e.to_string())?;
    Ok((key, glob))
}

impl Policy {
    /// Parses and validates a policy file.
    ///
    /// `origin` names the source in diagnostics (usually the file path). On success,
    /// the policy comes with its warnings; on failure, every diagnostic found (errors
    /// and warnings). Every unknown key is reported; other TOML syntax and shape errors
    /// (a wrong type, a missing key) stop parsing at the first one; validation then
    /// reports every problem it finds.
    pub fn parse(source: &str, origin: &str) -> Result<(Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
        let loc = Locator::new(source, origin);
        let mut unknown = crate::keys::unknown_keys(source, &crate::keys::POLICY_FILE, &loc);
        if !unknown.is_empty() {
            unknown.sort_by_key(|d| (d.line, d.column));
            return Err(unknown);
        }
        let raw: RawFile = match toml::from_str(source) {
            Ok(raw) => raw,
            Err(e) => return Err(vec![loc.at(Severity::Error, e.span(), toml_message(&e))]),
        };
        let mut diags = Vec::new();
        let policy = validate(raw, &loc, &mut diags);
        // In file order, as a reader goes through the file (stable: same-place problems
        // keep the order in which they were found).
        diags.sort_by_key(|d| (d.line, d.column));
        if diags.iter().any(Diagnostic::is_error) {
            Err(diags)
        } else {
            Ok((policy, diags))
        }
    }
}

/// The toml crate's message, trimmed to one line without a trailing period.
pub(crate) fn toml_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    let msg = msg.lines().next().unwrap_or(msg);
    msg.trim_end_matches('.').to_owned()
}

fn span_of<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

fn validate(raw: RawFile, loc: &Locator<'_>, diags: &mut Vec<Diagnostic>) -> Policy {
    if raw.policy.name.get_ref().trim().is_empty() {
        diags.push(loc.error(
            span_of(&raw.policy.name),
            "policy name must not be empty; name the policy, e.g. name = \"customer-support\"",
        ));
    }
    if raw.policy.version.get_ref().trim().is_empty() {
        diags.push(loc.error(
            span_of(&raw.policy.version),
            "policy version must not be empty; give a version, e.g. version = \"1.0.0\"",
        ));
    }

    // Terms: ids unique, patterns valid for their kind.
    let mut term_kinds: HashMap<String, TermKind> = HashMap::new();
    let mut terms = Vec::with_capacity(raw.terms.len());
    for t in raw.terms {
        let id = t.id.get_ref();
        if let Some(problem) = id_problem(id) {
            diags.push(loc.error(span_of(&t.id), format!("term {problem}")));
        } else if term_kinds.insert(id.clone(), t.kind).is_some() {
            diags.push(loc.error(
                span_of(&t.id),
                format!("duplicate term id {id:?}; give each term its own id"),
            ));
        }
        let pattern = t.pattern.get_ref();
        let problem = if t.kind == TermKind::Context {
            split_context_pattern(pattern).err()
        } else {
            Glob::for_field(pattern, term_alphabet(t.kind))
                .err()
                .map(|e| e.to_string())
        };
        if let Some(problem) = problem {
            diags.push(loc.error(
                span_of(&t.pattern),
                format!("term {id:?}: invalid match: {problem}"),
            ));
        }
        terms.push(Term {
            id: t.id.into_inner(),
            kind: t.kind,
            pattern: t.pattern.into_inner(),
            description: t.description,
        });
    }

    // Relations: ids unique, terms known, conditions valid.
    let mut relation_ids: HashMap<String, Range<usize>> = HashMap::new();
    let mut relations = Vec::with_capacity(raw.relations.len());
    let mut spans = Vec::with_capacity(raw.relations.len());
    for r in raw.relations {
        let id = r.id.get_ref();
        if let Some(problem) = id_problem(id) {
            diags.push(loc.error(span_of(&r.id), format!("relation {problem}")));
        } else if RESERVED_REASONS.contains(&id.as_str()) {
            diags.push(loc.error(
                span_of(&r.id),
                format!(
                    "relation id {id:?} is reserved for an evaluation reason; choose another id"
                ),
            ));
        } else if relation_ids.insert(id.clone(), span_of(&r.id)).is_some() {
            diags.push(loc.error(
                span_of(&r.id),
                format!("duplicate relation id {id:?}; give each relation its own id"),
            ));
        }
        for (field, term) in [("from", &r.from), ("to", &r.to)] {
            if !term_kinds.contains_key(term.get_ref()) {
                diags.push(loc.error(
                    span_of(term),
                    format!(
                        "relation {id:?}: `{field}` names unknown term {:?}; declare it under [[terms]] or fix the spelling",
                        term.get_ref()
                    ),
                ));
            }
        }
        let kind = *r.kind.get_ref();
        let when = match r.when {
            None => When::default(),
            Some(w) => {
                if kind == RelationKind::Implies {
                    diags.push(loc.error(
                        span_of(&w),
                        format!(
                            "relation {id:?}: an implies relation cannot have a `when` (implication holds for every request); put the condition on the relations that use the implied term"
                        ),
                    ));
                }
                validate_when(id, w.into_inner(), loc, diags)
            }
        };
        spans.push(span_of(&r.id));
        relations.push(Relation {
            id: r.id.into_inner(),
            kind,
            from: r.from.into_inner(),
            to: r.to.into_inner(),
            when,
        });
    }

    check_implies_cycles(&relations, &spans, loc, diags);
    warn_permit_forbid_pairs(&relations, &spans, loc, diags);

    Policy {
        name: raw.policy.name.into_inner(),
        version: raw.policy.version.into_inner(),
        mode: raw.policy.mode,
        terms,
        relations,
    }
}

fn validate_when(rel: &str, w: RawWhen, loc: &Locator<'_>, diags: &mut Vec<Diagnostic>) -> When {
    let mut globs = |list: Option<Spanned<Vec<Spanned<String>>>>,
                     field: &str,
                     alphabet: Alphabet|
     -> Option<Vec<String>> {
        let list = list?;
        if list.get_ref().is_empty() {
            diags.push(loc.at(
                Severity::Warning,
                Some(span_of(&list)),
                format!(
                    "relation {rel:?}: `when.{field}` is empty, so {}; remove it or list patterns",
                    if field == "tools" {
                        "the relation never applies"
                    } else {
                        "only requests without data classes satisfy it"
                    }
                ),
            ));
        }
        let mut out = Vec::with_capacity(list.get_ref().len());
        for g in list.into_inner() {
            if let Err(e) = Glob::for_field(g.get_ref(), alphabet) {
                diags.push(loc.error(
                    span_of(&g),
                    format!("relation {rel:?}: invalid pattern in `when.{field}`: {e}"),
                ));
            }
            out.push(g.into_inner());
        }
        Some(out)
    };
    let tools = globs(w.tools, "tools", Alphabet::Name("tool"));
    let data_classes_within = globs(
        w.data_classes_within,
        "data_classes_within",
        Alphabet::Name("data class"),
    );
    let max_risk_level = w
        .max_risk_level
        .and_then(|m| match u8::try_from(*m.get_ref()) {
            Ok(level @ 1..=5) => Some(level),
            _ => {
                diags.push(loc.error(
                    span_of(&m),
                    format!(
                        "relation {rel:?}: `when.max_risk_level` is {}; it must be between 1 and 5",
                        m.get_ref()
                    ),
                ));
                None
            }
        });
    let mut context = BTreeMap::new();
    for (key, value) in w.context.unwrap_or_default() {
        if let Some(problem) = context_key_problem(key.get_ref()) {
            diags.push(loc.error(
                span_of(&key),
                format!("relation {rel:?}: `when.context`: {problem}"),
            ));
        }
        if let Err(e) = Glob::for_field(value.get_ref(), Alphabet::Text("context value")) {
            diags.push(loc.error(
                span_of(&value),
                format!(
                    "relation {rel:?}: invalid pattern for `when.context.{}`: {e}",
                    key.get_ref()
                ),
            ));
        }
        context.insert(key.into_inner(), value.into_inner());
    }
    When {
        tools,
        max_risk_level,
        data_classes_within,
        context,
    }
}

/// Rejects `implies` cycles, naming the terms around the cycle.
fn check_implies_cycles(
    relations: &[Relation],
    spans: &[Range<usize>],
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    // term -> [(target, relation index)]
    let mut edges: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    for (i, r) in relations.iter().enumerate() {
        if r.kind == RelationKind::Implies {
            edges.entry(&r.from).or_default().push((&r.to, i));
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        Open,
        Done,
    }
    let mut color: HashMap<&str, Color> = HashMap::new();
    // Iterative depth-first search, so a long chain cannot overflow the stack.
    for &start in edges.keys() {
        if color.contains_key(start) {
            continue;
        }
        // Stack of (term, index of the next edge to follow).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        color.insert(start, Color::Open);
        while let Some(&mut (term, ref mut next)) = stack.last_mut() {
            let out = edges.get(term).map_or(&[][..], Vec::as_slice);
            let Some(&(target, rel)) = out.get(*next) else {
                color.insert(term, Color::Done);
                stack.pop();
                continue;
            };
            *next += 1;
            match color.get(target) {
                Some(Color::Done) => {}
                Some(Color::Open) => {
                    // The cycle is the part of the stack from `target` on.
                    let from = stack.iter().position(|&(t, _)| t == target).unwrap_or(0);
                    let mut names: Vec<&str> = stack.iter().skip(from).map(|&(t, _)| t).collect();
                    names.push(target);
                    let span = spans.get(rel).cloned().unwrap_or(0..0);
                    diags.push(loc.error(
                        span,
                        format!(
                            "implies cycle: {}; a term cannot imply itself, remove one of these relations",
                            names.join(" -> ")
                        ),
                    ));
                }
                None => {
                    color.insert(target, Color::Open);
                    stack.push((target, 0));
                }
            }
        }
    }
}

/// Warns about a `permits` and a `forbids` with the same from, to and conditions: the
/// permit can never win, which is rarely what the author meant.
fn warn_permit_forbid_pairs(
    relations: &[Relation],
    spans: &[Range<usize>],
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut forbids: HashMap<(&str, &str), Vec<&Relation>> = HashMap::new();
    for r in relations.iter().filter(|r| r.kind == RelationKind::Forbids) {
        forbids.entry((&r.from, &r.to)).or_default().push(r);
    }
    for (i, p) in relations.iter().enumerate() {
        if p.kind != RelationKind::Permits {
            continue;
        }
        let Some(candidates) = forbids.get(&(p.from.as_str(), p.to.as_str())) else {
            continue;
        };
        for f in candidates.iter().filter(|f| f.when == p.when) {
            diags.push(loc.at(
                Severity::Warning,
                spans.get(i).cloned(),
                format!(
                    "permits {:?} has the same scope as forbids {:?}, so the forbid always wins and the permit has no effect; narrow one of them with `when` or remove one",
                    p.id, f.id
                ),
            ));
        }
    }
}
