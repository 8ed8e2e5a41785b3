-- The ledger: leaves (hashed), payloads (erasable), complete-subtree hashes, checkpoints.
CREATE TABLE ledger_leaves (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE TABLE ledger_payloads (
    idx INTEGER PRIMARY KEY,
    payload BLOB,
    redacted_by TEXT,
    redacted_reason TEXT,
    redacted_at INTEGER
);
CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE ledger_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE ledger_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
