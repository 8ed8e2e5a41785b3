//! The relay end to end over in-memory pipes: a fake upstream that logs what reaches
//! it, and a fake decider with a fixed policy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lexecon_capability::{Claims, NodeKey};
use lexecon_core::{Action, Actor, DecisionId, Timestamp, Tool};
use lexecon_engine::config::{McpConfig, McpToolRule};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use crate::decider::{
    Completion, Decider, DeciderError, DecisionAnswer, DecisionRequest, EscalationAnswer,
    EscalationState, Outcome, Probe,
};
use crate::gateway::{Gateway, META_CAPABILITY_TOKEN, META_DECISION_ID, Session};
use crate::mapping::Settings;
use crate::stdio::{End, MAX_CLIENT_MESSAGE_BYTES, relay};

/// Denies `*/forbidden`, escalates `*/risky` (approved once `approve` is set), fails
/// on `*/broken`, approves the rest; `*/forbidden` is always denied for tools/list.
#[derive(Debug, Default)]
struct FakeDecider {
    requests: Mutex<Vec<DecisionRequest>>,
    completions: Mutex<Vec<Completion>>,
    approve: Mutex<bool>,
    decided: Mutex<BTreeMap<String, DecisionAnswer>>,
}

fn token(decision_id: &str, action: &str, tool: &str) -> String {
    let key = NodeKey::from_secret_bytes(&[7; 32]);
    let id: DecisionId = decision_id.parse().unwrap();
    let claims = Claims::builder(
        id,
        Actor::new("agent:test").unwrap(),
        Action::new(action).unwrap(),
        [0; 32],
    )
    .tool(Some(Tool::new(tool).unwrap()))
    .build(
        key.key_id(),
        Timestamp::from_unix_secs(1_800_000_000),
        1 << 90,
    )
    .unwrap();
    lexecon_capability::mint(&key, &claims).unwrap()
}

fn decision_id(n: usize) -> String {
    DecisionId::new(
        Timestamp::from_unix_secs(1_800_000_000),
        n as u128 + (1 << 100),
    )
    .to_string()
}

#[async_trait::async_trait]
impl Decider for FakeDecider {
    async fn decide(&self, r: &DecisionRequest) -> Result<DecisionAnswer, DeciderError> {
        let n = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(r.clone());
            requests.len()
        };
        if let Some(again) = self.decided.lock().unwrap().get(&r.request_id) {
            return Ok(again.clone());
        }
        let id = decision_id(n);
        let answer = |outcome, token: Option<String>, reasons: Vec<&str>| DecisionAnswer {
            decision_id: id.clone(),
            request_id: r.request_id.clone(),
            outcome,
            reasoning: "the policy says so".to_owned(),
            reasons: reasons.into_iter().map(str::to_owned).collect(),
            capability_token: token,
            escalation_id: (outcome == Outcome::Escalated).then(|| "esc_1".to_owned()),
            escalation_state: (outcome == Outcome::Escalated).then_some(EscalationState::Pending),
        };
        let a = if r.tool.ends_with("/forbidden") {
            answer(Outcome::Denied, None, vec!["rel_no_forbidden"])
        } else if r.tool.ends_with("/risky") {
            answer(Outcome::Escalated, None, vec!["risk:high"])
        } else if r.tool.ends_with("/broken") {
            return Err(DeciderError("the server is unreachable".to_owned()));
        } else if r.tool.ends_with("/liar") {
            // Approved, but the token names another tool.
            answer(
                Outcome::Approved,
                Some(token(&id, &r.action, "up/other")),
                vec!["rel_ok"],
            )
        } else {
            answer(
                Outcome::Approved,
                Some(token(&id, &r.action, &r.tool)),
                vec!["rel_ok"],
            )
        };
        if !r.request_id.is_empty() {
            self.decided
                .lock()
                .unwrap()
                .insert(r.request_id.clone(), a.clone());
        }
        Ok(a)
    }

    async fn escalation(&self, id: &str) -> Result<EscalationAnswer, DeciderError> {
        let approved = *self.approve.lock().unwrap();
        let decision = self
            .decided
            .lock()
            .unwrap()
            .values()
            .find(|d| d.escalation_id.as_deref() == Some(id))
            .cloned()
            .unwrap();
        Ok(EscalationAnswer {
            escalation_id: id.to_owned(),
            decision_id: decision.decision_id.clone(),
            state: if approved {
                EscalationState::Approved
            } else {
                EscalationState::Pending
            },
            capability_token: approved
                .then(|| token(&decision.decision_id, "call:risky", "up/risky")),
        })
    }

    async fn record_completion(&self, c: Completion) -> Result<(), DeciderError> {
        self.completions.lock().unwrap().push(c);
        Ok(())
    }

    async fn check_tools(&self, _actor: &str, probes: &[Probe]) -> Result<Vec<bool>, DeciderError> {
        Ok(probes
            .iter()
            .map(|p| p.tool.ends_with("/forbidden"))
            .collect())
    }
}

/// Answers every request; logs every line it receives.
async fn fake_upstream(pipe: DuplexStream, log: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = tokio::io::split(pipe);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line.clone());
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let reply = |result: Value| json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
        let out = match msg["method"].as_str() {
            Some("tools/call") if msg["params"]["name"] == "fails" => {
                json!({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -1, "message": "boom"}})
            }
            Some("tools/call") => reply(json!({
                "content": [{"type": "text", "text": format!("ran {}", msg["params"]["name"])}],
                "_meta": {"upstream": true}
            })),
            Some("tools/list") => reply(json!({
                "tools": [{"name": "allowed", "inputSchema": {"type": "object"}}, {"name": "forbidden"}, {"name": "risky"}],
                "nextCursor": "c2"
            })),
            Some("hang") => continue,
            Some("die") => return,
            Some(_) if msg.get("id").is_some() => reply(json!({"echo": msg["method"]})),
            _ => continue,
        };
        let mut bytes = out.to_string().into_bytes();
        bytes.push(b'\n');
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

struct Harness {
    client: tokio::io::WriteHalf<DuplexStream>,
    replies: tokio::io::Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    upstream_log: Arc<Mutex<Vec<String>>>,
    decider: Arc<FakeDecider>,
    relay: tokio::task::JoinHandle<End>,
    recorder: tokio::task::JoinHandle<()>,
    gateway: Arc<Gateway<FakeDecider>>,
}

fn start(mcp: McpConfig) -> Harness {
    let (client_side, gateway_client) = tokio::io::duplex(1 << 16);
    let (gateway_upstream, upstream_side) = tokio::io::duplex(1 << 16);
    let upstream_log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(fake_upstream(upstream_side, Arc::clone(&upstream_log)));
    let decider = Arc::new(FakeDecider::default());
    let settings = Settings::new(&mcp).unwrap();
    let (gateway, recorder) = Gateway::new("up", "agent:test", settings, Arc::clone(&decider));
    let gateway = Arc::new(gateway);
    let (gc_read, gc_write) = tokio::io::split(gateway_client);
    let (gu_read, gu_write) = tokio::io::split(gateway_upstream);
    let relay = tokio::spawn(relay(
        Arc::clone(&gateway),
        Arc::new(Session::new(Some(b"session".to_vec()))),
        BufReader::new(gc_read),
        gc_write,
        BufReader::new(gu_read),
        gu_write,
        Duration::from_secs(2),
    ));
    let (read, client) = tokio::io::split(client_side);
    Harness {
        client,
        replies: BufReader::new(read).lines(),
        upstream_log,
        decider,
        relay,
        recorder,
        gateway,
    }
}

impl Harness {
    async fn send(&mut self, line: &str) {
        self.client.write_all(line.as_bytes()).await.unwrap();
        self.client.write_all(b"\n").await.unwrap();
    }

    async fn reply(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), self.replies.next_line())
            .await
            .expect("no reply within 5 s")
            .unwrap()
            .expect("the relay closed");
        serde_json::from_str(&line).unwrap()
    }

    async fn reply_text(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.replies.next_line())
            .await
            .expect("no reply within 5 s")
            .unwrap()
            .expect("the relay closed")
    }

    fn upstream_saw(&self) -> Vec<String> {
        self.upstream_log.lock().unwrap().clone()
    }

    async fn close(mut self) -> (End, Arc<FakeDecider>) {
        self.client.shutdown().await.unwrap();
        drop(self.client);
        while let Ok(Some(_)) = self.replies.next_line().await {}
        let end = self.relay.await.unwrap();
        self.gateway.finish();
        self.recorder.await.unwrap();
        (end, self.decider)
    }
}

fn call(id: u32, name: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}}).to_string()
}

#[tokio::test]
async fn ungoverned_messages_pass_unchanged_both_ways() {
    let mut h = start(McpConfig::default());
    // Odd spacing and a future protocol's method: relayed byte for byte.
    let init = r#"{"jsonrpc":"2.0", "id":0,"method":"initialize","params":{"protocolVersion":"2099-01-01","x":[1, 2]}}"#;
    h.send(init).await;
    let r = h.reply().await;
    assert_eq!(r["result"]["echo"], "initialize");
    h.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    h.send(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#)
        .await;
    assert_eq!(h.reply().await["id"], "p");
    let batch = r#"[{"jsonrpc":"2.0","id":8,"method":"resources/list"},{"jsonrpc":"2.0","method":"notifications/x"}]"#;
    h.send(batch).await;
    let saw = h.upstream_saw();
    assert_eq!(saw[0], init);
    assert_eq!(
        saw[1],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
    );
    assert_eq!(saw[2], r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    let (end, decider) = h.close().await;
    assert_eq!(end, End::ClientClosed);
    assert!(decider.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_approved_call_is_forwarded_and_its_result_names_the_decision() {
    let mut h = start(McpConfig::default());
    let line = call(1, "allowed", json!({"path": "/tmp/a", "n": 1}));
    h.send(&line).await;
    let r = h.reply().await;
    assert_eq!(r["id"], 1);
    assert_eq!(r["result"]["content"][0]["text"], "ran \"allowed\"");
    assert_eq!(r["result"]["_meta"]["upstream"], true);
    let decision_id = r["result"]["_meta"][META_DECISION_ID]
        .as_str()
        .unwrap()
        .to_owned();
    let token = r["result"]["_meta"][META_CAPABILITY_TOKEN]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(decision_id.starts_with("dec_"));
    assert!(token.starts_with("lxc1."));
    assert_eq!(h.upstream_saw(), vec![line]);
    let (_, decider) = h.close().await;
    let requests = decider.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].tool, "up/allowed");
    assert_eq!(requests[0].action, "call:allowed");
    assert_eq!(requests[0].actor, "agent:test");
    assert_eq!(requests[0].context["mcp.server"], "up");
    assert_eq!(
        requests[0].context["mcp.args_sha256"],
        crate::canonical::sha256_hex(&json!({"n": 1, "path": "/tmp/a"}))
    );
    let completions = decider.completions.lock().unwrap().clone();
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].decision_id, decision_id);
    assert!(!completions[0].is_error);
    let result_as_sent = json!({"content": [{"type": "text", "text": "ran \"allowed\""}], "_meta": {"upstream": true}});
    assert_eq!(
        completions[0].result_sha256,
        crate::canonical::sha256(&result_as_sent)
    );
    assert_eq!(completions[0].arguments_json, None);
    assert_eq!(completions[0].result_json, None);
}

#[tokio::test]
async fn a_denied_call_never_reaches_the_upstream() {
    let mut h = start(McpConfig::default());
    h.send(&call(2, "forbidden", json!({}))).await;
    let r = h.reply().await;
    assert_eq!(r["id"], 2);
    assert_eq!(r["result"]["isError"], true);
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Lexecon denied this call (decision dec_"),
        "{text}"
    );
    assert!(text.contains("reasons: rel_no_forbidden"), "{text}");
    assert!(text.contains("the policy says so"), "{text}");
    assert!(h.upstream_saw().is_empty());
    let (_, decider) = h.close().await;
    assert!(decider.completions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn no_decision_or_a_decision_for_another_call_forwards_nothing() {
    let mut h = start(McpConfig::default());
    h.send(&call(3, "broken", json!({}))).await;
    let r = h.reply().await;
    assert_eq!(r["result"]["isError"], true);
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("could not decide") && text.contains("unreachable"),
        "{text}"
    );
    h.send(&call(4, "liar", json!({}))).await;
    let r = h.reply().await;
    assert_eq!(r["result"]["isError"], true);
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("up/other")
    );
    assert!(h.upstream_saw().is_empty());
    h.close().await;
}

#[tokio::test]
async fn a_retried_message_gets_the_same_decision() {
    let mut h = start(McpConfig::default());
    h.send(&call(5, "allowed", json!({"a": 1}))).await;
    let first = h.reply().await;
    h.send(&call(5, "allowed", json!({"a": 1}))).await;
    let second = h.reply().await;
    assert_eq!(
        first["result"]["_meta"][META_DECISION_ID],
        second["result"]["_meta"][META_DECISION_ID]
    );
    h.send(&call(6, "allowed", json!({"a": 1}))).await;
    let third = h.reply().await;
    assert_ne!(
        first["result"]["_meta"][META_DECISION_ID],
        third["result"]["_meta"][META_DECISION_ID]
    );
    let (_, decider) = h.close().await;
    let ids: Vec<String> = decider
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.request_id.clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert_eq!(ids[0].len(), 64);
}

#[tokio::test]
async fn tools_list_leaves_out_what_is_always_denied() {
    let mut h = start(McpConfig::default());
    h.send(r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"cursor":"c1"}}"#)
        .await;
    let r = h.reply().await;
    let names: Vec<&str> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["allowed", "risky"]);
    assert_eq!(r["result"]["tools"][0]["inputSchema"]["type"], "object");
    assert_eq!(r["result"]["nextCursor"], "c2");
    h.close().await;

    let mut h = start(McpConfig {
        hide_denied: false,
        ..McpConfig::default()
    });
    h.send(r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#)
        .await;
    assert_eq!(
        h.reply().await["result"]["tools"].as_array().unwrap().len(),
        3
    );
    h.close().await;
}

#[tokio::test]
async fn escalations_wait_and_then_forward_once_approved() {
    let mut h = start(McpConfig::default());
    h.send(&call(10, "risky", json!({"x": 1}))).await;
    let r = h.reply().await;
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("escalation esc_1"), "{text}");
    assert!(text.contains("lexecon escalations approve esc_1"), "{text}");
    assert!(h.upstream_saw().is_empty());
    h.close().await;

    let mut h = start(McpConfig {
        escalation_wait_secs: 5,
        ..McpConfig::default()
    });
    h.send(&call(11, "risky", json!({"x": 1}))).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(h.upstream_saw().is_empty());
    *h.decider.approve.lock().unwrap() = true;
    let r = h.reply().await;
    assert_eq!(r["result"]["content"][0]["text"], "ran \"risky\"");
    assert!(r["result"]["_meta"][META_CAPABILITY_TOKEN].is_string());
    assert_eq!(h.upstream_saw().len(), 1);
    h.close().await;
}

#[tokio::test]
async fn bad_input_is_answered_and_the_relay_keeps_running() {
    let mut h = start(McpConfig::default());
    h.send("{this is not json").await;
    let r = h.reply().await;
    assert_eq!(r["error"]["code"], -32700);
    assert_eq!(r["id"], Value::Null);
    h.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#)
        .await;
    let r = h.reply().await;
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(r["id"], 1);
    h.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"allowed","arguments":[]}}"#).await;
    assert_eq!(h.reply().await["error"]["code"], -32602);
    // A message over the limit: refused without being read, nothing forwarded.
    let huge = call(
        3,
        "allowed",
        json!({"blob": "x".repeat(MAX_CLIENT_MESSAGE_BYTES)}),
    );
    h.send(&huge).await;
    let r = h.reply().await;
    assert_eq!(r["error"]["code"], -32600);
    assert!(r["error"]["message"].as_str().unwrap().contains("bytes"));
    // A large message under the limit goes through whole.
    let big = call(4, "allowed", json!({"blob": "y".repeat(10 << 20)}));
    h.send(&big).await;
    assert_eq!(
        h.reply().await["result"]["content"][0]["text"],
        "ran \"allowed\""
    );
    h.send(r#"{"jsonrpc":"2.0","id":5,"method":"no/such_method"}"#)
        .await;
    assert_eq!(h.reply().await["result"]["echo"], "no/such_method");
    let saw = h.upstream_saw();
    assert_eq!(saw.len(), 2);
    assert_eq!(saw[0].len(), big.len());
    h.close().await;
}

#[tokio::test]
async fn upstream_errors_are_completions_with_is_error() {
    let mut h = start(McpConfig {
        record_payloads: true,
        ..McpConfig::default()
    });
    h.send(&call(1, "fails", json!({"q": "x"}))).await;
    let raw = h.reply_text().await;
    let r: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(r["error"]["message"], "boom");
    let (_, decider) = h.close().await;
    let c = decider.completions.lock().unwrap().clone();
    assert_eq!(c.len(), 1);
    assert!(c[0].is_error);
    assert_eq!(c[0].arguments_json.as_deref(), Some(r#"{"q":"x"}"#));
    assert_eq!(
        c[0].result_json.as_deref(),
        Some(r#"{"code":-1,"message":"boom"}"#)
    );
}

#[tokio::test]
async fn a_dead_upstream_answers_pending_requests_with_errors() {
    let mut h = start(McpConfig::default());
    h.send(r#"{"jsonrpc":"2.0","id":"h","method":"hang"}"#)
        .await;
    h.send(r#"{"jsonrpc":"2.0","id":"d","method":"die"}"#).await;
    let mut ids = vec![h.reply().await, h.reply().await];
    ids.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(ids[0]["id"], "d");
    assert_eq!(ids[1]["id"], "h");
    for r in &ids {
        assert_eq!(r["error"]["code"], -32000);
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("closed before answering")
        );
    }
    let end = tokio::time::timeout(Duration::from_secs(5), h.relay)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, End::UpstreamClosed);
}

#[tokio::test]
async fn batches_with_calls_are_split_and_each_call_decided() {
    let mut h = start(McpConfig {
        tools: vec![McpToolRule {
            pattern: "up/*".to_owned(),
            action: Some("use:up".to_owned()),
            data_classes: vec!["internal".to_owned()],
            context_args: vec!["path".to_owned()],
            risk_level: Some(2),
            mode: Some("strict".to_owned()),
        }],
        ..McpConfig::default()
    });
    let batch = format!(
        "[{},{},{}]",
        call(1, "allowed", json!({"path": "/a"})),
        call(2, "forbidden", json!({})),
        r#"{"jsonrpc":"2.0","method":"notifications/x"}"#
    );
    h.send(&batch).await;
    let mut replies = [h.reply().await, h.reply().await];
    replies.sort_by_key(|r| r["id"].as_u64());
    assert_eq!(
        replies[0]["result"]["content"][0]["text"],
        "ran \"allowed\""
    );
    assert_eq!(replies[1]["result"]["isError"], true);
    let saw = h.upstream_saw();
    assert!(saw.contains(&call(1, "allowed", json!({"path": "/a"}))));
    assert!(saw.contains(&r#"{"jsonrpc":"2.0","method":"notifications/x"}"#.to_owned()));
    assert!(!saw.iter().any(|l| l.contains("forbidden")));
    let (_, decider) = h.close().await;
    let r = decider.requests.lock().unwrap()[0].clone();
    assert_eq!(r.action, "use:up");
    assert_eq!(r.data_classes, vec!["internal"]);
    assert_eq!(r.context["path"], "/a");
    assert_eq!(r.risk_level, 2);
    assert_eq!(r.mode.as_deref(), Some("strict"));
}
