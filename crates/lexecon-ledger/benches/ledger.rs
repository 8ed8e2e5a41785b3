//! Criterion benches of the ledger (written below).
fn main() {}
