-- lexecon-auth: users, MFA, sessions, MFA challenges and API keys.
-- Times are microseconds since the Unix epoch; secrets are stored as SHA-256 hashes
-- (sessions, challenges, API keys, backup codes) or Argon2id PHC strings (passwords).
CREATE TABLE auth_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    mfa_enabled BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE auth_mfa (
    user_id TEXT PRIMARY KEY REFERENCES auth_users (id) ON DELETE CASCADE,
    totp_secret BYTEA NOT NULL,
    last_used_step BIGINT,
    enrolled_at BIGINT NOT NULL
);

CREATE TABLE auth_backup_codes (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at BIGINT
);
CREATE INDEX auth_backup_codes_user ON auth_backup_codes (user_id);

CREATE TABLE auth_sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    mfa_verified BIGINT NOT NULL
);

CREATE TABLE auth_mfa_challenges (
    challenge_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE auth_api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
