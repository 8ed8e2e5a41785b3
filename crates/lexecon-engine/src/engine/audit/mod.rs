//! Audit: decision queries over the decision index, and verifiable audit exports
//! (contract §7).
//!
//! - `query.rs`: `Engine::query_decisions`, newest first with cursor pages that stay
//!   correct while decisions arrive (index rows commit with their leaf, in index order).
//! - `export.rs`: `Engine::export_audit`, a stream of bundle chunks
//!   (`docs/audit-export.md`), itself an `audit_exported` ledger entry, and
//!   `Engine::list_audit_exports`.
//! - `backfill.rs`: indexes decisions written before the index existed, resumably.
//! - `store.rs`: the SQL behind them, once for SQLite and PostgreSQL.

mod backfill;
mod export;
mod query;
mod store;

#[cfg(test)]
mod tests;

pub use backfill::BackfillProgress;
pub use export::{AuditExportRecord, AuditExportStream, BundleChunk, ExportQuery, MAX_CHUNK_BYTES};
pub use query::{DecisionQuery, DecisionRecord, MAX_SCAN_ROWS};
