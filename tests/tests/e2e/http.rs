//! The HTTP/JSON API (contract §9) end to end, with a plain HTTP/1.1 client (hyper)
//! against a real `lexecon server`: the seed's body on both decide routes, every
//! friendly route, one RPC of every service on the generic route, both streaming RPCs
//! as NDJSON within their bounds, bad input (400 naming the field, 413 beyond 1 MiB)
//! that writes nothing, 401/403, the open routes, HTTP/2 prior knowledge, and gRPC on
//! the same port.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lexecon_e2e::*;
use lexecon_proto::v1::Outcome;
use serde_json::{Value, json};

/// The actor, action and tool of the seed's example, with names our validation accepts.
const ACTOR: &str = "ai_agent:customer_service";
const TOOL: &str = "database_query";

/// The seed's example body: its field names and value types unchanged.
fn seed_body() -> Value {
    json!({
        "actor": ACTOR,
        "proposed_action": "read:customer_data",
        "tool": TOOL,
        "user_intent": "Answer the customer's question about their last invoice",
        "data_classes": ["pii", "financial"],
        "risk_level": 2,
        "policy_mode": "strict",
    })
}

/// One HTTP answer, body read to the end.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
    elapsed: Duration,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The JSON body of a 2xx answer.
    fn ok(&self, what: &str) -> Value {
        assert_eq!(self.status, 200, "{what}: {}", self.text());
        assert!(
            self.content_type().starts_with("application/json"),
            "{what}: content-type {:?}",
            self.content_type()
        );
        self.json()
    }

    /// Checks a §9 error: status, `error.code`, `error.field` (`None`: absent or null);
    /// returns `error.message`.
    fn error(&self, what: &str, status: u16, code: &str, field: Option<&str>) -> String {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        assert!(
            self.content_type().starts_with("application/json"),
            "{what}: an error is JSON, content-type {:?}",
            self.content_type()
        );
        let body = self.json();
        let error = &body["error"];
        assert_eq!(error["code"], code, "{what}: {body}");
        match field {
            Some(field) => assert_eq!(error["field"], field, "{what}: {body}"),
            None => assert!(
                error.get("field").is_none_or(Value::is_null),
                "{what}: no field expected: {body}"
            ),
        }
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            !message.is_empty(),
            "{what}: an error has a message: {body}"
        );
        message
    }
}

/// A keep-alive HTTP/1.1 connection (or an HTTP/2 prior-knowledge one).
struct Conn {
    addr: SocketAddr,
    h1: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    h2: Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>>,
}

impl Conn {
    async fn http1(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn {
            addr,
            h1: Some(sender),
            h2: None,
        }
    }

    async fn http2(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Conn {
            addr,
            h1: None,
            h2: Some(sender),
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let uri = if self.h2.is_some() {
            format!("http://{}{path}", self.addr)
        } else {
            path.to_owned()
        };
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        if self.h1.is_some() {
            builder = builder.header(hyper::header::HOST, self.addr.to_string());
        }
        if let Some(token) = token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let started = Instant::now();
        let response = match (&mut self.h1, &mut self.h2) {
            (Some(h1), _) => {
                h1.ready().await.unwrap();
                h1.send_request(request).await
            }
            (None, Some(h2)) => {
                h2.ready().await.unwrap();
                h2.send_request(request).await
            }
            (None, None) => unreachable!(),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e:?}"))
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        }
    }
}

/// One request on a fresh HTTP/1.1 connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    Conn::http1(addr)
        .await
        .send(method, path, token, body)
        .await
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    request(addr, "GET", path, token, None).await
}

async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> Reply {
    request(
        addr,
        "POST",
        path,
        token,
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// An initialised data directory whose policy also lets support agents read financial
/// data, so the seed's body is approved; and its admin token.
fn seed_dir() -> (tempfile::TempDir, String) {
    let dir = crate::init_dir();
    let policy_path = dir.path().join("data/policy.toml");
    let policy = std::fs::read_to_string(&policy_path).unwrap();
    let widened = policy.replacen(
        "data_classes_within = [\"pii\", \"public\", \"internal\"]",
        "data_classes_within = [\"pii\", \"financial\", \"public\", \"internal\"]",
        1,
    );
    assert_ne!(policy, widened, "the starter policy changed shape");
    std::fs::write(&policy_path, widened).unwrap();
    let token = admin_token(&dir.path().join("data"));
    (dir, token)
}

/// An agent API key bound to [`ACTOR`], made with the CLI.
fn agent_key(dir: &Path) -> String {
    let created = lexecon(
        dir,
        &[
            "apikey",
            "create",
            "--data-dir",
            "data",
            "--name",
            "http-agent",
            "--role",
            "agent",
            "--actor",
            ACTOR,
            "--json",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    serde_json::from_str::<Value>(&created.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The checks every decide answer to the seed's body passes.
fn check_seed_decision(what: &str, d: &Value) {
    assert!(
        d["decision_id"].as_str().unwrap_or("").starts_with("dec_"),
        "{what}: {d}"
    );
    assert_eq!(d["outcome"], "approved", "{what}: {d}");
    assert!(
        !d["reasoning"].as_str().unwrap_or("").is_empty(),
        "{what}: {d}"
    );
    assert_eq!(d["risk_level"], "medium", "{what}: {d}");
    let score = d["risk_score"].as_u64().unwrap_or(u64::MAX);
    assert!((30..60).contains(&score), "{what}: a medium score: {d}");
    assert!(
        d["capability_token"]
            .as_str()
            .unwrap_or("")
            .starts_with("lxc1."),
        "{what}: {d}"
    );
    // 64-bit integers are strings; default fields are written; enums are short names.
    assert!(d["ledger_index"].is_string(), "{what}: {d}");
    assert_eq!(d["effective_mode"], "strict", "{what}: {d}");
    assert_eq!(d["escalation_id"], "", "{what}: defaults are written: {d}");
    assert!(
        d["warnings"].is_array(),
        "{what}: defaults are written: {d}"
    );
    assert_eq!(d["actor"], ACTOR, "{what}: {d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_body_decides_on_both_routes_and_free_text_is_refused() {
    let (dir, token) = seed_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let addr = server.grpc;

    let mut ids = Vec::new();
    for route in ["/v1/decide", "/decide"] {
        let reply = post(addr, route, Some(&token), &seed_body()).await;
        let d = reply.ok(route);
        check_seed_decision(route, &d);
        ids.push(d["decision_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1], "two decisions");

    // The token verifies, through the generic route of DecisionService.
    let d = post(addr, "/v1/decide", Some(&token), &seed_body())
        .await
        .ok("decide");
    let verified = post(
        addr,
        "/v1/DecisionService/VerifyToken",
        Some(&token),
        &json!({"token": d["capability_token"], "actor": ACTOR}),
    )
    .await
    .ok("VerifyToken");
    assert_eq!(verified["valid"], true, "{verified}");

    // Enums read as short names, full names or numbers; field names in either case.
    for (mode, name_case) in [
        (json!("POLICY_MODE_STRICT"), "snake"),
        (json!(2), "snake"),
        (json!("strict"), "camel"),
    ] {
        let mut body = seed_body();
        body["policy_mode"] = mode.clone();
        if name_case == "camel" {
            let obj = body.as_object_mut().unwrap();
            let action = obj.remove("proposed_action").unwrap();
            obj.insert("proposedAction".into(), action);
            let classes = obj.remove("data_classes").unwrap();
            obj.insert("dataClasses".into(), classes);
        }
        let d = post(addr, "/v1/decide", Some(&token), &body)
            .await
            .ok(&format!("policy_mode {mode}, {name_case} case"));
        check_seed_decision(&format!("policy_mode {mode}, {name_case} case"), &d);
    }

    // A free-text action: 400 naming proposed_action, saying how to name actions.
    let before = crate::ledger_size(&server, &token).await;
    let mut free_text = seed_body();
    free_text["proposed_action"] = json!("Read the customer's data");
    for route in ["/v1/decide", "/decide"] {
        let reply = post(addr, route, Some(&token), &free_text).await;
        let message = reply.error(route, 400, "invalid_argument", Some("proposed_action"));
        assert!(
            message.contains("proposed_action") && message.contains("verb:object"),
            "{route}: the message says how to name actions (verb:object, e.g. \
             read:customer_data): {message}"
        );
    }
    assert_eq!(crate::ledger_size(&server, &token).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_friendly_route_answers() {
    let (dir, token) = seed_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let addr = server.grpc;
    let token = Some(token.as_str());
    let decided = post(addr, "/v1/decide", token, &seed_body())
        .await
        .ok("decide");

    let verify = get(addr, "/v1/ledger/verify", token)
        .await
        .ok("ledger/verify");
    assert_eq!(verify["valid"], true, "{verify}");
    assert!(
        verify["entries"].is_string(),
        "uint64 as a string: {verify}"
    );

    let page = get(addr, "/v1/ledger/entries?from=0&limit=5", token)
        .await
        .ok("ledger/entries");
    let entries = page["entries"].as_array().unwrap();
    assert!(!entries.is_empty() && entries.len() <= 5, "{page}");
    assert_eq!(entries[0]["index"], "0", "{page}");
    assert_eq!(page["next"], entries.len().to_string(), "{page}");
    let decisions = get(
        addr,
        "/v1/ledger/entries?from=0&limit=50&kind=decision",
        token,
    )
    .await
    .ok("ledger/entries?kind=decision");
    let decisions = decisions["entries"].as_array().unwrap();
    assert!(!decisions.is_empty());
    assert!(
        decisions.iter().all(|e| e["kind"] == "decision"),
        "{decisions:?}"
    );
    assert!(
        decisions
            .iter()
            .any(|e| e["index"] == decided["ledger_index"]),
        "the decision's entry: {decisions:?}"
    );

    let policies = get(addr, "/v1/policies", token).await.ok("policies");
    let versions = policies["versions"].as_array().unwrap();
    assert!(
        versions.iter().any(|v| v["name"] == "starter"),
        "the loaded policy is listed: {policies}"
    );

    let risk = post(
        addr,
        "/v1/risk/assess",
        token,
        &json!({"actor": ACTOR, "proposed_action": "delete:customer_records", "tool": TOOL,
                "data_classes": ["pii"], "risk_level": 4}),
    )
    .await
    .ok("risk/assess");
    assert!(risk["risk_score"].as_u64().is_some(), "{risk}");
    assert!(
        ["low", "medium", "high", "critical"].contains(&risk["level"].as_str().unwrap_or("")),
        "{risk}"
    );
    assert!(risk["dimensions"].is_object(), "{risk}");

    let escalations = get(addr, "/v1/escalations", token).await.ok("escalations");
    assert!(escalations["escalations"].is_array(), "{escalations}");
    assert_eq!(escalations["next_page_token"], "", "{escalations}");

    let gaps = get(addr, "/v1/compliance/soc2/gaps", token)
        .await
        .ok("compliance/soc2/gaps");
    assert_eq!(gaps["framework"], "soc2", "{gaps}");
    assert!(gaps["gaps"].is_array(), "{gaps}");
    let unknown = get(addr, "/v1/compliance/no_such_framework/gaps", token).await;
    assert!(
        matches!(unknown.status, 400 | 404),
        "an unknown framework is the caller's error: {} {}",
        unknown.status,
        unknown.text()
    );

    // Keep-alive: several requests on one HTTP/1.1 connection.
    let mut conn = Conn::http1(addr).await;
    for _ in 0..3 {
        let d = conn
            .send(
                "POST",
                "/v1/decide",
                token,
                Some(seed_body().to_string().into_bytes()),
            )
            .await
            .ok("keep-alive decide");
        check_seed_decision("keep-alive decide", &d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rpc_of_every_service_on_the_generic_route_and_both_streams() {
    let (dir, token) = seed_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let addr = server.grpc;
    let admin = Some(token.as_str());
    let call = |rpc: &'static str, body: Value| async move {
        post(addr, &format!("/v1/{rpc}"), admin, &body)
            .await
            .ok(rpc)
    };

    let decided = call("DecisionService/Decide", seed_body()).await;
    check_seed_decision("DecisionService/Decide", &decided);
    // The full service name is accepted too.
    let full = call("lexecon.v1.DecisionService/Decide", seed_body()).await;
    check_seed_decision("lexecon.v1.DecisionService/Decide", &full);

    let active = call("PolicyService/GetActivePolicy", json!({})).await;
    assert!(
        active["source"]
            .as_str()
            .unwrap_or("")
            .contains("financial"),
        "{active}"
    );
    let entry = call(
        "LedgerService/GetEntry",
        json!({"index": decided["ledger_index"]}),
    )
    .await;
    assert_eq!(entry["entry"]["kind"], "decision", "{entry}");
    // 64-bit integers are read from numbers too.
    let index: u64 = decided["ledger_index"].as_str().unwrap().parse().unwrap();
    let entry2 = call("LedgerService/GetEntry", json!({ "index": index })).await;
    assert_eq!(entry2, entry);
    let risk = call(
        "RiskService/Assess",
        json!({"proposed_action": "read:customer_data", "data_classes": ["pii", "financial"]}),
    )
    .await;
    assert!(risk["risk_score"].as_u64().is_some(), "{risk}");
    let limits = call("BudgetService/GetLimits", json!({"user_id": "alice"})).await;
    assert!(limits["config_toml"].is_string(), "{limits}");
    let me = call("AuthService/WhoAmI", json!({})).await;
    assert_eq!(me["role"], "admin", "{me}");
    let halt = call("OversightService/GetHaltStatus", json!({})).await;
    assert_eq!(halt["halted_all"], false, "{halt}");
    let frameworks = call("ComplianceService/ListFrameworks", json!({})).await;
    assert!(
        frameworks["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "soc2"),
        "{frameworks}"
    );
    let evidence = call("EvidenceService/ListEvidence", json!({"page_size": 10})).await;
    // Nothing registered yet: an empty page, its default fields written.
    assert_eq!(
        evidence,
        json!({"evidence": [], "next_page_token": ""}),
        "{evidence}"
    );
    let query = call(
        "AuditService/QueryDecisions",
        json!({"outcome": "approved", "actor": ACTOR}),
    )
    .await;
    let records = query["decisions"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["decision_id"] == decided["decision_id"]),
        "{query}"
    );

    // ExportAudit: NDJSON, one message per line, at most max_events lines.
    let reply = post(
        addr,
        "/v1/AuditService/ExportAudit?max_events=2&wait_ms=20000",
        admin,
        &json!({"format": "ndjson", "actor": ACTOR}),
    )
    .await;
    assert_eq!(reply.status, 200, "ExportAudit: {}", reply.text());
    assert!(
        reply.content_type().starts_with("application/x-ndjson"),
        "{:?}",
        reply.content_type()
    );
    let lines = ndjson(&reply);
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "max_events=2: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["path"].is_string() && l["data"].is_string()),
        "{lines:?}"
    );
    assert!(
        reply.elapsed < Duration::from_secs(20),
        "{:?}",
        reply.elapsed
    );
    // Without max_events the export runs to its end, well before wait_ms.
    let whole = post(
        addr,
        "/v1/AuditService/ExportAudit?wait_ms=20000",
        admin,
        &json!({"format": "ndjson", "actor": ACTOR}),
    )
    .await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let chunks = ndjson(&whole);
    assert!(
        chunks.iter().any(|c| c["path"] == "manifest.json"),
        "the whole bundle: {chunks:?}"
    );

    // WatchEvents from index 0: past events (policy_loaded, the two audit_exported)
    // at once, max_events ends it.
    let reply = post(
        addr,
        "/v1/OversightService/WatchEvents?max_events=2&wait_ms=20000",
        admin,
        &json!({"from_index": "0"}),
    )
    .await;
    assert_eq!(reply.status, 200, "WatchEvents: {}", reply.text());
    assert!(
        reply.content_type().starts_with("application/x-ndjson"),
        "{:?}",
        reply.content_type()
    );
    let events = ndjson(&reply);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["event"]["ledger_index"].is_string() && e["event"]["kind"].is_string()),
        "{events:?}"
    );
    assert!(
        reply.elapsed < Duration::from_secs(10),
        "{:?}",
        reply.elapsed
    );
    // Only new events, none coming: wait_ms ends it.
    let reply = post(
        addr,
        "/v1/OversightService/WatchEvents?wait_ms=1500",
        admin,
        &json!({"kinds": ["escalation_created"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "WatchEvents: {}", reply.text());
    assert!(ndjson(&reply).is_empty(), "{}", reply.text());
    assert!(
        reply.elapsed >= Duration::from_millis(1400) && reply.elapsed < Duration::from_secs(8),
        "wait_ms=1500 bounds the stream: {:?}",
        reply.elapsed
    );
    // A bad bound is the caller's error, naming it.
    let reply = post(
        addr,
        "/v1/OversightService/WatchEvents?max_events=many",
        admin,
        &json!({}),
    )
    .await;
    reply.error(
        "max_events=many",
        400,
        "invalid_argument",
        Some("max_events"),
    );
}

/// POSTs `body` on a fresh connection with `Connection: close` (and a length, or
/// chunked), writing it while reading the answer and ignoring write errors; returns the
/// status and the body of the answer.
async fn raw_post(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: Vec<u8>,
    chunked: bool,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let length = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\nconnection: close\r\n{length}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        if chunked {
            for chunk in body.chunks(64 * 1024) {
                write
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                write.write_all(chunk).await?;
                write.write_all(b"\r\n").await?;
            }
            write.write_all(b"0\r\n\r\n").await?;
        } else {
            write.write_all(&body).await?;
        }
        write.flush().await
    });
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("an answer within 20 s");
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let head_lower = head.to_ascii_lowercase();
    let body = if head_lower.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        let length = head_lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(rest.len());
        rest[..length.min(rest.len())].to_owned()
    };
    (status, body)
}

/// The lines of an NDJSON body, each parsed.
fn ndjson(reply: &Reply) -> Vec<Value> {
    reply
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("an NDJSON line ({e}): {l:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let (dir, token) = seed_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let addr = server.grpc;
    let admin = Some(token.as_str());
    // Something in the ledger first, so "nothing written" compares a real size.
    post(addr, "/v1/decide", admin, &seed_body())
        .await
        .ok("decide");
    let before = crate::ledger_size(&server, &token).await;

    let raw = |body: &str| Some(body.as_bytes().to_vec());
    let with = |field: &str, value: Value| {
        let mut body = seed_body();
        body[field] = value;
        Some(body.to_string().into_bytes())
    };
    // (what, route, body, the field the error names)
    type Case<'a> = (&'a str, &'a str, Option<Vec<u8>>, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        ("not JSON", "/v1/decide", raw("{\"actor\": "), None),
        ("not an object", "/v1/decide", raw("[1, 2]"), None),
        (
            "an unknown field",
            "/v1/decide",
            with("no_such_field", json!(1)),
            Some("no_such_field"),
        ),
        (
            "risk_level as a word",
            "/v1/decide",
            with("risk_level", json!("high")),
            Some("risk_level"),
        ),
        (
            "data_classes not a list",
            "/v1/decide",
            with("data_classes", json!("pii")),
            Some("data_classes"),
        ),
        (
            "an unknown policy_mode",
            "/v1/decide",
            with("policy_mode", json!("lenient")),
            Some("policy_mode"),
        ),
        (
            "llm.user_id a number",
            "/v1/decide",
            with("llm", json!({"model": "gpt-4o-mini", "user_id": 5})),
            Some("llm.user_id"),
        ),
        (
            "an unknown nested field",
            "/v1/decide",
            with("llm", json!({"model": "gpt-4o-mini", "tokens": 5})),
            Some("llm.tokens"),
        ),
        (
            "an actor the server refuses",
            "/v1/decide",
            with("actor", json!("has space")),
            Some("actor"),
        ),
        (
            "a risk_level out of range",
            "/v1/decide",
            with("risk_level", json!(9)),
            Some("risk_level"),
        ),
        (
            "a wrong type on the generic route",
            "/v1/LedgerService/GetEntry",
            raw("{\"index\": \"zero\"}"),
            Some("index"),
        ),
    ];
    for (what, route, body, field) in cases {
        let reply = request(addr, "POST", route, admin, body).await;
        let message = reply.error(what, 400, "invalid_argument", field);
        if let Some(field) = field {
            assert!(
                message.contains(field),
                "{what}: the message names {field}: {message}"
            );
        }
    }
    // Query parameters: a wrong type and an unknown name.
    for (what, path, field) in [
        ("limit=abc", "/v1/ledger/entries?from=0&limit=abc", "limit"),
        (
            "an unknown parameter",
            "/v1/ledger/entries?colour=red",
            "colour",
        ),
    ] {
        get(addr, path, admin)
            .await
            .error(what, 400, "invalid_argument", Some(field));
    }

    // Beyond 1 MiB: 413, whatever the body holds, with a length or chunked. (A raw
    // client: the server may answer before it has read the whole body and close, which
    // hyper's client reports as a broken pipe instead of the answer.)
    let mut big = seed_body();
    big["user_intent"] = json!("x".repeat(1024 * 1024));
    let pad = json!({"pad": "y".repeat(1024 * 1024 + 10)});
    for (what, route, body, chunked) in [
        ("a 1 MiB user_intent", "/v1/decide", &big, false),
        ("a 1 MiB user_intent, chunked", "/v1/decide", &big, true),
        (
            "a 1 MiB unknown field",
            "/v1/DecisionService/Decide",
            &pad,
            false,
        ),
    ] {
        let (status, body) =
            raw_post(addr, route, &token, body.to_string().into_bytes(), chunked).await;
        assert_eq!(status, 413, "{what}: {}", &body[..body.len().min(300)]);
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: a JSON error ({e}): {body}"));
        assert!(
            body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    // Under both limits (1 MiB of HTTP body, server.max_request_bytes of protobuf, 256 KiB
    // by default) a body is read, and refused for what it holds, not its size.
    let mut long = seed_body();
    long["user_intent"] = json!("x".repeat(200 * 1024));
    post(addr, "/v1/decide", admin, &long).await.error(
        "a long user_intent",
        400,
        "invalid_argument",
        Some("user_intent"),
    );
    // Under 1 MiB but beyond server.max_request_bytes once encoded: too large, saying
    // which limit.
    let mut near = seed_body();
    near["user_intent"] = json!("x".repeat(1024 * 1024 - 1024));
    let reply = post(addr, "/v1/decide", admin, &near).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("max_request_bytes"),
        "{}",
        reply.text()
    );

    assert_eq!(
        crate::ledger_size(&server, &token).await,
        before,
        "refused requests write nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_roles_open_routes_http2_and_grpc_on_one_port() {
    let (dir, token) = seed_dir();
    let server = Server::start(dir.path(), "data", &[]);
    let addr = server.grpc;
    let agent = agent_key(dir.path());

    // No token, a bad token: 401. A low role: 403.
    post(addr, "/v1/decide", None, &seed_body()).await.error(
        "no token",
        401,
        "unauthenticated",
        None,
    );
    post(addr, "/v1/decide", Some("lxk_not_a_real_key"), &seed_body())
        .await
        .error("a bad token", 401, "unauthenticated", None);
    get(addr, "/v1/ledger/verify", None).await.error(
        "no token (GET)",
        401,
        "unauthenticated",
        None,
    );
    get(addr, "/v1/ledger/verify", Some(&agent)).await.error(
        "an agent verifying",
        403,
        "permission_denied",
        None,
    );
    post(
        addr,
        "/v1/PolicyService/LoadPolicy",
        Some(&agent),
        &json!({"source": ""}),
    )
    .await
    .error("an agent loading a policy", 403, "permission_denied", None);
    // The agent may decide for its own actor, and is refused another.
    let d = post(addr, "/v1/decide", Some(&agent), &seed_body())
        .await
        .ok("agent decide");
    check_seed_decision("agent decide", &d);
    let mut other = seed_body();
    other["actor"] = json!("ai_agent:customer_other");
    let refused = post(addr, "/v1/decide", Some(&agent), &other).await;
    assert_eq!(refused.status, 403, "{}", refused.text());

    // Open routes.
    for path in ["/healthz", "/readyz"] {
        let reply = get(addr, path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let openapi = get(addr, "/openapi.json", None).await;
    assert_eq!(openapi.status, 200, "{}", openapi.text());
    let served = openapi.json();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let checked_in = std::fs::read(root.join("docs/openapi.json")).unwrap();
    let checked_in_json: Value = serde_json::from_slice(&checked_in).unwrap();
    assert!(
        served == checked_in_json,
        "/openapi.json differs from docs/openapi.json (run `cargo xtask codegen`)"
    );
    assert_eq!(
        openapi.body, checked_in,
        "/openapi.json is docs/openapi.json byte for byte"
    );
    check_openapi(&served);
    let docs = get(addr, "/docs", None).await;
    assert_eq!(docs.status, 200, "{}", docs.text());
    assert!(
        docs.content_type().starts_with("text/html"),
        "{:?}",
        docs.content_type()
    );
    let html = docs.text();
    assert!(
        html.contains("/v1/decide"),
        "the reference lists the routes"
    );
    assert_eq!(
        external_assets(&html),
        Vec::<String>::new(),
        "/docs fetches nothing from elsewhere"
    );

    // HTTP/2 with prior knowledge, JSON.
    let mut h2 = Conn::http2(addr).await;
    let reply = h2
        .send(
            "POST",
            "/v1/decide",
            Some(&token),
            Some(seed_body().to_string().into_bytes()),
        )
        .await;
    check_seed_decision("HTTP/2", &reply.ok("HTTP/2 decide"));
    h2.send("GET", "/v1/ledger/verify", None, None).await.error(
        "HTTP/2 without a token",
        401,
        "unauthenticated",
        None,
    );

    // gRPC on the same port, in the same test.
    let grpc = decision_client(&server)
        .await
        .decide(authed(approved_request(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.outcome(), Outcome::Approved);
}

/// What the served OpenAPI document promises: 3.1, the friendly and generic routes,
/// 429 and 503 on every operation.
fn check_openapi(doc: &Value) {
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/v1/decide",
        "/decide",
        "/v1/ledger/verify",
        "/v1/ledger/entries",
        "/v1/policies",
        "/v1/risk/assess",
        "/v1/escalations",
        "/v1/compliance/{framework}/gaps",
        "/v1/DecisionService/Decide",
        "/v1/AuditService/ExportAudit",
        "/v1/OversightService/WatchEvents",
    ] {
        assert!(paths.contains_key(path), "the document has {path}");
    }
    for (path, item) in paths {
        for (verb, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&verb.as_str()) {
                continue;
            }
            if ["/healthz", "/readyz", "/openapi.json", "/docs"].contains(&path.as_str()) {
                continue;
            }
            let responses = op["responses"].as_object().unwrap();
            for code in ["429", "503"] {
                assert!(
                    responses.contains_key(code),
                    "{verb} {path} lists {code}: {responses:?}"
                );
            }
        }
    }
}

/// The `src`, stylesheet `href`, CSS `url(...)` and `@import` references of `html`
/// that point outside the server.
fn external_assets(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let external = |v: &str| {
        let v = v.trim_start_matches(['"', '\'', ' ']);
        v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//")
    };
    let mut found = Vec::new();
    for marker in ["src=", "url(", "@import"] {
        for (at, _) in lower.match_indices(marker) {
            let rest = &lower[at + marker.len()..];
            if external(rest) {
                found.push(rest.chars().take(80).collect());
            }
        }
    }
    for (at, _) in lower.match_indices("<link") {
        let tag: String = lower[at..].chars().take_while(|c| *c != '>').collect();
        if let Some(h) = tag.find("href=")
            && external(&tag[h + 5..])
        {
            found.push(tag);
        }
    }
    found
}
