//! The SQLite and PostgreSQL [`AuthStore`]s: the same SQL (`$n` placeholders work in
//! both through sqlx), generated for each pool type by one macro.

use std::sync::Arc;

use lexecon_core::Timestamp;
use sqlx::Row as _;

use crate::at_rest::{SecretKeys, SecretsCensus, StoredForm, stored_form};

use crate::store::{
    ApiKeyRecord, AuthStore, ChallengeRecord, MfaRecord, SessionRecord, UserRecord,
};
use crate::{Role, StoreError};

fn map_insert(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}

fn hash32(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt(what))
}

fn role(text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt("role"))
}

/// A JSON array of strings, as the binding columns hold them.
fn string_list(text: &str, what: &'static str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt(what))
}

/// `list` as a JSON array of strings.
fn list_json(list: &[String]) -> String {
    // Serializing strings cannot fail; "[]" would be the harmless fallback anyway.
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

fn opt_ts(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(Timestamp::from_unix_micros)
}

/// The associated-data context of TOTP seeds (with the user id as the owner).
const TOTP_CONTEXT: &str = "lexecon/totp_seed/v1";

fn totp_what(user_id: &str) -> String {
    format!("TOTP seed of user {user_id}")
}

const USER_COLUMNS: &str =
    "id, username, password_hash, role, created_at, failed_logins, locked_until, mfa_enabled";
const SESSION_COLUMNS: &str =
    "token_hash, user_id, created_at, last_seen_at, expires_at, revoked_at, mfa_verified";
const KEY_COLUMNS: &str = "key_id, name, role, key_hash, created_at, expires_at, revoked_at, actors, llm_roles, created_by";

macro_rules! auth_store {
    ($name:ident, $pool:ty, $row:ty, $dir:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            keys: Arc<SecretKeys>,
        }

        impl $name {
            /// A store on an open pool (run [`Self::migrate`] once first) that seals TOTP
            /// seeds under `keys`' current master key and opens them with any of its keys.
            /// Run [`Self::seal_legacy_secrets`] once after opening.
            pub fn new(pool: $pool, keys: Arc<SecretKeys>) -> Self {
                $name { pool, keys }
            }

            /// How many TOTP seeds are stored in the clear and under which master key ids
            /// the others are sealed (no key needed: only the stored prefixes are read).
            pub async fn secrets_census(pool: &$pool) -> Result<SecretsCensus, StoreError> {
                let rows = sqlx::query("SELECT totp_secret FROM auth_mfa").fetch_all(pool).await?;
                let mut census = SecretsCensus::default();
                for row in &rows {
                    match stored_form(&row.try_get::<Vec<u8>, _>("totp_secret")?) {
                        StoredForm::Plaintext => census.plaintext += 1,
                        StoredForm::Sealed(id) => *census.by_key.entry(id).or_insert(0) += 1,
                    }
                }
                Ok(census)
            }

            /// Seals every TOTP seed still stored in the clear (a database from before
            /// encryption at rest) under the current key, in one transaction, and checks
            /// that every sealed seed names a configured key. Idempotent; returns how
            /// many seeds it sealed.
            pub async fn seal_legacy_secrets(&self) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query("SELECT user_id, totp_secret FROM auth_mfa ORDER BY user_id")
                    .fetch_all(&mut *tx)
                    .await?;
                let mut sealed = 0;
                for row in &rows {
                    let user_id: String = row.try_get("user_id")?;
                    let stored: Vec<u8> = row.try_get("totp_secret")?;
                    match stored_form(&stored) {
                        StoredForm::Sealed(key_id) if self.keys.knows(&key_id) => {}
                        StoredForm::Sealed(_) => {
                            // Opening reports the unknown key with what to do.
                            self.keys.open(TOTP_CONTEXT, &user_id, &stored, &|| totp_what(&user_id))?;
                        }
                        StoredForm::Plaintext => {
                            let new = self.keys.seal(TOTP_CONTEXT, &user_id, &stored)?;
                            let done = sqlx::query(
                                "UPDATE auth_mfa SET totp_secret = $1 WHERE user_id = $2 AND totp_secret = $3",
                            )
                            .bind(&new)
                            .bind(&user_id)
                            .bind(&stored)
                            .execute(&mut *tx)
                            .await?;
                            sealed += done.rows_affected();
                        }
                    }
                }
                tx.commit().await?;
                Ok(sealed)
            }

            /// Re-encrypts every TOTP seed under the current key in one transaction (key
            /// rotation): all or none. Returns how many seeds were re-encrypted and how
            /// many of them had been under another key (or in the clear).
            pub async fn reseal_secrets(&self) -> Result<(u64, u64), StoreError> {
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query("SELECT user_id, totp_secret FROM auth_mfa ORDER BY user_id")
                    .fetch_all(&mut *tx)
                    .await?;
                let current = self.keys.current().id();
                let (mut total, mut moved) = (0, 0);
                for row in &rows {
                    let user_id: String = row.try_get("user_id")?;
                    let stored: Vec<u8> = row.try_get("totp_secret")?;
                    let plain = self.keys.open(TOTP_CONTEXT, &user_id, &stored, &|| totp_what(&user_id))?;
                    let new = self.keys.seal(TOTP_CONTEXT, &user_id, &plain)?;
                    let done = sqlx::query(
                        "UPDATE auth_mfa SET totp_secret = $1 WHERE user_id = $2 AND totp_secret = $3",
                    )
                    .bind(&new)
                    .bind(&user_id)
                    .bind(&stored)
                    .execute(&mut *tx)
                    .await?;
                    total += done.rows_affected();
                    if stored_form(&stored) != StoredForm::Sealed(current.clone()) {
                        moved += done.rows_affected();
                    }
                }
                tx.commit().await?;
                Ok((total, moved))
            }

            /// Applies this crate's migrations (3000-3999, embedded from `migrations/` at
            /// build time), leaving other crates' alone.
            pub async fn migrate(pool: &$pool) -> Result<(), StoreError> {
                let mut migrator = sqlx::migrate!($dir);
                migrator.set_ignore_missing(true);
                migrator.run(pool).await?;
                Ok(())
            }

            fn user(row: &$row) -> Result<UserRecord, StoreError> {
                Ok(UserRecord {
                    id: row.try_get("id")?,
                    username: row.try_get("username")?,
                    password_hash: row.try_get("password_hash")?,
                    role: role(&row.try_get::<String, _>("role")?)?,
                    created_at: ts(row.try_get("created_at")?),
                    failed_logins: u32::try_from(row.try_get::<i64, _>("failed_logins")?)
                        .map_err(|_| StoreError::Corrupt("failed_logins"))?,
                    locked_until: opt_ts(row.try_get("locked_until")?),
                    mfa_enabled: row.try_get::<i64, _>("mfa_enabled")? != 0,
                })
            }

            fn session_row(row: &$row) -> Result<SessionRecord, StoreError> {
                Ok(SessionRecord {
                    token_hash: hash32(row.try_get("token_hash")?, "token_hash")?,
                    user_id: row.try_get("user_id")?,
                    created_at: ts(row.try_get("created_at")?),
                    last_seen_at: ts(row.try_get("last_seen_at")?),
                    expires_at: ts(row.try_get("expires_at")?),
                    revoked_at: opt_ts(row.try_get("revoked_at")?),
                    mfa_verified: row.try_get::<i64, _>("mfa_verified")? != 0,
                })
            }

            fn key_row(row: &$row) -> Result<ApiKeyRecord, StoreError> {
                Ok(ApiKeyRecord {
                    key_id: row.try_get("key_id")?,
                    name: row.try_get("name")?,
                    role: role(&row.try_get::<String, _>("role")?)?,
                    key_hash: hash32(row.try_get("key_hash")?, "key_hash")?,
                    created_at: ts(row.try_get("created_at")?),
                    expires_at: opt_ts(row.try_get("expires_at")?),
                    revoked_at: opt_ts(row.try_get("revoked_at")?),
                    actors: row
                        .try_get::<Option<String>, _>("actors")?
                        .map(|a| string_list(&a, "actors"))
                        .transpose()?,
                    llm_roles: string_list(&row.try_get::<String, _>("llm_roles")?, "llm_roles")?,
                    created_by: row.try_get("created_by")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl AuthStore for $name {
            async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO auth_users (id, username, password_hash, role, created_at, \
                     failed_logins, locked_until, mfa_enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&u.id)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(u.role.as_str())
                .bind(u.created_at.unix_micros())
                .bind(i64::from(u.failed_logins))
                .bind(u.locked_until.map(Timestamp::unix_micros))
                .bind(i64::from(u.mfa_enabled))
                .execute(&self.pool)
                .await
                .map_err(map_insert)?;
                Ok(())
            }

            async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM auth_users WHERE username = $1");
                let row = sqlx::query(&sql).bind(username).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::user).transpose()
            }

            async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM auth_users WHERE id = $1");
                let row = sqlx::query(&sql).bind(user_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::user).transpose()
            }

            async fn set_user_role(&self, user_id: &str, role: Role) -> Result<(), StoreError> {
                sqlx::query("UPDATE auth_users SET role = $1 WHERE id = $2")
                    .bind(role.as_str())
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_failed_login(
                &self,
                user_id: &str,
                max_failures: u32,
                lock_until: Timestamp,
            ) -> Result<bool, StoreError> {
                // One statement, so concurrent failures cannot both read a stale count.
                let row = sqlx::query(
                    "UPDATE auth_users SET \
                       locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END, \
                       failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END \
                     WHERE id = $3 RETURNING locked_until",
                )
                .bind(i64::from(max_failures))
                .bind(lock_until.unix_micros())
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(r) => r.try_get::<Option<i64>, _>("locked_until")? == Some(lock_until.unix_micros()),
                    None => false,
                })
            }

            async fn clear_failed_logins(&self, user_id: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE auth_users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_mfa(
                &self,
                user_id: &str,
                totp_secret: &[u8],
                backup_code_hashes: &[[u8; 32]],
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO auth_mfa (user_id, totp_secret, last_used_step, enrolled_at) \
                     VALUES ($1, $2, NULL, $3) ON CONFLICT (user_id) DO UPDATE SET \
                     totp_secret = excluded.totp_secret, last_used_step = NULL, enrolled_at = excluded.enrolled_at",
                )
                .bind(user_id)
                .bind(self.keys.seal(TOTP_CONTEXT, user_id, totp_secret)?)
                .bind(now.unix_micros())
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM auth_backup_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                for hash in backup_code_hashes {
                    sqlx::query("INSERT INTO auth_backup_codes (user_id, code_hash) VALUES ($1, $2)")
                        .bind(user_id)
                        .bind(&hash[..])
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE auth_users SET mfa_enabled = 1 WHERE id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn mfa(&self, user_id: &str) -> Result<Option<MfaRecord>, StoreError> {
                let row = sqlx::query("SELECT totp_secret, last_used_step FROM auth_mfa WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    let stored: Vec<u8> = r.try_get("totp_secret")?;
                    Ok(MfaRecord {
                        totp_secret: self.keys.open(TOTP_CONTEXT, user_id, &stored, &|| totp_what(user_id))?,
                        last_used_step: r.try_get("last_used_step")?,
                    })
                })
                .transpose()
            }

            async fn advance_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE auth_mfa SET last_used_step = $1 \
                     WHERE user_id = $2 AND (last_used_step IS NULL OR last_used_step < $1)",
                )
                .bind(step)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn unused_backup_codes(&self, user_id: &str) -> Result<Vec<(i64, [u8; 32])>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, code_hash FROM auth_backup_codes WHERE user_id = $1 AND used_at IS NULL ORDER BY id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("id")?, hash32(r.try_get("code_hash")?, "code_hash")?)))
                    .collect()
            }

            async fn use_backup_code(&self, user_id: &str, id: i64, now: Timestamp) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE auth_backup_codes SET used_at = $1 WHERE id = $2 AND user_id = $3 AND used_at IS NULL",
                )
                .bind(now.unix_micros())
                .bind(id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO auth_sessions (token_hash, user_id, created_at, last_seen_at, expires_at, \
                     revoked_at, mfa_verified) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.token_hash[..])
                .bind(&s.user_id)
                .bind(s.created_at.unix_micros())
                .bind(s.last_seen_at.unix_micros())
                .bind(s.expires_at.unix_micros())
                .bind(s.revoked_at.map(Timestamp::unix_micros))
                .bind(i64::from(s.mfa_verified))
                .execute(&self.pool)
                .await
                .map_err(map_insert)?;
                Ok(())
            }

            async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
                let sql = format!("SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE token_hash = $1");
                let row = sqlx::query(&sql).bind(&token_hash[..]).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::session_row).transpose()
            }

            async fn touch_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<(), StoreError> {
                sqlx::query("UPDATE auth_sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1")
                    .bind(now.unix_micros())
                    .bind(&token_hash[..])
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn revoke_session(&self, token_hash: &[u8; 32], now: Timestamp) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE auth_sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                )
                .bind(now.unix_micros())
                .bind(&token_hash[..])
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_challenge(&self, c: &ChallengeRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO auth_mfa_challenges (challenge_hash, user_id, expires_at, failed_attempts) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&c.challenge_hash[..])
                .bind(&c.user_id)
                .bind(c.expires_at.unix_micros())
                .bind(i64::from(c.failed_attempts))
                .execute(&self.pool)
                .await
                .map_err(map_insert)?;
                Ok(())
            }

            async fn challenge(&self, challenge_hash: &[u8; 32]) -> Result<Option<ChallengeRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT challenge_hash, user_id, expires_at, failed_attempts FROM auth_mfa_challenges \
                     WHERE challenge_hash = $1",
                )
                .bind(&challenge_hash[..])
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(ChallengeRecord {
                        challenge_hash: hash32(r.try_get("challenge_hash")?, "challenge_hash")?,
                        user_id: r.try_get("user_id")?,
                        expires_at: ts(r.try_get("expires_at")?),
                        failed_attempts: u32::try_from(r.try_get::<i64, _>("failed_attempts")?)
                            .map_err(|_| StoreError::Corrupt("failed_attempts"))?,
                    })
                })
                .transpose()
            }

            async fn fail_challenge(&self, challenge_hash: &[u8; 32]) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE auth_mfa_challenges SET failed_attempts = failed_attempts + 1 WHERE challenge_hash = $1",
                )
                .bind(&challenge_hash[..])
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_challenge(&self, challenge_hash: &[u8; 32]) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM auth_mfa_challenges WHERE challenge_hash = $1")
                    .bind(&challenge_hash[..])
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO auth_api_keys (key_id, name, role, key_hash, created_at, expires_at, \
                     revoked_at, actors, llm_roles, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&k.key_id)
                .bind(&k.name)
                .bind(k.role.as_str())
                .bind(&k.key_hash[..])
                .bind(k.created_at.unix_micros())
                .bind(k.expires_at.map(Timestamp::unix_micros))
                .bind(k.revoked_at.map(Timestamp::unix_micros))
                .bind(k.actors.as_deref().map(list_json))
                .bind(list_json(&k.llm_roles))
                .bind(k.created_by.as_deref())
                .execute(&self.pool)
                .await
                .map_err(map_insert)?;
                Ok(())
            }

            async fn api_key_by_hash(&self, key_hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE key_hash = $1");
                let row = sqlx::query(&sql).bind(&key_hash[..]).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::key_row).transpose()
            }

            async fn api_key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE key_id = $1");
                let row = sqlx::query(&sql).bind(key_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::key_row).transpose()
            }

            async fn set_api_key_binding(
                &self,
                key_id: &str,
                actors: &[String],
                llm_roles: &[String],
            ) -> Result<bool, StoreError> {
                let actors = (!actors.is_empty()).then(|| list_json(actors));
                let done = sqlx::query(
                    "UPDATE auth_api_keys SET actors = $1, llm_roles = $2 \
                     WHERE key_id = $3 AND revoked_at IS NULL",
                )
                .bind(actors)
                .bind(list_json(llm_roles))
                .bind(key_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE auth_api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
                )
                .bind(now.unix_micros())
                .bind(key_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge_expired(&self, now: Timestamp, idle_cutoff: Timestamp) -> Result<u64, StoreError> {
                let sessions = sqlx::query(
                    "DELETE FROM auth_sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL OR last_seen_at < $2",
                )
                .bind(now.unix_micros())
                .bind(idle_cutoff.unix_micros())
                .execute(&self.pool)
                .await?;
                let challenges = sqlx::query("DELETE FROM auth_mfa_challenges WHERE expires_at <= $1")
                    .bind(now.unix_micros())
                    .execute(&self.pool)
                    .await?;
                Ok(sessions.rows_affected() + challenges.rows_affected())
            }
        }
    };
}

auth_store!(
    SqliteAuthStore,
    sqlx::SqlitePool,
    sqlx::sqlite::SqliteRow,
    "./migrations/sqlite",
    "The auth store in SQLite (tables `auth_*` in the shared database)."
);
auth_store!(
    PgAuthStore,
    sqlx::PgPool,
    sqlx::postgres::PgRow,
    "./migrations/postgres",
    "The auth store in PostgreSQL (tables `auth_*` in the shared database)."
);
