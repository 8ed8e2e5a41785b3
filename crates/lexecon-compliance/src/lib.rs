//! Compliance mapping.
//!
//! Owns control catalogs (SOC 2, ISO/IEC 27001, GDPR, HIPAA, PCI DSS, NIST CSF, EU AI
//! Act), the mapping of facts and registered evidence to controls, gap analysis, the EU
//! AI Act Annex IV technical documentation and the reports. Pure: it reads a snapshot of
//! facts the engine gathers ([`facts::Facts`]) and does no IO, reads no clock and draws
//! no randomness (time is [`facts::Facts::now`]).
//!
//! Catalogs are data files (`catalogs/<framework>.toml`) with the frameworks' real control
//! identifiers and our own short titles; each control names the checks ([`Check`]) whose
//! results make its status. `docs/compliance.md` explains every check.

mod catalog;
mod checks;
pub mod facts;
mod html;
mod oscal;
mod report;
mod techdoc;

use serde::{Deserialize, Serialize};

pub use checks::Check;
pub use facts::Facts;
pub use report::{Report, ReportFormat, report};
pub use techdoc::{TechDoc, technical_documentation};

use lexecon_core::Timestamp;

/// A framework we map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Framework {
    /// Its id (`soc2`, `iso27001`, `gdpr`, `hipaa`, `pci_dss`, `nist_csf`, `eu_ai_act`).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The edition the catalog maps.
    pub version: String,
    /// How many controls the catalog maps.
    pub control_count: u32,
}

/// Every framework, in the order soc2, iso27001, gdpr, hipaa, pci_dss, nist_csf, eu_ai_act.
pub fn frameworks() -> Vec<Framework> {
    catalog::catalogs()
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .map(|c| Framework {
            id: c.id.clone(),
            name: c.name.clone(),
            version: c.version.clone(),
            control_count: u32::try_from(c.controls.len()).unwrap_or(u32::MAX),
        })
        .collect()
}

/// A control's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    /// The facts show the control holds.
    Satisfied,
    /// Some of what the control needs holds.
    Partial,
    /// The facts show the control does not hold.
    NotSatisfied,
    /// The control does not apply (it does not count toward coverage).
    NotApplicable,
}

impl ControlStatus {
    /// `satisfied`, `partial`, `not_satisfied` or `not_applicable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::Satisfied => "satisfied",
            ControlStatus::Partial => "partial",
            ControlStatus::NotSatisfied => "not_satisfied",
            ControlStatus::NotApplicable => "not_applicable",
        }
    }

    /// For people: `Satisfied`, `Partial`, `Not satisfied`, `Not applicable`.
    pub fn label(self) -> &'static str {
        match self {
            ControlStatus::Satisfied => "Satisfied",
            ControlStatus::Partial => "Partial",
            ControlStatus::NotSatisfied => "Not satisfied",
            ControlStatus::NotApplicable => "Not applicable",
        }
    }
}

/// A reference to what a status rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// `config`, `ledger`, `verification`, `evidence`, `hold` or `fact`.
    pub kind: String,
    /// A config key, `ledger:<index>`, an evidence id (`sha256:...`), a hold id, or the fact's name.
    pub reference: String,
    /// The value or what it shows.
    pub detail: String,
}

/// One control's evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResult {
    /// Framework id.
    pub framework: String,
    /// The framework's control identifier.
    pub control_id: String,
    /// Our short title.
    pub title: String,
    /// The checks that decided it, by name.
    pub checks: Vec<String>,
    /// Its status.
    pub status: ControlStatus,
    /// One sentence with the facts behind the status.
    pub why: String,
    /// What the status rests on.
    pub evidence: Vec<EvidenceRef>,
    /// What to configure or do; empty when satisfied.
    pub remediation: String,
}

/// One framework's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkStatus {
    /// Framework id.
    pub framework: String,
    /// Display name.
    pub name: String,
    /// The edition mapped.
    pub version: String,
    /// Every control, in catalog order.
    pub controls: Vec<ControlResult>,
    /// Satisfied counts 1, partial 0.5, over applicable controls, as a percentage
    /// (one decimal).
    pub coverage_percent: f64,
    /// `Facts::now` of the evaluation.
    pub evaluated_at: Timestamp,
}

impl FrameworkStatus {
    /// How many controls have `status`.
    pub fn count(&self, status: ControlStatus) -> usize {
        self.controls.iter().filter(|c| c.status == status).count()
    }
}

/// A framework id that is not mapped (or whose catalog is broken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFramework {
    /// The id asked for.
    pub framework: String,
    /// Why it cannot be evaluated, naming the valid ids.
    pub message: String,
}

impl std::fmt::Display for UnknownFramework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UnknownFramework {}

/// Lowercase with spaces removed: how evidence tags and control keys are compared.
fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether evidence tagged `tag` supports control `key` (both `framework:id`): equal, or
/// the tag names a parent (`hipaa:164.312(c)` supports `hipaa:164.312(c)(1)`).
fn tag_supports(tag: &str, key: &str) -> bool {
    let (t, k) = (norm(tag), norm(key));
    t == k
        || k.strip_prefix(t.as_str())
            .is_some_and(|rest| rest.starts_with('('))
}

/// Evaluates every control of `framework` against `facts`.
pub fn evaluate(framework: &str, facts: &Facts) -> Result<FrameworkStatus, UnknownFramework> {
    let cat = match catalog::catalog(framework) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return Err(UnknownFramework {
                framework: framework.to_owned(),
                message: e.clone(),
            });
        }
        None => {
            return Err(UnknownFramework {
                framework: framework.to_owned(),
                message: format!(
                    "unknown framework {framework:?}: expected one of {}",
                    catalog::framework_ids().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    };
    let max_age = facts.config.evidence_max_age_secs;
    let controls: Vec<ControlResult> = cat
        .controls
        .iter()
        .map(|def| {
            let key = format!("{}:{}", cat.id, def.id);
            let tagged = facts
                .evidence
                .iter()
                .filter(|e| !e.erased && e.control_ids.iter().any(|t| tag_supports(t, &key)));
            let (fresh, stale): (Vec<_>, Vec<_>) =
                tagged.partition(|e| checks::age_secs(facts, e.registered_at) <= max_age);
            let ctx = checks::Ctx {
                facts,
                key,
                fresh,
                stale,
                min_days: def.min_days,
                artifact: def.artifact.as_deref(),
            };
            combine(cat.id.as_str(), def, &ctx)
        })
        .collect();
    Ok(FrameworkStatus {
        framework: cat.id.clone(),
        name: cat.name.clone(),
        version: cat.version.clone(),
        coverage_percent: coverage(&controls),
        controls,
        evaluated_at: facts.now,
    })
}

/// Runs a control's checks and combines them: satisfied when all are, not satisfied when
/// none is even partly, partial otherwise.
fn combine(framework: &str, def: &catalog::ControlDef, ctx: &checks::Ctx<'_>) -> ControlResult {
    let outcomes: Vec<checks::Outcome> = def.checks.iter().map(|c| checks::run(*c, ctx)).collect();
    let applicable: Vec<&checks::Outcome> = outcomes
        .iter()
        .filter(|o| o.status != ControlStatus::NotApplicable)
        .collect();
    let status = if applicable.is_empty() {
        ControlStatus::NotApplicable
    } else if applicable
        .iter()
        .all(|o| o.status == ControlStatus::Satisfied)
    {
        ControlStatus::Satisfied
    } else if applicable
        .iter()
        .all(|o| o.status == ControlStatus::NotSatisfied)
    {
        ControlStatus::NotSatisfied
    } else {
        ControlStatus::Partial
    };
    let mut why = outcomes
        .iter()
        .map(|o| o.why.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    why = sentence(&why);
    let mut evidence: Vec<EvidenceRef> = Vec::new();
    for e in outcomes.iter().flat_map(|o| o.evidence.iter()) {
        if !evidence.contains(e) {
            evidence.push(e.clone());
        }
    }
    for e in &ctx.fresh {
        let r = checks::evidence_ref(e, ctx.facts);
        if !evidence.contains(&r) {
            evidence.push(r);
        }
    }
    let remediation = if status == ControlStatus::Satisfied {
        String::new()
    } else {
        let mut parts: Vec<&str> = Vec::new();
        for o in &outcomes {
            if o.status != ControlStatus::Satisfied
                && !o.remediation.is_empty()
                && !parts.contains(&o.remediation.as_str())
            {
                parts.push(&o.remediation);
            }
        }
        sentence(&parts.join("; "))
    };
    ControlResult {
        framework: framework.to_owned(),
        control_id: def.id.clone(),
        title: def.title.clone(),
        checks: def.checks.iter().map(|c| c.name().to_owned()).collect(),
        status,
        why,
        evidence,
        remediation,
    }
}

/// Clauses made a sentence: a final period, and a capital first letter unless the first
/// word is a name that must keep its case (a config key such as `compliance.x`).
fn sentence(clauses: &str) -> String {
    if clauses.is_empty() {
        return String::new();
    }
    let first_word = clauses.split(' ').next().unwrap_or("");
    let mut out = if first_word.chars().all(|c| c.is_ascii_alphabetic()) {
        let mut chars = clauses.chars();
        match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    } else {
        clauses.to_owned()
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Satisfied 1, partial 0.5, over applicable controls, as a percentage with one decimal
/// (100 when nothing applies).
fn coverage(controls: &[ControlResult]) -> f64 {
    let mut points = 0u32;
    let mut applicable = 0u32;
    for c in controls {
        match c.status {
            ControlStatus::Satisfied => {
                points += 2;
                applicable += 1;
            }
            ControlStatus::Partial => {
                points += 1;
                applicable += 1;
            }
            ControlStatus::NotSatisfied => applicable += 1,
            ControlStatus::NotApplicable => {}
        }
    }
    if applicable == 0 {
        return 100.0;
    }
    let pct = f64::from(points) * 50.0 / f64::from(applicable);
    (pct * 10.0).round() / 10.0
}

/// The controls of `status` that are not satisfied: not satisfied first, then partial,
/// each group in catalog order.
pub fn gaps(status: &FrameworkStatus) -> Vec<ControlResult> {
    let mut out: Vec<ControlResult> = status
        .controls
        .iter()
        .filter(|c| c.status == ControlStatus::NotSatisfied)
        .cloned()
        .collect();
    out.extend(
        status
            .controls
            .iter()
            .filter(|c| c.status == ControlStatus::Partial)
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests;
