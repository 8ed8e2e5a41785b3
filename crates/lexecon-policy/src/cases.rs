//! Policy test files: cases of a request and its expected outcome, and their runner.

use std::collections::BTreeMap;
use std::fmt;

use lexecon_core::{ActionRequest, Outcome, PolicyMode, RequestError};
use serde::Deserialize;
use toml::Spanned;

use crate::compiled::{CompiledPolicy, Evaluation, RiskInput};
use crate::model::{Diagnostic, Locator, Severity};
use crate::parse::toml_message;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCases {
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    actor: String,
    action: String,
    tool: Option<String>,
    #[serde(default)]
    data_classes: Vec<String>,
    risk_level: Option<u32>,
    mode: Option<PolicyMode>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    risk_score: Option<u8>,
    expect: Outcome,
    reasons: Option<Vec<String>>,
}

/// One case of a policy test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The case's name, as printed by the runner.
    pub name: String,
    /// The request to evaluate.
    pub request: ActionRequest,
    /// The risk input (`risk_score` in the file; default threshold 80).
    pub risk: RiskInput,
    /// The expected outcome.
    pub expect: Outcome,
    /// When given, exactly these reasons are expected, in any order.
    pub reasons: Option<Vec<String>>,
    /// The line the case starts on (0 when unknown).
    pub line: u32,
}

fn build_request(c: &RawCase) -> Result<ActionRequest, RequestError> {
    let mut req = ActionRequest::new(&c.actor, &c.action)?;
    if let Some(tool) = &c.tool {
        req = req.with_tool(tool)?;
    }
    for dc in &c.data_classes {
        req = req.with_data_class(dc)?;
    }
    if let Some(level) = c.risk_level {
        req = req.with_risk_level(level)?;
    }
    for (k, v) in &c.context {
        req = req.with_context(k, v)?;
    }
    if let Some(mode) = c.mode {
        req = req.with_mode(mode);
    }
    Ok(req)
}

/// Parses a policy test file (`[[case]]` tables).
///
/// Returns every problem found: a TOML or shape error stops at the first; then each
/// case whose request is invalid (an empty actor, a risk level outside 1..5, ...) is
/// reported at the case's line.
pub fn parse_cases(source: &str, origin: &str) -> Result<Vec<TestCase>, Vec<Diagnostic>> {
    let loc = Locator::new(source, origin);
    let mut unknown = crate::keys::unknown_keys(source, &crate::keys::CASES_FILE, &loc);
    if !unknown.is_empty() {
        unknown.sort_by_key(|d| (d.line, d.column));
        return Err(unknown);
    }
    let raw: RawCases = toml::from_str(source)
        .map_err(|e| vec![loc.at(Severity::Error, e.span(), toml_message(&e))])?;
    let mut cases = Vec::with_capacity(raw.case.len());
    let mut diags = Vec::new();
    for c in raw.case {
        let span = c.span();
        let (line, _) = loc.line_col(span.start);
        let c = c.into_inner();
        match build_request(&c) {
            Ok(request) => cases.push(TestCase {
                name: c.name,
                request,
                risk: RiskInput {
                    score: c.risk_score,
                    ..RiskInput::default()
                },
                expect: c.expect,
                reasons: c.reasons,
                line,
            }),
            Err(e) => diags.push(loc.error(span, format!("case {:?}: {e}", c.name))),
        }
    }
    if diags.is_empty() {
        Ok(cases)
    } else {
        Err(diags)
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Whether outcome (and reasons, when given) were as expected.
    pub passed: bool,
    /// The expected outcome.
    pub expected: Outcome,
    /// The expected reasons, when the case gives them.
    pub expected_reasons: Option<Vec<String>>,
    /// What the policy actually said.
    pub actual: Evaluation,
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed {
            return write!(f, "ok {}", self.name);
        }
        write!(f, "FAILED {}: expected {}", self.name, self.expected)?;
        if let Some(reasons) = &self.expected_reasons {
            write!(f, " [{}]", reasons.join(", "))?;
        }
        write!(
            f,
            ", got {} [{}]",
            self.actual.outcome,
            self.actual.reasons.join(", ")
        )
    }
}

/// The results of a test file.
///
/// Displays as one line per case (`ok NAME` or `FAILED NAME: expected ..., got ...`)
/// and a final line `N passed, M failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// One result per case, in file order.
    pub results: Vec<CaseResult>,
}

impl TestReport {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            writeln!(f, "{r}")?;
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Runs every case against `policy`.
pub fn run_cases(policy: &CompiledPolicy, cases: &[TestCase]) -> TestReport {
    let results = cases
        .iter()
        .map(|case| {
            let actual = policy.evaluate(&case.request, case.risk);
            let reasons_ok = case.reasons.as_ref().is_none_or(|expected| {
                let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
                let mut got: Vec<&str> = actual.reasons.iter().map(String::as_str).collect();
                want.sort_unstable();
                got.sort_unstable();
                want == got
            });
            CaseResult {
                name: case.name.clone(),
                passed: actual.outcome == case.expect && reasons_ok,
                expected: case.expect,
                expected_reasons: case.reasons.clone(),
                actual,
            }
        })
        .collect();
    TestReport { results }
}
