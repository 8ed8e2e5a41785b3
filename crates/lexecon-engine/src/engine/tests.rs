//! Idempotency of `Decide` across crashes and servers: a claim is written before the
//! ledger append and completed after, and a call that finds an unfinished claim answers
//! with the ledger's decision or, once the claim's lease is over, decides afresh.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::sync::Arc;

use lexecon_core::{Clock, ManualClock, SystemClock};

use super::decide::{CLAIM_LEASE_SECS, Checked, Prepared};
use super::*;
use crate::config::Sources;
use crate::init::{InitOptions, init};

fn action() -> ActionInput {
    super::door_tests::action("ai_agent:customer_service")
}

/// A Decide of the usual request with `request_id`.
fn request(request_id: &str) -> DecideInput {
    DecideInput {
        action: action(),
        request_id: request_id.to_owned(),
    }
}

/// The caller these tests decide as: a local process named alice.
fn alice() -> Caller {
    Caller::Local("alice".into())
}

/// Alice's idempotency key for `request_id`.
fn key(request_id: &str) -> (String, String) {
    (alice().idempotency_key(), request_id.to_owned())
}

/// An engine on a data directory under `dir` (initialised on first use), on the default
/// SQLite database or on `database_url`.
pub(super) async fn open(
    dir: &Path,
    clock: Arc<dyn Clock>,
    database_url: Option<&str>,
) -> Arc<Engine> {
    let data = dir.join("data");
    // Config tests set LEXECON_* variables in the process; init and load read them.
    let env = crate::TEST_ENV_LOCK.lock().await;
    if !data.join("lexecon.toml").exists() {
        let options = InitOptions {
            data_dir: data.clone(),
            node_id: "test".into(),
            rsa: false,
            force: false,
        };
        init(&options, Arc::clone(&clock)).await.unwrap();
    }
    let mut config = Config::load(&Sources {
        data_dir: Some(data),
        config_file: None,
    })
    .unwrap();
    drop(env);
    if let Some(url) = database_url {
        config.database.url = Some(url.to_owned());
    }
    Engine::open(config, clock).await.unwrap()
}

/// The pool of an engine opened on the default database.
fn sqlite_pool(engine: &Engine) -> &sqlx::SqlitePool {
    // The engine's own database handle: these tests play someone with write access.
    let Database::Sqlite(pool) = &engine.db else {
        unreachable!("the default database is SQLite")
    };
    pool
}

/// Decision entries in the ledger.
async fn decisions(engine: &Engine) -> Vec<serde_json::Value> {
    let size = engine.ledger.tree_size().await.unwrap();
    engine
        .ledger
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.payload_json())
        .filter(|j| j.get("decision_id").is_some())
        .collect()
}

/// Runs the idempotent path up to and including its claim, as a call that then crashed.
async fn claim_only(engine: &Engine, request_id: &str) -> (Prepared, i64) {
    let checked = Checked {
        req: action().validate().unwrap(),
        request_id: Some(request_id.to_owned()),
        principal: alice().ledger_name(),
        idem: alice().idempotency_key(),
        key: None,
    };
    let prepared = engine.prepare(&checked).await.unwrap();
    let from = engine.ledger.tree_size().await.unwrap();
    let at = engine.clock.now().unix_micros();
    let (p, r) = key(request_id);
    assert!(
        engine
            .claim((&p, &r), &prepared.decision, from, at)
            .await
            .unwrap()
    );
    (prepared, at)
}

/// The idempotency row of alice's `request_id`, through the engine store.
async fn row(engine: &Engine, request_id: &str) -> Option<store::IdemRow> {
    let (p, r) = key(request_id);
    engine.store.idem_get((&p, &r)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_recorded_just_before_a_crash_is_the_answer_to_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    // The call claimed its key and appended its entry, then died before completing the
    // claim: the client never got an answer and retries.
    let (prepared, _) = claim_only(&engine, "r-1").await;
    let recorded = engine.record(prepared).await.unwrap();
    let before = decisions(&engine).await.len();

    let retried = engine.decide(&alice(), request("r-1")).await.unwrap();
    assert_eq!(
        retried, recorded,
        "the retry must get the recorded decision"
    );
    assert_eq!(decisions(&engine).await.len(), before, "a second entry");
    // The claim is complete now: answered from the row, still the same.
    let stored = row(&engine, "r-1").await.unwrap();
    assert!(stored.ledger_from.is_none(), "the claim is completed");
    let kept: Decision = serde_json::from_str(&stored.decision).unwrap();
    assert_eq!(
        Decision {
            capability_token: recorded.capability_token.clone(),
            fingerprint: recorded.fingerprint.clone(),
            ..kept
        },
        recorded
    );
    let again = engine.decide(&alice(), request("r-1")).await.unwrap();
    assert_eq!(again, recorded);
    assert_eq!(decisions(&engine).await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_without_an_entry_holds_retries_off_until_its_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let engine = open(dir.path(), Arc::new(clock.clone()), None).await;
    // The call claimed its key and died before appending: nothing was recorded.
    let (abandoned, _) = claim_only(&engine, "r-2").await;
    let before = decisions(&engine).await.len();

    // Within the lease it may still be appending somewhere: the retry is told to wait.
    let err = engine.decide(&alice(), request("r-2")).await.unwrap_err();
    assert!(matches!(err, EngineError::InProgress(_)), "{err:?}");
    assert!(err.to_string().contains("retry"), "{err}");
    assert_eq!(decisions(&engine).await.len(), before);

    clock.advance_secs(CLAIM_LEASE_SECS);
    let fresh = engine.decide(&alice(), request("r-2")).await.unwrap();
    assert_ne!(fresh.decision_id, abandoned.decision.decision_id);
    let after = decisions(&engine).await;
    assert_eq!(after.len(), before + 1);
    assert_eq!(
        after.last().unwrap()["decision_id"].as_str(),
        Some(fresh.decision_id.to_string().as_str())
    );
    let again = engine.decide(&alice(), request("r-2")).await.unwrap();
    assert_eq!(again, fresh);
    assert_eq!(decisions(&engine).await.len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_leaves_no_claim_behind() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    // With the ledger writer stopped every append fails, before any commit.
    engine.ledger.shutdown().await.unwrap();
    let err = engine.decide(&alice(), request("r-3")).await.unwrap_err();
    assert!(matches!(err, EngineError::Ledger(_)), "{err:?}");
    assert!(
        row(&engine, "r-3").await.is_none(),
        "the failed call's claim is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_taken_over_after_its_lease_keeps_the_new_decision() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let engine = open(dir.path(), Arc::new(clock.clone()), None).await;
    // A call claims the key and stalls past the lease; a retry decides afresh.
    let (slow, at) = claim_only(&engine, "r-5").await;
    clock.advance_secs(CLAIM_LEASE_SECS);
    let fresh = engine.decide(&alice(), request("r-5")).await.unwrap();
    // The slow call's append lands after all, but its claim is gone: it cannot
    // complete the row, so it does not overwrite the answer every retry gets.
    let late = engine.record(slow).await.unwrap();
    let (p, r) = key("r-5");
    let late_json = serde_json::to_string(&late).unwrap();
    assert!(
        !engine
            .store
            .idem_complete((&p, &r), at, &late_json)
            .await
            .unwrap()
    );
    assert!(!engine.store.idem_drop((&p, &r), at).await.unwrap());
    let again = engine.decide(&alice(), request("r-5")).await.unwrap();
    assert_eq!(again, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_claims_that_do_not_match_the_ledger_are_not_signed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let first = engine.decide(&alice(), request("r-6")).await.unwrap();
    let other = engine.decide(&alice(), request("r-7")).await.unwrap();
    assert_ne!(first.capability_token, other.capability_token);
    // Someone with write access to the database moves r-7's claims onto r-6.
    let pool = sqlite_pool(&engine);
    sqlx::query(
        "UPDATE engine_idempotency SET token_claims = (SELECT token_claims FROM engine_idempotency WHERE request_id = 'r-7') WHERE request_id = 'r-6'",
    )
    .execute(pool)
    .await
    .unwrap();
    let err = engine.decide(&alice(), request("r-6")).await.unwrap_err();
    assert!(
        err.to_string().contains("does not match its ledger entry"),
        "{err}"
    );
    // Claims that are not claims at all are refused the same way.
    sqlx::query("UPDATE engine_idempotency SET token_claims = 'AAAA' WHERE request_id = 'r-7'")
        .execute(pool)
        .await
        .unwrap();
    assert!(engine.decide(&alice(), request("r-7")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_record_each_request_id_once() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await;
    let b = open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await;
    let before = decisions(&a).await.len();
    const IDS: usize = 12;
    let mut tasks = tokio::task::JoinSet::new();
    for engine in [&a, &b] {
        for _ in 0..3 {
            let engine = Arc::clone(engine);
            tasks.spawn(async move {
                let mut out = Vec::new();
                for i in 0..IDS {
                    // As a client would: retry while another call holds the key.
                    let mut tries = 0;
                    let d = loop {
                        match engine.decide(&alice(), request(&format!("pg-{i}"))).await {
                            Err(EngineError::InProgress(_)) if tries < 20 => tries += 1,
                            other => break other.unwrap(),
                        }
                    };
                    out.push((i, d));
                }
                out
            });
        }
    }
    let mut first: HashMap<usize, Decision> = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        for (i, d) in done.unwrap() {
            let seen = first.entry(i).or_insert_with(|| d.clone());
            assert_eq!(*seen, d, "request pg-{i} got two different decisions");
        }
    }
    assert_eq!(first.len(), IDS);
    let recorded = decisions(&a).await;
    assert_eq!(
        recorded.len(),
        before + IDS,
        "each request id must be recorded once"
    );
    a.ledger.shutdown().await.unwrap();
    b.ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_decision_keeps_no_usable_token_and_replays_the_same_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let first = engine.decide(&alice(), request("r-4")).await.unwrap();
    let token = first
        .capability_token
        .clone()
        .expect("an approved decision");
    let pool = sqlite_pool(&engine);
    let (json, claims): (String, Option<String>) = sqlx::query_as(
        "SELECT decision, token_claims FROM engine_idempotency WHERE request_id = 'r-4'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let signature = token.rsplit_once('.').unwrap().1;
    let claims = claims.expect("the token's claims are kept");
    for kept in [&json, &claims] {
        assert!(!kept.contains(&token), "the token is stored: {kept}");
        assert!(!kept.contains(signature), "its signature is stored: {kept}");
    }
    // The replay signs the kept claims again: the same token, byte for byte.
    let again = engine.decide(&alice(), request("r-4")).await.unwrap();
    assert_eq!(again, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_decisions_own_entry_answers_its_claim() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    // A claim whose decision was never appended, and another kind of entry that names
    // the same decision (as escalation and grant entries will).
    let (abandoned, _) = claim_only(&engine, "r-8").await;
    engine
        .ledger
        .append(
            lexecon_ledger::EntryKind::Note,
            serde_json::json!({"decision_id": abandoned.decision.decision_id.to_string()}),
        )
        .await
        .unwrap();
    let err = engine.decide(&alice(), request("r-8")).await.unwrap_err();
    assert!(matches!(err, EngineError::InProgress(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_gone_before_the_claim_leaves_nothing_and_its_retry_decides() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let before = decisions(&engine).await.len();
    let gone = CallerGone::new();
    gone.set();
    let err = engine
        .decide_unless_gone(&alice(), request("r-gone"), &gone)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err:?}");
    assert!(row(&engine, "r-gone").await.is_none(), "a claim was left");
    assert_eq!(
        decisions(&engine).await.len(),
        before,
        "an entry was written"
    );
    // The retry is decided at once, as the first decision of this request.
    let d = engine.decide(&alice(), request("r-gone")).await.unwrap();
    assert_eq!(decisions(&engine).await.len(), before + 1);
    assert!(row(&engine, "r-gone").await.is_some());
    assert_eq!(d.outcome, lexecon_core::Outcome::Approved, "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waiting_on_another_claim_is_let_go_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    // Another call holds an unfinished claim (it is appending): a retry waits for it.
    let (_prepared, claimed_at) = claim_only(&engine, "r-wait").await;
    let gone = CallerGone::new();
    let waiting = tokio::spawn({
        let (engine, gone) = (Arc::clone(&engine), gone.clone());
        async move {
            engine
                .decide_unless_gone(&alice(), request("r-wait"), &gone)
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    gone.set();
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Cancelled, "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the wait for the other claim went on after the caller left"
    );
    // The other call's claim is untouched.
    let kept = row(&engine, "r-wait").await.unwrap();
    assert_eq!(kept.created_at, claimed_at);
    assert!(
        kept.ledger_from.is_some(),
        "the claim was completed by the wrong call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_gone_at_any_moment_leaves_either_nothing_or_a_whole_decision() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let (mut cancelled, mut decided) = (0, 0);
    for i in 0..60_u64 {
        let request_id = format!("r-race-{i}");
        let gone = CallerGone::new();
        let call = tokio::spawn({
            let (engine, gone, id) = (Arc::clone(&engine), gone.clone(), request_id.clone());
            async move {
                engine
                    .decide_unless_gone(&alice(), request(&id), &gone)
                    .await
            }
        });
        // Leave at a different moment each time: before, during or after the claim.
        for _ in 0..(i % 20) {
            tokio::task::yield_now().await;
        }
        if i % 3 != 0 {
            tokio::time::sleep(std::time::Duration::from_micros(50 * (i % 7))).await;
        }
        gone.set();
        match call.await.unwrap() {
            Err(e) => {
                assert_eq!(e.class(), ErrorClass::Cancelled, "{e:?}");
                assert!(
                    row(&engine, &request_id).await.is_none(),
                    "{request_id}: claim left"
                );
                cancelled += 1;
            }
            Ok(d) => {
                // A whole decision: its claim completed and its entry in the ledger.
                let stored = row(&engine, &request_id).await.unwrap();
                assert!(
                    stored.ledger_from.is_none(),
                    "{request_id}: claim not completed"
                );
                let entry = engine.ledger.entry(d.ledger_index).await.unwrap().unwrap();
                assert_eq!(entry.leaf_hash, d.ledger_leaf_hash);
                decided += 1;
            }
        }
        // Either way a retry answers at once with one decision.
        let again = engine.decide(&alice(), request(&request_id)).await.unwrap();
        let again2 = engine.decide(&alice(), request(&request_id)).await.unwrap();
        assert_eq!(again.decision_id, again2.decision_id);
    }
    assert_eq!(
        decisions(&engine).await.len(),
        60,
        "one decision per request"
    );
    eprintln!("cancelled {cancelled}, decided {decided}");
    assert!(
        cancelled > 0 && decided > 0,
        "both ends of the race were met ({cancelled} cancelled, {decided} decided)"
    );
}
