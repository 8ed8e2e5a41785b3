//! End-to-end tests of the `lexecon` binary and server, run as processes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lexecon_e2e::*;
use lexecon_proto::v1::ledger_service_client::LedgerServiceClient;
use lexecon_proto::v1::policy_service_client::PolicyServiceClient;
use lexecon_proto::v1::{DecideRequest, GetEntriesRequest, LoadPolicyRequest, Outcome};

// One test binary; its parts by subject.
#[path = "e2e/actor_binding.rs"]
mod actor_binding;
#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/common.rs"]
mod common;
#[path = "e2e/compliance.rs"]
mod compliance;
#[path = "e2e/deadlines.rs"]
mod deadlines;
#[path = "e2e/deploy.rs"]
mod deploy;
#[path = "e2e/drills.rs"]
mod drills;
#[path = "e2e/every_rpc.rs"]
mod every_rpc;
#[path = "e2e/every_rpc_audit.rs"]
mod every_rpc_audit;
#[path = "e2e/every_rpc_compliance.rs"]
mod every_rpc_compliance;
#[path = "e2e/every_rpc_evidence.rs"]
mod every_rpc_evidence;
#[path = "e2e/every_rpc_mcp.rs"]
mod every_rpc_mcp;
#[path = "e2e/every_rpc_oversight.rs"]
mod every_rpc_oversight;
#[path = "e2e/evidence.rs"]
mod evidence;
#[path = "e2e/http.rs"]
mod http;
#[path = "e2e/mcp.rs"]
mod mcp;
#[path = "e2e/one_door.rs"]
mod one_door;
#[path = "e2e/overload.rs"]
mod overload;
#[path = "e2e/oversight.rs"]
mod oversight;
#[path = "e2e/python_client.rs"]
mod python_client;
#[path = "e2e/readme_tour.rs"]
mod readme_tour;
#[path = "e2e/schemathesis.rs"]
mod schemathesis;
#[path = "e2e/tls.rs"]
mod tls;

fn init_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = lexecon(dir.path(), &["init", "--data-dir", "data"]);
    assert_eq!(run.code, 0, "{run:?}");
    dir
}

/// Every ledger entry of `kind` (every entry when empty), read through LedgerService.
async fn entries_of_kind(
    server: &Server,
    token: &str,
    kind: &str,
) -> Vec<lexecon_proto::v1::LedgerEntry> {
    let mut client = LedgerServiceClient::new(server.channel().await);
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let page = client
            .get_entries(authed(
                GetEntriesRequest {
                    from,
                    limit: 1000,
                    kind: kind.to_owned(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        if page.entries.is_empty() || page.next <= from {
            return out;
        }
        out.extend(page.entries);
        from = page.next;
    }
}

async fn ledger_size(server: &Server, token: &str) -> u64 {
    let mut client = LedgerServiceClient::new(server.channel().await);
    let mut from = 0;
    loop {
        let page = client
            .get_entries(authed(
                GetEntriesRequest {
                    from,
                    limit: 1000,
                    kind: String::new(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        if page.entries.is_empty() {
            return from;
        }
        from = page.next;
    }
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let run = lexecon(&std::env::temp_dir(), &["--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    for cmd in [
        "init",
        "server",
        "decide",
        "completions",
        "bench",
        "user",
        "apikey",
    ] {
        assert!(
            run.stdout.contains(cmd),
            "{cmd} missing from --help:\n{}",
            run.stdout
        );
    }
    let text = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("Exit codes: 0 success"), "{text}");
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let run = lexecon(&std::env::temp_dir(), &["no-such-command"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no-such-command"), "{}", run.stderr);
    let run = lexecon(
        &std::env::temp_dir(),
        &[
            "decide",
            "--actor",
            "a",
            "--action",
            "b",
            "--risk-level",
            "9",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--risk-level"), "{}", run.stderr);
}

#[test]
fn completions_for_bash() {
    let run = lexecon(&std::env::temp_dir(), &["completions", "bash"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("_lexecon()"),
        "{}",
        &run.stdout[..run.stdout.len().min(200)]
    );
}

#[test]
fn init_refuses_to_overwrite_without_force_and_keeps_secrets_private() {
    let dir = init_dir();
    let data = dir.path().join("data");
    let again = lexecon(dir.path(), &["init", "--data-dir", "data"]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(
        again.stderr.contains("already initialised") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data.join("keys/node.ed25519")), 0o600);
        assert_eq!(mode(&data.join("admin.token")), 0o600);
        assert_eq!(mode(&data.join("keys/node.ed25519.pub")), 0o644);
        // The database holds the ledger and the hashes of keys and sessions.
        for file in ["lexecon.db", "lexecon.db-wal", "lexecon.db-shm"] {
            let path = data.join(file);
            if path.exists() {
                assert_eq!(mode(&path), 0o600, "{file}");
            }
        }
        assert!(data.join("lexecon.db").exists());
    }
    let old_token = admin_token(&data);
    let forced = lexecon(dir.path(), &["init", "--data-dir", "data", "--force"]);
    assert_eq!(forced.code, 0, "{forced:?}");
    assert_ne!(
        admin_token(&data),
        old_token,
        "--force makes a new admin key"
    );
    assert!(forced.stdout.contains("backup-"), "{}", forced.stdout);
}

#[test]
fn no_server_answering_is_a_clear_error() {
    let dir = init_dir();
    let run = lexecon(
        dir.path(),
        &[
            "decide",
            "--data-dir",
            "data",
            "--server",
            "http://127.0.0.1:9",
            "--actor",
            "a",
            "--action",
            "b",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("no Lexecon server answers at http://127.0.0.1:9"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_and_denied_decisions_through_the_cli() {
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let url = server.url();
    let approved = lexecon(
        dir.path(),
        &[
            "decide",
            "--data-dir",
            "data",
            "--server",
            &url,
            "--actor",
            "ai_agent:customer_service",
            "--action",
            "read:customer_data",
            "--tool",
            "database_query",
            "--data-class",
            "pii",
            "--intent",
            "answer a ticket",
            "--json",
        ],
    );
    assert_eq!(approved.code, 0, "{approved:?}");
    let json: serde_json::Value = serde_json::from_str(&approved.stdout).unwrap();
    assert_eq!(json["outcome"], "approved");
    assert!(json["decision_id"].as_str().unwrap().starts_with("dec_"));
    assert!(
        json["capability_token"]
            .as_str()
            .unwrap()
            .starts_with("lxc1.")
    );
    let denied = lexecon(
        dir.path(),
        &[
            "decide",
            "--data-dir",
            "data",
            "--server",
            &url,
            "--actor",
            "ai_agent:customer_service",
            "--action",
            "delete:customer_records",
            "--tool",
            "database_query",
        ],
    );
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(denied.stdout.starts_with("DENIED"), "{}", denied.stdout);
    // The token the server issued verifies offline with the node's public key alone.
    let token = json["capability_token"].as_str().unwrap();
    let verified = lexecon(
        dir.path(),
        &[
            "token",
            "verify",
            token,
            "--public-key",
            "data/keys/node.ed25519.pub",
            "--actor",
            "ai_agent:customer_service",
        ],
    );
    assert_eq!(verified.code, 0, "{verified:?}");
    // Health is open; metrics count the decisions.
    let metrics = reqwest_metrics(server.metrics).await;
    assert!(
        metrics.contains("lexecon_decisions_total{outcome=\"approved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lexecon_decisions_total{outcome=\"denied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lexecon_ledger_batch_size_count"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("lexecon_ledger_batch_size_count 0\n"),
        "ledger commits are observed: {metrics}"
    );
    assert!(metrics.contains("lexecon_build_info"), "{metrics}");
}

/// A plain HTTP/1.1 GET of /metrics (no client crate needed).
async fn reqwest_metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_a_token_and_agents_cannot_administer() {
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let mut client = decision_client(&server).await;
    let no_token = client
        .decide(tonic::Request::new(approved_request()))
        .await
        .unwrap_err();
    assert_eq!(
        no_token.code(),
        tonic::Code::Unauthenticated,
        "{no_token:?}"
    );
    let bad_token = client
        .decide(authed(approved_request(), "lxk_not_a_real_key"))
        .await
        .unwrap_err();
    assert_eq!(
        bad_token.code(),
        tonic::Code::Unauthenticated,
        "{bad_token:?}"
    );

    let created = lexecon(
        dir.path(),
        &[
            "apikey",
            "create",
            "--data-dir",
            "data",
            "--name",
            "billing-agent",
            "--role",
            "agent",
            "--actor",
            "ai_agent:customer_service",
            "--json",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    let agent_key = serde_json::from_str::<serde_json::Value>(&created.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = client
        .decide(authed(approved_request(), &agent_key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.outcome(), Outcome::Approved);
    let mut policy = PolicyServiceClient::new(server.channel().await);
    let refused = policy
        .load_policy(authed(
            LoadPolicyRequest {
                source: String::new(),
            },
            &agent_key,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Health needs no token.
    let mut health = tonic_health_client(&server).await;
    let status = health
        .check(tonic::Request::new(
            lexecon_e2e_health::HealthCheckRequest {
                service: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
}

mod lexecon_e2e_health {
    //! The grpc.health.v1 messages, declared by hand so the tests need no extra crate.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct HealthCheckRequest {
        #[prost(string, tag = "1")]
        pub(crate) service: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct HealthCheckResponse {
        #[prost(int32, tag = "1")]
        pub(crate) status: i32,
    }
}

struct HealthClient(tonic::client::Grpc<tonic::transport::Channel>);

impl HealthClient {
    async fn check(
        &mut self,
        request: tonic::Request<lexecon_e2e_health::HealthCheckRequest>,
    ) -> Result<tonic::Response<lexecon_e2e_health::HealthCheckResponse>, tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unknown(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::default();
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        self.0.unary(request, path, codec).await
    }
}

async fn tonic_health_client(server: &Server) -> HealthClient {
    HealthClient(tonic::client::Grpc::new(server.channel().await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_decide_field_is_invalid_argument_and_writes_nothing() {
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let token = admin_token(&dir.path().join("data"));
    let mut client = decision_client(&server).await;
    let before = ledger_size(&server, &token).await;
    let base = approved_request;
    let cases: Vec<(DecideRequest, &str)> = vec![
        (
            DecideRequest {
                actor: "a".repeat(300),
                ..base()
            },
            "actor",
        ),
        (
            DecideRequest {
                actor: "has space".into(),
                ..base()
            },
            "actor",
        ),
        (
            DecideRequest {
                actor: String::new(),
                ..base()
            },
            "actor",
        ),
        (
            DecideRequest {
                proposed_action: "read\u{7}".into(),
                ..base()
            },
            "proposed_action",
        ),
        (
            DecideRequest {
                tool: "x".repeat(200),
                ..base()
            },
            "tool",
        ),
        (
            DecideRequest {
                data_classes: vec!["p*i".into()],
                ..base()
            },
            "data_classes",
        ),
        (
            DecideRequest {
                risk_level: 9,
                ..base()
            },
            "risk_level",
        ),
        (
            DecideRequest {
                policy_mode: 7,
                ..base()
            },
            "policy_mode",
        ),
        (
            DecideRequest {
                user_intent: "i".repeat(2000),
                ..base()
            },
            "user_intent",
        ),
        (
            DecideRequest {
                context: [("region".to_owned(), "eu\nwest".to_owned())].into(),
                ..base()
            },
            "context.region",
        ),
        (
            DecideRequest {
                request_id: "r".repeat(500),
                ..base()
            },
            "request_id",
        ),
    ];
    for (request, field) in cases {
        let status = client.decide(authed(request, &token)).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    assert_eq!(
        ledger_size(&server, &token).await,
        before,
        "a refused request wrote to the ledger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_request_id_returns_the_same_decision_once() {
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let token = admin_token(&dir.path().join("data"));
    let mut client = decision_client(&server).await;
    let before = ledger_size(&server, &token).await;
    let request = DecideRequest {
        request_id: "retry-1".into(),
        ..approved_request()
    };
    let first = client
        .decide(authed(request.clone(), &token))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .decide(authed(request.clone(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    assert_eq!(ledger_size(&server, &token).await, before + 1);
    let other = client
        .decide(authed(
            DecideRequest {
                request_id: "retry-2".into(),
                ..request
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(other.decision_id, first.decision_id);
}

/// Drives Decide calls from `tasks` tasks until `stop` is set; returns every
/// acknowledged (ledger index, decision id) and the number of failed calls.
async fn drive_load(
    server: &Server,
    token: &str,
    tasks: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<(u64, String, Vec<u8>)>, u64) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let mut client = decision_client(server).await;
        let (acked, failed, stop, token) = (
            acked.clone(),
            failed.clone(),
            stop.clone(),
            token.to_owned(),
        );
        handles.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match client.decide(authed(approved_request(), &token)).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        acked.lock().unwrap().push((
                            r.ledger_index,
                            r.decision_id,
                            r.policy_version_hash,
                        ));
                    }
                    Err(_) => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    (acked, failed.load(std::sync::atomic::Ordering::SeqCst))
}

/// Every acknowledged decision is in the ledger at its index, and the ledger verifies.
async fn assert_all_durable(dir: &Path, acked: &[(u64, String, Vec<u8>)]) {
    let server = Server::start(dir, "data", &[]);
    let token = admin_token(&dir.join("data"));
    let mut client = LedgerServiceClient::new(server.channel().await);
    let mut seen = std::collections::HashMap::new();
    let mut from = 0;
    loop {
        let page = client
            .get_entries(authed(
                GetEntriesRequest {
                    from,
                    limit: 1000,
                    kind: String::new(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        if page.entries.is_empty() {
            break;
        }
        for e in &page.entries {
            if e.kind == "decision" {
                let v: serde_json::Value = serde_json::from_str(&e.payload_json).unwrap();
                seen.insert(e.index, v["decision_id"].as_str().unwrap().to_owned());
            }
        }
        from = page.next;
    }
    for (index, id, _) in acked {
        assert_eq!(
            seen.get(index),
            Some(id),
            "acknowledged decision {id} at {index} is missing"
        );
    }
    drop(server);
    let verify = lexecon(dir, &["verify-ledger", "--data-dir", "data"]);
    assert_eq!(verify.code, 0, "{verify:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_decision() {
    if !slow_tests() {
        return eprintln!("skipping: set RUN_SLOW_TESTS=1");
    }
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let token = admin_token(&dir.path().join("data"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let server_url = server.url();
        let _ = server_url;
        async { drive_load(&server, &token, 16, stop).await }
    };
    let killer = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.signal("TERM");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let ((acked, _failed), ()) = tokio::join!(load, killer);
    assert!(!acked.is_empty());
    assert_eq!(
        server.wait(Duration::from_secs(30)),
        0,
        "graceful shutdown exits 0"
    );
    assert_all_durable(dir.path(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_decision() {
    if !slow_tests() {
        return eprintln!("skipping: set RUN_SLOW_TESTS=1");
    }
    let dir = init_dir();
    let token = admin_token(&dir.path().join("data"));
    let mut all_acked = Vec::new();
    for round in 0..3u64 {
        let server = Server::start(dir.path(), "data", &[]);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = drive_load(&server, &token, 16, stop.clone());
        let killer = async {
            tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        let ((acked, _), ()) = tokio::join!(load, killer);
        // Kill while the last calls may still be in flight on the server side.
        server.kill9();
        all_acked.extend(acked);
    }
    assert!(all_acked.len() > 10);
    let unique: HashSet<_> = all_acked.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(
        unique.len(),
        all_acked.len(),
        "two acknowledged decisions share a ledger index"
    );
    assert_all_durable(dir.path(), &all_acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_hot_reload_under_load_never_fails_or_mixes_versions() {
    if !slow_tests() {
        return eprintln!("skipping: set RUN_SLOW_TESTS=1");
    }
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let token = admin_token(&dir.path().join("data"));
    let starter = std::fs::read_to_string(dir.path().join("data/policy.toml")).unwrap();
    let v2 = starter.replacen("version = ", "version = \"2.0.0\"\n# was: ", 1);
    assert_ne!(v2, starter);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut policy = PolicyServiceClient::new(server.channel().await);
    let reloader = async {
        let mut hashes = HashSet::new();
        for i in 0..20 {
            let source = if i % 2 == 0 {
                v2.clone()
            } else {
                starter.clone()
            };
            let r = policy
                .load_policy(authed(LoadPolicyRequest { source }, &token))
                .await
                .unwrap()
                .into_inner();
            assert!(r.loaded, "{r:?}");
            hashes.insert(r.policy.unwrap().hash);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // An invalid policy is refused and the old one stays.
        let bad = policy
            .load_policy(authed(
                LoadPolicyRequest {
                    source: "[policy]\nname = 1\n".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!bad.loaded && !bad.diagnostics.is_empty(), "{bad:?}");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        hashes
    };
    let ((acked, failed), hashes) =
        tokio::join!(drive_load(&server, &token, 8, stop.clone()), reloader);
    assert_eq!(failed, 0, "decisions failed during reloads");
    assert_eq!(hashes.len(), 2);
    for (_, id, hash) in &acked {
        assert!(
            hashes.contains(hash),
            "{id} was decided under an unknown policy version"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_postgres_ledger_and_one_redis_rate_limit() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let Some((redis_url, prefix)) = lexecon_testkit::redis_url_and_prefix() else {
        return;
    };
    let dir = init_dir();
    let env: Vec<(&str, &str)> = vec![
        ("LEXECON_DATABASE__URL", &db.url),
        ("LEXECON_REDIS__URL", &redis_url),
        ("LEXECON_REDIS__KEY_PREFIX", &prefix),
        ("LEXECON_BUDGET__GLOBAL__RPM_LIMIT", "40"),
    ];
    let key = lexecon_env(
        dir.path(),
        &[
            "apikey",
            "create",
            "--data-dir",
            "data",
            "--name",
            "scale",
            "--role",
            "admin",
            "--json",
        ],
        &env,
    );
    assert_eq!(key.code, 0, "{key:?}");
    let token = serde_json::from_str::<serde_json::Value>(&key.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = Server::start(dir.path(), "data", &env);
    let b = Server::start(dir.path(), "data", &env);

    let llm = llm_request("alice", 100, 100);
    let mut tasks = Vec::new();
    for server in [&a, &b] {
        for _ in 0..4 {
            let mut client = decision_client(server).await;
            let (token, llm) = (token.clone(), llm.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..15 {
                    let request = if i % 3 == 0 {
                        approved_request()
                    } else {
                        llm.clone()
                    };
                    let is_llm = request.llm.is_some();
                    let r = client
                        .decide(authed(request, &token))
                        .await
                        .unwrap()
                        .into_inner();
                    out.push((is_llm, r.outcome(), r.ledger_index, r.reasons.clone()));
                }
                out
            }));
        }
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    let llm_approved = results
        .iter()
        .filter(|(is_llm, o, _, _)| *is_llm && *o == Outcome::Approved)
        .count();
    let llm_total = results.iter().filter(|(is_llm, _, _, _)| *is_llm).count();
    assert_eq!(llm_total, 80);
    assert_eq!(
        llm_approved, 40,
        "the shared RPM limit of 40 admitted {llm_approved} of {llm_total}"
    );
    assert!(results.iter().any(
        |(_, o, _, reasons)| *o == Outcome::Denied && reasons.iter().any(|r| r.contains("rpm"))
    ));
    let indices: HashSet<u64> = results.iter().map(|(_, _, i, _)| *i).collect();
    assert_eq!(
        indices.len(),
        results.len(),
        "two decisions got the same ledger index: the log forked"
    );
    drop((a, b));
    let verify = lexecon(dir.path(), &["verify-ledger", "--database-url", &db.url]);
    assert_eq!(verify.code, 0, "{verify:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_ledgered_and_old_tokens_still_verify() {
    let dir = init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let before = decision_client(&server)
        .await
        .decide(authed(approved_request(), &token))
        .await
        .unwrap()
        .into_inner();
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), 0);
    let rotated = lexecon(dir.path(), &["keys", "rotate", "--data-dir", "data"]);
    assert_eq!(rotated.code, 0, "{rotated:?}");
    let server = Server::start(dir.path(), "data", &[]);
    let mut client = decision_client(&server).await;
    let check = client
        .verify_token(authed(
            lexecon_proto::v1::VerifyTokenRequest {
                token: before.capability_token.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        check.valid,
        "a token of the retired key must verify until it expires: {check:?}"
    );
    let entries = entries_of_kind(&server, &token, "key_rotated").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    drop(server);
    let verify = lexecon(dir.path(), &["verify-ledger", "--data-dir", "data"]);
    assert_eq!(verify.code, 0, "{verify:?}");
}

macro_rules! list_services {
    ($module:ident, $server:expr) => {{
        use tonic_reflection::pb::$module::ServerReflectionRequest;
        use tonic_reflection::pb::$module::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$module::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$module::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new($server.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        // No token: reflection is open.
        let mut stream = client
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        let response = stream.message().await.unwrap().unwrap();
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected reflection response {other:?}"),
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_every_service_without_a_token() {
    let dir = init_dir();
    let server = Server::start(dir.path(), "data", &[]);
    for services in [list_services!(v1, server), list_services!(v1alpha, server)] {
        for name in [
            "lexecon.v1.DecisionService",
            "lexecon.v1.PolicyService",
            "lexecon.v1.LedgerService",
            "lexecon.v1.RiskService",
            "lexecon.v1.BudgetService",
            "lexecon.v1.AuthService",
            "lexecon.v1.OversightService",
            "lexecon.v1.EvidenceService",
            "lexecon.v1.AuditService",
            "lexecon.v1.ComplianceService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.iter().any(|s| s == name),
                "{name} not in {services:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_cosigned_checkpoints_verify_with_the_rsa_key_only() {
    if !slow_tests() {
        return eprintln!("skipping: set RUN_SLOW_TESTS=1 (RSA-4096 key generation)");
    }
    let dir = tempfile::tempdir().unwrap();
    for data in ["data", "other"] {
        let run = lexecon(dir.path(), &["init", "--data-dir", data, "--rsa"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    decision_client(&server)
        .await
        .decide(authed(approved_request(), &token))
        .await
        .unwrap();
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), 0);
    let good = lexecon(
        dir.path(),
        &[
            "verify-ledger",
            "--data-dir",
            "data",
            "--rsa-public-key",
            "data/keys/node.rsa4096.pub.pem",
        ],
    );
    assert_eq!(good.code, 0, "{good:?}");
    let wrong = lexecon(
        dir.path(),
        &[
            "verify-ledger",
            "--data-dir",
            "data",
            "--rsa-public-key",
            "other/keys/node.rsa4096.pub.pem",
        ],
    );
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong.stdout.contains("RSA co-signature") || wrong.stderr.contains("RSA co-signature"),
        "{wrong:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_limits_and_refuses_a_broken_policy() {
    let dir = init_dir();
    let data = dir.path().join("data");
    let token = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let mut client = decision_client(&server).await;
    let llm = llm_request("", 10, 10);
    assert_eq!(
        client
            .decide(authed(llm.clone(), &token))
            .await
            .unwrap()
            .into_inner()
            .outcome(),
        Outcome::Approved
    );

    let config = std::fs::read_to_string(data.join("lexecon.toml")).unwrap();
    let restricted = config.replacen(
        "restricted_models = []",
        "restricted_models = [\"gpt-4o-*\"]",
        1,
    );
    assert_ne!(config, restricted);
    std::fs::write(data.join("lexecon.toml"), restricted).unwrap();
    std::fs::write(data.join("policy.toml"), "[policy]\nname = 1\n").unwrap();
    server.signal("HUP");
    // The reload is refused as a whole (the policy is broken): nothing changes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        client
            .decide(authed(llm.clone(), &token))
            .await
            .unwrap()
            .into_inner()
            .outcome(),
        Outcome::Approved
    );
    assert!(server.log().contains("reload refused"), "{}", server.log());

    std::fs::write(data.join("policy.toml"), lexecon_starter_policy(&dir)).unwrap();
    server.signal("HUP");
    let mut denied = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = client
            .decide(authed(llm.clone(), &token))
            .await
            .unwrap()
            .into_inner();
        if r.outcome() == Outcome::Denied {
            denied = Some(r);
            break;
        }
    }
    let denied = denied.expect("the restricted model is denied after SIGHUP");
    assert!(denied.reasoning.contains("restricted"), "{denied:?}");
    let reloads = entries_of_kind(&server, &token, "config_reloaded").await;
    assert_eq!(reloads.len(), 1, "{reloads:?}");
}

/// The starter policy as `init` wrote it into a second, untouched data directory.
fn lexecon_starter_policy(dir: &tempfile::TempDir) -> String {
    let run = lexecon(dir.path(), &["init", "--data-dir", "starter"]);
    assert_eq!(run.code, 0, "{run:?}");
    std::fs::read_to_string(dir.path().join("starter/policy.toml")).unwrap()
}

/// grpcurl for the README tour's grpcurl lines: `LEXECON_TEST_GRPCURL` (`.ci/run`
/// installs it with `.ci/install-grpcurl`), else `grpcurl` on the PATH; `None` with a
/// note outside CI.
fn grpcurl() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("LEXECON_TEST_GRPCURL")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("grpcurl"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcurl is missing; CI must run the tour's grpcurl step (see .ci/install-grpcurl)"
        );
        eprintln!(
            "note: grpcurl not found; skipping the tour's grpcurl step (.ci/install-grpcurl)"
        );
    }
    found
}

/// Invariant 1: an unreachable store can only deny. With Redis down, an LLM call the
/// policy approves is denied, and ordinary decisions still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_budget_store_denies_llm_calls() {
    let dir = init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(
        dir.path(),
        "data",
        &[("LEXECON_REDIS__URL", "redis://127.0.0.1:1/")],
    );
    let mut client = decision_client(&server).await;
    let llm = llm_request("", 10, 10);
    let r = client
        .decide(authed(llm, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome(), Outcome::Denied, "{r:?}");
    assert_eq!(r.reasons, ["budget-unavailable"]);
    assert!(r.capability_token.is_empty());
    let ok = client
        .decide(authed(approved_request(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.outcome(), Outcome::Approved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stays_revoked_across_restarts_and_is_ledgered_once() {
    use lexecon_proto::v1::{RevokeTokenRequest, VerifyTokenRequest};
    let dir = init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let mut client = decision_client(&server).await;
    let decision = client
        .decide(authed(approved_request(), &token))
        .await
        .unwrap()
        .into_inner();
    let check = |t: &str| VerifyTokenRequest {
        token: t.to_owned(),
        ..Default::default()
    };
    let valid = client
        .verify_token(authed(check(&decision.capability_token), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(valid.valid, "{valid:?}");
    let revoke = RevokeTokenRequest {
        token_id: valid.token_id.clone(),
        reason: "leaked in a log".into(),
    };
    let first = client
        .revoke_token(authed(revoke.clone(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(first.newly_revoked && first.ledger_index > 0, "{first:?}");
    let again = client
        .revoke_token(authed(revoke, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.newly_revoked, "{again:?}");
    assert_eq!(again.ledger_index, first.ledger_index);
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), 0);
    let server = Server::start(dir.path(), "data", &[]);
    let mut client = decision_client(&server).await;
    let revoked = client
        .verify_token(authed(check(&decision.capability_token), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(!revoked.valid);
    assert_eq!(revoked.error_kind, "revoked", "{revoked:?}");
    assert_eq!(
        entries_of_kind(&server, &token, "token_revoked")
            .await
            .len(),
        1
    );
}

/// An EdDSA-signed ID token for the test provider.
fn id_token(key: &ed25519_dalek::SigningKey, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = serde_json::json!({"alg": "EdDSA", "kid": "k1", "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature.to_bytes()))
}

/// The JWKS of the test OIDC provider: one Ed25519 key, `k1`, seeded with 7s.
fn oidc_test_jwks() -> String {
    use base64::Engine as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]}).to_string()
}

/// An HTTP server on 127.0.0.1 that answers every request with `body` as JSON; returns
/// its URL and how many requests it has answered.
async fn serve_json(body: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = body.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if conn.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/.well-known/jwks.json"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_id_token_from_a_configured_provider_becomes_a_session() {
    let dir = init_dir();
    let data = dir.path().join("data");
    std::fs::write(data.join("corp-jwks.json"), oidc_test_jwks()).unwrap();
    let jwks_file = format!("jwks_file = \"{}\"", data.join("corp-jwks.json").display());
    oidc_exchange_flow(dir.path(), &jwks_file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_provider_with_a_jwks_url_fetches_its_keys_once_and_caches_them() {
    let dir = init_dir();
    let (url, hits) = serve_json(oidc_test_jwks()).await;
    oidc_exchange_flow(dir.path(), &format!("jwks_url = \"{url}\"")).await;
    // Three exchanges signed with key k1 (one with a forged signature): one fetch.
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Configures provider `corp` (its keys from `jwks_line`) in `dir/data`, starts a
/// server, and checks an ID-token exchange: unverified email and a forged signature are
/// refused, a good token becomes a viewer session that may not decide.
async fn oidc_exchange_flow(dir: &Path, jwks_line: &str) {
    use lexecon_proto::v1::auth_service_client::AuthServiceClient;
    use lexecon_proto::v1::{
        ExchangeOidcTokenRequest, ListOidcProvidersRequest, Role, WhoAmIRequest,
    };
    let data = dir.join("data");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut config = std::fs::read_to_string(data.join("lexecon.toml")).unwrap();
    config.push_str(&format!(
        "\n[[auth.oidc]]\nname = \"corp\"\nissuer = \"https://login.example.com\"\nclient_id = \"lexecon\"\n{jwks_line}\n"
    ));
    std::fs::write(data.join("lexecon.toml"), config).unwrap();
    let server = Server::start(dir, "data", &[]);
    let mut auth = AuthServiceClient::new(server.channel().await);

    let providers = auth
        .list_oidc_providers(tonic::Request::new(ListOidcProvidersRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(providers.providers.len(), 1);
    assert_eq!(providers.providers[0].name, "corp");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |verified: bool| {
        serde_json::json!({
            "iss": "https://login.example.com", "aud": "lexecon", "sub": "u-42", "email": "bob@example.com",
            "email_verified": verified, "iat": now, "exp": now + 300,
        })
    };
    let exchange = |token: String| ExchangeOidcTokenRequest {
        provider: "corp".into(),
        id_token: token,
        nonce: String::new(),
    };
    let unverified = auth
        .exchange_oidc_token(tonic::Request::new(exchange(id_token(
            &key,
            &claims(false),
        ))))
        .await
        .unwrap_err();
    assert_eq!(
        unverified.code(),
        tonic::Code::Unauthenticated,
        "{unverified:?}"
    );
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let forged = auth
        .exchange_oidc_token(tonic::Request::new(exchange(id_token(
            &other_key,
            &claims(true),
        ))))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::Unauthenticated, "{forged:?}");

    let session = auth
        .exchange_oidc_token(tonic::Request::new(exchange(id_token(&key, &claims(true)))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.role(), Role::Viewer);
    let session_token = session.session.unwrap().token;
    assert!(!session_token.is_empty());
    let me = auth
        .who_am_i(authed(WhoAmIRequest {}, &session_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.principal_kind.as_str(), me.role()),
        ("user", Role::Viewer),
        "{me:?}"
    );
    // A viewer may read, not decide.
    let refused = decision_client(&server)
        .await
        .decide(authed(approved_request(), &session_token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
}
