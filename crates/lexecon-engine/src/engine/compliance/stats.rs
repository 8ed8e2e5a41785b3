//! Ledger statistics kept as entries are appended (performance.md: compliance status
//! at 10^6 entries is never a scan of the ledger). A tailer reads only the entries after
//! the mark of `engine_ledger_stats_mark`, adds them up per kind, and moves the mark
//! with a guarded update in the transaction that writes the sums, so replicas tailing
//! at once never count an entry twice. The sync task runs one bounded step a tick; a
//! compliance call catches up the rest before it reads the statistics. Decide pays
//! nothing for this.

use std::collections::BTreeMap;

use lexecon_compliance::facts::{KindStats, LedgerStats};
use lexecon_core::Timestamp;

use super::store::{self, StatRow};
use super::{to_i64, to_u64};
use crate::engine::{Engine, EngineError};

/// The most entries one step of the sync task reads.
pub(crate) const TAIL_STEP: u64 = 5_000;

/// Entries read per page.
const PAGE: u64 = 1_000;

impl Engine {
    /// Counts up to [`TAIL_STEP`] entries after the mark; returns how many it counted
    /// (0: up to date, or another replica counted them first).
    pub(crate) async fn tail_ledger_stats_step(&self) -> Result<u64, EngineError> {
        let store = store::on(&self.db);
        let (through, _) = store.stats().await?;
        let from = to_u64(through);
        let size = self.ledger.tree_size().await?;
        if from >= size {
            return Ok(0);
        }
        let end = size.min(from.saturating_add(TAIL_STEP));
        let mut sums: BTreeMap<String, StatRow> = BTreeMap::new();
        let mut next = from;
        while next < end {
            let entries = self.ledger.entries(next, PAGE.min(end - next)).await?;
            let Some(last) = entries.last() else {
                break;
            };
            next = last.index + 1;
            for e in &entries {
                if e.index >= end {
                    break;
                }
                let leaf = e
                    .decode_leaf()
                    .map_err(|err| EngineError::Corrupt(format!("entry {}: {err}", e.index)))?;
                let kind = leaf.kind.to_string();
                let (idx, at) = (to_i64(e.index), leaf.timestamp.unix_micros());
                sums.entry(kind.clone())
                    .and_modify(|s| {
                        s.entries += 1;
                        s.last_idx = idx;
                        s.last_at = at;
                    })
                    .or_insert(StatRow {
                        kind,
                        entries: 1,
                        first_idx: idx,
                        first_at: at,
                        last_idx: idx,
                        last_at: at,
                    });
            }
        }
        let end = next.min(end);
        if end == from {
            return Ok(0);
        }
        let deltas: Vec<StatRow> = sums.into_values().collect();
        if store.stats_advance(through, to_i64(end), &deltas).await? {
            Ok(end - from)
        } else {
            Ok(0)
        }
    }

    /// Counts every entry appended so far (one step at a time).
    pub(crate) async fn tail_ledger_stats(&self) -> Result<(), EngineError> {
        loop {
            let size = self.ledger.tree_size().await?;
            let (through, _) = store::on(&self.db).stats().await?;
            if to_u64(through) >= size {
                return Ok(());
            }
            // Zero means another replica moved the mark (read it again), or that the
            // entries after it cannot be read.
            if self.tail_ledger_stats_step().await? == 0
                && store::on(&self.db).stats().await?.0 == through
            {
                return Err(EngineError::Corrupt(format!(
                    "the ledger holds {size} entries but those from {through} on cannot be \
                     read for its statistics; run `lexecon verify-ledger`"
                )));
            }
        }
    }

    /// The ledger statistics, caught up with every entry appended so far.
    pub(super) async fn ledger_stats(&self) -> Result<LedgerStats, EngineError> {
        self.tail_ledger_stats().await?;
        let store = store::on(&self.db);
        let (through, rows) = store.stats().await?;
        let redacted = store.redacted_count().await?;
        let mut stats = LedgerStats {
            total_entries: to_u64(through),
            redacted_entries: to_u64(redacted),
            ..LedgerStats::default()
        };
        for r in rows {
            let first = Timestamp::from_unix_micros(r.first_at);
            let last = Timestamp::from_unix_micros(r.last_at);
            if stats.oldest_at.is_none_or(|o| first < o) {
                stats.oldest_at = Some(first);
            }
            if stats.newest_at.is_none_or(|n| last > n) {
                stats.newest_at = Some(last);
            }
            stats.by_kind.insert(
                r.kind,
                KindStats {
                    count: to_u64(r.entries),
                    first_index: Some(to_u64(r.first_idx)),
                    first_at: Some(first),
                    last_index: Some(to_u64(r.last_idx)),
                    last_at: Some(last),
                },
            );
        }
        Ok(stats)
    }
}
