//! The MCP gateway's cost (performance.md): `tools/call` round trips through
//! `lexecon mcp proxy --data-dir` against the same calls made directly to the upstream,
//! `mcp-server-time` over stdio, in one run, with 16 calls in flight and with 1. Target:
//! the gateway adds at most 1 ms at p50 with 16 in flight, and its throughput is at least
//! 80% of direct; 1 in flight is reported without a target.
//!
//! Both sides are real processes driven by the same raw JSON-RPC client (newline-delimited
//! JSON on the child's stdin and stdout, no SDK in the measured path): the upstream alone,
//! and the release `lexecon` binary's proxy in front of an identical upstream, deciding
//! each call with the embedded engine (policy, risk, durable ledger append, token) and
//! recording its completion. Rounds alternate direct and proxied so drift hits both.
//!
//! `cargo bench -p lexecon-benches --bench mcp`; the MCP tools come from
//! `.ci/install-mcp-tools` (or `LEXECON_TEST_MCP_PYTHON`). Prints a table and one JSON
//! line. Under `cargo test` (no `--bench` argument) it only says how to run it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark set-up"
)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Calls per measured round, by calls in flight.
const CALLS: [(usize, usize); 2] = [(16, 2000), (1, 400)];
/// Measured rounds of each configuration (alternating direct and proxied).
const ROUNDS: usize = 3;
/// Unmeasured calls first, per process.
const WARM_UP: usize = 300;

const POLICY: &str = r#"
[policy]
name = "mcp-bench"
version = "1.0.0"
mode = "strict"

[[terms]]
id = "agents"
kind = "actor"
match = "ai_agent:*"

[[terms]]
id = "tool_calls"
kind = "action"
match = "call:*"

[[relations]]
id = "agents-may-ask-the-time"
kind = "permits"
from = "agents"
to = "tool_calls"
[relations.when]
tools = ["time/*"]
"#;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("mcp bench: run it with `cargo bench -p lexecon-benches --bench mcp`");
        return;
    }
    let python = python();
    let lexecon = lexecon_release();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = Command::new(&lexecon)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success(), "lexecon init: {init:?}");
    std::fs::write(data.join("policy.toml"), POLICY).unwrap();

    let upstream = [
        python.as_str(),
        "-m",
        "mcp_server_time",
        "--local-timezone",
        "UTC",
    ];
    let mut direct = Peer::start("direct", &upstream, dir.path());
    let data_arg = data.display().to_string();
    let lexecon_arg = lexecon.display().to_string();
    let mut proxied_cmd = vec![
        lexecon_arg.as_str(),
        "mcp",
        "proxy",
        "--name",
        "time",
        "--data-dir",
        &data_arg,
        "--actor",
        "ai_agent:bench",
        "--",
    ];
    proxied_cmd.extend(upstream);
    let mut proxied = Peer::start("proxied", &proxied_cmd, dir.path());
    direct.run(16, WARM_UP);
    proxied.run(16, WARM_UP);

    let mut results: HashMap<(&str, usize), Measured> = HashMap::new();
    for _ in 0..ROUNDS {
        for (in_flight, calls) in CALLS {
            for peer in [&mut direct, &mut proxied] {
                let m = peer.run(in_flight, calls);
                results.entry((peer.name, in_flight)).or_default().merge(m);
            }
        }
    }
    direct.stop();
    proxied.stop();

    println!(
        "MCP tools/call via mcp-server-time over stdio, {ROUNDS} rounds alternating direct and proxied"
    );
    println!(
        "{:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "path", "in flight", "p50 ms", "p90 ms", "p99 ms", "max ms", "calls/s"
    );
    let mut json = serde_json::Map::new();
    for (in_flight, _) in CALLS {
        let d = &results[&("direct", in_flight)];
        let p = &results[&("proxied", in_flight)];
        for (name, m) in [("direct", d), ("proxied", p)] {
            println!(
                "{name:<10} {in_flight:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>10.0}",
                m.percentile(50.0),
                m.percentile(90.0),
                m.percentile(99.0),
                m.percentile(100.0),
                m.per_sec()
            );
        }
        let added = p.percentile(50.0) - d.percentile(50.0);
        let ratio = p.per_sec() / d.per_sec();
        println!(
            "  {in_flight} in flight: the gateway adds {added:.3} ms at p50; throughput {:.1}% of direct",
            ratio * 100.0
        );
        json.insert(
            format!("in_flight_{in_flight}"),
            serde_json::json!({
                "direct_p50_ms": d.percentile(50.0),
                "proxied_p50_ms": p.percentile(50.0),
                "direct_p99_ms": d.percentile(99.0),
                "proxied_p99_ms": p.percentile(99.0),
                "added_p50_ms": added,
                "direct_calls_per_sec": d.per_sec(),
                "proxied_calls_per_sec": p.per_sec(),
                "throughput_ratio": ratio,
            }),
        );
    }
    println!("{}", serde_json::Value::Object(json));
}

/// Latencies (ms) and wall time of measured calls.
#[derive(Default)]
struct Measured {
    latencies_ms: Vec<f64>,
    wall: Duration,
}

impl Measured {
    fn merge(&mut self, other: Measured) {
        self.latencies_ms.extend(other.latencies_ms);
        self.wall += other.wall;
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    fn per_sec(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.wall.as_secs_f64()
    }
}

/// An MCP server process (the upstream, or the gateway in front of one) spoken to raw.
struct Peer {
    name: &'static str,
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Peer {
    fn start(name: &'static str, command: &[&str], cwd: &Path) -> Peer {
        let mut child = Command::new(command[0])
            .args(&command[1..])
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {command:?}: {e}"));
        let mut peer = Peer {
            name,
            stdin: BufWriter::new(child.stdin.take().unwrap()),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            next_id: 1,
        };
        peer.send(
            &serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "lexecon-bench", "version": "0"}}}),
        );
        peer.stdin.flush().unwrap();
        let init = peer.read();
        assert!(init.get("result").is_some(), "{name}: initialize: {init}");
        peer.send(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        peer.stdin.flush().unwrap();
        peer
    }

    fn send(&mut self, message: &serde_json::Value) {
        serde_json::to_writer(&mut self.stdin, message).unwrap();
        self.stdin.write_all(b"\n").unwrap();
    }

    fn read(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "{}: the server closed its output", self.name);
        serde_json::from_str(&line).unwrap()
    }

    fn call(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "get_current_time", "arguments": {"timezone": "Europe/Paris"}}}),
        );
        id
    }

    /// `calls` round trips with `in_flight` outstanding at a time.
    fn run(&mut self, in_flight: usize, calls: usize) -> Measured {
        let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(in_flight * 2);
        let mut latencies_ms = Vec::with_capacity(calls);
        let start = Instant::now();
        let mut sent = 0;
        while sent < in_flight.min(calls) {
            let id = self.call();
            sent_at.insert(id, Instant::now());
            sent += 1;
        }
        self.stdin.flush().unwrap();
        while latencies_ms.len() < calls {
            let message = self.read();
            let Some(id) = message["id"].as_u64() else {
                continue; // a notification
            };
            let Some(at) = sent_at.remove(&id) else {
                continue;
            };
            assert!(
                message["result"]["isError"] != true && message.get("error").is_none(),
                "{}: call {id} failed: {message}",
                self.name
            );
            latencies_ms.push(at.elapsed().as_secs_f64() * 1000.0);
            if sent < calls {
                let id = self.call();
                self.stdin.flush().unwrap();
                sent_at.insert(id, Instant::now());
                sent += 1;
            }
        }
        Measured {
            latencies_ms,
            wall: start.elapsed(),
        }
    }

    fn stop(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// The MCP tools' python: `LEXECON_TEST_MCP_PYTHON`, else `.ci/install-mcp-tools`.
fn python() -> String {
    if let Ok(python) = std::env::var("LEXECON_TEST_MCP_PYTHON") {
        return python;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/install-mcp-tools");
    let out = Command::new(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("python=").map(str::to_owned))
        .expect("install-mcp-tools prints python=")
}

/// The release `lexecon` binary beside this bench, built if needed.
fn lexecon_release() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "lexecon-cli",
            "--bin",
            "lexecon",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "building lexecon failed");
    // target/release/deps/<bench> -> target/release/lexecon
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("lexecon");
    assert!(bin.exists(), "no lexecon binary at {}", bin.display());
    bin
}
