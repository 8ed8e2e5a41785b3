//! The governance event stream (`WatchEvents`), read from the ledger.
//!
//! Every ledger entry that is a governance event gets one row in `engine_events`
//! (migration 4008): its index and its event name. The row is made by the ledger's side
//! hook ([`events_hook`]) on the appending task and committed in the entry's own
//! transaction, so a row exists exactly when its entry does, whichever of the fourteen
//! append sites wrote it. Decisions are not events and add no row (the hook returns at
//! once for them: it costs the hot path one comparison).
//!
//! A watcher reads `engine_events WHERE idx >= cursor` in pages of [`PAGE`], fetches
//! each entry, and hands the events to its client through a bounded buffer of
//! [`BUFFER`]. Rows commit in index order under the ledger's lock, so no lower index
//! appears after a higher one was read: resuming from `last seen + 1` misses nothing and
//! repeats nothing. The watcher pulls; the ledger writer never waits for it. It wakes
//! when this process commits ([`lexecon_ledger::Ledger::subscribe`]) and polls every
//! [`POLL_EVERY`] for entries other replicas commit to a shared database. A client that
//! leaves its buffer full for [`STALL`] is told it fell behind at index N and to
//! reconnect with `from_index = N`; it has received every event below N.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lexecon_core::{Clock, Timestamp};
use lexecon_ledger::{EntryKind, Ledger, SideHook, SideRow, SideTable, SideType, SideValue};
use tokio::sync::{mpsc, watch};

use crate::db::Database;
use crate::engine::{Caller, Engine, EngineError, ops};

/// `engine_events(idx, event, at)`.
pub(crate) static EVENTS: SideTable = SideTable {
    name: "engine_events",
    columns: &[("event", SideType::Text), ("at", SideType::Int)],
    on_conflict: "",
};

/// Rows read from `engine_events` at a time.
pub(crate) const PAGE: i64 = 256;
/// Events a watcher holds for its client.
pub(crate) const BUFFER: usize = 1024;
/// How often a watcher looks for entries committed by other replicas.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long a full buffer may stay full before its watcher is told to reconnect.
pub(crate) const STALL: Duration = Duration::from_secs(5);

/// Every event name, with what records it (docs/oversight.md lists the same).
pub(crate) const EVENT_NAMES: &[&str] = &[
    "escalation_created",
    "escalation_warned",
    "escalation_resolved",
    "escalation_expired",
    "escalation_cancelled",
    "escalation_grant_used",
    "escalation_grant_lapsed",
    "override_created",
    "override_revoked",
    "halt_placed",
    "halt_resumed",
    "policy_loaded",
    "config_reloaded",
    "token_revoked",
    "budget_soft_limit",
    "budget_exceeded",
    "key_rotated",
    "user_created",
    "mfa_enrolled",
    "api_key_created",
    "api_key_revoked",
    "api_key_bound",
    "evidence_registered",
    "audit_exported",
];

/// Auth events that change who may do what; logins and refused attempts are not
/// governance events (they stay readable through `GetEntries`).
const AUTH_EVENTS: &[&str] = &[
    "user_created",
    "mfa_enrolled",
    "api_key_created",
    "api_key_revoked",
    "api_key_bound",
];

/// One governance event: one ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The entry's index; reconnect with `from_index` = this + 1.
    pub ledger_index: u64,
    /// The event name, e.g. `escalation_created` (docs/oversight.md lists them).
    pub kind: String,
    /// When the entry was appended (its leaf's timestamp).
    pub timestamp: Timestamp,
    /// The entry's payload as JSON text; `null` once the payload was redacted.
    pub payload_json: String,
}

#[derive(serde::Deserialize)]
struct EventField<'a> {
    #[serde(borrow, default)]
    event: Option<std::borrow::Cow<'a, str>>,
}

/// The `event` field of a JSON payload, if it has one.
fn payload_event(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<EventField<'_>>(payload)
        .ok()
        .and_then(|f| f.event)
        .map(std::borrow::Cow::into_owned)
}

/// The event name of an entry of `kind` with `payload`; `None` when the entry is not a
/// governance event (decisions, notes, budget reservations, logins).
pub(crate) fn event_name(kind: EntryKind, payload: &[u8]) -> Option<String> {
    match kind {
        // Completions of forwarded MCP calls are as frequent as decisions: not events.
        EntryKind::Decision | EntryKind::Note | EntryKind::McpCompletion => None,
        EntryKind::Oversight => Some(payload_event(payload).unwrap_or_else(|| "oversight".into())),
        // Shadow loads, promotions and discards (§13) name their event in the payload.
        EntryKind::PolicyLoaded => {
            Some(payload_event(payload).unwrap_or_else(|| "policy_loaded".into()))
        }
        EntryKind::TokenRevoked => Some("token_revoked".into()),
        EntryKind::ConfigReloaded => Some("config_reloaded".into()),
        EntryKind::KeyRotated => Some("key_rotated".into()),
        EntryKind::BudgetEvent => match payload_event(payload).as_deref() {
            Some("softlimit") => Some("budget_soft_limit".into()),
            Some("budgetexceeded") => Some("budget_exceeded".into()),
            _ => None,
        },
        EntryKind::AuthEvent => {
            payload_event(payload).filter(|e| AUTH_EVENTS.contains(&e.as_str()))
        }
        EntryKind::EvidenceRegistered => Some("evidence_registered".into()),
        EntryKind::AuditExported => Some("audit_exported".into()),
        // A kind added later is an event named by its payload, or by the kind itself.
        other => Some(payload_event(payload).unwrap_or_else(|| other.as_str().to_owned())),
    }
}

/// The side hook that writes `engine_events` rows; the engine installs it on its ledger
/// when it opens.
pub(crate) fn events_hook(clock: Arc<dyn Clock>) -> SideHook {
    Arc::new(move |kind, payload| {
        if kind == EntryKind::Decision {
            return Vec::new();
        }
        match event_name(kind, payload) {
            Some(name) => vec![SideRow {
                table: &EVENTS,
                values: vec![
                    SideValue::Text(name),
                    SideValue::Int(clock.now().unix_micros()),
                ],
            }],
            None => Vec::new(),
        }
    })
}

/// A watcher's stream of events, in ledger order. Ends with an error when the watcher
/// fell behind (see the module documentation) or reading failed; dropping it stops the
/// watcher.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    /// Why the watcher stopped, read once the buffer is drained.
    ended: Arc<Mutex<Option<EngineError>>>,
    task: tokio::task::JoinHandle<()>,
    done: bool,
}

impl EventStream {
    /// The next event; `None` once the stream ended (after its error, if any).
    pub async fn next(&mut self) -> Option<Result<Event, EngineError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next event, as `Stream::poll_next` does.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, EngineError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) => {
                self.done = true;
                let why = self.ended.lock().ok().and_then(|mut e| e.take());
                Poll::Ready(why.map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a watcher needs, owned by its task.
struct Watcher {
    db: Database,
    ledger: Ledger,
    kinds: Vec<String>,
    cursor: u64,
    stall: Duration,
    tx: mpsc::Sender<Event>,
    ended: Arc<Mutex<Option<EngineError>>>,
    stop: watch::Receiver<bool>,
}

/// The stop switch of each open engine's watchers, found by the engine's ledger (its
/// head channel identifies it; an entry whose ledger is gone is dropped). A server
/// that starts draining flips it with [`Engine::stop_watchers`]: a stream never ends
/// by itself, and a graceful shutdown waits for every open stream.
static STOPS: Mutex<Vec<(watch::Receiver<u64>, watch::Sender<bool>)>> = Mutex::new(Vec::new());

/// The stop switch of `ledger`'s engine, made on first use.
fn stop_switch(ledger: &Ledger) -> watch::Receiver<bool> {
    let head = ledger.subscribe();
    let Ok(mut stops) = STOPS.lock() else {
        // A poisoned registry: this watcher cannot be stopped early, only dropped.
        return watch::channel(false).1;
    };
    stops.retain(|(h, _)| h.has_changed().is_ok());
    if let Some((_, stop)) = stops.iter().find(|(h, _)| h.same_channel(&head)) {
        return stop.subscribe();
    }
    let (stop, rx) = watch::channel(false);
    stops.push((head, stop));
    rx
}

impl Engine {
    /// Ends every open event stream of this engine, and every one opened from now on,
    /// with an UNAVAILABLE error that says where to reconnect. A server calls it when it
    /// starts draining, since a graceful shutdown waits for open streams.
    pub fn stop_watchers(&self) {
        let head = self.ledger.subscribe();
        if let Ok(stops) = STOPS.lock()
            && let Some((_, stop)) = stops.iter().find(|(h, _)| h.same_channel(&head))
        {
            stop.send_replace(true);
        }
    }

    /// Streams governance events from ledger index `from` (`None`: from now on), only
    /// those named in `kinds` when it is not empty.
    pub async fn watch_events(
        &self,
        caller: &Caller,
        from: Option<u64>,
        kinds: Vec<String>,
    ) -> Result<EventStream, EngineError> {
        self.watch_events_with(caller, from, kinds, STALL).await
    }

    /// [`Engine::watch_events`] with the stall time given (tests shorten it).
    pub(crate) async fn watch_events_with(
        &self,
        caller: &Caller,
        from: Option<u64>,
        kinds: Vec<String>,
        stall: Duration,
    ) -> Result<EventStream, EngineError> {
        self.authorize(caller, ops::WATCH_EVENTS)?;
        for (i, kind) in kinds.iter().enumerate() {
            if !EVENT_NAMES.contains(&kind.as_str()) {
                return Err(EngineError::InvalidArgument(format!(
                    "kinds[{i}]: {kind:?} is not an event name; use one of {}",
                    EVENT_NAMES.join(", ")
                )));
            }
        }
        if from.is_some_and(|f| i64::try_from(f).is_err()) {
            return Err(EngineError::InvalidArgument(
                "from_index is beyond any ledger index".to_owned(),
            ));
        }
        let cursor = match from {
            Some(f) => f,
            None => self.ledger.tree_size().await?,
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        let ended = Arc::new(Mutex::new(None));
        let watcher = Watcher {
            db: self.db.clone(),
            ledger: self.ledger.clone(),
            kinds,
            cursor,
            stall,
            tx,
            ended: Arc::clone(&ended),
            stop: stop_switch(&self.ledger),
        };
        let task = tokio::spawn(watcher.run());
        Ok(EventStream {
            rx,
            ended,
            task,
            done: false,
        })
    }
}

/// Up to [`PAGE`] event rows from index `from` on, in index order.
async fn event_page(db: &Database, from: u64) -> Result<Vec<(u64, String)>, EngineError> {
    const SQL: &str = "SELECT idx, event FROM engine_events WHERE idx >= $1 ORDER BY idx LIMIT $2";
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let rows: Vec<(i64, String)> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_as(SQL)
                .bind(from)
                .bind(PAGE)
                .fetch_all(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as(SQL)
                .bind(from)
                .bind(PAGE)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .filter_map(|(idx, event)| u64::try_from(idx).ok().map(|i| (i, event)))
        .collect())
}

impl Watcher {
    async fn run(mut self) {
        if let Err(e) = self.pump().await
            && let Ok(mut slot) = self.ended.lock()
        {
            *slot = Some(e);
        }
    }

    /// Delivers events until the client goes away or an error ends the stream.
    async fn pump(&mut self) -> Result<(), EngineError> {
        let mut head = self.ledger.subscribe();
        // False once the local writer stopped: then only polling finds new entries.
        let mut local = true;
        let mut stop = self.stop.clone();
        loop {
            if *stop.borrow_and_update() {
                return Err(self.stopping());
            }
            // Marked seen before reading, so a commit during the read wakes the next wait.
            head.borrow_and_update();
            let rows = event_page(&self.db, self.cursor).await?;
            if rows.is_empty() {
                tokio::select! {
                    changed = head.changed(), if local => local = changed.is_ok(),
                    () = tokio::time::sleep(POLL_EVERY) => {}
                    () = self.tx.closed() => return Ok(()),
                    // Gone only with the engine's ledger: nothing more will come.
                    changed = stop.changed() => if changed.is_err() {
                        return Err(self.stopping());
                    },
                }
                continue;
            }
            for (idx, name) in rows {
                if !self.kinds.is_empty() && !self.kinds.contains(&name) {
                    self.cursor = idx.saturating_add(1);
                    continue;
                }
                let event = self.event(idx, name).await?;
                let reserve = tokio::time::timeout(self.stall, self.tx.reserve());
                let reserved = tokio::select! {
                    r = reserve => r,
                    _ = stop.changed() => return Err(self.stopping()),
                };
                let permit = match reserved {
                    Ok(Ok(permit)) => permit,
                    // The client went away.
                    Ok(Err(_)) => return Ok(()),
                    Err(_) => {
                        return Err(EngineError::Aborted(format!(
                            "fell behind at index {idx}: the client left {BUFFER} events \
                             unread for {} s; reconnect with from_index={idx}",
                            self.stall.as_secs_f64()
                        )));
                    }
                };
                permit.send(event);
                self.cursor = idx.saturating_add(1);
            }
        }
    }

    /// Why the stream ends when the server drains.
    fn stopping(&self) -> EngineError {
        let n = self.cursor;
        EngineError::Unavailable(format!(
            "the server is shutting down; reconnect (to it or another server) with \
             from_index={n}"
        ))
    }

    async fn event(&self, idx: u64, kind: String) -> Result<Event, EngineError> {
        let entry = self.ledger.entry(idx).await?.ok_or_else(|| {
            EngineError::Corrupt(format!(
                "engine_events names ledger index {idx}, which has no entry"
            ))
        })?;
        let leaf = entry
            .decode_leaf()
            .map_err(|e| EngineError::Corrupt(format!("ledger entry {idx}: {e}")))?;
        let payload_json = match &entry.payload {
            Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            None => "null".to_owned(),
        };
        Ok(Event {
            ledger_index: idx,
            kind,
            timestamp: leaf.timestamp,
            payload_json,
        })
    }
}
