//! Audit reads in process (performance.md): `QueryDecisions` over a decision index of
//! 10^6 decisions, and an audit export of 10^5 decisions with its offline verification.
//! SQLite, WAL, synchronous=FULL. In test mode (`cargo test --benches`, without
//! `--bench`) the fixtures hold 10^3 decisions, so CI runs every query once, quickly.
//!
//! The query fixture writes index rows directly (one `INSERT ... WITH RECURSIVE`): the
//! query reads only the index and the payload table's redaction marks, so the rows need
//! no ledger entries, and 10^6 decisions through Decide would take minutes. The export
//! fixture decides for real (64 in flight), because an export reads leaves, payloads and
//! proofs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark set-up"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lexecon_core::{Outcome, SystemClock, Timestamp};
use lexecon_engine::config::{Config, Sources};
use lexecon_engine::db::Database;
use lexecon_engine::init::{InitOptions, init};
use lexecon_engine::{ActionInput, Caller, DecideInput, DecisionQuery, Engine, ExportQuery};
use lexecon_ledger::{AuditVerifyOptions, verify_audit_bundle};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Criterion runs benchmarks only with `--bench`; without it, each once (test mode).
fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let data = dir.join("data");
    let options = InitOptions {
        data_dir: data.clone(),
        node_id: "bench".into(),
        rsa: false,
        force: false,
    };
    init(&options, Arc::new(SystemClock)).await.unwrap();
    let config = Config::load(&Sources {
        data_dir: Some(data),
        config_file: None,
    })
    .unwrap();
    Engine::open(config, Arc::new(SystemClock)).await.unwrap()
}

/// `n` index rows at indexes 1_000_000.. (above any real entry): 100 actors, outcomes in
/// turn, one decision per millisecond.
async fn fill_index(engine: &Engine, n: u64) {
    let url = engine.config().database_url();
    let db = Database::connect(&url, 2).await.unwrap();
    let Database::Sqlite(pool) = &db else {
        unreachable!("the bench runs on the default SQLite database")
    };
    let base = Timestamp::from_unix_secs(1_764_000_000).unix_micros();
    let sql = format!(
        "INSERT INTO engine_decision_index \
         (idx, decision_id, decided_at, principal, actor, action, tool, outcome, risk_score, \
          policy_hash, reasons, escalation_id, override_id) \
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {n}) \
         SELECT 1000000 + i, printf('dec_%026d', i), {base} + i * 1000, 'key:bench', \
                'ai_agent:a' || (i % 100), 'read:customer_data', 'database_query', \
                1 + (i % 3), i % 101, zeroblob(32), '[\"allow-read\"]', NULL, NULL FROM s"
    );
    sqlx::query(&sql).execute(pool).await.unwrap();
    // The backfill has nothing to do: every indexed row is above the real entries.
    sqlx::query(
        "INSERT INTO engine_decision_index_backfill (id, next, upto) VALUES (1, 0, 0) \
         ON CONFLICT (id) DO UPDATE SET next = 0, upto = 0",
    )
    .execute(pool)
    .await
    .unwrap();
    db.close().await;
}

fn bench_query(c: &mut Criterion) {
    let n: u64 = if test_mode() { 1_000 } else { 1_000_000 };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(async {
        let engine = engine(dir.path()).await;
        fill_index(&engine, n).await;
        engine
    });
    let caller = Caller::Local("bench".into());
    let base = Timestamp::from_unix_secs(1_764_000_000);
    let last_hour = base.add_micros(i64::try_from(n).unwrap() * 1_000 - 3_600_000_000);
    let queries = [
        ("newest_100", DecisionQuery::default()),
        (
            "literal_actor_100",
            DecisionQuery {
                actor: "ai_agent:a7".into(),
                ..DecisionQuery::default()
            },
        ),
        (
            "actor_glob_100",
            DecisionQuery {
                actor: "ai_agent:a9*".into(),
                ..DecisionQuery::default()
            },
        ),
        (
            "denied_last_hour_100",
            DecisionQuery {
                outcome: Some(Outcome::Denied),
                since: Some(last_hour),
                ..DecisionQuery::default()
            },
        ),
        (
            "risk_at_least_95_1000",
            DecisionQuery {
                min_risk_score: 95,
                page_size: 1000,
                ..DecisionQuery::default()
            },
        ),
    ];
    let mut group = c.benchmark_group(format!("query_decisions_{n}"));
    group.throughput(Throughput::Elements(1));
    for (name, q) in queries {
        // Every query finds a full page (or all there is) with the fixture above.
        let page = rt
            .block_on(engine.query_decisions(&caller, q.clone()))
            .unwrap();
        assert!(!page.items.is_empty(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(engine.query_decisions(&caller, q.clone()))
                    .unwrap()
            });
        });
    }
    // Deep pagination: a page from the middle of the index.
    let middle = rt
        .block_on(engine.query_decisions(
            &caller,
            DecisionQuery {
                page_size: 1000,
                ..DecisionQuery::default()
            },
        ))
        .unwrap()
        .next_page_token;
    group.bench_function("second_page_1000", |b| {
        b.iter(|| {
            rt.block_on(engine.query_decisions(
                &caller,
                DecisionQuery {
                    page_size: 1000,
                    page_token: middle.clone(),
                    ..DecisionQuery::default()
                },
            ))
            .unwrap()
        });
    });
    group.finish();
    rt.block_on(engine.shutdown()).unwrap();
}

async fn decide_many(engine: &Arc<Engine>, n: u64) {
    let tasks = 64;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let engine = Arc::clone(engine);
        set.spawn(async move {
            let caller = Caller::Local("bench".into());
            let mut i = t;
            while i < n {
                let input = DecideInput {
                    action: ActionInput {
                        actor: format!("ai_agent:a{}", i % 10),
                        action: "read:customer_data".into(),
                        tool: "database_query".into(),
                        data_classes: vec!["pii".into()],
                        ..ActionInput::default()
                    },
                    request_id: String::new(),
                };
                engine.decide(&caller, input).await.unwrap();
                i += tasks;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn bench_export(c: &mut Criterion) {
    let n: u64 = if test_mode() { 1_000 } else { 100_000 };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(async {
        let engine = engine(dir.path()).await;
        decide_many(&engine, n).await;
        engine
    });
    let caller = Caller::Local("bench".into());
    let trusted = AuditVerifyOptions {
        trusted_key: None,
        trusted_checkpoint: None,
    };
    let mut group = c.benchmark_group(format!("audit_export_{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if test_mode() { 1 } else { 60 }));
    group.throughput(Throughput::Elements(n));
    let export = |out: &std::path::Path| {
        let engine = Arc::clone(&engine);
        let caller = caller.clone();
        let out = out.to_owned();
        async move {
            let mut stream = engine
                .export_audit(&caller, ExportQuery::default())
                .await
                .unwrap();
            let mut files: std::collections::BTreeMap<String, std::fs::File> =
                std::collections::BTreeMap::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                use std::io::Write as _;
                files
                    .entry(chunk.path.clone())
                    .or_insert_with(|| std::fs::File::create(out.join(&chunk.path)).unwrap())
                    .write_all(&chunk.data)
                    .unwrap();
            }
        }
    };
    group.bench_function("export", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |out| rt.block_on(export(out.path())),
            criterion::BatchSize::PerIteration,
        );
    });
    let bundle = tempfile::tempdir().unwrap();
    rt.block_on(export(bundle.path()));
    let report = verify_audit_bundle(bundle.path(), &trusted).unwrap();
    assert!(report.valid && report.decisions == n, "{report:?}");
    group.bench_function("verify", |b| {
        b.iter(|| verify_audit_bundle(bundle.path(), &trusted).unwrap());
    });
    group.finish();
    rt.block_on(engine.shutdown()).unwrap();
}

async fn drop_secondary_indexes(engine: &Engine) {
    let db = Database::connect(&engine.config().database_url(), 2)
        .await
        .unwrap();
    let Database::Sqlite(pool) = &db else {
        unreachable!("the bench runs on the default SQLite database")
    };
    for name in ["time", "actor"] {
        sqlx::query(&format!("DROP INDEX engine_decision_index_by_{name}"))
            .execute(pool)
            .await
            .unwrap();
    }
    db.close().await;
}

fn bench_decide_index_cost(c: &mut Criterion) {
    let rt = runtime();
    let with = tempfile::tempdir().unwrap();
    let without = tempfile::tempdir().unwrap();
    let engines = rt.block_on(async {
        let a = engine(with.path()).await;
        let b = engine(without.path()).await;
        drop_secondary_indexes(&b).await;
        [
            ("with_secondary_indexes", a),
            ("without_secondary_indexes", b),
        ]
    });
    let per_iter: u64 = if test_mode() { 64 } else { 1_024 };
    let mut group = c.benchmark_group("decide_index_cost");
    group.throughput(Throughput::Elements(per_iter));
    group.sample_size(20);
    for (name, engine) in &engines {
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(decide_many(engine, per_iter)));
        });
    }
    group.finish();
    for (_, engine) in engines {
        rt.block_on(engine.shutdown()).unwrap();
    }
}

criterion_group!(benches, bench_query, bench_export, bench_decide_index_cost);
criterion_main!(benches);
