//! Human oversight through a server's OversightService (contract §6): `lexecon
//! escalations list|show|approve|deny`, `lexecon override create|list|revoke`, `lexecon
//! halt`, `lexecon resume`, `lexecon events watch` and `lexecon accountability`.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use lexecon_core::{Clock as _, SystemClock, Timestamp};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::oversight_service_client::OversightServiceClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// `lexecon escalations ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum EscalationsCommand {
    /// List escalations, newest first, with the time left before each deadline.
    #[command(after_long_help = "\
A pending escalation past its deadline is expired (refused): the sweeper records it
within a second. Prints one page; when there are more, the last line gives the
--page-token for the next. Needs the auditor role or higher.

Examples:
  lexecon escalations list --state pending
  lexecon escalations list --json")]
    List {
        /// Only escalations in this state: pending, approved, denied, expired, cancelled.
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        state: Option<pb::EscalationState>,
        /// At most this many (default 100, at most 1000).
        #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
        page_size: u32,
        /// The token a previous page printed.
        #[arg(long, value_name = "TOKEN")]
        page_token: Option<String>,
        /// Print the page as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Show one escalation: its request, deadline, approvals and resolution.
    #[command(after_long_help = "\
The agent whose request escalated may show its own escalations; once approved, this
fetch uses the approval's grant and the answer carries the capability token (the same
token on every later fetch until it expires). Others need the auditor role or higher,
and never see the token.

Examples:
  lexecon escalations show esc_01JD5Q8W7M3N4P5R6S7T8V9W0X
  lexecon escalations show esc_01JD5Q8W7M3N4P5R6S7T8V9W0X --json")]
    Show {
        /// The escalation id (esc_...).
        id: String,
        /// Print the escalation as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Approve a pending escalation (a critical one needs two distinct approvers).
    #[command(after_long_help = "\
Needs the compliance_officer or admin role, and never the principal whose request
escalated. With oversight.approvers = \"people\" only a user session that completed MFA
may resolve. Recorded in the ledger with your name, kind, key creator and MFA.

Examples:
  lexecon escalations approve esc_01JD5Q8W7M3N4P5R6S7T8V9W0X --reason 'ticket 4711, customer consented'")]
    Approve(ResolveArgs),
    /// Deny a pending escalation: one denial ends it.
    #[command(after_long_help = "\
Needs the compliance_officer or admin role, and never the principal whose request
escalated.

Examples:
  lexecon escalations deny esc_01JD5Q8W7M3N4P5R6S7T8V9W0X --reason 'no ticket for this export'")]
    Deny(ResolveArgs),
}

/// `escalations approve|deny ID --reason R`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResolveArgs {
    /// The escalation id (esc_...).
    pub id: String,
    /// Why (required; recorded in the ledger).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Print the escalation as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ServerArgs,
}

/// `lexecon override ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum OverrideCommand {
    /// Create an override: matching requests are approved or denied until it expires.
    #[command(after_long_help = "\
Kinds: emergency_bypass, executive_override, time_limited_exception, risk_accepted.
An override never lifts a budget limit or a halt. An approving emergency bypass or
executive override needs the admin role; a compliance officer's approving override must
name an actor glob and an action glob other than '*'. An approve override does not skip
the two-person rule for a critical escalation. Globs match the whole name; an empty
--tool matches any tool. --expires-in takes 90s, 30m, 8h or 1d (at most
oversight.max_override_secs, default 1 day).

Examples:
  lexecon override create --kind risk_accepted --effect approve --actor 'ai_agent:billing' \\
      --action 'read:invoices' --justification 'quarter close, approved by the CFO' --expires-in 8h
  lexecon override create --kind emergency_bypass --effect deny --actor 'ai_agent:*' \\
      --action 'delete:*' --justification 'incident 2211: no deletions until reviewed' --expires-in 1d")]
    Create(CreateOverrideArgs),
    /// List the overrides in force (with --all, also expired and revoked ones).
    #[command(after_long_help = "\
Needs the auditor role or higher.

Examples:
  lexecon override list
  lexecon override list --all --json")]
    List {
        /// Also expired and revoked overrides.
        #[arg(long)]
        all: bool,
        /// Print the overrides as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Revoke an override before it expires.
    #[command(after_long_help = "\
Needs the compliance_officer or admin role.

Examples:
  lexecon override revoke ovr_01JD5Q8W7M3N4P5R6S7T8V9W0X --reason 'incident closed'")]
    Revoke {
        /// The override id (ovr_...).
        id: String,
        /// Why (recorded in the ledger).
        #[arg(
            long,
            value_name = "TEXT",
            default_value = "revoked from the command line"
        )]
        reason: String,
        /// Print the override as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// `override create`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateOverrideArgs {
    /// emergency_bypass, executive_override, time_limited_exception or risk_accepted.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: pb::OverrideKind,
    /// approve or deny.
    #[arg(long, value_name = "EFFECT", value_parser = parse_effect)]
    pub effect: pb::OverrideEffect,
    /// Full-match glob over actors, e.g. 'ai_agent:billing_*'.
    #[arg(long, value_name = "GLOB")]
    pub actor: String,
    /// Full-match glob over actions, e.g. 'read:*'.
    #[arg(long, value_name = "GLOB")]
    pub action: String,
    /// Full-match glob over tools [default: any tool].
    #[arg(long, value_name = "GLOB", default_value = "")]
    pub tool: String,
    /// Why the override is needed (at least 20 characters).
    #[arg(long, value_name = "TEXT")]
    pub justification: String,
    /// How long it applies: 90s, 30m, 8h, 1d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires_in: Duration,
    /// Print the override as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ServerArgs,
}

/// `lexecon halt`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
The stop button: while the halt stands, every Decide for a matching actor is DENIED with
reason halted:<halt_id>, before policy, risk and overrides, on every server sharing the
database within 2 seconds. Replays of earlier decisions still answer. Needs the
compliance_officer or admin role. Without --actor every actor is halted.

Examples:
  lexecon halt --reason 'incident 2211: agents writing to production'
  lexecon halt --actor 'ai_agent:billing_*' --reason 'billing bot loops on refunds'")]
pub(crate) struct HaltArgs {
    /// Full-match glob over actors [default: every actor].
    #[arg(long, value_name = "GLOB", default_value = "")]
    pub actor: String,
    /// Why (required; recorded in the ledger).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Print the halt as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ServerArgs,
}

/// `lexecon resume`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Ends a halt. Needs the compliance_officer or admin role.

Examples:
  lexecon resume hlt_01JD5Q8W7M3N4P5R6S7T8V9W0X --reason 'fix deployed'")]
pub(crate) struct ResumeArgs {
    /// The halt id (hlt_...).
    pub halt_id: String,
    /// Why (recorded in the ledger).
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "resumed from the command line"
    )]
    pub reason: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ServerArgs,
}

/// `lexecon events ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum EventsCommand {
    /// Print governance events as the ledger records them.
    #[command(after_long_help = "\
Events are ledger entries: escalation_created, escalation_warned, escalation_resolved,
escalation_expired, escalation_cancelled, escalation_grant_used, escalation_grant_lapsed,
override_created, override_revoked, halt_placed, halt_resumed, policy_loaded,
config_reloaded, token_revoked, budget_soft_limit, budget_exceeded, key_rotated,
user_created, mfa_enrolled, api_key_created, api_key_revoked, api_key_bound,
evidence_registered, audit_exported (docs/oversight.md). Without --from, only events
from now on. When the stream breaks (a server restart, or this watcher fell behind) it
reconnects from the last index printed + 1, so nothing is missed or printed twice.
Needs the auditor role or higher.

Examples:
  lexecon events watch
  lexecon events watch --from 0 --kind escalation_created --kind escalation_resolved --json")]
    Watch {
        /// The first ledger index to print [default: from now on].
        #[arg(long, value_name = "N")]
        from: Option<u64>,
        /// Only this event (repeatable).
        #[arg(long = "kind", value_name = "EVENT")]
        kinds: Vec<String>,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// `lexecon accountability`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Who was accountable for a decision, computed from its ledger entries: the decision
maker (ai_system, human, hybrid), the responsibility level (automated: policy alone;
supervised: a person resolved its escalation; shared: two people did; full: a person's
override decided), the asking principal, the policy and who loaded it, the resolvers or
the override author, and the ledger index of every record involved. Needs the auditor
role or higher.

Examples:
  lexecon accountability dec_01JD5Q8W7M3N4P5R6S7T8V9W0X
  lexecon accountability dec_01JD5Q8W7M3N4P5R6S7T8V9W0X --json")]
pub(crate) struct AccountabilityArgs {
    /// The decision id (dec_...).
    pub decision_id: String,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ServerArgs,
}

fn parse_state(s: &str) -> Result<pb::EscalationState, String> {
    Ok(match s {
        "pending" => pb::EscalationState::Pending,
        "approved" => pb::EscalationState::Approved,
        "denied" => pb::EscalationState::Denied,
        "expired" => pb::EscalationState::Expired,
        "cancelled" => pb::EscalationState::Cancelled,
        _ => {
            return Err(format!(
                "{s:?} is not a state: use pending, approved, denied, expired or cancelled"
            ));
        }
    })
}

fn parse_kind(s: &str) -> Result<pb::OverrideKind, String> {
    Ok(match s {
        "emergency_bypass" => pb::OverrideKind::EmergencyBypass,
        "executive_override" => pb::OverrideKind::ExecutiveOverride,
        "time_limited_exception" => pb::OverrideKind::TimeLimitedException,
        "risk_accepted" => pb::OverrideKind::RiskAccepted,
        _ => {
            return Err(format!(
                "{s:?} is not an override kind: use emergency_bypass, executive_override, \
                 time_limited_exception or risk_accepted"
            ));
        }
    })
}

fn parse_effect(s: &str) -> Result<pb::OverrideEffect, String> {
    match s {
        "approve" => Ok(pb::OverrideEffect::Approve),
        "deny" => Ok(pb::OverrideEffect::Deny),
        _ => Err(format!("{s:?} is not an effect: use approve or deny")),
    }
}

/// `90s`, `30m`, `8h`, `1d`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration: use for example 90s, 30m, 8h or 1d");
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .filter(|&t| t > 0)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

fn state_word(s: pb::EscalationState) -> &'static str {
    match s {
        pb::EscalationState::Pending => "pending",
        pb::EscalationState::Approved => "approved",
        pb::EscalationState::Denied => "denied",
        pb::EscalationState::Expired => "expired",
        pb::EscalationState::Cancelled => "cancelled",
        pb::EscalationState::Unspecified => "unspecified",
    }
}

/// The word of an escalation state number.
pub(crate) fn state_name(value: i32) -> &'static str {
    pb::EscalationState::try_from(value).map_or("unspecified", state_word)
}

fn priority_word(value: i32) -> &'static str {
    match pb::EscalationPriority::try_from(value) {
        Ok(pb::EscalationPriority::Critical) => "critical",
        Ok(pb::EscalationPriority::High) => "high",
        Ok(pb::EscalationPriority::Medium) => "medium",
        Ok(pb::EscalationPriority::Low) => "low",
        Ok(pb::EscalationPriority::Unspecified) | Err(_) => "unspecified",
    }
}

fn kind_word(value: i32) -> &'static str {
    match pb::OverrideKind::try_from(value) {
        Ok(pb::OverrideKind::EmergencyBypass) => "emergency_bypass",
        Ok(pb::OverrideKind::ExecutiveOverride) => "executive_override",
        Ok(pb::OverrideKind::TimeLimitedException) => "time_limited_exception",
        Ok(pb::OverrideKind::RiskAccepted) => "risk_accepted",
        Ok(pb::OverrideKind::Unspecified) | Err(_) => "unspecified",
    }
}

fn effect_word(value: i32) -> &'static str {
    match pb::OverrideEffect::try_from(value) {
        Ok(pb::OverrideEffect::Approve) => "approve",
        Ok(pb::OverrideEffect::Deny) => "deny",
        Ok(pb::OverrideEffect::Unspecified) | Err(_) => "unspecified",
    }
}

fn maker_word(value: i32) -> &'static str {
    match pb::DecisionMaker::try_from(value) {
        Ok(pb::DecisionMaker::AiSystem) => "ai_system",
        Ok(pb::DecisionMaker::Human) => "human",
        Ok(pb::DecisionMaker::Hybrid) => "hybrid",
        Ok(pb::DecisionMaker::Unspecified) | Err(_) => "unspecified",
    }
}

fn level_word(value: i32) -> &'static str {
    match pb::ResponsibilityLevel::try_from(value) {
        Ok(pb::ResponsibilityLevel::Automated) => "automated",
        Ok(pb::ResponsibilityLevel::Supervised) => "supervised",
        Ok(pb::ResponsibilityLevel::Shared) => "shared",
        Ok(pb::ResponsibilityLevel::Full) => "full",
        Ok(pb::ResponsibilityLevel::Unspecified) | Err(_) => "unspecified",
    }
}

fn micros(ts: &lexecon_proto::prost_types::Timestamp) -> Option<i64> {
    ts.seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(ts.nanos / 1_000))
}

fn time(ts: Option<&lexecon_proto::prost_types::Timestamp>) -> Option<String> {
    Some(Timestamp::from_unix_micros(micros(ts?)?).to_rfc3339())
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `1h 59m`, `2d 3h`, `45s`.
fn span(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The time left before an escalation's deadline, as `escalations list` shows it.
pub(crate) fn time_left(e: &pb::Escalation, now: Timestamp) -> String {
    let pending = e.state == i32::from(pb::EscalationState::Pending);
    let Some(due) = e.due_at.as_ref().and_then(micros) else {
        return "-".to_owned();
    };
    let left = due.saturating_sub(now.unix_micros()) / 1_000_000;
    match (pending, left > 0) {
        (true, true) => format!("{} left", span(left)),
        (true, false) => format!("overdue {}", span(left)),
        (false, _) => "-".to_owned(),
    }
}

fn approver_json(a: &pb::Approver) -> Value {
    json!({
        "principal": a.principal,
        "principal_kind": a.principal_kind,
        "key_creator": nonempty(&a.key_creator),
        "mfa_verified": a.mfa_verified,
        "approve": a.approve,
        "at": time(a.at.as_ref()),
        "reason": a.reason,
        "ledger_index": a.ledger_index,
    })
}

fn escalation_json(e: &pb::Escalation, now: Timestamp) -> Value {
    json!({
        "escalation_id": e.escalation_id,
        "decision_id": e.decision_id,
        "priority": priority_word(e.priority),
        "state": state_name(e.state),
        "created_at": time(e.created_at.as_ref()),
        "due_at": time(e.due_at.as_ref()),
        "time_left": time_left(e, now),
        "warn_at": time(e.warn_at.as_ref()),
        "actor": e.actor,
        "proposed_action": e.proposed_action,
        "tool": nonempty(&e.tool),
        "asking_principal": e.asking_principal,
        "approvals_required": e.approvals_required,
        "approvals": e.approvals.iter().map(approver_json).collect::<Vec<_>>(),
        "resolution": e.resolution.as_ref().map(|r| json!({
            "state": state_name(r.state),
            "by": r.by,
            "reason": r.reason,
            "at": time(r.at.as_ref()),
            "ledger_index": r.ledger_index,
        })),
        "override_id": nonempty(&e.override_id),
        "capability_token": nonempty(&e.capability_token),
        "token_id": nonempty(&e.token_id),
        "token_expires_at": time(e.token_expires_at.as_ref()),
        "reservation_id": nonempty(&e.reservation_id),
        "grant_expires_at": time(e.grant_expires_at.as_ref()),
        "grant_decision_id": nonempty(&e.grant_decision_id),
    })
}

fn override_json(o: &pb::Override) -> Value {
    json!({
        "override_id": o.override_id,
        "kind": kind_word(o.kind),
        "effect": effect_word(o.effect),
        "actor": o.actor,
        "action": o.action,
        "tool": nonempty(&o.tool),
        "justification": o.justification,
        "created_by": o.created_by,
        "creator_role": o.creator_role,
        "created_at": time(o.created_at.as_ref()),
        "expires_at": time(o.expires_at.as_ref()),
        "revoked_by": nonempty(&o.revoked_by),
        "revoked_at": time(o.revoked_at.as_ref()),
        "active": o.active,
        "ledger_index": o.ledger_index,
    })
}

fn print_escalation(e: &pb::Escalation, now: Timestamp) {
    println!(
        "{}  {}  {}",
        e.escalation_id,
        state_name(e.state).to_uppercase(),
        priority_word(e.priority)
    );
    println!("  decision:  {}", e.decision_id);
    let tool = nonempty(&e.tool)
        .map(|t| format!(" with {t}"))
        .unwrap_or_default();
    println!("  request:   {} wants {}{tool}", e.actor, e.proposed_action);
    println!("  asked by:  {}", e.asking_principal);
    println!(
        "  deadline:  {} ({})",
        time(e.due_at.as_ref()).unwrap_or_default(),
        time_left(e, now)
    );
    let approvals = e.approvals.iter().filter(|a| a.approve).count();
    println!("  approvals: {approvals} of {}", e.approvals_required);
    for a in &e.approvals {
        let creator = nonempty(&a.key_creator)
            .map(|c| format!(", key created by {c}"))
            .unwrap_or_default();
        println!(
            "    {} by {} ({}{creator}{}) at {}: {}  [#{}]",
            if a.approve { "approved" } else { "denied" },
            a.principal,
            a.principal_kind,
            if a.mfa_verified { ", mfa" } else { "" },
            time(a.at.as_ref()).unwrap_or_default(),
            a.reason,
            a.ledger_index
        );
    }
    if let Some(r) = &e.resolution {
        println!(
            "  resolved:  {} by {} at {}: {}  [#{}]",
            state_name(r.state),
            r.by,
            time(r.at.as_ref()).unwrap_or_default(),
            r.reason,
            r.ledger_index
        );
    }
    if !e.override_id.is_empty() {
        println!(
            "  override:  {} matched but could not skip the two-person rule",
            e.override_id
        );
    }
    if let Some(t) = time(e.grant_expires_at.as_ref())
        && e.token_id.is_empty()
    {
        println!("  grant:     usable once until {t}");
    }
    if !e.token_id.is_empty() {
        println!(
            "  token:     {} (expires {})",
            e.token_id,
            time(e.token_expires_at.as_ref()).unwrap_or_default()
        );
    }
    if !e.capability_token.is_empty() {
        println!("  capability token: {}", e.capability_token);
    }
    if !e.reservation_id.is_empty() {
        println!("  budget:    reservation {}", e.reservation_id);
    }
}

fn print_override(o: &pb::Override) {
    let tool = nonempty(&o.tool).unwrap_or("any tool");
    let status = if o.active {
        "ACTIVE"
    } else if o.revoked_by.is_empty() {
        "EXPIRED"
    } else {
        "REVOKED"
    };
    println!(
        "{}  {status}  {} {}",
        o.override_id,
        effect_word(o.effect),
        kind_word(o.kind)
    );
    println!(
        "  scope:     actor {} action {} tool {tool}",
        o.actor, o.action
    );
    println!("  why:       {}", o.justification);
    println!("  by:        {} ({})", o.created_by, o.creator_role);
    println!(
        "  until:     {}",
        time(o.expires_at.as_ref()).unwrap_or_default()
    );
    if !o.revoked_by.is_empty() {
        println!(
            "  revoked:   by {} at {}",
            o.revoked_by,
            time(o.revoked_at.as_ref()).unwrap_or_default()
        );
    }
    println!("  ledger:    #{}", o.ledger_index);
}

async fn client(target: &ServerArgs) -> Result<(OversightServiceClient<Channel>, String)> {
    let (channel, bearer) = target.connect().await?;
    Ok((OversightServiceClient::new(channel), bearer))
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `lexecon escalations ...`.
pub(crate) fn run_escalations(cmd: &EscalationsCommand) -> Result<Verdict> {
    let rt = runtime()?;
    let now = SystemClock.now();
    match cmd {
        EscalationsCommand::List {
            state,
            page_size,
            page_token,
            json,
            target,
        } => {
            let page = rt.block_on(async {
                let (mut c, bearer) = client(target).await?;
                let request = pb::ListEscalationsRequest {
                    state: state.map_or(0, i32::from),
                    page_size: *page_size,
                    page_token: page_token.clone().unwrap_or_default(),
                };
                c.list_escalations(authed(request, &bearer)?)
                    .await
                    .map_err(status_error)
            })?;
            let page = page.into_inner();
            if *json {
                print_json(&json!({
                    "escalations": page.escalations.iter().map(|e| escalation_json(e, now)).collect::<Vec<_>>(),
                    "next_page_token": nonempty(&page.next_page_token),
                }))?;
            } else if page.escalations.is_empty() {
                println!("no escalations");
            } else {
                println!(
                    "{:<30}  {:<9}  {:<8}  {:<14}  {:<9}  REQUEST",
                    "ESCALATION", "STATE", "PRIORITY", "DEADLINE", "APPROVALS"
                );
                for e in &page.escalations {
                    let approvals = e.approvals.iter().filter(|a| a.approve).count();
                    println!(
                        "{:<30}  {:<9}  {:<8}  {:<14}  {:<9}  {} wants {}",
                        e.escalation_id,
                        state_name(e.state),
                        priority_word(e.priority),
                        time_left(e, now),
                        format!("{approvals}/{}", e.approvals_required),
                        e.actor,
                        e.proposed_action
                    );
                }
                if !page.next_page_token.is_empty() {
                    println!("more: --page-token {}", page.next_page_token);
                }
            }
            Ok(Verdict::Yes)
        }
        EscalationsCommand::Show { id, json, target } => {
            let response = rt.block_on(async {
                let (mut c, bearer) = client(target).await?;
                let request = pb::GetEscalationRequest {
                    escalation_id: id.clone(),
                };
                c.get_escalation(authed(request, &bearer)?)
                    .await
                    .map_err(status_error)
            })?;
            let e = response
                .into_inner()
                .escalation
                .ok_or_else(|| anyhow!("the server answered without the escalation"))?;
            if *json {
                print_json(&escalation_json(&e, now))?;
            } else {
                print_escalation(&e, now);
            }
            Ok(Verdict::Yes)
        }
        EscalationsCommand::Approve(args) => resolve(&rt, args, true, now),
        EscalationsCommand::Deny(args) => resolve(&rt, args, false, now),
    }
}

fn resolve(
    rt: &tokio::runtime::Runtime,
    args: &ResolveArgs,
    approve: bool,
    now: Timestamp,
) -> Result<Verdict> {
    let response = rt.block_on(async {
        let (mut c, bearer) = client(&args.target).await?;
        let request = pb::ResolveEscalationRequest {
            escalation_id: args.id.clone(),
            approve,
            reason: args.reason.clone(),
        };
        c.resolve_escalation(authed(request, &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let r = response.into_inner();
    let e = r
        .escalation
        .ok_or_else(|| anyhow!("the server answered without the escalation"))?;
    if args.json {
        let mut v = escalation_json(&e, now);
        if let Some(o) = v.as_object_mut() {
            o.insert("resolved_ledger_index".into(), json!(r.ledger_index));
        }
        print_json(&v)?;
    } else {
        let approvals = e.approvals.iter().filter(|a| a.approve).count();
        let word = if approve { "approved" } else { "denied" };
        println!(
            "{word} {} (recorded at ledger #{}); it is now {}, {approvals} of {} approvals",
            e.escalation_id,
            r.ledger_index,
            state_name(e.state),
            e.approvals_required
        );
        if e.state == i32::from(pb::EscalationState::Pending) {
            println!("  a critical escalation needs another approver");
        }
    }
    Ok(Verdict::Yes)
}

/// `lexecon override ...`.
pub(crate) fn run_override(cmd: &OverrideCommand) -> Result<Verdict> {
    let rt = runtime()?;
    match cmd {
        OverrideCommand::Create(a) => {
            let secs = i64::try_from(a.expires_in.as_secs())
                .map_err(|_| anyhow!("--expires-in is too long"))?;
            let expires_at = SystemClock.now().add_secs(secs);
            let response = rt.block_on(async {
                let (mut c, bearer) = client(&a.target).await?;
                let request = pb::CreateOverrideRequest {
                    kind: a.kind.into(),
                    effect: a.effect.into(),
                    actor: a.actor.clone(),
                    action: a.action.clone(),
                    tool: a.tool.clone(),
                    justification: a.justification.clone(),
                    expires_at: Some(pb_time(expires_at)),
                };
                c.create_override(authed(request, &bearer)?)
                    .await
                    .map_err(status_error)
            })?;
            let o = response
                .into_inner()
                .r#override
                .ok_or_else(|| anyhow!("the server answered without the override"))?;
            if a.json {
                print_json(&override_json(&o))?;
            } else {
                print_override(&o);
            }
            Ok(Verdict::Yes)
        }
        OverrideCommand::List { all, json, target } => {
            let response = rt.block_on(async {
                let (mut c, bearer) = client(target).await?;
                let request = pb::ListOverridesRequest {
                    include_inactive: *all,
                };
                c.list_overrides(authed(request, &bearer)?)
                    .await
                    .map_err(status_error)
            })?;
            let list = response.into_inner().overrides;
            if *json {
                print_json(&json!({
                    "overrides": list.iter().map(override_json).collect::<Vec<_>>(),
                }))?;
            } else if list.is_empty() {
                println!("no overrides");
            } else {
                for o in &list {
                    print_override(o);
                }
            }
            Ok(Verdict::Yes)
        }
        OverrideCommand::Revoke {
            id,
            reason,
            json,
            target,
        } => {
            let response = rt.block_on(async {
                let (mut c, bearer) = client(target).await?;
                let request = pb::RevokeOverrideRequest {
                    override_id: id.clone(),
                    reason: reason.clone(),
                };
                c.revoke_override(authed(request, &bearer)?)
                    .await
                    .map_err(status_error)
            })?;
            let r = response.into_inner();
            let o = r
                .r#override
                .ok_or_else(|| anyhow!("the server answered without the override"))?;
            if *json {
                let mut v = override_json(&o);
                if let Some(m) = v.as_object_mut() {
                    m.insert("revoked_ledger_index".into(), json!(r.ledger_index));
                }
                print_json(&v)?;
            } else {
                println!(
                    "revoked {} (recorded at ledger #{})",
                    o.override_id, r.ledger_index
                );
            }
            Ok(Verdict::Yes)
        }
    }
}

fn pb_time(t: Timestamp) -> lexecon_proto::prost_types::Timestamp {
    let micros = t.unix_micros();
    lexecon_proto::prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// `lexecon halt`.
pub(crate) fn run_halt(args: &HaltArgs) -> Result<Verdict> {
    let response = runtime()?.block_on(async {
        let (mut c, bearer) = client(&args.target).await?;
        let request = pb::HaltRequest {
            actor: args.actor.clone(),
            reason: args.reason.clone(),
        };
        c.halt(authed(request, &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let r = response.into_inner();
    if args.json {
        print_json(&json!({
            "halt_id": r.halt_id,
            "actor": nonempty(&args.actor),
            "ledger_index": r.ledger_index,
        }))?;
    } else {
        let whom = nonempty(&args.actor).map_or_else(
            || "every actor".to_owned(),
            |a| format!("actors matching {a}"),
        );
        println!(
            "halted {whom}: {} (recorded at ledger #{}); end it with `lexecon resume {}`",
            r.halt_id, r.ledger_index, r.halt_id
        );
    }
    Ok(Verdict::Yes)
}

/// `lexecon resume`.
pub(crate) fn run_resume(args: &ResumeArgs) -> Result<Verdict> {
    let response = runtime()?.block_on(async {
        let (mut c, bearer) = client(&args.target).await?;
        let request = pb::ResumeRequest {
            halt_id: args.halt_id.clone(),
            reason: args.reason.clone(),
        };
        c.resume(authed(request, &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let r = response.into_inner();
    if args.json {
        print_json(&json!({"halt_id": args.halt_id, "ledger_index": r.ledger_index}))?;
    } else {
        println!(
            "resumed {} (recorded at ledger #{})",
            args.halt_id, r.ledger_index
        );
    }
    Ok(Verdict::Yes)
}

fn event_json(e: &pb::Event) -> Value {
    let payload: Value = serde_json::from_str(&e.payload_json).unwrap_or(Value::Null);
    json!({
        "ledger_index": e.ledger_index,
        "kind": e.kind,
        "timestamp": time(e.timestamp.as_ref()),
        "payload": payload,
    })
}

/// `lexecon events ...`.
pub(crate) fn run_events(cmd: &EventsCommand) -> Result<Verdict> {
    let EventsCommand::Watch {
        from,
        kinds,
        count,
        json,
        target,
    } = cmd;
    if *count == Some(0) {
        return Ok(Verdict::Yes);
    }
    runtime()?.block_on(async {
        let mut next = *from;
        let mut printed = 0u64;
        let mut retries = 0u32;
        loop {
            let stream = async {
                let (mut c, bearer) = client(target).await?;
                let request = pb::WatchEventsRequest {
                    from_index: next,
                    kinds: kinds.clone(),
                };
                c.watch_events(authed(request, &bearer)?)
                    .await
                    .map_err(status_error)
            }
            .await;
            let mut stream = match stream {
                Ok(s) => s.into_inner(),
                // A restarting server: try again for a while.
                Err(e) if retries < 30 && next.is_some() => {
                    retries += 1;
                    eprintln!("lexecon: {e:#}; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        retries = 0;
                        let Some(e) = m.event else { continue };
                        next = Some(e.ledger_index.saturating_add(1));
                        if *json {
                            println!("{}", event_json(&e));
                        } else {
                            println!(
                                "#{:<8} {}  {:<24} {}",
                                e.ledger_index,
                                time(e.timestamp.as_ref()).unwrap_or_default(),
                                e.kind,
                                e.payload_json
                            );
                        }
                        printed += 1;
                        if count.is_some_and(|c| printed >= c) {
                            return Ok(Verdict::Yes);
                        }
                    }
                    Ok(None) => break,
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Aborted
                        ) =>
                    {
                        eprintln!("lexecon: {}; reconnecting", status.message());
                        if next.is_none() {
                            bail!(
                                "the event stream broke before any event arrived: {}",
                                status.message()
                            );
                        }
                        break;
                    }
                    Err(status) => return Err(status_error(status)),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// `lexecon accountability`.
pub(crate) fn run_accountability(args: &AccountabilityArgs) -> Result<Verdict> {
    let response = runtime()?.block_on(async {
        let (mut c, bearer) = client(&args.target).await?;
        let request = pb::GetAccountabilityRequest {
            decision_id: args.decision_id.clone(),
        };
        c.get_accountability(authed(request, &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let a = response.into_inner();
    let policy = a.policy.clone().unwrap_or_default();
    let hash: String = policy.hash.iter().map(|b| format!("{b:02x}")).collect();
    if args.json {
        print_json(&json!({
            "decision_id": a.decision_id,
            "decision_maker": maker_word(a.decision_maker),
            "responsibility_level": level_word(a.responsibility_level),
            "asking_principal": a.asking_principal,
            "policy": {
                "name": policy.name,
                "version": policy.version,
                "hash": hash,
                "loaded_by": nonempty(&policy.loaded_by),
                "ledger_index": (!policy.loaded_by.is_empty()).then_some(policy.ledger_index),
            },
            "resolvers": a.resolvers.iter().map(approver_json).collect::<Vec<_>>(),
            "override_author": nonempty(&a.override_author),
            "override_id": nonempty(&a.override_id),
            "escalation_id": nonempty(&a.escalation_id),
            "ledger_indexes": a.ledger_indexes,
        }))?;
        return Ok(Verdict::Yes);
    }
    println!(
        "{}  {} / {}",
        a.decision_id,
        maker_word(a.decision_maker),
        level_word(a.responsibility_level)
    );
    println!("  asked by:  {}", a.asking_principal);
    let loaded = if policy.loaded_by.is_empty() {
        String::new()
    } else {
        format!(
            ", loaded by {} [#{}]",
            policy.loaded_by, policy.ledger_index
        )
    };
    println!(
        "  policy:    {} {} ({hash}){loaded}",
        policy.name, policy.version
    );
    if !a.escalation_id.is_empty() {
        println!("  escalation: {}", a.escalation_id);
    }
    for r in &a.resolvers {
        let creator = nonempty(&r.key_creator)
            .map(|c| format!(", key created by {c}"))
            .unwrap_or_default();
        println!(
            "  {} by {} ({}{creator}{})  [#{}]",
            if r.approve { "approved" } else { "denied" },
            r.principal,
            r.principal_kind,
            if r.mfa_verified { ", mfa" } else { "" },
            r.ledger_index
        );
    }
    if !a.override_id.is_empty() {
        println!("  override:  {} by {}", a.override_id, a.override_author);
    }
    let indexes: Vec<String> = a.ledger_indexes.iter().map(|i| format!("#{i}")).collect();
    println!("  records:   {}", indexes.join(" "));
    Ok(Verdict::Yes)
}
