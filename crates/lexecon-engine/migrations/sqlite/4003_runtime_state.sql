-- Run-time state that every replica shares (product.md, "Scaling past one machine").
-- Policy versions keep their size, so ListPolicyVersions reports it for every version.
ALTER TABLE engine_policies ADD COLUMN terms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE engine_policies ADD COLUMN relations INTEGER NOT NULL DEFAULT 0;
-- A request_id remembers the SHA-256 of the request it was first used for: the same key
-- with another request is refused instead of answered with the first decision.
ALTER TABLE engine_idempotency ADD COLUMN fingerprint BLOB;
-- Settings changed at run time (UpdateLimits: name 'budget'), with the hash of the file
-- section they were last loaded from; version grows with every change so replicas
-- notice it.
CREATE TABLE IF NOT EXISTS engine_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    origin      TEXT NOT NULL,
    file_hash   TEXT,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
);
