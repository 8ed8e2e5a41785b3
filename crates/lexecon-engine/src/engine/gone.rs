//! A caller that has gone away (contract §10): a `Decide` whose caller hung up or whose
//! deadline passed is abandoned only before its first side effect (the idempotency
//! claim, a grant claim, a budget reservation); from then on it runs to completion, so
//! nothing is left half-done: no budget held for a decision never recorded, no claim
//! that makes the caller's retry wait for its lease.
//!
//! The adapter runs the engine call in a task of its own and sets the signal when its
//! request future is dropped ([`CallerGone::on_drop`]); the engine checks it at the
//! points where stopping is safe and waits on it only around reads.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use super::EngineError;

/// Set once the caller of an operation has gone away.
#[derive(Debug, Clone, Default)]
pub struct CallerGone(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    gone: AtomicBool,
    notify: Notify,
}

impl CallerGone {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the caller gone and wakes whoever waits on it.
    pub fn set(&self) {
        self.0.gone.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Whether the caller has gone away.
    pub fn is_set(&self) -> bool {
        self.0.gone.load(Ordering::Acquire)
    }

    /// A guard that sets the signal when dropped, unless [`GoneOnDrop::disarm`]ed: hold
    /// it in the request future, so that dropping the future (a reset stream, a passed
    /// deadline) tells the engine.
    pub fn on_drop(&self) -> GoneOnDrop {
        GoneOnDrop(Some(self.clone()))
    }

    /// Resolves once the signal is set.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `set` in between is not missed.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// `Err` when the caller has gone away: stop here, nothing was done yet.
    pub(crate) fn check(&self) -> Result<(), EngineError> {
        if self.is_set() {
            return Err(abandoned());
        }
        Ok(())
    }

    /// Runs `read` (which must have no side effect: it may be dropped) unless the
    /// caller goes away first.
    pub(crate) async fn or_gone<T>(
        &self,
        read: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        tokio::select! {
            biased;
            () = self.wait() => Err(abandoned()),
            r = read => r,
        }
    }
}

/// Sets its [`CallerGone`] when dropped, unless disarmed.
#[derive(Debug)]
pub struct GoneOnDrop(Option<CallerGone>);

impl GoneOnDrop {
    /// The call finished: dropping the guard no longer sets the signal.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        if let Some(gone) = self.0.take() {
            gone.set();
        }
    }
}

fn abandoned() -> EngineError {
    EngineError::Cancelled(
        "the caller went away (cancelled or past its deadline) before the decision was \
         started; nothing was recorded, so a retry with the same request_id decides afresh"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[tokio::test]
    async fn a_dropped_guard_sets_the_signal_and_wakes_a_waiter() {
        let gone = CallerGone::new();
        let waiter = tokio::spawn({
            let gone = gone.clone();
            async move { gone.wait().await }
        });
        assert!(gone.check().is_ok());
        drop(gone.on_drop());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(gone.check(), Err(EngineError::Cancelled(_))));
    }

    #[tokio::test]
    async fn a_disarmed_guard_leaves_it_unset() {
        let gone = CallerGone::new();
        gone.on_drop().disarm();
        assert!(!gone.is_set());
        let read = gone.or_gone(async { Ok::<_, EngineError>(7) }).await;
        assert_eq!(read.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_read_is_cut_short_when_the_caller_goes() {
        let gone = CallerGone::new();
        let slow = gone.or_gone(async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok::<_, EngineError>(())
        });
        let setter = {
            let gone = gone.clone();
            async move { gone.set() }
        };
        let (r, ()) = tokio::join!(slow, setter);
        assert!(matches!(r, Err(EngineError::Cancelled(_))));
    }
}
