//! The cost of oversight on the Decide path, in process: the same durable Decide load
//! as `decide.rs` (64 decisions in flight, 1,024 per iteration, SQLite WAL,
//! synchronous=FULL), against an engine with no override and against one with 100
//! active overrides that do not match the request (50 with literal actors, 50 with
//! actor globs, so both the bucketed and the wildcard paths of the override index are
//! walked), in the same run. No halt is placed in either. Target (performance.md): the
//! 100 overrides cost at most 5%.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lexecon_core::{Clock as _, SystemClock};
use lexecon_engine::config::{Config, Sources};
use lexecon_engine::init::{InitOptions, init};
use lexecon_engine::{
    ActionInput, Caller, DecideInput, Engine, OverrideEffect, OverrideInput, OverrideKind,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IN_FLIGHT: u64 = 64;
const PER_TASK: u64 = 16;
const OVERRIDES: usize = 100;

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

async fn open(dir: &std::path::Path) -> Arc<Engine> {
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

/// 100 active overrides, none of which matches [`request`].
async fn add_overrides(engine: &Engine) {
    let root = Caller::Local("bench".into());
    let expires_at = SystemClock.now().add_secs(3600);
    for i in 0..OVERRIDES {
        let actor = if i % 2 == 0 {
            format!("ai_agent:other_{i}")
        } else {
            format!("ai_agent:team_{i}_*")
        };
        engine
            .create_override(
                &root,
                OverrideInput {
                    kind: OverrideKind::TimeLimitedException,
                    effect: if i % 3 == 0 {
                        OverrideEffect::Deny
                    } else {
                        OverrideEffect::Approve
                    },
                    actor,
                    action: format!("write:records_{i}"),
                    tool: String::new(),
                    justification: format!("benchmark override {i}: matches nothing decided"),
                    expires_at,
                },
            )
            .await
            .unwrap();
    }
}

/// One iteration: 64 tasks deciding 16 times each.
async fn load(engine: &Arc<Engine>) -> Duration {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let engine = Arc::clone(engine);
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
    start.elapsed()
}

fn bench_oversight(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let plain_dir = tempfile::tempdir().unwrap();
    let overridden_dir = tempfile::tempdir().unwrap();
    let (plain, overridden) = rt.block_on(async {
        let plain = open(plain_dir.path()).await;
        let overridden = open(overridden_dir.path()).await;
        add_overrides(&overridden).await;
        (plain, overridden)
    });
    let mut group = c.benchmark_group("decide_oversight");
    group.throughput(Throughput::Elements(IN_FLIGHT * PER_TASK));
    group.sample_size(20);
    for (name, engine) in [
        ("no_overrides", &plain),
        ("100_active_overrides", &overridden),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += load(engine).await;
                    }
                    total
                })
            });
        });
    }
    group.finish();
    rt.block_on(async {
        plain.shutdown().await.unwrap();
        overridden.shutdown().await.unwrap();
    });
}

criterion_group!(benches, bench_oversight);
criterion_main!(benches);
