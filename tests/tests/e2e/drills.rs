//! Failure drills (issue 20), against the real server with private services
//! (engineering.md "Tests that need services"): PostgreSQL restarted under load, Redis
//! stopped and started again, and the SQLite volume filled up. Each drill starts its own
//! PostgreSQL, Redis or `tmpfs` and stops it in `Drop`; the shared services are never
//! touched. The drills are quick (seconds each) and run in every test run. Outside CI a
//! drill whose tools (or root, for `mount`) are missing says why and returns; under CI
//! (`CI` set, or `RUN_SLOW_TESTS=1`) it fails instead.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lexecon_e2e::*;
use lexecon_proto::v1::{DecideRequest, DecideResponse, Outcome};
use tonic::Code;

use crate::common::{env_refs, init_dir_with, payload, pg_env};

/// No single call may take longer than this, outage or not.
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Under CI (`CI` set, or `RUN_SLOW_TESTS=1` as `.ci/run` sets it) a drill must run.
fn under_ci() -> bool {
    std::env::var_os("CI").is_some() || slow_tests()
}

/// `None` (saying why) when a drill cannot run here; under CI that is a failure.
fn cannot_run(why: &str) -> Option<std::convert::Infallible> {
    assert!(!under_ci(), "this drill must run under CI: {why}");
    eprintln!("note: drill skipped: {why}");
    None
}

/// The path of `tool` on the PATH, if any.
fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16, what: &str) {
    let found = poll(Duration::from_secs(20), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop)
    })
    .await;
    assert!(
        found.is_some(),
        "{what} did not listen on {port} within 20 s"
    );
}

/// One `Decide` with the admin token, bounded by [`CALL_LIMIT`].
async fn decide(
    channel: &tonic::transport::Channel,
    token: &str,
    request: DecideRequest,
) -> Result<DecideResponse, tonic::Status> {
    tokio::time::timeout(
        CALL_LIMIT,
        unary::<DecideRequest, DecideResponse>(
            channel,
            "/lexecon.v1.DecisionService/Decide",
            request,
            Some(token),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("a Decide was not answered within {CALL_LIMIT:?}"))
}

fn with_id(request_id: &str) -> DecideRequest {
    DecideRequest {
        request_id: request_id.to_owned(),
        ..approved_request()
    }
}

/// What one call of a drill got: the decision, or the error.
type Outcomes = Arc<Mutex<Vec<(String, Result<DecideResponse, tonic::Status>)>>>;

/// `tasks` tasks deciding approved requests with distinct request ids until `stop`.
async fn load(
    server: &Server,
    token: &str,
    tasks: usize,
    stop: Arc<AtomicBool>,
    outcomes: Outcomes,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let channel = server.channel().await;
        let (stop, outcomes, token) = (stop.clone(), outcomes.clone(), token.to_owned());
        handles.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("drill-{task}-{n}");
                n += 1;
                let result = decide(&channel, &token, with_id(&id)).await;
                let failed = result.is_err();
                outcomes.lock().unwrap().push((id, result));
                if failed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    handles
}

/// Checks each call of a drill: an approved decision or an error of `allowed` code whose
/// message names one of `needles`. Returns the acknowledged (request id, decision id)
/// pairs and the request ids that failed.
fn classify(
    outcomes: &[(String, Result<DecideResponse, tonic::Status>)],
    allowed: &[Code],
    needles: &[&str],
) -> (HashMap<String, String>, Vec<String>) {
    let mut acked = HashMap::new();
    let mut failed = Vec::new();
    for (id, result) in outcomes {
        match result {
            Ok(r) => {
                assert_eq!(
                    r.outcome(),
                    Outcome::Approved,
                    "{id}: a wrong answer during the drill: {r:?}"
                );
                assert!(r.decision_id.starts_with("dec_"), "{r:?}");
                acked.insert(id.clone(), r.decision_id.clone());
            }
            Err(status) => {
                assert!(
                    allowed.contains(&status.code()),
                    "{id}: {:?} is not an acceptable failure here (want one of {allowed:?}): {status:?}",
                    status.code()
                );
                let message = status.message().to_lowercase();
                assert!(
                    needles.iter().any(|n| message.contains(n)),
                    "{id}: the error does not say what is wrong (want one of {needles:?}): {status:?}"
                );
                failed.push(id.clone());
            }
        }
    }
    let mut messages: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .map(|e| {
            format!(
                "{:?}: {}",
                e.code(),
                e.message()
                    .chars()
                    .take(160)
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect::<String>()
            )
        })
        .collect();
    messages.sort();
    messages.dedup();
    for m in messages.iter().take(8) {
        eprintln!("drill: refused with {m}");
    }
    (acked, failed)
}

/// How long a retry may wait for the claim of a call that failed mid-way: the engine's
/// claim lease (30 s, `CLAIM_LEASE_SECS`) and some slack. A claim whose ledger append
/// failed and whose removal failed too (the database was down) answers `UNAVAILABLE`
/// ("being decided by another call") until the lease ends; then the request is decided
/// afresh, once.
const CLAIM_WAIT: Duration = Duration::from_secs(40);

/// Retries every failed request id with the same id until each is approved (waiting out
/// the claims of calls cut short, see [`CLAIM_WAIT`]) and repeats a few acknowledged ones
/// (each must return its first decision); adds the retried ones to `acked`.
async fn retry_failed(
    channel: &tonic::transport::Channel,
    token: &str,
    acked: &mut HashMap<String, String>,
    failed: &[String],
) {
    let started = Instant::now();
    let mut pending: Vec<String> = failed.to_vec();
    let mut held = 0;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            match decide(channel, token, with_id(&id)).await {
                Ok(r) => {
                    assert_eq!(r.outcome(), Outcome::Approved, "{id}: {r:?}");
                    if let Some(first) = acked.get(&id) {
                        assert_eq!(&r.decision_id, first, "{id} was decided twice");
                    }
                    acked.insert(id, r.decision_id);
                }
                Err(e)
                    if e.code() == Code::Unavailable
                        && e.message().contains("is being decided by another call") =>
                {
                    still.push(id);
                }
                Err(e) => panic!("retrying {id} after recovery failed: {e:?}"),
            }
        }
        if !still.is_empty() {
            held = held.max(still.len());
            assert!(
                started.elapsed() < CLAIM_WAIT,
                "retries still refused after {CLAIM_WAIT:?}: {still:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        pending = still;
    }
    eprintln!(
        "drill: {} failed calls retried in {:?}; {held} waited for the claim lease",
        failed.len(),
        started.elapsed()
    );
    let some: Vec<(String, String)> = acked
        .iter()
        .take(5)
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    for (id, decision_id) in some {
        let r = decide(channel, token, with_id(&id)).await.unwrap();
        assert_eq!(
            r.decision_id, decision_id,
            "{id}: a replay gave another decision"
        );
    }
}

/// Every acknowledged decision is in the ledger exactly once, and no drill request has
/// a second decision entry.
async fn assert_in_ledger(server: &Server, token: &str, acked: &HashMap<String, String>) {
    let mut by_request: HashMap<String, Vec<String>> = HashMap::new();
    for entry in crate::entries_of_kind(server, token, "decision").await {
        let p = payload(&entry);
        if let Some(id) = p["request_id"].as_str().filter(|i| i.starts_with("drill-")) {
            by_request
                .entry(id.to_owned())
                .or_default()
                .push(p["decision_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    for (id, decision_id) in acked {
        assert_eq!(
            by_request.get(id),
            Some(&vec![decision_id.clone()]),
            "{id}: acknowledged {decision_id}, the ledger holds {:?}",
            by_request.get(id)
        );
    }
    let extra: Vec<&String> = by_request
        .keys()
        .filter(|k| !acked.contains_key(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "decisions in the ledger that no call acknowledged even on retry: {extra:?}"
    );
}

/// Polls `Decide` until a fresh request is approved; returns how long that took.
async fn recovers(channel: &tonic::transport::Channel, token: &str, what: &str) -> Duration {
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let found = poll(Duration::from_secs(20), || {
        let n = n.clone();
        async move {
            let id = format!("drill-recover-{}", n.fetch_add(1, Ordering::SeqCst));
            decide(channel, token, with_id(&id))
                .await
                .ok()
                .filter(|r| r.outcome() == Outcome::Approved)
                .map(|r| (id, r.decision_id))
        }
    })
    .await;
    let ((_, _), took) =
        found.unwrap_or_else(|| panic!("decisions did not recover within 20 s after {what}"));
    took
}

// ---------------------------------------------------------------------------------
// PostgreSQL

/// A private PostgreSQL in a temporary directory on a free port, run as the `postgres`
/// OS user when we are root (initdb refuses root); stopped in `Drop`.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivatePg {
    fn start() -> Option<PrivatePg> {
        for tool in ["initdb", "pg_ctl"] {
            if on_path(tool).is_none() {
                cannot_run(&format!("{tool} is not on the PATH"))?;
            }
        }
        let as_postgres = is_root();
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the PostgreSQL directory failed");
        }
        let pg = PrivatePg {
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = pg.data();
        pg.run(&[
            "initdb",
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("pgdata").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a PostgreSQL tool (as `postgres` when we are root); panics when it fails.
    fn run(&self, args: &[&str]) {
        let status = self.command(args).status().unwrap();
        assert!(status.success(), "{args:?} failed: {status}");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log").display().to_string();
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
            "start",
        ]);
    }

    fn stop_server(&self, mode: &str) {
        self.run(&["pg_ctl", "-D", &self.data(), "-m", mode, "-w", "stop"]);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"])
            .status();
    }
}

/// PostgreSQL restarted during a load of decisions: every call is an approved decision
/// or `UNAVAILABLE`, the server reconnects by itself, retries with the same request id
/// give one decision, every acknowledged decision is in the ledger, and it verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load() {
    let started = Instant::now();
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let env = pg_env(&pg.url());
    let env = env_refs(&env);
    let dir = init_dir_with(&env);
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &env);
    eprintln!(
        "postgres drill: setup (initdb, init, server) took {:?}",
        started.elapsed()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let handles = load(&server, &token, 4, stop.clone(), outcomes.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_outage = outcomes.lock().unwrap().len();
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop_server("fast");
        std::thread::sleep(Duration::from_secs(2));
        pg.start_server();
        pg
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.unwrap();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let (mut acked, failed) = classify(
        &outcomes,
        &[Code::Unavailable],
        &[
            "database",
            "postgres",
            "connection",
            "stale",
            "oversight",
            "retry",
            "pool",
        ],
    );
    eprintln!(
        "postgres drill: {} calls ({before_outage} before the outage), {} acknowledged, {} UNAVAILABLE",
        outcomes.len(),
        acked.len(),
        failed.len()
    );
    assert!(before_outage > 0, "no decision before the outage");
    assert!(
        !failed.is_empty(),
        "no call failed while PostgreSQL was down: the drill did not hit the outage"
    );

    let channel = server.channel().await;
    let took = recovers(&channel, &token, "the PostgreSQL restart").await;
    eprintln!("postgres drill: decisions recovered {took:?} after the first post-restart try");
    retry_failed(&channel, &token, &mut acked, &failed).await;
    // The recovery probes are acknowledged decisions too.
    for entry in crate::entries_of_kind(&server, &token, "decision").await {
        let p = payload(&entry);
        if let Some(id) = p["request_id"]
            .as_str()
            .filter(|i| i.starts_with("drill-recover-"))
        {
            acked
                .entry(id.to_owned())
                .or_insert_with(|| p["decision_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_in_ledger(&server, &token, &acked).await;
    drop(server);
    let verify = lexecon(dir.path(), &["verify-ledger", "--database-url", &pg.url()]);
    assert_eq!(verify.code, 0, "{verify:?}");
    drop(pg);
    eprintln!("postgres drill took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------
// Redis

/// A private `redis-server` on a free port, without persistence; killed in `Drop`.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Option<PrivateRedis> {
        if on_path("redis-server").is_none() {
            cannot_run("redis-server is not on the PATH")?;
        }
        let mut redis = PrivateRedis {
            port: free_port(),
            child: None,
        };
        redis.up().await;
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for_port(self.port, "redis-server").await;
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// Redis stopped: LLM decisions are denied (fail closed, naming the budget store) while
/// ordinary decisions are still approved; Redis back on the same port, LLM decisions
/// are approved again without restarting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_fails_llm_decisions_closed_and_recovers() {
    let started = Instant::now();
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let url = redis.url();
    let env = [("LEXECON_REDIS__URL", url.as_str())];
    let dir = crate::init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &env);
    let channel = server.channel().await;
    let llm = || llm_request("drill-user", 10, 10);

    let r = decide(&channel, &token, llm()).await.unwrap();
    assert_eq!(r.outcome(), Outcome::Approved, "Redis up: {r:?}");

    redis.down();
    let r = decide(&channel, &token, llm()).await.unwrap();
    assert_eq!(r.outcome(), Outcome::Denied, "Redis down: {r:?}");
    assert_eq!(r.reasons, ["budget-unavailable"], "{r:?}");
    assert!(r.capability_token.is_empty(), "{r:?}");
    let reasoning = r.reasoning.to_lowercase();
    assert!(
        reasoning.contains("budget") && reasoning.contains("redis"),
        "the denial does not say the budget store (Redis) is unavailable: {r:?}"
    );
    let plain = decide(&channel, &token, approved_request()).await.unwrap();
    assert_eq!(
        plain.outcome(),
        Outcome::Approved,
        "a decision without LLM usage does not need Redis: {plain:?}"
    );

    redis.up().await;
    let back = poll(Duration::from_secs(20), || async {
        decide(&channel, &token, llm())
            .await
            .ok()
            .filter(|r| r.outcome() == Outcome::Approved)
    })
    .await;
    let (_, took) = back.expect("LLM decisions are approved again within 20 s of Redis' return");
    eprintln!(
        "redis drill: LLM decisions approved again {took:?} after Redis came back; took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------
// A full SQLite volume

/// A `tmpfs` of `size` mounted on a temporary directory; unmounted in `Drop`.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            cannot_run("mounting a tmpfs needs root")?;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        if !status.success() {
            cannot_run(&format!("mount -t tmpfs failed: {status}"))?;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the volume `file` is on until the kernel says ENOSPC.
fn fill(file: &Path) {
    use std::io::Write as _;
    let mut out = std::fs::File::create(file).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if let Err(e) = out.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "filling failed otherwise: {e}");
            break;
        }
    }
    // Whatever is left fits less than a chunk: take it byte by byte.
    while out.write_all(&[0]).is_ok() {}
}

/// The SQLite volume full: decisions fail with a clear error (no panic, no wrong
/// answer), health answers; with space again they succeed without a restart, retries
/// give one decision, and the ledger verifies with every acknowledged decision in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_volume_refuses_clearly_and_recovers() {
    let started = Instant::now();
    let Some(volume) = Tmpfs::mount("8m") else {
        return;
    };
    let dir = volume.path();
    let run = lexecon(dir, &["init", "--data-dir", "data"]);
    assert_eq!(run.code, 0, "{run:?}");
    let token = admin_token(&dir.join("data"));
    let server = Server::start(dir, "data", &[]);
    eprintln!(
        "disk drill: setup (mount, init, server) took {:?}",
        started.elapsed()
    );
    let channel = server.channel().await;

    let mut outcomes = Vec::new();
    for n in 0..5 {
        let id = format!("drill-before-{n}");
        outcomes.push((id.clone(), decide(&channel, &token, with_id(&id)).await));
    }
    let filler = dir.join("filler");
    fill(&filler);
    // Until the database needs a new page some calls may still fit; then they must fail.
    let mut refused = None;
    for n in 0..400 {
        let id = format!("drill-full-{n}");
        let result = decide(&channel, &token, with_id(&id)).await;
        let failed = result.as_ref().err().cloned();
        outcomes.push((id, result));
        if let Some(status) = failed {
            refused = Some(status);
            break;
        }
    }
    let refused = refused.expect("400 decisions were approved on a full volume");
    assert!(
        refused.message().contains("free space"),
        "the refusal says what to do: {refused:?}"
    );
    eprintln!(
        "disk drill: refused after {} calls on the full volume: {refused:?}",
        outcomes.len() - 5
    );
    // Again, several times: the same clear answer, not a different one.
    for n in 0..5 {
        let id = format!("drill-still-full-{n}");
        outcomes.push((id.clone(), decide(&channel, &token, with_id(&id)).await));
    }
    // Without a request id there is no claim to write: the ledger append meets the full
    // volume itself.
    let mut plain_acked = Vec::new();
    for _ in 0..3 {
        match decide(&channel, &token, approved_request()).await {
            Ok(r) => {
                assert_eq!(r.outcome(), Outcome::Approved, "{r:?}");
                plain_acked.push(r.decision_id);
            }
            Err(e) => {
                assert!(
                    matches!(e.code(), Code::Unavailable | Code::ResourceExhausted)
                        && e.message().contains("full")
                        && e.message().contains("free space"),
                    "a ledger append on a full volume: {e:?}"
                );
                eprintln!(
                    "disk drill: without a request id: {:?}: {}",
                    e.code(),
                    e.message()
                );
            }
        }
    }
    let mut health = crate::tonic_health_client(&server).await;
    let status = health
        .check(tonic::Request::new(
            crate::lexecon_e2e_health::HealthCheckRequest {
                service: String::new(),
            },
        ))
        .await
        .expect("health answers on a full volume")
        .into_inner();
    assert_eq!(status.status, 1, "SERVING on a full volume");
    let (mut acked, failed) = classify(
        &outcomes,
        &[Code::Unavailable, Code::ResourceExhausted],
        &["full", "no space"],
    );
    assert!(failed.len() >= 5, "{failed:?}");

    std::fs::remove_file(&filler).unwrap();
    let took = recovers(&channel, &token, "space was freed").await;
    eprintln!("disk drill: decisions recovered {took:?} after space was freed");
    retry_failed(&channel, &token, &mut acked, &failed).await;
    for entry in crate::entries_of_kind(&server, &token, "decision").await {
        let p = payload(&entry);
        if let Some(id) = p["request_id"]
            .as_str()
            .filter(|i| i.starts_with("drill-recover-"))
        {
            acked
                .entry(id.to_owned())
                .or_insert_with(|| p["decision_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_in_ledger(&server, &token, &acked).await;
    let ledgered: Vec<String> = crate::entries_of_kind(&server, &token, "decision")
        .await
        .iter()
        .map(|e| {
            payload(e)["decision_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for id in &plain_acked {
        assert!(ledgered.contains(id), "{id} was acknowledged, not ledgered");
    }
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), 0);
    let verify = lexecon(dir, &["verify-ledger", "--data-dir", "data"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    drop(volume);
    eprintln!("disk drill took {:?}", started.elapsed());
}
