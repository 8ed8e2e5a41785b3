//! The tamper-evident ledger.
//!
//! Owns ledger entries and their leaf encoding (a hash chain inside an RFC 6962 Merkle
//! tree), signed checkpoints in the C2SP signed-note format, inclusion and consistency
//! proofs and their verifiers, full verification, the export bundle, redaction, and the
//! `LedgerStore` trait with SQLite and PostgreSQL implementations.
//!
//! Invariants owned here (`docs/architecture.md`): "acknowledged means durable" is the
//! SIGKILL crash test and "the ledger proves itself" the tamper tests, both in
//! `tests/ledger.rs`, run against SQLite files and PostgreSQL.
//!
//! The byte-level format (leaf encoding, hashing, checkpoints, bundle) is specified in
//! `docs/ledger-format.md`; an auditor can write an independent verifier from it.
//!
//! ```text
//! Ledger::open(store, CheckpointSigner, LedgerConfig, clock)
//!   append(kind, payload) / append_entry(.., side rows) / append_group(..)
//!                          ──► writer task: group commit, one transaction per batch
//!                              └─► LedgerStore::append_batch (SQLite | PostgreSQL)
//!   inclusion_proof / consistency_proof ──► O(log n) stored subtree hashes
//! verify(store, &VerifyOptions) / export(store, dir, from, to) / verify_bundle(dir, ..)
//! ```

mod audit_bundle;
mod entry;
mod error;
mod export;
mod ledger;
pub mod merkle;
mod note;
mod postgres;
mod redact;
mod side;
mod sql;
mod sqlite;
mod sqlite_settings;
mod store;
mod verify;

#[cfg(test)]
mod tests;

pub use audit_bundle::{
    AUDIT_BUNDLE_FORMAT, AuditBundleReport, AuditFormat, AuditLine, AuditVerifyOptions,
    CSV_COLUMNS, DecisionColumns, MANIFEST_NOTE_TITLE, Manifest, ManifestFile, manifest_note_body,
    sign_manifest, verify_audit_bundle,
};
pub use entry::{
    Entry, EntryKind, LEAF_LEN, LEAF_VERSION, Leaf, LeafError, Tombstone, UnknownKind, payload_hash,
};
pub use error::LedgerError;
pub use export::{BundleEntry, ExportSummary, export, verify_bundle};
pub use ledger::{
    CommitObserver, ConsistencyProof, InclusionProof, Ledger, LedgerConfig, Receipt, SideHook,
    VKEYS_META, consistency_proof, inclusion_proof, inclusion_proofs, root_at,
};
pub use merkle::{Hash, ProofError, verify_consistency, verify_inclusion};
pub use note::{
    Checkpoint, CheckpointSigner, ED25519_TYPE, NoteError, NoteVerifier, RSA_PSS_TYPE,
    RsaNoteVerifier, SignedCheckpoint,
};
pub use postgres::{PgLedgerStore, migrate_postgres};
pub use redact::{GuardCheck, GuardRows, RedactErase, RedactGuard, RedactPlan};
pub use side::{SideRow, SideTable, SideType, SideValue};
pub use sqlite::{SqliteLedgerStore, migrate_sqlite, open_sqlite};
pub use sqlite_settings::sqlite_options;
pub use store::{
    BatchCommitted, BatchPlan, BoxFuture, CheckpointHook, Head, LedgerStore, NewEntry,
    StoredCheckpoint, TreeState, load_state,
};
pub use verify::{
    Audit, EntryHashes, EntryView, Problem, Progress, VerifyOptions, VerifyReport,
    stored_verifiers, verify, verify_note, verify_rsa_cosignatures,
};
