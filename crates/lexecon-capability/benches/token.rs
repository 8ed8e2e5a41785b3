//! Criterion benchmarks for minting and verifying capability tokens.
//!
//! Targets (shared/design/performance.md): mint ≤ 25 µs, verify ≤ 40 µs. Mint is one
//! canonical encoding, one Ed25519 signature and base64; verify is strict decoding, a
//! revocation lookup, a key lookup, one `verify_strict` and the time and scope checks.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails must stop, not measure nothing"
)]

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lexecon_capability::{Claims, KeyRing, NodeKey, VerifyOptions, mint, verify};
use lexecon_core::{Action, Actor, DecisionId, Timestamp, TokenId, Tool};

fn claims(key: &NodeKey, now: Timestamp, random: u128) -> Claims {
    Claims::builder(
        DecisionId::new(now, random),
        Actor::new("ai_agent:customer_service").unwrap(),
        Action::new("read:customer_data").unwrap(),
        [0x5a; 32],
    )
    .tool(Some(Tool::new("database_query").unwrap()))
    .ttl_secs(300)
    .build(key.key_id(), now, random)
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let key = NodeKey::from_secret_bytes(&[7; 32]);
    let now = Timestamp::from_unix_secs(1_790_000_000);

    // Mint as the engine does per approved decision: build the claims, then sign.
    let mut n = 0u128;
    c.bench_function("token/mint", |b| {
        b.iter(|| {
            n += 1;
            let c = claims(&key, now, n);
            black_box(mint(&key, &c).unwrap())
        })
    });

    // Verify as a downstream service does: a key ring with one retired key, a
    // revocation set of 1,000 ids, and every scope field named.
    let mut ring = KeyRing::new(NodeKey::from_secret_bytes(&[6; 32]));
    ring.rotate(key.clone(), now, 305);
    let revoked: HashSet<TokenId> = (0..1_000).map(|i| TokenId::new(now, i)).collect();
    let token = mint(&key, &claims(&key, now, 1 << 70)).unwrap();
    let opts = VerifyOptions::new(now.add_secs(10))
        .actor("ai_agent:customer_service")
        .action("read:customer_data")
        .tool("database_query");
    c.bench_function("token/verify", |b| {
        b.iter(|| black_box(verify(black_box(&token), &ring, &opts, &revoked).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
