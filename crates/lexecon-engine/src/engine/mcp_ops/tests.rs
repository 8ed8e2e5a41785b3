//! The MCP suite (contract §11), on SQLite and on PostgreSQL: completions recorded once,
//! only for the caller's own approved decisions, shown by QueryDecisions; CheckTools
//! bound like Decide and answering from the active policy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use lexecon_auth::{ActorBinding, Principal, PrincipalKind, Role};
use lexecon_core::{Clock as _, Outcome, SystemClock};

use super::*;
use crate::engine::{ActionInput, DecideInput, DecisionQuery, ErrorClass};

const POLICY: &str = r#"
[policy]
name = "mcp-test"
version = "1"
mode = "strict"

[[terms]]
id = "support_agents"
kind = "actor"
match = "ai_agent:customer_*"
[[terms]]
id = "reads"
kind = "action"
match = "read:customer_*"
[[terms]]
id = "writes"
kind = "action"
match = "call:write_file"
[[terms]]
id = "deletes"
kind = "action"
match = "delete:*"

[[relations]]
id = "support-may-read"
kind = "permits"
from = "support_agents"
to = "reads"
[relations.when]
tools = ["database_query", "files/*"]

[[relations]]
id = "writes-with-a-ticket"
kind = "permits"
from = "support_agents"
to = "writes"
[relations.when]
context = { ticket = "T-*" }

[[relations]]
id = "never-delete"
kind = "forbids"
from = "support_agents"
to = "deletes"
"#;

const ACTOR: &str = "ai_agent:customer_service";

fn principal(name: &str, role: Role, patterns: &[&str]) -> Caller {
    let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
    Caller::Principal(Principal {
        kind: PrincipalKind::ApiKey,
        id: format!("key_{name}"),
        name: name.to_owned(),
        role,
        mfa_verified: false,
        actors: (!patterns.is_empty()).then(|| Arc::new(ActorBinding::new(&patterns).unwrap())),
        llm_roles: Arc::from(Vec::<String>::new()),
        created_by: None,
    })
}

fn bot() -> Caller {
    principal("support-bot", Role::Agent, &[ACTOR])
}

async fn decide(engine: &Engine, caller: &Caller, action: &str) -> lexecon_core::DecisionId {
    let d = engine
        .decide(
            caller,
            DecideInput {
                action: ActionInput {
                    actor: ACTOR.into(),
                    action: action.into(),
                    tool: "database_query".into(),
                    ..ActionInput::default()
                },
                request_id: String::new(),
            },
        )
        .await
        .unwrap();
    let expected = if action.starts_with("read:") {
        Outcome::Approved
    } else {
        Outcome::Denied
    };
    assert_eq!(d.outcome, expected, "{action}: {}", d.reasoning);
    d.decision_id
}

fn completion(decision_id: &str, seed: u8) -> CompletionInput {
    CompletionInput {
        decision_id: decision_id.to_owned(),
        is_error: seed % 2 == 1,
        duration_us: 1_000 + u64::from(seed),
        result_sha256: [seed; 32],
        arguments_json: None,
        result_json: None,
    }
}

async fn completion_payloads(engine: &Engine) -> Vec<serde_json::Value> {
    let size = engine.ledger.tree_size().await.unwrap();
    engine
        .ledger
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            e.decode_leaf()
                .is_ok_and(|l| l.kind == EntryKind::McpCompletion)
        })
        .filter_map(|e| e.payload_json())
        .collect()
}

async fn completions_are_recorded_once_for_the_callers_own_approved_decisions(engine: &Engine) {
    let me = bot();
    let approved = decide(engine, &me, "read:customer_data").await.to_string();
    let size = engine.ledger.tree_size().await.unwrap();
    let first = engine
        .record_completion(&me, completion(&approved, 3))
        .await
        .unwrap();
    assert!(first.newly_recorded);
    assert_eq!(first.ledger_index, size, "the next entry");
    let payloads = completion_payloads(engine).await;
    let payload = payloads
        .iter()
        .find(|p| p["decision_id"] == approved.as_str())
        .unwrap();
    assert_eq!(payload["is_error"], true);
    assert_eq!(payload["duration_us"], 1003);
    assert_eq!(payload["result_sha256"], "03".repeat(32));
    assert_eq!(payload["by"], "key:support-bot");
    assert!(payload.get("arguments").is_none() && payload.get("result").is_none());

    // Once per decision: the second call writes nothing and names the first entry.
    let again = engine
        .record_completion(&me, completion(&approved, 4))
        .await
        .unwrap();
    assert_eq!(
        again,
        CompletionRecord {
            ledger_index: first.ledger_index,
            newly_recorded: false
        }
    );
    assert_eq!(engine.ledger.tree_size().await.unwrap(), size + 1);

    // Another principal's decision answers exactly like one that does not exist.
    let other = principal("other-bot", Role::Agent, &[ACTOR]);
    let theirs = engine
        .record_completion(&other, completion(&approved, 5))
        .await
        .unwrap_err();
    assert!(matches!(theirs, EngineError::NotFound(_)), "{theirs}");
    let unknown = lexecon_core::DecisionId::new(SystemClock.now(), 7).to_string();
    let missing = engine
        .record_completion(&other, completion(&unknown, 5))
        .await
        .unwrap_err();
    assert!(matches!(missing, EngineError::NotFound(_)), "{missing}");
    assert_eq!(
        theirs.to_string().replace(&approved, "ID"),
        missing.to_string().replace(&unknown, "ID"),
        "nothing tells the two apart"
    );
    // An admin is no exception: the completion belongs to the decision's principal.
    let admin = principal("root", Role::Admin, &[]);
    assert!(matches!(
        engine
            .record_completion(&admin, completion(&approved, 5))
            .await,
        Err(EngineError::NotFound(_))
    ));
    // A viewer may not record at all.
    let viewer = principal("watcher", Role::Viewer, &[]);
    let err = engine
        .record_completion(&viewer, completion(&approved, 5))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");

    // A denied decision let nothing through.
    let denied = decide(engine, &me, "delete:records").await.to_string();
    let err = engine
        .record_completion(&me, completion(&denied, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::FailedPrecondition(_)), "{err}");
    assert!(err.to_string().starts_with("decision_id:"), "{err}");

    // Bad fields are named.
    let err = engine
        .record_completion(&me, completion("dec_nope", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidArgument(m) if m.starts_with("decision_id")),
        "{err}"
    );
    let recorded = decide(engine, &me, "read:customer_notes").await.to_string();
    let mut bad_json = completion(&recorded, 2);
    bad_json.arguments_json = Some("{not json".into());
    let err = engine.record_completion(&me, bad_json).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidArgument(m) if m.starts_with("arguments_json")),
        "{err}"
    );
    let mut long = completion(&recorded, 2);
    long.duration_us = u64::MAX;
    let err = engine.record_completion(&me, long).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidArgument(m) if m.starts_with("duration_us")),
        "{err}"
    );

    // Payloads, when the gateway records them, are in the entry.
    let mut with_payloads = completion(&recorded, 2);
    with_payloads.arguments_json = Some(r#"{"path":"/tmp/a"}"#.into());
    with_payloads.result_json = Some(r#"{"content":[{"type":"text","text":"hi"}]}"#.into());
    let rec = engine.record_completion(&me, with_payloads).await.unwrap();
    assert!(rec.newly_recorded);
    let payloads = completion_payloads(engine).await;
    let payload = payloads
        .iter()
        .find(|p| p["decision_id"] == recorded.as_str())
        .unwrap();
    assert_eq!(payload["arguments"]["path"], "/tmp/a");
    assert_eq!(payload["result"]["content"][0]["text"], "hi");

    // QueryDecisions shows which decisions completed, and where.
    let page = engine
        .query_decisions(
            &Caller::Local("auditor".into()),
            DecisionQuery {
                actor: ACTOR.into(),
                page_size: 1000,
                ..DecisionQuery::default()
            },
        )
        .await
        .unwrap();
    let row = |id: &str| {
        page.items
            .iter()
            .find(|r| r.decision_id == id)
            .unwrap()
            .clone()
    };
    assert!(row(&approved).completed);
    assert_eq!(
        row(&approved).completion_ledger_index,
        Some(first.ledger_index)
    );
    assert_eq!(
        row(&recorded).completion_ledger_index,
        Some(rec.ledger_index)
    );
    assert!(!row(&denied).completed);
    assert_eq!(row(&denied).completion_ledger_index, None);
}

async fn concurrent_completions_of_one_decision_write_one_entry(engine: &Arc<Engine>) {
    let me = bot();
    let id = decide(engine, &me, "read:customer_orders")
        .await
        .to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for seed in 0..8u8 {
        let (me, id) = (me.clone(), id.clone());
        let engine = Arc::clone(engine);
        tasks.spawn(async move {
            engine
                .record_completion(&me, completion(&id, seed))
                .await
                .unwrap()
        });
    }
    let mut records = Vec::new();
    while let Some(r) = tasks.join_next().await {
        records.push(r.unwrap());
    }
    assert_eq!(records.iter().filter(|r| r.newly_recorded).count(), 1);
    assert!(
        records
            .iter()
            .all(|r| r.ledger_index == records[0].ledger_index)
    );
    let entries = completion_payloads(engine)
        .await
        .into_iter()
        .filter(|p| p["decision_id"] == id.as_str())
        .count();
    assert_eq!(entries, 1);
}

fn probe(tool: &str, action: &str) -> ToolProbe {
    ToolProbe {
        tool: tool.into(),
        proposed_action: action.into(),
        context: BTreeMap::from([("mcp.server".to_owned(), "files".to_owned())]),
        ..ToolProbe::default()
    }
}

async fn check_tools_answers_from_the_policy_for_bound_actors(engine: &Engine) {
    let me = bot();
    let probes = [
        probe("files/delete", "delete:file"),
        probe("files/read_file", "read:customer_file"),
        probe("files/write_file", "call:write_file"),
        probe("files/move", "call:move_file"),
        probe("crm/read", "read:customer_file"),
    ];
    // Forbidden; permitted; permitted with a ticket in the call's context; no permit
    // for any context; the read permit needs another tool.
    let expected = vec![true, false, false, true, true];
    assert_eq!(
        engine.check_tools(&me, ACTOR, &probes).await.unwrap(),
        expected
    );
    // An empty actor from a key bound to one literal actor means that actor.
    assert_eq!(
        engine.check_tools(&me, "", &probes).await.unwrap(),
        expected
    );
    // The binding is Decide's.
    let err = engine
        .check_tools(&me, "ai_agent:other", &probes)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::PermissionDenied(_)), "{err}");
    let broad = principal("broad", Role::Agent, &["ai_agent:*"]);
    assert!(matches!(
        engine.check_tools(&broad, "", &probes).await,
        Err(EngineError::InvalidArgument(m)) if m.starts_with("actor")
    ));
    let viewer = principal("watcher", Role::Viewer, &[]);
    let err = engine
        .check_tools(&viewer, ACTOR, &probes)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
    // Limits and fields.
    let many = vec![probe("files/read_file", "read:customer_file"); MAX_TOOL_PROBES + 1];
    assert!(matches!(
        engine.check_tools(&me, ACTOR, &many).await,
        Err(EngineError::InvalidArgument(m)) if m.starts_with("tools:")
    ));
    let at_limit = vec![probe("files/read_file", "read:customer_file"); MAX_TOOL_PROBES];
    assert_eq!(
        engine.check_tools(&me, ACTOR, &at_limit).await.unwrap(),
        vec![false; MAX_TOOL_PROBES]
    );
    let mut bad = probes.to_vec();
    bad[1].risk_level = 9;
    assert!(matches!(
        engine.check_tools(&me, ACTOR, &bad).await,
        Err(EngineError::InvalidArgument(m)) if m.starts_with("tools[1].risk_level")
    ));
    bad[1].risk_level = 0;
    bad[1].tool = String::new();
    assert!(matches!(
        engine.check_tools(&me, ACTOR, &bad).await,
        Err(EngineError::InvalidArgument(m)) if m.starts_with("tools[1].tool")
    ));
    // A probe's mode can only make things stricter: paranoid escalates, never hides.
    let mut paranoid = probe("files/read_file", "read:customer_file");
    paranoid.policy_mode = Some(lexecon_core::PolicyMode::Paranoid);
    paranoid.risk_level = 5;
    assert_eq!(
        engine.check_tools(&me, ACTOR, &[paranoid]).await.unwrap(),
        vec![false]
    );
}

/// A call let through by an approved escalation whose token the asking principal fetched
/// (contract §6 "After approval" (a), what the gateway does while it waits) has a
/// completion under the escalated decision; before the fetch it has none.
async fn a_fetched_grant_lets_the_escalated_decision_complete(engine: &Engine) {
    let bot = bot();
    let d = engine
        .decide(
            &bot,
            DecideInput {
                action: ActionInput {
                    actor: ACTOR.into(),
                    action: "read:customer_notes".into(),
                    tool: "database_query".into(),
                    risk_level: 4,
                    mode: Some(lexecon_core::PolicyMode::Paranoid),
                    ..ActionInput::default()
                },
                request_id: "esc-complete-1".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(d.outcome, Outcome::Escalated, "{}", d.reasoning);
    let esc = d.escalation_id.expect("an escalation id");
    let early = engine
        .record_completion(&bot, completion(&d.decision_id.to_string(), 7))
        .await
        .unwrap_err();
    assert_eq!(early.class(), ErrorClass::FailedPrecondition, "{early}");
    let officer = principal("officer", Role::ComplianceOfficer, &[]);
    engine
        .resolve_escalation(
            &officer,
            &esc.to_string(),
            true,
            "checked with the customer",
        )
        .await
        .unwrap();
    let view = engine.get_escalation(&bot, &esc.to_string()).await.unwrap();
    assert!(view.capability_token.is_some(), "the fetch mints the token");
    let done = engine
        .record_completion(&bot, completion(&d.decision_id.to_string(), 7))
        .await
        .unwrap();
    assert!(done.newly_recorded);
}

async fn mcp_suite(engine: &Arc<Engine>) {
    engine
        .load_policy(&Caller::Local("admin".into()), POLICY)
        .await
        .unwrap();
    completions_are_recorded_once_for_the_callers_own_approved_decisions(engine).await;
    concurrent_completions_of_one_decision_write_one_entry(engine).await;
    check_tools_answers_from_the_policy_for_bound_actors(engine).await;
    a_fetched_grant_lets_the_escalated_decision_complete(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let engine = super::super::tests::open(dir.path(), Arc::new(SystemClock), None).await;
    mcp_suite(&engine).await;
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_suite_on_postgres() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = super::super::tests::open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await;
    mcp_suite(&engine).await;
    engine.shutdown().await.unwrap();
}
