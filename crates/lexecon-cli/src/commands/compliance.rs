//! `lexecon compliance ...`: control status, gaps, the EU AI Act technical documentation
//! and record keeping, legal holds, interventions and reports, through a server's
//! ComplianceService (contract §8).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::compliance_service_client::ComplianceServiceClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// `lexecon compliance ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ComplianceCommand {
    /// Every control of a framework: its status, why, and the coverage in all.
    #[command(after_long_help = "\
Statuses are computed by the server at the time of the call from what it can prove:
its configuration, the ledger (within each control's window), oversight records,
registered evidence, and the age and trust basis of the last full ledger verification.
Nothing sets a status by hand: change the facts and the status follows.

Symbols: ✓ satisfied, ~ partial, ✗ not satisfied, - not applicable.
Frameworks: soc2, iso27001, gdpr, hipaa, pci_dss, nist_csf, eu_ai_act
(`lexecon compliance frameworks` lists them). Needs the auditor role or higher.
Exit 0 whatever the statuses; 2 on any error.

Examples:
  lexecon compliance status --framework soc2
  lexecon compliance status --framework eu_ai_act --json")]
    Status {
        /// The framework id, e.g. soc2 or eu_ai_act.
        #[arg(long, value_name = "ID")]
        framework: String,
        /// Print the controls as JSON (with their evidence).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// The controls of a framework that are not satisfied, with what to do about each.
    #[command(after_long_help = "\
Not satisfied first, then partial. Each gap says why, and its remediation names the
configuration key to set or the thing to do (enroll MFA, run `lexecon verify-ledger`,
assign an oversight role, register evidence). Run it again after acting: the status
comes from the facts, so a remediation done shows at once. Needs the auditor role or
higher. Exit 0 whatever the gaps; 2 on any error.

Examples:
  lexecon compliance gaps --framework soc2
  lexecon compliance gaps --framework gdpr --json")]
    Gaps {
        /// The framework id, e.g. soc2 or eu_ai_act.
        #[arg(long, value_name = "ID")]
        framework: String,
        /// Print the gaps as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// EU AI Act Art. 11: the Annex IV technical documentation, generated from what runs.
    #[command(after_long_help = "\
Generated from the server's configuration, active policy, risk rules, model access
lists and ledger statistics at the time of the call. Prints Markdown, or writes it to
--out FILE; --json prints the same sections as JSON. Set compliance.system_name,
compliance.intended_purpose and compliance.provider in the configuration to fill the
general description. Needs the auditor role or higher.

Examples:
  lexecon compliance tech-doc --out annex-iv.md
  lexecon compliance tech-doc --json")]
    TechDoc {
        /// Write the Markdown (or, with --json, the JSON) to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The JSON form instead of Markdown.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// EU AI Act Art. 12 and 19: how records are kept, the last verification, legal holds.
    #[command(after_long_help = "\
Shows that logging is on, the retention period the deployment commits to
(compliance.log_retention_days, at least 183), the oldest and newest entries, the
entries by kind, the last full verification and its trust basis, and the legal holds.
Needs the auditor role or higher.

Examples:
  lexecon compliance record-keeping
  lexecon compliance record-keeping --json")]
    RecordKeeping {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Legal holds: place, release and list them.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// EU AI Act Art. 14: record a person's intervention on one decision.
    #[command(after_long_help = "\
Kinds:
  disregard  the output was disregarded; recorded only
  reverse    the output was reversed; the decision's capability token is revoked
  override   an override decided instead; --override-id names it (lexecon override create)
  stop       the system was stopped; a halt is placed on the decision's actor
             (end it with `lexecon resume`)
You are recorded as the author. Needs the compliance_officer or admin role.

Examples:
  lexecon compliance intervene dec_01JD5Q8W7M3N4P5R6S7T8V9W0X --kind reverse \\
      --reason 'refund sent to the wrong account'
  lexecon compliance intervene dec_01JD5Q8W7M3N4P5R6S7T8V9W0X --kind stop \\
      --reason 'agent looping on refunds'")]
    Intervene {
        /// The decision (dec_...).
        decision_id: String,
        /// What was done: disregard, reverse, override or stop.
        #[arg(long, value_name = "KIND", value_parser = parse_kind)]
        kind: pb::InterventionKind,
        /// Why (required; recorded in the ledger).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// With --kind override: the override (ovr_...) created for this decision.
        #[arg(long, value_name = "ID")]
        override_id: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// A report for people or tools: JSON, Markdown, a self-contained HTML page, or OSCAL.
    #[command(after_long_help = "\
Without --framework the report covers every framework. html is one file with inline CSS
and no scripts or fetches: coverage per framework, the gaps first with what to do, each
control linked to its evidence; it prints well. oscal is an OSCAL 1.2.1 assessment-results
document (JSON). Without --out the report goes to stdout. Needs the auditor role or higher.

Examples:
  lexecon compliance report --format html --out compliance.html
  lexecon compliance report --framework eu_ai_act --format oscal --out ai-act.oscal.json
  lexecon compliance report --format markdown | less")]
    Report {
        /// One framework id; default every framework.
        #[arg(long, value_name = "ID")]
        framework: Option<String>,
        /// json, markdown, html or oscal.
        #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
        format: pb::ReportFormat,
        /// Write the report to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// The frameworks the catalogs map, with their editions and control counts.
    #[command(after_long_help = "\
Needs the auditor role or higher.

Example:
  lexecon compliance frameworks")]
    Frameworks {
        /// Print the frameworks as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// `lexecon compliance hold ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum HoldCommand {
    /// Place a legal hold: the entries in its scope cannot be redacted until released.
    #[command(after_long_help = "\
Give at least one scope: an index range (--from-index, --to-index; the end is
exclusive), decisions (--decision, repeat; a decision's entry and the entries linked to
it), or an actor glob (--actor; every entry whose actor it matches). The hold is a ledger
entry and survives restarts; `lexecon ledger redact` of a held entry is refused with the
hold named. Needs the compliance_officer or admin role.

Examples:
  lexecon compliance hold place --reason 'litigation hold' --matter 'case 2026-114' \\
      --actor 'ai_agent:billing_*'
  lexecon compliance hold place --reason 'regulator request' --matter 'DPA-7781' \\
      --from-index 1000 --to-index 2000")]
    Place {
        /// Why the records must be kept (required).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The matter it is for, e.g. a case number (required).
        #[arg(long, value_name = "TEXT")]
        matter: String,
        /// The first ledger index held.
        #[arg(long, value_name = "N")]
        from_index: Option<u64>,
        /// The end of the held range (exclusive).
        #[arg(long, value_name = "N")]
        to_index: Option<u64>,
        /// A decision held (dec_...; repeat for several).
        #[arg(long = "decision", value_name = "ID")]
        decisions: Vec<String>,
        /// A full-match glob over actors whose entries are held.
        #[arg(long, value_name = "GLOB")]
        actor: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Release a legal hold: its entries may be redacted again.
    #[command(after_long_help = "\
The release is a ledger entry naming you and the reason. Needs the compliance_officer
or admin role.

Example:
  lexecon compliance hold release hld_01JD5Q8W7M3N4P5R6S7T8V9W0X --reason 'case closed'")]
    Release {
        /// The hold (hld_...).
        hold_id: String,
        /// Why (required; recorded in the ledger).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// The legal holds in force (with --all, released ones too).
    #[command(after_long_help = "\
Needs the auditor role or higher.

Examples:
  lexecon compliance hold list
  lexecon compliance hold list --all --json")]
    List {
        /// Also released holds.
        #[arg(long)]
        all: bool,
        /// Print the holds as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// An intervention kind from `reverse`, `REVERSE` or `INTERVENTION_KIND_REVERSE`.
fn parse_kind(s: &str) -> Result<pb::InterventionKind, String> {
    let upper = s.trim().to_ascii_uppercase().replace('-', "_");
    let name = if upper.starts_with("INTERVENTION_KIND_") {
        upper
    } else {
        format!("INTERVENTION_KIND_{upper}")
    };
    match pb::InterventionKind::from_str_name(&name) {
        Some(k) if k != pb::InterventionKind::Unspecified => Ok(k),
        _ => Err(format!(
            "unknown intervention kind {s:?}: expected disregard, reverse, override or stop"
        )),
    }
}

/// A report format from `html`, `HTML` or `REPORT_FORMAT_HTML` (`md` for Markdown).
fn parse_format(s: &str) -> Result<pb::ReportFormat, String> {
    let upper = s.trim().to_ascii_uppercase();
    let upper = if upper == "MD" {
        "MARKDOWN".to_owned()
    } else {
        upper
    };
    let name = if upper.starts_with("REPORT_FORMAT_") {
        upper
    } else {
        format!("REPORT_FORMAT_{upper}")
    };
    match pb::ReportFormat::from_str_name(&name) {
        Some(f) if f != pb::ReportFormat::Unspecified => Ok(f),
        _ => Err(format!(
            "unknown report format {s:?}: expected json, markdown, html or oscal"
        )),
    }
}

/// `satisfied` for `CONTROL_STATUS_SATISFIED`.
fn status_word(s: pb::ControlStatus) -> String {
    s.as_str_name()
        .trim_start_matches("CONTROL_STATUS_")
        .to_ascii_lowercase()
}

/// The symbol a table shows for a status.
fn status_symbol(s: pb::ControlStatus) -> &'static str {
    match s {
        pb::ControlStatus::Satisfied => "✓",
        pb::ControlStatus::Partial => "~",
        pb::ControlStatus::NotSatisfied => "✗",
        pb::ControlStatus::NotApplicable => "-",
        pb::ControlStatus::Unspecified => "?",
    }
}

/// `reverse` for `INTERVENTION_KIND_REVERSE`.
fn kind_word(k: pb::InterventionKind) -> String {
    k.as_str_name()
        .trim_start_matches("INTERVENTION_KIND_")
        .to_ascii_lowercase()
}

fn rfc3339(ts: Option<&lexecon_proto::prost_types::Timestamp>) -> String {
    ts.map(lexecon_server::convert::timestamp_from_pb)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Writes `bytes` to `path`, saying which file could not be written.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// A control as JSON: the status as a word, evidence as objects.
fn control_json(c: &pb::ControlResult) -> Value {
    json!({
        "framework": c.framework,
        "control_id": c.control_id,
        "title": c.title,
        "status": status_word(c.status()),
        "why": c.why,
        "evidence": c.evidence.iter().map(|e| json!({
            "kind": e.kind, "reference": e.reference, "detail": e.detail,
        })).collect::<Vec<_>>(),
        "remediation": c.remediation,
    })
}

fn hold_json(h: &pb::LegalHold) -> Value {
    json!({
        "hold_id": h.hold_id,
        "reason": h.reason,
        "matter": h.matter,
        "from_index": h.from_index,
        "to_index": h.to_index,
        "decision_ids": h.decision_ids,
        "actor": h.actor,
        "placed_by": h.placed_by,
        "placed_at": rfc3339(h.placed_at.as_ref()),
        "ledger_index": h.ledger_index,
        "active": h.active,
        "released_by": h.released_by,
        "released_at": rfc3339(h.released_at.as_ref()),
        "release_ledger_index": h.release_ledger_index,
    })
}

/// What a hold covers, in words.
fn hold_scope(h: &pb::LegalHold) -> String {
    let mut parts = Vec::new();
    match (h.from_index, h.to_index) {
        (None, None) => {}
        (from, Some(to)) => parts.push(format!("entries {}..{to}", from.unwrap_or(0))),
        (Some(from), None) => parts.push(format!("entries {from}..")),
    }
    if !h.decision_ids.is_empty() {
        parts.push(format!("decisions {}", h.decision_ids.join(", ")));
    }
    if !h.actor.is_empty() {
        parts.push(format!("actor {}", h.actor));
    }
    parts.join("; ")
}

fn render_hold(h: &pb::LegalHold) -> String {
    let mut out = String::new();
    let state = if h.active { "active" } else { "released" };
    let _ = writeln!(out, "{}  {state}  {}", h.hold_id, h.matter);
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<14}{v}");
    };
    line("scope", hold_scope(h));
    line("reason", h.reason.clone());
    line(
        "placed",
        format!(
            "{} by {} (ledger entry {})",
            rfc3339(h.placed_at.as_ref()),
            h.placed_by,
            h.ledger_index
        ),
    );
    if !h.active {
        line(
            "released",
            format!(
                "{} by {} (ledger entry {})",
                rfc3339(h.released_at.as_ref()),
                h.released_by,
                h.release_ledger_index
            ),
        );
    }
    out
}

/// Cuts `s` to at most `width` characters, marking the cut.
fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The status table: symbol, control id, title, why; then the coverage line.
fn render_status(r: &pb::GetComplianceStatusResponse) -> String {
    let mut out = String::new();
    let id_width = r
        .controls
        .iter()
        .map(|c| c.control_id.chars().count())
        .max()
        .unwrap_or(0)
        .max(7);
    let title_width = r
        .controls
        .iter()
        .map(|c| c.title.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 40);
    let _ = writeln!(
        out,
        "  {:<id_width$}  {:<title_width$}  why",
        "control", "title"
    );
    let mut counts = [0usize; 4];
    for c in &r.controls {
        let status = c.status();
        if let Some(n) = match status {
            pb::ControlStatus::Satisfied => counts.get_mut(0),
            pb::ControlStatus::Partial => counts.get_mut(1),
            pb::ControlStatus::NotSatisfied => counts.get_mut(2),
            pb::ControlStatus::NotApplicable => counts.get_mut(3),
            pb::ControlStatus::Unspecified => None,
        } {
            *n += 1;
        }
        let _ = writeln!(
            out,
            "{} {:<id_width$}  {:<title_width$}  {}",
            status_symbol(status),
            c.control_id,
            clip(&c.title, title_width),
            c.why
        );
    }
    let [satisfied, partial, not_satisfied, not_applicable] = counts;
    let _ = writeln!(
        out,
        "{}: coverage {:.1}% ({satisfied} satisfied, {partial} partial, {not_satisfied} not \
         satisfied, {not_applicable} not applicable) at {}",
        r.framework,
        r.coverage_percent,
        rfc3339(r.evaluated_at.as_ref())
    );
    out
}

fn render_gaps(r: &pb::GetGapsResponse) -> String {
    let mut out = String::new();
    if r.gaps.is_empty() {
        let _ = writeln!(
            out,
            "{}: no gaps: every applicable control is satisfied",
            r.framework
        );
        return out;
    }
    let _ = writeln!(out, "{}: {} gaps", r.framework, r.gaps.len());
    for c in &r.gaps {
        let status = c.status();
        let _ = writeln!(
            out,
            "\n{} {}  {}  ({})",
            status_symbol(status),
            c.control_id,
            c.title,
            status_word(status).replace('_', " ")
        );
        let _ = writeln!(out, "  why:  {}", c.why);
        let _ = writeln!(out, "  do:   {}", c.remediation);
    }
    out
}

fn record_keeping_json(r: &pb::GetRecordKeepingStatusResponse) -> Value {
    json!({
        "logging_enabled": r.logging_enabled,
        "log_retention_days": r.log_retention_days,
        "oldest_entry_at": rfc3339(r.oldest_entry_at.as_ref()),
        "newest_entry_at": rfc3339(r.newest_entry_at.as_ref()),
        "total_entries": r.total_entries,
        "redacted_entries": r.redacted_entries,
        "entries_by_kind": r.entries_by_kind,
        "last_verification": r.last_verification.as_ref().map(|v| json!({
            "at": rfc3339(v.at.as_ref()),
            "valid": v.valid,
            "entries": v.entries,
            "trusted_key_ring": v.trusted_key_ring,
            "basis": v.basis,
            "by": v.by,
            "ledger_index": v.ledger_index,
        })),
        "legal_holds": r.legal_holds.iter().map(hold_json).collect::<Vec<_>>(),
    })
}

fn render_record_keeping(r: &pb::GetRecordKeepingStatusResponse) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<20}{v}");
    };
    line(
        "logging",
        if r.logging_enabled {
            "on: every decision and governance act is a ledger entry".into()
        } else {
            "OFF".into()
        },
    );
    line("retention", format!("{} days", r.log_retention_days));
    line(
        "entries",
        format!("{} ({} redacted)", r.total_entries, r.redacted_entries),
    );
    line("oldest entry", rfc3339(r.oldest_entry_at.as_ref()));
    line("newest entry", rfc3339(r.newest_entry_at.as_ref()));
    let by_kind = r
        .entries_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    line("by kind", by_kind);
    line(
        "last verification",
        match &r.last_verification {
            None => "none yet: run `lexecon verify-ledger` or LedgerService/Verify".into(),
            Some(v) => format!(
                "{} {} ({} entries, trust: {}, by {}, ledger entry {})",
                rfc3339(v.at.as_ref()),
                if v.valid { "valid" } else { "NOT VALID" },
                v.entries,
                v.basis,
                v.by,
                v.ledger_index
            ),
        },
    );
    let active = r.legal_holds.iter().filter(|h| h.active).count();
    line(
        "legal holds",
        format!("{active} active, {} released", r.legal_holds.len() - active),
    );
    for h in r.legal_holds.iter().filter(|h| h.active) {
        out.push_str(&render_hold(h));
    }
    out
}

/// The compliance client: responses (reports) as large as the server sends.
async fn client(target: &ServerArgs) -> Result<(ComplianceServiceClient<Channel>, String)> {
    let (channel, bearer) = target.connect().await?;
    let client = ComplianceServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    Ok((client, bearer))
}

/// Runs one call on a fresh runtime and client.
fn call<T>(
    target: &ServerArgs,
    f: impl AsyncFnOnce(
        &mut ComplianceServiceClient<Channel>,
        &str,
    ) -> Result<tonic::Response<T>, tonic::Status>,
) -> Result<T> {
    runtime()?.block_on(async {
        let (mut client, bearer) = client(target).await?;
        f(&mut client, &bearer)
            .await
            .map(tonic::Response::into_inner)
            .map_err(status_error)
    })
}

/// Runs `lexecon compliance ...`.
pub(crate) fn run(cmd: &ComplianceCommand) -> Result<Verdict> {
    match cmd {
        ComplianceCommand::Status {
            framework,
            json,
            target,
        } => {
            let request = pb::GetComplianceStatusRequest {
                framework: framework.clone(),
            };
            let r = call(target, async |c, b| {
                c.get_compliance_status(authed(request, b).map_err(internal)?)
                    .await
            })?;
            if *json {
                print_json(&json!({
                    "framework": r.framework,
                    "coverage_percent": r.coverage_percent,
                    "evaluated_at": rfc3339(r.evaluated_at.as_ref()),
                    "controls": r.controls.iter().map(control_json).collect::<Vec<_>>(),
                }))?;
            } else {
                print!("{}", render_status(&r));
            }
        }
        ComplianceCommand::Gaps {
            framework,
            json,
            target,
        } => {
            let request = pb::GetGapsRequest {
                framework: framework.clone(),
            };
            let r = call(target, async |c, b| {
                c.get_gaps(authed(request, b).map_err(internal)?).await
            })?;
            if *json {
                print_json(&json!({
                    "framework": r.framework,
                    "gaps": r.gaps.iter().map(control_json).collect::<Vec<_>>(),
                }))?;
            } else {
                print!("{}", render_gaps(&r));
            }
        }
        ComplianceCommand::TechDoc { out, json, target } => {
            let r = call(target, async |c, b| {
                c.get_technical_documentation(
                    authed(pb::GetTechnicalDocumentationRequest {}, b).map_err(internal)?,
                )
                .await
            })?;
            let text = if *json { r.json } else { r.markdown };
            match out {
                Some(path) => {
                    write_file(path, text.as_bytes())?;
                    println!(
                        "wrote the Annex IV technical documentation ({} bytes) to {}",
                        text.len(),
                        path.display()
                    );
                }
                None => {
                    print!("{text}");
                    if !text.ends_with('\n') {
                        println!();
                    }
                }
            }
        }
        ComplianceCommand::RecordKeeping { json, target } => {
            let r = call(target, async |c, b| {
                c.get_record_keeping_status(
                    authed(pb::GetRecordKeepingStatusRequest {}, b).map_err(internal)?,
                )
                .await
            })?;
            if *json {
                print_json(&record_keeping_json(&r))?;
            } else {
                print!("{}", render_record_keeping(&r));
            }
        }
        ComplianceCommand::Hold(hold) => return run_hold(hold),
        ComplianceCommand::Intervene {
            decision_id,
            kind,
            reason,
            override_id,
            json,
            target,
        } => {
            let request = pb::RecordInterventionRequest {
                decision_id: decision_id.clone(),
                kind: *kind as i32,
                reason: reason.clone(),
                override_id: override_id.clone().unwrap_or_default(),
            };
            let r = call(target, async |c, b| {
                c.record_intervention(authed(request, b).map_err(internal)?)
                    .await
            })?;
            if *json {
                print_json(&json!({
                    "intervention_id": r.intervention_id,
                    "decision_id": decision_id,
                    "kind": kind_word(*kind),
                    "ledger_index": r.ledger_index,
                    "halt_id": r.halt_id,
                    "revoked_token_id": r.revoked_token_id,
                }))?;
            } else {
                println!(
                    "recorded {} ({}) on {decision_id} in ledger entry {}",
                    r.intervention_id,
                    kind_word(*kind),
                    r.ledger_index
                );
                if !r.halt_id.is_empty() {
                    println!(
                        "halted: {} (end it with `lexecon resume {}`)",
                        r.halt_id, r.halt_id
                    );
                }
                if !r.revoked_token_id.is_empty() {
                    println!("revoked the decision's token {}", r.revoked_token_id);
                }
            }
        }
        ComplianceCommand::Report {
            framework,
            format,
            out,
            target,
        } => {
            let request = pb::GetComplianceReportRequest {
                framework: framework.clone().unwrap_or_default(),
                format: *format as i32,
            };
            let r = call(target, async |c, b| {
                c.get_compliance_report(authed(request, b).map_err(internal)?)
                    .await
            })?;
            match out {
                Some(path) => {
                    write_file(path, &r.content)?;
                    println!(
                        "wrote {} ({}, {} bytes) to {}",
                        r.file_name,
                        r.media_type,
                        r.content.len(),
                        path.display()
                    );
                }
                None => {
                    use std::io::Write as _;
                    let mut stdout = std::io::stdout().lock();
                    stdout
                        .write_all(&r.content)
                        .and_then(|()| stdout.flush())
                        .context("cannot write the report to stdout")?;
                }
            }
        }
        ComplianceCommand::Frameworks { json, target } => {
            let r = call(target, async |c, b| {
                c.list_frameworks(authed(pb::ListFrameworksRequest {}, b).map_err(internal)?)
                    .await
            })?;
            if *json {
                print_json(&json!({
                    "frameworks": r.frameworks.iter().map(|f| json!({
                        "id": f.id, "name": f.name, "version": f.version,
                        "control_count": f.control_count,
                    })).collect::<Vec<_>>(),
                }))?;
            } else {
                for f in &r.frameworks {
                    println!(
                        "{:<10} {} ({}), {} controls",
                        f.id, f.name, f.version, f.control_count
                    );
                }
            }
        }
    }
    Ok(Verdict::Yes)
}

/// A request that could not be built becomes a status the caller reports like any other.
fn internal(e: anyhow::Error) -> tonic::Status {
    tonic::Status::invalid_argument(e.to_string())
}

fn run_hold(cmd: &HoldCommand) -> Result<Verdict> {
    match cmd {
        HoldCommand::Place {
            reason,
            matter,
            from_index,
            to_index,
            decisions,
            actor,
            json,
            target,
        } => {
            let request = pb::PlaceLegalHoldRequest {
                reason: reason.clone(),
                matter: matter.clone(),
                from_index: *from_index,
                to_index: *to_index,
                decision_ids: decisions.clone(),
                actor: actor.clone().unwrap_or_default(),
            };
            let r = call(target, async |c, b| {
                c.place_legal_hold(authed(request, b).map_err(internal)?)
                    .await
            })?;
            if *json {
                print_json(&json!({"hold_id": r.hold_id, "ledger_index": r.ledger_index}))?;
            } else {
                println!(
                    "placed legal hold {} in ledger entry {}; release it with \
                     `lexecon compliance hold release {} --reason ...`",
                    r.hold_id, r.ledger_index, r.hold_id
                );
            }
        }
        HoldCommand::Release {
            hold_id,
            reason,
            json,
            target,
        } => {
            let request = pb::ReleaseLegalHoldRequest {
                hold_id: hold_id.clone(),
                reason: reason.clone(),
            };
            let r = call(target, async |c, b| {
                c.release_legal_hold(authed(request, b).map_err(internal)?)
                    .await
            })?;
            if *json {
                print_json(&json!({"hold_id": hold_id, "ledger_index": r.ledger_index}))?;
            } else {
                println!(
                    "released legal hold {hold_id} in ledger entry {}",
                    r.ledger_index
                );
            }
        }
        HoldCommand::List { all, json, target } => {
            let request = pb::ListLegalHoldsRequest {
                include_released: *all,
            };
            let r = call(target, async |c, b| {
                c.list_legal_holds(authed(request, b).map_err(internal)?)
                    .await
            })?;
            if *json {
                print_json(&json!({
                    "holds": r.holds.iter().map(hold_json).collect::<Vec<_>>(),
                }))?;
            } else if r.holds.is_empty() {
                println!("no {}legal holds", if *all { "" } else { "active " });
            } else {
                for h in &r.holds {
                    print!("{}", render_hold(h));
                }
            }
        }
    }
    Ok(Verdict::Yes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_formats_parse_in_every_spelling() {
        for s in ["reverse", "REVERSE", "INTERVENTION_KIND_REVERSE"] {
            assert_eq!(parse_kind(s), Ok(pb::InterventionKind::Reverse), "{s}");
        }
        for word in ["disregard", "reverse", "override", "stop"] {
            assert_eq!(kind_word(parse_kind(word).unwrap()), word);
        }
        assert!(parse_kind("unspecified").is_err());
        assert!(parse_kind("undo").unwrap_err().contains("disregard"));
        assert_eq!(parse_format("md"), Ok(pb::ReportFormat::Markdown));
        assert_eq!(parse_format("html"), Ok(pb::ReportFormat::Html));
        assert_eq!(parse_format("OSCAL"), Ok(pb::ReportFormat::Oscal));
        assert!(parse_format("pdf").unwrap_err().contains("oscal"));
    }

    #[test]
    fn the_status_table_shows_symbols_ids_and_coverage() {
        let control = |id: &str, status: pb::ControlStatus, why: &str| pb::ControlResult {
            control_id: id.into(),
            title: "A title".into(),
            status: status as i32,
            why: why.into(),
            framework: "soc2".into(),
            ..Default::default()
        };
        let r = pb::GetComplianceStatusResponse {
            framework: "soc2".into(),
            controls: vec![
                control("CC6.1", pb::ControlStatus::Satisfied, "MFA is required."),
                control("CC7.2", pb::ControlStatus::NotSatisfied, "No verification."),
            ],
            coverage_percent: 50.0,
            evaluated_at: None,
        };
        let text = render_status(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("✓ CC6.1"), "{text}");
        assert!(lines[1].ends_with("MFA is required."), "{text}");
        assert!(lines[2].starts_with("✗ CC7.2"), "{text}");
        assert!(
            lines[3].starts_with("soc2: coverage 50.0% (1 satisfied, 0 partial, 1 not satisfied"),
            "{text}"
        );
    }

    #[test]
    fn a_hold_scope_reads_as_words() {
        let h = pb::LegalHold {
            from_index: Some(3),
            to_index: Some(9),
            actor: "ai_agent:*".into(),
            ..Default::default()
        };
        assert_eq!(hold_scope(&h), "entries 3..9; actor ai_agent:*");
    }
}
