//! The SQLite ledger store (the embedded default), on a database file.
//!
//! Durability comes from the connection settings in `sqlite_settings.rs`: WAL with
//! `synchronous=FULL`. Each batch is one `BEGIN IMMEDIATE` transaction on the store's own
//! writer connection (the write lock is taken before the head is read, so several
//! processes still produce one log) with prepared single-row inserts, side rows included.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::entry::Entry;
use crate::error::LedgerError;
use crate::merkle::{Hash, NodeId};
use crate::side::{SideRow, SideTable, SideValue};
use crate::sql::{self, entry_from_parts, node_id};
use crate::sqlite_settings::{configure_direct, sqlite_options};
use crate::store::{
    BatchCommitted, BatchPlan, BoxFuture, Head, LedgerStore, Sequenced, TreeState, frontier_ids,
    sequence, state_from, to_hash, to_i64, to_u64,
};

/// Opens (creating if asked) a SQLite database file with the settings the ledger's
/// durability relies on ([`sqlite_options`]).
pub async fn open_sqlite(path: &Path, create: bool) -> Result<SqlitePool, LedgerError> {
    let options =
        sqlite_options(SqliteConnectOptions::new().filename(path)).create_if_missing(create);
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?)
}

/// The ledger in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteLedgerStore {
    pool: SqlitePool,
    /// Appends and bulk reads bypass sqlx; `None` when the pool is not on a database file
    /// (an in-memory database), which the store refuses to use.
    direct: Option<Arc<Direct>>,
}

impl SqliteLedgerStore {
    /// A store on an open pool on a database file (open it with [`open_sqlite`], or with
    /// [`sqlite_options`], for the right pragmas). On any other database, such as an
    /// in-memory one, every read of the log and every append fails: an acknowledged entry
    /// must be durable.
    pub fn new(pool: SqlitePool) -> Self {
        let file = pool.connect_options().get_filename().to_path_buf();
        let on_disk = !file.starts_with(":memory:")
            && !file.to_string_lossy().starts_with("file:")
            && file.is_file();
        SqliteLedgerStore {
            pool,
            direct: on_disk.then(|| Arc::new(Direct::new(file))),
        }
    }

    /// Applies the ledger's migrations (versions 1000-1999).
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        migrate_sqlite(&self.pool).await
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The store's own connections to its database file (there are none on an in-memory
    /// database).
    fn direct(&self) -> Result<&Arc<Direct>, LedgerError> {
        self.direct.as_ref().ok_or_else(|| {
            LedgerError::NotAFile(
                self.pool
                    .connect_options()
                    .get_filename()
                    .display()
                    .to_string(),
            )
        })
    }
}

/// Connections of its own on the database file, for the ledger's hot paths: appending
/// batches, and the bulk reads of full verification (pages of entries and of subtree
/// hashes).
///
/// sqlx runs each SQLite connection on a worker thread and hands every statement and
/// every row across threads: a scan stalls at about 0.4M rows/s, and a batch append is
/// six hand-offs plus a multi-row `INSERT` whose text (and so its cached statement)
/// changes with the batch size. Here a whole batch is one blocking call on one
/// long-lived connection with prepared single-row inserts (its page cache stays warm,
/// as only it writes the ledger tables), and a page of reads is one call on an idle
/// read-only connection. `rusqlite` links the same `libsqlite3-sys` as sqlx. WAL lets
/// the readers run beside the writer.
#[derive(Debug)]
struct Direct {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    writer: Mutex<Option<rusqlite::Connection>>,
}

/// The commit could not go ahead: another process appended since this one last looked.
struct HeadMoved(Head);

impl Direct {
    fn new(path: PathBuf) -> Self {
        Direct {
            path,
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
        }
    }

    /// Runs `read` on an idle connection (opening one if none is idle) on a blocking
    /// thread, then returns the connection for reuse.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let this = Arc::clone(self);
        blocking(move || {
            let idle = this.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = rusqlite::Connection::open_with_flags(
                        &this.path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(direct_error)?;
                    configure_direct(&conn).map_err(direct_error)?;
                    conn
                }
            };
            let out = read(&conn);
            if let Ok(mut idle) = this.idle.lock() {
                idle.push(conn);
            }
            out
        })
        .await
    }

    fn lock_writer(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<rusqlite::Connection>>, LedgerError> {
        self.writer
            .lock()
            .map_err(|_| LedgerError::Corrupt("the ledger writer connection is poisoned".into()))
    }

    /// Commits a sequenced batch in one `BEGIN IMMEDIATE` transaction if the log's head
    /// is still `expected`; `Ok(Err(HeadMoved))` hands back the head that was found.
    async fn commit(
        self: &Arc<Self>,
        expected: Head,
        seq: Sequenced,
        payloads: Vec<Vec<u8>>,
        side: Arc<Vec<(usize, SideRow)>>,
    ) -> Result<Result<Sequenced, HeadMoved>, LedgerError> {
        let this = Arc::clone(self);
        blocking(move || {
            let mut guard = this.lock_writer()?;
            if guard.is_none() {
                *guard = Some(open_writer(&this.path).map_err(direct_error)?);
            }
            let conn = guard
                .as_mut()
                .ok_or_else(|| LedgerError::Corrupt("no ledger writer connection".into()))?;
            let outcome = write_batch(conn, &expected, &seq, &payloads, &side);
            if outcome.is_err() {
                // A failed connection is not reused: the next batch opens a fresh one.
                *guard = None;
            }
            Ok(outcome?.map(|()| seq))
        })
        .await
    }
}

impl Direct {
    /// A passive WAL checkpoint on the writer's connection, holding it so that no batch
    /// commits meanwhile: it finishes with every frame copied, and the next batch then
    /// starts the WAL over from its beginning.
    async fn checkpoint_between_batches(self: &Arc<Self>) -> Result<(), LedgerError> {
        let this = Arc::clone(self);
        blocking(move || {
            let mut guard = this.lock_writer()?;
            let Some(conn) = guard.as_mut() else {
                return Ok(());
            };
            let (busy, _log, _copied): (i64, i64, i64) = conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(direct_error)?;
            if busy != 0 {
                tracing::debug!("ledger WAL checkpoint was blocked by a reader; retrying later");
            }
            Ok(())
        })
        .await
    }
}

/// The writer's connection, with the settings durability relies on.
fn open_writer(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure_direct(&conn)?;
    // Four ledger statements plus one per side table (about a dozen).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn write_batch(
    conn: &mut rusqlite::Connection,
    expected: &Head,
    seq: &Sequenced,
    payloads: &[Vec<u8>],
    side: &[(usize, SideRow)],
) -> Result<Result<(), HeadMoved>, LedgerError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(direct_error)?;
    let head = {
        let mut stmt = tx.prepare_cached(sql::HEAD).map_err(direct_error)?;
        let mut rows = stmt.query([]).map_err(direct_error)?;
        match rows.next().map_err(direct_error)? {
            None => Head::default(),
            Some(row) => Head {
                size: to_u64(row.get(0).map_err(direct_error)?)? + 1,
                last_leaf_hash: to_hash(blob_column(row, 1)?)?,
            },
        }
    };
    if head != *expected {
        // Dropping the transaction rolls it back.
        return Ok(Err(HeadMoved(head)));
    }
    {
        let mut leaves = tx
            .prepare_cached("INSERT INTO ledger_leaves (idx, leaf, leaf_hash) VALUES (?, ?, ?)")
            .map_err(direct_error)?;
        let mut bodies = tx
            .prepare_cached("INSERT INTO ledger_payloads (idx, payload) VALUES (?, ?)")
            .map_err(direct_error)?;
        for ((idx, leaf), (hash, payload)) in seq
            .indexes
            .iter()
            .zip(&seq.leaves)
            .zip(seq.leaf_hashes.iter().zip(payloads))
        {
            leaves
                .execute((idx, leaf, hash.as_slice()))
                .map_err(direct_error)?;
            bodies.execute((idx, payload)).map_err(direct_error)?;
        }
        let mut nodes = tx
            .prepare_cached("INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)")
            .map_err(direct_error)?;
        for ((level, idx), hash) in seq
            .node_levels
            .iter()
            .zip(&seq.node_indexes)
            .zip(&seq.node_hashes)
        {
            nodes
                .execute((stored_pos(*level, *idx)?, hash))
                .map_err(direct_error)?;
        }
        write_side_rows(&tx, seq, side)?;
        if let Some(cp) = &seq.checkpoint {
            tx.prepare_cached(sql::INSERT_CHECKPOINT)
                .map_err(direct_error)?
                .execute((to_i64(cp.checkpoint.size)?, &cp.note))
                .map_err(direct_error)?;
        }
    }
    tx.commit().map_err(direct_error)?;
    Ok(Ok(()))
}

/// Inserts each side row with its entry's index, one cached single-row statement per
/// table: on the direct writer a prepared insert per row is as fast as a multi-row one
/// and needs no SQL built per batch size.
fn write_side_rows(
    tx: &rusqlite::Transaction<'_>,
    seq: &Sequenced,
    side: &[(usize, SideRow)],
) -> Result<(), LedgerError> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    // One checked SQL text per table definition in the batch.
    let mut sql: Vec<(&'static SideTable, String)> = Vec::new();
    for (pos, row) in side {
        row.check_values()?;
        let idx = *seq
            .indexes
            .get(*pos)
            .ok_or_else(|| LedgerError::Corrupt("a side row has no entry".into()))?;
        let text = match sql.iter().find(|(table, _)| **table == *row.table) {
            Some((_, text)) => text,
            None => {
                sql.push((row.table, row.table.sqlite_insert()?));
                sql.last()
                    .map(|(_, t)| t)
                    .ok_or_else(|| LedgerError::Corrupt("a side statement went missing".into()))?
            }
        };
        let mut params = Vec::with_capacity(row.values.len() + 1);
        params.push(ToSqlOutput::Borrowed(ValueRef::Integer(idx)));
        for v in &row.values {
            params.push(ToSqlOutput::Borrowed(match v {
                SideValue::Null => ValueRef::Null,
                SideValue::Int(i) => ValueRef::Integer(*i),
                SideValue::Text(t) => ValueRef::Text(t.as_bytes()),
                SideValue::Bytes(b) => ValueRef::Blob(b),
            }));
        }
        tx.prepare_cached(text)
            .map_err(direct_error)?
            .execute(rusqlite::params_from_iter(params))
            .map_err(direct_error)?;
    }
    Ok(())
}

/// Runs `work` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LedgerError::Corrupt(format!("ledger database thread failed: {e}")))?
}

fn direct_error(e: rusqlite::Error) -> LedgerError {
    LedgerError::Sqlite(e.to_string())
}

fn direct_entries(
    conn: &rusqlite::Connection,
    from: i64,
    limit: i64,
) -> Result<Vec<Entry>, LedgerError> {
    let mut stmt = conn.prepare_cached(sql::ENTRIES).map_err(direct_error)?;
    let mut rows = stmt.query((from, limit)).map_err(direct_error)?;
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1 << 20));
    while let Some(row) = rows.next().map_err(direct_error)? {
        out.push(entry_from_parts(
            row.get(0).map_err(direct_error)?,
            row.get(1).map_err(direct_error)?,
            blob_column(row, 2)?,
            optional_bytes(row.get_ref(3).map_err(direct_error)?)?,
            row.get(4).map_err(direct_error)?,
            row.get(5).map_err(direct_error)?,
            row.get(6).map_err(direct_error)?,
        )?);
    }
    Ok(out)
}

/// The entries at `indexes` (sorted, distinct), by prepared point lookups in one
/// blocking call.
fn direct_entries_at(
    conn: &rusqlite::Connection,
    indexes: &[i64],
) -> Result<Vec<Entry>, LedgerError> {
    let mut stmt = conn.prepare_cached(sql::ENTRY_AT).map_err(direct_error)?;
    let mut out = Vec::with_capacity(indexes.len());
    for index in indexes {
        let mut rows = stmt.query([index]).map_err(direct_error)?;
        if let Some(row) = rows.next().map_err(direct_error)? {
            out.push(entry_from_parts(
                row.get(0).map_err(direct_error)?,
                row.get(1).map_err(direct_error)?,
                blob_column(row, 2)?,
                optional_bytes(row.get_ref(3).map_err(direct_error)?)?,
                row.get(4).map_err(direct_error)?,
                row.get(5).map_err(direct_error)?,
                row.get(6).map_err(direct_error)?,
            )?);
        }
    }
    Ok(out)
}

/// The hashes of `ids` (leaf hashes for level 0), by point lookups on the primary keys
/// with prepared statements: a proof's O(log n) nodes in one blocking call.
fn direct_read_nodes(
    conn: &rusqlite::Connection,
    ids: &[NodeId],
) -> Result<Vec<Hash>, LedgerError> {
    let mut leaves = conn
        .prepare_cached("SELECT leaf_hash FROM ledger_leaves WHERE idx = ?")
        .map_err(direct_error)?;
    let mut inner = conn
        .prepare_cached("SELECT hash FROM ledger_nodes WHERE pos = ?")
        .map_err(direct_error)?;
    ids.iter()
        .map(|id| {
            let (stmt, key) = if id.level == 0 {
                (&mut leaves, to_i64(id.index)?)
            } else {
                (&mut inner, node_pos(*id)?)
            };
            let mut rows = stmt.query([key]).map_err(direct_error)?;
            let row = rows.next().map_err(direct_error)?.ok_or_else(|| {
                LedgerError::Corrupt(format!(
                    "subtree hash at level {} index {} is missing",
                    id.level, id.index
                ))
            })?;
            to_hash(blob_column(row, 0)?)
        })
        .collect()
}

/// Column `i` of `row`, which must be a BLOB.
fn blob_column<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], LedgerError> {
    row.get_ref(i)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(direct_error)
}

/// A nullable BLOB column; TEXT is taken as its bytes, as sqlx does.
fn optional_bytes(value: rusqlite::types::ValueRef<'_>) -> Result<Option<Vec<u8>>, LedgerError> {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(Some(b.to_vec())),
        other => Err(LedgerError::Corrupt(format!(
            "a payload is stored as {:?}, not bytes",
            other.data_type()
        ))),
    }
}

fn direct_nodes(
    conn: &rusqlite::Connection,
    after: i64,
    limit: i64,
) -> Result<Vec<(NodeId, Hash)>, LedgerError> {
    let mut stmt = conn.prepare_cached(NODE_PAGE_SQL).map_err(direct_error)?;
    let mut rows = stmt.query((after, limit)).map_err(direct_error)?;
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1 << 20));
    while let Some(row) = rows.next().map_err(direct_error)? {
        let level: i32 = row.get(0).map_err(direct_error)?;
        out.push((
            node_id(level, row.get(1).map_err(direct_error)?)?,
            to_hash(blob_column(row, 2)?)?,
        ));
    }
    Ok(out)
}

/// Pages of the proof index in `pos` order (the order [`LedgerStore::node_page`] leaves
/// to the store).
const NODE_PAGE_SQL: &str =
    "SELECT level, idx, hash FROM ledger_nodes WHERE pos > ? ORDER BY pos LIMIT ?";

/// The `ledger_nodes` key of the subtree hash (`level`, `idx`): the index of the leaf that
/// completes it, times 64, plus its level (migration 1001 explains why).
pub(crate) fn node_pos(id: NodeId) -> Result<i64, LedgerError> {
    let end = id
        .index
        .checked_add(1)
        .and_then(|n| n.checked_shl(u32::from(id.level)))
        .filter(|n| n.leading_zeros() >= u32::from(id.level))
        .and_then(|n| n.checked_sub(1))
        .and_then(|end| end.checked_mul(64))
        .and_then(|p| p.checked_add(u64::from(id.level)));
    end.filter(|_| id.level < 64)
        .and_then(|p| i64::try_from(p).ok())
        .ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "subtree (level {}, index {}) is beyond the proof index's range",
                id.level, id.index
            ))
        })
}

fn stored_pos(level: i32, idx: i64) -> Result<i64, LedgerError> {
    node_pos(node_id(level, idx)?)
}

/// Applies the ledger's SQLite migrations, leaving other crates' migrations alone.
pub async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), LedgerError> {
    sql::run_migrations(sqlx::migrate!("./migrations/sqlite"), pool).await
}

sql::shared_functions!(sqlx::Sqlite);
crate::redact::redact_function!(sqlx::Sqlite, None);

impl LedgerStore for SqliteLedgerStore {
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
            let ids = ids.to_vec();
            self.direct()?
                .run(move |c| direct_read_nodes(c, &ids))
                .await
        })
    }

    fn append_batch<'a>(
        &'a self,
        state: &'a mut TreeState,
        plan: BatchPlan<'a>,
    ) -> BoxFuture<'a, Result<BatchCommitted, LedgerError>> {
        Box::pin(async move { append_direct(self.direct()?, state, plan).await })
    }

    fn node_page(
        &self,
        after: Option<NodeId>,
        limit: u64,
    ) -> BoxFuture<'_, Result<Vec<(NodeId, Hash)>, LedgerError>> {
        Box::pin(async move {
            let after = match after {
                Some(id) => node_pos(id)?,
                None => -1,
            };
            let limit = to_i64(limit)?;
            self.direct()?
                .run(move |c| direct_nodes(c, after, limit))
                .await
        })
    }

    fn entries(&self, from: u64, limit: u64) -> BoxFuture<'_, Result<Vec<Entry>, LedgerError>> {
        Box::pin(async move {
            let (from, limit) = (to_i64(from)?, to_i64(limit)?);
            self.direct()?
                .run(move |c| direct_entries(c, from, limit))
                .await
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
            self.direct()?
                .run(move |c| direct_entries_at(c, &wanted))
                .await
        })
    }

    fn maintain(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async move {
            // Phase 1, beside the writer: copy the WAL's frames into the database file.
            // A pass copies the frames there were when it began, then syncs the file;
            // the writer adds more meanwhile. Passes repeat while the last one saw many
            // new frames, so that phase 2 is left only the few added during a short one.
            let mut seen = 0;
            for _ in 0..MAX_CHECKPOINT_PASSES {
                let (_busy, log, _copied): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                        .fetch_one(&self.pool)
                        .await?;
                let added = log - seen;
                seen = log;
                if added <= CHECKPOINT_TAIL_FRAMES {
                    break;
                }
            }
            // Phase 2, between two batches: the frames committed during phase 1, on the
            // writer's own connection. Under steady load phase 1 never ends with every
            // frame copied, and SQLite restarts the WAL only then; without phase 2 the WAL
            // grows without bound (2.4 GB after 1.5M decisions, measured). It holds up
            // the next batch for its copy and an fsync of the database file: 13-23 ms
            // after one pass of phase 1 (~300 frames left), often ~1 ms after the passes
            // above (tens of frames), though the fsync alone sometimes takes 13 ms.
            if let Some(direct) = &self.direct {
                let started = std::time::Instant::now();
                direct.checkpoint_between_batches().await?;
                tracing::debug!(
                    millis = started.elapsed().as_secs_f64() * 1e3,
                    "ledger WAL checkpoint between batches"
                );
            }
            Ok(())
        })
    }
}

/// Sequences the batch after what this writer last committed and commits it on the
/// direct connection; when another process has appended meanwhile, re-reads the head's
/// frontier and sequences again.
async fn append_direct(
    direct: &Arc<Direct>,
    state: &mut TreeState,
    plan: BatchPlan<'_>,
) -> Result<BatchCommitted, LedgerError> {
    let payloads: Vec<Vec<u8>> = plan.entries.iter().map(|e| e.payload.clone()).collect();
    let side: Arc<Vec<(usize, SideRow)>> = Arc::new(
        plan.entries
            .iter()
            .enumerate()
            .flat_map(|(pos, e)| e.side.iter().map(move |row| (pos, row.clone())))
            .collect(),
    );
    let mut base = state.clone();
    let mut expected = Head {
        size: base.size(),
        last_leaf_hash: base.last_leaf_hash,
    };
    for _ in 0..MAX_HEAD_RETRIES {
        let mut next = base.clone();
        let first_index = next.size();
        let seq = sequence(&mut next, &plan)?;
        match direct
            .commit(expected, seq, payloads.clone(), side.clone())
            .await?
        {
            Ok(seq) => {
                *state = next;
                return Ok(BatchCommitted {
                    first_index,
                    leaf_hashes: seq.leaf_hashes,
                    checkpoint: seq.checkpoint,
                });
            }
            Err(HeadMoved(head)) => {
                let ids = frontier_ids(&head);
                let hashes = direct.run(move |c| direct_read_nodes(c, &ids)).await?;
                base = state_from(&head, hashes)?;
                expected = head;
            }
        }
    }
    Err(LedgerError::Sqlite(format!(
        "other processes moved the log's head {MAX_HEAD_RETRIES} times in a row; retry the append"
    )))
}

/// At most this many checkpoint passes beside the writer before the one between batches.
const MAX_CHECKPOINT_PASSES: usize = 8;
/// Checkpoint passes beside the writer stop once one saw at most this many new frames.
const CHECKPOINT_TAIL_FRAMES: i64 = 32;
/// How often one batch re-sequences after other processes appended first.
const MAX_HEAD_RETRIES: usize = 64;

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "a short index is a test failure")]
mod tests {
    use super::*;

    /// The store's own readers decode every stored form: a plain entry, a redacted one,
    /// one without a payload row, a TEXT payload, subtree hashes, and bad hashes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_reads_decode_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_sqlite(&dir.path().join("l.db"), true).await.unwrap();
        let store = SqliteLedgerStore::new(pool.clone());
        store.migrate().await.unwrap();
        for i in 0..5_i64 {
            sqlx::query("INSERT INTO ledger_leaves (idx, leaf, leaf_hash) VALUES (?, ?, ?)")
                .bind(i)
                .bind(vec![u8::try_from(i).unwrap(); 3])
                .bind(vec![u8::try_from(i).unwrap(); 32])
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)")
                .bind(
                    node_pos(NodeId {
                        level: 1,
                        index: u64::try_from(i).unwrap(),
                    })
                    .unwrap(),
                )
                .bind(vec![10 + u8::try_from(i).unwrap(); 32])
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO ledger_payloads (idx, payload) VALUES (0, '{}'), (2, '[1]')")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO ledger_payloads VALUES (3, NULL, 'dpo', 'gdpr erasure', 5)")
            .execute(&pool)
            .await
            .unwrap();

        let entry = |i: u8, payload: Option<&[u8]>, tombstone| Entry {
            index: u64::from(i),
            leaf: vec![i; 3],
            leaf_hash: [i; 32],
            payload: payload.map(<[u8]>::to_vec),
            tombstone,
        };
        let dpo = crate::Tombstone {
            by: "dpo".into(),
            reason: "gdpr erasure".into(),
            at: lexecon_core::Timestamp::from_unix_micros(5),
        };
        assert_eq!(
            store.entries(1, 10).await.unwrap(),
            [
                entry(1, None, None),
                entry(2, Some(b"[1]"), None),
                entry(3, None, Some(dpo)),
                entry(4, None, None),
            ]
        );
        assert_eq!(
            store
                .node_page(Some(NodeId { level: 1, index: 1 }), 2)
                .await
                .unwrap(),
            [
                (NodeId { level: 1, index: 2 }, [12; 32]),
                (NodeId { level: 1, index: 3 }, [13; 32]),
            ]
        );
        let ids = [
            NodeId { level: 0, index: 1 },
            NodeId { level: 1, index: 3 },
            NodeId { level: 0, index: 4 },
        ];
        assert_eq!(
            store.nodes(&ids).await.unwrap(),
            [[1; 32], [13; 32], [4; 32]]
        );
        let missing = [NodeId {
            level: 1,
            index: 99,
        }];
        assert!(store.nodes(&missing).await.is_err());

        // A bad stored hash is reported, not panicked on.
        sqlx::query("UPDATE ledger_leaves SET leaf_hash = x'00' WHERE idx = 4")
            .execute(&pool)
            .await
            .unwrap();
        assert!(store.entries(0, 10).await.is_err());
    }

    /// Subtree hashes come into being in `pos` order (so a batch appends to the end of the
    /// table), and SQLite's generated `level` and `idx` columns invert [`node_pos`].
    #[tokio::test]
    async fn node_positions_grow_in_creation_order_and_invert_in_sql() {
        let mut frontier = crate::merkle::Frontier::new();
        let mut ids = Vec::new();
        for i in 0..5_000_u64 {
            frontier.push([u8::try_from(i % 251).unwrap(); 32], |id, _| {
                if id.level > 0 {
                    ids.push(id);
                }
            });
        }
        assert_eq!(ids.len(), 5_000 - 5_000_u64.count_ones() as usize);
        let pos: Vec<i64> = ids.iter().map(|id| node_pos(*id).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "not in creation order");

        let dir = tempfile::tempdir().unwrap();
        let pool = open_sqlite(&dir.path().join("l.db"), true).await.unwrap();
        migrate_sqlite(&pool).await.unwrap();
        for (p, id) in pos.iter().zip(&ids) {
            sqlx::query("INSERT INTO ledger_nodes (pos, hash) VALUES (?, ?)")
                .bind(p)
                .bind(vec![id.level; 32])
                .execute(&pool)
                .await
                .unwrap();
        }
        let rows: Vec<(i32, i64)> =
            sqlx::query_as("SELECT level, idx FROM ledger_nodes ORDER BY pos")
                .fetch_all(&pool)
                .await
                .unwrap();
        let back: Vec<NodeId> = rows
            .into_iter()
            .map(|(l, i)| node_id(l, i).unwrap())
            .collect();
        assert_eq!(back, ids);
        let hashes = SqliteLedgerStore::new(pool)
            .nodes(&ids[100..110])
            .await
            .unwrap();
        assert_eq!(
            hashes,
            ids[100..110]
                .iter()
                .map(|id| [id.level; 32])
                .collect::<Vec<_>>()
        );

        assert!(
            node_pos(NodeId {
                level: 64,
                index: 0
            })
            .is_err()
        );
        assert!(
            node_pos(NodeId {
                level: 1,
                index: u64::MAX
            })
            .is_err()
        );
        assert!(
            node_pos(NodeId {
                level: 40,
                index: 1 << 30
            })
            .is_err()
        );
    }

    /// Migration 1001 re-keys a proof index written under 1000 without losing a hash.
    #[tokio::test]
    async fn migration_1001_rekeys_existing_subtree_hashes() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql(include_str!("../migrations/sqlite/1000_ledger_init.sql"))
            .execute(&mut *conn)
            .await
            .unwrap();
        let ids: [(i32, i64); 8] = [
            (1, 0),
            (1, 1),
            (2, 0),
            (1, 2),
            (1, 3),
            (2, 1),
            (3, 0),
            (1, 4),
        ];
        let byte = |level: i32, idx: i64| u8::try_from(i64::from(level) * 10 + idx).unwrap();
        for (level, idx) in ids {
            sqlx::query("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)")
                .bind(level)
                .bind(idx)
                .bind(vec![byte(level, idx); 32])
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql(include_str!(
            "../migrations/sqlite/1001_ledger_nodes_by_position.sql"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        let rows: Vec<(i64, i32, i64, Vec<u8>)> =
            sqlx::query_as("SELECT pos, level, idx, hash FROM ledger_nodes ORDER BY pos")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        assert_eq!(rows.len(), ids.len());
        for ((pos, level, idx, hash), want) in rows.iter().zip(ids) {
            assert_eq!((*level, *idx), want, "creation order");
            assert_eq!(*pos, stored_pos(*level, *idx).unwrap());
            assert_eq!(
                hash,
                &vec![u8::try_from(level * 10 + i32::try_from(*idx).unwrap()).unwrap(); 32]
            );
        }
    }

    /// An in-memory database would lose acknowledged entries: the store refuses to read
    /// or append the log there, and says what to do.
    #[tokio::test]
    async fn an_in_memory_database_is_refused() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let store = SqliteLedgerStore::new(pool);
        store.migrate().await.unwrap();
        let err = crate::load_state(&store).await.unwrap_err();
        assert!(matches!(err, LedgerError::NotAFile(_)), "{err}");
        assert!(err.to_string().contains("sqlite://PATH"), "{err}");
        let hook = |_: &crate::merkle::Frontier| Ok(None);
        let plan = BatchPlan {
            entries: &[],
            timestamp: lexecon_core::Timestamp::from_unix_micros(0),
            checkpoint: &hook,
        };
        let err = store
            .append_batch(&mut TreeState::default(), plan)
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::NotAFile(_)), "{err}");
    }
}
