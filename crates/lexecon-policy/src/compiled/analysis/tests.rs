//! `always_denies` against brute force: small random policies and requests, every
//! context over the keys the policy mentions (absent, each value its patterns name, and
//! one value they do not), each evaluated by the real evaluator.

use std::collections::BTreeMap;

use lexecon_core::{ActionRequest, Glob, Outcome, PolicyMode};
use proptest::prelude::*;

use super::globs_intersect;
use crate::{CompiledPolicy, Policy, RelationKind, RiskInput};

fn compile(mode: &str, body: &str) -> CompiledPolicy {
    let src = format!("[policy]\nname = \"t\"\nversion = \"1\"\nmode = \"{mode}\"\n\n{body}");
    match Policy::parse(&src, "t.toml") {
        Ok((p, _)) => CompiledPolicy::new(&p),
        Err(diags) => panic!("{src}\n{diags:?}"),
    }
}

/// The gateway's probe: agent `ag` calling `srv/t` with `call`, context `mcp.server=srv`.
fn probe() -> ActionRequest {
    ActionRequest::new("ag", "call")
        .and_then(|r| r.with_tool("srv/t"))
        .and_then(|r| r.with_context("mcp.server", "srv"))
        .unwrap()
}

fn with_context(req: &ActionRequest, key: &str, value: &str) -> ActionRequest {
    let mut r = req.clone();
    r.context.insert(key.to_owned(), value.to_owned());
    r
}

#[test]
fn a_forbids_without_context_hides_and_a_conditional_permit_does_not() {
    let p = compile(
        "strict",
        r#"
[[terms]]
id = "agent"
kind = "actor"
match = "ag"
[[terms]]
id = "call"
kind = "action"
match = "call"
[[terms]]
id = "other"
kind = "action"
match = "other"
[[relations]]
id = "no-call"
kind = "forbids"
from = "agent"
to = "call"
[[relations]]
id = "other-in-eu"
kind = "permits"
from = "agent"
to = "other"
[relations.when]
context = { region = "eu-*" }
"#,
    );
    assert!(p.always_denies(&probe()));
    let mut other = probe();
    other.action = lexecon_core::Action::new("other").unwrap();
    // Denied with only mcp.server, approved once a call carries region=eu-west.
    assert_eq!(
        p.evaluate(&other, RiskInput::default()).outcome,
        Outcome::Denied
    );
    assert!(!p.always_denies(&other));
    assert_eq!(
        p.evaluate(
            &with_context(&other, "region", "eu-west"),
            RiskInput::default()
        )
        .outcome,
        Outcome::Approved
    );
}

#[test]
fn a_permit_needing_another_server_or_conflicting_globs_cannot_apply() {
    let p = compile(
        "strict",
        r#"
[[terms]]
id = "agent"
kind = "actor"
match = "ag"
[[terms]]
id = "call"
kind = "action"
match = "call"
[[terms]]
id = "in_a"
kind = "context"
match = "k=a*"
[[relations]]
id = "elsewhere"
kind = "permits"
from = "agent"
to = "call"
[relations.when]
context = { "mcp.server" = "other" }
[[relations]]
id = "disjoint"
kind = "permits"
from = "agent"
to = "in_a"
[relations.when]
context = { k = "b*" }
"#,
    );
    // `elsewhere` needs another server; `disjoint` needs k to start with a and with b.
    assert!(p.always_denies(&probe()));
    let p = compile(
        "strict",
        r#"
[[terms]]
id = "agent"
kind = "actor"
match = "ag"
[[terms]]
id = "in_a"
kind = "context"
match = "k=a*"
[[relations]]
id = "overlap"
kind = "permits"
from = "agent"
to = "in_a"
[relations.when]
context = { k = "*z" }
"#,
    );
    assert!(!p.always_denies(&probe()));
    assert_eq!(
        p.evaluate(&with_context(&probe(), "k", "az"), RiskInput::default())
            .outcome,
        Outcome::Approved
    );
}

#[test]
fn a_requirement_a_context_can_meet_does_not_hide() {
    let body = r#"
[[terms]]
id = "agent"
kind = "actor"
match = "ag"
[[terms]]
id = "ticket"
kind = "context"
match = "ticket=T-*"
[[terms]]
id = "ticketed"
kind = "action"
match = "ticketed"
[[relations]]
id = "ticket-is-ticketed"
kind = "implies"
from = "ticket"
to = "ticketed"
[[relations]]
id = "needs-ticket"
kind = "requires"
from = "agent"
to = "ticketed"
"#;
    let p = compile("permissive", body);
    assert_eq!(
        p.evaluate(&probe(), RiskInput::default()).reasons,
        vec!["needs-ticket".to_owned()]
    );
    assert!(!p.always_denies(&probe()));
    // With the ticket key fixed to a value that does not match, nothing can meet it.
    assert!(p.always_denies(&with_context(&probe(), "ticket", "none")));
}

#[test]
fn glob_intersection_is_exact_on_small_cases() {
    let g = |s: &str| Glob::new(s).unwrap();
    let cases = [
        (&["a*", "*b"][..], true),
        (&["a*", "b*"][..], false),
        (&["a?c", "*c", "ab*"][..], true),
        (&["a?c", "abd"][..], false),
        (&["*x*y*", "*y*x*", "????"][..], true),
        (&["*x*", "???", "ab?"][..], true),
        (&["*x*", "??", "ab"][..], false),
    ];
    for (globs, expected) in cases {
        let globs: Vec<Glob> = globs.iter().map(|s| g(s)).collect();
        let refs: Vec<&Glob> = globs.iter().collect();
        assert_eq!(globs_intersect(&refs), expected, "{globs:?}");
    }
}

// ---------------------------------------------------------------------------------
// Brute force.

/// Context-value patterns: every non-empty intersection of any of them contains one of
/// their witnesses (`a`, `b`, the empty string), so enumerating witnesses is exhaustive.
const VALUE_GLOBS: &[&str] = &["a", "b", "*", "a*"];
const SERVER_GLOBS: &[&str] = &["srv", "s*", "other"];
const KEYS: &[&str] = &["k1", "k2", "resource", "mcp.server"];

#[derive(Debug, Clone)]
struct GenTerm {
    kind: u8,
    pick: usize,
    key: usize,
}

#[derive(Debug, Clone)]
struct GenRelation {
    kind: u8,
    from: usize,
    to: usize,
    tools: Option<bool>,
    max_risk: Option<u8>,
    within: Option<bool>,
    context: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct Case {
    mode: u8,
    terms: Vec<GenTerm>,
    relations: Vec<GenRelation>,
    req_mode: u8,
    risk: Option<u8>,
    data_classes: Vec<bool>,
    has_tool: bool,
    fixed_k1: Option<usize>,
}

fn value_glob(key: usize, pick: usize) -> &'static str {
    let list = if KEYS.get(key) == Some(&"mcp.server") {
        SERVER_GLOBS
    } else {
        VALUE_GLOBS
    };
    list.get(pick % list.len()).copied().unwrap_or("*")
}

fn term_toml(i: usize, t: &GenTerm) -> String {
    let (kind, pattern) = match t.kind % 6 {
        0 => ("actor", ["ag", "ag*", "x"][t.pick % 3].to_owned()),
        1 => ("action", ["call", "c*", "other"][t.pick % 3].to_owned()),
        2 => ("tool", ["srv/t", "srv/*", "zz"][t.pick % 3].to_owned()),
        3 => ("data_class", ["pii", "p*", "fin"][t.pick % 3].to_owned()),
        4 => ("resource", value_glob(0, t.pick).to_owned()),
        _ => {
            let key = t.key % KEYS.len();
            (
                "context",
                format!("{}={}", KEYS[key], value_glob(key, t.pick)),
            )
        }
    };
    format!("[[terms]]\nid = \"t{i}\"\nkind = \"{kind}\"\nmatch = \"{pattern}\"\n")
}

fn relation_toml(i: usize, r: &GenRelation, n_terms: usize) -> Option<String> {
    // Permits weigh most: they make the interesting cases.
    let kind = match r.kind % 10 {
        0..=3 => "permits",
        4 | 5 => "forbids",
        6 => "requires",
        7 | 8 => "implies",
        _ => "conflicts",
    };
    let (mut from, mut to) = (r.from % n_terms, r.to % n_terms);
    if kind == "implies" {
        // Only from a lower to a higher term: no cycles.
        if from == to {
            return None;
        }
        if from > to {
            std::mem::swap(&mut from, &mut to);
        }
    }
    let mut s = format!(
        "[[relations]]\nid = \"r{i}\"\nkind = \"{kind}\"\nfrom = \"t{from}\"\nto = \"t{to}\"\n"
    );
    let mut when = Vec::new();
    if let Some(any) = r.tools {
        when.push(format!(
            "tools = [\"{}\"]",
            if any { "srv/*" } else { "zz" }
        ));
    }
    if let Some(m) = r.max_risk {
        when.push(format!("max_risk_level = {m}"));
    }
    if let Some(broad) = r.within {
        when.push(format!(
            "data_classes_within = [\"{}\"]",
            if broad { "p*" } else { "fin" }
        ));
    }
    let mut ctx = BTreeMap::new();
    for &(key, pick) in &r.context {
        let key = key % KEYS.len();
        ctx.insert(KEYS[key], value_glob(key, pick));
    }
    if !ctx.is_empty() {
        let entries: Vec<String> = ctx
            .iter()
            .map(|(k, v)| format!("\"{k}\" = \"{v}\""))
            .collect();
        when.push(format!("context = {{ {} }}", entries.join(", ")));
    }
    if !when.is_empty() && kind != "implies" {
        s.push_str("[relations.when]\n");
        for w in when {
            s.push_str(&w);
            s.push('\n');
        }
    }
    Some(s)
}

fn build(case: &Case) -> (CompiledPolicy, ActionRequest) {
    let mut body = String::new();
    for (i, t) in case.terms.iter().enumerate() {
        body.push_str(&term_toml(i, t));
    }
    for (i, r) in case.relations.iter().enumerate() {
        if let Some(s) = relation_toml(i, r, case.terms.len()) {
            body.push_str(&s);
        }
    }
    let mode = ["permissive", "strict", "paranoid"][usize::from(case.mode % 3)];
    let policy = compile(mode, &body);
    let mut req = ActionRequest::new("ag", "call").unwrap();
    if case.has_tool {
        req = req.with_tool("srv/t").unwrap();
    }
    for (dc, on) in ["pii", "fin"].iter().zip(&case.data_classes) {
        if *on {
            req = req.with_data_class(dc).unwrap();
        }
    }
    // Set directly: 0 and 6 reach the evaluator's invalid-risk-level rule.
    req.risk_level = case.risk;
    req.mode = [
        None,
        Some(PolicyMode::Permissive),
        Some(PolicyMode::Strict),
        Some(PolicyMode::Paranoid),
    ][usize::from(case.req_mode % 4)];
    req.context.insert("mcp.server".into(), "srv".into());
    if let Some(v) = case.fixed_k1 {
        req.context
            .insert("k1".into(), ["a", "b", "zz"][v % 3].to_owned());
    }
    (policy, req)
}

/// A value matching `glob`: stars dropped, `?` as `q`.
fn witness(glob: &str) -> String {
    glob.chars()
        .filter(|&c| c != '*')
        .map(|c| if c == '?' { 'q' } else { c })
        .collect()
}

/// Every completion of `req`'s context over the keys the policy can mention: each key
/// `req` does not fix is absent or holds a witness of a pattern, or `zz`.
fn contexts(req: &ActionRequest) -> Vec<BTreeMap<String, String>> {
    let mut values: Vec<String> = VALUE_GLOBS
        .iter()
        .chain(SERVER_GLOBS)
        .map(|g| witness(g))
        .collect();
    values.push("zz".into());
    values.sort();
    values.dedup();
    let mut out = vec![req.context.clone()];
    for key in KEYS.iter().filter(|k| !req.context.contains_key(**k)) {
        let mut next = Vec::with_capacity(out.len() * (values.len() + 1));
        for ctx in &out {
            next.push(ctx.clone());
            for v in &values {
                let mut c = ctx.clone();
                c.insert((*key).to_owned(), v.clone());
                next.push(c);
            }
        }
        out = next;
    }
    out
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let term = (any::<u8>(), 0usize..8, 0usize..8).prop_map(|(kind, pick, key)| GenTerm {
        kind,
        pick,
        key,
    });
    let relation = (
        any::<u8>(),
        0usize..8,
        0usize..8,
        proptest::option::weighted(0.2, any::<bool>()),
        proptest::option::weighted(0.2, 1u8..=5),
        proptest::option::weighted(0.2, any::<bool>()),
        prop::collection::vec((0usize..8, 0usize..8), 0..3),
    )
        .prop_map(
            |(kind, from, to, tools, max_risk, within, context)| GenRelation {
                kind,
                from,
                to,
                tools,
                max_risk,
                within,
                context,
            },
        );
    (
        any::<u8>(),
        prop::collection::vec(term, 1..7),
        prop::collection::vec(relation, 1..7),
        any::<u8>(),
        proptest::option::weighted(0.7, 0u8..=6),
        prop::collection::vec(any::<bool>(), 2),
        proptest::bool::weighted(0.9),
        proptest::option::weighted(0.2, 0usize..3),
    )
        .prop_map(
            |(mode, terms, relations, req_mode, risk, data_classes, has_tool, fixed_k1)| Case {
                mode,
                terms,
                relations,
                req_mode,
                risk,
                data_classes,
                has_tool,
                fixed_k1,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn always_denies_agrees_with_brute_force(case in case_strategy()) {
        let (policy, req) = build(&case);
        let evals: Vec<_> = contexts(&req)
            .into_iter()
            .map(|ctx| {
                let mut r = req.clone();
                r.context = ctx;
                policy.evaluate(&r, RiskInput::default())
            })
            .collect();
        let all_denied = evals.iter().all(|e| e.outcome == Outcome::Denied);
        let some_permit_applies = evals.iter().any(|e| {
            e.trace
                .iter()
                .any(|t| t.kind == RelationKind::Permits && t.applied)
        });
        // Reasons that deny in every context by themselves.
        let first = evals.first().map(|e| e.reasons.clone()).unwrap_or_default();
        let one_reason_everywhere = first.iter().any(|reason| {
            evals
                .iter()
                .all(|e| e.outcome == Outcome::Denied && e.reasons.contains(reason))
                && reason != "no-permit"
        });
        let strict = policy.mode().effective(req.mode) != PolicyMode::Permissive;
        let always = policy.always_denies(&req);

        // Safety: a hidden tool is denied in every context.
        if always {
            prop_assert!(all_denied, "always_denies but some context is not denied");
        }
        // "Could a permit apply in some context" is exact.
        prop_assert_eq!(policy.permit_possible(&req), some_permit_applies);
        // Converse, for what the definition covers: one relation (or an invalid input)
        // denying everywhere, or (strict, paranoid) no permit applying anywhere.
        if one_reason_everywhere || (strict && !some_permit_applies) {
            prop_assert!(always, "every context is denied by one reason or for want of a permit, yet always_denies is false");
        }
    }
}
