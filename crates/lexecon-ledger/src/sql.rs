//! What the SQLite and PostgreSQL stores share: their migration runner and the statements
//! they both run, each written once. `$n` placeholders and `ON CONFLICT` mean the same to
//! both (and to `rusqlite`, which numbers `$n` parameters in order of appearance, so they
//! appear in order here). The dialects' real differences stay in `sqlite.rs` and
//! `postgres.rs`: how a batch is locked and inserted, and how subtree hashes are keyed.

use lexecon_core::Timestamp;

use crate::entry::{Entry, Tombstone};
use crate::error::LedgerError;
use crate::merkle::NodeId;
use crate::store::{to_hash, to_u64};

/// The last leaf: the log's head.
pub(crate) const HEAD: &str = "SELECT idx, leaf_hash FROM ledger_leaves ORDER BY idx DESC LIMIT 1";

/// A page of entries with their payloads or tombstones (decoded by [`entry_from_parts`]).
pub(crate) const ENTRIES: &str = "SELECT l.idx, l.leaf, l.leaf_hash, p.payload, p.redacted_by, p.redacted_reason, p.redacted_at \
     FROM ledger_leaves l LEFT JOIN ledger_payloads p ON p.idx = l.idx \
     WHERE l.idx >= $1 ORDER BY l.idx LIMIT $2";

/// One entry with its payload or tombstone (SQLite: a prepared point lookup per index).
pub(crate) const ENTRY_AT: &str = "SELECT l.idx, l.leaf, l.leaf_hash, p.payload, p.redacted_by, p.redacted_reason, p.redacted_at \
     FROM ledger_leaves l LEFT JOIN ledger_payloads p ON p.idx = l.idx WHERE l.idx = $1";

/// The entries at a set of indexes (PostgreSQL: one statement over an array).
pub(crate) const ENTRIES_AT_PG: &str = "SELECT l.idx, l.leaf, l.leaf_hash, p.payload, p.redacted_by, p.redacted_reason, p.redacted_at \
     FROM ledger_leaves l LEFT JOIN ledger_payloads p ON p.idx = l.idx \
     WHERE l.idx = ANY($1) ORDER BY l.idx";

/// Stores a checkpoint; one of the same size already stored wins.
pub(crate) const INSERT_CHECKPOINT: &str =
    "INSERT INTO ledger_checkpoints (size, note) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING";

/// Checkpoints with sizes in a range.
pub(crate) const CHECKPOINTS: &str =
    "SELECT size, note FROM ledger_checkpoints WHERE size >= $1 AND size <= $2 ORDER BY size";
/// The checkpoint with the largest size.
pub(crate) const LATEST_CHECKPOINT: &str =
    "SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1";
/// Erases a payload and records its tombstone.
pub(crate) const REDACT: &str = "UPDATE ledger_payloads SET payload = NULL, redacted_by = $1, redacted_reason = $2, redacted_at = $3 WHERE idx = $4";
/// A stored setting.
pub(crate) const META: &str = "SELECT value FROM ledger_meta WHERE key = $1";
/// Stores a setting, replacing its value.
pub(crate) const SET_META: &str = "INSERT INTO ledger_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Defines, for the sqlx database `$db`, the functions behind [`shared_methods`] and the
/// append paths: `read_head` and `insert_checkpoint`, `read_checkpoints`,
/// `read_latest_checkpoint`, `redact_payload`, `read_meta`, `write_meta`.
macro_rules! shared_functions {
    ($db:ty) => {
        async fn read_head<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
        ) -> Result<$crate::store::Head, $crate::LedgerError> {
            use sqlx::Row as _;
            let row = sqlx::query($crate::sql::HEAD).fetch_optional(exec).await?;
            match row {
                None => Ok($crate::store::Head::default()),
                Some(row) => Ok($crate::store::Head {
                    size: $crate::store::to_u64(row.try_get::<i64, _>(0)?)? + 1,
                    last_leaf_hash: $crate::store::to_hash(row.try_get::<&[u8], _>(1)?)?,
                }),
            }
        }

        async fn insert_checkpoint<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            cp: &$crate::SignedCheckpoint,
        ) -> Result<(), $crate::LedgerError> {
            sqlx::query($crate::sql::INSERT_CHECKPOINT)
                .bind($crate::store::to_i64(cp.checkpoint.size)?)
                .bind(&cp.note)
                .execute(exec)
                .await?;
            Ok(())
        }

        async fn read_checkpoints<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            from: u64,
            to: u64,
        ) -> Result<Vec<$crate::StoredCheckpoint>, $crate::LedgerError> {
            use sqlx::Row as _;
            let rows = sqlx::query($crate::sql::CHECKPOINTS)
                .bind($crate::store::to_i64(from)?)
                .bind($crate::store::to_i64(to.min(i64::MAX as u64))?)
                .fetch_all(exec)
                .await?;
            rows.into_iter()
                .map(|row| $crate::sql::checkpoint(row.try_get(0)?, row.try_get(1)?))
                .collect()
        }

        async fn read_latest_checkpoint<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
        ) -> Result<Option<$crate::StoredCheckpoint>, $crate::LedgerError> {
            use sqlx::Row as _;
            let row = sqlx::query($crate::sql::LATEST_CHECKPOINT)
                .fetch_optional(exec)
                .await?;
            row.map(|row| $crate::sql::checkpoint(row.try_get(0)?, row.try_get(1)?))
                .transpose()
        }

        async fn redact_payload<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            index: u64,
            tombstone: &$crate::Tombstone,
        ) -> Result<(), $crate::LedgerError> {
            let done = sqlx::query($crate::sql::REDACT)
                .bind(&tombstone.by)
                .bind(&tombstone.reason)
                .bind(tombstone.at.unix_micros())
                .bind($crate::store::to_i64(index)?)
                .execute(exec)
                .await?;
            if done.rows_affected() == 0 {
                return Err($crate::LedgerError::NoSuchEntry(index));
            }
            Ok(())
        }

        async fn read_meta<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            key: &str,
        ) -> Result<Option<String>, $crate::LedgerError> {
            Ok(sqlx::query_scalar($crate::sql::META)
                .bind(key)
                .fetch_optional(exec)
                .await?)
        }

        async fn write_meta<'e>(
            exec: impl sqlx::Executor<'e, Database = $db>,
            key: &str,
            value: &str,
        ) -> Result<(), $crate::LedgerError> {
            sqlx::query($crate::sql::SET_META)
                .bind(key)
                .bind(value)
                .execute(exec)
                .await?;
            Ok(())
        }
    };
}

/// The `LedgerStore` methods that run the same statements through the store's `pool`
/// on either database, for an `impl LedgerStore` block in a module that invoked
/// [`shared_functions`].
macro_rules! shared_methods {
    () => {
        fn head(&self) -> $crate::BoxFuture<'_, Result<$crate::store::Head, $crate::LedgerError>> {
            Box::pin(read_head(&self.pool))
        }

        fn put_checkpoint<'a>(
            &'a self,
            checkpoint: &'a $crate::SignedCheckpoint,
        ) -> $crate::BoxFuture<'a, Result<(), $crate::LedgerError>> {
            Box::pin(insert_checkpoint(&self.pool, checkpoint))
        }

        fn checkpoints(
            &self,
            from: u64,
            to: u64,
        ) -> $crate::BoxFuture<'_, Result<Vec<$crate::StoredCheckpoint>, $crate::LedgerError>> {
            Box::pin(read_checkpoints(&self.pool, from, to))
        }

        fn latest_checkpoint(
            &self,
        ) -> $crate::BoxFuture<'_, Result<Option<$crate::StoredCheckpoint>, $crate::LedgerError>> {
            Box::pin(read_latest_checkpoint(&self.pool))
        }

        fn redact<'a>(
            &'a self,
            index: u64,
            tombstone: &'a $crate::Tombstone,
        ) -> $crate::BoxFuture<'a, Result<(), $crate::LedgerError>> {
            Box::pin(redact_payload(&self.pool, index, tombstone))
        }

        fn meta<'a>(
            &'a self,
            key: &'a str,
        ) -> $crate::BoxFuture<'a, Result<Option<String>, $crate::LedgerError>> {
            Box::pin(read_meta(&self.pool, key))
        }

        fn set_meta<'a>(
            &'a self,
            key: &'a str,
            value: &'a str,
        ) -> $crate::BoxFuture<'a, Result<(), $crate::LedgerError>> {
            Box::pin(write_meta(&self.pool, key, value))
        }
    };
}

pub(crate) use {shared_functions, shared_methods};

/// Applies the ledger's migrations (versions 1000-1999) with `migrator`, leaving other
/// crates' migrations, recorded in the same table, alone.
pub(crate) async fn run_migrations<'a, A>(
    mut migrator: sqlx::migrate::Migrator,
    pool: A,
) -> Result<(), LedgerError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// A stored checkpoint from its row.
pub(crate) fn checkpoint(size: i64, note: String) -> Result<crate::StoredCheckpoint, LedgerError> {
    Ok(crate::StoredCheckpoint {
        size: to_u64(size)?,
        note,
    })
}

/// The id of a subtree hash from its stored `level` and `idx`.
pub(crate) fn node_id(level: i32, index: i64) -> Result<NodeId, LedgerError> {
    Ok(NodeId {
        level: u8::try_from(level)
            .map_err(|_| LedgerError::Corrupt(format!("node level {level}")))?,
        index: to_u64(index)?,
    })
}

/// An entry from the columns of [`ENTRIES`].
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
