-- Evidence (contract §7): content-addressed artifacts, their bytes in chunks of at most
-- 1 MiB, and their links to decisions and controls. engine_evidence and
-- engine_evidence_links rows are ledger side rows: they commit in the transaction of
-- the evidence_registered entry whose index is `idx`. Chunks are written before that
-- entry; chunks without an engine_evidence row are invisible.
CREATE TABLE IF NOT EXISTS engine_evidence (
    evidence_id       TEXT PRIMARY KEY,
    sha256            BYTEA NOT NULL,
    artifact_type     TEXT NOT NULL,
    media_type        TEXT NOT NULL,
    title             TEXT NOT NULL,
    size              BIGINT NOT NULL,
    signature         BYTEA,
    signer_public_key BYTEA,
    registered_by     TEXT NOT NULL,
    registered_at     BIGINT NOT NULL,
    idx               BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS engine_evidence_by_idx ON engine_evidence (idx);
CREATE INDEX IF NOT EXISTS engine_evidence_by_type ON engine_evidence (artifact_type, idx);
CREATE TABLE IF NOT EXISTS engine_evidence_chunks (
    evidence_id TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (evidence_id, seq)
);
-- Stored out of line without compression: artifacts are often compressed already, and
-- compressing 1 MiB chunks would cost more than it saves.
ALTER TABLE engine_evidence_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS engine_evidence_links (
    evidence_id TEXT NOT NULL,
    link_kind   TEXT NOT NULL,
    target      TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    PRIMARY KEY (evidence_id, link_kind, target)
);
CREATE INDEX IF NOT EXISTS engine_evidence_links_by_target
    ON engine_evidence_links (link_kind, target);
