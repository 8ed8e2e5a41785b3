//! Budget + rate check benchmarks (target: memory store ≤ 1 µs; Redis: one round trip).
//!
//! - `memory/authorize`: one `BudgetManager::authorize` on the memory store with a global
//!   budget, per-user budget, RPM and TPM limits and a role, the clock moving 10 ms per
//!   call (100 calls/s: the 60 s windows hold 6,000 entries and the store an hour's
//!   360,000 closed reservations, after a warm-up to that steady state) and the sweeper run every
//!   simulated second outside the timed part. Serves "budget + rate check, memory
//!   store ≤ 1 µs".
//! - `memory/authorize_settle`: the whole two-phase cycle on the memory store.
//! - `redis/authorize`: the same check against the Redis of `LEXECON_TEST_REDIS_URL`
//!   (skipped when unset); it also prints how many Redis commands one check costs,
//!   counted from the server's `total_commands_processed`. Serves "Redis: one round trip".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lexecon_budget::{
    BudgetConfig, BudgetManager, BudgetStore, MemoryBudgetStore, RedisBudgetStore,
};
use lexecon_core::{LlmUsage, ManualClock, Timestamp};

const CONFIG: &str = r#"
monthly_budget = 1000000
soft_limit_pct = 0.9
rpm_limit = 1000000
tpm_limit = 1000000000
max_tokens_per_request = 100000
reservation_ttl_secs = 60
[global]
monthly_budget = 9000000
"#;

fn usage() -> LlmUsage {
    LlmUsage {
        model: "gpt-4o-mini".to_owned(),
        user_id: Some("alice".to_owned()),
        roles: vec!["engineering".to_owned()],
        estimated_input_tokens: 500,
        max_output_tokens: 500,
    }
}

/// Polls a future the memory store completes without waiting.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn manager(store: Arc<dyn BudgetStore>, clock: &ManualClock) -> BudgetManager {
    let config = BudgetConfig::from_toml(CONFIG).unwrap();
    BudgetManager::new(config, store, Arc::new(clock.clone())).unwrap()
}

fn memory(c: &mut Criterion) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(1_795_507_200));
    let m = manager(Arc::new(MemoryBudgetStore::new()), &clock);
    let u = usage();
    // One call per 10 simulated milliseconds, with the sweeper running every simulated
    // second as a server's would (outside the timed part: it is background work), so
    // windows and open reservations stay at their steady state.
    let mut calls = 0u64;
    let mut step = || {
        clock.advance_micros(10_000);
        calls += 1;
        if calls.is_multiple_of(100) {
            now(m.sweep()).unwrap();
        }
    };
    for _ in 0..400_000 {
        step();
        now(m.authorize(&u)).unwrap();
    }
    c.bench_function("memory/authorize", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                step();
                let start = Instant::now();
                black_box(now(m.authorize(black_box(&u))).unwrap());
                total += start.elapsed();
            }
            total
        })
    });
    c.bench_function("memory/authorize_settle", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                step();
                let start = Instant::now();
                let a = now(m.authorize(black_box(&u))).unwrap();
                black_box(now(m.settle(a.reservation_id, 400, 300)).unwrap());
                total += start.elapsed();
            }
            total
        })
    });
}

/// Calls of `command` the server has counted (`INFO commandstats`).
fn command_calls(
    conn: &mut deadpool_redis::Connection,
    rt: &tokio::runtime::Runtime,
    command: &str,
) -> u64 {
    let info: String = rt
        .block_on(
            deadpool_redis::redis::cmd("INFO")
                .arg("commandstats")
                .query_async(conn),
        )
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn redis(c: &mut Criterion) {
    let Ok(url) = std::env::var("LEXECON_TEST_REDIS_URL") else {
        eprintln!("skipping redis/authorize: LEXECON_TEST_REDIS_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let prefix = format!("lexecon_bench:{}:", std::process::id());
    let clock = ManualClock::new(Timestamp::from_unix_secs(1_795_507_200));
    let m = manager(
        Arc::new(RedisBudgetStore::new(pool.clone(), prefix)),
        &clock,
    );
    let u = usage();
    let mut conn = rt.block_on(pool.get()).unwrap();
    // Warm up (loads the script), then count the round trips of 1,000 checks: each is
    // one EVALSHA; the commands the script runs inside Redis are not round trips.
    rt.block_on(m.authorize(&u)).unwrap();
    let counted = ["evalsha", "eval", "hgetall", "hmget", "zadd", "hincrby"];
    let before: Vec<u64> = counted
        .iter()
        .map(|c| command_calls(&mut conn, &rt, c))
        .collect();
    for _ in 0..1_000 {
        clock.advance_micros(1_000);
        rt.block_on(m.authorize(&u)).unwrap();
    }
    for (c, b) in counted.iter().zip(before) {
        let per_check = (command_calls(&mut conn, &rt, c) - b) as f64 / 1_000.0;
        eprintln!(
            "redis/authorize: {per_check:.3} {c} per check (server-wide; script-internal calls included except for evalsha)"
        );
    }
    c.bench_function("redis/authorize", |b| {
        b.iter(|| {
            clock.advance_micros(1_000);
            black_box(rt.block_on(m.authorize(black_box(&u))).unwrap());
        })
    });
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
