//! The `BudgetStore` trait: atomic reserve, settle and release across scopes, with
//! memory, SQL (SQLite and PostgreSQL) and Redis implementations.
//!
//! The manager decides what to check (which scopes, which limits, what a call costs);
//! a store applies one decision atomically, so that several replicas sharing the store
//! never admit more than a limit.

use std::future::Future;
use std::pin::Pin;

use lexecon_core::{ReservationId, Timestamp};

use crate::period::Period;

mod memory;
mod redis;
pub(crate) mod sql;

pub use memory::MemoryBudgetStore;
pub use redis::RedisBudgetStore;
pub use sql::SqlBudgetStore;

/// A boxed future, so that `BudgetStore` can be used as `Arc<dyn BudgetStore>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The sliding window of RPM and TPM limits, in microseconds.
pub const WINDOW_MICROS: i64 = 60_000_000;

/// How long a closed reservation is kept so that a repeated settle returns the first
/// result (one hour: long enough for any retry, short enough to bound the store).
pub const CLOSED_RETENTION_MICROS: i64 = 3_600 * 1_000_000;

/// A store that failed: the caller must treat the call as refused, never as admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("budget database error: {0}; check that the database is reachable and migrated")]
    Sql(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("budget migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Redis failed.
    #[error("budget redis error: {0}; check that redis.url is reachable")]
    Redis(String),
    /// The store holds something it cannot read back.
    #[error("budget store holds corrupt data: {0}")]
    Corrupt(String),
}

/// What one scope must satisfy for a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCheck {
    /// `global`, `user:<id>`, `key:<name>` or `role:<name>`: to a store, only a name.
    pub scope: String,
    /// The monthly budget, in micro-dollars.
    pub budget_micros: Option<u64>,
    /// Whether exceeding the budget denies (else it is recorded and allowed).
    pub enforce_budget: bool,
    /// Spend (settled plus reserved) at which one soft-limit event is raised.
    pub soft_micros: Option<u64>,
    /// Requests per sliding 60 seconds.
    pub rpm: Option<u64>,
    /// Tokens per sliding 60 seconds.
    pub tpm: Option<u64>,
}

impl ScopeCheck {
    /// True when the scope keeps a request window (it has an RPM or TPM limit).
    pub fn windowed(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// One atomic reservation across scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// The new reservation's id.
    pub id: ReservationId,
    /// The period the spend counts in.
    pub period: Period,
    /// Now, from the manager's clock.
    pub now: Timestamp,
    /// When the reservation expires.
    pub expires_at: Timestamp,
    /// Worst-case cost, micro-dollars.
    pub cost_micros: u64,
    /// Worst-case tokens.
    pub tokens: u64,
    /// Model price kept with the reservation, so settlement charges what was quoted.
    pub input_per_mtok_micros: u64,
    /// Model price kept with the reservation.
    pub output_per_mtok_micros: u64,
    /// Every scope, in the order denials are reported.
    pub scopes: Vec<ScopeCheck>,
}

/// Which limit of a scope refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The monthly budget.
    Budget,
    /// Requests per minute.
    Rpm,
    /// Tokens per minute.
    Tpm,
}

/// What crossing a threshold raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Spend reached the soft limit.
    SoftLimit,
    /// Spend passed the budget while it is not enforced.
    BudgetExceeded,
}

/// An event raised by a reservation (once per scope, kind and period, across replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    /// Index into `ReserveRequest::scopes`.
    pub scope_index: usize,
    /// What was crossed.
    pub kind: EventKind,
    /// Spend plus reservations after this call, micro-dollars.
    pub current_micros: u64,
}

/// A refusal by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDenial {
    /// Index into `ReserveRequest::scopes`.
    pub scope_index: usize,
    /// Which limit.
    pub kind: LimitKind,
    /// Usage in the limit's unit before this call.
    pub current: u64,
    /// The limit.
    pub limit: u64,
    /// Microseconds until the window admits the call, when it ever can (RPM, TPM).
    pub retry_after_micros: Option<u64>,
}

/// The result of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved; events raised by it.
    Reserved(Vec<StoreEvent>),
    /// Refused; nothing changed.
    Denied(StoreDenial),
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    /// Holding its worst case.
    Open,
    /// Charged (once).
    Settled {
        /// The cost charged, micro-dollars.
        charged_micros: u64,
        /// The part of the reservation given back, micro-dollars.
        released_micros: u64,
    },
    /// Cancelled by its caller.
    Released,
    /// Released by the sweeper after its TTL.
    Expired,
}

/// A reservation as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRecord {
    /// The id.
    pub id: ReservationId,
    /// The period its spend counts in.
    pub period: Period,
    /// Scopes it holds spend (and window entries) in.
    pub scopes: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it expires unless settled or released.
    pub expires_at: Timestamp,
    /// Worst-case cost held, micro-dollars.
    pub reserved_micros: u64,
    /// Worst-case tokens held.
    pub reserved_tokens: u64,
    /// Quoted input price, micro-dollars per million tokens.
    pub input_per_mtok_micros: u64,
    /// Quoted output price, micro-dollars per million tokens.
    pub output_per_mtok_micros: u64,
    /// Where it stands.
    pub state: ReservationState,
}

/// The result of a settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleOutcome {
    /// The cost charged, micro-dollars.
    pub charged_micros: u64,
    /// The part of the reservation given back, micro-dollars.
    pub released_micros: u64,
    /// False when it had been settled before (the first result is returned).
    pub newly_settled: bool,
}

/// Why a reservation is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// The caller cancelled: the call did not happen, so its tokens leave the TPM window.
    Cancelled,
    /// Its TTL passed: the call may have happened, so its tokens stay in the window.
    Expired,
}

/// Counters of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeUsage {
    /// Settled spend this period, micro-dollars.
    pub spent_micros: u64,
    /// Spend held by open reservations, micro-dollars.
    pub reserved_micros: u64,
    /// Requests in the last 60 seconds (kept only for scopes with an RPM or TPM limit).
    pub requests_last_minute: u64,
    /// Tokens in the last 60 seconds (same).
    pub tokens_last_minute: u64,
}

/// Where budget counters live. Each method is atomic on its own.
pub trait BudgetStore: Send + Sync + std::fmt::Debug {
    /// Checks every scope and, when all admit, reserves cost and tokens in all of them.
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<ReserveOutcome, StoreError>>;

    /// The reservation `id`, if the store still knows it.
    fn reservation(
        &self,
        id: ReservationId,
    ) -> BoxFuture<'_, Result<Option<ReservationRecord>, StoreError>>;

    /// Charges `charged_micros` once and gives back the rest of the reservation; replaces
    /// its tokens in the windows by `actual_tokens`. A second call returns the first
    /// result with `newly_settled = false`.
    fn settle<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        charged_micros: u64,
        actual_tokens: u64,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<SettleOutcome, StoreError>>;

    /// Gives back an open reservation; false when it was not open.
    fn release<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        reason: ReleaseReason,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Up to `max` open reservations that expired at or before `now`.
    fn expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<ReservationId>, StoreError>>;

    /// Forgets reservations closed before `before`; returns how many.
    fn purge_closed(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Counters of `scope` in `period`, windows as of `now`.
    fn usage<'a>(
        &'a self,
        scope: &'a str,
        period: Period,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<ScopeUsage, StoreError>>;
}

/// How long until a window `(now - 60s, now]` holding `entries` (time, tokens; any
/// order) admits one more request of `tokens` under `rpm`/`tpm`: `None` when never.
pub(crate) fn window_retry_after(
    entries: &mut [(i64, u64)],
    now: i64,
    kind: LimitKind,
    limit: u64,
    tokens: u64,
) -> Option<u64> {
    entries.sort_unstable_by_key(|e| e.0);
    let mut count = u64::try_from(entries.len()).unwrap_or(u64::MAX);
    let mut sum: u64 = entries.iter().map(|e| e.1).sum();
    if kind == LimitKind::Tpm && tokens > limit {
        return None;
    }
    for (at, t) in entries.iter() {
        count -= 1;
        sum = sum.saturating_sub(*t);
        let fits = match kind {
            LimitKind::Rpm => count < limit,
            LimitKind::Tpm => sum.saturating_add(tokens) <= limit,
            LimitKind::Budget => false,
        };
        if fits {
            let wait = at.saturating_add(WINDOW_MICROS).saturating_sub(now).max(0);
            return u64::try_from(wait).ok();
        }
    }
    match kind {
        LimitKind::Rpm if limit == 0 => None,
        _ => Some(0),
    }
}
