//! Unit tests of parsing, validation, matching, evaluation, hashing and test files.

mod reference;

use expect_test::{Expect, expect};
use lexecon_core::{ActionRequest, Outcome, PolicyMode};

use crate::{
    CompiledPolicy, Diagnostic, Evaluation, Glob, Policy, RiskInput, STARTER_POLICY, parse_cases,
    run_cases,
};

/// A policy from a mode and the `[[terms]]`/`[[relations]]` part of a file.
fn compile(mode: &str, body: &str) -> CompiledPolicy {
    let src = format!("[policy]\nname = \"t\"\nversion = \"1\"\nmode = \"{mode}\"\n\n{body}");
    match Policy::parse(&src, "t.toml") {
        Ok((p, _)) => CompiledPolicy::new(&p),
        Err(diags) => panic!("{}", render(&diags)),
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// A request from a compact spec: `actor action [tool=T] [dc=A,B] [risk=N] [mode=M]
/// [ctx.KEY=VALUE]...`.
fn request(spec: &str) -> ActionRequest {
    let mut words = spec.split_whitespace();
    let mut req = ActionRequest::new(words.next().unwrap(), words.next().unwrap()).unwrap();
    for w in words {
        let (k, v) = w.split_once('=').unwrap();
        req = match k {
            "tool" => req.with_tool(v).unwrap(),
            "dc" => v
                .split(',')
                .fold(req, |r, dc| r.with_data_class(dc).unwrap()),
            "risk" => req.with_risk_level(v.parse().unwrap()).unwrap(),
            "mode" => req.with_mode(v.parse().unwrap()),
            _ => req
                .with_context(k.strip_prefix("ctx.").unwrap(), v)
                .unwrap(),
        };
    }
    req
}

fn summary(e: &Evaluation) -> String {
    format!(
        "{} ({}) [{}] matched [{}]",
        e.outcome,
        e.mode,
        e.reasons.join(", "),
        e.matched_terms.join(", ")
    )
}

/// Evaluates each request spec (with an optional `score=N` risk score) and compares
/// the one-line summaries with `expect`.
fn check(policy: &CompiledPolicy, requests: &[&str], expect: Expect) {
    let mut out = String::new();
    for spec in requests {
        let (spec, score) = match spec.split_once(" score=") {
            Some((s, n)) => (s, Some(n.parse().unwrap())),
            None => (*spec, None),
        };
        let risk = RiskInput {
            score,
            ..RiskInput::default()
        };
        let e = policy.evaluate(&request(spec), risk);
        out.push_str(&format!("{spec} => {}\n", summary(&e)));
    }
    expect.assert_eq(&out);
}

const SUPPORT: &str = r#"
[[terms]]
id = "support"
kind = "actor"
match = "ai_agent:customer_*"

[[terms]]
id = "read"
kind = "action"
match = "read:*"

[[relations]]
id = "support-reads"
kind = "permits"
from = "support"
to = "read"
"#;

#[test]
fn globs_are_the_core_matcher_re_exported() {
    // Matching rules are tested in lexecon-core; policies and API-key bindings share them.
    let g: lexecon_core::Glob = Glob::new("ai_agent:support_*").unwrap();
    assert!(g.matches("ai_agent:support_bot"));
    assert!(!g.matches("ai_agent:support"));
    let e: lexecon_core::GlobError = Glob::new("").unwrap_err();
    assert_eq!(e, crate::GlobError::Empty);
}

#[test]
fn glob_index_buckets_agree_with_plain_matching() {
    // Prefix-, suffix- and neither-bucketed patterns, and literals, on one attribute.
    let p = compile(
        "permissive",
        r#"
[[terms]]
id = "lit"
kind = "actor"
match = "team1_bot"
[[terms]]
id = "pre"
kind = "actor"
match = "team1_*"
[[terms]]
id = "pre_long"
kind = "actor"
match = "team10_*"
[[terms]]
id = "suf"
kind = "actor"
match = "*_bot"
[[terms]]
id = "mid"
kind = "actor"
match = "*1*"
[[terms]]
id = "any"
kind = "actor"
match = "*"
[[terms]]
id = "q"
kind = "actor"
match = "?eam1_bot"
"#,
    );
    check(
        &p,
        &["team1_bot x", "team10_bot x", "team2_cat x", "team1 x"],
        expect![[r#"
            team1_bot x => approved (permissive) [] matched [any, lit, mid, pre, q, suf]
            team10_bot x => approved (permissive) [] matched [any, mid, pre_long, suf]
            team2_cat x => approved (permissive) [] matched [any]
            team1 x => approved (permissive) [] matched [any, mid]
        "#]],
    );
}

#[test]
fn a_substring_or_prefix_of_a_pattern_does_not_match() {
    let p = compile("strict", SUPPORT);
    check(
        &p,
        &[
            "ai_agent:customer_service read:tickets",
            "actor read:tickets",
            "customer_service read:tickets",
            "ai_agent:customer read:tickets",
            "ai_agent:customer_service readx:tickets",
            "ai_agent:Customer_service read:tickets",
        ],
        expect![[r#"
            ai_agent:customer_service read:tickets => approved (strict) [support-reads] matched [read, support]
            actor read:tickets => denied (strict) [no-permit] matched [read]
            customer_service read:tickets => denied (strict) [no-permit] matched [read]
            ai_agent:customer read:tickets => denied (strict) [no-permit] matched [read]
            ai_agent:customer_service readx:tickets => denied (strict) [no-permit] matched [support]
            ai_agent:Customer_service read:tickets => denied (strict) [no-permit] matched [read]
        "#]],
    );
}

#[test]
fn forbids_override_permits() {
    let p = compile(
        "permissive",
        &format!(
            "{SUPPORT}{}",
            r#"
[[terms]]
id = "secrets"
kind = "data_class"
match = "secret*"

[[relations]]
id = "support-no-secrets"
kind = "forbids"
from = "support"
to = "secrets"
"#
        ),
    );
    check(
        &p,
        &[
            "ai_agent:customer_service read:x dc=pii",
            "ai_agent:customer_service read:x dc=pii,secret_keys",
            "ai_agent:other read:x dc=secret",
        ],
        expect![[r#"
            ai_agent:customer_service read:x dc=pii => approved (permissive) [support-reads] matched [read, support]
            ai_agent:customer_service read:x dc=pii,secret_keys => denied (permissive) [support-no-secrets] matched [read, secrets, support]
            ai_agent:other read:x dc=secret => approved (permissive) [] matched [read, secrets]
        "#]],
    );
}

#[test]
fn requires_denies_when_in_force_and_unmet() {
    let p = compile(
        "strict",
        &format!(
            "{SUPPORT}{}",
            r#"
[[terms]]
id = "pii"
kind = "data_class"
match = "pii"

[[terms]]
id = "approved_db"
kind = "tool"
match = "database_query"

[[relations]]
id = "pii-needs-db"
kind = "requires"
from = "pii"
to = "approved_db"
[relations.when]
context = { region = "eu-*" }
"#
        ),
    );
    check(
        &p,
        &[
            "ai_agent:customer_a read:x dc=pii tool=database_query ctx.region=eu-west",
            "ai_agent:customer_a read:x dc=pii tool=shell ctx.region=eu-west",
            "ai_agent:customer_a read:x dc=pii ctx.region=eu-west",
            "ai_agent:customer_a read:x dc=pii tool=shell ctx.region=us-east",
            "ai_agent:customer_a read:x dc=pii tool=shell",
        ],
        expect![[r#"
            ai_agent:customer_a read:x dc=pii tool=database_query ctx.region=eu-west => approved (strict) [support-reads] matched [approved_db, pii, read, support]
            ai_agent:customer_a read:x dc=pii tool=shell ctx.region=eu-west => denied (strict) [pii-needs-db] matched [pii, read, support]
            ai_agent:customer_a read:x dc=pii ctx.region=eu-west => denied (strict) [pii-needs-db] matched [pii, read, support]
            ai_agent:customer_a read:x dc=pii tool=shell ctx.region=us-east => approved (strict) [support-reads] matched [pii, read, support]
            ai_agent:customer_a read:x dc=pii tool=shell => approved (strict) [support-reads] matched [pii, read, support]
        "#]],
    );
}

#[test]
fn conflicts_deny_when_both_terms_match() {
    let p = compile(
        "permissive",
        r#"
[[terms]]
id = "pii"
kind = "data_class"
match = "pii"
[[terms]]
id = "public"
kind = "data_class"
match = "public"
[[terms]]
id = "export"
kind = "action"
match = "export:*"
[[relations]]
id = "no-mixing"
kind = "conflicts"
from = "pii"
to = "public"
[[relations]]
id = "no-pii-export"
kind = "conflicts"
from = "export"
to = "pii"
"#,
    );
    check(
        &p,
        &[
            "a read:x dc=pii",
            "a read:x dc=public",
            "a read:x dc=public,pii",
            "a export:x dc=pii,public",
            "a export:x dc=public",
        ],
        expect![[r#"
            a read:x dc=pii => approved (permissive) [] matched [pii]
            a read:x dc=public => approved (permissive) [] matched [public]
            a read:x dc=public,pii => denied (permissive) [no-mixing] matched [pii, public]
            a export:x dc=pii,public => denied (permissive) [no-mixing, no-pii-export] matched [export, pii, public]
            a export:x dc=public => approved (permissive) [] matched [export, public]
        "#]],
    );
}

#[test]
fn implies_chains_are_transitive() {
    let p = compile(
        "strict",
        r#"
[[terms]]
id = "lead"
kind = "actor"
match = "ai_agent:lead_*"
[[terms]]
id = "senior"
kind = "actor"
match = "ai_agent:senior_*"
[[terms]]
id = "staff"
kind = "actor"
match = "ai_agent:staff_*"
[[terms]]
id = "delete"
kind = "action"
match = "delete:*"
[[terms]]
id = "write"
kind = "action"
match = "write:*"
[[relations]]
id = "lead-is-senior"
kind = "implies"
from = "lead"
to = "senior"
[[relations]]
id = "senior-is-staff"
kind = "implies"
from = "senior"
to = "staff"
[[relations]]
id = "delete-is-write"
kind = "implies"
from = "delete"
to = "write"
[[relations]]
id = "staff-write"
kind = "permits"
from = "staff"
to = "write"
"#,
    );
    check(
        &p,
        &[
            "ai_agent:lead_1 delete:x",
            "ai_agent:senior_1 write:x",
            "ai_agent:staff_1 delete:x",
            "ai_agent:other delete:x",
        ],
        expect![[r#"
            ai_agent:lead_1 delete:x => approved (strict) [staff-write] matched [delete, lead, senior, staff, write]
            ai_agent:senior_1 write:x => approved (strict) [staff-write] matched [senior, staff, write]
            ai_agent:staff_1 delete:x => approved (strict) [staff-write] matched [delete, staff, write]
            ai_agent:other delete:x => denied (strict) [no-permit] matched [delete, write]
        "#]],
    );
}

/// One permit per `when` condition, so each can be seen to hold or fail alone.
#[test]
fn every_when_condition_including_missing_attributes() {
    let p = compile(
        "strict",
        r#"
[[terms]]
id = "a"
kind = "actor"
match = "a"
[[terms]]
id = "tools"
kind = "action"
match = "tools"
[[terms]]
id = "risk"
kind = "action"
match = "risk"
[[terms]]
id = "dcs"
kind = "action"
match = "dcs"
[[terms]]
id = "ctx"
kind = "action"
match = "ctx"
[[relations]]
id = "p-tools"
kind = "permits"
from = "a"
to = "tools"
when.tools = ["database_query", "crm_*"]
[[relations]]
id = "p-risk"
kind = "permits"
from = "a"
to = "risk"
when.max_risk_level = 3
[[relations]]
id = "p-dcs"
kind = "permits"
from = "a"
to = "dcs"
when.data_classes_within = ["pii", "fin*"]
[[relations]]
id = "p-ctx"
kind = "permits"
from = "a"
to = "ctx"
when.context = { region = "eu-*", tier = "gold" }
"#,
    );
    check(
        &p,
        &[
            "a tools tool=database_query",
            "a tools tool=crm_search",
            "a tools tool=crm",
            "a tools",
            "a risk risk=3",
            "a risk risk=1",
            "a risk risk=4",
            "a risk",
            "a dcs dc=pii,financial",
            "a dcs",
            "a dcs dc=pii,health",
            "a ctx ctx.region=eu-west ctx.tier=gold",
            "a ctx ctx.region=us-east ctx.tier=gold",
            "a ctx ctx.region=eu-west",
            "a ctx ctx.tier=gold ctx.region=eu-",
        ],
        expect![[r#"
            a tools tool=database_query => approved (strict) [p-tools] matched [a, tools]
            a tools tool=crm_search => approved (strict) [p-tools] matched [a, tools]
            a tools tool=crm => denied (strict) [no-permit] matched [a, tools]
            a tools => denied (strict) [no-permit] matched [a, tools]
            a risk risk=3 => approved (strict) [p-risk] matched [a, risk]
            a risk risk=1 => approved (strict) [p-risk] matched [a, risk]
            a risk risk=4 => denied (strict) [no-permit] matched [a, risk]
            a risk => denied (strict) [no-permit] matched [a, risk]
            a dcs dc=pii,financial => approved (strict) [p-dcs] matched [a, dcs]
            a dcs => approved (strict) [p-dcs] matched [a, dcs]
            a dcs dc=pii,health => denied (strict) [no-permit] matched [a, dcs]
            a ctx ctx.region=eu-west ctx.tier=gold => approved (strict) [p-ctx] matched [a, ctx]
            a ctx ctx.region=us-east ctx.tier=gold => denied (strict) [no-permit] matched [a, ctx]
            a ctx ctx.region=eu-west => denied (strict) [no-permit] matched [a, ctx]
            a ctx ctx.tier=gold ctx.region=eu- => approved (strict) [p-ctx] matched [a, ctx]
        "#]],
    );
}

#[test]
fn every_term_kind_matches_its_attribute() {
    let p = compile(
        "permissive",
        r#"
[[terms]]
id = "t_actor"
kind = "actor"
match = "x"
[[terms]]
id = "t_action"
kind = "action"
match = "x"
[[terms]]
id = "t_tool"
kind = "tool"
match = "x"
[[terms]]
id = "t_dc"
kind = "data_class"
match = "x"
[[terms]]
id = "t_resource"
kind = "resource"
match = "db/*"
[[terms]]
id = "t_ctx"
kind = "context"
match = "region=eu-*"
[[terms]]
id = "t_ctx_any"
kind = "context"
match = "volume=*"
"#,
    );
    check(
        &p,
        &[
            "x y",
            "y x",
            "y y tool=x",
            "y y dc=a,x",
            "y y ctx.resource=db/customers",
            "y y ctx.resource=db",
            "y y ctx.region=eu-west",
            "y y ctx.area=eu-west",
            "y y ctx.volume=",
        ],
        expect![[r#"
            x y => approved (permissive) [] matched [t_actor]
            y x => approved (permissive) [] matched [t_action]
            y y tool=x => approved (permissive) [] matched [t_tool]
            y y dc=a,x => approved (permissive) [] matched [t_dc]
            y y ctx.resource=db/customers => approved (permissive) [] matched [t_resource]
            y y ctx.resource=db => approved (permissive) [] matched []
            y y ctx.region=eu-west => approved (permissive) [] matched [t_ctx]
            y y ctx.area=eu-west => approved (permissive) [] matched []
            y y ctx.volume= => approved (permissive) [] matched [t_ctx_any]
        "#]],
    );
}

#[test]
fn each_mode_and_paranoid_escalation() {
    for mode in ["permissive", "strict", "paranoid"] {
        let p = compile(mode, SUPPORT);
        let mut out = String::new();
        for (spec, score) in [
            ("ai_agent:customer_a read:x tool=db", None),
            ("ai_agent:customer_a read:x", None),
            ("ai_agent:other read:x tool=db", None),
            ("ai_agent:customer_a read:x tool=db risk=3", Some(79)),
            ("ai_agent:customer_a read:x tool=db risk=4", None),
            ("ai_agent:customer_a read:x tool=db risk=5", Some(80)),
            ("ai_agent:customer_a read:x tool=db", Some(80)),
        ] {
            let risk = RiskInput {
                score,
                ..RiskInput::default()
            };
            let e = p.evaluate(&request(spec), risk);
            out.push_str(&format!(
                "{spec} score={score:?} => {} [{}]\n",
                e.outcome,
                e.reasons.join(", ")
            ));
        }
        let expected = match mode {
            "permissive" => expect![[r#"
                ai_agent:customer_a read:x tool=db score=None => approved [support-reads]
                ai_agent:customer_a read:x score=None => approved [support-reads]
                ai_agent:other read:x tool=db score=None => approved []
                ai_agent:customer_a read:x tool=db risk=3 score=Some(79) => approved [support-reads]
                ai_agent:customer_a read:x tool=db risk=4 score=None => approved [support-reads]
                ai_agent:customer_a read:x tool=db risk=5 score=Some(80) => approved [support-reads]
                ai_agent:customer_a read:x tool=db score=Some(80) => approved [support-reads]
            "#]],
            "strict" => expect![[r#"
                ai_agent:customer_a read:x tool=db score=None => approved [support-reads]
                ai_agent:customer_a read:x score=None => approved [support-reads]
                ai_agent:other read:x tool=db score=None => denied [no-permit]
                ai_agent:customer_a read:x tool=db risk=3 score=Some(79) => approved [support-reads]
                ai_agent:customer_a read:x tool=db risk=4 score=None => approved [support-reads]
                ai_agent:customer_a read:x tool=db risk=5 score=Some(80) => approved [support-reads]
                ai_agent:customer_a read:x tool=db score=Some(80) => approved [support-reads]
            "#]],
            _ => expect![[r#"
                ai_agent:customer_a read:x tool=db score=None => approved [support-reads]
                ai_agent:customer_a read:x score=None => denied [paranoid-no-tool]
                ai_agent:other read:x tool=db score=None => denied [no-permit]
                ai_agent:customer_a read:x tool=db risk=3 score=Some(79) => approved [support-reads]
                ai_agent:customer_a read:x tool=db risk=4 score=None => escalated [paranoid-risk-level]
                ai_agent:customer_a read:x tool=db risk=5 score=Some(80) => escalated [paranoid-risk-level, paranoid-risk-score]
                ai_agent:customer_a read:x tool=db score=Some(80) => escalated [paranoid-risk-score]
            "#]],
        };
        expected.assert_eq(&out);
    }
}

#[test]
fn a_request_can_tighten_the_mode_but_never_loosen_it() {
    for policy_mode in PolicyMode::ALL {
        let p = compile(policy_mode.as_str(), SUPPORT);
        for requested in PolicyMode::ALL {
            let req = request("ai_agent:other read:x").with_mode(*requested);
            let e = p.evaluate(&req, RiskInput::default());
            assert_eq!(e.mode, (*policy_mode).max(*requested));
            let approved = e.outcome == Outcome::Approved;
            assert_eq!(
                approved,
                e.mode == PolicyMode::Permissive,
                "{policy_mode} policy, {requested} request: {e:?}"
            );
        }
    }
}

#[test]
fn untrusted_inputs_deny_in_every_mode() {
    for mode in ["permissive", "strict", "paranoid"] {
        let p = compile(mode, SUPPORT);
        let mut req = request("ai_agent:customer_a read:x tool=db");
        req.risk_level = Some(9);
        let e = p.evaluate(&req, RiskInput::default());
        assert_eq!(
            (e.outcome, e.reasons),
            (Outcome::Denied, vec!["invalid-risk-level".to_owned()])
        );
        let req = request("ai_agent:customer_a read:x tool=db");
        let risk = RiskInput {
            score: Some(101),
            escalation_threshold: 80,
        };
        let e = p.evaluate(&req, risk);
        assert_eq!(
            (e.outcome, e.reasons),
            (Outcome::Denied, vec!["invalid-risk-score".to_owned()])
        );
    }
}

#[test]
fn explanation_traces_considered_relations() {
    let p = compile(
        "strict",
        &format!(
            "{SUPPORT}{}",
            r#"
[[terms]]
id = "senior"
kind = "actor"
match = "ai_agent:customer_senior"
[[terms]]
id = "db"
kind = "tool"
match = "database_query"
[[terms]]
id = "delete"
kind = "action"
match = "delete:*"
[[relations]]
id = "senior-is-support"
kind = "implies"
from = "senior"
to = "support"
[[relations]]
id = "support-needs-db"
kind = "requires"
from = "support"
to = "db"
[[relations]]
id = "support-no-delete"
kind = "forbids"
from = "support"
to = "delete"
[[relations]]
id = "support-reads-cheap"
kind = "permits"
from = "support"
to = "read"
when.max_risk_level = 2
"#
        ),
    );
    let req = request("ai_agent:customer_senior read:x tool=database_query risk=3");
    let e = p.evaluate(&req, RiskInput::default());
    let json = serde_json::to_string_pretty(&e).unwrap();
    expect![[r#"
        {
          "outcome": "approved",
          "mode": "strict",
          "reasons": [
            "support-reads"
          ],
          "matched_terms": [
            "db",
            "read",
            "senior",
            "support"
          ],
          "trace": [
            {
              "relation_id": "senior-is-support",
              "kind": "implies",
              "applied": true,
              "why": "request matches senior, so it also counts as matching support"
            },
            {
              "relation_id": "support-needs-db",
              "kind": "requires",
              "applied": true,
              "why": "requirement met: request matches db"
            },
            {
              "relation_id": "support-reads",
              "kind": "permits",
              "applied": true,
              "why": "request matches support and read"
            },
            {
              "relation_id": "support-reads-cheap",
              "kind": "permits",
              "applied": false,
              "why": "when.max_risk_level 2: risk_level 3 is higher"
            }
          ],
          "reasoning": "Approved in strict mode: permitted by support-reads."
        }"#]]
    .assert_eq(&json);
    let e = p.evaluate(
        &request("ai_agent:customer_senior delete:x"),
        RiskInput::default(),
    );
    expect![[r#"
        Denied in strict mode by support-needs-db, support-no-delete.
        support-needs-db: requirement violated: request matches support but not db
        support-no-delete: request matches support and delete
    "#]]
    .assert_eq(&format!(
        "{}\n{}",
        e.reasoning,
        e.trace
            .iter()
            .filter(|t| t.kind != crate::RelationKind::Implies && t.applied)
            .map(|t| format!("{}: {}\n", t.relation_id, t.why))
            .collect::<String>()
    ));
}

#[test]
fn broad_terms_do_not_make_every_request_consider_every_relation() {
    let mut body =
        String::from("[[terms]]\nid = \"agents\"\nkind = \"actor\"\nmatch = \"ai_agent:*\"\n");
    for i in 0..1000 {
        body += &format!(
            "[[terms]]\nid = \"act{i}\"\nkind = \"action\"\nmatch = \"act{i}:*\"\n\
             [[relations]]\nid = \"no-act{i}\"\nkind = \"forbids\"\nfrom = \"agents\"\nto = \"act{i}\"\n"
        );
    }
    let p = compile("permissive", &body);
    let e = p.evaluate(&request("ai_agent:x act7:run"), RiskInput::default());
    assert_eq!(e.reasons, ["no-act7"]);
    let considered: Vec<&str> = e.trace.iter().map(|t| t.relation_id.as_str()).collect();
    assert_eq!(considered, ["no-act7"]);
    let e = p.evaluate(&request("ai_agent:x other:run"), RiskInput::default());
    assert_eq!((e.outcome, e.trace.len()), (Outcome::Approved, 0));
}

#[test]
fn escalation_reasoning_names_every_cause_and_diagnostics_display_without_location() {
    let p = compile("paranoid", SUPPORT);
    let risk = RiskInput {
        score: Some(95),
        escalation_threshold: 90,
    };
    let e = p.evaluate(&request("ai_agent:customer_a read:x tool=db risk=5"), risk);
    expect!["Escalated in paranoid mode: permitted by support-reads, but a person must confirm because of risk level 5 and risk score 95 (threshold 90)."]
        .assert_eq(&e.reasoning);
    let d = Diagnostic {
        severity: crate::Severity::Warning,
        message: "m".to_owned(),
        origin: "o.toml".to_owned(),
        line: 0,
        column: 0,
    };
    assert_eq!(d.to_string(), "o.toml: warning: m");
    assert_eq!(
        Diagnostic {
            line: 3,
            ..d.clone()
        }
        .to_string(),
        "o.toml:3: warning: m"
    );
    assert_eq!(
        Diagnostic {
            line: 3,
            column: 4,
            ..d
        }
        .to_string(),
        "o.toml:3:4: warning: m"
    );
}

fn check_diagnostics(src: &str, expect: Expect) {
    let diags = match Policy::parse(src, "bad.toml") {
        Ok((_, warnings)) => warnings,
        Err(diags) => diags,
    };
    expect.assert_eq(&render(&diags));
}

const HEADER: &str = "[policy]\nname = \"p\"\nversion = \"1\"\nmode = \"strict\"\n";

#[test]
fn validation_reports_every_problem_with_its_location() {
    check_diagnostics(
        &format!(
            "{HEADER}{}",
            r#"
[[terms]]
id = "a"
kind = "actor"
match = "ai agent"
[[terms]]
id = "a"
kind = "action"
match = ""
[[terms]]
id = "c"
kind = "context"
match = "region"
[[terms]]
id = "r"
kind = "resource"
match = "db/*"
[[relations]]
id = "x"
kind = "permits"
from = "a"
to = "nope"
[relations.when]
max_risk_level = 6
tools = ["db[1]"]
[[relations]]
id = "x"
kind = "forbids"
from = "ghost"
to = "a"
when.max_risk_level = 0
[[relations]]
id = "no-permit"
kind = "implies"
from = "a"
to = "r"
when.tools = ["x"]
[[relations]]
id = "bad id"
kind = "permits"
from = "a"
to = "r"
when.context = { "bad key" = "x" }
"#
        ),
        expect![[r#"
            bad.toml:9:9: error: term "a": invalid match: pattern contains ' ', which no actor can contain (patterns support only `*` and `?` as wildcards; allowed are ASCII letters, digits and . _ - : / @ + =)
            bad.toml:11:6: error: duplicate term id "a"; give each term its own id
            bad.toml:13:9: error: term "a": invalid match: pattern is empty; write the value to match, or `*` for any value
            bad.toml:17:9: error: term "c": invalid match: context term pattern "region" has no `=`; write KEY=VALUE_GLOB, e.g. "region=eu-*"
            bad.toml:26:6: error: relation "x": `to` names unknown term "nope"; declare it under [[terms]] or fix the spelling
            bad.toml:28:18: error: relation "x": `when.max_risk_level` is 6; it must be between 1 and 5
            bad.toml:29:10: error: relation "x": invalid pattern in `when.tools`: pattern contains '[', which no tool can contain (patterns support only `*` and `?` as wildcards; allowed are ASCII letters, digits and . _ - : / @ + =)
            bad.toml:31:6: error: duplicate relation id "x"; give each relation its own id
            bad.toml:33:8: error: relation "x": `from` names unknown term "ghost"; declare it under [[terms]] or fix the spelling
            bad.toml:35:23: error: relation "x": `when.max_risk_level` is 0; it must be between 1 and 5
            bad.toml:37:6: error: relation id "no-permit" is reserved for an evaluation reason; choose another id
            bad.toml:41:1: error: relation "no-permit": an implies relation cannot have a `when` (implication holds for every request); put the condition on the relations that use the implied term
            bad.toml:43:6: error: relation id "bad id" contains ' '; ids use ASCII letters, digits and _ - . :
            bad.toml:47:18: error: relation "bad id": `when.context`: context key "bad key" contains ' '; keys use ASCII letters, digits and _ - .
        "#]],
    );
}

#[test]
fn implies_cycles_and_identical_permit_forbid_pairs() {
    let terms = r#"
[[terms]]
id = "a"
kind = "actor"
match = "a"
[[terms]]
id = "b"
kind = "actor"
match = "b"
[[terms]]
id = "c"
kind = "action"
match = "c"
"#;
    check_diagnostics(
        &format!(
            "{HEADER}{terms}{}",
            r#"
[[relations]]
id = "ab"
kind = "implies"
from = "a"
to = "b"
[[relations]]
id = "bc"
kind = "implies"
from = "b"
to = "c"
[[relations]]
id = "ca"
kind = "implies"
from = "c"
to = "a"
[[relations]]
id = "self"
kind = "implies"
from = "b"
to = "b"
"#
        ),
        expect![[r#"
            bad.toml:30:6: error: implies cycle: a -> b -> c -> a; a term cannot imply itself, remove one of these relations
            bad.toml:35:6: error: implies cycle: b -> b; a term cannot imply itself, remove one of these relations
        "#]],
    );
    check_diagnostics(
        &format!(
            "{HEADER}{terms}{}",
            r#"
[[relations]]
id = "allow"
kind = "permits"
from = "a"
to = "c"
when.tools = ["x", "y"]
[[relations]]
id = "deny"
kind = "forbids"
from = "a"
to = "c"
when.tools = ["x", "y"]
[[relations]]
id = "deny-narrower"
kind = "forbids"
from = "a"
to = "c"
when.tools = ["x"]
[[relations]]
id = "never"
kind = "permits"
from = "b"
to = "c"
when.tools = []
"#
        ),
        expect![[r#"
            bad.toml:20:6: warning: permits "allow" has the same scope as forbids "deny", so the forbid always wins and the permit has no effect; narrow one of them with `when` or remove one
            bad.toml:42:14: warning: relation "never": `when.tools` is empty, so the relation never applies; remove it or list patterns
        "#]],
    );
}

#[test]
fn shape_errors_are_located() {
    for (src, want) in [
        (
            format!("{HEADER}extra = 1\n"),
            expect![[r#"
                bad.toml:5:1: error: unknown field `extra`, expected one of `name`, `version`, `mode`
            "#]],
        ),
        (
            "[policy]\nname = \"p\"\nversion = \"1\"\nmode = \"lenient\"\n".to_owned(),
            expect![
                "bad.toml:4:8: error: unknown variant `lenient`, expected one of `permissive`, `strict`, `paranoid`\n"
            ],
        ),
        (
            format!("{HEADER}[[terms]]\nid = \"a\"\nkind = \"user\"\nmatch = \"x\"\n"),
            expect![
                "bad.toml:7:8: error: unknown variant `user`, expected one of `actor`, `action`, `tool`, `data_class`, `resource`, `context`\n"
            ],
        ),
        (
            format!(
                "{HEADER}[[relations]]\nid = \"r\"\nkind = \"permits\"\nfrom = \"a\"\nto = \"b\"\nwhen.roles = [\"x\"]\n"
            ),
            expect![
                "bad.toml:10:6: error: unknown field `roles`, expected one of `tools`, `max_risk_level`, `data_classes_within`, `context`\n"
            ],
        ),
        (
            "[policy\n".to_owned(),
            expect!["bad.toml:1:8: error: unclosed table, expected `]`\n"],
        ),
        (
            "[policy]\nname = \"p\"\nversion = \"1\"\n".to_owned(),
            expect!["bad.toml:1:1: error: missing field `mode`\n"],
        ),
    ] {
        check_diagnostics(&src, want);
    }
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    check_diagnostics(
        &format!(
            "{HEADER}author = \"me\"\n{}",
            r#"
[[terms]]
id = "a"
kind = "actor"
matches = "x"
[[relations]]
id = "r"
kind = "permits"
from = "a"
to = "a"
when = { tool = ["x"], context = { any_key = "ok" } }
[[relation]]
id = "typo"
"#
        ),
        expect![[r#"
            bad.toml:5:1: error: unknown field `author`, expected one of `name`, `version`, `mode`
            bad.toml:10:1: error: unknown field `matches`, expected one of `id`, `kind`, `match`, `description`
            bad.toml:16:10: error: unknown field `tool`, expected one of `tools`, `max_risk_level`, `data_classes_within`, `context`
            bad.toml:17:3: error: unknown field `relation`, expected one of `policy`, `terms`, `relations`
        "#]],
    );
    let err = parse_cases(
        "[[case]]\nname = \"x\"\nactor = \"a\"\naction = \"b\"\nexpected = \"denied\"\ntools = \"t\"\n",
        "c.toml",
    )
    .unwrap_err();
    expect![[r#"
        c.toml:5:1: error: unknown field `expected`, expected one of `name`, `actor`, `action`, `tool`, `data_classes`, `risk_level`, `mode`, `context`, `risk_score`, `expect`, `reasons`
        c.toml:6:1: error: unknown field `tools`, expected one of `name`, `actor`, `action`, `tool`, `data_classes`, `risk_level`, `mode`, `context`, `risk_score`, `expect`, `reasons`
    "#]]
    .assert_eq(&render(&err));
}

#[test]
fn hash_ignores_comments_key_order_and_declaration_order() {
    let a = r#"
[policy]
name = "p"
version = "1"
mode = "strict"
[[terms]]
id = "a"
kind = "actor"
match = "x*"
[[terms]]
id = "b"
kind = "action"
match = "y"
[[relations]]
id = "r1"
kind = "permits"
from = "a"
to = "b"
when = { tools = ["t1", "t2"], context = { k = "v", j = "w" } }
[[relations]]
id = "r2"
kind = "forbids"
from = "a"
to = "b"
when.max_risk_level = 2
"#;
    let b = r#"
# the same policy, shuffled and commented
[[relations]]
kind = "forbids"   # deny
id = "r2"
to = "b"
from = "a"
[relations.when]
max_risk_level = 2
[[relations]]
id = "r1"
from = "a"
kind = "permits"
to = "b"
when = { context = { j = "w", k = "v" }, tools = ["t2", "t1", "t1"] }
[[terms]]
match = "y"
kind = "action"
id = "b"
[[terms]]
id = "a"
kind = "actor"
match = "x*"
[policy]
mode = "strict"
version = "1"
name = "p"
"#;
    let hash = |src: &str| CompiledPolicy::new(&Policy::parse(src, "h").unwrap().0).hash_hex();
    assert_eq!(hash(a), hash(b));
    // Any change to what the policy says changes the hash.
    for (from, to) in [
        ("match = \"x*\"", "match = \"x?\""),
        ("mode = \"strict\"", "mode = \"paranoid\""),
        ("version = \"1\"", "version = \"2\""),
        ("max_risk_level = 2", "max_risk_level = 3"),
        ("\"t1\", \"t2\"", "\"t1\""),
        ("j = \"w\"", "j = \"x\""),
        ("kind = \"forbids\"", "kind = \"conflicts\""),
        ("id = \"r2\"", "id = \"r3\""),
    ] {
        assert_ne!(hash(a), hash(&a.replace(from, to)), "{from} -> {to}");
    }
    // The encoding is part of the format: a change here is a new domain tag.
    expect!["3c1b6bbebc8a43f24ccab212a408b27a9a495a7243d441fe81df9d2cad4949da"].assert_eq(&hash(a));
}

#[test]
fn starter_policy_decides_the_readme_examples() {
    let (policy, warnings) = Policy::parse(STARTER_POLICY, "starter_policy.toml").unwrap();
    assert!(warnings.is_empty(), "{}", render(&warnings));
    assert_eq!(policy.mode(), PolicyMode::Strict);
    let p = CompiledPolicy::new(&policy);
    check(
        &p,
        &[
            "ai_agent:customer_service read:customer_data tool=database_query dc=pii",
            "ai_agent:customer_service delete:customer_records tool=database_query",
            "ai_agent:assistant llm:chat tool=openai_api",
            "ai_agent:assistant llm:chat tool=shell",
        ],
        expect![[r#"
            ai_agent:customer_service read:customer_data tool=database_query dc=pii => approved (strict) [support-may-read-customer-data] matched [agents, read_customer_data, support_agents]
            ai_agent:customer_service delete:customer_records tool=database_query => denied (strict) [agents-never-delete] matched [agents, deletions, support_agents]
            ai_agent:assistant llm:chat tool=openai_api => approved (strict) [assistants-may-call-llms] matched [agents, assistants, llm_calls]
            ai_agent:assistant llm:chat tool=shell => denied (strict) [no-permit] matched [agents, assistants, llm_calls]
        "#]],
    );
}

#[test]
fn the_example_policy_passes_its_cases_and_uses_every_relation_kind() {
    let src = include_str!("../../../examples/policies/customer-support.toml");
    let cases = include_str!("../../../examples/policies/customer-support.cases.toml");
    let (policy, warnings) = Policy::parse(src, "customer-support.toml").unwrap();
    assert!(warnings.is_empty(), "{}", render(&warnings));
    for kind in [
        crate::RelationKind::Permits,
        crate::RelationKind::Forbids,
        crate::RelationKind::Requires,
        crate::RelationKind::Implies,
        crate::RelationKind::Conflicts,
    ] {
        assert!(
            policy.relations().iter().any(|r| r.kind() == kind),
            "{kind}"
        );
    }
    let compiled = CompiledPolicy::new(&policy);
    let cases = parse_cases(cases, "cases.toml").unwrap();
    let report = run_cases(&compiled, &cases);
    assert!(report.all_passed(), "{report}");
    assert!(report.passed() >= 10, "{report}");
}

#[test]
fn test_runner_prints_ok_and_failed_lines() {
    let p = compile("strict", SUPPORT);
    let cases = parse_cases(
        r#"
[[case]]
name = "support reads"
actor = "ai_agent:customer_service"
action = "read:customer_data"
tool = "database_query"
data_classes = ["pii"]
risk_level = 2
mode = "strict"
context = { region = "eu-west" }
expect = "approved"
reasons = ["support-reads"]

[[case]]
name = "wrong outcome"
actor = "ai_agent:bot"
action = "read:x"
expect = "approved"

[[case]]
name = "wrong reasons"
actor = "ai_agent:customer_a"
action = "read:x"
expect = "approved"
reasons = ["something-else"]

[[case]]
name = "paranoid escalates on score"
actor = "ai_agent:customer_a"
action = "read:x"
tool = "db"
mode = "paranoid"
risk_score = 90
expect = "escalated"
"#,
        "cases.toml",
    )
    .unwrap();
    let report = run_cases(&p, &cases);
    expect![[r#"
        ok support reads
        FAILED wrong outcome: expected approved, got denied [no-permit]
        FAILED wrong reasons: expected approved [something-else], got approved [support-reads]
        ok paranoid escalates on score
        2 passed, 2 failed"#]]
    .assert_eq(&report.to_string());
    assert_eq!((report.passed(), report.failed()), (2, 2));
}

#[test]
fn test_files_report_bad_cases_with_location() {
    let err = parse_cases(
        "[[case]]\nname = \"x\"\nactor = \"a b\"\naction = \"r\"\nexpect = \"approved\"\n\n[[case]]\nname = \"y\"\nactor = \"a\"\naction = \"r\"\nrisk_level = 7\nexpect = \"denied\"\n[[case]]\nname = \"z\"\nactor = \"a\"\naction = \"r\"\nexpect = \"maybe\"\n",
        "c.toml",
    )
    .unwrap_err();
    expect![[r#"
        c.toml:17:10: error: unknown variant `maybe`, expected one of `approved`, `denied`, `escalated`
    "#]]
    .assert_eq(&render(&err));
    let err = parse_cases(
        "[[case]]\nname = \"x\"\nactor = \"a b\"\naction = \"r\"\nexpect = \"approved\"\n\n[[case]]\nname = \"y\"\nactor = \"a\"\naction = \"r\"\nrisk_level = 7\nexpect = \"denied\"\n",
        "c.toml",
    )
    .unwrap_err();
    expect![[r#"
        c.toml:1:1: error: case "x": actor contains ' ' at byte 1; allowed are ASCII letters, digits and . _ - : / @ + =
        c.toml:7:1: error: case "y": risk_level must be between 1 and 5, got 7
    "#]]
    .assert_eq(&render(&err));
}

#[test]
fn compiled_policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPolicy>();
    let p = compile("strict", SUPPORT);
    assert_eq!((p.term_count(), p.relation_count()), (2, 1));
    assert_eq!(
        (p.name(), p.version(), p.mode()),
        ("t", "1", PolicyMode::Strict)
    );
    assert_eq!(p.hash_hex().len(), 64);
}
