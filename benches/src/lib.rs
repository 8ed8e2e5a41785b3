//! Cross-crate benchmarks live in `benches/` of this package; see `docs/performance.md`.
