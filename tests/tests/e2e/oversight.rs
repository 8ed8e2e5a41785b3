//! Human oversight against real processes (contract §6): an agent's risky request
//! escalates, compliance officers approve it through the CLI, and the agent gets a token
//! that verifies offline; a critical escalation needs two approvers; an unresolved one
//! expires refused; a halt placed on one of two servers sharing PostgreSQL stops the
//! other within 2 seconds; WatchEvents resumed from an index delivers every event exactly
//! once across a server restart.

use std::path::Path;
use std::time::{Duration, Instant};

use lexecon_e2e::*;
use lexecon_proto::v1::oversight_service_client::OversightServiceClient;
use lexecon_proto::v1::*;
use serde_json::Value;

use crate::common::{agent_key, create_key, decide, env_refs, init_dir_with, pg_env};

const BOT: &str = "ai_agent:customer_service";

/// `lexecon ARGS --server URL --json` as `token`; the JSON it printed and its exit code.
fn cli(dir: &Path, server: &Server, token: &str, args: &[&str]) -> (i32, Value) {
    let url = server.url();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", url.as_str(), "--json"]);
    let run = lexecon_env(dir, &all, &[("LEXECON_TOKEN", token)]);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|_| {
        assert_ne!(run.code, 0, "exit 0 without JSON: {run:?}");
        Value::Null
    });
    (run.code, json)
}

/// `lexecon decide` for the agent: the starter policy's read at the caller's risk level
/// `risk`. At level 4 it is asked in paranoid mode and escalates with priority high (one
/// approver); at level 5 it scores 80 and auto-escalates in strict mode, critical (two
/// approvers under the defaults).
fn decide_cli(
    dir: &Path,
    server: &Server,
    agent: &str,
    risk: &str,
    request_id: &str,
) -> (i32, Value) {
    let mut args = vec![
        "decide",
        "--actor",
        BOT,
        "--action",
        "read:customer_data",
        "--tool",
        "database_query",
        "--data-class",
        "pii",
        "--risk-level",
        risk,
        "--request-id",
        request_id,
    ];
    if risk == "4" {
        args.extend(["--mode", "paranoid"]);
    }
    cli(dir, server, agent, &args)
}

/// Sets every `[oversight.sla_secs]` value in the data directory's lexecon.toml.
fn set_sla(data: &Path, secs: u32) {
    let file = data.join("lexecon.toml");
    let mut config = std::fs::read_to_string(&file).unwrap();
    for (name, default) in [
        ("critical", 7200),
        ("high", 28800),
        ("medium", 86400),
        ("low", 259200),
    ] {
        let line = format!("\n{name} = {default}\n");
        assert!(config.contains(&line), "lexecon.toml has no {line:?}");
        config = config.replacen(&line, &format!("\n{name} = {secs}\n"), 1);
    }
    std::fs::write(&file, config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risky_request_escalates_officer_approves_by_cli_agent_token_verifies_offline() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let agent = agent_key(&server, &admin, "support-bot", &[BOT])
        .await
        .api_key;
    let officer = create_key(
        &server,
        &admin,
        "officer",
        Role::ComplianceOfficer,
        &[],
        &[],
    )
    .await
    .api_key;

    // The agent's request escalates: exit 1, the escalation named, no token.
    let (code, first) = decide_cli(dir.path(), &server, &agent, "4", "ticket-4711");
    assert_eq!(code, 1, "{first}");
    assert_eq!(first["outcome"], "escalated", "{first}");
    assert_eq!(first["escalation_state"], "pending", "{first}");
    assert_eq!(first["capability_token"], "", "{first}");
    let esc = first["escalation_id"].as_str().unwrap().to_owned();
    assert!(esc.starts_with("esc_"), "{first}");

    // The officer sees it with its deadline, and approves it.
    let (code, list) = cli(
        dir.path(),
        &server,
        &officer,
        &["escalations", "list", "--state", "pending"],
    );
    assert_eq!(code, 0, "{list}");
    let shown = list["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["escalation_id"] == esc.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        shown["time_left"].as_str().unwrap().ends_with("left"),
        "{shown}"
    );
    assert_eq!(shown["approvals_required"], 1);
    let table = lexecon_env(
        dir.path(),
        &["escalations", "list", "--server", &server.url()],
        &[("LEXECON_TOKEN", &officer)],
    );
    assert!(
        table.stdout.contains(&esc) && table.stdout.contains(" left"),
        "{table:?}"
    );
    // The agent may not resolve its own (nor any) escalation.
    let (code, _) = cli(
        dir.path(),
        &server,
        &agent,
        &["escalations", "approve", &esc, "--reason", "me"],
    );
    assert_eq!(code, 2);
    let (code, approved) = cli(
        dir.path(),
        &server,
        &officer,
        &[
            "escalations",
            "approve",
            &esc,
            "--reason",
            "ticket 4711: the customer asked",
        ],
    );
    assert_eq!(code, 0, "{approved}");
    assert_eq!(approved["state"], "approved", "{approved}");
    assert_eq!(approved["approvals"][0]["principal"], "key:officer");
    assert_eq!(approved["approvals"][0]["key_creator"], "key:admin");

    // The agent retries with its request id: the same decision, now with a token (exit 0).
    let (code, retried) = decide_cli(dir.path(), &server, &agent, "4", "ticket-4711");
    assert_eq!(code, 0, "{retried}");
    assert_eq!(retried["decision_id"], first["decision_id"]);
    assert_eq!(retried["ledger_index"], first["ledger_index"]);
    assert_eq!(retried["escalation_state"], "approved", "{retried}");
    let token = retried["capability_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("lxc1."), "{retried}");
    // Fetching again gives the same token, byte for byte.
    let (_, again) = cli(dir.path(), &server, &agent, &["escalations", "show", &esc]);
    assert_eq!(again["capability_token"], token.as_str(), "{again}");

    // Anyone verifies it offline, with only the node's public key.
    let public_key = data.join("keys/node.ed25519.pub");
    let verified = lexecon(
        dir.path(),
        &[
            "token",
            "verify",
            &token,
            "--public-key",
            public_key.to_str().unwrap(),
            "--actor",
            BOT,
            "--action",
            "read:customer_data",
            "--tool",
            "database_query",
        ],
    );
    assert_eq!(verified.code, 0, "{verified:?}");

    // Who was accountable: the officer, supervising.
    let decision_id = first["decision_id"].as_str().unwrap();
    let (code, who) = cli(
        dir.path(),
        &server,
        &admin,
        &["accountability", decision_id],
    );
    assert_eq!(code, 0, "{who}");
    assert_eq!(
        (&who["decision_maker"], &who["responsibility_level"]),
        (&Value::from("hybrid"), &Value::from("supervised")),
        "{who}"
    );
    assert_eq!(who["resolvers"][0]["principal"], "key:officer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_escalation_needs_two_approvers() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let agent = agent_key(&server, &admin, "support-bot", &[BOT])
        .await
        .api_key;
    let officer_a = create_key(
        &server,
        &admin,
        "officer-a",
        Role::ComplianceOfficer,
        &[],
        &[],
    )
    .await
    .api_key;
    let officer_b = create_key(
        &server,
        &admin,
        "officer-b",
        Role::ComplianceOfficer,
        &[],
        &[],
    )
    .await
    .api_key;
    let (code, first) = decide_cli(dir.path(), &server, &agent, "5", "critical-1");
    assert_eq!(
        (code, &first["outcome"]),
        (1, &Value::from("escalated")),
        "{first}"
    );
    let esc = first["escalation_id"].as_str().unwrap().to_owned();
    let (_, shown) = cli(
        dir.path(),
        &server,
        &officer_a,
        &["escalations", "show", &esc],
    );
    assert_eq!(shown["priority"], "critical", "{shown}");
    assert_eq!(shown["approvals_required"], 2, "{shown}");

    let approve = |token: &str, reason: &str| {
        cli(
            dir.path(),
            &server,
            token,
            &["escalations", "approve", &esc, "--reason", reason],
        )
    };
    let (code, one) = approve(&officer_a, "first look: fine");
    assert_eq!((code, &one["state"]), (0, &Value::from("pending")), "{one}");
    // One approval is not enough: no token yet.
    let (code, retried) = decide_cli(dir.path(), &server, &agent, "5", "critical-1");
    assert_eq!(code, 1, "{retried}");
    assert_eq!(retried["escalation_state"], "pending", "{retried}");
    // The same approver twice does not count.
    let (code, _) = approve(&officer_a, "me again");
    assert_eq!(code, 2);
    let (code, two) = approve(&officer_b, "second pair of eyes: fine");
    assert_eq!(
        (code, &two["state"]),
        (0, &Value::from("approved")),
        "{two}"
    );
    let approvers: Vec<&str> = two["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["key:officer-a", "key:officer-b"]);
    let (code, granted) = decide_cli(dir.path(), &server, &agent, "5", "critical-1");
    assert_eq!(code, 0, "{granted}");
    assert!(
        granted["capability_token"]
            .as_str()
            .unwrap()
            .starts_with("lxc1.")
    );
    let (_, who) = cli(
        dir.path(),
        &server,
        &admin,
        &["accountability", first["decision_id"].as_str().unwrap()],
    );
    assert_eq!(who["responsibility_level"], "shared", "{who}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolved_escalation_expires_refused() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    set_sla(&data, 2);
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let agent = agent_key(&server, &admin, "support-bot", &[BOT])
        .await
        .api_key;
    let (code, first) = decide_cli(dir.path(), &server, &agent, "4", "late-1");
    assert_eq!(
        (code, &first["outcome"]),
        (1, &Value::from("escalated")),
        "{first}"
    );
    let esc = first["escalation_id"].as_str().unwrap().to_owned();

    // Nobody acts: within a second past the deadline the sweeper expires it.
    let expired = poll(Duration::from_secs(6), || {
        let (code, shown) = cli(dir.path(), &server, &admin, &["escalations", "show", &esc]);
        std::future::ready((code == 0 && shown["state"] == "expired").then_some(shown))
    })
    .await
    .map(|(shown, _)| shown)
    .unwrap_or_else(|| panic!("{esc} did not expire within 6 s"));
    assert_eq!(expired["resolution"]["state"], "expired", "{expired}");
    assert_eq!(
        expired["resolution"]["by"], "system:oversight-sweeper",
        "{expired}"
    );
    assert!(
        expired["approvals"].as_array().unwrap().is_empty(),
        "{expired}"
    );

    // Still refused: the retry carries no token, and a late approval is refused.
    let (code, retried) = decide_cli(dir.path(), &server, &agent, "4", "late-1");
    assert_eq!(code, 1, "{retried}");
    assert_eq!(retried["escalation_state"], "expired", "{retried}");
    assert_eq!(retried["capability_token"], "", "{retried}");
    let late = lexecon_env(
        dir.path(),
        &[
            "escalations",
            "approve",
            &esc,
            "--reason",
            "too late",
            "--server",
            &server.url(),
        ],
        &[("LEXECON_TOKEN", &admin)],
    );
    assert_eq!(late.code, 2, "{late:?}");
    assert!(late.stderr.contains("not pending"), "{late:?}");
    // Recorded as expired, never as denied.
    let events = crate::entries_of_kind(&server, &admin, "oversight").await;
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            crate::common::payload(e)["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        names.contains(&"escalation_expired".to_owned()),
        "{names:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| crate::common::payload(e)["state"] == "denied"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_on_one_server_stops_the_other_within_2s() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let env = pg_env(&db.url);
    let env = env_refs(&env);
    let dir = init_dir_with(&env);
    let admin = admin_token(&dir.path().join("data"));
    let a = Server::start(dir.path(), "data", &env);
    let b = Server::start(dir.path(), "data", &env);
    let agent = agent_key(&a, &admin, "support-bot", &[BOT]).await.api_key;
    let approved = decide(&b, &agent, approved_request()).await.unwrap();
    assert_eq!(approved.outcome(), Outcome::Approved, "{approved:?}");

    let halted = lexecon_env(
        dir.path(),
        &[
            "halt",
            "--reason",
            "incident 2211: stop every agent",
            "--server",
            &a.url(),
            "--json",
        ],
        &[("LEXECON_TOKEN", &admin)],
    );
    assert_eq!(halted.code, 0, "{halted:?}");
    let placed = Instant::now();
    let halt_id = serde_json::from_str::<Value>(&halted.stdout).unwrap()["halt_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_a = decide(&a, &agent, approved_request()).await.unwrap();
    assert_eq!(on_a.outcome(), Outcome::Denied, "at once on A: {on_a:?}");
    assert!(
        on_a.reasons.contains(&format!("halted:{halt_id}")),
        "{on_a:?}"
    );
    let on_b = poll(Duration::from_secs(3), || {
        let b = &b;
        let agent = agent.clone();
        async move {
            match decide(b, &agent, approved_request()).await {
                Ok(d) if d.outcome() == Outcome::Denied => Some(d),
                _ => None,
            }
        }
    })
    .await;
    let elapsed = placed.elapsed();
    let (denied, _) = on_b.unwrap_or_else(|| panic!("B still approved 3 s after the halt on A"));
    assert!(
        elapsed <= Duration::from_millis(2100),
        "B stopped after {elapsed:?}"
    );
    assert!(
        denied.reasons.contains(&format!("halted:{halt_id}")),
        "{denied:?}"
    );

    // Resumed on B, A decides again.
    let resumed = lexecon_env(
        dir.path(),
        &[
            "resume",
            &halt_id,
            "--reason",
            "incident closed",
            "--server",
            &b.url(),
        ],
        &[("LEXECON_TOKEN", &admin)],
    );
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let again = poll(Duration::from_secs(3), || {
        let a = &a;
        let agent = agent.clone();
        async move {
            decide(a, &agent, approved_request())
                .await
                .ok()
                .filter(|d| d.outcome() == Outcome::Approved)
        }
    })
    .await;
    assert!(again.is_some(), "A still halted 3 s after the resume on B");
}

/// Halts and resumes an actor nobody uses, `n` times; returns the ledger indexes.
async fn halt_events(server: &Server, admin: &str, n: usize) -> Vec<u64> {
    let mut client = OversightServiceClient::new(server.channel().await);
    let mut out = Vec::new();
    for i in 0..n {
        let h = client
            .halt(authed(
                HaltRequest {
                    actor: "ai_agent:nobody".into(),
                    reason: format!("drill {i}"),
                },
                admin,
            ))
            .await
            .unwrap()
            .into_inner();
        let r = client
            .resume(authed(
                ResumeRequest {
                    halt_id: h.halt_id,
                    reason: format!("drill {i} over"),
                },
                admin,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend([h.ledger_index, r.ledger_index]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_resumed_across_restart_exactly_once() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let mut expected = halt_events(&server, &admin, 3).await;
    let kinds = vec!["halt_placed".to_owned(), "halt_resumed".to_owned()];

    // A watcher from index 0 reads the first four events, then the server restarts.
    let mut client = OversightServiceClient::new(server.channel().await);
    let mut stream = client
        .watch_events(authed(
            WatchEventsRequest {
                from_index: Some(0),
                kinds: kinds.clone(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream goes on");
        seen.push(m.event.unwrap().ledger_index);
    }
    // Draining ends the open stream, saying where to resume; the server then exits.
    server.signal("TERM");
    let next = (seen.last().unwrap() + 1).to_string();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends within 10 s of SIGTERM")
        {
            Ok(Some(m)) => seen.push(m.event.unwrap().ledger_index),
            Ok(None) => panic!("the stream ended without saying where to resume"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    assert!(
        ended.message().contains("from_index="),
        "{ended:?} (next is {next})"
    );
    assert_eq!(server.wait(Duration::from_secs(20)), 0);
    let server = Server::start(dir.path(), "data", &[]);
    expected.extend(halt_events(&server, &admin, 2).await);

    // The CLI resumes from the last index seen + 1 and prints the rest exactly once.
    let from = (seen.last().unwrap() + 1).to_string();
    let rest = expected.len() - seen.len();
    let run = lexecon_env(
        dir.path(),
        &[
            "events",
            "watch",
            "--from",
            &from,
            "--kind",
            "halt_placed",
            "--kind",
            "halt_resumed",
            "--count",
            &rest.to_string(),
            "--json",
            "--server",
            &server.url(),
        ],
        &[("LEXECON_TOKEN", &admin)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    for line in run.stdout.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert!(
            kinds.contains(&e["kind"].as_str().unwrap().to_owned()),
            "{e}"
        );
        assert_eq!(e["payload"]["by"], "key:admin", "{e}");
        seen.push(e["ledger_index"].as_u64().unwrap());
    }
    assert_eq!(seen, expected, "every halt event exactly once, in order");
    // And that is all of them: the ledger holds no other halt event.
    let ledger: Vec<u64> = crate::entries_of_kind(&server, &admin, "oversight")
        .await
        .iter()
        .filter(|e| {
            let p = crate::common::payload(e);
            p["event"] == "halt_placed" || p["event"] == "halt_resumed"
        })
        .map(|e| e.index)
        .collect();
    assert_eq!(ledger, expected);
}
