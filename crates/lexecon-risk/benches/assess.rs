//! Benchmarks of `RiskScorer::assess` with the default rules.
//!
//! Serves the performance target "risk assessment <= 1 µs" (shared/design/performance.md):
//! - `assess/typical`: a database delete of personal data with a volume hint and a
//!   caller risk level (five rules fire, every dimension gets factors);
//! - `assess/heavy`: many data classes, several context hints, an LLM cost and upper
//!   case names (the slow path of every lookup);
//! - `assess/minimal`: a bare read with no tool (the floor of the cost).
#![expect(
    clippy::expect_used,
    reason = "a benchmark whose setup fails must stop, not measure nothing"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lexecon_core::ActionRequest;
use lexecon_risk::{RiskConfig, RiskScorer};

/// A named request and the LLM cost it comes with.
type Case = (&'static str, ActionRequest, Option<u64>);

fn requests() -> Result<Vec<Case>, lexecon_core::RequestError> {
    let typical = ActionRequest::new("ai_agent:ops", "delete:customer_records")?
        .with_tool("database_query")?
        .with_data_class("pii")?
        .with_risk_level(3)?
        .with_context("volume", "10000")?;
    let mut heavy = ActionRequest::new("ai_agent:ops", "EXPORT:patient_records")?
        .with_tool("S3_Bucket")?
        .with_risk_level(4)?
        .with_context("volume", "250000")?
        .with_context("recipient", "external")?
        .with_context("region", "eu-west")?
        .with_context("destination_region", "us-east")?
        .with_context("environment", "production")?;
    for class in [
        "pii",
        "PHI",
        "financial",
        "biometric",
        "children",
        "mystery",
        "pii",
    ] {
        heavy = heavy.with_data_class(class)?;
    }
    let minimal = ActionRequest::new("ai_agent:ops", "read:docs")?;
    Ok(vec![
        ("typical", typical, None),
        ("heavy", heavy, Some(2_500_000)),
        ("minimal", minimal, None),
    ])
}

fn bench(c: &mut Criterion) {
    let scorer = RiskScorer::new(RiskConfig::default()).expect("the default config is valid");
    let requests = requests().expect("the bench requests are valid");
    let mut group = c.benchmark_group("assess");
    for (name, req, cost) in &requests {
        group.bench_function(*name, |b| {
            b.iter(|| scorer.assess(black_box(req), black_box(*cost)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
