-- The ledger: leaves (hashed), payloads (erasable), complete-subtree hashes, checkpoints.
CREATE TABLE ledger_leaves (
    idx BIGINT PRIMARY KEY,
    leaf BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL
);
CREATE TABLE ledger_payloads (
    idx BIGINT PRIMARY KEY,
    payload BYTEA,
    redacted_by TEXT,
    redacted_reason TEXT,
    redacted_at BIGINT
);
CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE ledger_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE ledger_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
