//! A naive reference evaluator written straight from the outcome rules, and property
//! tests comparing the compiled evaluator with it on random policies and requests.

use std::collections::BTreeSet;

use lexecon_core::{ActionRequest, Outcome, PolicyMode};
use proptest::prelude::*;

use crate::{CompiledPolicy, Glob, Policy, RelationKind, RiskInput, TermKind, When};

/// Full-match glob by plain recursion: `*` any run, `?` one character.
fn naive_glob(p: &[char], v: &[char]) -> bool {
    match p.split_first() {
        None => v.is_empty(),
        Some(('*', rest)) => (0..=v.len()).any(|i| naive_glob(rest, &v[i..])),
        Some(('?', rest)) => !v.is_empty() && naive_glob(rest, &v[1..]),
        Some((c, rest)) => v.first() == Some(c) && naive_glob(rest, &v[1..]),
    }
}

fn glob(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    naive_glob(&p, &v)
}

fn matches_directly(kind: TermKind, pattern: &str, req: &ActionRequest) -> bool {
    match kind {
        TermKind::Actor => glob(pattern, req.actor.as_str()),
        TermKind::Action => glob(pattern, req.action.as_str()),
        TermKind::Tool => req.tool.as_ref().is_some_and(|t| glob(pattern, t.as_str())),
        TermKind::DataClass => req.data_classes.iter().any(|d| glob(pattern, d.as_str())),
        TermKind::Resource => req
            .context
            .get("resource")
            .is_some_and(|r| glob(pattern, r)),
        TermKind::Context => {
            let (key, value) = pattern.split_once('=').unwrap();
            req.context.get(key).is_some_and(|v| glob(value, v))
        }
    }
}

fn when_holds(w: &When, req: &ActionRequest) -> bool {
    let tools = w.tools().is_none_or(|tools| {
        req.tool
            .as_ref()
            .is_some_and(|t| tools.iter().any(|p| glob(p, t.as_str())))
    });
    let risk = w
        .max_risk_level()
        .is_none_or(|max| req.risk_level.is_some_and(|l| l <= max));
    let dcs = w.data_classes_within().is_none_or(|within| {
        req.data_classes
            .iter()
            .all(|d| within.iter().any(|p| glob(p, d.as_str())))
    });
    let ctx = w
        .context()
        .iter()
        .all(|(k, p)| req.context.get(k).is_some_and(|v| glob(p, v)));
    tools && risk && dcs && ctx
}

/// What the reference decides: outcome, mode, sorted reasons, sorted matched terms and
/// the sorted ids of the applicable permits.
#[derive(Debug, PartialEq)]
struct Decision {
    outcome: Outcome,
    mode: PolicyMode,
    reasons: Vec<String>,
    matched: Vec<String>,
    permits: Vec<String>,
}

fn reference(policy: &Policy, req: &ActionRequest, risk: RiskInput) -> Decision {
    let mode = policy.mode().effective(req.mode);
    // Matched terms: direct matches, then `implies` to a fixpoint.
    let mut matched: BTreeSet<&str> = policy
        .terms()
        .iter()
        .filter(|t| matches_directly(t.kind(), t.pattern(), req))
        .map(|t| t.id())
        .collect();
    loop {
        let before = matched.len();
        for r in policy.relations() {
            if r.kind() == RelationKind::Implies && matched.contains(r.from()) {
                matched.insert(r.to());
            }
        }
        if matched.len() == before {
            break;
        }
    }
    let applies = |r: &crate::Relation| {
        matched.contains(r.from()) && matched.contains(r.to()) && when_holds(r.when(), req)
    };
    let mut denials: Vec<String> = Vec::new();
    let mut permits: Vec<String> = Vec::new();
    for r in policy.relations() {
        match r.kind() {
            RelationKind::Forbids | RelationKind::Conflicts if applies(r) => {
                denials.push(r.id().to_owned())
            }
            RelationKind::Requires
                if matched.contains(r.from())
                    && when_holds(r.when(), req)
                    && !matched.contains(r.to()) =>
            {
                denials.push(r.id().to_owned())
            }
            RelationKind::Permits if applies(r) => permits.push(r.id().to_owned()),
            _ => {}
        }
    }
    denials.sort();
    permits.sort();
    let matched: Vec<String> = matched.into_iter().map(str::to_owned).collect();
    let decision = |outcome, reasons: Vec<String>| Decision {
        outcome,
        mode,
        reasons,
        matched: matched.clone(),
        permits: permits.clone(),
    };
    if mode == PolicyMode::Paranoid && req.tool.is_none() {
        denials.push("paranoid-no-tool".to_owned());
    }
    if !denials.is_empty() {
        return decision(Outcome::Denied, denials);
    }
    if mode != PolicyMode::Permissive && permits.is_empty() {
        return decision(Outcome::Denied, vec!["no-permit".to_owned()]);
    }
    if mode == PolicyMode::Paranoid {
        let mut esc = Vec::new();
        if req.risk_level.is_some_and(|l| l >= 4) {
            esc.push("paranoid-risk-level".to_owned());
        }
        if risk.score.is_some_and(|s| s >= risk.escalation_threshold) {
            esc.push("paranoid-risk-score".to_owned());
        }
        if !esc.is_empty() {
            return decision(Outcome::Escalated, esc);
        }
    }
    decision(Outcome::Approved, permits.clone())
}

// Small alphabets, so random patterns and values collide often.
const VALUES: &[&str] = &["a", "b", "ab", "a:b", "ba", "aab"];
const PATTERNS: &[&str] = &[
    "a", "b", "ab", "a:b", "*", "a*", "*b", "?", "a?", "?b", "*:*", "a*b", "*a*",
];
const KINDS: &[&str] = &[
    "actor",
    "action",
    "tool",
    "data_class",
    "resource",
    "context",
];
const CTX_KEYS: &[&str] = &["k", "resource"];
/// Permits weigh triple, so enough random requests get approved (or escalated).
const RELATION_KINDS: &[&str] = &[
    "permits",
    "forbids",
    "requires",
    "implies",
    "conflicts",
    "permits",
    "permits",
];

fn pick<'a>(list: &'a [&'a str], i: usize) -> &'a str {
    list[i % list.len()]
}

#[derive(Debug, Clone)]
struct GenRelation {
    kind: usize,
    from: usize,
    to: usize,
    tools: Option<Vec<usize>>,
    max_risk: Option<u8>,
    dcs: Option<Vec<usize>>,
    ctx: Option<(usize, usize)>,
}

fn gen_relation() -> impl Strategy<Value = GenRelation> {
    (
        0usize..RELATION_KINDS.len(),
        0usize..64,
        0usize..64,
        proptest::option::weighted(0.3, proptest::collection::vec(0usize..64, 0..3)),
        proptest::option::weighted(0.3, 1u8..=5),
        proptest::option::weighted(0.3, proptest::collection::vec(0usize..64, 0..3)),
        proptest::option::weighted(0.2, (0usize..64, 0usize..64)),
    )
        .prop_map(|(kind, from, to, tools, max_risk, dcs, ctx)| GenRelation {
            kind,
            from,
            to,
            tools,
            max_risk,
            dcs,
            ctx,
        })
}

/// A random valid policy file. `implies` only points from a term to a later one, so
/// there is never a cycle.
fn policy_source(mode: usize, terms: &[(usize, usize, usize)], rels: &[GenRelation]) -> String {
    let mut s = format!(
        "[policy]\nname = \"gen\"\nversion = \"1\"\nmode = \"{}\"\n",
        pick(&["permissive", "strict", "paranoid"], mode)
    );
    for (i, &(kind, pat, key)) in terms.iter().enumerate() {
        let kind = pick(KINDS, kind);
        let pattern = if kind == "context" {
            format!("{}={}", pick(CTX_KEYS, key), pick(PATTERNS, pat))
        } else {
            pick(PATTERNS, pat).to_owned()
        };
        s += &format!("[[terms]]\nid = \"t{i}\"\nkind = \"{kind}\"\nmatch = \"{pattern}\"\n");
    }
    let n = terms.len();
    for (i, r) in rels.iter().enumerate() {
        let kind = pick(RELATION_KINDS, r.kind);
        let (mut from, mut to) = (r.from % n, r.to % n);
        if kind == "implies" {
            if from == to {
                continue;
            }
            if from > to {
                std::mem::swap(&mut from, &mut to);
            }
        }
        s += &format!(
            "[[relations]]\nid = \"r{i}\"\nkind = \"{kind}\"\nfrom = \"t{from}\"\nto = \"t{to}\"\n"
        );
        if kind == "implies" {
            continue;
        }
        let list = |l: &Vec<usize>| {
            l.iter()
                .map(|&p| format!("\"{}\"", pick(PATTERNS, p)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(tools) = &r.tools {
            s += &format!("when.tools = [{}]\n", list(tools));
        }
        if let Some(m) = r.max_risk {
            s += &format!("when.max_risk_level = {m}\n");
        }
        if let Some(dcs) = &r.dcs {
            s += &format!("when.data_classes_within = [{}]\n", list(dcs));
        }
        if let Some((k, p)) = r.ctx {
            s += &format!(
                "when.context = {{ {} = \"{}\" }}\n",
                pick(CTX_KEYS, k),
                pick(PATTERNS, p)
            );
        }
    }
    s
}

#[derive(Debug, Clone)]
struct GenRequest {
    actor: usize,
    action: usize,
    tool: Option<usize>,
    dcs: Vec<usize>,
    risk: Option<u8>,
    mode: Option<usize>,
    ctx: Vec<(usize, usize)>,
    score: Option<u8>,
    threshold: u8,
}

fn gen_request() -> impl Strategy<Value = GenRequest> {
    (
        (0usize..64, 0usize..64, proptest::option::of(0usize..64)),
        proptest::collection::vec(0usize..64, 0..3),
        proptest::option::of(1u8..=5),
        proptest::option::of(0usize..3),
        proptest::collection::vec((0usize..64, 0usize..64), 0..3),
        proptest::option::of(0u8..=100),
        0u8..=100,
    )
        .prop_map(
            |((actor, action, tool), dcs, risk, mode, ctx, score, threshold)| GenRequest {
                actor,
                action,
                tool,
                dcs,
                risk,
                mode,
                ctx,
                score,
                threshold,
            },
        )
}

fn build_request(g: &GenRequest) -> (ActionRequest, RiskInput) {
    let mut req = ActionRequest::new(pick(VALUES, g.actor), pick(VALUES, g.action)).unwrap();
    if let Some(t) = g.tool {
        req = req.with_tool(pick(VALUES, t)).unwrap();
    }
    for &d in &g.dcs {
        req = req.with_data_class(pick(VALUES, d)).unwrap();
    }
    req.risk_level = g.risk;
    req.mode = g.mode.map(|m| PolicyMode::ALL[m]);
    for &(k, v) in &g.ctx {
        req = req
            .with_context(pick(CTX_KEYS, k), pick(VALUES, v))
            .unwrap();
    }
    let risk = RiskInput {
        score: g.score,
        escalation_threshold: g.threshold,
    };
    (req, risk)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        if std::env::var_os("RUN_SLOW_TESTS").is_some() { 5000 } else { 500 }
    ))]

    #[test]
    fn compiled_evaluator_agrees_with_the_reference(
        mode in 0usize..3,
        terms in proptest::collection::vec((0usize..6, 0usize..64, 0usize..2), 1..8),
        rels in proptest::collection::vec(gen_relation(), 0..10),
        requests in proptest::collection::vec(gen_request(), 1..8),
    ) {
        let src = policy_source(mode, &terms, &rels);
        let (policy, _warnings) = Policy::parse(&src, "gen.toml")
            .map_err(|d| TestCaseError::fail(format!("{d:?}\n{src}")))?;
        let compiled = CompiledPolicy::new(&policy);
        for g in &requests {
            let (req, risk) = build_request(g);
            let want = reference(&policy, &req, risk);
            let got = compiled.evaluate(&req, risk);
            prop_assert_eq!(got.outcome, want.outcome, "{:?}\n{}", req, src);
            prop_assert_eq!(got.mode, want.mode);
            prop_assert_eq!(&got.reasons, &want.reasons, "{:?}\n{}", req, src);
            prop_assert_eq!(&got.matched_terms, &want.matched, "{:?}\n{}", req, src);
            // Strict and paranoid never approve without an applicable permit, and the
            // trace shows one.
            if got.mode >= PolicyMode::Strict && got.outcome == Outcome::Approved {
                prop_assert!(!want.permits.is_empty());
                prop_assert!(got
                    .trace
                    .iter()
                    .any(|t| t.kind == RelationKind::Permits && t.applied));
            }
            // A stricter requested mode never turns a denial into an approval.
            for &m in PolicyMode::ALL {
                let m = req.mode.map_or(m, |r| r.max(m));
                let tighter = compiled.evaluate(&req.clone().with_mode(m), risk);
                if got.outcome != Outcome::Approved {
                    prop_assert_ne!(tighter.outcome, Outcome::Approved);
                }
            }
        }
    }

    #[test]
    fn compiled_glob_agrees_with_naive_matching(
        pattern in "[ab:*?]{1,8}",
        value in "[ab:]{0,8}",
    ) {
        prop_assert_eq!(Glob::new(&pattern).unwrap().matches(&value), glob(&pattern, &value));
    }
}
