//! `lexecon decide` and `lexecon bench decide`: ask a server for decisions.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use lexecon_proto::v1::decision_service_client::DecisionServiceClient;
use lexecon_proto::v1::{DecideRequest, DecideResponse, LlmUsage, Outcome, PolicyMode, RiskLevel};
use serde_json::json;

use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// The fields of a proposed action.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ActionArgs {
    /// Who proposes the action, e.g. ai_agent:customer_service.
    #[arg(long)]
    pub actor: String,
    /// What the actor proposes, verb:object, e.g. read:customer_data.
    #[arg(long)]
    pub action: String,
    /// The tool the action goes through, e.g. database_query.
    #[arg(long)]
    pub tool: Option<String>,
    /// Why, in the agent's words (recorded, never matched).
    #[arg(long, default_value = "")]
    pub intent: String,
    /// A class of data the action touches (repeatable), e.g. pii.
    #[arg(long = "data-class", value_name = "CLASS")]
    pub data_classes: Vec<String>,
    /// The caller's risk estimate, 1 (lowest) to 5.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub risk_level: Option<u32>,
    /// Ask for a mode; it can only make the decision stricter.
    #[arg(long, value_parser = ["permissive", "strict", "paranoid"])]
    pub mode: Option<String>,
    /// A context attribute KEY=VALUE (repeatable), e.g. region=eu-west.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub context: Vec<(String, String)>,
    /// Idempotency key: the same key from the same caller returns the same decision.
    #[arg(long)]
    pub request_id: Option<String>,
    /// For an LLM call: the model (turns on budget, rate and model-access checks).
    #[arg(long = "llm-model", value_name = "MODEL")]
    pub llm_model: Option<String>,
    /// For an LLM call: the user charged [default: anonymous].
    #[arg(long = "llm-user", value_name = "USER", requires = "llm_model")]
    pub llm_user: Option<String>,
    /// For an LLM call: a role of the user (repeatable).
    #[arg(long = "llm-role", value_name = "ROLE", requires = "llm_model")]
    pub llm_roles: Vec<String>,
    /// For an LLM call: estimated prompt tokens.
    #[arg(
        long = "llm-input-tokens",
        value_name = "N",
        default_value_t = 0,
        requires = "llm_model"
    )]
    pub llm_input_tokens: u64,
    /// For an LLM call: the most completion tokens.
    #[arg(
        long = "llm-max-output-tokens",
        value_name = "N",
        default_value_t = 0,
        requires = "llm_model"
    )]
    pub llm_max_output_tokens: u64,
}

/// Parses `KEY=VALUE`.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

impl ActionArgs {
    pub(crate) fn to_request(&self) -> DecideRequest {
        let mode = match self.mode.as_deref() {
            Some("permissive") => PolicyMode::Permissive,
            Some("strict") => PolicyMode::Strict,
            Some("paranoid") => PolicyMode::Paranoid,
            _ => PolicyMode::Unspecified,
        };
        DecideRequest {
            actor: self.actor.clone(),
            proposed_action: self.action.clone(),
            tool: self.tool.clone().unwrap_or_default(),
            user_intent: self.intent.clone(),
            data_classes: self.data_classes.clone(),
            risk_level: self.risk_level.unwrap_or(0),
            policy_mode: mode as i32,
            context: self.context.iter().cloned().collect(),
            request_id: self.request_id.clone().unwrap_or_default(),
            llm: self.llm_model.as_ref().map(|model| LlmUsage {
                model: model.clone(),
                user_id: self.llm_user.clone().unwrap_or_default(),
                roles: self.llm_roles.clone(),
                estimated_input_tokens: self.llm_input_tokens,
                max_output_tokens: self.llm_max_output_tokens,
            }),
        }
    }
}

/// `lexecon decide`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Exit codes: 0 approved, 1 denied or escalated, 2 error (no server, bad token, bad input).

Examples:
  lexecon decide --actor ai_agent:customer_service --action read:customer_data \\
      --tool database_query --data-class pii --intent 'answer ticket 4711'
  lexecon decide --actor ai_agent:assistant --action llm:chat --tool openai_api \\
      --llm-model gpt-4o-mini --llm-user alice --llm-input-tokens 1200 --llm-max-output-tokens 400 --json")]
pub(crate) struct DecideArgs {
    #[command(flatten)]
    pub action: ActionArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run_decide(args: &DecideArgs) -> Result<Verdict> {
    let rt = runtime()?;
    let response = rt.block_on(async {
        let (channel, bearer) = args.server.connect().await?;
        let mut client = DecisionServiceClient::new(channel);
        client
            .decide(authed(args.action.to_request(), &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let response = response.into_inner();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decision_json(&response))?
        );
    } else {
        print_decision(&response);
    }
    Ok(if response.outcome() == Outcome::Approved {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Approved => "approved",
        Outcome::Denied => "denied",
        Outcome::Escalated => "escalated",
        Outcome::Unspecified => "unspecified",
    }
}

fn risk_word(level: RiskLevel) -> &'static str {
    match level {
        RiskLevel::Low => "low",
        RiskLevel::Medium => "medium",
        RiskLevel::High => "high",
        RiskLevel::Critical => "critical",
        RiskLevel::Unspecified => "unspecified",
    }
}

fn mode_word(mode: PolicyMode) -> &'static str {
    match mode {
        PolicyMode::Permissive => "permissive",
        PolicyMode::Strict => "strict",
        PolicyMode::Paranoid => "paranoid",
        PolicyMode::Unspecified => "unspecified",
    }
}

fn rfc3339(ts: Option<&lexecon_proto::prost_types::Timestamp>) -> Option<String> {
    let ts = ts?;
    let micros = ts
        .seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(ts.nanos / 1_000))?;
    Some(lexecon_core::Timestamp::from_unix_micros(micros).to_rfc3339())
}

/// The decision as JSON: enums as words, bytes as hex, times as RFC 3339.
pub(crate) fn decision_json(r: &DecideResponse) -> serde_json::Value {
    let dims = r.risk_dimensions.as_ref().map(|d| {
        let one = |dim: &Option<lexecon_proto::v1::RiskDimension>| {
            dim.as_ref().map(|d| {
                json!({
                    "score": d.score,
                    "factors": d.factors.iter().map(|f| json!({"rule_id": f.rule_id, "points": f.points, "description": f.description})).collect::<Vec<_>>(),
                })
            })
        };
        json!({
            "security": one(&d.security), "privacy": one(&d.privacy), "compliance": one(&d.compliance),
            "operational": one(&d.operational), "reputational": one(&d.reputational), "financial": one(&d.financial),
        })
    });
    json!({
        "decision_id": r.decision_id,
        "request_id": r.request_id,
        "outcome": outcome_word(r.outcome()),
        "effective_mode": mode_word(r.effective_mode()),
        "reasoning": r.reasoning,
        "reasons": r.reasons,
        "risk_level": risk_word(r.risk_level()),
        "risk_score": r.risk_score,
        "risk_dimensions": dims,
        "capability_token": r.capability_token,
        "token_expires_at": rfc3339(r.token_expires_at.as_ref()),
        "reservation_id": r.reservation_id,
        "ledger_index": r.ledger_index,
        "ledger_leaf_hash": hex_string(&r.ledger_leaf_hash),
        "policy_version_hash": hex_string(&r.policy_version_hash),
        "decided_at": rfc3339(r.decided_at.as_ref()),
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_decision(r: &DecideResponse) {
    println!(
        "{}  {}",
        outcome_word(r.outcome()).to_uppercase(),
        r.decision_id
    );
    println!("  reasoning: {}", r.reasoning);
    if !r.reasons.is_empty() {
        println!("  reasons:   {}", r.reasons.join(", "));
    }
    println!("  mode:      {}", mode_word(r.effective_mode()));
    println!(
        "  risk:      {} ({}/100)",
        risk_word(r.risk_level()),
        r.risk_score
    );
    if !r.capability_token.is_empty() {
        println!("  token:     {}", r.capability_token);
        if let Some(exp) = rfc3339(r.token_expires_at.as_ref()) {
            println!("  expires:   {exp}");
        }
    }
    if !r.reservation_id.is_empty() {
        println!("  budget:    reservation {}", r.reservation_id);
    }
    println!(
        "  ledger:    #{} leaf {}",
        r.ledger_index,
        hex_string(&r.ledger_leaf_hash)
    );
    println!("  policy:    {}", hex_string(&r.policy_version_hash));
}

/// `lexecon bench decide`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Sends Decide calls for DURATION seconds from CONCURRENCY tasks spread over CONNECTIONS
HTTP/2 connections, and reports decisions/s and latency percentiles. Every call is a
real, durable, ledgered decision. The default action is approved by the starter policy.

Example:
  lexecon bench decide --concurrency 64 --connections 4 --duration 10 --json")]
pub(crate) struct BenchDecideArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections to spread them over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Threads the load generator runs on. One keeps up with 64 calls in flight and leaves
    /// the other cores to a server on the same machine.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// The actor of every call.
    #[arg(long, default_value = "ai_agent:customer_service")]
    pub actor: String,
    /// The action of every call.
    #[arg(long, default_value = "read:customer_data")]
    pub action: String,
    /// The tool of every call.
    #[arg(long, default_value = "database_query")]
    pub tool: String,
    /// Afterwards, drive the server's health check (a trivial tonic handler, no auth,
    /// no work) the same way for the same time, and report Decide as a share of it.
    #[arg(long)]
    pub with_echo: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one bench run measured.
#[derive(Debug, serde::Serialize)]
pub(crate) struct BenchReport {
    pub decisions_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub total: u64,
    pub duration_secs: f64,
    pub concurrency: usize,
    pub connections: usize,
    pub outcomes: HashMap<String, u64>,
    /// Health checks per second under the same load (with `--with-echo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_per_sec: Option<f64>,
    /// `decisions_per_sec / echo_per_sec` (with `--with-echo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_echo: Option<f64>,
}

pub(crate) fn run_bench(args: &BenchDecideArgs) -> Result<Verdict> {
    if args.concurrency == 0 || args.connections == 0 || args.duration == 0 || args.threads == 0 {
        bail!("--concurrency, --connections, --duration and --threads must be at least 1");
    }
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    }
    .enable_all()
    .build()
    .context("starting the async runtime")?;
    let mut report = rt.block_on(bench(args))?;
    if args.with_echo {
        let echo = rt.block_on(bench_echo(args))?;
        report.echo_per_sec = Some(echo);
        report.ratio_to_echo = Some(if echo > 0.0 {
            report.decisions_per_sec / echo
        } else {
            0.0
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:.0} decisions/s over {:.1}s ({} calls, {} errors; concurrency {}, {} connections)\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\noutcomes: {:?}",
            report.decisions_per_sec,
            report.duration_secs,
            report.total,
            report.errors,
            report.concurrency,
            report.connections,
            report.p50_ms,
            report.p90_ms,
            report.p99_ms,
            report.max_ms,
            report.outcomes
        );
    }
    Ok(if report.errors == 0 {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

/// Health checks per second with the same connections, concurrency and duration.
async fn bench_echo(args: &BenchDecideArgs) -> Result<f64> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let url = args.server.server_url()?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(super::client::connect_coalescing(&url).await?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.concurrency {
        let channel = channels
            .get(i % channels.len())
            .cloned()
            .ok_or_else(|| anyhow!("no connection"))?;
        tasks.spawn(async move {
            let mut client = HealthClient::new(channel);
            let mut done = 0u64;
            while Instant::now() < deadline {
                if client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok()
                {
                    done += 1;
                }
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn bench(args: &BenchDecideArgs) -> Result<BenchReport> {
    let url = args.server.server_url()?;
    let bearer = args.server.bearer()?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(super::client::connect_coalescing(&url).await?);
    }
    let template = DecideRequest {
        actor: args.actor.clone(),
        proposed_action: args.action.clone(),
        tool: args.tool.clone(),
        user_intent: "lexecon bench decide".to_owned(),
        ..Default::default()
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let progress = std::io::stderr().is_terminal() && !args.json;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.concurrency {
        let channel = channels
            .get(i % channels.len())
            .cloned()
            .ok_or_else(|| anyhow!("no connection"))?;
        let template = template.clone();
        let bearer = bearer.clone();
        tasks.spawn(async move {
            let mut client = DecisionServiceClient::new(channel);
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut outcomes: HashMap<String, u64> = HashMap::new();
            let mut first_error: Option<String> = None;
            while Instant::now() < deadline {
                let request = match authed(template.clone(), &bearer) {
                    Ok(r) => r,
                    Err(e) => return (latencies_us, errors + 1, outcomes, Some(e.to_string())),
                };
                let t = Instant::now();
                match client.decide(request).await {
                    Ok(resp) => {
                        latencies_us
                            .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        *outcomes
                            .entry(outcome_word(resp.get_ref().outcome()).to_owned())
                            .or_default() += 1;
                    }
                    Err(status) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| status_error(status).to_string());
                    }
                }
            }
            (latencies_us, errors, outcomes, first_error)
        });
    }
    if progress {
        let mut last = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if last.elapsed() >= Duration::from_secs(1) {
                eprint!(
                    "\r  {:>3.0}s / {}s",
                    started.elapsed().as_secs_f64(),
                    args.duration
                );
                last = Instant::now();
            }
        }
        eprintln!();
    }
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (lat, errs, outs, err) = joined?;
        all.extend(lat);
        errors += errs;
        for (k, v) in outs {
            *outcomes.entry(k).or_default() += v;
        }
        first_error = first_error.or(err);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if all.is_empty() {
        bail!(
            "no call succeeded: {}",
            first_error.unwrap_or_else(|| "no calls were made".to_owned())
        );
    }
    if let Some(err) = &first_error {
        eprintln!("lexecon: warning: {errors} calls failed; the first: {err}");
    }
    all.sort_unstable();
    let pct = |p: f64| {
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all.get(idx).copied().unwrap_or(0)) / 1000.0
    };
    Ok(BenchReport {
        decisions_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: f64::from(all.last().copied().unwrap_or(0)) / 1000.0,
        errors,
        total: all.len() as u64 + errors,
        duration_secs: elapsed,
        concurrency: args.concurrency,
        connections: args.connections,
        outcomes,
        echo_per_sec: None,
        ratio_to_echo: None,
    })
}
