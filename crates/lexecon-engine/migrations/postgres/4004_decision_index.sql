-- The decision index (contract §7, QueryDecisions): one row per decision entry, written
-- as a side row of the entry in its own transaction, so a row exists exactly when its
-- entry does. `idx` is the entry's ledger index; `decided_at` unix microseconds;
-- `outcome` 1 approved, 2 denied, 3 escalated; `reasons` a JSON array of strings;
-- `policy_hash` 32 bytes. Every column but idx, decision_id, decided_at and outcome may be
-- erased (NULL) when the entry's payload is redacted. Two secondary indexes (engineering.md
-- allows three: time, actor, outcome): time and actor. An outcome index cost Decide
-- more than it saved; an outcome filter reads the time or idx order and skips. A decision is found by id through the time
-- index: its ULID carries the millisecond of decided_at.
CREATE TABLE IF NOT EXISTS engine_decision_index (
    idx BIGINT PRIMARY KEY,
    decision_id TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    principal TEXT,
    actor TEXT,
    action TEXT,
    tool TEXT,
    outcome SMALLINT NOT NULL,
    risk_score BIGINT,
    policy_hash BYTEA,
    reasons TEXT,
    escalation_id TEXT,
    override_id TEXT
);
CREATE INDEX IF NOT EXISTS engine_decision_index_by_time ON engine_decision_index (decided_at, idx);
CREATE INDEX IF NOT EXISTS engine_decision_index_by_actor ON engine_decision_index (actor, idx);
-- Progress of the backfill of decisions written before the index existed: entries below
-- `upto` (the ledger size when the backfill first ran) are scanned from `next`.
CREATE TABLE IF NOT EXISTS engine_decision_index_backfill (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    next BIGINT NOT NULL,
    upto BIGINT NOT NULL
);
