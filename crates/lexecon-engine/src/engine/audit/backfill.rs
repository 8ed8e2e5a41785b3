//! The backfill of the decision index for ledgers written before it existed.
//!
//! Every decision appended since migration 4004 carries its index row. The entries to
//! backfill are those below the first indexed entry (or below the ledger's size when no
//! decision was indexed yet), fixed the first time the backfill runs and kept in
//! `engine_decision_index_backfill` with the position reached, so the work resumes where
//! it stopped (a crash, a restart) and is done once. Rows are written `ON CONFLICT DO
//! NOTHING` with the position in one transaction, so replicas may run it side by side.
//!
//! A backfilled row takes `decided_at` from the millisecond its `decision_id` carries
//! (old payloads hold no decision time); a decision whose payload was redacted before
//! the backfill has no id to index and is left out.

use std::sync::Weak;

use lexecon_ledger::EntryKind;

use super::super::{Engine, EngineError, journal::IndexRow};

/// Entries one step reads.
pub(crate) const BACKFILL_STEP: u64 = 20_000;

/// How far the backfill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BackfillProgress {
    /// Entries below this index were scanned.
    pub next: u64,
    /// The backfill scans entries below this index.
    pub upto: u64,
    /// Rows written by the calls that reported this.
    pub indexed: u64,
}

impl BackfillProgress {
    /// Whether nothing is left to scan.
    pub fn done(&self) -> bool {
        self.next >= self.upto
    }

    /// How far, 0-100.
    pub fn percent(&self) -> u64 {
        (self.next.min(self.upto) * 100)
            .checked_div(self.upto)
            .unwrap_or(100)
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Engine {
    /// The backfill's state, started (its range fixed) if it never ran.
    async fn backfill_progress(&self) -> Result<BackfillProgress, EngineError> {
        let store = super::store::on(&self.db);
        let state = match store.backfill_state().await? {
            Some(s) => s,
            None => {
                let size = i64::try_from(self.ledger.tree_size().await?).unwrap_or(i64::MAX);
                store.start_backfill(size).await?
            }
        };
        Ok(BackfillProgress {
            next: unsigned(state.next),
            upto: unsigned(state.upto),
            indexed: 0,
        })
    }

    /// Scans up to `limit` entries of the backfill range and indexes their decisions.
    pub(crate) async fn backfill_step(&self, limit: u64) -> Result<BackfillProgress, EngineError> {
        let mut progress = self.backfill_progress().await?;
        if progress.done() {
            return Ok(progress);
        }
        let want = limit.min(progress.upto - progress.next).max(1);
        let entries = self.ledger.entries(progress.next, want).await?;
        let mut rows = Vec::new();
        let mut next = progress.next;
        for e in entries.iter().filter(|e| e.index < progress.upto) {
            next = e.index + 1;
            let Ok(leaf) = e.decode_leaf() else {
                continue;
            };
            if leaf.kind != EntryKind::Decision {
                continue;
            }
            let Some(payload) = &e.payload else {
                continue;
            };
            match IndexRow::from_payload(payload, None) {
                Ok(row) => rows.push((i64::try_from(e.index).unwrap_or(i64::MAX), row.side_row())),
                Err(err) => {
                    tracing::warn!(index = e.index, error = %err, "decision left out of the index");
                }
            }
        }
        if entries.is_empty() {
            // The log ends before the range: nothing more can be there.
            next = progress.upto;
        }
        super::store::on(&self.db)
            .backfill_rows(&rows, i64::try_from(next).unwrap_or(i64::MAX))
            .await?;
        progress.next = next.max(progress.next);
        progress.indexed = rows.len() as u64;
        Ok(progress)
    }

    /// Runs the decision index backfill to its end (`lexecon migrate`), reporting after
    /// every step. Resumes where an earlier run stopped; a no-op once done.
    pub async fn backfill_decision_index(
        &self,
        report: impl Fn(&BackfillProgress),
    ) -> Result<BackfillProgress, EngineError> {
        let mut indexed = 0;
        loop {
            let mut p = self.backfill_step(BACKFILL_STEP).await?;
            indexed += p.indexed;
            p.indexed = indexed;
            report(&p);
            if p.done() {
                return Ok(p);
            }
        }
    }

    /// Ok when the decision index holds every decision. Otherwise one step of the
    /// backfill runs here (a small or fresh ledger finishes at once), and while work is
    /// left the answer is UNAVAILABLE with how far it is.
    pub(crate) async fn decision_index_ready(&self) -> Result<(), EngineError> {
        let p = self.backfill_progress().await?;
        if p.done() {
            return Ok(());
        }
        let p = self.backfill_step(BACKFILL_STEP).await?;
        if p.done() {
            return Ok(());
        }
        Err(EngineError::Unavailable(format!(
            "decision index is being built ({}%); retry shortly, or run `lexecon migrate` to finish it",
            p.percent()
        )))
    }

    /// Runs the backfill in the background until it is done (a serving engine), a
    /// step at a time, stopping when the engine is dropped.
    pub fn spawn_decision_index_backfill(engine: Weak<Engine>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                match engine.backfill_step(BACKFILL_STEP).await {
                    Ok(p) if p.done() => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "decision index backfill step failed; retrying");
                        drop(engine);
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                }
            }
        })
    }
}
