//! `lexecon decisions query`: decisions from the decision index (contract §7).

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use lexecon_core::{Outcome, SystemClock, Timestamp};
use lexecon_engine::config::{Config, Sources};
use lexecon_engine::{Caller, DecisionQuery, Engine};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::audit_service_client::AuditServiceClient;
use lexecon_server::convert::{timestamp_from_pb, timestamp_to_pb};
use serde_json::json;

use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// `lexecon decisions ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DecisionsCommand {
    /// Decisions matching filters, newest first, one page at a time.
    #[command(after_long_help = "\
Reads the decision index kept beside the ledger (never a scan of the ledger). Globs are
full-match with `*` and `?`. A redacted decision shows its id, time and outcome only.
A decision whose tool call went through the MCP gateway and finished shows `completed
ledger N`, the index of its completion entry (JSON: completed, completion_ledger_index).
When there are more, the last line gives the --page-token for the next page. With
--server the query goes to that server (viewer role or higher); without it, it runs in
process on --data-dir. Exit 0, 2 on any error.

Examples:
  lexecon decisions query --actor 'ai_agent:support*' --outcome denied --since 2026-11-01T00:00:00Z
  lexecon decisions query --min-risk 80 --page-size 50 --json --server http://127.0.0.1:50051")]
    Query(QueryArgs),
}

/// `lexecon decisions query`.
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    /// Actors matching this glob.
    #[arg(long, value_name = "GLOB", default_value = "")]
    actor: String,
    /// Proposed actions matching this glob.
    #[arg(long, value_name = "GLOB", default_value = "")]
    action: String,
    /// Tools matching this glob.
    #[arg(long, value_name = "GLOB", default_value = "")]
    tool: String,
    /// Only this outcome: approved, denied or escalated.
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<Outcome>,
    /// Decided at or after (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Decided before (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Risk score at least this (0-100).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    min_risk: u32,
    /// Decided under the policy with this SHA-256 (64 hex digits).
    #[arg(long, value_name = "HEX")]
    policy_hash: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    page_size: u32,
    /// The token a previous page printed.
    #[arg(long, value_name = "TOKEN", default_value = "")]
    page_token: String,
    /// Print the page as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: ServerArgs,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|e| e.to_string())
}

/// Runs `lexecon decisions ...`.
pub(crate) fn run(cmd: &DecisionsCommand) -> Result<Verdict> {
    match cmd {
        DecisionsCommand::Query(args) => run_query(args),
    }
}

/// One row, however it was fetched.
struct Row {
    decision_id: String,
    decided_at: Timestamp,
    principal: String,
    actor: String,
    action: String,
    tool: String,
    outcome: String,
    risk_score: u32,
    reasons: Vec<String>,
    policy_hash: String,
    escalation_id: String,
    override_id: String,
    ledger_index: u64,
    redacted: bool,
    /// The ledger index of the tool call's completion (MCP gateway), when recorded.
    completion_ledger_index: Option<u64>,
}

fn outcome_word(o: i32) -> String {
    pb::Outcome::try_from(o)
        .map(|o| {
            o.as_str_name()
                .trim_start_matches("OUTCOME_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn run_query(args: &QueryArgs) -> Result<Verdict> {
    let policy_hash = match &args.policy_hash {
        Some(h) => {
            let bytes =
                hex::decode(h.trim()).map_err(|_| anyhow!("--policy-hash: {h:?} is not hex"))?;
            if bytes.len() != 32 {
                bail!("--policy-hash: a policy hash is 64 hex digits (SHA-256)");
            }
            bytes
        }
        None => Vec::new(),
    };
    let query = DecisionQuery {
        actor: args.actor.clone(),
        action: args.action.clone(),
        tool: args.tool.clone(),
        outcome: args.outcome,
        since: args.since,
        until: args.until,
        min_risk_score: args.min_risk,
        policy_hash,
        page_size: args.page_size,
        page_token: args.page_token.clone(),
    };
    let (rows, next) = runtime()?.block_on(async {
        if args.target.server.is_some() {
            let (channel, bearer) = args.target.connect().await?;
            let mut client = AuditServiceClient::new(channel);
            let request = pb::QueryDecisionsRequest {
                actor: query.actor,
                action: query.action,
                tool: query.tool,
                outcome: query.outcome.map_or(pb::Outcome::Unspecified, |o| match o {
                    Outcome::Approved => pb::Outcome::Approved,
                    Outcome::Denied => pb::Outcome::Denied,
                    Outcome::Escalated => pb::Outcome::Escalated,
                }) as i32,
                since: query.since.map(timestamp_to_pb),
                until: query.until.map(timestamp_to_pb),
                min_risk_score: query.min_risk_score,
                policy_hash: query.policy_hash,
                page_size: query.page_size,
                page_token: query.page_token,
            };
            let r = client
                .query_decisions(authed(request, &bearer)?)
                .await
                .map_err(status_error)?
                .into_inner();
            let rows: Vec<Row> = r
                .decisions
                .into_iter()
                .map(|d| Row {
                    decided_at: d
                        .decided_at
                        .as_ref()
                        .map(timestamp_from_pb)
                        .unwrap_or_default(),
                    outcome: outcome_word(d.outcome),
                    decision_id: d.decision_id,
                    principal: d.principal,
                    actor: d.actor,
                    action: d.proposed_action,
                    tool: d.tool,
                    risk_score: d.risk_score,
                    reasons: d.reasons,
                    policy_hash: hex::encode(&d.policy_hash),
                    escalation_id: d.escalation_id,
                    override_id: d.override_id,
                    ledger_index: d.ledger_index,
                    redacted: d.redacted,
                    completion_ledger_index: d.completed.then_some(d.completion_ledger_index),
                })
                .collect();
            anyhow::Ok((rows, r.next_page_token))
        } else {
            let data_dir = &args.target.data_dir;
            if !data_dir.join("lexecon.toml").is_file() && args.target.config.is_none() {
                bail!(
                    "no data directory {}: pass --data-dir DIR, or --server URL to ask a server",
                    data_dir.display()
                );
            }
            let config = Config::load(&Sources {
                data_dir: Some(data_dir.clone()),
                config_file: args.target.config.clone(),
            })?;
            let engine = Engine::open_local(config, Arc::new(SystemClock)).await?;
            let page = engine.query_decisions(&Caller::local(), query).await;
            engine.shutdown().await?;
            let page = page?;
            let rows = page
                .items
                .into_iter()
                .map(|d| Row {
                    decision_id: d.decision_id,
                    decided_at: d.decided_at,
                    principal: d.principal,
                    actor: d.actor,
                    action: d.proposed_action,
                    tool: d.tool,
                    outcome: d.outcome.as_str().to_owned(),
                    risk_score: u32::from(d.risk_score),
                    reasons: d.reasons,
                    policy_hash: hex::encode(&d.policy_hash),
                    escalation_id: d.escalation_id,
                    override_id: d.override_id,
                    ledger_index: d.ledger_index,
                    redacted: d.redacted,
                    completion_ledger_index: d.completion_ledger_index,
                })
                .collect();
            anyhow::Ok((rows, page.next_page_token))
        }
    })?;
    if args.json {
        let decisions: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "decision_id": r.decision_id,
                    "decided_at": r.decided_at.to_rfc3339(),
                    "principal": r.principal,
                    "actor": r.actor,
                    "proposed_action": r.action,
                    "tool": r.tool,
                    "outcome": r.outcome,
                    "risk_score": r.risk_score,
                    "reasons": r.reasons,
                    "policy_hash": r.policy_hash,
                    "escalation_id": r.escalation_id,
                    "override_id": r.override_id,
                    "ledger_index": r.ledger_index,
                    "redacted": r.redacted,
                    "completed": r.completion_ledger_index.is_some(),
                    "completion_ledger_index": r.completion_ledger_index,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "decisions": decisions,
                "next_page_token": next,
            }))?
        );
        return Ok(Verdict::Yes);
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no decisions match\n");
    }
    for r in &rows {
        if r.redacted {
            let _ = writeln!(
                out,
                "{}  {}  {:<9}  (redacted)  ledger {}",
                r.decided_at, r.decision_id, r.outcome, r.ledger_index
            );
            continue;
        }
        let tool = if r.tool.is_empty() {
            String::new()
        } else {
            format!(" via {}", r.tool)
        };
        let completed = r
            .completion_ledger_index
            .map_or_else(String::new, |i| format!("  completed ledger {i}"));
        let _ = writeln!(
            out,
            "{}  {}  {:<9}  risk {:>3}  {} {}{}  [{}]  by {}  ledger {}{}",
            r.decided_at,
            r.decision_id,
            r.outcome,
            r.risk_score,
            r.actor,
            r.action,
            tool,
            r.reasons.join(", "),
            r.principal,
            r.ledger_index,
            completed
        );
    }
    if !next.is_empty() {
        let _ = writeln!(out, "more: --page-token {next}");
    }
    print!("{out}");
    Ok(Verdict::Yes)
}
