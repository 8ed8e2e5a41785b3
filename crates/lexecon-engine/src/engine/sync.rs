//! Keeping run-time state in step with other replicas: every [`super::SYNC_EVERY`] the
//! engine asks the database whether the active policy, the token revocations or the
//! budget limits changed, and applies what did. Decisions never wait for this: they
//! read the in-memory copies. Halts and overrides are refreshed first, and their copy
//! carries its age: a serving engine does not decide on oversight state older than two
//! seconds ([`super::oversight`]). The same task runs the oversight sweeper.

use std::sync::Weak;
use std::sync::atomic::{AtomicI64, Ordering};

use super::Engine;

/// The versions of shared state this engine has applied.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    policy_seq: AtomicI64,
    budget_version: AtomicI64,
    revocations: AtomicI64,
    /// Halts and overrides in force, with their freshness.
    pub(crate) oversight: super::oversight::OversightState,
}

impl SyncState {
    pub(crate) fn policy_seq(&self) -> i64 {
        self.policy_seq.load(Ordering::Acquire)
    }

    pub(crate) fn set_policy_seq(&self, seq: i64) {
        self.policy_seq.fetch_max(seq, Ordering::AcqRel);
    }

    pub(crate) fn budget_version(&self) -> i64 {
        self.budget_version.load(Ordering::Acquire)
    }

    pub(crate) fn set_budget_version(&self, version: i64) {
        self.budget_version.fetch_max(version, Ordering::AcqRel);
    }

    pub(crate) fn revocations(&self) -> i64 {
        self.revocations.load(Ordering::Acquire)
    }

    pub(crate) fn set_revocations(&self, count: i64) {
        self.revocations.store(count, Ordering::Release);
    }
}

/// Starts the refresher and the oversight sweeper (one task; aborting it stops both);
/// they stop when the engine is dropped (or aborted at shutdown). From the first
/// successful refresh of oversight state on, Decide relies on this task to keep it
/// fresh and answers UNAVAILABLE when it is not.
pub(crate) fn spawn(engine: Weak<Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sweeper = engine.clone();
        let sync = async move {
            let mut tick = tokio::time::interval(super::SYNC_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                engine.sync_once().await;
                engine.sync.oversight.serve_once_fresh();
            }
        };
        let sweep = async move {
            let mut tick = tokio::time::interval(super::oversight::SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = sweeper.upgrade() else {
                    return;
                };
                if let Err(e) = engine.sweep_oversight().await {
                    tracing::warn!(error = %e, "the oversight sweep failed; retrying");
                }
            }
        };
        tokio::join!(sync, sweep);
    })
}

impl Engine {
    /// One refresh of everything other replicas may have changed; failures are logged
    /// and retried on the next tick.
    pub(crate) async fn sync_once(&self) {
        if let Err(e) = self.sync_oversight().await {
            tracing::warn!(error = %e, "refreshing halts and overrides failed; retrying");
        }
        if let Err(e) = self.sync_policy().await {
            tracing::warn!(error = %e, "refreshing the active policy failed; retrying");
        }
        if let Err(e) = self.sync_revocations().await {
            tracing::warn!(error = %e, "refreshing token revocations failed; retrying");
        }
        if let Err(e) = self.sync_budget().await {
            tracing::warn!(error = %e, "refreshing budget limits failed; retrying");
        }
        if let Err(e) = self.tail_ledger_stats_step().await {
            tracing::warn!(error = %e, "counting new ledger entries for compliance failed; retrying");
        }
        let now = self.clock.now();
        for payload in self.refusals.close(now, false) {
            if let Err(e) = self
                .ledger
                .append(lexecon_ledger::EntryKind::AuthEvent, payload)
                .await
            {
                tracing::error!(error = %e, "recording refused actor claims failed");
            }
        }
    }
}
