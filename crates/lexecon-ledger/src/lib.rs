//! The tamper-evident ledger.
//!
//! Owns ledger entries and their leaf encoding (a hash chain inside an RFC 6962 Merkle
//! tree), signed checkpoints in the C2SP signed-note format, inclusion and consistency
//! proofs and their verifiers, full verification, the export bundle, redaction, and the
//! `LedgerStore` trait with SQLite and PostgreSQL implementations.
