//! The PostgreSQL ledger store.
//!
//! Each batch is one transaction that first takes a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`) on the log head and re-reads the head under it, so several
//! processes appending to one database produce one linear log. Each table gets one
//! `INSERT ... SELECT FROM UNNEST(...)` per batch, whatever its size.

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Row as _};

use crate::entry::{Entry, Tombstone};
use crate::error::LedgerError;
use crate::merkle::{Hash, NodeId};
use crate::note::SignedCheckpoint;
use crate::sqlite::entry_from_parts;
use crate::store::{
    BatchCommitted, BatchPlan, BoxFuture, Head, LedgerStore, StoredCheckpoint, TreeState,
    frontier_ids, sequence, state_from, to_hash, to_i64, to_u64,
};

/// The advisory lock key that serializes appends ("ledger" in ASCII).
const HEAD_LOCK: i64 = 0x0000_6c65_6467_6572;

/// The ledger in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgLedgerStore {
    pool: PgPool,
}

impl PgLedgerStore {
    /// A store on an open pool.
    pub fn new(pool: PgPool) -> Self {
        PgLedgerStore { pool }
    }

    /// Applies the ledger's migrations (versions 1000-1999).
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        migrate_postgres(&self.pool).await
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Applies the ledger's PostgreSQL migrations, leaving other crates' migrations alone.
pub async fn migrate_postgres(pool: &PgPool) -> Result<(), LedgerError> {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

async fn read_head<'e>(
    exec: impl sqlx::Executor<'e, Database = Postgres>,
) -> Result<Head, LedgerError> {
    let row = sqlx::query("SELECT idx, leaf_hash FROM ledger_leaves ORDER BY idx DESC LIMIT 1")
        .fetch_optional(exec)
        .await?;
    match row {
        None => Ok(Head::default()),
        Some(row) => Ok(Head {
            size: to_u64(row.try_get::<i64, _>(0)?)? + 1,
            last_leaf_hash: to_hash(row.try_get::<&[u8], _>(1)?)?,
        }),
    }
}

async fn read_nodes(
    conn: &mut sqlx::PgConnection,
    ids: &[NodeId],
) -> Result<Vec<Hash>, LedgerError> {
    let mut found: HashMap<NodeId, Hash> = HashMap::with_capacity(ids.len());
    let leaves: Vec<i64> = ids
        .iter()
        .filter(|id| id.level == 0)
        .map(|id| to_i64(id.index))
        .collect::<Result<_, _>>()?;
    if !leaves.is_empty() {
        let rows = sqlx::query("SELECT idx, leaf_hash FROM ledger_leaves WHERE idx = ANY($1)")
            .bind(&leaves)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let id = NodeId {
                level: 0,
                index: to_u64(row.try_get(0)?)?,
            };
            found.insert(id, to_hash(row.try_get::<&[u8], _>(1)?)?);
        }
    }
    let mut levels = Vec::new();
    let mut indexes = Vec::new();
    for id in ids.iter().filter(|id| id.level > 0) {
        levels.push(i32::from(id.level));
        indexes.push(to_i64(id.index)?);
    }
    if !levels.is_empty() {
        let rows = sqlx::query(
            "SELECT n.level, n.idx, n.hash FROM ledger_nodes n \
             JOIN UNNEST($1::int[], $2::bigint[]) AS w(level, idx) \
             ON n.level = w.level AND n.idx = w.idx",
        )
        .bind(&levels)
        .bind(&indexes)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let level: i32 = row.try_get(0)?;
            let id = NodeId {
                level: u8::try_from(level)
                    .map_err(|_| LedgerError::Corrupt(format!("node level {level}")))?,
                index: to_u64(row.try_get(1)?)?,
            };
            found.insert(id, to_hash(row.try_get::<&[u8], _>(2)?)?);
        }
    }
    ids.iter()
        .map(|id| {
            found.get(id).copied().ok_or_else(|| {
                LedgerError::Corrupt(format!(
                    "subtree hash at level {} index {} is missing",
                    id.level, id.index
                ))
            })
        })
        .collect()
}

impl LedgerStore for PgLedgerStore {
    fn head(&self) -> BoxFuture<'_, Result<Head, LedgerError>> {
        Box::pin(read_head(&self.pool))
    }

    fn nodes<'a>(&'a self, ids: &'a [NodeId]) -> BoxFuture<'a, Result<Vec<Hash>, LedgerError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            read_nodes(&mut conn, ids).await
        })
    }

    fn append_batch<'a>(
        &'a self,
        state: &'a mut TreeState,
        plan: BatchPlan<'a>,
    ) -> BoxFuture<'a, Result<BatchCommitted, LedgerError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(HEAD_LOCK)
                .execute(&mut *tx)
                .await?;
            let head = read_head(&mut *tx).await?;
            let mut next =
                if head.size == state.size() && head.last_leaf_hash == state.last_leaf_hash {
                    state.clone()
                } else {
                    let hashes = read_nodes(&mut tx, &frontier_ids(&head)).await?;
                    state_from(&head, hashes)?
                };
            let first_index = next.size();
            let seq = sequence(&mut next, &plan)?;
            let hashes: Vec<&[u8]> = seq.leaf_hashes.iter().map(|h| h.as_slice()).collect();
            sqlx::query(
                "INSERT INTO ledger_leaves (idx, leaf, leaf_hash) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[])",
            )
            .bind(&seq.indexes)
            .bind(&seq.leaves)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;
            let payloads: Vec<&[u8]> = plan.entries.iter().map(|e| e.payload.as_slice()).collect();
            sqlx::query(
                "INSERT INTO ledger_payloads (idx, payload) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
            )
            .bind(&seq.indexes)
            .bind(&payloads)
            .execute(&mut *tx)
            .await?;
            if !seq.node_levels.is_empty() {
                sqlx::query(
                    "INSERT INTO ledger_nodes (level, idx, hash) \
                     SELECT * FROM UNNEST($1::int[], $2::bigint[], $3::bytea[])",
                )
                .bind(&seq.node_levels)
                .bind(&seq.node_indexes)
                .bind(&seq.node_hashes)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(cp) = &seq.checkpoint {
                insert_checkpoint(&mut tx, cp).await?;
            }
            tx.commit().await?;
            *state = next;
            Ok(BatchCommitted {
                first_index,
                leaf_hashes: seq.leaf_hashes,
                checkpoint: seq.checkpoint,
            })
        })
    }

    fn node_page(
        &self,
        after: Option<NodeId>,
        limit: u64,
    ) -> BoxFuture<'_, Result<Vec<(NodeId, Hash)>, LedgerError>> {
        Box::pin(async move {
            let (level, idx) = match after {
                Some(id) => (i32::from(id.level), to_i64(id.index)?),
                None => (0, -1),
            };
            let rows = sqlx::query(
                "SELECT level, idx, hash FROM ledger_nodes WHERE (level, idx) > ($1, $2) \
                 ORDER BY level, idx LIMIT $3",
            )
            .bind(level)
            .bind(idx)
            .bind(to_i64(limit)?)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    let level: i32 = row.try_get(0)?;
                    let id = NodeId {
                        level: u8::try_from(level)
                            .map_err(|_| LedgerError::Corrupt(format!("node level {level}")))?,
                        index: to_u64(row.try_get(1)?)?,
                    };
                    Ok((id, to_hash(row.try_get::<&[u8], _>(2)?)?))
                })
                .collect()
        })
    }

    fn put_checkpoint<'a>(
        &'a self,
        checkpoint: &'a SignedCheckpoint,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            insert_checkpoint(&mut conn, checkpoint).await
        })
    }

    fn entries(&self, from: u64, limit: u64) -> BoxFuture<'_, Result<Vec<Entry>, LedgerError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT l.idx, l.leaf, l.leaf_hash, p.payload, p.redacted_by, p.redacted_reason, p.redacted_at \
                 FROM ledger_leaves l LEFT JOIN ledger_payloads p ON p.idx = l.idx \
                 WHERE l.idx >= $1 ORDER BY l.idx LIMIT $2",
            )
            .bind(to_i64(from)?)
            .bind(to_i64(limit)?)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    entry_from_parts(
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get::<&[u8], _>(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                    )
                })
                .collect()
        })
    }

    fn checkpoints(
        &self,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, Result<Vec<StoredCheckpoint>, LedgerError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT size, note FROM ledger_checkpoints WHERE size >= $1 AND size <= $2 ORDER BY size",
            )
            .bind(to_i64(from)?)
            .bind(to_i64(to.min(i64::MAX as u64))?)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    Ok(StoredCheckpoint {
                        size: to_u64(row.try_get(0)?)?,
                        note: row.try_get(1)?,
                    })
                })
                .collect()
        })
    }

    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<StoredCheckpoint>, LedgerError>> {
        Box::pin(async move {
            let row =
                sqlx::query("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?;
            row.map(|row| {
                Ok(StoredCheckpoint {
                    size: to_u64(row.try_get(0)?)?,
                    note: row.try_get(1)?,
                })
            })
            .transpose()
        })
    }

    fn redact<'a>(
        &'a self,
        index: u64,
        tombstone: &'a Tombstone,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE ledger_payloads SET payload = NULL, redacted_by = $1, redacted_reason = $2, redacted_at = $3 WHERE idx = $4",
            )
            .bind(&tombstone.by)
            .bind(&tombstone.reason)
            .bind(tombstone.at.unix_micros())
            .bind(to_i64(index)?)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(LedgerError::NoSuchEntry(index));
            }
            Ok(())
        })
    }

    fn meta<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT value FROM ledger_meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO ledger_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }
}

async fn insert_checkpoint(
    conn: &mut sqlx::PgConnection,
    cp: &SignedCheckpoint,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO ledger_checkpoints (size, note) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING",
    )
    .bind(to_i64(cp.checkpoint.size)?)
    .bind(&cp.note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
