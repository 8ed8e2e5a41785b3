//! The compliance tables of migration 4009 behind one trait, implemented for both pools
//! by one macro (the pattern of `engine/store.rs`). Holds, releases, interventions and
//! verifications are written only as ledger side rows ([`tables`]); this store reads
//! them, reads the facts other tables hold, and advances the ledger statistics.

use sqlx::Row as _;

use super::super::EngineError;
use crate::db::Database;

/// The side tables and their columns (after `idx`, which the ledger prepends).
pub(crate) mod tables {
    use lexecon_ledger::{SideTable, SideType};

    use SideType::{Int, Text};

    pub(crate) static HOLDS: SideTable = SideTable {
        name: "engine_legal_holds",
        columns: &[
            ("hold_id", Text),
            ("reason", Text),
            ("matter", Text),
            ("from_idx", Int),
            ("to_idx", Int),
            ("decision_ids", Text),
            ("actor_glob", Text),
            ("placed_by", Text),
            ("placed_at", Int),
        ],
        on_conflict: "",
    };

    pub(crate) static HOLD_RELEASES: SideTable = SideTable {
        name: "engine_legal_hold_releases",
        columns: &[
            ("hold_id", Text),
            ("released_by", Text),
            ("released_at", Int),
            ("reason", Text),
        ],
        on_conflict: "ON CONFLICT DO NOTHING",
    };

    pub(crate) static INTERVENTIONS: SideTable = SideTable {
        name: "engine_interventions",
        columns: &[
            ("intervention_id", Text),
            ("decision_id", Text),
            ("kind", Text),
            ("reason", Text),
            ("recorded_by", Text),
            ("recorded_at", Int),
            ("halt_id", Text),
            ("override_id", Text),
            ("token_id", Text),
        ],
        on_conflict: "",
    };

    pub(crate) static VERIFICATIONS: SideTable = SideTable {
        name: "engine_ledger_verifications",
        columns: &[
            ("verified_at", Int),
            ("valid", Int),
            ("entries", Int),
            ("checkpoints", Int),
            ("trusted_key_ring", Int),
            ("basis", Text),
            ("verified_by", Text),
        ],
        on_conflict: "",
    };
}

/// A legal hold with its release, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HoldRow {
    pub idx: i64,
    pub hold_id: String,
    pub reason: String,
    pub matter: String,
    pub from_idx: Option<i64>,
    pub to_idx: Option<i64>,
    pub decision_ids: String,
    pub actor_glob: String,
    pub placed_by: String,
    pub placed_at: i64,
    /// `(released_by, released_at, idx)`.
    pub released: Option<(String, i64, i64)>,
}

/// The newest recorded verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerificationRow {
    pub idx: i64,
    pub verified_at: i64,
    pub valid: bool,
    pub entries: i64,
    pub trusted_key_ring: bool,
    pub basis: String,
    pub verified_by: String,
}

/// The statistics of one entry kind (`engine_ledger_stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatRow {
    pub kind: String,
    pub entries: i64,
    pub first_idx: i64,
    pub first_at: i64,
    pub last_idx: i64,
    pub last_at: i64,
}

/// What a decision's index row keeps, for interventions and holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecisionRow {
    pub idx: i64,
    pub actor: Option<String>,
}

/// Oversight activity counts (see `lexecon_compliance::facts::OversightFacts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OversightCounts {
    pub escalations_created: i64,
    pub escalations_resolved: i64,
    pub escalations_expired: i64,
    pub pending: i64,
    pub overdue_pending: i64,
    pub overrides_created: i64,
    pub overrides_active: i64,
    pub halts_placed: i64,
    pub halts_active: i64,
    pub two_person_approvals: i64,
    pub tokens_revoked: i64,
    /// `(kind, count)` of interventions in the window.
    pub interventions: Vec<(String, i64)>,
}

/// One evidence artifact with its control links, for facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvidenceFactRow {
    pub evidence_id: String,
    pub artifact_type: String,
    pub registered_at: i64,
    pub idx: i64,
    pub control_ids: Vec<String>,
}

/// Where compliance state lives.
#[async_trait::async_trait]
pub(crate) trait ComplianceStore: Send + Sync + std::fmt::Debug {
    /// Every hold (released ones too when `include_released`), oldest first.
    async fn holds(&self, include_released: bool) -> Result<Vec<HoldRow>, EngineError>;
    /// One hold.
    async fn hold(&self, hold_id: &str) -> Result<Option<HoldRow>, EngineError>;
    /// The newest recorded verification.
    async fn latest_verification(&self) -> Result<Option<VerificationRow>, EngineError>;
    /// The statistics and the index they count up to.
    async fn stats(&self) -> Result<(i64, Vec<StatRow>), EngineError>;
    /// Adds `deltas` (per kind: count, first and last entry of the new range) and moves
    /// the mark from `from` to `to`, in one transaction, only if the mark is still at
    /// `from`; false when another replica moved it first (nothing is written).
    async fn stats_advance(
        &self,
        from: i64,
        to: i64,
        deltas: &[StatRow],
    ) -> Result<bool, EngineError>;
    /// Entries whose payload was redacted (a partial index of the ledger).
    async fn redacted_count(&self) -> Result<i64, EngineError>;
    /// The index row of a decision (found through the time index: its ULID carries the
    /// millisecond it was decided).
    async fn decision(
        &self,
        decision_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Option<DecisionRow>, EngineError>;
    /// Oversight activity since `since` and state at `now`.
    async fn oversight_counts(&self, since: i64, now: i64) -> Result<OversightCounts, EngineError>;
    /// The index and time of the newest oversight or compliance-intervention row.
    async fn last_oversight(&self) -> Result<Option<i64>, EngineError>;
    /// Every evidence artifact with its control links, newest first.
    async fn evidence(&self) -> Result<Vec<EvidenceFactRow>, EngineError>;
    /// Policy loads since `since`.
    async fn policy_loads_since(&self, since: i64) -> Result<i64, EngineError>;
    /// Whether the override exists.
    async fn override_exists(&self, override_id: &str) -> Result<bool, EngineError>;
    /// The id of the token minted from the grant of the decision's escalation.
    async fn escalation_token(&self, decision_id: &str) -> Result<Option<String>, EngineError>;
    /// Users per `(role, mfa enrolled)`: `(role, mfa, count)`.
    async fn user_counts(&self) -> Result<Vec<(String, bool, i64)>, EngineError>;
    /// API keys in force at `now` per `(role, bound to actors, without expiry)`.
    async fn key_counts(&self, now: i64) -> Result<Vec<(String, bool, bool, i64)>, EngineError>;
    /// The indexes of redacted entries among `indexes`.
    async fn redacted_among(&self, indexes: &[i64]) -> Result<Vec<i64>, EngineError>;
    /// The idempotency row `(principal, request_id, decision)` of a decision.
    async fn idempotency_of(
        &self,
        request_id: &str,
        decision_id: &str,
    ) -> Result<Option<(String, String)>, EngineError>;
}

const HOLD_SELECT: &str = "SELECT h.idx, h.hold_id, h.reason, h.matter, h.from_idx, h.to_idx, \
     h.decision_ids, h.actor_glob, h.placed_by, h.placed_at, r.released_by, r.released_at, \
     r.idx AS release_idx FROM engine_legal_holds h LEFT JOIN engine_legal_hold_releases r \
     ON r.hold_id = h.hold_id";

macro_rules! compliance_store {
    ($name:ident, $pool:ty, $row:ty, $db:ty) => {
        #[derive(Debug)]
        struct $name($pool);

        fn hold_row(row: &$row) -> Result<HoldRow, sqlx::Error> {
            let released_by: Option<String> = row.try_get("released_by")?;
            Ok(HoldRow {
                idx: row.try_get("idx")?,
                hold_id: row.try_get("hold_id")?,
                reason: row.try_get("reason")?,
                matter: row.try_get("matter")?,
                from_idx: row.try_get("from_idx")?,
                to_idx: row.try_get("to_idx")?,
                decision_ids: row.try_get("decision_ids")?,
                actor_glob: row.try_get("actor_glob")?,
                placed_by: row.try_get("placed_by")?,
                placed_at: row.try_get("placed_at")?,
                released: match released_by {
                    None => None,
                    Some(by) => Some((
                        by,
                        row.try_get("released_at")?,
                        row.try_get("release_idx")?,
                    )),
                },
            })
        }

        async fn count(pool: &$pool, sql: &str, binds: &[i64]) -> Result<i64, EngineError> {
            let mut q = sqlx::query_scalar::<$db, i64>(sql);
            for b in binds {
                q = q.bind(*b);
            }
            Ok(q.fetch_one(pool).await?)
        }

        #[async_trait::async_trait]
        impl ComplianceStore for $name {
            async fn holds(&self, include_released: bool) -> Result<Vec<HoldRow>, EngineError> {
                let sql = if include_released {
                    format!("{HOLD_SELECT} ORDER BY h.idx")
                } else {
                    format!("{HOLD_SELECT} WHERE r.hold_id IS NULL ORDER BY h.idx")
                };
                let rows = sqlx::query(&sql).fetch_all(&self.0).await?;
                Ok(rows.iter().map(hold_row).collect::<Result<_, _>>()?)
            }

            async fn hold(&self, hold_id: &str) -> Result<Option<HoldRow>, EngineError> {
                let row = sqlx::query(&format!("{HOLD_SELECT} WHERE h.hold_id = $1"))
                    .bind(hold_id)
                    .fetch_optional(&self.0)
                    .await?;
                Ok(row.as_ref().map(hold_row).transpose()?)
            }

            async fn latest_verification(
                &self,
            ) -> Result<Option<VerificationRow>, EngineError> {
                let row = sqlx::query(
                    "SELECT idx, verified_at, valid, entries, trusted_key_ring, basis, \
                     verified_by FROM engine_ledger_verifications ORDER BY idx DESC LIMIT 1",
                )
                .fetch_optional(&self.0)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(VerificationRow {
                    idx: row.try_get("idx")?,
                    verified_at: row.try_get("verified_at")?,
                    valid: row.try_get::<i64, _>("valid")? != 0,
                    entries: row.try_get("entries")?,
                    trusted_key_ring: row.try_get::<i64, _>("trusted_key_ring")? != 0,
                    basis: row.try_get("basis")?,
                    verified_by: row.try_get("verified_by")?,
                }))
            }

            async fn stats(&self) -> Result<(i64, Vec<StatRow>), EngineError> {
                let through: i64 = sqlx::query_scalar(
                    "SELECT through FROM engine_ledger_stats_mark WHERE id = 1",
                )
                .fetch_optional(&self.0)
                .await?
                .unwrap_or(0);
                let rows = sqlx::query(
                    "SELECT kind, entries, first_idx, first_at, last_idx, last_at \
                     FROM engine_ledger_stats ORDER BY kind",
                )
                .fetch_all(&self.0)
                .await?;
                let stats = rows
                    .iter()
                    .map(|row| {
                        Ok(StatRow {
                            kind: row.try_get("kind")?,
                            entries: row.try_get("entries")?,
                            first_idx: row.try_get("first_idx")?,
                            first_at: row.try_get("first_at")?,
                            last_idx: row.try_get("last_idx")?,
                            last_at: row.try_get("last_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok((through, stats))
            }

            async fn stats_advance(
                &self,
                from: i64,
                to: i64,
                deltas: &[StatRow],
            ) -> Result<bool, EngineError> {
                let mut tx = self.0.begin().await?;
                // The guarded move of the mark comes first: it takes the write lock
                // (SQLite) or the row lock (PostgreSQL), so a replica advancing from the
                // same mark waits, then finds it moved and writes nothing.
                let moved = sqlx::query(
                    "UPDATE engine_ledger_stats_mark SET through = $1 WHERE id = 1 AND through = $2",
                )
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for d in deltas {
                    sqlx::query(
                        "INSERT INTO engine_ledger_stats \
                         (kind, entries, first_idx, first_at, last_idx, last_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (kind) DO UPDATE SET \
                         entries = engine_ledger_stats.entries + excluded.entries, \
                         last_idx = excluded.last_idx, last_at = excluded.last_at",
                    )
                    .bind(&d.kind)
                    .bind(d.entries)
                    .bind(d.first_idx)
                    .bind(d.first_at)
                    .bind(d.last_idx)
                    .bind(d.last_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn redacted_count(&self) -> Result<i64, EngineError> {
                count(
                    &self.0,
                    "SELECT COUNT(*) FROM ledger_payloads WHERE redacted_by IS NOT NULL",
                    &[],
                )
                .await
            }

            async fn decision(
                &self,
                decision_id: &str,
                from: i64,
                to: i64,
            ) -> Result<Option<DecisionRow>, EngineError> {
                let row = sqlx::query(
                    "SELECT idx, actor FROM engine_decision_index \
                     WHERE decided_at >= $1 AND decided_at <= $2 AND decision_id = $3 LIMIT 1",
                )
                .bind(from)
                .bind(to)
                .bind(decision_id)
                .fetch_optional(&self.0)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(DecisionRow {
                    idx: row.try_get("idx")?,
                    actor: row.try_get("actor")?,
                }))
            }

            async fn oversight_counts(
                &self,
                since: i64,
                now: i64,
            ) -> Result<OversightCounts, EngineError> {
                let p = &self.0;
                let kinds = sqlx::query(
                    "SELECT kind, COUNT(*) AS n FROM engine_interventions \
                     WHERE recorded_at >= $1 GROUP BY kind ORDER BY kind",
                )
                .bind(since)
                .fetch_all(p)
                .await?;
                let interventions = kinds
                    .iter()
                    .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?)))
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok(OversightCounts {
                    escalations_created: count(
                        p,
                        "SELECT COUNT(*) FROM engine_escalations WHERE created_at >= $1",
                        &[since],
                    )
                    .await?,
                    escalations_resolved: count(
                        p,
                        "SELECT COUNT(*) FROM engine_escalation_state \
                         WHERE state IN ('approved', 'denied') AND resolved_at >= $1",
                        &[since],
                    )
                    .await?,
                    escalations_expired: count(
                        p,
                        "SELECT COUNT(*) FROM engine_escalation_state s JOIN engine_escalations e \
                         ON e.escalation_id = s.escalation_id \
                         WHERE s.state = 'expired' AND e.due_at >= $1",
                        &[since],
                    )
                    .await?,
                    pending: count(
                        p,
                        "SELECT COUNT(*) FROM engine_escalation_state WHERE state = 'pending'",
                        &[],
                    )
                    .await?,
                    overdue_pending: count(
                        p,
                        "SELECT COUNT(*) FROM engine_escalation_state s JOIN engine_escalations e \
                         ON e.escalation_id = s.escalation_id \
                         WHERE s.state = 'pending' AND e.due_at < $1",
                        &[now],
                    )
                    .await?,
                    overrides_created: count(
                        p,
                        "SELECT COUNT(*) FROM engine_overrides WHERE created_at >= $1",
                        &[since],
                    )
                    .await?,
                    overrides_active: count(
                        p,
                        "SELECT COUNT(*) FROM engine_overrides o WHERE o.expires_at > $1 \
                         AND NOT EXISTS (SELECT 1 FROM engine_override_revocations r \
                         WHERE r.override_id = o.override_id)",
                        &[now],
                    )
                    .await?,
                    halts_placed: count(
                        p,
                        "SELECT COUNT(*) FROM engine_halts WHERE placed_at >= $1",
                        &[since],
                    )
                    .await?,
                    halts_active: count(
                        p,
                        "SELECT COUNT(*) FROM engine_halts h WHERE NOT EXISTS \
                         (SELECT 1 FROM engine_halt_ends x WHERE x.halt_id = h.halt_id)",
                        &[],
                    )
                    .await?,
                    two_person_approvals: count(
                        p,
                        "SELECT COUNT(*) FROM engine_escalation_state s JOIN engine_escalations e \
                         ON e.escalation_id = s.escalation_id WHERE s.state = 'approved' \
                         AND e.approvals_required >= 2 AND s.approvals >= 2 \
                         AND s.resolved_at >= $1",
                        &[since],
                    )
                    .await?,
                    tokens_revoked: count(
                        p,
                        "SELECT COUNT(*) FROM engine_revocations WHERE revoked_at >= $1",
                        &[since],
                    )
                    .await?,
                    interventions,
                })
            }

            async fn last_oversight(&self) -> Result<Option<i64>, EngineError> {
                Ok(sqlx::query_scalar(
                    "SELECT MAX(idx) FROM (\
                     SELECT MAX(idx) AS idx FROM engine_halts \
                     UNION ALL SELECT MAX(idx) FROM engine_halt_ends \
                     UNION ALL SELECT MAX(idx) FROM engine_overrides \
                     UNION ALL SELECT MAX(idx) FROM engine_override_revocations \
                     UNION ALL SELECT MAX(idx) FROM engine_escalation_approvals \
                     UNION ALL SELECT MAX(idx) FROM engine_interventions) m",
                )
                .fetch_one(&self.0)
                .await?)
            }

            async fn evidence(&self) -> Result<Vec<EvidenceFactRow>, EngineError> {
                let rows = sqlx::query(
                    "SELECT evidence_id, artifact_type, registered_at, idx \
                     FROM engine_evidence ORDER BY idx DESC",
                )
                .fetch_all(&self.0)
                .await?;
                let links = sqlx::query(
                    "SELECT evidence_id, target FROM engine_evidence_links \
                     WHERE link_kind = 'control' ORDER BY evidence_id, target",
                )
                .fetch_all(&self.0)
                .await?;
                let mut by_id: std::collections::HashMap<String, Vec<String>> =
                    std::collections::HashMap::new();
                for l in &links {
                    by_id
                        .entry(l.try_get("evidence_id")?)
                        .or_default()
                        .push(l.try_get("target")?);
                }
                rows.iter()
                    .map(|r| {
                        let evidence_id: String = r.try_get("evidence_id")?;
                        Ok(EvidenceFactRow {
                            control_ids: by_id.remove(&evidence_id).unwrap_or_default(),
                            evidence_id,
                            artifact_type: r.try_get("artifact_type")?,
                            registered_at: r.try_get("registered_at")?,
                            idx: r.try_get("idx")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn policy_loads_since(&self, since: i64) -> Result<i64, EngineError> {
                count(
                    &self.0,
                    "SELECT COUNT(*) FROM engine_policies WHERE loaded_at >= $1",
                    &[since],
                )
                .await
            }

            async fn override_exists(&self, override_id: &str) -> Result<bool, EngineError> {
                let row = sqlx::query("SELECT 1 AS one FROM engine_overrides WHERE override_id = $1")
                    .bind(override_id)
                    .fetch_optional(&self.0)
                    .await?;
                Ok(row.is_some())
            }

            async fn escalation_token(
                &self,
                decision_id: &str,
            ) -> Result<Option<String>, EngineError> {
                let token: Option<Option<String>> = sqlx::query_scalar(
                    "SELECT s.token_id FROM engine_escalations e JOIN engine_escalation_state s \
                     ON s.escalation_id = e.escalation_id WHERE e.decision_id = $1",
                )
                .bind(decision_id)
                .fetch_optional(&self.0)
                .await?;
                Ok(token.flatten())
            }

            async fn user_counts(&self) -> Result<Vec<(String, bool, i64)>, EngineError> {
                // The auth crate's table, read for counts only (it offers no listing).
                let rows = sqlx::query(
                    "SELECT role, mfa_enabled, COUNT(*) AS n FROM auth_users \
                     GROUP BY role, mfa_enabled",
                )
                .fetch_all(&self.0)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get("role")?,
                            r.try_get::<i64, _>("mfa_enabled")? != 0,
                            r.try_get("n")?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn key_counts(
                &self,
                now: i64,
            ) -> Result<Vec<(String, bool, bool, i64)>, EngineError> {
                let rows = sqlx::query(
                    "SELECT role, CASE WHEN actors IS NULL THEN 0 ELSE 1 END AS bound, \
                     CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END AS forever, COUNT(*) AS n \
                     FROM auth_api_keys WHERE revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $1) \
                     GROUP BY role, CASE WHEN actors IS NULL THEN 0 ELSE 1 END, \
                     CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END",
                )
                .bind(now)
                .fetch_all(&self.0)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get("role")?,
                            r.try_get::<i32, _>("bound")? != 0,
                            r.try_get::<i32, _>("forever")? != 0,
                            r.try_get("n")?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn redacted_among(&self, indexes: &[i64]) -> Result<Vec<i64>, EngineError> {
                let mut out = Vec::new();
                for chunk in indexes.chunks(500) {
                    if chunk.is_empty() {
                        continue;
                    }
                    let marks = (1..=chunk.len())
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "SELECT idx FROM ledger_payloads WHERE redacted_by IS NOT NULL \
                         AND idx IN ({marks})"
                    );
                    let mut q = sqlx::query_scalar::<$db, i64>(&sql);
                    for i in chunk {
                        q = q.bind(*i);
                    }
                    out.extend(q.fetch_all(&self.0).await?);
                }
                Ok(out)
            }

            async fn idempotency_of(
                &self,
                request_id: &str,
                decision_id: &str,
            ) -> Result<Option<(String, String)>, EngineError> {
                // The key is (principal, request_id) and the principal's id is not in the
                // ledger payload: this reads the rows of the request id (redaction only).
                let rows = sqlx::query(
                    "SELECT principal, decision FROM engine_idempotency WHERE request_id = $1",
                )
                .bind(request_id)
                .fetch_all(&self.0)
                .await?;
                let needle = format!("\"decision_id\":\"{decision_id}\"");
                for r in &rows {
                    let decision: String = r.try_get("decision")?;
                    if decision.contains(&needle) {
                        return Ok(Some((r.try_get("principal")?, decision)));
                    }
                }
                Ok(None)
            }
        }
    };
}

mod sqlite_impl {
    use super::*;
    compliance_store!(
        SqliteComplianceStore,
        sqlx::SqlitePool,
        sqlx::sqlite::SqliteRow,
        sqlx::Sqlite
    );
    pub(super) fn on(pool: &sqlx::SqlitePool) -> std::sync::Arc<dyn ComplianceStore> {
        std::sync::Arc::new(SqliteComplianceStore(pool.clone()))
    }
}

mod pg_impl {
    use super::*;
    compliance_store!(
        PgComplianceStore,
        sqlx::PgPool,
        sqlx::postgres::PgRow,
        sqlx::Postgres
    );
    pub(super) fn on(pool: &sqlx::PgPool) -> std::sync::Arc<dyn ComplianceStore> {
        std::sync::Arc::new(PgComplianceStore(pool.clone()))
    }
}

/// The compliance store on the shared database.
pub(crate) fn on(db: &Database) -> std::sync::Arc<dyn ComplianceStore> {
    match db {
        Database::Sqlite(pool) => sqlite_impl::on(pool),
        Database::Postgres(pool) => pg_impl::on(pool),
    }
}
