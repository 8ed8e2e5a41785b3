-- lexecon-budget: spend per scope and month, sliding request windows, reservations.
-- Amounts are integer micro-dollars; times are microseconds since the Unix epoch.

-- One row per scope, locked by every operation touching the scope (PostgreSQL).
CREATE TABLE budget_scopes (
    scope TEXT PRIMARY KEY
);

CREATE TABLE budget_spend (
    scope TEXT NOT NULL,
    period TEXT NOT NULL,
    spent BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    soft_sent BIGINT NOT NULL DEFAULT 0,
    over_sent BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, period)
);

CREATE TABLE budget_window (
    scope TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    PRIMARY KEY (scope, reservation_id)
);
CREATE INDEX budget_window_scope_at ON budget_window (scope, at);
CREATE INDEX budget_window_reservation ON budget_window (reservation_id);

CREATE TABLE budget_reservations (
    id TEXT PRIMARY KEY,
    period TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    reserved_micros BIGINT NOT NULL,
    reserved_tokens BIGINT NOT NULL,
    input_price BIGINT NOT NULL,
    output_price BIGINT NOT NULL,
    state TEXT NOT NULL,
    charged_micros BIGINT NOT NULL DEFAULT 0,
    released_micros BIGINT NOT NULL DEFAULT 0,
    closed_at BIGINT
);
CREATE INDEX budget_reservations_open ON budget_reservations (state, expires_at);
CREATE INDEX budget_reservations_closed ON budget_reservations (closed_at);
