-- Audit exports (contract §7, ListAuditExports): one row per audit_exported entry,
-- written as its side row. `exported_at` unix microseconds; `manifest_sha256` 32 bytes;
-- `filters` the export's filters as JSON.
CREATE TABLE IF NOT EXISTS engine_audit_exports (
    idx BIGINT PRIMARY KEY,
    export_id TEXT NOT NULL UNIQUE,
    exported_by TEXT NOT NULL,
    exported_at BIGINT NOT NULL,
    tree_size BIGINT NOT NULL,
    decisions BIGINT NOT NULL,
    manifest_sha256 BYTEA NOT NULL,
    filters TEXT NOT NULL
);
