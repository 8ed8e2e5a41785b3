//! The engine's own tables (idempotency claims, policy versions, revocations, run-time
//! settings) behind one trait. Each statement is written once: `$n` placeholders and
//! `ON CONFLICT DO NOTHING` mean the same to SQLite and PostgreSQL, and one macro
//! implements the trait for both pools.

use sqlx::Row as _;

use super::EngineError;
use crate::db::Database;

/// An idempotency row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdemRow {
    /// The decision as JSON, without its capability token.
    pub decision: String,
    /// Unix microseconds of the claim; with the key, identifies it.
    pub created_at: i64,
    /// The ledger's size when claimed; `None` once recorded.
    pub ledger_from: Option<i64>,
    /// The token's claims without the signature.
    pub token_claims: Option<String>,
    /// SHA-256 of the request (rows from before fingerprints have none).
    pub fingerprint: Option<Vec<u8>>,
}

/// The key of an idempotency row: `(principal, request_id)`.
pub(crate) type IdemKey<'a> = (&'a str, &'a str);

/// A policy version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub name: String,
    pub version: String,
    pub mode: String,
    pub loaded_at: i64,
    pub loaded_by: String,
    pub ledger_index: i64,
    pub terms: i64,
    pub relations: i64,
}

/// A policy version to store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewPolicy<'a> {
    pub hash: &'a [u8],
    pub name: &'a str,
    pub version: &'a str,
    pub mode: &'a str,
    pub source: &'a str,
    pub loaded_at: i64,
    pub loaded_by: &'a str,
    pub ledger_index: i64,
    pub terms: i64,
    pub relations: i64,
}

/// A run-time setting as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettingRow {
    pub value: String,
    pub origin: String,
    pub file_hash: Option<String>,
    pub version: i64,
}

/// Where the engine keeps its own state.
#[async_trait::async_trait]
pub(crate) trait EngineStore: Send + Sync + std::fmt::Debug {
    /// The idempotency row of a key.
    async fn idem_get(&self, key: IdemKey<'_>) -> Result<Option<IdemRow>, EngineError>;
    /// Inserts a claim unless the key is taken; true when inserted.
    async fn idem_claim(&self, key: IdemKey<'_>, row: &IdemRow) -> Result<bool, EngineError>;
    /// Marks the unfinished claim made at `created_at` recorded with `decision`.
    async fn idem_complete(
        &self,
        key: IdemKey<'_>,
        created_at: i64,
        decision: &str,
    ) -> Result<bool, EngineError>;
    /// Removes the unfinished claim made at `created_at`.
    async fn idem_drop(&self, key: IdemKey<'_>, created_at: i64) -> Result<bool, EngineError>;

    /// Records a policy version; returns its sequence number.
    async fn policy_insert(&self, p: NewPolicy<'_>) -> Result<i64, EngineError>;
    /// Versions, newest first.
    async fn policy_history(&self, limit: i64) -> Result<Vec<PolicyRow>, EngineError>;
    /// The newest version and its source (the active policy).
    async fn policy_latest(&self) -> Result<Option<(PolicyRow, String)>, EngineError>;
    /// The hash of the newest version loaded from the policy file.
    async fn policy_latest_from_file(&self) -> Result<Option<Vec<u8>>, EngineError>;
    /// The newest version's sequence number (0 when none).
    async fn policy_seq(&self) -> Result<i64, EngineError>;

    /// The ledger index of a revocation.
    async fn revocation_index(&self, token_id: &str) -> Result<Option<i64>, EngineError>;
    /// Records a revocation (idempotent).
    async fn revocation_insert(
        &self,
        token_id: &str,
        at: i64,
        reason: &str,
        by: &str,
        ledger_index: i64,
    ) -> Result<(), EngineError>;
    /// Every revoked token id.
    async fn revocations(&self) -> Result<Vec<String>, EngineError>;
    /// How many revocations there are (they are never deleted).
    async fn revocation_count(&self) -> Result<i64, EngineError>;

    /// A run-time setting.
    async fn setting(&self, name: &str) -> Result<Option<SettingRow>, EngineError>;
    /// Replaces a setting, bumping its version; returns the new version.
    async fn setting_put(
        &self,
        name: &str,
        value: &str,
        origin: &str,
        file_hash: Option<&str>,
        at: i64,
        by: &str,
    ) -> Result<i64, EngineError>;
}

const POLICY_COLUMNS: &str =
    "seq, hash, name, version, mode, loaded_at, loaded_by, ledger_index, terms, relations";

macro_rules! engine_store {
    ($name:ident, $pool:ty, $row:ty) => {
        /// The engine store on one pool type.
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub(crate) $pool);

        impl $name {
            fn policy_row(row: &$row) -> Result<PolicyRow, sqlx::Error> {
                Ok(PolicyRow {
                    seq: row.try_get("seq")?,
                    hash: row.try_get("hash")?,
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    mode: row.try_get("mode")?,
                    loaded_at: row.try_get("loaded_at")?,
                    loaded_by: row.try_get("loaded_by")?,
                    ledger_index: row.try_get("ledger_index")?,
                    terms: row.try_get("terms")?,
                    relations: row.try_get("relations")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl EngineStore for $name {
            async fn idem_get(&self, (p, r): IdemKey<'_>) -> Result<Option<IdemRow>, EngineError> {
                let row = sqlx::query(
                    "SELECT decision, created_at, ledger_from, token_claims, fingerprint \
                     FROM engine_idempotency WHERE principal = $1 AND request_id = $2",
                )
                .bind(p)
                .bind(r)
                .fetch_optional(&self.0)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(IdemRow {
                    decision: row.try_get("decision")?,
                    created_at: row.try_get("created_at")?,
                    ledger_from: row.try_get("ledger_from")?,
                    token_claims: row.try_get("token_claims")?,
                    fingerprint: row.try_get("fingerprint")?,
                }))
            }

            async fn idem_claim(&self, (p, r): IdemKey<'_>, row: &IdemRow) -> Result<bool, EngineError> {
                let done = sqlx::query(
                    "INSERT INTO engine_idempotency (principal, request_id, decision, created_at, \
                     ledger_from, token_claims, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(p)
                .bind(r)
                .bind(&row.decision)
                .bind(row.created_at)
                .bind(row.ledger_from)
                .bind(&row.token_claims)
                .bind(&row.fingerprint)
                .execute(&self.0)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn idem_complete(
                &self,
                (p, r): IdemKey<'_>,
                created_at: i64,
                decision: &str,
            ) -> Result<bool, EngineError> {
                let done = sqlx::query(
                    "UPDATE engine_idempotency SET decision = $4, ledger_from = NULL \
                     WHERE principal = $1 AND request_id = $2 AND created_at = $3 \
                     AND ledger_from IS NOT NULL",
                )
                .bind(p)
                .bind(r)
                .bind(created_at)
                .bind(decision)
                .execute(&self.0)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn idem_drop(&self, (p, r): IdemKey<'_>, created_at: i64) -> Result<bool, EngineError> {
                let done = sqlx::query(
                    "DELETE FROM engine_idempotency WHERE principal = $1 AND request_id = $2 \
                     AND created_at = $3 AND ledger_from IS NOT NULL",
                )
                .bind(p)
                .bind(r)
                .bind(created_at)
                .execute(&self.0)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn policy_insert(&self, n: NewPolicy<'_>) -> Result<i64, EngineError> {
                let row = sqlx::query(
                    "INSERT INTO engine_policies (hash, name, version, mode, source, loaded_at, \
                     loaded_by, ledger_index, terms, relations) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
                )
                .bind(n.hash)
                .bind(n.name)
                .bind(n.version)
                .bind(n.mode)
                .bind(n.source)
                .bind(n.loaded_at)
                .bind(n.loaded_by)
                .bind(n.ledger_index)
                .bind(n.terms)
                .bind(n.relations)
                .fetch_one(&self.0)
                .await?;
                Ok(row.try_get("seq")?)
            }

            async fn policy_history(&self, limit: i64) -> Result<Vec<PolicyRow>, EngineError> {
                let rows = sqlx::query(&format!(
                    "SELECT {POLICY_COLUMNS} FROM engine_policies ORDER BY seq DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.0)
                .await?;
                Ok(rows.iter().map(Self::policy_row).collect::<Result<_, _>>()?)
            }

            async fn policy_latest(&self) -> Result<Option<(PolicyRow, String)>, EngineError> {
                let row = sqlx::query(&format!(
                    "SELECT {POLICY_COLUMNS}, source FROM engine_policies ORDER BY seq DESC LIMIT 1"
                ))
                .fetch_optional(&self.0)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some((Self::policy_row(&row)?, row.try_get("source")?)))
            }

            async fn policy_latest_from_file(&self) -> Result<Option<Vec<u8>>, EngineError> {
                let row = sqlx::query(
                    "SELECT hash FROM engine_policies WHERE loaded_by = 'file' \
                     ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&self.0)
                .await?;
                Ok(row.map(|r| r.try_get("hash")).transpose()?)
            }

            async fn policy_seq(&self) -> Result<i64, EngineError> {
                let row = sqlx::query("SELECT MAX(seq) AS seq FROM engine_policies")
                    .fetch_one(&self.0)
                    .await?;
                Ok(row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0))
            }

            async fn revocation_index(&self, token_id: &str) -> Result<Option<i64>, EngineError> {
                let row = sqlx::query(
                    "SELECT ledger_index FROM engine_revocations WHERE token_id = $1",
                )
                .bind(token_id)
                .fetch_optional(&self.0)
                .await?;
                Ok(row.map(|r| r.try_get("ledger_index")).transpose()?)
            }

            async fn revocation_insert(
                &self,
                token_id: &str,
                at: i64,
                reason: &str,
                by: &str,
                ledger_index: i64,
            ) -> Result<(), EngineError> {
                sqlx::query(
                    "INSERT INTO engine_revocations (token_id, revoked_at, reason, revoked_by, \
                     ledger_index) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(token_id)
                .bind(at)
                .bind(reason)
                .bind(by)
                .bind(ledger_index)
                .execute(&self.0)
                .await?;
                Ok(())
            }

            async fn revocations(&self) -> Result<Vec<String>, EngineError> {
                let rows = sqlx::query("SELECT token_id FROM engine_revocations")
                    .fetch_all(&self.0)
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| r.try_get("token_id"))
                    .collect::<Result<_, _>>()?)
            }

            async fn revocation_count(&self) -> Result<i64, EngineError> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM engine_revocations")
                    .fetch_one(&self.0)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn setting(&self, name: &str) -> Result<Option<SettingRow>, EngineError> {
                let row = sqlx::query(
                    "SELECT value, origin, file_hash, version FROM engine_settings WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.0)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(SettingRow {
                    value: row.try_get("value")?,
                    origin: row.try_get("origin")?,
                    file_hash: row.try_get("file_hash")?,
                    version: row.try_get("version")?,
                }))
            }

            async fn setting_put(
                &self,
                name: &str,
                value: &str,
                origin: &str,
                file_hash: Option<&str>,
                at: i64,
                by: &str,
            ) -> Result<i64, EngineError> {
                let row = sqlx::query(
                    "INSERT INTO engine_settings (name, value, origin, file_hash, version, \
                     updated_at, updated_by) VALUES ($1, $2, $3, $4, 1, $5, $6) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
                     origin = excluded.origin, \
                     file_hash = COALESCE(excluded.file_hash, engine_settings.file_hash), \
                     version = engine_settings.version + 1, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by \
                     RETURNING version",
                )
                .bind(name)
                .bind(value)
                .bind(origin)
                .bind(file_hash)
                .bind(at)
                .bind(by)
                .fetch_one(&self.0)
                .await?;
                Ok(row.try_get("version")?)
            }
        }
    };
}

engine_store!(SqliteEngineStore, sqlx::SqlitePool, sqlx::sqlite::SqliteRow);
engine_store!(PgEngineStore, sqlx::PgPool, sqlx::postgres::PgRow);

/// The engine store on the shared database.
pub(crate) fn on(db: &Database) -> std::sync::Arc<dyn EngineStore> {
    match db {
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteEngineStore(pool.clone())),
        Database::Postgres(pool) => std::sync::Arc::new(PgEngineStore(pool.clone())),
    }
}
