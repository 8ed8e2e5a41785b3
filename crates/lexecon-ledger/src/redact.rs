//! Guarded redaction: erase an entry's payload only if checks read inside the same
//! transaction allow it, and erase the caller's copies of the entry's fields in that
//! transaction too, so the tombstone and the erasures commit together or not at all.
//!
//! The ledger knows nothing of what the checks and copies mean (legal holds, indexes):
//! a [`RedactPlan`] carries the SQL of each check with a Rust predicate over its rows,
//! and the SQL of each erasure. Statements are `'static` (written by the caller, never
//! built from input); every value goes in as a bind.

use crate::side::SideValue;

/// The rows a guard query returned: each column as text (`NULL` = `None`). Guard
/// queries select text columns only (`CAST(x AS TEXT)` for numbers), so both databases
/// read them the same way.
pub type GuardRows = [Vec<Option<String>>];

/// A predicate over a guard query's rows: `Err(why)` refuses the redaction.
pub type GuardCheck = Box<dyn Fn(&GuardRows) -> Result<(), String> + Send + Sync>;

/// A check run inside the redaction's transaction, after the tombstone is written (so,
/// on SQLite, the write lock is held and nothing can change what it reads).
pub struct RedactGuard {
    /// The query (`$1`, `$2`, ... bound to `binds` in order), selecting text columns.
    pub query: &'static str,
    /// Its bind values.
    pub binds: Vec<SideValue>,
    /// Decides from the rows whether the redaction may go ahead.
    pub check: GuardCheck,
}

impl std::fmt::Debug for RedactGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactGuard")
            .field("query", &self.query)
            .field("binds", &self.binds)
            .finish_non_exhaustive()
    }
}

/// One erasure of a copy of the entry's fields, run in the redaction's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactErase {
    /// What the statement erases (reported when it changed at least one row).
    pub name: &'static str,
    /// The statement (`$1`, `$2`, ... bound to `binds` in order).
    pub sql: &'static str,
    /// Its bind values.
    pub binds: Vec<SideValue>,
}

/// What a guarded redaction checks and erases besides the payload.
///
/// No entry (and so no side row) can commit between the guards' reads and the
/// redaction's commit: on SQLite the tombstone, written first, takes the database's
/// write lock; on PostgreSQL the transaction first takes the lock every append takes.
#[derive(Debug, Default)]
pub struct RedactPlan {
    /// The checks; the first to refuse rolls everything back.
    pub guards: Vec<RedactGuard>,
    /// The erasures, in order; one that fails rolls everything back.
    pub erase: Vec<RedactErase>,
}

/// Erases a payload not yet redacted and records its tombstone.
pub(crate) const REDACT_ONCE: &str = "UPDATE ledger_payloads SET payload = NULL, redacted_by = $1, \
     redacted_reason = $2, redacted_at = $3 WHERE idx = $4 AND redacted_by IS NULL";

/// Whether an entry has a payload row.
pub(crate) const PAYLOAD_EXISTS: &str = "SELECT COUNT(*) FROM ledger_payloads WHERE idx = $1";

/// Defines, for the sqlx database `$db`, `redact_with_plan`: the guarded redaction in
/// one transaction (invoked by the SQLite and PostgreSQL stores).
macro_rules! redact_function {
    ($db:ty, $append_lock:expr) => {
        fn bind_side<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            value: &'q $crate::SideValue,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            match value {
                $crate::SideValue::Null => query.bind(None::<String>),
                $crate::SideValue::Int(i) => query.bind(*i),
                $crate::SideValue::Text(s) => query.bind(s.as_str()),
                $crate::SideValue::Bytes(b) => query.bind(b.as_slice()),
            }
        }

        async fn redact_with_plan(
            pool: &sqlx::Pool<$db>,
            index: u64,
            tombstone: &$crate::Tombstone,
            plan: &$crate::RedactPlan,
        ) -> Result<Vec<&'static str>, $crate::LedgerError> {
            use sqlx::Row as _;
            let idx = $crate::store::to_i64(index)?;
            let mut tx = pool.begin().await?;
            let append_lock: Option<(&'static str, i64)> = $append_lock;
            if let Some((statement, key)) = append_lock {
                sqlx::query(statement).bind(key).execute(&mut *tx).await?;
            }
            let done = sqlx::query($crate::redact::REDACT_ONCE)
                .bind(&tombstone.by)
                .bind(&tombstone.reason)
                .bind(tombstone.at.unix_micros())
                .bind(idx)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                let n: i64 = sqlx::query_scalar($crate::redact::PAYLOAD_EXISTS)
                    .bind(idx)
                    .fetch_one(&mut *tx)
                    .await?;
                return Err(if n == 0 {
                    $crate::LedgerError::NoSuchEntry(index)
                } else {
                    $crate::LedgerError::AlreadyRedacted(index)
                });
            }
            for guard in &plan.guards {
                let mut q = sqlx::query(guard.query);
                for b in &guard.binds {
                    q = bind_side(q, b);
                }
                let rows = q.fetch_all(&mut *tx).await?;
                let mut read = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut cols = Vec::with_capacity(row.len());
                    for i in 0..row.len() {
                        cols.push(row.try_get::<Option<String>, _>(i)?);
                    }
                    read.push(cols);
                }
                if let Err(why) = (guard.check)(&read) {
                    tx.rollback().await?;
                    return Err($crate::LedgerError::Refused(why));
                }
            }
            let mut erased = Vec::new();
            for e in &plan.erase {
                let mut q = sqlx::query(e.sql);
                for b in &e.binds {
                    q = bind_side(q, b);
                }
                if q.execute(&mut *tx).await?.rows_affected() > 0 && !erased.contains(&e.name) {
                    erased.push(e.name);
                }
            }
            tx.commit().await?;
            Ok(erased)
        }
    };
}

pub(crate) use redact_function;
