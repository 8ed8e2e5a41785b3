-- Human oversight (contract §6). Every row is a side row of the oversight ledger entry
-- that records it (`idx` is that entry's index), so a state change and its entry commit
-- together. Rows are never deleted. `claim_at`/`claim_by` hold a 30-second claim on a
-- contended transition (resume, revoke, resolve, expire, warn, lapse, use a grant):
-- exactly one caller or replica wins it, and the side row that makes the change clears it.

CREATE TABLE IF NOT EXISTS engine_halts (
    halt_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    actor_glob TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at BIGINT NOT NULL,
    claim_at BIGINT,
    claim_by TEXT
);

CREATE TABLE IF NOT EXISTS engine_halt_ends (
    halt_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    ended_by TEXT NOT NULL,
    ended_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS engine_overrides (
    override_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    kind TEXT NOT NULL,
    effect TEXT NOT NULL,
    actor_glob TEXT NOT NULL,
    action_glob TEXT NOT NULL,
    tool_glob TEXT NOT NULL,
    justification TEXT NOT NULL,
    created_by TEXT NOT NULL,
    creator_role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    claim_at BIGINT,
    claim_by TEXT
);

CREATE TABLE IF NOT EXISTS engine_override_revocations (
    override_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    revoked_by TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);

-- One row per escalated decision, immutable. `grant_fp` is SHA-256 over the request's
-- actor, action, tool, data classes and context: what a grant is good for.
CREATE TABLE IF NOT EXISTS engine_escalations (
    escalation_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    decision_id TEXT NOT NULL,
    principal_key TEXT NOT NULL,
    principal_name TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    tool TEXT,
    request_json TEXT NOT NULL,
    grant_fp BYTEA NOT NULL,
    policy_hash BYTEA NOT NULL,
    priority TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    warn_at BIGINT NOT NULL,
    approvals_required BIGINT NOT NULL,
    override_id TEXT
);
CREATE INDEX IF NOT EXISTS engine_escalations_grant ON engine_escalations (principal_key, grant_fp);

-- Approvals (approve = 1) and the denial (approve = 0) of each escalation.
CREATE TABLE IF NOT EXISTS engine_escalation_approvals (
    escalation_id TEXT NOT NULL,
    approver_key TEXT NOT NULL,
    approve BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    approver TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    key_creator TEXT,
    mfa_verified BIGINT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (escalation_id, approver_key, approve)
);

-- The current state of each escalation, every column rewritten by each transition's
-- upsert; `idx` is the entry of the latest transition (`last_event`), and the
-- `*_idx` columns keep the indexes of the earlier ones.
CREATE TABLE IF NOT EXISTS engine_escalation_state (
    escalation_id TEXT PRIMARY KEY,
    idx BIGINT NOT NULL,
    state TEXT NOT NULL,
    last_event TEXT NOT NULL,
    approvals BIGINT NOT NULL,
    warned_idx BIGINT,
    resolved_by TEXT,
    resolution_reason TEXT,
    resolved_at BIGINT,
    resolved_idx BIGINT,
    grant_expires_at BIGINT,
    grant_used_at BIGINT,
    grant_decision_id TEXT,
    grant_idx BIGINT,
    token_claims TEXT,
    token_id TEXT,
    token_expires_at BIGINT,
    reservation_id TEXT,
    claim_at BIGINT,
    claim_by TEXT
);
CREATE INDEX IF NOT EXISTS engine_escalation_state_state ON engine_escalation_state (state);
