//! The evidence tables (migration 4006) behind one trait, written once for SQLite and
//! PostgreSQL like [`super::store`]: `$n` placeholders and `ON CONFLICT DO NOTHING`
//! mean the same to both. Rows of `engine_evidence` and `engine_evidence_links` are
//! written as ledger side rows (see `evidence.rs`); this store writes only the chunks,
//! and reads.

use sqlx::Row as _;

use super::EngineError;
use crate::db::Database;

/// An `engine_evidence` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvidenceRow {
    pub evidence_id: String,
    pub sha256: Vec<u8>,
    pub artifact_type: String,
    pub media_type: String,
    pub title: String,
    pub size: i64,
    pub signature: Option<Vec<u8>>,
    pub signer_public_key: Option<Vec<u8>>,
    pub registered_by: String,
    pub registered_at: i64,
    pub idx: i64,
}

/// A link of an artifact: `(evidence_id, link_kind, target)`.
pub(crate) type LinkRow = (String, String, String);

/// Which rows [`EvidenceStore::list`] returns: newest (highest `idx`) first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ListQuery<'a> {
    /// Only this artifact type.
    pub artifact_type: Option<&'a str>,
    /// Only artifacts with this link (`link_kind`, `target`), any number of them.
    pub links: [Option<(&'a str, &'a str)>; 2],
    /// Only rows with `idx` below this.
    pub before: Option<i64>,
    /// At most this many rows.
    pub limit: i64,
}

/// Where evidence is kept.
#[async_trait::async_trait]
pub(crate) trait EvidenceStore: Send + Sync + std::fmt::Debug {
    /// One artifact's row.
    async fn get(&self, evidence_id: &str) -> Result<Option<EvidenceRow>, EngineError>;
    /// The links of these artifacts, in no particular order.
    async fn links(&self, evidence_ids: &[&str]) -> Result<Vec<LinkRow>, EngineError>;
    /// A page of artifacts, newest first.
    async fn list(&self, q: ListQuery<'_>) -> Result<Vec<EvidenceRow>, EngineError>;
    /// Writes `content` as chunks `0..` of at most `chunk` bytes each, in one
    /// transaction; chunks already there are kept (content-addressed, so they hold the
    /// same bytes unless someone changed them, which `VerifyEvidence` reports).
    async fn put_chunks(
        &self,
        evidence_id: &str,
        content: &[u8],
        chunk: usize,
    ) -> Result<(), EngineError>;
    /// Chunk `seq`, if stored.
    async fn chunk(&self, evidence_id: &str, seq: i64) -> Result<Option<Vec<u8>>, EngineError>;
    /// How many chunks are stored.
    async fn chunk_count(&self, evidence_id: &str) -> Result<i64, EngineError>;
    /// Whether the decision index holds `decision_id`, decided within `[from, to]`
    /// (Unix microseconds; the decision's ULID fixes the millisecond).
    async fn decision_exists(
        &self,
        decision_id: &str,
        from: i64,
        to: i64,
    ) -> Result<bool, EngineError>;
}

const EVIDENCE_COLUMNS: &str = "e.evidence_id, e.sha256, e.artifact_type, e.media_type, \
    e.title, e.size, e.signature, e.signer_public_key, e.registered_by, e.registered_at, e.idx";

/// `$from, $from+1, ..., $from+n-1`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SELECT of [`EvidenceStore::list`] for `q`, with its parameters numbered in the
/// order [`list_binds`] yields them.
fn list_sql(q: &ListQuery<'_>) -> String {
    let mut sql = format!("SELECT {EVIDENCE_COLUMNS} FROM engine_evidence e WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if q.before.is_some() {
        sql.push_str(&format!(" AND e.idx < ${}", next()));
    }
    if q.artifact_type.is_some() {
        sql.push_str(&format!(" AND e.artifact_type = ${}", next()));
    }
    for _ in q.links.iter().flatten() {
        let (k, t) = (next(), next());
        sql.push_str(&format!(
            " AND e.evidence_id IN (SELECT l.evidence_id FROM engine_evidence_links l \
             WHERE l.link_kind = ${k} AND l.target = ${t})"
        ));
    }
    sql.push_str(&format!(" ORDER BY e.idx DESC LIMIT ${}", next()));
    sql
}

macro_rules! evidence_store {
    ($name:ident, $pool:ty, $row:ty, $db:ty, $chunks_begin:expr) => {
        /// The evidence store on one pool type.
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub(crate) $pool);

        impl $name {
            fn row(row: &$row) -> Result<EvidenceRow, sqlx::Error> {
                Ok(EvidenceRow {
                    evidence_id: row.try_get("evidence_id")?,
                    sha256: row.try_get("sha256")?,
                    artifact_type: row.try_get("artifact_type")?,
                    media_type: row.try_get("media_type")?,
                    title: row.try_get("title")?,
                    size: row.try_get("size")?,
                    signature: row.try_get("signature")?,
                    signer_public_key: row.try_get("signer_public_key")?,
                    registered_by: row.try_get("registered_by")?,
                    registered_at: row.try_get("registered_at")?,
                    idx: row.try_get("idx")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl EvidenceStore for $name {
            async fn get(&self, evidence_id: &str) -> Result<Option<EvidenceRow>, EngineError> {
                let row = sqlx::query(&format!(
                    "SELECT {EVIDENCE_COLUMNS} FROM engine_evidence e WHERE e.evidence_id = $1"
                ))
                .bind(evidence_id)
                .fetch_optional(&self.0)
                .await?;
                Ok(row.as_ref().map(Self::row).transpose()?)
            }

            async fn links(&self, evidence_ids: &[&str]) -> Result<Vec<LinkRow>, EngineError> {
                if evidence_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT evidence_id, link_kind, target FROM engine_evidence_links \
                     WHERE evidence_id IN ({}) ORDER BY idx, link_kind, target",
                    placeholders(1, evidence_ids.len())
                );
                let mut query = sqlx::query(&sql);
                for id in evidence_ids {
                    query = query.bind(*id);
                }
                let rows = query.fetch_all(&self.0).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        Ok((
                            r.try_get("evidence_id")?,
                            r.try_get("link_kind")?,
                            r.try_get("target")?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()?)
            }

            async fn list(&self, q: ListQuery<'_>) -> Result<Vec<EvidenceRow>, EngineError> {
                let sql = list_sql(&q);
                let mut query = sqlx::query::<$db>(&sql);
                if let Some(before) = q.before {
                    query = query.bind(before);
                }
                if let Some(t) = q.artifact_type {
                    query = query.bind(t);
                }
                for (kind, target) in q.links.iter().flatten() {
                    query = query.bind(*kind).bind(*target);
                }
                let rows = query.bind(q.limit).fetch_all(&self.0).await?;
                Ok(rows.iter().map(Self::row).collect::<Result<_, _>>()?)
            }

            async fn put_chunks(
                &self,
                evidence_id: &str,
                content: &[u8],
                chunk: usize,
            ) -> Result<(), EngineError> {
                let mut tx = self.0.begin().await?;
                if let Some(statement) = $chunks_begin {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                for (seq, part) in content.chunks(chunk.max(1)).enumerate() {
                    let seq = i64::try_from(seq).map_err(|_| {
                        EngineError::InvalidArgument("content has too many chunks".into())
                    })?;
                    // A slice of the caller's bytes: no copy of the whole artifact.
                    sqlx::query(
                        "INSERT INTO engine_evidence_chunks (evidence_id, seq, data) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(evidence_id)
                    .bind(seq)
                    .bind(part)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn chunk(
                &self,
                evidence_id: &str,
                seq: i64,
            ) -> Result<Option<Vec<u8>>, EngineError> {
                let row = sqlx::query(
                    "SELECT data FROM engine_evidence_chunks WHERE evidence_id = $1 AND seq = $2",
                )
                .bind(evidence_id)
                .bind(seq)
                .fetch_optional(&self.0)
                .await?;
                Ok(row.map(|r| r.try_get("data")).transpose()?)
            }

            async fn chunk_count(&self, evidence_id: &str) -> Result<i64, EngineError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM engine_evidence_chunks WHERE evidence_id = $1",
                )
                .bind(evidence_id)
                .fetch_one(&self.0)
                .await?;
                Ok(row.try_get("n")?)
            }

            async fn decision_exists(
                &self,
                decision_id: &str,
                from: i64,
                to: i64,
            ) -> Result<bool, EngineError> {
                let row = sqlx::query(
                    "SELECT 1 AS one FROM engine_decision_index \
                     WHERE decided_at >= $1 AND decided_at <= $2 AND decision_id = $3 LIMIT 1",
                )
                .bind(from)
                .bind(to)
                .bind(decision_id)
                .fetch_optional(&self.0)
                .await?;
                Ok(row.is_some())
            }
        }
    };
}

evidence_store!(
    SqliteEvidenceStore,
    sqlx::SqlitePool,
    sqlx::sqlite::SqliteRow,
    sqlx::Sqlite,
    None::<&str>
);
// The chunks need not be flushed by their own commit: the ledger entry that makes them
// visible commits later in the same write-ahead log, and its (synchronous) commit
// flushes everything before it. Chunks lost to a crash before that entry were never
// visible. This saves one WAL flush per registration.
evidence_store!(
    PgEvidenceStore,
    sqlx::PgPool,
    sqlx::postgres::PgRow,
    sqlx::Postgres,
    Some("SET LOCAL synchronous_commit TO OFF")
);

/// The evidence store on the shared database.
pub(crate) fn on(db: &Database) -> std::sync::Arc<dyn EvidenceStore> {
    match db {
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteEvidenceStore(pool.clone())),
        Database::Postgres(pool) => std::sync::Arc::new(PgEvidenceStore(pool.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sql_numbers_its_parameters_in_bind_order() {
        let q = ListQuery {
            artifact_type: Some("test_result"),
            links: [Some(("decision", "dec_x")), Some(("control", "c"))],
            before: Some(9),
            limit: 10,
        };
        let sql = list_sql(&q);
        assert!(sql.contains("e.idx < $1"), "{sql}");
        assert!(sql.contains("e.artifact_type = $2"), "{sql}");
        assert!(sql.contains("l.link_kind = $3 AND l.target = $4"), "{sql}");
        assert!(sql.contains("l.link_kind = $5 AND l.target = $6"), "{sql}");
        assert!(sql.ends_with("LIMIT $7"), "{sql}");
        let plain = list_sql(&ListQuery {
            limit: 5,
            ..ListQuery::default()
        });
        assert!(
            plain.ends_with("WHERE 1 = 1 ORDER BY e.idx DESC LIMIT $1"),
            "{plain}"
        );
    }
}
