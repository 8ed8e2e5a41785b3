-- Engine state: policy history, token revocations, idempotency of Decide.
CREATE TABLE IF NOT EXISTS engine_policies (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    hash        BLOB NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    mode        TEXT NOT NULL,
    source      TEXT NOT NULL,
    loaded_at   INTEGER NOT NULL,
    loaded_by   TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_revocations (
    token_id    TEXT PRIMARY KEY,
    revoked_at  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    revoked_by  TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_idempotency (
    principal   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    decision    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (principal, request_id)
);
