//! The in-memory store: one mutex over every counter, for tests and single-process use.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use lexecon_core::{ReservationId, Timestamp};

use super::{
    BoxFuture, BudgetStore, EventKind, LimitKind, ReleaseReason, ReservationRecord,
    ReservationState, ReserveOutcome, ReserveRequest, ScopeUsage, SettleOutcome, StoreDenial,
    StoreError, StoreEvent, WINDOW_MICROS, window_retry_after,
};
use crate::period::Period;

/// Counters in process memory. Exact within one process; lost when it exits.
#[derive(Debug, Default)]
pub struct MemoryBudgetStore {
    inner: Mutex<Inner>,
}

/// A multiply-rotate hasher (FxHash's idea) for the hot path, where SipHash was a
/// measurable share of a check. Keys are reservation ids (random ULID bits) and scope
/// names of authenticated callers; this store is meant for tests and single processes.
#[derive(Debug, Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u128(&mut self, v: u128) {
        // The low 80 bits of a ULID are random; the high bits are the time.
        self.0 = (v as u64) ^ ((v >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Debug, Default)]
struct Inner {
    scopes: FastMap<String, ScopeState>,
    reservations: FastMap<ReservationId, ReservationRecord>,
    /// Expiry times of reservations, earliest first; closed ones are skipped lazily.
    expiry: BinaryHeap<Reverse<(i64, ReservationId)>>,
    closed: VecDeque<(i64, ReservationId)>,
}

#[derive(Debug, Default)]
struct ScopeState {
    /// Counters per month; a handful at most, so a vector beats a map.
    periods: Vec<(Period, Counters)>,
    window: VecDeque<Entry>,
    window_tokens: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    spent: u64,
    reserved: u64,
    soft_sent: bool,
    over_sent: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    id: ReservationId,
    tokens: u64,
}

impl ScopeState {
    fn counters(&self, period: Period) -> Counters {
        self.periods
            .iter()
            .find(|(p, _)| *p == period)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "the index was just found or pushed"
    )]
    fn counters_mut(&mut self, period: Period) -> &mut Counters {
        let i = match self.periods.iter().position(|(p, _)| *p == period) {
            Some(i) => i,
            None => {
                self.periods.push((period, Counters::default()));
                self.periods.len() - 1
            }
        };
        &mut self.periods[i].1
    }

    fn prune(&mut self, now: i64) {
        let cutoff = now.saturating_sub(WINDOW_MICROS);
        while let Some(front) = self.window.front() {
            if front.at > cutoff {
                break;
            }
            self.window_tokens = self.window_tokens.saturating_sub(front.tokens);
            self.window.pop_front();
        }
    }

    fn entry_mut(&mut self, id: ReservationId, at: i64) -> Option<&mut Entry> {
        let start = self.window.partition_point(|e| e.at < at);
        self.window
            .range_mut(start..)
            .take_while(|e| e.at == at)
            .find(|e| e.id == id)
    }

    fn set_tokens(&mut self, id: ReservationId, at: i64, tokens: u64) {
        if let Some(entry) = self.entry_mut(id, at) {
            let old = entry.tokens;
            entry.tokens = tokens;
            self.window_tokens = self
                .window_tokens
                .saturating_sub(old)
                .saturating_add(tokens);
        }
    }
}

impl MemoryBudgetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave counters half-updated (every update
        // happens after all checks), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reserve_now(&self, req: &ReserveRequest) -> ReserveOutcome {
        let now = req.now.unix_micros();
        let mut inner = self.lock();
        // Pass 1: check every scope; nothing changes except pruning old window entries.
        for (i, check) in req.scopes.iter().enumerate() {
            let denial = match inner.scopes.get_mut(check.scope.as_str()) {
                Some(state) => {
                    state.prune(now);
                    let counters = state.counters(req.period);
                    check_scope(check, req, i, state, counters)
                }
                None => check_scope(check, req, i, &ScopeState::default(), Counters::default()),
            };
            if let Some(denial) = denial {
                return ReserveOutcome::Denied(denial);
            }
        }
        // Pass 2: apply.
        let mut events = Vec::new();
        for (i, check) in req.scopes.iter().enumerate() {
            let state = match inner.scopes.get_mut(check.scope.as_str()) {
                Some(s) => s,
                None => inner.scopes.entry(check.scope.clone()).or_default(),
            };
            let c = state.counters_mut(req.period);
            c.reserved = c.reserved.saturating_add(req.cost_micros);
            let current = c.spent.saturating_add(c.reserved);
            if check.soft_micros.is_some_and(|s| current >= s) && !c.soft_sent {
                c.soft_sent = true;
                events.push(StoreEvent {
                    scope_index: i,
                    kind: EventKind::SoftLimit,
                    current_micros: current,
                });
            }
            if check.budget_micros.is_some_and(|b| current > b) && !c.over_sent {
                c.over_sent = true;
                events.push(StoreEvent {
                    scope_index: i,
                    kind: EventKind::BudgetExceeded,
                    current_micros: current,
                });
            }
            if check.windowed() {
                let entry = Entry {
                    at: now,
                    id: req.id,
                    tokens: req.tokens,
                };
                // Keep the window sorted even if the clock stepped back.
                if state.window.back().is_none_or(|last| last.at <= now) {
                    state.window.push_back(entry);
                } else {
                    let pos = state.window.partition_point(|e| e.at <= now);
                    state.window.insert(pos, entry);
                }
                state.window_tokens = state.window_tokens.saturating_add(req.tokens);
            }
        }
        let record = ReservationRecord {
            id: req.id,
            period: req.period,
            scopes: req.scopes.iter().map(|s| s.scope.clone()).collect(),
            created_at: req.now,
            expires_at: req.expires_at,
            reserved_micros: req.cost_micros,
            reserved_tokens: req.tokens,
            input_per_mtok_micros: req.input_per_mtok_micros,
            output_per_mtok_micros: req.output_per_mtok_micros,
            state: ReservationState::Open,
        };
        inner
            .expiry
            .push(Reverse((req.expires_at.unix_micros(), req.id)));
        inner.reservations.insert(req.id, record);
        ReserveOutcome::Reserved(events)
    }
}

fn check_scope(
    check: &super::ScopeCheck,
    req: &ReserveRequest,
    i: usize,
    state: &ScopeState,
    c: Counters,
) -> Option<StoreDenial> {
    let current = c.spent.saturating_add(c.reserved);
    if let Some(limit) = check.budget_micros
        && check.enforce_budget
        && current.saturating_add(req.cost_micros) > limit
    {
        return Some(StoreDenial {
            scope_index: i,
            kind: LimitKind::Budget,
            current,
            limit,
            retry_after_micros: None,
        });
    }
    let count = u64::try_from(state.window.len()).unwrap_or(u64::MAX);
    let now = req.now.unix_micros();
    let entries = || -> Vec<(i64, u64)> { state.window.iter().map(|e| (e.at, e.tokens)).collect() };
    if let Some(limit) = check.rpm
        && count >= limit
    {
        return Some(StoreDenial {
            scope_index: i,
            kind: LimitKind::Rpm,
            current: count,
            limit,
            retry_after_micros: window_retry_after(&mut entries(), now, LimitKind::Rpm, limit, 0),
        });
    }
    if let Some(limit) = check.tpm
        && state.window_tokens.saturating_add(req.tokens) > limit
    {
        return Some(StoreDenial {
            scope_index: i,
            kind: LimitKind::Tpm,
            current: state.window_tokens,
            limit,
            retry_after_micros: window_retry_after(
                &mut entries(),
                now,
                LimitKind::Tpm,
                limit,
                req.tokens,
            ),
        });
    }
    None
}

impl Inner {
    fn close(&mut self, id: ReservationId, now: Timestamp) {
        self.closed.push_back((now.unix_micros(), id));
    }

    fn give_back(&mut self, rec: &ReservationRecord) {
        for scope in &rec.scopes {
            if let Some(c) = self
                .scopes
                .get_mut(scope.as_str())
                .map(|s| s.counters_mut(rec.period))
            {
                c.reserved = c.reserved.saturating_sub(rec.reserved_micros);
            }
        }
    }
}

impl BudgetStore for MemoryBudgetStore {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<ReserveOutcome, StoreError>> {
        let outcome = self.reserve_now(req);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn reservation(
        &self,
        id: ReservationId,
    ) -> BoxFuture<'_, Result<Option<ReservationRecord>, StoreError>> {
        let found = self.lock().reservations.get(&id).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn settle<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        charged_micros: u64,
        actual_tokens: u64,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<SettleOutcome, StoreError>> {
        let mut inner = self.lock();
        // Only the state changes after creation, so `rec` (read moments ago) supplies the
        // rest without another clone.
        let outcome = match inner.reservations.get(&rec.id).map(|r| (r.state, rec)) {
            None => Err(StoreError::Corrupt(format!(
                "reservation {} vanished",
                rec.id
            ))),
            Some((
                ReservationState::Settled {
                    charged_micros,
                    released_micros,
                },
                _,
            )) => Ok(SettleOutcome {
                charged_micros,
                released_micros,
                newly_settled: false,
            }),
            Some((state, stored)) => {
                let was_open = state == ReservationState::Open;
                let released_micros = if was_open {
                    inner.give_back(stored);
                    stored.reserved_micros.saturating_sub(charged_micros)
                } else {
                    0
                };
                let created = stored.created_at.unix_micros();
                for scope in &stored.scopes {
                    if let Some(s) = inner.scopes.get_mut(scope.as_str()) {
                        let c = s.counters_mut(stored.period);
                        c.spent = c.spent.saturating_add(charged_micros);
                        s.set_tokens(stored.id, created, actual_tokens);
                    }
                }
                let new_state = ReservationState::Settled {
                    charged_micros,
                    released_micros,
                };
                if let Some(r) = inner.reservations.get_mut(&rec.id) {
                    r.state = new_state;
                }
                if was_open {
                    inner.close(stored.id, now);
                }
                Ok(SettleOutcome {
                    charged_micros,
                    released_micros,
                    newly_settled: true,
                })
            }
        };
        Box::pin(std::future::ready(outcome))
    }

    fn release<'a>(
        &'a self,
        rec: &'a ReservationRecord,
        reason: ReleaseReason,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut inner = self.lock();
        let state = inner.reservations.get(&rec.id).map(|r| r.state);
        let released = match state {
            Some(ReservationState::Open) => {
                let stored = rec;
                inner.give_back(stored);
                if reason == ReleaseReason::Cancelled {
                    let created = stored.created_at.unix_micros();
                    for scope in &stored.scopes {
                        if let Some(s) = inner.scopes.get_mut(scope.as_str()) {
                            s.set_tokens(stored.id, created, 0);
                        }
                    }
                }
                if let Some(r) = inner.reservations.get_mut(&rec.id) {
                    r.state = match reason {
                        ReleaseReason::Cancelled => ReservationState::Released,
                        ReleaseReason::Expired => ReservationState::Expired,
                    };
                }
                inner.close(stored.id, now);
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(released)))
    }

    fn expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<ReservationId>, StoreError>> {
        let mut inner = self.lock();
        let mut ids = Vec::new();
        while ids.len() < max {
            let Some(Reverse((at, id))) = inner.expiry.peek().copied() else {
                break;
            };
            if at > now.unix_micros() {
                break;
            }
            inner.expiry.pop();
            if inner
                .reservations
                .get(&id)
                .is_some_and(|r| r.state == ReservationState::Open)
            {
                ids.push(id);
            }
        }
        Box::pin(std::future::ready(Ok(ids)))
    }

    fn purge_closed(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut inner = self.lock();
        let mut n = 0;
        while let Some((at, id)) = inner.closed.front().copied() {
            if at >= before.unix_micros() {
                break;
            }
            inner.closed.pop_front();
            inner.reservations.remove(&id);
            n += 1;
        }
        Box::pin(std::future::ready(Ok(n)))
    }

    fn usage<'a>(
        &'a self,
        scope: &'a str,
        period: Period,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<ScopeUsage, StoreError>> {
        let mut inner = self.lock();
        let usage = match inner.scopes.get_mut(scope) {
            None => ScopeUsage::default(),
            Some(state) => {
                state.prune(now.unix_micros());
                let c = state.counters(period);
                ScopeUsage {
                    spent_micros: c.spent,
                    reserved_micros: c.reserved,
                    requests_last_minute: u64::try_from(state.window.len()).unwrap_or(u64::MAX),
                    tokens_last_minute: state.window_tokens,
                }
            }
        };
        Box::pin(std::future::ready(Ok(usage)))
    }
}
