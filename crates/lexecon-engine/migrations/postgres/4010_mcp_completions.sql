-- MCP gateway completions (contract §11, "Audit"): one row per mcp_completion ledger
-- entry, written as a side row in the entry's own transaction, so a row exists exactly
-- when its entry does. `idx` is the entry's index; `decision_id` the APPROVED decision
-- that let the call through (UNIQUE: a decision has one completion, and the constraint
-- also serves the lookups by decision_id of RecordCompletion and QueryDecisions);
-- `is_error` 0 or 1; `duration_us` microseconds; `result_sha256` 32 bytes;
-- `payload_json` the entry's payload (erased when the entry is redacted).
CREATE TABLE IF NOT EXISTS engine_mcp_completions (
    idx BIGINT PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    is_error SMALLINT,
    duration_us BIGINT,
    result_sha256 BYTEA,
    payload_json TEXT
);
