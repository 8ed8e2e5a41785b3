//! `lexecon bench decide`: a load generator that drives Decide calls at a server and
//! reports decisions/s and latency percentiles, over gRPC, over HTTP/1.1 JSON
//! (`POST /v1/decide`), or both in the same run.

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

With --protocol http the same calls go to POST /v1/decide as JSON over HTTP/1.1
keep-alive, one connection per call in flight (HTTP/1.1 has no multiplexing, so
--connections does not apply). With --protocol both, gRPC runs first and then HTTP for
the same duration, and the report gives HTTP as a share of gRPC in the same run.

Examples:
  lexecon bench decide --concurrency 64 --connections 4 --duration 10 --json
  lexecon bench decide --concurrency 64 --duration 10 --protocol both

With --flood-concurrency N --flood-token KEY, the load runs twice: alone, then while
KEY's principal keeps N calls in flight (make N 20 times server.max_concurrent_requests
to see the bound work). The report compares the two runs' latencies, says how the flood
was answered (refused at once with RESOURCE_EXHAUSTED beyond its share) and, with
--health-url, how fast health answered during the flood:
  lexecon bench decide --concurrency 4 --duration 10 --flood-concurrency 1280 \\
    --flood-token \"$FLOOD_KEY\" --health-url http://127.0.0.1:9464/healthz")]
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
    /// What the calls go over: gRPC `Decide`, HTTP/1.1 `POST /v1/decide` (JSON), or both,
    /// one after the other, for the comparison.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// Afterwards, drive the server's health check (a trivial tonic handler, no auth,
    /// no work) the same way for the same time, and report Decide as a share of it.
    #[arg(long)]
    pub with_echo: bool,
    /// Also measure the same load while another principal floods the server with this
    /// many calls in flight (use 20 times `server.max_concurrent_requests`): the report
    /// gives both runs, what the flood was answered and, with --health-url, how fast
    /// health answered meanwhile.
    #[arg(long, requires = "flood_token")]
    pub flood_concurrency: Option<usize>,
    /// The API key of the flooding principal: another principal than --token's.
    #[arg(long, env = "LEXECON_FLOOD_TOKEN", hide_env_values = true)]
    pub flood_token: Option<String>,
    /// During the flooded run, GET this URL (the metrics port's /healthz) every 10 ms
    /// and report its latency, e.g. http://127.0.0.1:9464/healthz.
    #[arg(long, requires = "flood_concurrency")]
    pub health_url: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the flooding principal was answered.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct FloodFigures {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Decided (any outcome).
    pub decided: u64,
    /// Refused with RESOURCE_EXHAUSTED (the bound, its share, or its rate limit).
    pub refused: u64,
    /// Any other failure.
    pub errors: u64,
    /// The first failure that was not a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// How the health probe fared during the flood.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct HealthFigures {
    pub probes: u64,
    /// Probes that got no 200 (or no answer within 2 s).
    pub failures: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the load goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// gRPC `DecisionService/Decide` over HTTP/2.
    Grpc,
    /// `POST /v1/decide` with a JSON body over HTTP/1.1 keep-alive.
    Http,
    /// gRPC, then HTTP for the same time, compared.
    Both,
}

/// What one load measured.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Figures {
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
}

/// What one bench run measured. The top-level figures are gRPC's, except with
/// `--protocol http`, where they are HTTP's.
#[derive(Debug, serde::Serialize)]
pub(crate) struct BenchReport {
    /// "grpc" or "http": what the top-level figures measured.
    pub protocol: &'static str,
    #[serde(flatten)]
    pub figures: Figures,
    /// Health checks per second under the same load (with `--with-echo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_per_sec: Option<f64>,
    /// `decisions_per_sec / echo_per_sec` (with `--with-echo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_echo: Option<f64>,
    /// The same load over HTTP/1.1 JSON, after the gRPC run (with `--protocol both`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Figures>,
    /// `http.decisions_per_sec / decisions_per_sec` (with `--protocol both`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_to_grpc: Option<f64>,
    /// The same load again while another principal floods (with `--flood-concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub under_flood: Option<Figures>,
    /// `under_flood.p99_ms / p99_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_under_flood_ratio: Option<f64>,
    /// What the flood was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood: Option<FloodFigures>,
    /// Health latency during the flood (with `--health-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_under_flood: Option<HealthFigures>,
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
    let (protocol, figures) = match args.protocol {
        Protocol::Grpc | Protocol::Both => ("grpc", rt.block_on(bench(args))?),
        Protocol::Http => ("http", rt.block_on(bench_http(args))?),
    };
    let mut report = BenchReport {
        protocol,
        figures,
        echo_per_sec: None,
        ratio_to_echo: None,
        http: None,
        http_to_grpc: None,
        under_flood: None,
        p99_under_flood_ratio: None,
        flood: None,
        health_under_flood: None,
    };
    if let (Some(flood_concurrency), Some(flood_token)) =
        (args.flood_concurrency, args.flood_token.as_deref())
    {
        if args.protocol != Protocol::Grpc {
            bail!("--flood-concurrency measures gRPC; drop --protocol");
        }
        let (under, flood, health) =
            rt.block_on(bench_flooded(args, flood_concurrency, flood_token))?;
        report.p99_under_flood_ratio = Some(share(under.p99_ms, report.figures.p99_ms));
        report.under_flood = Some(under);
        report.flood = Some(flood);
        report.health_under_flood = health;
    }
    if args.with_echo {
        let echo = rt.block_on(bench_echo(args))?;
        report.echo_per_sec = Some(echo);
        report.ratio_to_echo = Some(share(report.figures.decisions_per_sec, echo));
    }
    if args.protocol == Protocol::Both {
        let http = rt.block_on(bench_http(args))?;
        report.http_to_grpc = Some(share(
            http.decisions_per_sec,
            report.figures.decisions_per_sec,
        ));
        report.http = Some(http);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let first = match args.protocol {
            Protocol::Grpc => "",
            Protocol::Http => "HTTP/1.1 JSON: ",
            Protocol::Both => "gRPC: ",
        };
        print_figures(first, &report.figures);
        if let (Some(http), Some(ratio)) = (&report.http, report.http_to_grpc) {
            print_figures("HTTP/1.1 JSON: ", http);
            println!(
                "HTTP {:.0}/s = {:.0}% of gRPC {:.0}/s in the same run",
                http.decisions_per_sec,
                ratio * 100.0,
                report.figures.decisions_per_sec
            );
        }
    }
    if !args.json {
        print_flood(&report);
    }
    let errors = report.figures.errors
        + report.http.as_ref().map_or(0, |h| h.errors)
        + report.under_flood.as_ref().map_or(0, |h| h.errors)
        + report.health_under_flood.as_ref().map_or(0, |h| h.failures);
    Ok(if errors == 0 {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

/// `part / whole`, 0 when nothing was measured.
fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

fn print_figures(what: &str, f: &Figures) {
    println!(
        "{what}{:.0} decisions/s over {:.1}s ({} calls, {} errors; concurrency {}, {} connections)\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\noutcomes: {:?}",
        f.decisions_per_sec,
        f.duration_secs,
        f.total,
        f.errors,
        f.concurrency,
        f.connections,
        f.p50_ms,
        f.p90_ms,
        f.p99_ms,
        f.max_ms,
        f.outcomes
    );
}

fn print_flood(report: &BenchReport) {
    let (Some(under), Some(flood)) = (&report.under_flood, &report.flood) else {
        return;
    };
    print_figures("Under a flood from another principal: ", under);
    println!(
        "p99 {:.2} ms under the flood = {:.1}x the {:.2} ms without it",
        under.p99_ms,
        report.p99_under_flood_ratio.unwrap_or(0.0),
        report.figures.p99_ms
    );
    println!(
        "the flood ({} in flight): {} decided, {} refused (RESOURCE_EXHAUSTED), {} other errors",
        flood.concurrency, flood.decided, flood.refused, flood.errors
    );
    if let Some(first) = &flood.first_error {
        println!("  first other error: {first}");
    }
    if let Some(h) = &report.health_under_flood {
        println!(
            "health during the flood: {} probes, {} failed; p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            h.probes, h.failures, h.p50_ms, h.p99_ms, h.max_ms
        );
    }
}

/// The measured load again while `flood_concurrency` calls from `flood_token` are kept
/// in flight, and a health probe every 10 ms when asked.
async fn bench_flooded(
    args: &BenchDecideArgs,
    flood_concurrency: usize,
    flood_token: &str,
) -> Result<(Figures, FloodFigures, Option<HealthFigures>)> {
    let url = args.server.server_url()?;
    let template = template(args);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The flood runs on a thread and runtime of its own, over connections of its own
    // (one per 128 calls in flight), so that the measured calls do not queue behind it
    // in this process: what is measured is the server's fairness, not the client's.
    let flood = {
        let (url, token, stop) = (url.clone(), flood_token.to_owned(), stop.clone());
        let connections = flood_concurrency.div_ceil(128).max(1);
        std::thread::spawn(move || -> Result<FloodFigures> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the flood's runtime")?;
            rt.block_on(flood(
                &url,
                connections,
                flood_concurrency,
                &template,
                &token,
                &stop,
            ))
        })
    };
    let probe = args.health_url.clone().map(|health| {
        let stop = stop.clone();
        tokio::spawn(async move { probe_health(&health, &stop).await })
    });
    // Let the flood fill the server before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let under = bench(args).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total = flood
        .join()
        .map_err(|_| anyhow!("the flood's thread panicked"))??;
    let health = match probe {
        Some(task) => Some(task.await??),
        None => None,
    };
    Ok((under?, total, health))
}

/// Keeps `concurrency` Decide calls from `token` in flight until `stop`.
async fn flood(
    url: &str,
    connections: usize,
    concurrency: usize,
    template: &DecideRequest,
    token: &str,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<FloodFigures> {
    let channels = connect_all(url, connections).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let channel = channel_for(&channels, i)?;
        let (template, token, stop) = (template.clone(), token.to_owned(), stop.clone());
        tasks.spawn(async move {
            let mut client = DecisionServiceClient::new(channel);
            let mut f = FloodFigures::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(request) = authed(template.clone(), &token) else {
                    f.errors += 1;
                    break;
                };
                match client.decide(request).await {
                    Ok(_) => f.decided += 1,
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                        f.refused += 1;
                        // A refused flood comes straight back; let the other tasks run.
                        tokio::task::yield_now().await;
                    }
                    Err(s) => {
                        f.errors += 1;
                        f.first_error
                            .get_or_insert_with(|| status_error(s).to_string());
                    }
                }
            }
            f
        });
    }
    let mut total = FloodFigures {
        concurrency,
        ..FloodFigures::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let f = joined?;
        total.decided += f.decided;
        total.refused += f.refused;
        total.errors += f.errors;
        total.first_error = total.first_error.or(f.first_error);
    }
    Ok(total)
}

/// GETs `url` every 10 ms until `stop`, each on a fresh connection, as a probe would.
async fn probe_health(url: &str, stop: &std::sync::atomic::AtomicBool) -> Result<HealthFigures> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| anyhow!("invalid --health-url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--health-url must be an http:// URL (the metrics port), not {url:?}");
    }
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| anyhow!("--health-url {url:?} names no host"))?;
    let path = uri.path().to_owned();
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut failures = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(2), async {
            let mut sender = http_connect(&authority).await?;
            let request = hyper::Request::get(path.as_str())
                .header(hyper::header::HOST, authority.as_str())
                .body(http_body_util::Full::new(hyper::body::Bytes::new()))?;
            let response = sender.send_request(request).await?;
            anyhow::Ok(response.status().is_success())
        })
        .await;
        match answered {
            Ok(Ok(true)) => {
                latencies_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies_us.sort_unstable();
    let pct = |p: f64| {
        let idx = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies_us.get(idx).copied().unwrap_or(0)) / 1000.0
    };
    Ok(HealthFigures {
        probes: latencies_us.len() as u64 + failures,
        failures,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: f64::from(latencies_us.last().copied().unwrap_or(0)) / 1000.0,
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

/// The request of every call.
fn template(args: &BenchDecideArgs) -> DecideRequest {
    DecideRequest {
        actor: args.actor.clone(),
        proposed_action: args.action.clone(),
        tool: args.tool.clone(),
        user_intent: "lexecon bench decide".to_owned(),
        ..Default::default()
    }
}

/// What one task measured: latencies of successful calls (µs), failed calls, outcomes,
/// and the first error.
type TaskResult = (Vec<u32>, u64, HashMap<String, u64>, Option<String>);

async fn bench(args: &BenchDecideArgs) -> Result<Figures> {
    let url = args.server.server_url()?;
    let bearer = args.server.bearer()?;
    let channels = connect_all(&url, args.connections).await?;
    let template = template(args);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
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
    collect(args, tasks, started, deadline, args.connections).await
}

/// The same load as [`bench`] as JSON to `POST /v1/decide` over HTTP/1.1 keep-alive:
/// one connection per task, since HTTP/1.1 carries one request at a time.
async fn bench_http(args: &BenchDecideArgs) -> Result<Figures> {
    let url = args.server.server_url()?;
    let bearer = args.server.bearer()?;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| anyhow!("invalid --server {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--protocol http needs an http:// --server URL, not {url:?}");
    }
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| anyhow!("--server {url:?} names no host"))?;
    let t = template(args);
    let body = hyper::body::Bytes::from(serde_json::to_vec(&serde_json::json!({
        "actor": t.actor,
        "proposed_action": t.proposed_action,
        "tool": t.tool,
        "user_intent": t.user_intent,
    }))?);
    let auth = hyper::header::HeaderValue::from_str(&format!("Bearer {bearer}"))
        .map_err(|_| anyhow!("the token holds characters an HTTP header cannot carry"))?;
    // Connect every task first, so connection set-up is not measured and a server that
    // does not answer is one clear error.
    let mut senders = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        senders.push(http_connect(&authority).await.map_err(|e| {
            anyhow!(
                "no Lexecon server answers HTTP at {url} ({e}); start one with `lexecon server` or pass --server"
            )
        })?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (authority, body, auth) = (authority.clone(), body.clone(), auth.clone());
        tasks.spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut outcomes: HashMap<String, u64> = HashMap::new();
            let mut first_error: Option<String> = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                match http_decide(&mut sender, &authority, &auth, body.clone()).await {
                    Ok(outcome) => {
                        latencies_us
                            .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        *outcomes.entry(outcome).or_default() += 1;
                    }
                    Err(HttpFailure::Answer(e)) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                    Err(HttpFailure::Connection(e)) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        match http_connect(&authority).await {
                            Ok(fresh) => sender = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies_us, errors, outcomes, first_error)
        });
    }
    collect(args, tasks, started, deadline, args.concurrency).await
}

type HttpSender = hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>;

/// One HTTP/1.1 connection to `authority` (`host:port`).
async fn http_connect(authority: &str) -> Result<HttpSender> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Why an HTTP call failed: the server answered with an error, or the connection broke.
enum HttpFailure {
    Answer(String),
    Connection(String),
}

/// The `outcome` of a decision, as JSON holds it.
#[derive(serde::Deserialize)]
struct DecisionOutcome {
    outcome: String,
}

/// One `POST /v1/decide`; the decision's outcome.
async fn http_decide(
    sender: &mut HttpSender,
    authority: &str,
    auth: &hyper::header::HeaderValue,
    body: hyper::body::Bytes,
) -> Result<String, HttpFailure> {
    use http_body_util::BodyExt as _;
    let broken = |e: hyper::Error| HttpFailure::Connection(format!("HTTP connection: {e}"));
    let request = hyper::Request::post("/v1/decide")
        .header(hyper::header::HOST, authority)
        .header(hyper::header::AUTHORIZATION, auth)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(body))
        .map_err(|e| HttpFailure::Answer(format!("building the request: {e}")))?;
    sender.ready().await.map_err(broken)?;
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(broken)?
        .to_bytes();
    if !status.is_success() {
        return Err(HttpFailure::Answer(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    serde_json::from_slice::<DecisionOutcome>(&bytes)
        .map(|d| d.outcome)
        .map_err(|e| HttpFailure::Answer(format!("a decision that is not JSON ({e})")))
}

/// Shows progress until `deadline`, joins the tasks and sums up what they measured.
async fn collect(
    args: &BenchDecideArgs,
    mut tasks: tokio::task::JoinSet<TaskResult>,
    started: Instant,
    deadline: Instant,
    connections: usize,
) -> Result<Figures> {
    let progress = std::io::stderr().is_terminal() && !args.json;
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
    Ok(Figures {
        decisions_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: f64::from(all.last().copied().unwrap_or(0)) / 1000.0,
        errors,
        total: all.len() as u64 + errors,
        duration_secs: elapsed,
        concurrency: args.concurrency,
        connections,
        outcomes,
    })
}
