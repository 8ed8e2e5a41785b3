//! Tests of decision queries, the index backfill and audit exports.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use lexecon_core::{ManualClock, Outcome, SystemClock, Timestamp};
use lexecon_ledger::{AuditFormat, AuditVerifyOptions, EntryKind, verify_audit_bundle};
use proptest::prelude::*;

use super::super::tests::open;
use super::super::{ActionInput, Caller, DecideInput, Engine, EngineError};
use super::{DecisionQuery, DecisionRecord, ExportQuery};
use crate::decision::Decision;
use crate::engine::Page;

fn root() -> Caller {
    Caller::Local("auditor".into())
}

fn input(actor: &str, action: &str, tool: &str) -> DecideInput {
    DecideInput {
        action: ActionInput {
            actor: actor.into(),
            action: action.into(),
            tool: tool.into(),
            ..ActionInput::default()
        },
        request_id: String::new(),
    }
}

async fn all_pages(engine: &Engine, mut q: DecisionQuery) -> Vec<DecisionRecord> {
    let mut out = Vec::new();
    loop {
        let Page {
            items,
            next_page_token,
        } = engine.query_decisions(&root(), q.clone()).await.unwrap();
        out.extend(items);
        if next_page_token.is_empty() {
            return out;
        }
        q.page_token = next_page_token;
    }
}

/// What the naive oracle knows of each decision: the ledger payload (or, once
/// redacted, what the decision returned), keyed by ledger index.
#[derive(Debug, Clone)]
struct Known {
    index: u64,
    decided_at: Timestamp,
    outcome: Outcome,
    /// None once redacted.
    payload: Option<serde_json::Value>,
}

async fn known(engine: &Engine, decided: &BTreeMap<u64, Decision>) -> Vec<Known> {
    let size = engine.ledger.tree_size().await.unwrap();
    let mut out = Vec::new();
    for e in engine.ledger.entries(0, size).await.unwrap() {
        if e.decode_leaf().unwrap().kind != EntryKind::Decision {
            continue;
        }
        let d = &decided[&e.index];
        out.push(Known {
            index: e.index,
            decided_at: d.decided_at,
            outcome: d.outcome,
            payload: e.payload_json(),
        });
    }
    out
}

fn glob_ok(pattern: &str, value: Option<&str>) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let g = lexecon_core::Glob::new(pattern).unwrap();
    match value {
        Some(v) => g.matches(v),
        None => pattern == "*",
    }
}

/// The naive filter, newest first.
fn naive(all: &[Known], q: &DecisionQuery) -> Vec<u64> {
    let mut out: Vec<u64> = all
        .iter()
        .filter(|k| {
            q.outcome.is_none_or(|o| o == k.outcome)
                && q.since.is_none_or(|s| k.decided_at >= s)
                && q.until.is_none_or(|u| k.decided_at < u)
                && match &k.payload {
                    None => {
                        q.actor.is_empty()
                            && q.action.is_empty()
                            && q.tool.is_empty()
                            && q.min_risk_score == 0
                            && q.policy_hash.is_empty()
                    }
                    Some(p) => {
                        glob_ok(&q.actor, p["request"]["actor"].as_str())
                            && glob_ok(&q.action, p["request"]["action"].as_str())
                            && glob_ok(&q.tool, p["request"]["tool"].as_str())
                            && p["risk"]["score"].as_u64().unwrap() >= u64::from(q.min_risk_score)
                            && (q.policy_hash.is_empty()
                                || p["policy"]["hash"].as_str()
                                    == Some(super::super::payload::hex(&q.policy_hash).as_str()))
                    }
                }
        })
        .map(|k| k.index)
        .collect();
    out.reverse();
    out
}

const ACTORS: [&str; 4] = [
    "ai_agent:alpha",
    "ai_agent:beta",
    "bot:gamma",
    "ai_agent:alphabet",
];
const ACTIONS: [&str; 4] = [
    "read:customer_data",
    "write:report",
    "delete:records",
    "read:logs",
];
const TOOLS: [&str; 3] = ["", "database_query", "shell"];

/// Decides `n` requests drawn from the lists above, the clock moving 0-3 ms between
/// them, and redacts every seventh; returns the decisions by ledger index.
async fn populate(
    engine: &Engine,
    clock: &ManualClock,
    n: usize,
    seed: u64,
) -> BTreeMap<u64, Decision> {
    let mut decided = BTreeMap::new();
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize
    };
    for i in 0..n {
        let req = input(
            ACTORS[next() % ACTORS.len()],
            ACTIONS[next() % ACTIONS.len()],
            TOOLS[next() % TOOLS.len()],
        );
        clock.advance_micros((next() % 4) as i64 * 1_000 + 7);
        let d = engine.decide(&root(), req).await.unwrap();
        if i % 7 == 3 {
            engine
                .ledger
                .redact(d.ledger_index, "local:test", "test redaction")
                .await
                .unwrap();
        }
        decided.insert(d.ledger_index, d);
    }
    decided
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_id_ulid_time_equals_decided_at_and_the_row_matches_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let mut decided = Vec::new();
    for actor in ACTORS {
        decided.push(
            engine
                .decide(&root(), input(actor, "read:logs", "shell"))
                .await
                .unwrap(),
        );
    }
    let found = all_pages(&engine, DecisionQuery::default()).await;
    assert_eq!(found.len(), decided.len());
    for (d, r) in decided.iter().rev().zip(&found) {
        assert_eq!(r.decision_id, d.decision_id.to_string());
        assert_eq!(
            r.decided_at, d.decided_at,
            "the index keeps the microsecond"
        );
        assert_eq!(
            d.decision_id.timestamp().unix_millis(),
            d.decided_at.unix_millis(),
            "the ULID carries decided_at's millisecond"
        );
        assert_eq!(r.ledger_index, d.ledger_index);
        assert_eq!(r.actor, d.actor);
        assert_eq!(r.proposed_action, "read:logs");
        assert_eq!(r.tool, "shell");
        assert_eq!(r.outcome, d.outcome);
        assert_eq!(r.risk_score, d.risk_score);
        assert_eq!(r.reasons, d.reasons);
        assert_eq!(r.policy_hash, d.policy_version_hash.to_vec());
        assert_eq!(r.principal, "local:auditor");
        assert!(!r.redacted);
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    engine: Arc<Engine>,
    all: Vec<Known>,
    policy_hash: Vec<u8>,
    first: Timestamp,
    last: Timestamp,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_764_000_000)));
        let (engine, all, policy_hash) = rt.block_on(async {
            let engine = open(dir.path(), clock.clone(), None).await;
            let decided = populate(&engine, &clock, 90, 7).await;
            let hash = decided
                .values()
                .next()
                .unwrap()
                .policy_version_hash
                .to_vec();
            let all = known(&engine, &decided).await;
            (engine, all, hash)
        });
        let first = all.first().unwrap().decided_at;
        let last = all.last().unwrap().decided_at;
        Fixture {
            rt,
            engine,
            all,
            policy_hash,
            first,
            last,
            _dir: dir,
        }
    })
}

fn query_strategy() -> impl Strategy<Value = (DecisionQuery, u32, u32)> {
    let actor = prop::sample::select(vec![
        "",
        "*",
        "ai_agent:*",
        "ai_agent:alpha",
        "ai_agent:alpha*",
        "bot:?amma",
        "nobody",
    ]);
    let action = prop::sample::select(vec!["", "read:*", "write:report", "*:records"]);
    let tool = prop::sample::select(vec!["", "*", "shell", "data*"]);
    let outcome = prop::sample::select(vec![
        None,
        Some(Outcome::Approved),
        Some(Outcome::Denied),
        Some(Outcome::Escalated),
    ]);
    (
        (actor, action, tool, outcome),
        (0u32..=100, 0u32..4, 0u32..=1000, 0u32..=1000, 1u32..=9),
    )
        .prop_map(
            |((actor, action, tool, outcome), (risk, which, s, u, page))| {
                (
                    DecisionQuery {
                        actor: actor.into(),
                        action: action.into(),
                        tool: tool.into(),
                        outcome,
                        min_risk_score: if risk % 3 == 0 { risk } else { 0 },
                        page_size: page,
                        // policy_hash and times are set from the fixture below.
                        policy_hash: vec![u8::try_from(which).unwrap()],
                        ..DecisionQuery::default()
                    },
                    s,
                    u,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// QueryDecisions, page by page, equals a naive filter over the ledger's entries.
    #[test]
    fn query_matches_naive_filter((mut q, s, u) in query_strategy()) {
        let f = fixture();
        let span = (f.last.unix_micros() - f.first.unix_micros()).max(1);
        let at = |permille: u32| {
            Timestamp::from_unix_micros(
                f.first.unix_micros() - 500 + span * i64::from(permille) / 1000,
            )
        };
        q.policy_hash = match q.policy_hash[0] {
            1 => f.policy_hash.clone(),
            2 => vec![7; 32],
            _ => Vec::new(),
        };
        if s % 2 == 0 { q.since = Some(at(s.min(u))); }
        if u % 3 != 0 { q.until = Some(at(s.max(u))); }
        let got: Vec<u64> = f.rt.block_on(all_pages(&f.engine, q.clone())).iter().map(|r| r.ledger_index).collect();
        prop_assert_eq!(got, naive(&f.all, &q), "{:?}", q);
    }
}

async fn pagination_exactly_once(engine: Arc<Engine>) {
    let actor = "ai_agent:pager";
    for _ in 0..60 {
        engine
            .decide(&root(), input(actor, "read:logs", ""))
            .await
            .unwrap();
    }
    // Decisions keep arriving, for this actor and others, while we page.
    let writer = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let mut n = 0;
            for i in 0..150 {
                let who = if i % 2 == 0 { actor } else { "ai_agent:other" };
                engine
                    .decide(&root(), input(who, "read:logs", ""))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let mut q = DecisionQuery {
        actor: actor.into(),
        page_size: 7,
        ..DecisionQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = engine.query_decisions(&root(), q.clone()).await.unwrap();
        seen.extend(page.items.iter().map(|r| r.ledger_index));
        if page.next_page_token.is_empty() {
            break;
        }
        q.page_token = page.next_page_token;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeat"
    );
    let top = seen[0];
    // Exactly the matching decisions at or below the first page's newest one.
    let size = engine.ledger.tree_size().await.unwrap();
    let want: Vec<u64> = engine
        .ledger
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.index <= top && e.decode_leaf().unwrap().kind == EntryKind::Decision)
        .filter(|e| e.payload_json().unwrap()["request"]["actor"] == actor)
        .map(|e| e.index)
        .rev()
        .collect();
    assert_eq!(seen, want);
    assert!(seen.len() >= 60);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_under_concurrent_appends_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    pagination_exactly_once(open(dir.path(), Arc::new(SystemClock), None).await).await;
    if let Some(db) = lexecon_testkit::PgDatabase::create().await {
        let dir = tempfile::tempdir().unwrap();
        pagination_exactly_once(open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_rows_withhold_fields() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let a = engine
        .decide(&root(), input("ai_agent:alpha", "read:logs", "shell"))
        .await
        .unwrap();
    let b = engine
        .decide(&root(), input("ai_agent:alpha", "read:logs", "shell"))
        .await
        .unwrap();
    engine
        .ledger
        .redact(b.ledger_index, "local:test", "erasure request")
        .await
        .unwrap();
    let found = all_pages(&engine, DecisionQuery::default()).await;
    assert_eq!(found.len(), 2);
    let r = &found[0];
    assert_eq!(r.ledger_index, b.ledger_index);
    assert!(r.redacted);
    assert_eq!(r.decision_id, b.decision_id.to_string());
    assert_eq!(r.decided_at, b.decided_at);
    assert_eq!(r.outcome, b.outcome);
    assert_eq!(
        (
            r.actor.as_str(),
            r.proposed_action.as_str(),
            r.tool.as_str(),
            r.principal.as_str()
        ),
        ("", "", "", "")
    );
    assert!(r.reasons.is_empty() && r.policy_hash.is_empty() && r.risk_score == 0);
    assert!(!found[1].redacted);
    assert_eq!(found[1].actor, a.actor);
    // Filters on withheld fields do not see it; time and outcome do.
    let by_actor = all_pages(
        &engine,
        DecisionQuery {
            actor: "ai_agent:alpha".into(),
            ..DecisionQuery::default()
        },
    )
    .await;
    assert_eq!(
        by_actor.iter().map(|r| r.ledger_index).collect::<Vec<_>>(),
        vec![a.ledger_index]
    );
    let by_outcome = all_pages(
        &engine,
        DecisionQuery {
            outcome: Some(b.outcome),
            since: Some(b.decided_at),
            ..DecisionQuery::default()
        },
    )
    .await;
    assert_eq!(by_outcome[0].ledger_index, b.ledger_index);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let cases = [
        (
            DecisionQuery {
                actor: "bad actor".into(),
                ..DecisionQuery::default()
            },
            "actor",
        ),
        (
            DecisionQuery {
                tool: "a,b".into(),
                ..DecisionQuery::default()
            },
            "tool",
        ),
        (
            DecisionQuery {
                min_risk_score: 101,
                ..DecisionQuery::default()
            },
            "min_risk_score",
        ),
        (
            DecisionQuery {
                policy_hash: vec![1; 5],
                ..DecisionQuery::default()
            },
            "policy_hash",
        ),
        (
            DecisionQuery {
                page_size: 1001,
                ..DecisionQuery::default()
            },
            "page_size",
        ),
        (
            DecisionQuery {
                page_token: "zz".into(),
                ..DecisionQuery::default()
            },
            "page_token",
        ),
        (
            DecisionQuery {
                since: Some(Timestamp::from_unix_secs(10)),
                until: Some(Timestamp::from_unix_secs(5)),
                ..DecisionQuery::default()
            },
            "since",
        ),
    ];
    for (q, field) in cases {
        match engine.query_decisions(&root(), q).await {
            Err(EngineError::InvalidArgument(m)) => assert!(m.starts_with(field), "{field}: {m}"),
            other => panic!("{field}: {other:?}"),
        }
    }
}

async fn index_rows(engine: &Engine) -> Vec<(i64, String, i64, String, i64)> {
    let sql = "SELECT idx, decision_id, decided_at, actor, CAST(outcome AS BIGINT) FROM engine_decision_index ORDER BY idx";
    match &engine.db {
        crate::db::Database::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        crate::db::Database::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

async fn exec(engine: &Engine, sql: &str) {
    match &engine.db {
        crate::db::Database::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
        crate::db::Database::Postgres(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

async fn backfill_case(engine: Arc<Engine>) {
    let clock_ms =
        |r: &(i64, String, i64, String, i64)| (r.0, r.1.clone(), r.2 / 1000, r.3.clone(), r.4);
    let mut decided = Vec::new();
    for i in 0..25 {
        decided.push(
            engine
                .decide(&root(), input(ACTORS[i % 4], ACTIONS[i % 4], TOOLS[i % 3]))
                .await
                .unwrap(),
        );
    }
    let live = index_rows(&engine).await;
    assert_eq!(live.len(), 25);
    // An old ledger: decisions without index rows, the backfill never run.
    exec(&engine, "DELETE FROM engine_decision_index").await;
    exec(&engine, "DELETE FROM engine_decision_index_backfill").await;
    // Later decisions are indexed live; the backfill covers what is below them.
    let later = engine
        .decide(&root(), input("ai_agent:late", "read:logs", ""))
        .await
        .unwrap();
    // Resumable: small steps, each moving forward, state kept between them.
    let first = engine.backfill_step(10).await.unwrap();
    assert!(!first.done());
    assert_eq!(first.upto, later.ledger_index);
    let mut last = first;
    while !last.done() {
        let p = engine.backfill_step(10).await.unwrap();
        assert!(p.next > last.next);
        last = p;
    }
    let rows = index_rows(&engine).await;
    assert_eq!(rows.len(), 26);
    // The same rows, to the millisecond (old payloads carry no decision time).
    let rebuilt: Vec<_> = rows.iter().take(25).map(clock_ms).collect();
    let want: Vec<_> = live.iter().map(clock_ms).collect();
    assert_eq!(rebuilt, want);
    // Done once: a further run writes nothing.
    let again = engine.backfill_decision_index(|_| {}).await.unwrap();
    assert!(again.done());
    assert_eq!(again.indexed, 0);
    // Queries see all of it.
    assert_eq!(all_pages(&engine, DecisionQuery::default()).await.len(), 26);

    // From scratch: a query on an unindexed ledger finishes the (small) backfill itself.
    exec(&engine, "DELETE FROM engine_decision_index").await;
    exec(&engine, "DELETE FROM engine_decision_index_backfill").await;
    assert_eq!(all_pages(&engine, DecisionQuery::default()).await.len(), 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_indexes_an_old_ledger() {
    let dir = tempfile::tempdir().unwrap();
    backfill_case(open(dir.path(), Arc::new(SystemClock), None).await).await;
    if let Some(db) = lexecon_testkit::PgDatabase::create().await {
        let dir = tempfile::tempdir().unwrap();
        backfill_case(open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await).await;
    }
}

/// Collects an export's chunks into `dir`, checking the chunk rules.
pub(crate) async fn write_export(
    engine: &Arc<Engine>,
    caller: &Caller,
    q: ExportQuery,
    dir: &Path,
) -> Vec<String> {
    let mut stream = engine.export_audit(caller, q).await.unwrap();
    let mut order: Vec<String> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.data.len() <= super::MAX_CHUNK_BYTES);
        assert!(!chunk.path.contains(".."));
        if order.last() != Some(&chunk.path) {
            assert!(
                !order.contains(&chunk.path),
                "files arrive one after another"
            );
            order.push(chunk.path.clone());
        }
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(&chunk.path))
            .unwrap()
            .write_all(&chunk.data)
            .unwrap();
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verifies_is_ledgered_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_764_000_000)));
    let engine = open(dir.path(), clock.clone(), None).await;
    let decided = populate(&engine, &clock, 40, 3).await;
    let trusted = AuditVerifyOptions {
        trusted_key: Some(engine.ledger.verifier().clone()),
        trusted_checkpoint: None,
    };
    let caller = Caller::Local("carol".into());
    let mut bundles = Vec::new();
    for (format, actor) in [(AuditFormat::Ndjson, "ai_agent:*"), (AuditFormat::Csv, "")] {
        let out = tempfile::tempdir().unwrap();
        let order = write_export(
            &engine,
            &caller,
            ExportQuery {
                actor: actor.into(),
                format,
                ..ExportQuery::default()
            },
            out.path(),
        )
        .await;
        assert_eq!(
            order,
            [
                format.file_name(),
                "checkpoint",
                "verifier.vkey",
                "manifest.json",
                "manifest.sig"
            ]
        );
        let report = verify_audit_bundle(out.path(), &trusted).unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.key_source, "trusted");
        // A redacted decision's actor is withheld: an actor filter leaves it out.
        let want = known(&engine, &decided)
            .await
            .iter()
            .filter(|k| {
                actor.is_empty()
                    || k.payload.as_ref().is_some_and(|p| {
                        p["request"]["actor"]
                            .as_str()
                            .unwrap()
                            .starts_with("ai_agent:")
                    })
            })
            .count() as u64;
        assert_eq!(report.decisions, want, "{format:?}");
        // Without a trusted key: still valid, and it says the key came from the bundle.
        let own = verify_audit_bundle(out.path(), &AuditVerifyOptions::default()).unwrap();
        assert!(own.valid && own.key_source == "bundle", "{own:?}");
        bundles.push((out, report));
    }
    // Each export is an audit_exported entry naming its author, and listed.
    let listed = engine.list_audit_exports(&root(), 0, "").await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(listed.items[0].export_id, bundles[1].1.export_id);
    let entry = engine
        .ledger
        .entry(listed.items[0].ledger_index)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.decode_leaf().unwrap().kind, EntryKind::AuditExported);
    assert_eq!(entry.payload_json().unwrap()["by"], "local:carol");
    let paged = engine.list_audit_exports(&root(), 1, "").await.unwrap();
    assert_eq!(paged.items.len(), 1);
    let rest = engine
        .list_audit_exports(&root(), 1, &paged.next_page_token)
        .await
        .unwrap();
    assert_eq!(rest.items[0].export_id, bundles[0].1.export_id);
    assert!(rest.next_page_token.is_empty());

    // A later export (another checkpoint) to take a foreign proof from.
    engine
        .decide(&root(), input("ai_agent:alpha", "read:logs", ""))
        .await
        .unwrap();
    let later = tempfile::tempdir().unwrap();
    write_export(
        &engine,
        &caller,
        ExportQuery {
            actor: "ai_agent:*".into(),
            ..ExportQuery::default()
        },
        later.path(),
    )
    .await;

    let src = bundles[0].0.path();
    let copy = |name: &str| {
        let d = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(src).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), d.path().join(f.file_name())).unwrap();
        }
        let _ = name;
        d
    };
    let lines = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("decisions.ndjson"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let put = |d: &Path, ls: &[String]| {
        std::fs::write(d.join("decisions.ndjson"), ls.join("\n") + "\n").unwrap();
    };
    let problem = |d: &Path| verify_audit_bundle(d, &trusted).unwrap().problem.unwrap();

    // A changed byte in a leaf.
    let d = copy("byte");
    let mut ls = lines(d.path());
    let mut v: serde_json::Value = serde_json::from_str(&ls[2]).unwrap();
    let index = v["index"].as_u64().unwrap();
    let mut leaf = base64_decode(v["leaf"].as_str().unwrap());
    leaf[20] ^= 1;
    v["leaf"] = base64_encode(&leaf).into();
    ls[2] = v.to_string();
    put(d.path(), &ls);
    let p = problem(d.path());
    assert!(
        p.contains(&format!("entry {index}")) && p.contains("leaf"),
        "{p}"
    );

    // A changed byte in a column.
    let d = copy("column");
    let mut ls = lines(d.path());
    let i = ls
        .iter()
        .position(|l| l.contains("\"redacted\":false"))
        .unwrap();
    ls[i] = ls[i].replacen("ai_agent:", "ai_agent;", 1);
    put(d.path(), &ls);
    let p = problem(d.path());
    assert!(
        p.contains("differs from its payload") || p.contains("actor"),
        "{p}"
    );

    // A removed entry.
    let d = copy("removed");
    let mut ls = lines(d.path());
    ls.remove(1);
    put(d.path(), &ls);
    let p = problem(d.path());
    assert!(
        p.contains("holds") && p.contains("manifest.json says"),
        "{p}"
    );

    // A proof from another checkpoint.
    let d = copy("foreign proof");
    let mut ls = lines(d.path());
    let foreign: Vec<serde_json::Value> = lines(later.path())
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut v: serde_json::Value = serde_json::from_str(&ls[0]).unwrap();
    let other = foreign.iter().find(|f| f["index"] == v["index"]).unwrap();
    assert_ne!(other["proof"], v["proof"], "the trees differ");
    v["proof"] = other["proof"].clone();
    ls[0] = v.to_string();
    put(d.path(), &ls);
    let p = problem(d.path());
    assert!(p.contains("inclusion proof"), "{p}");

    // A manifest signed by another key (and its checkpoint, so only the key is wrong).
    let d = copy("other key");
    let other = lexecon_ledger::CheckpointSigner::new(
        engine.ledger.verifier().name(),
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let manifest = std::fs::read(d.path().join("manifest.json")).unwrap();
    std::fs::write(
        d.path().join("manifest.sig"),
        lexecon_ledger::sign_manifest(&other, &manifest),
    )
    .unwrap();
    let p = problem(d.path());
    assert!(p.contains("manifest.sig"), "{p}");
    // Trusting nothing but the bundle, the same bundle with the other key's vkey still
    // fails on the checkpoint, which the other key never signed.
    std::fs::write(
        d.path().join("verifier.vkey"),
        other.verifier().vkey() + "\n",
    )
    .unwrap();
    let own = verify_audit_bundle(d.path(), &AuditVerifyOptions::default()).unwrap();
    assert!(
        own.problem.as_deref().unwrap().contains("checkpoint"),
        "{own:?}"
    );

    // The trusted checkpoint: the bundle's own passes, another tree's is named.
    let cp = std::fs::read_to_string(src.join("checkpoint")).unwrap();
    let with_cp = AuditVerifyOptions {
        trusted_checkpoint: Some(cp),
        ..trusted.clone()
    };
    assert!(verify_audit_bundle(src, &with_cp).unwrap().valid);
    let later_cp = std::fs::read_to_string(later.path().join("checkpoint")).unwrap();
    let wrong = AuditVerifyOptions {
        trusted_checkpoint: Some(later_cp),
        ..trusted
    };
    let p = verify_audit_bundle(src, &wrong).unwrap().problem.unwrap();
    assert!(p.contains("trusted checkpoint"), "{p}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verifies_on_postgres() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_764_000_000)));
    let engine = open(dir.path(), clock.clone(), Some(&db.url)).await;
    let decided = populate(&engine, &clock, 30, 11).await;
    for format in [AuditFormat::Ndjson, AuditFormat::Csv] {
        let out = tempfile::tempdir().unwrap();
        write_export(
            &engine,
            &root(),
            ExportQuery {
                format,
                ..ExportQuery::default()
            },
            out.path(),
        )
        .await;
        let report = verify_audit_bundle(
            out.path(),
            &AuditVerifyOptions {
                trusted_key: Some(engine.ledger.verifier().clone()),
                trusted_checkpoint: None,
            },
        )
        .unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.decisions, decided.len() as u64);
    }
    let listed = engine.list_audit_exports(&root(), 0, "").await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(listed.items[0].ledger_index > listed.items[1].ledger_index);
    assert_eq!(listed.items[0].decisions, 30);
}
