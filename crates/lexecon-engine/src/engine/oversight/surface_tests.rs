//! Tests of the oversight surfaces: accountability computed from ledger entries, and the
//! event stream (resumable without gap or duplicate; a slow watcher is told to reconnect
//! while the ledger writer never waits for it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lexecon_auth::{NewApiKey, Role};
use lexecon_core::{Clock as _, Outcome, PolicyMode, SystemClock};
use lexecon_ledger::EntryKind;
use serde_json::{Value, json};

use super::accountability::{Accountability, DecisionMaker, ResponsibilityLevel};
use super::events::{BUFFER, Event, EventStream, event_name, events_hook};
use super::{OverrideEffect, OverrideInput, OverrideKind};
use crate::decision::Decision;
use crate::engine::tests::open;
use crate::engine::{ActionInput, Caller, DecideInput, Engine, EngineError};

fn root() -> Caller {
    Caller::Local("root".into())
}

/// A key of `role` created by `local:root`, authenticated.
async fn key(engine: &Engine, name: &str, role: Role, actors: &[&str]) -> Caller {
    let created = engine
        .create_api_key(
            &root(),
            NewApiKey {
                actors: actors.iter().map(|a| (*a).to_owned()).collect(),
                ..NewApiKey::new(name, role)
            },
        )
        .await
        .unwrap();
    engine.authenticate(created.api_key.expose()).await.unwrap()
}

const BOT: &str = "ai_agent:customer_service";

/// The starter policy's permitted read for `ticket` (a context attribute, so that each
/// ticket is another request with a grant of its own). With the caller's risk level 4
/// it is asked in paranoid mode and escalates with priority high (one approver); with
/// risk level 5 it scores 80 and auto-escalates as critical (two approvers).
fn read(risk: u32, ticket: u32) -> DecideInput {
    DecideInput {
        action: ActionInput {
            actor: BOT.into(),
            action: "read:customer_data".into(),
            tool: "database_query".into(),
            data_classes: vec!["pii".into()],
            risk_level: risk,
            mode: (risk == 4).then_some(PolicyMode::Paranoid),
            context: [("ticket".to_owned(), ticket.to_string())].into(),
            ..ActionInput::default()
        },
        request_id: String::new(),
    }
}

async fn escalate(engine: &Engine, agent: &Caller, risk: u32, ticket: u32) -> Decision {
    let d = engine.decide(agent, read(risk, ticket)).await.unwrap();
    assert_eq!(d.outcome, Outcome::Escalated, "{d:?}");
    assert!(d.escalation_id.is_some(), "{d:?}");
    d
}

/// The payload of entry `idx` and its kind.
async fn entry(engine: &Engine, idx: u64) -> (EntryKind, Value) {
    let e = engine.ledger.entry(idx).await.unwrap().unwrap();
    (e.decode_leaf().unwrap().kind, e.payload_json().unwrap())
}

/// Checks an answer against the ledger, entry by entry, as an auditor would with
/// `GetEntry`: every index is an entry about this decision, its escalation, its override
/// or its policy, and every named field is the one those entries record.
async fn check_against_ledger(engine: &Engine, a: &Accountability) {
    let id = a.decision_id.to_string();
    let esc = a.escalation_id.map(|e| e.to_string());
    let ovr = a.override_id.map(|o| o.to_string());
    assert!(a.ledger_indexes.windows(2).all(|w| w[0] < w[1]), "{a:?}");
    assert!(a.ledger_indexes.contains(&a.decision_index));
    for &idx in &a.ledger_indexes {
        let (kind, p) = entry(engine, idx).await;
        let about = |k: &str, v: &Option<String>| v.is_some() && p[k].as_str() == v.as_deref();
        match kind {
            EntryKind::Decision => {
                assert_eq!(idx, a.decision_index);
                assert_eq!(p["decision_id"], json!(id));
                assert_eq!(p["principal"], json!(a.asking_principal));
                assert_eq!(p["policy"]["hash"], json!(a.policy.hash));
            }
            EntryKind::PolicyLoaded => {
                assert_eq!(Some(idx), a.policy.ledger_index);
                assert_eq!(p["hash"], json!(a.policy.hash));
                assert_eq!(p["loaded_by"], json!(a.policy.loaded_by));
            }
            EntryKind::Oversight => assert!(
                about("escalation_id", &esc) || about("override_id", &ovr),
                "entry {idx} ({p}) is not about {a:?}"
            ),
            other => panic!("entry {idx} is a {other} entry, not part of a decision"),
        }
    }
    for r in &a.resolvers {
        assert!(a.ledger_indexes.contains(&r.ledger_index));
        let (kind, p) = entry(engine, r.ledger_index).await;
        assert_eq!(kind, EntryKind::Oversight);
        assert_eq!(p["event"], "escalation_resolved");
        assert_eq!(p["by"], json!(r.principal));
        assert_eq!(p["approve"], json!(r.approve));
        assert_eq!(p["principal_kind"], json!(r.principal_kind));
        assert_eq!(p["key_creator"], json!(r.key_creator));
        assert_eq!(p["mfa_verified"], json!(r.mfa_verified));
    }
    if let Some(author) = &a.override_author {
        let created: Vec<(EntryKind, Value)> = entries_of(engine, &a.ledger_indexes).await;
        assert!(
            created
                .iter()
                .any(|(_, p)| p["event"] == "override_created" && p["by"] == json!(author)),
            "{a:?}"
        );
    }
}

async fn entries_of(engine: &Engine, idx: &[u64]) -> Vec<(EntryKind, Value)> {
    let mut out = Vec::new();
    for &i in idx {
        out.push(entry(engine, i).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accountability_levels_automated_supervised_shared_full() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let agent = key(&engine, "bot", Role::Agent, &[BOT]).await;
    let officer_a = key(&engine, "officer-a", Role::ComplianceOfficer, &[]).await;
    let officer_b = key(&engine, "officer-b", Role::ComplianceOfficer, &[]).await;
    let auditor = key(&engine, "auditor", Role::Auditor, &[]).await;

    // Automated: the policy alone.
    let d = engine.decide(&agent, read(0, 1)).await.unwrap();
    assert_eq!(d.outcome, Outcome::Approved, "{d:?}");
    let a = engine
        .accountability(&auditor, &d.decision_id.to_string())
        .await
        .unwrap();
    assert_eq!(
        (a.decision_maker, a.responsibility_level),
        (DecisionMaker::AiSystem, ResponsibilityLevel::Automated)
    );
    assert_eq!(a.asking_principal, "key:bot");
    assert_eq!(a.decision_index, d.ledger_index);
    assert_eq!(a.policy.name, "starter");
    assert!(!a.policy.loaded_by.is_empty(), "{a:?}");
    assert!(a.policy.ledger_index.is_some(), "{a:?}");
    assert!(a.resolvers.is_empty() && a.escalation_id.is_none() && a.override_id.is_none());
    check_against_ledger(&engine, &a).await;

    // Supervised: one officer approves a high escalation (one approver needed).
    let d = escalate(&engine, &agent, 4, 11).await;
    let esc = d.escalation_id.unwrap().to_string();
    let (view, _) = engine
        .resolve_escalation(&officer_a, &esc, true, "ticket 4711 checked")
        .await
        .unwrap();
    assert_eq!(view.approvals_required, 1, "{view:?}");
    let a = engine
        .accountability(&auditor, &d.decision_id.to_string())
        .await
        .unwrap();
    assert_eq!(
        (a.decision_maker, a.responsibility_level),
        (DecisionMaker::Hybrid, ResponsibilityLevel::Supervised)
    );
    assert_eq!(a.escalation_id.map(|e| e.to_string()), Some(esc.clone()));
    assert_eq!(a.resolvers.len(), 1);
    let r = &a.resolvers[0];
    assert_eq!(
        (
            r.principal.as_str(),
            r.principal_kind.as_str(),
            r.key_creator.as_deref(),
            r.mfa_verified,
            r.approve
        ),
        ("key:officer-a", "api_key", Some("local:root"), false, true)
    );
    // The decision, the escalation's creation and the approval, and the policy.
    assert_eq!(a.ledger_indexes.len(), 4, "{a:?}");
    check_against_ledger(&engine, &a).await;

    // A denial by one person is supervised too.
    let d = escalate(&engine, &agent, 4, 12).await;
    let esc = d.escalation_id.unwrap().to_string();
    engine
        .resolve_escalation(&officer_b, &esc, false, "no ticket for this read")
        .await
        .unwrap();
    let a = engine
        .accountability(&auditor, &d.decision_id.to_string())
        .await
        .unwrap();
    assert_eq!(
        (a.decision_maker, a.responsibility_level),
        (DecisionMaker::Hybrid, ResponsibilityLevel::Supervised)
    );
    assert!(!a.resolvers[0].approve);
    check_against_ledger(&engine, &a).await;

    // Shared: a critical escalation, approved by two people.
    let d = escalate(&engine, &agent, 5, 13).await;
    let esc = d.escalation_id.unwrap().to_string();
    let (view, _) = engine
        .resolve_escalation(&officer_a, &esc, true, "looked at the ticket")
        .await
        .unwrap();
    assert_eq!(
        view.approvals_required, 2,
        "risk level 5 must be critical: {view:?}"
    );
    let pending = engine
        .accountability(&auditor, &d.decision_id.to_string())
        .await
        .unwrap();
    assert_eq!(
        (pending.decision_maker, pending.responsibility_level),
        (DecisionMaker::AiSystem, ResponsibilityLevel::Automated),
        "one approval of two decides nothing yet"
    );
    assert_eq!(pending.resolvers.len(), 1);
    engine
        .resolve_escalation(&officer_b, &esc, true, "second pair of eyes")
        .await
        .unwrap();
    let a = engine
        .accountability(&auditor, &d.decision_id.to_string())
        .await
        .unwrap();
    assert_eq!(
        (a.decision_maker, a.responsibility_level),
        (DecisionMaker::Hybrid, ResponsibilityLevel::Shared)
    );
    let who: Vec<&str> = a.resolvers.iter().map(|r| r.principal.as_str()).collect();
    assert_eq!(who, ["key:officer-a", "key:officer-b"]);
    check_against_ledger(&engine, &a).await;

    // Full: a person's override decided.
    let o = engine
        .create_override(
            &root(),
            OverrideInput {
                kind: OverrideKind::TimeLimitedException,
                effect: OverrideEffect::Deny,
                actor: BOT.into(),
                action: "read:customer_data".into(),
                tool: String::new(),
                justification: "customer asked us to stop processing their data".into(),
                expires_at: SystemClock.now().add_secs(3600),
            },
        )
        .await
        .unwrap();
    let d = engine.decide(&agent, read(0, 1)).await.unwrap();
    assert_eq!(d.outcome, Outcome::Denied, "{d:?}");
    let a = engine
        .accountability(&auditor, &d.decision_id.to_string())
        .await
        .unwrap();
    assert_eq!(
        (a.decision_maker, a.responsibility_level),
        (DecisionMaker::Human, ResponsibilityLevel::Full)
    );
    assert_eq!(a.override_id, Some(o.override_id));
    assert_eq!(a.override_author.as_deref(), Some("local:root"));
    assert!(a.ledger_indexes.contains(&o.ledger_index));
    check_against_ledger(&engine, &a).await;

    // Refusals name the field or the decision.
    let e = engine
        .accountability(&agent, &d.decision_id.to_string())
        .await;
    assert!(
        matches!(
            e,
            Err(EngineError::Auth(_) | EngineError::PermissionDenied(_))
        ),
        "{e:?}"
    );
    let e = engine
        .accountability(&auditor, "dec_nope")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("decision_id"), "{e}");
    let unknown = lexecon_core::DecisionId::new(SystemClock.now(), 7).to_string();
    let e = engine.accountability(&auditor, &unknown).await.unwrap_err();
    assert!(matches!(e, EngineError::NotFound(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accountability_indexes_match_ledger_entries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let agent = key(&engine, "bot", Role::Agent, &[BOT]).await;
    let officer = key(&engine, "officer", Role::ComplianceOfficer, &[]).await;
    // An approved escalation whose grant the agent then uses with a new request
    // (path b): both decisions lead to the same escalation and its records.
    let d = escalate(&engine, &agent, 4, 14).await;
    let esc = d.escalation_id.unwrap();
    engine
        .resolve_escalation(&officer, &esc.to_string(), true, "approved for ticket 9")
        .await
        .unwrap();
    let used = engine.decide(&agent, read(4, 14)).await.unwrap();
    assert_eq!(used.outcome, Outcome::Approved, "{used:?}");
    assert!(
        used.reasons.contains(&format!("escalation:{esc}")),
        "{used:?}"
    );
    for decision in [&d, &used] {
        let a = engine
            .accountability(&root(), &decision.decision_id.to_string())
            .await
            .unwrap();
        assert_eq!(a.escalation_id, Some(esc));
        assert_eq!(a.responsibility_level, ResponsibilityLevel::Supervised);
        check_against_ledger(&engine, &a).await;
        // Every oversight entry of this escalation is listed, and nothing else is.
        let size = engine.ledger.tree_size().await.unwrap();
        let mut expected = BTreeSet::from([decision.ledger_index]);
        expected.extend(a.policy.ledger_index);
        for e in engine.ledger.entries(0, size).await.unwrap() {
            let kind = e.decode_leaf().unwrap().kind;
            let p = e.payload_json().unwrap();
            if kind == EntryKind::Oversight && p["escalation_id"] == json!(esc.to_string()) {
                expected.insert(e.index);
            }
        }
        assert_eq!(a.ledger_indexes, expected.into_iter().collect::<Vec<_>>());
    }
}

/// Every event the ledger holds from `from` on, as the hook names them.
async fn ledger_events(engine: &Engine, from: u64) -> Vec<(u64, String)> {
    let size = engine.ledger.tree_size().await.unwrap();
    let mut out = Vec::new();
    let mut at = from;
    while at < size {
        let page = engine.ledger.entries(at, 1000).await.unwrap();
        for e in &page {
            let kind = e.decode_leaf().unwrap().kind;
            if let Some(name) = event_name(kind, e.payload.as_deref().unwrap()) {
                out.push((e.index, name));
            }
        }
        at = page.last().map_or(size, |e| e.index + 1);
    }
    out
}

async fn next_event(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
        .expect("an event, not an error")
}

/// Installs the events hook on `engine`'s ledger, as opening the engine does (installing
/// it again changes nothing): these tests then hold whether or not the engine under test
/// wires it, and `watch_events_resume_without_gap_or_duplicate` checks that it does.
fn hooked(engine: &Arc<Engine>) -> Arc<Engine> {
    engine
        .ledger
        .set_side_hook(events_hook(Arc::clone(engine.clock())));
    Arc::clone(engine)
}

/// An event-producing entry that costs no more than an append (a revocation record).
async fn append_event(engine: &Engine, n: usize) -> u64 {
    engine
        .ledger
        .append(
            EntryKind::TokenRevoked,
            json!({"token_id": format!("tok_test_{n}"), "reason": "test", "by": "local:test"}),
        )
        .await
        .unwrap()
        .index
}

/// Watches from index 0 while `writer` appends events (with decisions between them,
/// which are not events), dropping the stream every few events and resuming from the
/// last index seen + 1; the events seen must be exactly the ledger's, in order.
async fn resume_without_gap_or_duplicate(writer: Arc<Engine>, watcher: Arc<Engine>) {
    let writer = hooked(&writer);
    let start = writer.ledger.tree_size().await.unwrap();
    let agent = key(&writer, "bot", Role::Agent, &[BOT]).await;
    const EVENTS: usize = 60;
    let writing = {
        let writer = Arc::clone(&writer);
        tokio::spawn(async move {
            for n in 0..EVENTS {
                append_event(&writer, n).await;
                if n % 3 == 0 {
                    writer.decide(&agent, read(0, 1)).await.unwrap();
                }
                if n % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut from = Some(start);
    let mut reconnects = 0;
    let mut done = false;
    while !done {
        let mut stream = watcher
            .watch_events(&root(), from, Vec::new())
            .await
            .unwrap();
        for _ in 0..7 {
            let e = next_event(&mut stream).await;
            serde_json::from_str::<Value>(&e.payload_json).unwrap();
            from = Some(e.ledger_index + 1);
            let last = e.kind == "token_revoked"
                && e.payload_json
                    .contains(&format!("tok_test_{}\"", EVENTS - 1));
            seen.push((e.ledger_index, e.kind));
            if last {
                done = true;
                break;
            }
        }
        drop(stream);
        reconnects += 1;
    }
    writing.await.unwrap();
    assert!(reconnects > 5, "the stream was resumed {reconnects} times");
    let expected: Vec<(u64, String)> = ledger_events(&writer, start)
        .await
        .into_iter()
        .filter(|(i, _)| *i <= seen.last().unwrap().0)
        .collect();
    assert_eq!(seen, expected, "every event exactly once, in ledger order");
    assert!(
        seen.iter().filter(|(_, k)| k == "token_revoked").count() == EVENTS,
        "{seen:?}"
    );
    // Decisions are not events; the kinds filter keeps only what is asked for.
    assert!(seen.iter().all(|(_, k)| k != "decision"));
    let mut only = watcher
        .watch_events(&root(), Some(start), vec!["api_key_created".into()])
        .await
        .unwrap();
    let e = next_event(&mut only).await;
    assert_eq!(e.kind, "api_key_created");
    assert!(
        e.payload_json.contains("\"name\":\"bot\""),
        "{}",
        e.payload_json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_resume_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    resume_without_gap_or_duplicate(Arc::clone(&engine), Arc::clone(&engine)).await;

    // Two engines on one PostgreSQL: the watcher's engine sees the writer's events by
    // polling, since its own ledger does not commit them.
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await;
    let watcher = open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await;
    resume_without_gap_or_duplicate(writer, watcher).await;
}

/// Opening the engine installs the hook before anything is appended: the events of
/// opening a data directory are watched from index 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_engine_wires_the_events_hook() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let opening = ledger_events(&engine, 0).await;
    assert!(
        opening.iter().any(|(_, k)| k == "policy_loaded")
            && opening.iter().any(|(_, k)| k == "api_key_created"),
        "{opening:?}"
    );
    let mut from_zero = engine
        .watch_events(&root(), Some(0), Vec::new())
        .await
        .unwrap();
    for want in &opening {
        let e = next_event(&mut from_zero).await;
        assert_eq!(&(e.ledger_index, e.kind), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_told_to_reconnect_and_writer_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = hooked(&open(dir.path(), Arc::new(SystemClock), None).await);
    let start = engine.ledger.tree_size().await.unwrap();
    let stall = Duration::from_secs(2);
    // A watcher whose client reads nothing.
    let mut slow = engine
        .watch_events_with(&root(), None, Vec::new(), stall)
        .await
        .unwrap();
    // More events than its buffer holds, appended concurrently.
    let total = BUFFER + 300;
    let began = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let engine = Arc::clone(&engine);
        tasks.spawn(async move {
            let t = std::time::Instant::now();
            append_event(&engine, n).await;
            t.elapsed()
        });
    }
    // Nobody reads the stream while these run: had the writer waited for the watcher,
    // they would never finish.
    let mut slowest = Duration::ZERO;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(t) = tasks.join_next().await {
            slowest = slowest.max(t.unwrap());
        }
    })
    .await
    .expect("the appends finish while the watcher's client reads nothing");
    eprintln!(
        "{total} appends in {:?}, the slowest {slowest:?}, with a stalled watcher",
        began.elapsed()
    );
    tokio::time::sleep(stall * 2).await;
    let mut got = Vec::new();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .unwrap()
        {
            Some(Ok(e)) => got.push(e.ledger_index),
            Some(Err(e)) => break e,
            None => panic!("the stream ended without saying why"),
        }
    };
    assert!(slow.next().await.is_none(), "nothing after the error");
    assert_eq!(got.len(), BUFFER, "the buffer, then the error");
    let expected: Vec<u64> = (start..start + total as u64).collect();
    assert_eq!(got, expected[..BUFFER]);
    let n = expected[BUFFER];
    assert!(matches!(err, EngineError::Aborted(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("fell behind at index {n}"))
            && message.contains(&format!("reconnect with from_index={n}")),
        "{message}"
    );
    // Reconnecting where it says delivers the rest, exactly.
    let mut rest = engine
        .watch_events(&root(), Some(n), Vec::new())
        .await
        .unwrap();
    for want in &expected[BUFFER..] {
        assert_eq!(next_event(&mut rest).await.ledger_index, *want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_watchers_ends_open_streams_saying_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let from = engine.ledger.tree_size().await.unwrap();
    let mut stream = engine
        .watch_events(&root(), None, Vec::new())
        .await
        .unwrap();
    let n = append_event(&engine, 0).await;
    assert_eq!(next_event(&mut stream).await.ledger_index, n);
    assert_eq!(n, from);
    engine.stop_watchers();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends at once");
    let err = end.expect("an error").unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains(&format!("from_index={}", n + 1)),
        "{err}"
    );
    assert!(stream.next().await.is_none());
}
