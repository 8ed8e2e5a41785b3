//! The whole Decide pipeline in process: validate, risk, policy, token, durable ledger
//! append (SQLite, WAL, synchronous=FULL, group commit). Target (performance.md):
//! at least 40k decisions/s on 2 cores. Each iteration keeps 64 decisions in flight, as a
//! loaded server would (64 tasks, each deciding 16 times in a row), so group commit
//! batches them while the next ones are computed; throughput is 1,024 / time. The
//! allocator is the `lexecon` binary's (mimalloc).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lexecon_core::SystemClock;
use lexecon_engine::config::{Config, Sources};
use lexecon_engine::init::{InitOptions, init};
use lexecon_engine::{ActionInput, Caller, DecideInput, Engine};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IN_FLIGHT: u64 = 64;
const PER_TASK: u64 = 16;

fn request() -> DecideInput {
    DecideInput {
        action: ActionInput {
            actor: "ai_agent:customer_service".into(),
            action: "read:customer_data".into(),
            tool: "database_query".into(),
            data_classes: vec!["pii".into()],
            ..ActionInput::default()
        },
        request_id: String::new(),
    }
}

fn bench_decide(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = rt.block_on(async {
        let options = InitOptions {
            data_dir: data.clone(),
            node_id: "bench".into(),
            rsa: false,
            force: false,
        };
        init(&options, Arc::new(SystemClock)).await.unwrap();
        let config = Config::load(&Sources {
            data_dir: Some(data.clone()),
            config_file: None,
        })
        .unwrap();
        Engine::open(config, Arc::new(SystemClock)).await.unwrap()
    });
    let mut group = c.benchmark_group("decide_in_process");
    group.throughput(Throughput::Elements(IN_FLIGHT * PER_TASK));
    group.sample_size(20);
    group.bench_function("64_in_flight_durable_sqlite", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let mut tasks = tokio::task::JoinSet::new();
                    for _ in 0..IN_FLIGHT {
                        let engine = Arc::clone(&engine);
                        tasks.spawn(async move {
                            let caller = Caller::Local("bench".into());
                            for _ in 0..PER_TASK {
                                engine.decide(&caller, request()).await.unwrap();
                            }
                        });
                    }
                    while let Some(done) = tasks.join_next().await {
                        done.unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    });
    group.finish();
    rt.block_on(async { engine.shutdown().await.unwrap() });
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
