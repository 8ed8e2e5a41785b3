//! Refused actor claims (contract §3): a key that tries to speak for an actor outside
//! its binding is a security signal. The first refusal of a key in a window is ledgered
//! at once; the rest of that window is counted into one summary entry written when the
//! window closes (or at shutdown), so a flood of attempts cannot swell the ledger.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use lexecon_core::Timestamp;
use serde_json::json;

/// How long one window lasts.
pub(crate) const WINDOW_SECS: i64 = 60;
/// The distinct actors a summary names at most (the count covers them all).
const MAX_ACTORS_NAMED: usize = 16;

/// Called with the key's name on every refusal (for metrics; never the actor tried).
pub(crate) type RefusalObserver = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug)]
struct Window {
    opened: Timestamp,
    /// Refusals after the first, which was ledgered when the window opened.
    more: u64,
    actors: BTreeSet<String>,
    actors_dropped: bool,
}

/// The open windows, by principal.
#[derive(Default)]
pub(crate) struct Refusals {
    windows: Mutex<HashMap<String, Window>>,
    observer: OnceLock<RefusalObserver>,
}

impl std::fmt::Debug for Refusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusals").finish_non_exhaustive()
    }
}

impl Refusals {
    pub(crate) fn set_observer(&self, observer: RefusalObserver) {
        let _ = self.observer.set(observer);
    }

    /// Counts one refusal; returns the payloads to ledger now: the summary of a window
    /// that had closed, and this refusal when it opens a window.
    pub(crate) fn refuse(
        &self,
        principal: &str,
        key_name: &str,
        actor: &str,
        now: Timestamp,
    ) -> Vec<serde_json::Value> {
        if let Some(observer) = self.observer.get() {
            observer(key_name);
        }
        let mut out = Vec::new();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let open = windows
            .get(principal)
            .is_some_and(|w| now.unix_micros() - w.opened.unix_micros() < WINDOW_SECS * 1_000_000);
        if open {
            if let Some(w) = windows.get_mut(principal) {
                w.more += 1;
                if w.actors.len() < MAX_ACTORS_NAMED {
                    w.actors.insert(actor.to_owned());
                } else if !w.actors.contains(actor) {
                    w.actors_dropped = true;
                }
            }
            return out;
        }
        if let Some(old) = windows.remove(principal) {
            out.extend(summary(principal, &old, now));
        }
        windows.insert(
            principal.to_owned(),
            Window {
                opened: now,
                more: 0,
                actors: BTreeSet::new(),
                actors_dropped: false,
            },
        );
        out.push(json!({
            "event": "actor_refused",
            "principal": principal,
            "actor": actor,
            "window_secs": WINDOW_SECS,
            "note": "further refusals of this principal in the window are counted into one actor_refusals entry",
        }));
        out
    }

    /// Closes the windows older than [`WINDOW_SECS`] (all of them with `all`) and
    /// returns their summaries.
    pub(crate) fn close(&self, now: Timestamp, all: bool) -> Vec<serde_json::Value> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let closing: Vec<String> = windows
            .iter()
            .filter(|(_, w)| {
                all || now.unix_micros() - w.opened.unix_micros() >= WINDOW_SECS * 1_000_000
            })
            .map(|(k, _)| k.clone())
            .collect();
        closing
            .into_iter()
            .filter_map(|k| {
                let w = windows.remove(&k)?;
                summary(&k, &w, now)
            })
            .collect()
    }
}

fn summary(principal: &str, w: &Window, now: Timestamp) -> Option<serde_json::Value> {
    (w.more > 0).then(|| {
        json!({
            "event": "actor_refusals",
            "principal": principal,
            "refused": w.more,
            "actors": w.actors,
            "actors_truncated": w.actors_dropped,
            "from": w.opened.to_rfc3339(),
            "to": now.to_rfc3339(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(secs * 1_000_000)
    }

    #[test]
    fn a_flood_is_one_entry_then_one_summary() {
        let r = Refusals::default();
        let first = r.refuse("key:bot", "bot", "admin:root", at(0));
        assert_eq!(first.len(), 1);
        assert_eq!(
            first.first().map(|v| v["event"].clone()),
            Some(json!("actor_refused"))
        );
        for i in 0..199 {
            assert!(
                r.refuse("key:bot", "bot", &format!("ai_agent:x{i}"), at(1))
                    .is_empty()
            );
        }
        assert!(
            r.close(at(30), false).is_empty(),
            "the window is still open"
        );
        let closed = r.close(at(61), false);
        assert_eq!(closed.len(), 1);
        let summary = closed.first().cloned().unwrap_or_default();
        assert_eq!(summary["refused"], 199);
        assert_eq!(
            summary["actors"].as_array().map(Vec::len),
            Some(MAX_ACTORS_NAMED)
        );
        assert_eq!(summary["actors_truncated"], true);
        assert!(r.close(at(200), true).is_empty());
    }

    #[test]
    fn keys_have_their_own_windows_and_a_late_refusal_opens_a_new_one() {
        let r = Refusals::default();
        assert_eq!(r.refuse("key:a", "a", "x:1", at(0)).len(), 1);
        assert_eq!(r.refuse("key:b", "b", "x:1", at(0)).len(), 1);
        assert!(r.refuse("key:a", "a", "x:2", at(10)).is_empty());
        // 70 s later: the old window's summary and the new first refusal.
        let out = r.refuse("key:a", "a", "x:3", at(70));
        assert_eq!(out.len(), 2);
        assert_eq!(
            r.close(at(71), true).len(),
            0,
            "no refusals after the first in either window"
        );
    }
}
