//! The audit tables (migrations 4004 and 4007) behind one trait, written once for SQLite
//! and PostgreSQL: `$n` placeholders, `ON CONFLICT`, `CAST(.. AS BIGINT)` mean the same to
//! both. Index and export rows are written as ledger side rows; this store only reads,
//! except for the backfill of decisions written before the index existed.

use sqlx::Row as _;

use super::super::EngineError;
use crate::db::Database;

/// One `engine_decision_index` row, with whether its entry's payload was redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub idx: i64,
    pub decision_id: String,
    pub decided_at: i64,
    pub principal: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub tool: Option<String>,
    pub outcome: i64,
    pub risk_score: Option<i64>,
    pub policy_hash: Option<Vec<u8>>,
    pub reasons: Option<String>,
    pub escalation_id: Option<String>,
    pub override_id: Option<String>,
    pub redacted: bool,
}

/// The SQL predicates of a decision query (globs other than a literal actor are
/// filtered by the caller).
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexFilter {
    /// Only `idx < before`.
    pub before: Option<i64>,
    /// Only `idx >= from` (exports: pages in index order).
    pub from: Option<i64>,
    pub outcome: Option<i64>,
    /// `decided_at >= since`.
    pub since: Option<i64>,
    /// `decided_at < until`.
    pub until: Option<i64>,
    pub min_risk: Option<i64>,
    pub policy_hash: Option<Vec<u8>>,
    /// `actor = ...` (a literal actor glob).
    pub actor: Option<String>,
    /// Newest first when false.
    pub ascending: bool,
    pub limit: i64,
}

/// One `engine_audit_exports` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportRow {
    pub idx: i64,
    pub export_id: String,
    pub exported_by: String,
    pub exported_at: i64,
    pub tree_size: i64,
    pub decisions: i64,
    pub manifest_sha256: Vec<u8>,
    pub filters: String,
}

/// The backfill's progress: entries below `upto` are scanned from `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackfillState {
    pub next: i64,
    pub upto: i64,
}

enum Bind {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

const ROW_COLUMNS: &str = "d.idx, d.decision_id, d.decided_at, d.principal, d.actor, d.action, \
    d.tool, CAST(d.outcome AS BIGINT) AS outcome, d.risk_score, d.policy_hash, d.reasons, \
    d.escalation_id, d.override_id, \
    CAST(CASE WHEN p.redacted_by IS NULL THEN 0 ELSE 1 END AS BIGINT) AS redacted";

fn index_sql(f: &IndexFilter) -> (String, Vec<Bind>) {
    let mut sql = format!(
        "SELECT {ROW_COLUMNS} FROM engine_decision_index d \
         LEFT JOIN ledger_payloads p ON p.idx = d.idx WHERE 1 = 1"
    );
    let mut binds = Vec::new();
    let mut push = |sql: &mut String, clause: &str, b: Bind| {
        binds.push(b);
        sql.push_str(&format!(" AND {clause} ${}", binds.len()));
    };
    if let Some(v) = f.before {
        push(&mut sql, "d.idx <", Bind::Int(v));
    }
    if let Some(v) = f.from {
        push(&mut sql, "d.idx >=", Bind::Int(v));
    }
    if let Some(v) = f.outcome {
        push(&mut sql, "d.outcome =", Bind::Int(v));
    }
    if let Some(v) = f.since {
        push(&mut sql, "d.decided_at >=", Bind::Int(v));
    }
    if let Some(v) = f.until {
        push(&mut sql, "d.decided_at <", Bind::Int(v));
    }
    if let Some(v) = f.min_risk {
        push(&mut sql, "d.risk_score >=", Bind::Int(v));
    }
    if let Some(v) = &f.policy_hash {
        push(&mut sql, "d.policy_hash =", Bind::Bytes(v.clone()));
    }
    if let Some(v) = &f.actor {
        push(&mut sql, "d.actor =", Bind::Text(v.clone()));
    }
    sql.push_str(if f.ascending {
        " ORDER BY d.idx ASC"
    } else {
        " ORDER BY d.idx DESC"
    });
    binds.push(Bind::Int(f.limit));
    sql.push_str(&format!(" LIMIT ${}", binds.len()));
    (sql, binds)
}

/// Where the audit tables are.
#[async_trait::async_trait]
pub(crate) trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Index rows matching `filter`.
    async fn index_rows(&self, filter: &IndexFilter) -> Result<Vec<StoredRow>, EngineError>;
    /// The backfill's progress, if it was ever started.
    async fn backfill_state(&self) -> Result<Option<BackfillState>, EngineError>;
    /// Starts the backfill (unless started already): everything below the first indexed
    /// entry, or below `size` when nothing is indexed yet, is to be scanned.
    async fn start_backfill(&self, size: i64) -> Result<BackfillState, EngineError>;
    /// Writes backfilled rows (`ON CONFLICT DO NOTHING`) and moves `next` forward to
    /// `next`, in one transaction.
    async fn backfill_rows(
        &self,
        rows: &[(i64, lexecon_ledger::SideRow)],
        next: i64,
    ) -> Result<(), EngineError>;
    /// A page of exports, newest first, below `before`.
    async fn exports(&self, before: Option<i64>, limit: i64)
    -> Result<Vec<ExportRow>, EngineError>;
}

macro_rules! audit_store {
    ($name:ident, $pool:ty, $row:ty, $db:ty) => {
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub(crate) $pool);

        fn stored_row(row: &$row) -> Result<StoredRow, sqlx::Error> {
            Ok(StoredRow {
                idx: row.try_get("idx")?,
                decision_id: row.try_get("decision_id")?,
                decided_at: row.try_get("decided_at")?,
                principal: row.try_get("principal")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                tool: row.try_get("tool")?,
                outcome: row.try_get("outcome")?,
                risk_score: row.try_get("risk_score")?,
                policy_hash: row.try_get("policy_hash")?,
                reasons: row.try_get("reasons")?,
                escalation_id: row.try_get("escalation_id")?,
                override_id: row.try_get("override_id")?,
                redacted: row.try_get::<i64, _>("redacted")? != 0,
            })
        }

        #[async_trait::async_trait]
        impl AuditStore for $name {
            async fn index_rows(
                &self,
                filter: &IndexFilter,
            ) -> Result<Vec<StoredRow>, EngineError> {
                let (sql, binds) = index_sql(filter);
                let mut q = sqlx::query::<$db>(&sql);
                for b in binds {
                    q = match b {
                        Bind::Int(v) => q.bind(v),
                        Bind::Text(v) => q.bind(v),
                        Bind::Bytes(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(&self.0).await?;
                Ok(rows.iter().map(stored_row).collect::<Result<_, _>>()?)
            }

            async fn backfill_state(&self) -> Result<Option<BackfillState>, EngineError> {
                let row = sqlx::query::<$db>(
                    "SELECT next, upto FROM engine_decision_index_backfill WHERE id = 1",
                )
                .fetch_optional(&self.0)
                .await?;
                Ok(match row {
                    Some(r) => Some(BackfillState {
                        next: r.try_get("next")?,
                        upto: r.try_get("upto")?,
                    }),
                    None => None,
                })
            }

            async fn start_backfill(&self, size: i64) -> Result<BackfillState, EngineError> {
                sqlx::query::<$db>(
                    "INSERT INTO engine_decision_index_backfill (id, next, upto) \
                     SELECT 1, 0, COALESCE(MIN(idx), $1) FROM engine_decision_index WHERE 1 = 1 \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(size)
                .execute(&self.0)
                .await?;
                self.backfill_state().await?.ok_or_else(|| {
                    EngineError::Corrupt("the decision index backfill state vanished".into())
                })
            }

            async fn backfill_rows(
                &self,
                rows: &[(i64, lexecon_ledger::SideRow)],
                next: i64,
            ) -> Result<(), EngineError> {
                use lexecon_ledger::{SideType, SideValue};
                let table = &crate::engine::journal::DECISION_INDEX;
                let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
                let marks: Vec<String> = (1..=columns.len() + 1).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "INSERT INTO {} (idx, {}) VALUES ({}) ON CONFLICT (idx) DO NOTHING",
                    table.name,
                    columns.join(", "),
                    marks.join(", ")
                );
                let mut tx = self.0.begin().await?;
                for (idx, row) in rows {
                    let mut q = sqlx::query::<$db>(&sql).bind(*idx);
                    for (v, (_, ty)) in row.values.iter().zip(table.columns) {
                        q = match v {
                            SideValue::Null => match ty {
                                SideType::Int => q.bind(None::<i64>),
                                SideType::Text => q.bind(None::<String>),
                                SideType::Bytes => q.bind(None::<Vec<u8>>),
                            },
                            SideValue::Int(i) => q.bind(*i),
                            SideValue::Text(t) => q.bind(t.clone()),
                            SideValue::Bytes(b) => q.bind(b.clone()),
                        };
                    }
                    q.execute(&mut *tx).await?;
                }
                sqlx::query::<$db>(
                    "UPDATE engine_decision_index_backfill SET next = $1 WHERE id = 1 AND next < $1",
                )
                .bind(next)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn exports(
                &self,
                before: Option<i64>,
                limit: i64,
            ) -> Result<Vec<ExportRow>, EngineError> {
                let rows = sqlx::query::<$db>(
                    "SELECT idx, export_id, exported_by, exported_at, tree_size, decisions, \
                     manifest_sha256, filters FROM engine_audit_exports \
                     WHERE idx < $1 ORDER BY idx DESC LIMIT $2",
                )
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.0)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ExportRow {
                            idx: r.try_get("idx")?,
                            export_id: r.try_get("export_id")?,
                            exported_by: r.try_get("exported_by")?,
                            exported_at: r.try_get("exported_at")?,
                            tree_size: r.try_get("tree_size")?,
                            decisions: r.try_get("decisions")?,
                            manifest_sha256: r.try_get("manifest_sha256")?,
                            filters: r.try_get("filters")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(EngineError::from)
            }
        }
    };
}

mod sqlite {
    use super::*;
    audit_store!(
        SqliteAuditStore,
        sqlx::SqlitePool,
        sqlx::sqlite::SqliteRow,
        sqlx::Sqlite
    );
}

mod postgres {
    use super::*;
    audit_store!(
        PgAuditStore,
        sqlx::PgPool,
        sqlx::postgres::PgRow,
        sqlx::Postgres
    );
}

/// The audit store on the shared database.
pub(crate) fn on(db: &Database) -> Box<dyn AuditStore> {
    match db {
        Database::Sqlite(pool) => Box::new(sqlite::SqliteAuditStore(pool.clone())),
        Database::Postgres(pool) => Box::new(postgres::PgAuditStore(pool.clone())),
    }
}
