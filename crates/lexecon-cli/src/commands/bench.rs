//! `lexecon bench decide`: a load generator that drives Decide calls at a server and
//! reports decisions/s and latency percentiles.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use lexecon_proto::v1::DecideRequest;
use lexecon_proto::v1::decision_service_client::DecisionServiceClient;
use tonic::transport::Channel;

use super::client::{ServerArgs, authed, status_error};
use super::decide::outcome_word;
use crate::Verdict;

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

/// `connections` connections to the server at `url`, shared round-robin by the tasks.
async fn connect_all(url: &str, connections: usize) -> Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(super::client::connect_coalescing(url).await?);
    }
    Ok(channels)
}

/// The connection of task `i`.
fn channel_for(channels: &[Channel], i: usize) -> Result<Channel> {
    i.checked_rem(channels.len())
        .and_then(|at| channels.get(at))
        .cloned()
        .ok_or_else(|| anyhow!("no connection"))
}

/// Health checks per second with the same connections, concurrency and duration.
async fn bench_echo(args: &BenchDecideArgs) -> Result<f64> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let url = args.server.server_url()?;
    let channels = connect_all(&url, args.connections).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.concurrency {
        let channel = channel_for(&channels, i)?;
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
    let channels = connect_all(&url, args.connections).await?;
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
        let channel = channel_for(&channels, i)?;
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
