//! Ledger benchmarks, each serving a target of `shared/design/performance.md`:
//! - `append_durable/*/N`: entries/s through `Ledger::append` from N concurrent tasks into
//!   a SQLite file (WAL, synchronous=FULL, group commit); target >= 100k entries/s.
//! - `proof_1m/*`: generating an inclusion proof from the stored subtree hashes of a
//!   10^6-entry SQLite log (target <= 100 µs) and verifying it (target <= 10 µs), and
//!   the same for a consistency proof.
//! - `verify_1m`: full verification of the 10^6-entry log (every leaf, chain link,
//!   payload hash, root and checkpoint); target >= 1M entries/s.
//! - `append_side_row/*`: the write seam's cost, in one run: 64 tasks appending with no
//!   side row, and with one row shaped like the engine's decision index (12 columns,
//!   an integer primary key and three secondary indexes: time, actor, outcome), without
//!   the actor index, and without any secondary index.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use lexecon_core::{Clock, SystemClock};
use lexecon_ledger::{
    BatchPlan, CheckpointSigner, EntryKind, Ledger, LedgerConfig, LedgerStore, NewEntry, SideRow,
    SideTable, SideType, SideValue, SqliteLedgerStore, VerifyOptions, load_state, open_sqlite,
    payload_hash, verify, verify_consistency, verify_inclusion,
};

const MILLION: u64 = 1_000_000;

fn signer() -> CheckpointSigner {
    CheckpointSigner::new("bench.lexecon/log", SigningKey::from_bytes(&[3; 32])).unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    format!(
        r#"{{"actor":"agent-{}","action":"read","tool":"crm.search","outcome":"approved","risk_score":17,"decision_id":"{:032x}"}}"#,
        i % 97,
        i
    )
    .into_bytes()
}

async fn fresh_store(dir: &std::path::Path) -> Arc<dyn LedgerStore> {
    let pool = open_sqlite(&dir.join("lexecon.db"), true).await.unwrap();
    let store = SqliteLedgerStore::new(pool);
    store.migrate().await.unwrap();
    Arc::new(store)
}

/// A store with `n` entries and a checkpoint every 10,000, written batch by batch.
async fn big_store(dir: &std::path::Path, n: u64) -> Arc<dyn LedgerStore> {
    let store = fresh_store(dir).await;
    let mut state = load_state(store.as_ref()).await.unwrap();
    let s = signer();
    let hook = |f: &lexecon_ledger::merkle::Frontier| Ok(Some(s.sign(f.size(), f.root())?));
    let mut i = 0;
    while i < n {
        let entries: Vec<NewEntry> = (i..(i + 10_000).min(n))
            .map(|k| {
                let p = payload(k);
                NewEntry {
                    kind: EntryKind::Decision,
                    payload_hash: payload_hash(&p),
                    payload: p,
                    side: Vec::new(),
                }
            })
            .collect();
        i += entries.len() as u64;
        let plan = BatchPlan {
            entries: &entries,
            timestamp: SystemClock.now(),
            checkpoint: &hook,
        };
        store.append_batch(&mut state, plan).await.unwrap();
    }
    store
        .set_meta(lexecon_ledger::VKEYS_META, &s.verifier().vkey())
        .await
        .unwrap();
    store
}

fn append_durable(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = rt.block_on(async {
        let store = fresh_store(dir.path()).await;
        let config = LedgerConfig {
            checkpoint_every_entries: 10_000,
            checkpoint_interval_ms: 1_000,
            max_batch: 4_096,
        };
        Ledger::open(store, signer(), config, Arc::new(SystemClock))
            .await
            .unwrap()
    });
    const PER_ITER: u64 = 32_768;
    let mut g = c.benchmark_group("append_durable");
    g.throughput(Throughput::Elements(PER_ITER));
    g.sample_size(10);
    for tasks in [64u64, 1024] {
        g.bench_with_input(
            BenchmarkId::new("sqlite_group_commit_tasks", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        rt.block_on(async {
                            let handles: Vec<_> = (0..tasks)
                                .map(|t| {
                                    let l = ledger.clone();
                                    tokio::spawn(async move {
                                        for k in 0..PER_ITER / tasks {
                                            l.append_bytes(
                                                EntryKind::Decision,
                                                payload(t * 1000 + k),
                                            )
                                            .await
                                            .unwrap();
                                        }
                                    })
                                })
                                .collect();
                            for h in handles {
                                h.await.unwrap();
                            }
                        });
                        total += start.elapsed();
                    }
                    total
                });
            },
        );
    }
    g.finish();
    rt.block_on(ledger.shutdown()).unwrap();
}

fn proofs_and_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(big_store(dir.path(), MILLION));
    let root = rt
        .block_on(lexecon_ledger::root_at(store.as_ref(), MILLION))
        .unwrap();
    let mut g = c.benchmark_group("proof_1m");
    let mut index = 12_345u64;
    g.bench_function("inclusion_generate", |b| {
        b.iter(|| {
            index = (index * 7_919 + 1) % MILLION;
            rt.block_on(lexecon_ledger::inclusion_proof(
                store.as_ref(),
                index,
                Some(MILLION),
            ))
            .unwrap()
        });
    });
    let p = rt
        .block_on(lexecon_ledger::inclusion_proof(
            store.as_ref(),
            654_321,
            Some(MILLION),
        ))
        .unwrap();
    g.bench_function("inclusion_verify", |b| {
        b.iter(|| verify_inclusion(&p.leaf_hash, p.index, p.size, &p.proof, &root).unwrap());
    });
    g.bench_function("consistency_generate", |b| {
        b.iter(|| {
            index = (index * 7_919 + 1) % MILLION;
            rt.block_on(lexecon_ledger::consistency_proof(
                store.as_ref(),
                index + 1,
                MILLION,
            ))
            .unwrap()
        });
    });
    let cp = rt
        .block_on(lexecon_ledger::consistency_proof(
            store.as_ref(),
            333_333,
            MILLION,
        ))
        .unwrap();
    g.bench_function("consistency_verify", |b| {
        b.iter(|| verify_consistency(cp.size1, cp.size2, &cp.proof, &cp.root1, &cp.root2).unwrap());
    });
    g.finish();

    let mut g = c.benchmark_group("verify_1m");
    g.throughput(Throughput::Elements(MILLION));
    g.sample_size(10);
    g.bench_with_input(
        BenchmarkId::new("sqlite_full", MILLION),
        &store,
        |b, store| {
            b.iter(|| {
                let report = rt
                    .block_on(verify(store.clone(), &VerifyOptions::default()))
                    .unwrap();
                assert!(report.valid && report.entries == MILLION);
            });
        },
    );
    g.finish();
}

/// Shaped like the engine's `engine_decision_index` (migration 4004).
static INDEX: SideTable = SideTable {
    name: "bench_decision_index",
    columns: INDEX_COLUMNS,
    on_conflict: "ON CONFLICT DO NOTHING",
};

/// The same rows in a table with the time and outcome indexes only.
static NO_ACTOR: SideTable = SideTable {
    name: "bench_no_actor",
    columns: INDEX_COLUMNS,
    on_conflict: "ON CONFLICT DO NOTHING",
};

/// The same rows in a table without secondary indexes.
static PK_ONLY: SideTable = SideTable {
    name: "bench_pk_only",
    columns: INDEX_COLUMNS,
    on_conflict: "ON CONFLICT DO NOTHING",
};

const INDEX_COLUMNS: &[(&str, SideType)] = &[
    ("decision_id", SideType::Text),
    ("decided_at", SideType::Int),
    ("principal", SideType::Text),
    ("actor", SideType::Text),
    ("action", SideType::Text),
    ("tool", SideType::Text),
    ("outcome", SideType::Int),
    ("risk_score", SideType::Int),
    ("policy_hash", SideType::Bytes),
    ("reasons", SideType::Text),
    ("escalation_id", SideType::Text),
    ("override_id", SideType::Text),
];

fn index_row(table: &'static SideTable, i: u64) -> SideRow {
    SideRow {
        table,
        values: vec![
            SideValue::Text(format!("dec_{i:026}")),
            // Decision times grow with the clock, as real ones do.
            SideValue::Int(SystemClock.now().unix_micros()),
            SideValue::Text("key:bench".into()),
            SideValue::Text(format!("agent-{}", i % 97)),
            SideValue::Text("read".into()),
            SideValue::Text("crm.search".into()),
            SideValue::Int(1 + (i % 3) as i64),
            SideValue::Int(17),
            SideValue::Bytes(vec![7; 32]),
            SideValue::Text(r#"["allow-read"]"#.into()),
            SideValue::Null,
            SideValue::Null,
        ],
    }
}

fn append_side_row(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = rt.block_on(async {
        let pool = open_sqlite(&dir.path().join("lexecon.db"), true).await.unwrap();
        let store = SqliteLedgerStore::new(pool.clone());
        store.migrate().await.unwrap();
        for sql in [
            "CREATE TABLE bench_decision_index (idx INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, \
             decided_at BIGINT NOT NULL, principal TEXT, actor TEXT, action TEXT, tool TEXT, \
             outcome SMALLINT NOT NULL, risk_score BIGINT, policy_hash BLOB, reasons TEXT, \
             escalation_id TEXT, override_id TEXT)",
            "CREATE TABLE bench_pk_only (idx INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, \
             decided_at BIGINT NOT NULL, principal TEXT, actor TEXT, action TEXT, tool TEXT, \
             outcome SMALLINT NOT NULL, risk_score BIGINT, policy_hash BLOB, reasons TEXT, \
             escalation_id TEXT, override_id TEXT)",
            "CREATE TABLE bench_no_actor (idx INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, \
             decided_at BIGINT NOT NULL, principal TEXT, actor TEXT, action TEXT, tool TEXT, \
             outcome SMALLINT NOT NULL, risk_score BIGINT, policy_hash BLOB, reasons TEXT, \
             escalation_id TEXT, override_id TEXT)",
            "CREATE INDEX bench_na_time ON bench_no_actor (decided_at, idx)",
            "CREATE INDEX bench_na_outcome ON bench_no_actor (outcome, idx)",
            "CREATE INDEX bench_by_time ON bench_decision_index (decided_at, idx)",
            "CREATE INDEX bench_by_actor ON bench_decision_index (actor, idx)",
            "CREATE INDEX bench_by_outcome ON bench_decision_index (outcome, idx)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let config = LedgerConfig {
            checkpoint_every_entries: 10_000,
            checkpoint_interval_ms: 1_000,
            max_batch: 4_096,
        };
        Ledger::open(Arc::new(store), signer(), config, Arc::new(SystemClock))
            .await
            .unwrap()
    });
    const PER_ITER: u64 = 32_768;
    const TASKS: u64 = 64;
    let mut g = c.benchmark_group("append_side_row");
    g.throughput(Throughput::Elements(PER_ITER));
    g.sample_size(10);
    let next = std::sync::atomic::AtomicU64::new(0);
    let variants: [(&str, Option<&'static SideTable>); 4] = [
        ("decision_index_row", Some(&INDEX)),
        ("row_time_and_outcome_indexes", Some(&NO_ACTOR)),
        ("row_without_secondary_indexes", Some(&PK_ONLY)),
        ("none", None),
    ];
    for (name, table) in variants {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = next.fetch_add(PER_ITER, std::sync::atomic::Ordering::Relaxed);
                    let start = Instant::now();
                    rt.block_on(async {
                        let handles: Vec<_> = (0..TASKS)
                            .map(|t| {
                                let l = ledger.clone();
                                tokio::spawn(async move {
                                    for k in 0..PER_ITER / TASKS {
                                        let i = base + t * (PER_ITER / TASKS) + k;
                                        let side: Vec<SideRow> =
                                            table.map(|t| index_row(t, i)).into_iter().collect();
                                        l.append_entry(EntryKind::Decision, payload(i), side)
                                            .await
                                            .unwrap();
                                    }
                                })
                            })
                            .collect();
                        for h in handles {
                            h.await.unwrap();
                        }
                    });
                    total += start.elapsed();
                }
                total
            });
        });
    }
    g.finish();
    rt.block_on(ledger.shutdown()).unwrap();
}

criterion_group!(benches, append_durable, append_side_row, proofs_and_verify);
criterion_main!(benches);
