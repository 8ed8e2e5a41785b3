//! The in-memory copy of halts and overrides that Decide reads, and its freshness.
//!
//! The sync task refreshes it every [`super::super::SYNC_EVERY`], and every local change
//! refreshes it at once. Freshness is measured with the monotonic [`Instant`], never the
//! engine clock, so tests that move a manual clock by hours do not make it stale. A
//! serving engine whose copy is older than [`STALE_AFTER`] answers UNAVAILABLE; an engine
//! opened locally (no sync task) refreshes inline when its copy is older than
//! [`LOCAL_REFRESH_AFTER`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lexecon_core::glob::{Alphabet, Glob};
use lexecon_core::{ActionRequest, OverrideId, Timestamp};

use super::overrides::OverrideEffect;
use super::store::{self, HaltRow, OverrideRow};
use crate::engine::{Engine, EngineError};

/// Oversight state older than this is not used to decide.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(2);

/// A local engine refreshes before a decision when its copy is older than this.
pub(crate) const LOCAL_REFRESH_AFTER: Duration = Duration::from_millis(250);

/// A halt in force.
#[derive(Debug)]
struct ActiveHalt {
    id: String,
    /// `None`: every actor.
    actor: Option<Glob>,
}

/// An override in force.
#[derive(Debug)]
pub(crate) struct ActiveOverride {
    /// The creation entry's index: the older override wins among equals.
    idx: i64,
    pub(crate) id: OverrideId,
    effect: OverrideEffect,
    action: Glob,
    /// `None`: any tool, and requests without one.
    tool: Option<Glob>,
    /// Unix microseconds.
    expires_at: i64,
}

impl ActiveOverride {
    fn applies(&self, req: &ActionRequest, now: i64) -> bool {
        now < self.expires_at
            && self.action.matches(req.action.as_str())
            && match (&self.tool, &req.tool) {
                (None, _) => true,
                (Some(glob), Some(tool)) => glob.matches(tool.as_str()),
                (Some(_), None) => false,
            }
    }
}

/// The overrides in force, bucketed by literal actor, with the globbed ones apart.
#[derive(Debug, Default)]
struct OverrideIndex {
    literal: HashMap<String, Vec<ActiveOverride>>,
    /// With the actor glob of each.
    wildcard: Vec<(Glob, ActiveOverride)>,
}

/// The overrides that match one request: the oldest deny and the oldest approve.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Matched {
    pub(crate) deny: Option<OverrideId>,
    pub(crate) approve: Option<OverrideId>,
}

/// Halts and overrides as of one refresh.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    halts: Vec<ActiveHalt>,
    overrides: OverrideIndex,
}

fn name_glob(pattern: &str, field: &'static str) -> Option<Glob> {
    Glob::for_field(pattern, Alphabet::Name(field)).ok()
}

impl Snapshot {
    fn build(halts: Vec<HaltRow>, overrides: Vec<OverrideRow>) -> Snapshot {
        let halts = halts
            .into_iter()
            .map(|h| ActiveHalt {
                // A glob that no longer compiles halts everything: fail closed.
                actor: if h.actor_glob.is_empty() {
                    None
                } else {
                    name_glob(&h.actor_glob, "actor")
                },
                id: h.halt_id,
            })
            .collect();
        let mut index = OverrideIndex::default();
        for o in overrides {
            let (Some(effect), Ok(id)) = (OverrideEffect::parse(&o.effect), o.override_id.parse())
            else {
                tracing::error!(override_id = %o.override_id, "an override row is unreadable; ignoring it");
                continue;
            };
            let (Some(actor), Some(action)) = (
                name_glob(&o.actor_glob, "actor"),
                name_glob(&o.action_glob, "action"),
            ) else {
                tracing::error!(override_id = %o.override_id, "an override's globs do not compile; ignoring it");
                continue;
            };
            let tool = if o.tool_glob.is_empty() {
                None
            } else {
                let Some(tool) = name_glob(&o.tool_glob, "tool") else {
                    tracing::error!(override_id = %o.override_id, "an override's tool glob does not compile; ignoring it");
                    continue;
                };
                Some(tool)
            };
            let active = ActiveOverride {
                idx: o.idx,
                id,
                effect,
                action,
                tool,
                expires_at: o.expires_at,
            };
            if actor.is_literal() {
                index
                    .literal
                    .entry(actor.as_str().to_owned())
                    .or_default()
                    .push(active);
            } else {
                index.wildcard.push((actor, active));
            }
        }
        Snapshot {
            halts,
            overrides: index,
        }
    }

    /// The oldest halt in force for `actor`.
    pub(crate) fn halt_for(&self, actor: &str) -> Option<&str> {
        self.halts
            .iter()
            .find(|h| h.actor.as_ref().is_none_or(|g| g.matches(actor)))
            .map(|h| h.id.as_str())
    }

    /// The overrides in force at `now` that match `req`.
    pub(crate) fn overrides_for(&self, req: &ActionRequest, now: Timestamp) -> Matched {
        let now = now.unix_micros();
        let actor = req.actor.as_str();
        let mut deny: Option<&ActiveOverride> = None;
        let mut approve: Option<&ActiveOverride> = None;
        let literal = self.overrides.literal.get(actor).into_iter().flatten();
        let wildcard = self
            .overrides
            .wildcard
            .iter()
            .filter(|(glob, _)| glob.matches(actor))
            .map(|(_, o)| o);
        for o in literal.chain(wildcard) {
            if !o.applies(req, now) {
                continue;
            }
            let slot = match o.effect {
                OverrideEffect::Deny => &mut deny,
                OverrideEffect::Approve => &mut approve,
            };
            if slot.is_none_or(|s| o.idx < s.idx) {
                *slot = Some(o);
            }
        }
        Matched {
            deny: deny.map(|o| o.id),
            approve: approve.map(|o| o.id),
        }
    }

    /// Whether nothing is in force (the common case).
    pub(crate) fn is_empty(&self) -> bool {
        self.halts.is_empty()
            && self.overrides.literal.is_empty()
            && self.overrides.wildcard.is_empty()
    }
}

/// The engine's copy and when it was last refreshed.
#[derive(Debug)]
pub(crate) struct OversightState {
    snap: RwLock<Arc<Snapshot>>,
    base: Instant,
    /// Nanoseconds after `base` of the last successful refresh; 0 = never.
    refreshed: AtomicU64,
    /// Whether a sync task keeps the copy fresh (else Decide refreshes inline).
    serving: AtomicBool,
    refreshing: tokio::sync::Mutex<()>,
}

impl Default for OversightState {
    fn default() -> Self {
        OversightState {
            snap: RwLock::new(Arc::new(Snapshot::default())),
            base: Instant::now(),
            refreshed: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }
}

impl OversightState {
    /// How old the copy is; `None` when it was never refreshed.
    fn age(&self) -> Option<Duration> {
        match self.refreshed.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(nanos)),
            ),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snap
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }

    fn store(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        match self.snap.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
        let nanos = u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.refreshed.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Called by the sync task after each refresh: once the copy is fresh, the task
    /// keeps it so, and from then on stale means UNAVAILABLE (no inline refresh).
    pub(crate) fn serve_once_fresh(&self) {
        if self.age().is_some_and(|a| a <= STALE_AFTER) {
            self.serving.store(true, Ordering::Release);
        }
    }
}

fn stale(age: Option<Duration>) -> EngineError {
    EngineError::Unavailable(match age {
        Some(age) => format!(
            "oversight state (halts and overrides) was last refreshed {} ms ago, more than \
             the {} ms allowed; not deciding on stale state, retry shortly",
            age.as_millis(),
            STALE_AFTER.as_millis()
        ),
        None => "oversight state (halts and overrides) has not been read from the database \
                 yet; retry shortly"
            .to_owned(),
    })
}

impl Engine {
    fn oversight_state(&self) -> &OversightState {
        &self.sync.oversight
    }

    /// Reads halts and overrides in force from the database into the in-memory copy.
    pub(crate) async fn sync_oversight(&self) -> Result<(), EngineError> {
        let state = self.oversight_state();
        let _one = state.refreshing.lock().await;
        let store = store::on(&self.db);
        let now = self.clock.now().unix_micros();
        let halts = store.active_halts().await?;
        let overrides = store.overrides(now, false).await?;
        state.store(Snapshot::build(halts, overrides));
        Ok(())
    }

    /// Refreshes after a local change; a failure only delays the change here (the sync
    /// task retries), the change itself is durable.
    pub(crate) async fn sync_oversight_after_change(&self) {
        if let Err(e) = self.sync_oversight().await {
            tracing::warn!(error = %e, "refreshing oversight state after a change failed; the sync task retries");
        }
    }

    /// The halts and overrides to decide with, or UNAVAILABLE when they are stale.
    pub(crate) async fn oversight_now(&self) -> Result<Arc<Snapshot>, EngineError> {
        let state = self.oversight_state();
        let age = state.age();
        if state.serving.load(Ordering::Acquire) {
            return match age {
                Some(a) if a <= STALE_AFTER => Ok(state.current()),
                _ => Err(stale(age)),
            };
        }
        if age.is_none_or(|a| a > LOCAL_REFRESH_AFTER)
            && let Err(e) = self.sync_oversight().await
        {
            let age = state.age();
            if age.is_none_or(|a| a > STALE_AFTER) {
                tracing::warn!(error = %e, "refreshing oversight state failed");
                return Err(stale(age));
            }
        }
        Ok(state.current())
    }
}
