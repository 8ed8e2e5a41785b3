//! The SQLite ledger store (the embedded default).
//!
//! Durability comes from the pool's settings: WAL with `synchronous=FULL` (see
//! [`open_sqlite`]). Each batch is one `BEGIN IMMEDIATE` transaction (the write lock is
//! taken before the head is read, so several processes still produce one log) with one
//! multi-row `INSERT` per table.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr as _;

use lexecon_core::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use crate::entry::{Entry, Tombstone};
use crate::error::LedgerError;
use crate::merkle::{Hash, NodeId};
use crate::note::SignedCheckpoint;
use crate::store::{
    BatchCommitted, BatchPlan, BoxFuture, Head, LedgerStore, StoredCheckpoint, TreeState,
    frontier_ids, sequence, state_from, to_hash, to_i64, to_u64,
};

/// SQLite binds at most 32766 parameters per statement; stay well below.
const MAX_PARAMS: usize = 30_000;

/// Opens (creating if asked) a SQLite database with the settings the ledger's
/// durability relies on: WAL, `synchronous=FULL`, and no automatic WAL checkpoints on
/// the committing connection (the writer checkpoints off the commit path), and a large
/// row buffer for fast sequential reads.
pub async fn open_sqlite(path: &Path, create: bool) -> Result<SqlitePool, LedgerError> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(30))
        .pragma("wal_autocheckpoint", "0")
        // Let sqlx's worker thread run ahead by a whole page of rows instead of 50:
        // verification reads millions of rows, and each stall is a context switch.
        .row_buffer_size(16_384);
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?)
}

/// The ledger in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteLedgerStore {
    pool: SqlitePool,
}

impl SqliteLedgerStore {
    /// A store on an open pool (open it with [`open_sqlite`] for the right pragmas).
    pub fn new(pool: SqlitePool) -> Self {
        SqliteLedgerStore { pool }
    }

    /// Applies the ledger's migrations (versions 1000-1999).
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        migrate_sqlite(&self.pool).await
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Applies the ledger's SQLite migrations, leaving other crates' migrations alone.
pub async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), LedgerError> {
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

async fn read_head<'e>(
    exec: impl sqlx::Executor<'e, Database = Sqlite>,
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
    conn: &mut sqlx::SqliteConnection,
    ids: &[NodeId],
) -> Result<Vec<Hash>, LedgerError> {
    let mut found: HashMap<NodeId, Hash> = HashMap::with_capacity(ids.len());
    // One statement per chunk (leaf hashes and interior nodes together): each sqlx
    // statement costs a hand-off to its worker thread.
    // At most 256 ids per statement: the OR chain must stay below SQLite's expression
    // depth limit (1,000).
    for chunk in ids.chunks(256) {
        let leaves: Vec<i64> = chunk
            .iter()
            .filter(|id| id.level == 0)
            .map(|id| to_i64(id.index))
            .collect::<Result<_, _>>()?;
        let inner: Vec<&NodeId> = chunk.iter().filter(|id| id.level > 0).collect();
        let mut q = QueryBuilder::<Sqlite>::new("");
        if !leaves.is_empty() {
            q.push("SELECT 0, idx, leaf_hash FROM ledger_leaves WHERE idx IN (");
            let mut sep = q.separated(", ");
            for i in &leaves {
                sep.push_bind(*i);
            }
            q.push(")");
        }
        if !inner.is_empty() {
            if !leaves.is_empty() {
                q.push(" UNION ALL ");
            }
            // Point lookups on the primary key, OR-ed: SQLite plans each as an index
            // seek, cheaper than materializing a VALUES table.
            q.push("SELECT level, idx, hash FROM ledger_nodes WHERE ");
            let mut first = true;
            for id in inner {
                if !first {
                    q.push(" OR ");
                }
                first = false;
                q.push("(level = ");
                q.push_bind(i32::from(id.level));
                q.push(" AND idx = ");
                q.push_bind(to_i64(id.index)?);
                q.push(")");
            }
        }
        if chunk.is_empty() {
            continue;
        }
        for row in q.build().fetch_all(&mut *conn).await? {
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

pub(crate) fn entry_from_parts(
    index: i64,
    leaf: Vec<u8>,
    leaf_hash: &[u8],
    payload: Option<Vec<u8>>,
    by: Option<String>,
    reason: Option<String>,
    at: Option<i64>,
) -> Result<Entry, LedgerError> {
    let tombstone = by.map(|by| Tombstone {
        by,
        reason: reason.unwrap_or_default(),
        at: Timestamp::from_unix_micros(at.unwrap_or_default()),
    });
    Ok(Entry {
        index: to_u64(index)?,
        leaf,
        leaf_hash: to_hash(leaf_hash)?,
        payload,
        tombstone,
    })
}

impl LedgerStore for SqliteLedgerStore {
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
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
            for chunk in 0..seq.indexes.len().div_ceil(MAX_PARAMS / 3) {
                let lo = chunk * (MAX_PARAMS / 3);
                let hi = (lo + MAX_PARAMS / 3).min(seq.indexes.len());
                let rows = (lo..hi).filter_map(|i| {
                    Some((
                        seq.indexes.get(i)?,
                        seq.leaves.get(i)?,
                        seq.leaf_hashes.get(i)?,
                    ))
                });
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO ledger_leaves (idx, leaf, leaf_hash) ",
                );
                q.push_values(rows, |mut b, (i, leaf, h)| {
                    b.push_bind(*i)
                        .push_bind(leaf.as_slice())
                        .push_bind(h.as_slice());
                });
                q.build().execute(&mut *tx).await?;
                let rows = (lo..hi)
                    .filter_map(|i| Some((seq.indexes.get(i)?, &plan.entries.get(i)?.payload)));
                let mut q =
                    QueryBuilder::<Sqlite>::new("INSERT INTO ledger_payloads (idx, payload) ");
                q.push_values(rows, |mut b, (i, payload)| {
                    b.push_bind(*i).push_bind(payload.as_slice());
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in 0..seq.node_levels.len().div_ceil(MAX_PARAMS / 3) {
                let lo = chunk * (MAX_PARAMS / 3);
                let hi = (lo + MAX_PARAMS / 3).min(seq.node_levels.len());
                let rows = (lo..hi).filter_map(|i| {
                    Some((
                        seq.node_levels.get(i)?,
                        seq.node_indexes.get(i)?,
                        seq.node_hashes.get(i)?,
                    ))
                });
                let mut q =
                    QueryBuilder::<Sqlite>::new("INSERT INTO ledger_nodes (level, idx, hash) ");
                q.push_values(rows, |mut b, (l, i, h)| {
                    b.push_bind(*l).push_bind(*i).push_bind(h.as_slice());
                });
                q.build().execute(&mut *tx).await?;
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
                "SELECT level, idx, hash FROM ledger_nodes WHERE (level, idx) > (?, ?) \
                 ORDER BY level, idx LIMIT ?",
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
                 WHERE l.idx >= ? ORDER BY l.idx LIMIT ?",
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
                "SELECT size, note FROM ledger_checkpoints WHERE size >= ? AND size <= ? ORDER BY size",
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
                "UPDATE ledger_payloads SET payload = NULL, redacted_by = ?, redacted_reason = ?, redacted_at = ? WHERE idx = ?",
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
                sqlx::query_scalar("SELECT value FROM ledger_meta WHERE key = ?")
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
                "INSERT INTO ledger_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn maintain(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
}

async fn insert_checkpoint(
    conn: &mut sqlx::SqliteConnection,
    cp: &SignedCheckpoint,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO ledger_checkpoints (size, note) VALUES (?, ?) ON CONFLICT (size) DO NOTHING",
    )
    .bind(to_i64(cp.checkpoint.size)?)
    .bind(&cp.note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
