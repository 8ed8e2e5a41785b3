-- Compliance (contract §8). Holds, releases, interventions and verifications are side
-- rows of the `compliance` ledger entry that records them (`idx` is that entry's index),
-- so a change and its entry commit together. Rows are never deleted.

-- A legal hold: an index range [from_idx, to_idx) (to_idx NULL = unbounded; both NULL =
-- no range), decision ids (a JSON array of strings), and/or an actor glob ('' = none).
CREATE TABLE IF NOT EXISTS engine_legal_holds (
    hold_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    reason TEXT NOT NULL,
    matter TEXT NOT NULL,
    from_idx BIGINT,
    to_idx BIGINT,
    decision_ids TEXT NOT NULL,
    actor_glob TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS engine_legal_hold_releases (
    hold_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    released_by TEXT NOT NULL,
    released_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);

-- A person's act on one decision (EU AI Act Art. 14).
CREATE TABLE IF NOT EXISTS engine_interventions (
    intervention_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    decision_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    halt_id TEXT,
    override_id TEXT,
    token_id TEXT
);
CREATE INDEX IF NOT EXISTS engine_interventions_by_time ON engine_interventions (recorded_at);

-- Recorded full verifications of the ledger, one per ledger_verified entry; the newest
-- is the row with the largest idx. trusted_key_ring: 1 when the verification trusted
-- the node's key ring from the data directory.
CREATE TABLE IF NOT EXISTS engine_ledger_verifications (
    idx BIGINT PRIMARY KEY,
    verified_at BIGINT NOT NULL,
    valid BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    checkpoints BIGINT NOT NULL,
    trusted_key_ring BIGINT NOT NULL,
    basis TEXT NOT NULL,
    verified_by TEXT NOT NULL
);

-- Ledger statistics kept as entries are appended: per entry kind, the count and the
-- first and last entry (index, unix microseconds), over the entries below `through` of
-- engine_ledger_stats_mark. A tailer reads only the entries after the mark and advances
-- it with a guarded update, so replicas never count an entry twice.
CREATE TABLE IF NOT EXISTS engine_ledger_stats (
    kind TEXT PRIMARY KEY,
    entries BIGINT NOT NULL,
    first_idx BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_idx BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_ledger_stats_mark (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    through BIGINT NOT NULL
);
INSERT INTO engine_ledger_stats_mark (id, through) VALUES (1, 0) ON CONFLICT DO NOTHING;
