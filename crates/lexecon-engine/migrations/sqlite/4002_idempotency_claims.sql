-- A Decide with a request_id claims its key before the ledger append (ledger_from = the
-- ledger's size then) and clears ledger_from once the entry is recorded; NULL = recorded.
ALTER TABLE engine_idempotency ADD COLUMN ledger_from INTEGER;
-- The capability token of a stored decision is kept as its claims without the signature
-- (lexecon_capability::unsigned) and signed again when the decision is replayed: a stored
-- token would be a usable credential.
ALTER TABLE engine_idempotency ADD COLUMN token_claims TEXT;
