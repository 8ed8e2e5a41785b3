//! The SQL store (SQLite and PostgreSQL through sqlx): durable spend shared by replicas.
//!
//! Every operation is one transaction. On PostgreSQL it first locks the rows of the
//! scopes it touches in `budget_scopes`, in sorted order (so two transactions never
//! deadlock), then checks and updates; on SQLite `BEGIN IMMEDIATE` takes the database's
//! write lock up front. Either way a check and its update are atomic, so replicas
//! sharing the database stay exact.

use lexecon_core::{ReservationId, Timestamp};
use sqlx::{PgPool, SqlitePool};

use super::{
    BoxFuture, BudgetStore, ReleaseReason, ReservationRecord, ReserveOutcome, ReserveRequest,
    ScopeUsage, SettleOutcome, StoreError,
};
use crate::period::Period;

/// Creates or updates the budget tables in a SQLite database.
pub async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    // Other crates' migrations share `_sqlx_migrations`; ours must not fail on them.
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Creates or updates the budget tables in a PostgreSQL database.
pub async fn migrate_postgres(pool: &PgPool) -> Result<(), StoreError> {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Budget counters in SQLite or PostgreSQL, on a pool the engine opened.
#[derive(Debug, Clone)]
pub struct SqlBudgetStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl SqlBudgetStore {
    /// A store in a SQLite database; call [`SqlBudgetStore::migrate`] once first.
    pub fn sqlite(pool: SqlitePool) -> Self {
        SqlBudgetStore {
            backend: Backend::Sqlite(pool),
        }
    }

    /// A store in a PostgreSQL database; call [`SqlBudgetStore::migrate`] once first.
    pub fn postgres(pool: PgPool) -> Self {
        SqlBudgetStore {
            backend: Backend::Postgres(pool),
        }
    }

    /// Creates or updates the budget tables (migrations 2000-2999).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => migrate_sqlite(pool).await,
            Backend::Postgres(pool) => migrate_postgres(pool).await,
        }
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} does not fit a BIGINT")))
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative counter {v}")))
}

fn state_name(state: super::ReservationState) -> &'static str {
    match state {
        super::ReservationState::Open => "open",
        super::ReservationState::Settled { .. } => "settled",
        super::ReservationState::Released => "released",
        super::ReservationState::Expired => "expired",
    }
}

fn sorted_scopes(scopes: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    let mut v: Vec<String> = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v.dedup();
    v
}

/// The same code for both databases: the statements are portable (`$n` parameters work
/// in SQLite too); only how a transaction starts and locks differs.
macro_rules! backend {
    ($module:ident, $db:ty, $pool:ty, $begin:expr, $lock:literal) => {
        mod $module {
            use sqlx::Row;

            use super::super::{
                EventKind, LimitKind, ReleaseReason, ReservationRecord, ReservationState,
                ReserveOutcome, ReserveRequest, ScopeUsage, SettleOutcome, StoreDenial,
                StoreError, StoreEvent, WINDOW_MICROS, window_retry_after,
            };
            use super::{sorted_scopes, state_name, to_i64, to_u64};
            use crate::period::Period;
            use lexecon_core::{ReservationId, Timestamp};

            type Tx = sqlx::Transaction<'static, $db>;

            async fn begin(pool: &$pool) -> Result<Tx, StoreError> {
                Ok(pool.begin_with($begin).await?)
            }

            async fn lock_scopes(tx: &mut Tx, scopes: &[String]) -> Result<(), StoreError> {
                for scope in scopes {
                    sqlx::query("INSERT INTO budget_scopes (scope) VALUES ($1) ON CONFLICT (scope) DO NOTHING")
                        .bind(scope)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query(concat!("SELECT scope FROM budget_scopes WHERE scope = $1", $lock))
                        .bind(scope)
                        .fetch_one(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            async fn window_entries(tx: &mut Tx, scope: &str) -> Result<Vec<(i64, u64)>, StoreError> {
                let rows = sqlx::query("SELECT at, tokens FROM budget_window WHERE scope = $1")
                    .bind(scope)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<i64, _>(0)?, to_u64(r.try_get::<i64, _>(1)?)?)))
                    .collect()
            }

            pub(super) async fn reserve(
                pool: &$pool,
                req: &ReserveRequest,
            ) -> Result<ReserveOutcome, StoreError> {
                let now = req.now.unix_micros();
                let period = req.period.to_string();
                let mut tx = begin(pool).await?;
                lock_scopes(&mut tx, &sorted_scopes(req.scopes.iter().map(|s| &s.scope))).await?;
                let mut flags = Vec::with_capacity(req.scopes.len());
                for (i, check) in req.scopes.iter().enumerate() {
                    let row = sqlx::query(
                        "SELECT spent, reserved, soft_sent, over_sent FROM budget_spend WHERE scope = $1 AND period = $2",
                    )
                    .bind(&check.scope)
                    .bind(&period)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let (spent, reserved, soft_sent, over_sent) = match row {
                        Some(r) => (
                            to_u64(r.try_get(0)?)?,
                            to_u64(r.try_get(1)?)?,
                            r.try_get::<i64, _>(2)? != 0,
                            r.try_get::<i64, _>(3)? != 0,
                        ),
                        None => (0, 0, false, false),
                    };
                    let current = spent.saturating_add(reserved);
                    if let Some(limit) = check.budget_micros
                        && check.enforce_budget
                        && current.saturating_add(req.cost_micros) > limit
                    {
                        return Ok(ReserveOutcome::Denied(StoreDenial {
                            scope_index: i,
                            kind: LimitKind::Budget,
                            current,
                            limit,
                            retry_after_micros: None,
                        }));
                    }
                    if check.windowed() {
                        sqlx::query("DELETE FROM budget_window WHERE scope = $1 AND at <= $2")
                            .bind(&check.scope)
                            .bind(now.saturating_sub(WINDOW_MICROS))
                            .execute(&mut *tx)
                            .await?;
                        let r = sqlx::query(
                            "SELECT COUNT(*), CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM budget_window WHERE scope = $1",
                        )
                        .bind(&check.scope)
                        .fetch_one(&mut *tx)
                        .await?;
                        let count = to_u64(r.try_get(0)?)?;
                        let sum = to_u64(r.try_get(1)?)?;
                        if let Some(limit) = check.rpm
                            && count >= limit
                        {
                            let mut entries = window_entries(&mut tx, &check.scope).await?;
                            return Ok(ReserveOutcome::Denied(StoreDenial {
                                scope_index: i,
                                kind: LimitKind::Rpm,
                                current: count,
                                limit,
                                retry_after_micros: window_retry_after(&mut entries, now, LimitKind::Rpm, limit, 0),
                            }));
                        }
                        if let Some(limit) = check.tpm
                            && sum.saturating_add(req.tokens) > limit
                        {
                            let mut entries = window_entries(&mut tx, &check.scope).await?;
                            return Ok(ReserveOutcome::Denied(StoreDenial {
                                scope_index: i,
                                kind: LimitKind::Tpm,
                                current: sum,
                                limit,
                                retry_after_micros: window_retry_after(&mut entries, now, LimitKind::Tpm, limit, req.tokens),
                            }));
                        }
                    }
                    flags.push((current, soft_sent, over_sent));
                }
                let mut events = Vec::new();
                let id = req.id.to_string();
                for (i, (check, (current, soft_sent, over_sent))) in
                    req.scopes.iter().zip(flags).enumerate()
                {
                    let after = current.saturating_add(req.cost_micros);
                    let soft = !soft_sent && check.soft_micros.is_some_and(|s| after >= s);
                    let over = !over_sent && check.budget_micros.is_some_and(|b| after > b);
                    for (raised, kind) in [(soft, EventKind::SoftLimit), (over, EventKind::BudgetExceeded)] {
                        if raised {
                            events.push(StoreEvent { scope_index: i, kind, current_micros: after });
                        }
                    }
                    sqlx::query(
                        "INSERT INTO budget_spend (scope, period, spent, reserved, soft_sent, over_sent) \
                         VALUES ($1, $2, 0, $3, $4, $5) ON CONFLICT (scope, period) DO UPDATE SET \
                         reserved = budget_spend.reserved + excluded.reserved, \
                         soft_sent = excluded.soft_sent, over_sent = excluded.over_sent",
                    )
                    .bind(&check.scope)
                    .bind(&period)
                    .bind(to_i64(req.cost_micros)?)
                    .bind(i64::from(soft_sent || soft))
                    .bind(i64::from(over_sent || over))
                    .execute(&mut *tx)
                    .await?;
                    if check.windowed() {
                        sqlx::query(
                            "INSERT INTO budget_window (scope, reservation_id, at, tokens) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&check.scope)
                        .bind(&id)
                        .bind(now)
                        .bind(to_i64(req.tokens)?)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let scopes: Vec<&str> = req.scopes.iter().map(|s| s.scope.as_str()).collect();
                sqlx::query(
                    "INSERT INTO budget_reservations (id, period, scopes, created_at, expires_at, \
                     reserved_micros, reserved_tokens, input_price, output_price, state) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open')",
                )
                .bind(&id)
                .bind(&period)
                .bind(scopes.join("\n"))
                .bind(now)
                .bind(req.expires_at.unix_micros())
                .bind(to_i64(req.cost_micros)?)
                .bind(to_i64(req.tokens)?)
                .bind(to_i64(req.input_per_mtok_micros)?)
                .bind(to_i64(req.output_per_mtok_micros)?)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(ReserveOutcome::Reserved(events))
            }

            pub(super) async fn reservation(
                pool: &$pool,
                id: ReservationId,
            ) -> Result<Option<ReservationRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT period, scopes, created_at, expires_at, reserved_micros, reserved_tokens, \
                     input_price, output_price, state, charged_micros, released_micros \
                     FROM budget_reservations WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                let period: String = r.try_get(0)?;
                let scopes: String = r.try_get(1)?;
                let state: String = r.try_get(8)?;
                let state = match state.as_str() {
                    "open" => ReservationState::Open,
                    "settled" => ReservationState::Settled {
                        charged_micros: to_u64(r.try_get(9)?)?,
                        released_micros: to_u64(r.try_get(10)?)?,
                    },
                    "released" => ReservationState::Released,
                    "expired" => ReservationState::Expired,
                    other => return Err(StoreError::Corrupt(format!("reservation state {other:?}"))),
                };
                Ok(Some(ReservationRecord {
                    id,
                    period: period
                        .parse::<Period>()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    scopes: scopes.split('\n').map(str::to_owned).collect(),
                    created_at: Timestamp::from_unix_micros(r.try_get(2)?),
                    expires_at: Timestamp::from_unix_micros(r.try_get(3)?),
                    reserved_micros: to_u64(r.try_get(4)?)?,
                    reserved_tokens: to_u64(r.try_get(5)?)?,
                    input_per_mtok_micros: to_u64(r.try_get(6)?)?,
                    output_per_mtok_micros: to_u64(r.try_get(7)?)?,
                    state,
                }))
            }

            /// Locks the scopes, then reads the reservation's state under the lock.
            async fn lock_reservation(
                tx: &mut Tx,
                rec: &ReservationRecord,
            ) -> Result<(String, u64, u64), StoreError> {
                lock_scopes(tx, &sorted_scopes(&rec.scopes)).await?;
                let r = sqlx::query(concat!(
                    "SELECT state, charged_micros, released_micros FROM budget_reservations WHERE id = $1",
                    $lock
                ))
                .bind(rec.id.to_string())
                .fetch_one(&mut **tx)
                .await?;
                Ok((r.try_get(0)?, to_u64(r.try_get(1)?)?, to_u64(r.try_get(2)?)?))
            }

            async fn give_back(tx: &mut Tx, rec: &ReservationRecord, spent: u64) -> Result<(), StoreError> {
                let period = rec.period.to_string();
                for scope in &rec.scopes {
                    sqlx::query(
                        "UPDATE budget_spend SET spent = spent + $1, reserved = reserved - $2 \
                         WHERE scope = $3 AND period = $4",
                    )
                    .bind(to_i64(spent)?)
                    .bind(to_i64(rec.reserved_micros)?)
                    .bind(scope)
                    .bind(&period)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            pub(super) async fn settle(
                pool: &$pool,
                rec: &ReservationRecord,
                charged: u64,
                tokens: u64,
                now: Timestamp,
            ) -> Result<SettleOutcome, StoreError> {
                let mut tx = begin(pool).await?;
                let (state, first_charged, first_released) = lock_reservation(&mut tx, rec).await?;
                if state == "settled" {
                    return Ok(SettleOutcome {
                        charged_micros: first_charged,
                        released_micros: first_released,
                        newly_settled: false,
                    });
                }
                let released = if state == "open" {
                    give_back(&mut tx, rec, charged).await?;
                    rec.reserved_micros.saturating_sub(charged)
                } else {
                    let period = rec.period.to_string();
                    for scope in &rec.scopes {
                        sqlx::query("UPDATE budget_spend SET spent = spent + $1 WHERE scope = $2 AND period = $3")
                            .bind(to_i64(charged)?)
                            .bind(scope)
                            .bind(&period)
                            .execute(&mut *tx)
                            .await?;
                    }
                    0
                };
                sqlx::query("UPDATE budget_window SET tokens = $1 WHERE reservation_id = $2")
                    .bind(to_i64(tokens)?)
                    .bind(rec.id.to_string())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE budget_reservations SET state = 'settled', charged_micros = $1, \
                     released_micros = $2, closed_at = COALESCE(closed_at, $3) WHERE id = $4",
                )
                .bind(to_i64(charged)?)
                .bind(to_i64(released)?)
                .bind(now.unix_micros())
                .bind(rec.id.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(SettleOutcome {
                    charged_micros: charged,
                    released_micros: released,
                    newly_settled: true,
                })
            }

            pub(super) async fn release(
                pool: &$pool,
                rec: &ReservationRecord,
                reason: ReleaseReason,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                let mut tx = begin(pool).await?;
                let (state, _, _) = lock_reservation(&mut tx, rec).await?;
                if state != "open" {
                    return Ok(false);
                }
                give_back(&mut tx, rec, 0).await?;
                let new_state = match reason {
                    ReleaseReason::Cancelled => {
                        sqlx::query("UPDATE budget_window SET tokens = 0 WHERE reservation_id = $1")
                            .bind(rec.id.to_string())
                            .execute(&mut *tx)
                            .await?;
                        ReservationState::Released
                    }
                    ReleaseReason::Expired => ReservationState::Expired,
                };
                sqlx::query("UPDATE budget_reservations SET state = $1, closed_at = $2 WHERE id = $3")
                    .bind(state_name(new_state))
                    .bind(now.unix_micros())
                    .bind(rec.id.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            pub(super) async fn expired(
                pool: &$pool,
                now: Timestamp,
                max: usize,
            ) -> Result<Vec<ReservationId>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id FROM budget_reservations WHERE state = 'open' AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2",
                )
                .bind(now.unix_micros())
                .bind(i64::try_from(max).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get(0)?;
                        id.parse().map_err(|e: lexecon_core::IdError| StoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            }

            pub(super) async fn purge_closed(pool: &$pool, before: Timestamp) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM budget_reservations WHERE state <> 'open' AND closed_at < $1")
                    .bind(before.unix_micros())
                    .execute(pool)
                    .await?;
                // Window rows of quiet scopes are otherwise only pruned by their next call.
                sqlx::query("DELETE FROM budget_window WHERE at < $1")
                    .bind(before.unix_micros())
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected())
            }

            pub(super) async fn usage(
                pool: &$pool,
                scope: &str,
                period: Period,
                now: Timestamp,
            ) -> Result<ScopeUsage, StoreError> {
                let spend = sqlx::query("SELECT spent, reserved FROM budget_spend WHERE scope = $1 AND period = $2")
                    .bind(scope)
                    .bind(period.to_string())
                    .fetch_optional(pool)
                    .await?;
                let (spent, reserved) = match spend {
                    Some(r) => (to_u64(r.try_get(0)?)?, to_u64(r.try_get(1)?)?),
                    None => (0, 0),
                };
                let w = sqlx::query(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM budget_window \
                     WHERE scope = $1 AND at > $2",
                )
                .bind(scope)
                .bind(now.unix_micros().saturating_sub(WINDOW_MICROS))
                .fetch_one(pool)
                .await?;
                Ok(ScopeUsage {
                    spent_micros: spent,
                    reserved_micros: reserved,
                    requests_last_minute: to_u64(w.try_get(0)?)?,
                    tokens_last_minute: to_u64(w.try_get(1)?)?,
                })
            }
        }
    };
}

backend!(
    sqlite,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    "BEGIN IMMEDIATE",
    ""
);
backend!(
    postgres,
    sqlx::Postgres,
    sqlx::PgPool,
    "BEGIN",
    " FOR UPDATE"
);

macro_rules! dispatch {
    ($self:ident, $f:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Sqlite(pool) => Box::pin(sqlite::$f(pool, $($arg),*)),
            Backend::Postgres(pool) => Box::pin(postgres::$f(pool, $($arg),*)),
        }
    };
}

impl BudgetStore for SqlBudgetStore {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<ReserveOutcome, StoreError>> {
        dispatch!(self, reserve(req))
    }

    fn reservation(
        &self,
        id: ReservationId,
    ) -> BoxFuture<'_, Result<Option<ReservationRecord>, StoreError>> {
        dispatch!(self, reservation(id))
    }

    fn settle<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        charged_micros: u64,
        actual_tokens: u64,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<SettleOutcome, StoreError>> {
        dispatch!(self, settle(rec, charged_micros, actual_tokens, now))
    }

    fn release<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        reason: ReleaseReason,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        dispatch!(self, release(rec, reason, now))
    }

    fn expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<ReservationId>, StoreError>> {
        dispatch!(self, expired(now, max))
    }

    fn purge_closed(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StoreError>> {
        dispatch!(self, purge_closed(before))
    }

    fn usage<'a>(
        &'a self,
        scope: &'a str,
        period: Period,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<ScopeUsage, StoreError>> {
        dispatch!(self, usage(scope, period, now))
    }
}
