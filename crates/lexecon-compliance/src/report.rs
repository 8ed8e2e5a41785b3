//! Reports: JSON, Markdown, a self-contained HTML page and OSCAL assessment results.

use std::fmt::Write as _;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::facts::Facts;
use crate::{ControlStatus, FrameworkStatus, gaps};

/// A report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// The statuses as JSON, with `generated_at`.
    Json,
    /// Markdown for people and pull requests.
    Markdown,
    /// One self-contained HTML page (inline CSS, no scripts, nothing fetched).
    Html,
    /// OSCAL 1.2.1 assessment results (JSON).
    Oscal,
}

impl ReportFormat {
    /// `json`, `markdown`, `html` or `oscal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
            ReportFormat::Oscal => "oscal",
        }
    }
}

/// A format name that is not one of `json`, `markdown`, `html`, `oscal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReportFormat(pub String);

impl std::fmt::Display for UnknownReportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown report format {:?}: expected json, markdown, html or oscal",
            self.0
        )
    }
}

impl std::error::Error for UnknownReportFormat {}

impl FromStr for ReportFormat {
    type Err = UnknownReportFormat;

    /// Accepts `json`, `markdown` (or `md`), `html`, `oscal`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(ReportFormat::Json),
            "markdown" | "md" => Ok(ReportFormat::Markdown),
            "html" => Ok(ReportFormat::Html),
            "oscal" => Ok(ReportFormat::Oscal),
            _ => Err(UnknownReportFormat(s.to_owned())),
        }
    }
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The bytes to write.
    pub content: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
    /// A file name for it: `lexecon-compliance[-FRAMEWORK]-YYYYMMDDTHHMMSSZ.EXT`.
    pub file_name: String,
}

/// Renders `statuses` (evaluated from `facts`) in `format`.
pub fn report(statuses: &[FrameworkStatus], facts: &Facts, format: ReportFormat) -> Report {
    let stamp = facts.now.to_jiff().strftime("%Y%m%dT%H%M%SZ").to_string();
    let scope = match statuses {
        [one] => format!("-{}", one.framework),
        _ => String::new(),
    };
    let (content, media_type, ext) = match format {
        ReportFormat::Json => (json(statuses, facts), "application/json", "json"),
        ReportFormat::Markdown => (
            markdown(statuses, facts).into_bytes(),
            "text/markdown; charset=utf-8",
            "md",
        ),
        ReportFormat::Html => (
            crate::html::render(statuses, facts).into_bytes(),
            "text/html; charset=utf-8",
            "html",
        ),
        ReportFormat::Oscal => (
            crate::oscal::render(statuses, facts),
            "application/json",
            "oscal.json",
        ),
    };
    Report {
        content,
        media_type,
        file_name: format!("lexecon-compliance{scope}-{stamp}.{ext}"),
    }
}

fn json(statuses: &[FrameworkStatus], facts: &Facts) -> Vec<u8> {
    let doc = serde_json::json!({
        "generated_at": facts.now,
        "system_name": facts.config.system_name,
        "frameworks": statuses,
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A table cell: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(statuses: &[FrameworkStatus], facts: &Facts) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Compliance report: {}\n\nGenerated {} from live facts (configuration, ledger statistics, oversight records, registered evidence, the last verification).\n",
        facts.config.system_name, facts.now
    );
    md.push_str("| Framework | Coverage | Satisfied | Partial | Not satisfied |\n|---|---:|---:|---:|---:|\n");
    for s in statuses {
        let _ = writeln!(
            md,
            "| {} {} | {}% | {} | {} | {} |",
            cell(&s.name),
            cell(&s.version),
            s.coverage_percent,
            s.count(ControlStatus::Satisfied),
            s.count(ControlStatus::Partial),
            s.count(ControlStatus::NotSatisfied)
        );
    }
    for s in statuses {
        let _ = writeln!(md, "\n## {} ({})\n", s.name, s.version);
        let g = gaps(s);
        if g.is_empty() {
            md.push_str("No gaps.\n");
        } else {
            md.push_str("### Gaps\n\n");
            for c in &g {
                let _ = writeln!(
                    md,
                    "- **{} {}** ({}): {}\n  - What to do: {}",
                    c.control_id,
                    c.title,
                    c.status.label(),
                    c.why,
                    c.remediation
                );
            }
        }
        md.push_str("\n### Controls\n\n| Control | Title | Status | Why | Evidence |\n|---|---|---|---|---|\n");
        for c in &s.controls {
            let ev = c
                .evidence
                .iter()
                .map(|e| format!("`{}` {}", e.reference, e.detail))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                cell(&c.control_id),
                cell(&c.title),
                c.status.label(),
                cell(&c.why),
                cell(&ev)
            );
        }
    }
    md
}
