//! The crate's error type.

use crate::merkle::ProofError;
use crate::note::NoteError;

/// What can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database failed.
    #[error("ledger database error: {0}; check the database is reachable and migrated")]
    Database(#[from] sqlx::Error),
    /// A direct read or write of the SQLite file (bypassing sqlx) failed.
    #[error("ledger database error: {0}; {hint}", hint = sqlite_hint(.0))]
    Sqlite(String),
    /// The SQLite ledger was opened on something other than a database file.
    #[error(
        "the ledger needs an SQLite database file, and {0} is not one: open a file path (sqlite://PATH)"
    )]
    NotAFile(String),
    /// Applying migrations failed.
    #[error("ledger migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data contradicts itself (run `lexecon verify-ledger`).
    #[error("ledger data is inconsistent: {0}; run `lexecon verify-ledger` to locate the damage")]
    Corrupt(String),
    /// A checkpoint could not be signed or parsed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// A proof request or proof is invalid.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// An index or size beyond the log.
    #[error("{what} {value} is beyond the log's size {size}: ask for at most the current size")]
    OutOfRange {
        /// What was asked for.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The current tree size.
        size: u64,
    },
    /// A payload that cannot be serialized.
    #[error("payload cannot be serialized as JSON: {0}")]
    Payload(#[from] serde_json::Error),
    /// The writer has stopped.
    #[error("the ledger writer has shut down: reopen the ledger")]
    Closed,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A batch failed; every caller of the batch sees the same cause.
    #[error(transparent)]
    Shared(std::sync::Arc<LedgerError>),
    /// A side row does not fit its table, or the table is badly defined.
    #[error("{0}")]
    SideRow(String),
    /// The entry to redact does not exist.
    #[error("there is no entry {0} to redact")]
    NoSuchEntry(u64),
    /// The entry's payload was redacted already.
    #[error("entry {0} is already redacted")]
    AlreadyRedacted(u64),
    /// A check of a guarded redaction refused it (the message says why); nothing changed.
    #[error("{0}")]
    Refused(String),
}

impl LedgerError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        LedgerError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// What to do about a failed direct SQLite write, by its message.
fn sqlite_hint(message: &str) -> &'static str {
    if message.contains("disk is full") {
        "the disk holding the database is full: free space on it, then retry"
    } else {
        "check the database file is readable and writable"
    }
}
