//! Benchmarks of the auth hot path.
fn main() {}
