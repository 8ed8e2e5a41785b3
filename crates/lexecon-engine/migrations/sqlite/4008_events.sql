-- Governance events for WatchEvents (contract §6): one row per ledger entry that is an
-- event, written by the ledger's side hook in the entry's own transaction, so a row
-- exists exactly when its entry does. `idx` is the entry's index, `event` its event name
-- (docs/oversight.md lists them), `at` the time the row was made (unix microseconds).
-- Decisions are not events and add no row.
CREATE TABLE IF NOT EXISTS engine_events (
    idx BIGINT PRIMARY KEY,
    event TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS engine_events_by_event ON engine_events (event, idx);
