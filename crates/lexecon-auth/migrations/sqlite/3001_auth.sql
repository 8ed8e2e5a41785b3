-- lexecon-auth: users, MFA, sessions, MFA challenges and API keys.
-- Times are microseconds since the Unix epoch; secrets are stored as SHA-256 hashes
-- (sessions, challenges, API keys, backup codes) or Argon2id PHC strings (passwords).
CREATE TABLE auth_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    mfa_enabled INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE auth_mfa (
    user_id TEXT PRIMARY KEY REFERENCES auth_users (id) ON DELETE CASCADE,
    totp_secret BLOB NOT NULL,
    last_used_step INTEGER,
    enrolled_at INTEGER NOT NULL
);

CREATE TABLE auth_backup_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at INTEGER
);
CREATE INDEX auth_backup_codes_user ON auth_backup_codes (user_id);

CREATE TABLE auth_sessions (
    token_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    mfa_verified INTEGER NOT NULL
);

CREATE TABLE auth_mfa_challenges (
    challenge_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE auth_api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
