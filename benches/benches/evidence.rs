//! RegisterEvidence of a 1 MiB artifact in process: size check, SHA-256, the chunk
//! written, and the durable `evidence_registered` append with its side rows (SQLite,
//! WAL, synchronous=FULL). Target (performance.md): at most 20 ms per registration.
//! Every iteration registers new bytes (a counter in the first 8 bytes), so each one
//! is a first registration, never the cheaper duplicate. With
//! `LEXECON_BENCH_DATABASE_URL` set (a PostgreSQL database the benchmark may write
//! to), the same on PostgreSQL too.

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
use lexecon_engine::init::{InitOptions, init};
use lexecon_engine::{ArtifactType, Caller, Engine, EvidenceInput};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZE: usize = 1 << 20;

async fn engine(dir: &std::path::Path, database_url: Option<String>) -> Arc<Engine> {
    let data = dir.join("data");
    let options = InitOptions {
        data_dir: data.clone(),
        node_id: "bench".into(),
        rsa: false,
        force: false,
    };
    init(&options, Arc::new(SystemClock)).await.unwrap();
    let mut config = Config::load(&Sources {
        data_dir: Some(data),
        config_file: None,
    })
    .unwrap();
    if database_url.is_some() {
        config.database.url = database_url;
    }
    Engine::open(config, Arc::new(SystemClock)).await.unwrap()
}

fn bench_one(c: &mut Criterion, name: &str, database_url: Option<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(engine(dir.path(), database_url));
    let mut content: Vec<u8> = (0..SIZE as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    let mut counter: u64 = 0;
    let mut group = c.benchmark_group("register_evidence");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let caller = Caller::Local("bench".into());
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    counter += 1;
                    content[..8].copy_from_slice(&counter.to_le_bytes());
                    let start = Instant::now();
                    let registered = engine
                        .register_evidence(
                            &caller,
                            EvidenceInput {
                                artifact_type: Some(ArtifactType::TestResult),
                                content: &content,
                                media_type: "application/octet-stream".into(),
                                title: "bench".into(),
                                ..EvidenceInput::default()
                            },
                        )
                        .await
                        .unwrap();
                    total += start.elapsed();
                    assert!(registered.newly_registered);
                }
                total
            })
        });
    });
    group.finish();
    rt.block_on(async { engine.shutdown().await.unwrap() });
}

fn bench_register(c: &mut Criterion) {
    bench_one(c, "1_MiB_durable_sqlite", None);
    if let Ok(url) = std::env::var("LEXECON_BENCH_DATABASE_URL")
        && !url.is_empty()
    {
        bench_one(c, "1_MiB_postgres", Some(url));
    }
}

criterion_group!(benches, bench_register);
criterion_main!(benches);
