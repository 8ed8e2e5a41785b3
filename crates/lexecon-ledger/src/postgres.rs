//! The PostgreSQL ledger store.
//!
//! Each batch is one transaction that first takes a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`) on the log head and re-reads the head under it, so several
//! processes appending to one database produce one linear log. Each table, side tables
//! included, gets one `INSERT ... SELECT FROM UNNEST(...)` per batch, whatever its size.

use std::collections::HashMap;

use sqlx::{PgPool, Row as _};

use crate::entry::Entry;
use crate::error::LedgerError;
use crate::merkle::{Hash, NodeId};
use crate::side::{SideTable, SideType, SideValue};
use crate::sql::{self, entry_from_parts, node_id};
use crate::store::{
    BatchCommitted, BatchPlan, BoxFuture, LedgerStore, TreeState, frontier_ids, sequence,
    state_from, to_hash, to_i64, to_u64,
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
    sql::run_migrations(sqlx::migrate!("./migrations/postgres"), pool).await
}

sql::shared_functions!(sqlx::Postgres);

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
            let id = node_id(row.try_get(0)?, row.try_get(1)?)?;
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

/// One column of a side table's rows in a batch, bound as one array.
enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

/// Writes the batch's side rows: per table, one `INSERT ... SELECT * FROM UNNEST(...)`,
/// in the order each table first appears.
async fn write_side_rows(
    tx: &mut sqlx::PgConnection,
    plan: &BatchPlan<'_>,
    indexes: &[i64],
) -> Result<(), LedgerError> {
    let mut tables: Vec<(&'static SideTable, Vec<i64>, Vec<Column>)> = Vec::new();
    for (entry, idx) in plan.entries.iter().zip(indexes) {
        for row in &entry.side {
            row.check_values()?;
            // Two definitions of one table (say, with another conflict clause) get a
            // statement each.
            let slot = match tables.iter().position(|(t, _, _)| **t == *row.table) {
                Some(i) => i,
                None => {
                    let columns = row
                        .table
                        .columns
                        .iter()
                        .map(|(_, ty)| match ty {
                            SideType::Int => Column::Int(Vec::new()),
                            SideType::Text => Column::Text(Vec::new()),
                            SideType::Bytes => Column::Bytes(Vec::new()),
                        })
                        .collect();
                    tables.push((row.table, Vec::new(), columns));
                    tables.len() - 1
                }
            };
            let Some((_, idxs, columns)) = tables.get_mut(slot) else {
                continue;
            };
            idxs.push(*idx);
            for (column, value) in columns.iter_mut().zip(&row.values) {
                match (column, value) {
                    (Column::Int(c), SideValue::Int(v)) => c.push(Some(*v)),
                    (Column::Int(c), _) => c.push(None),
                    (Column::Text(c), SideValue::Text(v)) => c.push(Some(v.clone())),
                    (Column::Text(c), _) => c.push(None),
                    (Column::Bytes(c), SideValue::Bytes(v)) => c.push(Some(v.clone())),
                    (Column::Bytes(c), _) => c.push(None),
                }
            }
        }
    }
    for (table, idxs, columns) in tables {
        let sql = table.pg_insert()?;
        let mut query = sqlx::query(&sql).bind(idxs);
        for column in columns {
            query = match column {
                Column::Int(c) => query.bind(c),
                Column::Text(c) => query.bind(c),
                Column::Bytes(c) => query.bind(c),
            };
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

crate::redact::redact_function!(
    sqlx::Postgres,
    Some(("SELECT pg_advisory_xact_lock($1)", HEAD_LOCK))
);

impl LedgerStore for PgLedgerStore {
    sql::shared_methods!();

    fn redact_guarded<'a>(
        &'a self,
        index: u64,
        tombstone: &'a crate::Tombstone,
        plan: &'a crate::RedactPlan,
    ) -> BoxFuture<'a, Result<Vec<&'static str>, LedgerError>> {
        Box::pin(redact_with_plan(&self.pool, index, tombstone, plan))
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
            write_side_rows(&mut tx, &plan, &seq.indexes).await?;
            if let Some(cp) = &seq.checkpoint {
                insert_checkpoint(&mut *tx, cp).await?;
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
                    Ok((
                        node_id(row.try_get(0)?, row.try_get(1)?)?,
                        to_hash(row.try_get::<&[u8], _>(2)?)?,
                    ))
                })
                .collect()
        })
    }

    fn entries_at<'a>(
        &'a self,
        indexes: &'a [u64],
    ) -> BoxFuture<'a, Result<Vec<Entry>, LedgerError>> {
        Box::pin(async move {
            let mut wanted = indexes
                .iter()
                .map(|i| to_i64(*i))
                .collect::<Result<Vec<_>, _>>()?;
            wanted.sort_unstable();
            wanted.dedup();
            let rows = sqlx::query(sql::ENTRIES_AT_PG)
                .bind(&wanted)
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

    fn entries(&self, from: u64, limit: u64) -> BoxFuture<'_, Result<Vec<Entry>, LedgerError>> {
        Box::pin(async move {
            let rows = sqlx::query(sql::ENTRIES)
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
}
