-- Redacted payloads, so that counting them (GetRecordKeepingStatus, compliance facts)
-- reads this index instead of the whole payload table. Partial: an append (whose payload
-- is never redacted) does not touch it.
CREATE INDEX IF NOT EXISTS ledger_payloads_redacted ON ledger_payloads (idx) WHERE redacted_by IS NOT NULL;
