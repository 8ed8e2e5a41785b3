//! The policy TOML parser and validator (crates/lexecon-policy, `Policy::parse`) on
//! arbitrary text, then compilation and one fixed request evaluated under every policy
//! that compiled. Nothing panics; a rejected file names at least one error, each with
//! the origin given and a line inside the file; a policy that parses compiles to the
//! same hash twice, and its evaluation names only the policy's own terms and at least
//! one reason. The same text is also tried as a policy test-case file.
#![no_main]

use lexecon_core::{ActionRequest, PolicyMode};
use lexecon_policy::{CompiledPolicy, Diagnostic, Policy, RiskInput, parse_cases, run_cases};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.toml";

fn check_diagnostics(source: &str, diagnostics: &[Diagnostic]) {
    // One past the last line: an error at the very end of a file ending in '\n'.
    let lines = u32::try_from(source.split('\n').count()).unwrap_or(u32::MAX);
    for d in diagnostics {
        assert!(!d.message.is_empty(), "a diagnostic without a message");
        assert_eq!(d.origin, ORIGIN);
        assert!(
            d.line <= lines,
            "diagnostic at line {} of a {lines}-line file: {}",
            d.line,
            d.message
        );
    }
}

fn requests() -> Vec<ActionRequest> {
    let mut out = Vec::new();
    if let Ok(r) = ActionRequest::new("ai_agent:customer_service", "read:customer_data")
        .and_then(|r| r.with_tool("database_query"))
        .and_then(|r| r.with_data_class("pii"))
        .and_then(|r| r.with_risk_level(2))
        .and_then(|r| r.with_context("region", "eu"))
    {
        out.push(r);
    }
    if let Ok(r) = ActionRequest::new("ai_agent:assistant", "delete:customer_records")
        .map(|r| r.with_mode(PolicyMode::Paranoid))
    {
        out.push(r);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(source, ORIGIN) {
        Err(diagnostics) => {
            assert!(
                diagnostics.iter().any(Diagnostic::is_error),
                "a policy rejected without an error: {diagnostics:?}"
            );
            check_diagnostics(source, &diagnostics);
        }
        Ok((policy, warnings)) => {
            assert!(!warnings.iter().any(Diagnostic::is_error));
            check_diagnostics(source, &warnings);
            let compiled = CompiledPolicy::new(&policy);
            assert_eq!(compiled.term_count(), policy.terms().len());
            assert_eq!(compiled.relation_count(), policy.relations().len());
            let (again, _) = Policy::parse(source, ORIGIN).expect("a policy parses twice");
            assert_eq!(CompiledPolicy::new(&again).hash(), compiled.hash());
            for request in requests() {
                for score in [None, Some(0), Some(79), Some(80), Some(100), Some(101)] {
                    let risk = RiskInput {
                        score,
                        escalation_threshold: 80,
                    };
                    let evaluation = compiled.evaluate(&request, risk);
                    assert!(
                        !evaluation.reasons.is_empty(),
                        "a decision without a reason"
                    );
                    assert!(!evaluation.reasoning.is_empty());
                    for term in &evaluation.matched_terms {
                        assert!(
                            policy.terms().iter().any(|t| t.id() == term),
                            "matched term {term} is not in the policy"
                        );
                    }
                }
            }
            if let Ok(cases) = parse_cases(source, ORIGIN) {
                std::hint::black_box(run_cases(&compiled, &cases));
            }
        }
    }
    if let Err(diagnostics) = parse_cases(source, ORIGIN) {
        check_diagnostics(source, &diagnostics);
    }
});
