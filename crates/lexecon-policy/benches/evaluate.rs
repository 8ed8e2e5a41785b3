//! Policy evaluation and compilation benchmarks.
//!
//! `evaluate/N`: one evaluation (with its full explanation) of a request against a
//! policy of N relations shaped like the Cedar team workload in
//! `shared/design/performance.md`: N-1 team rules (`team_i` agents may read
//! `dataset:team_i/*` through approved tools at risk level <= 3) plus one forbid. Targets:
//! p50 <= 1 us at N = 100, and <= 1.5x growth from N = 100 to N = 10,000 (an index, not
//! a scan). `compile/10000`: `CompiledPolicy::new` on the 10,000-relation policy (parsing
//! excluded), which a server pays once per policy version. After criterion, the binary
//! prints p50/p90/p99 of single evaluations at N = 100 and 10,000 (target p99 <= 5 us).

#![expect(
    clippy::panic,
    reason = "a benchmark whose fixture is broken must stop, loudly"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group};
use lexecon_core::ActionRequest;
use lexecon_policy::{CompiledPolicy, Policy, RiskInput};

/// A policy with `n` relations: `n - 1` team permits and one forbid.
fn team_policy(n: usize) -> Policy {
    let mut s = String::from(
        "[policy]\nname = \"teams\"\nversion = \"1\"\nmode = \"strict\"\n\n\
         [[terms]]\nid = \"agents\"\nkind = \"actor\"\nmatch = \"ai_agent:*\"\n\
         [[terms]]\nid = \"deletes\"\nkind = \"action\"\nmatch = \"delete:*\"\n\
         [[relations]]\nid = \"no-deletes\"\nkind = \"forbids\"\nfrom = \"agents\"\nto = \"deletes\"\n",
    );
    for i in 0..n.saturating_sub(1) {
        s += &format!(
            "[[terms]]\nid = \"team{i}\"\nkind = \"actor\"\nmatch = \"ai_agent:team{i}_*\"\n\
             [[terms]]\nid = \"data{i}\"\nkind = \"resource\"\nmatch = \"dataset:team{i}/*\"\n\
             [[relations]]\nid = \"team{i}-reads\"\nkind = \"permits\"\nfrom = \"team{i}\"\nto = \"data{i}\"\n\
             when = {{ tools = [\"database_query\", \"crm_*\"], max_risk_level = 3 }}\n"
        );
    }
    match Policy::parse(&s, "bench.toml") {
        Ok((policy, _)) => policy,
        Err(diags) => panic!("bench policy is invalid: {diags:?}"),
    }
}

fn request(team: usize) -> ActionRequest {
    ActionRequest::new(&format!("ai_agent:team{team}_bot"), "read:records")
        .and_then(|r| r.with_tool("crm_lookup"))
        .and_then(|r| r.with_risk_level(2))
        .and_then(|r| r.with_context("resource", &format!("dataset:team{team}/q3")))
        .unwrap_or_else(|e| panic!("bench request is invalid: {e}"))
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for n in [100, 1_000, 10_000] {
        let policy = CompiledPolicy::new(&team_policy(n));
        let req = request(n / 2);
        let eval = policy.evaluate(&req, RiskInput::default());
        assert_eq!(eval.reasons, [format!("team{}-reads", n / 2)]);
        group.bench_with_input(BenchmarkId::from_parameter(n), &req, |b, req| {
            b.iter(|| policy.evaluate(black_box(req), RiskInput::default()));
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let policy = team_policy(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10000", |b| {
        b.iter(|| CompiledPolicy::new(black_box(&policy)))
    });
    group.finish();
}

/// p50/p90/p99 of single evaluations, each timed with `Instant` (criterion reports
/// means of batches, and the target also has a p99 bound). Each figure includes the
/// ~20-30 ns cost of reading the clock twice.
fn percentiles(iterations: usize) {
    for n in [100, 10_000] {
        let policy = CompiledPolicy::new(&team_policy(n));
        let req = request(n / 2);
        let mut samples: Vec<u128> = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            black_box(policy.evaluate(black_box(&req), RiskInput::default()));
            samples.push(start.elapsed().as_nanos());
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "evaluate/{n} single-call latency over {iterations} calls: p50 {} ns, p90 {} ns, p99 {} ns, max {} ns",
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
    }
}

criterion_group!(benches, evaluate, compile);

fn main() {
    benches();
    // `cargo test --benches` runs this binary without `--bench`: keep that quick.
    let timing = std::env::args().any(|a| a == "--bench");
    percentiles(if timing { 1_000_000 } else { 1_000 });
    Criterion::default().configure_from_args().final_summary();
}
