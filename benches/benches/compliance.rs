//! Compliance reads in process (performance.md: `GetComplianceStatus` within 100 ms at
//! 10^6 ledger entries): `Engine::compliance_status` for one framework, and the record
//! keeping status, over a ledger of 10^6 entries. SQLite, WAL, synchronous=FULL. In test
//! mode (`cargo test --benches`, without `--bench`) the ledger holds 10^4 entries, so CI
//! runs every call once, quickly.
//!
//! The fixture appends real entries (notes, budget and auth events: kinds that need no
//! index rows) through `lexecon_ledger::Ledger` in groups of 1000, 8 groups in flight,
//! then opens the engine on the data directory. The engine counts the entries once
//! (its statistics tailer catches up before the first status), outside the measurement:
//! what is measured is the status of a deployment whose statistics are current, plus
//! the tail of the entries appended since (none here, and a handful in production).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark set-up"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lexecon_core::SystemClock;
use lexecon_engine::config::{Config, Sources};
use lexecon_engine::db::Database;
use lexecon_engine::init::{InitOptions, init};
use lexecon_engine::{Caller, Engine};
use lexecon_ledger::{
    CheckpointSigner, EntryKind, Ledger, LedgerConfig, LedgerStore, SqliteLedgerStore,
};

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

fn config(data: &std::path::Path) -> Config {
    Config::load(&Sources {
        data_dir: Some(data.to_path_buf()),
        config_file: None,
    })
    .unwrap()
}

/// A data directory whose ledger holds `n` entries (beyond what `init` wrote).
async fn fixture(dir: &std::path::Path, n: u64) -> std::path::PathBuf {
    let data = dir.join("data");
    let options = InitOptions {
        data_dir: data.clone(),
        node_id: "bench".into(),
        rsa: false,
        force: false,
    };
    init(&options, Arc::new(SystemClock)).await.unwrap();
    let url = config(&data).database_url();
    // The engine's migrations (and every crate's) first, as the engine would.
    let db = Database::connect(&url, 4).await.unwrap();
    lexecon_engine::migrate_all(&db).await.unwrap();
    let Database::Sqlite(pool) = &db else {
        unreachable!("the bench runs on the default SQLite database")
    };
    let store: Arc<dyn LedgerStore> = Arc::new(SqliteLedgerStore::new(pool.clone()));
    let signer = CheckpointSigner::new(
        "bench.lexecon",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let ledger = Ledger::open(
        store,
        signer,
        LedgerConfig {
            checkpoint_every_entries: 10_000,
            checkpoint_interval_ms: 60_000,
            max_batch: 4096,
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let kinds = [
        EntryKind::Note,
        EntryKind::BudgetEvent,
        EntryKind::AuthEvent,
        EntryKind::Note,
    ];
    let group = 1000u64;
    let groups = n.div_ceil(group);
    let mut set = tokio::task::JoinSet::new();
    for g in 0..groups {
        while set.len() >= 8 {
            set.join_next().await.unwrap().unwrap();
        }
        let ledger = ledger.clone();
        set.spawn(async move {
            let entries = (g * group..((g + 1) * group).min(n))
                .map(|i| {
                    let payload = serde_json::to_vec(
                        &serde_json::json!({"event": "bench", "n": i, "by": "key:bench"}),
                    )
                    .unwrap();
                    (kinds[(i % 4) as usize], payload, Vec::new())
                })
                .collect();
            ledger.append_group(entries).await.unwrap();
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
    ledger.shutdown().await.unwrap();
    db.close().await;
    data
}

fn bench_status(c: &mut Criterion) {
    let n: u64 = if test_mode() { 10_000 } else { 1_000_000 };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let caller = Caller::Local("bench".into());
    let engine = rt.block_on(async {
        let started = Instant::now();
        let data = fixture(dir.path(), n).await;
        eprintln!("fixture: {n} entries in {:?}", started.elapsed());
        let engine = Engine::open_local(config(&data), Arc::new(SystemClock))
            .await
            .unwrap();
        let started = Instant::now();
        let rk = engine.record_keeping_status(&caller).await.unwrap();
        eprintln!(
            "statistics caught up with {} entries in {:?}",
            rk.total_entries,
            started.elapsed()
        );
        assert!(rk.total_entries >= n, "{rk:?}");
        engine
    });
    let mut group = c.benchmark_group(format!("compliance_{n}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(if test_mode() { 1 } else { 10 }));
    for framework in ["soc2", "eu_ai_act"] {
        let status = rt
            .block_on(engine.compliance_status(&caller, framework))
            .unwrap();
        assert!(!status.controls.is_empty(), "{framework}");
        group.bench_function(format!("status_{framework}"), |b| {
            b.iter(|| {
                rt.block_on(engine.compliance_status(&caller, framework))
                    .unwrap()
            });
        });
    }
    group.bench_function("record_keeping", |b| {
        b.iter(|| rt.block_on(engine.record_keeping_status(&caller)).unwrap());
    });
    group.finish();
    rt.block_on(engine.shutdown()).unwrap();
}

criterion_group!(benches, bench_status);
criterion_main!(benches);
