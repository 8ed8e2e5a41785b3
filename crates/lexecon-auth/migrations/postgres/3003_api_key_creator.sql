-- Who created each API key: the creator's ledger name (`key:<name>`, `user:<name>` or
-- `local:<user>`), recorded with every escalation approval made with the key. NULL for a
-- key created before this column existed (shown as "unknown").
ALTER TABLE auth_api_keys ADD COLUMN created_by TEXT;
