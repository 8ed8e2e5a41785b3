//! The oversight tables of migration 4005 behind one trait, implemented for both pools
//! by one macro (the pattern of `engine/store.rs`). Rows are written only as ledger side
//! rows ([`tables`]); this store reads them and takes and clears claims.

use sqlx::Row as _;

use super::super::EngineError;
use crate::db::Database;

/// The side tables and their columns (after `idx`, which the ledger prepends).
pub(crate) mod tables {
    use lexecon_ledger::{SideTable, SideType};

    use SideType::{Bytes, Int, Text};

    pub(crate) static HALTS: SideTable = SideTable {
        name: "engine_halts",
        columns: &[
            ("halt_id", Text),
            ("actor_glob", Text),
            ("reason", Text),
            ("placed_by", Text),
            ("placed_at", Int),
        ],
        on_conflict: "",
    };

    pub(crate) static HALT_ENDS: SideTable = SideTable {
        name: "engine_halt_ends",
        columns: &[
            ("halt_id", Text),
            ("ended_by", Text),
            ("ended_at", Int),
            ("reason", Text),
        ],
        on_conflict: "ON CONFLICT DO NOTHING",
    };

    pub(crate) static OVERRIDES: SideTable = SideTable {
        name: "engine_overrides",
        columns: &[
            ("override_id", Text),
            ("kind", Text),
            ("effect", Text),
            ("actor_glob", Text),
            ("action_glob", Text),
            ("tool_glob", Text),
            ("justification", Text),
            ("created_by", Text),
            ("creator_role", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
        on_conflict: "",
    };

    pub(crate) static OVERRIDE_REVOCATIONS: SideTable = SideTable {
        name: "engine_override_revocations",
        columns: &[
            ("override_id", Text),
            ("revoked_by", Text),
            ("revoked_at", Int),
            ("reason", Text),
        ],
        on_conflict: "ON CONFLICT DO NOTHING",
    };

    pub(crate) static ESCALATIONS: SideTable = SideTable {
        name: "engine_escalations",
        columns: &[
            ("escalation_id", Text),
            ("decision_id", Text),
            ("principal_key", Text),
            ("principal_name", Text),
            ("actor", Text),
            ("action", Text),
            ("tool", Text),
            ("request_json", Text),
            ("grant_fp", Bytes),
            ("policy_hash", Bytes),
            ("priority", Text),
            ("created_at", Int),
            ("due_at", Int),
            ("warn_at", Int),
            ("approvals_required", Int),
            ("override_id", Text),
        ],
        on_conflict: "",
    };

    pub(crate) static APPROVALS: SideTable = SideTable {
        name: "engine_escalation_approvals",
        columns: &[
            ("escalation_id", Text),
            ("approver_key", Text),
            ("approve", Int),
            ("approver", Text),
            ("principal_kind", Text),
            ("key_creator", Text),
            ("mfa_verified", Int),
            ("at", Int),
            ("reason", Text),
        ],
        on_conflict: "ON CONFLICT DO NOTHING",
    };

    pub(crate) static STATE: SideTable = SideTable {
        name: "engine_escalation_state",
        columns: &[
            ("escalation_id", Text),
            ("state", Text),
            ("last_event", Text),
            ("approvals", Int),
            ("warned_idx", Int),
            ("resolved_by", Text),
            ("resolution_reason", Text),
            ("resolved_at", Int),
            ("resolved_idx", Int),
            ("grant_expires_at", Int),
            ("grant_used_at", Int),
            ("grant_decision_id", Text),
            ("grant_idx", Int),
            ("token_claims", Text),
            ("token_id", Text),
            ("token_expires_at", Int),
            ("reservation_id", Text),
            ("claim_at", Int),
            ("claim_by", Text),
        ],
        on_conflict: "ON CONFLICT (escalation_id) DO UPDATE SET idx = excluded.idx, \
             state = excluded.state, last_event = excluded.last_event, \
             approvals = excluded.approvals, warned_idx = excluded.warned_idx, \
             resolved_by = excluded.resolved_by, resolution_reason = excluded.resolution_reason, \
             resolved_at = excluded.resolved_at, resolved_idx = excluded.resolved_idx, \
             grant_expires_at = excluded.grant_expires_at, grant_used_at = excluded.grant_used_at, \
             grant_decision_id = excluded.grant_decision_id, grant_idx = excluded.grant_idx, \
             token_claims = excluded.token_claims, token_id = excluded.token_id, \
             token_expires_at = excluded.token_expires_at, \
             reservation_id = excluded.reservation_id, claim_at = excluded.claim_at, \
             claim_by = excluded.claim_by",
    };
}

/// A halt row, with its end if it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HaltRow {
    pub idx: i64,
    pub halt_id: String,
    pub actor_glob: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: i64,
    pub ended: bool,
}

/// An override row with its revocation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverrideRow {
    pub idx: i64,
    pub override_id: String,
    pub kind: String,
    pub effect: String,
    pub actor_glob: String,
    pub action_glob: String,
    pub tool_glob: String,
    pub justification: String,
    pub created_by: String,
    pub creator_role: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// `(revoked_by, revoked_at, reason, idx)`.
    pub revoked: Option<(String, i64, String, i64)>,
}

/// An escalation with its current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EscRow {
    pub idx: i64,
    pub escalation_id: String,
    pub decision_id: String,
    pub principal_key: String,
    pub principal_name: String,
    pub actor: String,
    pub action: String,
    pub tool: Option<String>,
    pub request_json: String,
    pub grant_fp: Vec<u8>,
    pub policy_hash: Vec<u8>,
    pub priority: String,
    pub created_at: i64,
    pub due_at: i64,
    pub warn_at: i64,
    pub approvals_required: i64,
    pub override_id: Option<String>,
    pub state: StateRow,
}

/// The state columns of an escalation (`engine_escalation_state`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StateRow {
    /// The entry of the latest transition.
    pub idx: i64,
    pub state: String,
    pub last_event: String,
    pub approvals: i64,
    pub warned_idx: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolution_reason: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolved_idx: Option<i64>,
    pub grant_expires_at: Option<i64>,
    pub grant_used_at: Option<i64>,
    pub grant_decision_id: Option<String>,
    pub grant_idx: Option<i64>,
    pub token_claims: Option<String>,
    pub token_id: Option<String>,
    pub token_expires_at: Option<i64>,
    pub reservation_id: Option<String>,
}

/// One approval row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApprovalRow {
    pub idx: i64,
    pub approver_key: String,
    pub approve: bool,
    pub approver: String,
    pub principal_kind: String,
    pub key_creator: Option<String>,
    pub mfa_verified: bool,
    pub at: i64,
    pub reason: String,
}

/// What the sweeper has to do with one escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Expire,
    Warn,
    Lapse,
}

/// Where oversight state lives.
#[async_trait::async_trait]
pub(crate) trait OversightStore: Send + Sync + std::fmt::Debug {
    /// Halts not resumed.
    async fn active_halts(&self) -> Result<Vec<HaltRow>, EngineError>;
    /// One halt.
    async fn halt(&self, halt_id: &str) -> Result<Option<HaltRow>, EngineError>;
    /// Overrides not revoked that end after `now`, or every override with `all`.
    async fn overrides(&self, now: i64, all: bool) -> Result<Vec<OverrideRow>, EngineError>;
    /// One override.
    async fn override_row(&self, override_id: &str) -> Result<Option<OverrideRow>, EngineError>;
    /// One escalation.
    async fn escalation(&self, escalation_id: &str) -> Result<Option<EscRow>, EngineError>;
    /// Escalations newest first, below `before_idx`, of one state.
    async fn escalations(
        &self,
        state: Option<&str>,
        before_idx: i64,
        limit: i64,
    ) -> Result<Vec<EscRow>, EngineError>;
    /// The approvals of an escalation, in order.
    async fn approvals(&self, escalation_id: &str) -> Result<Vec<ApprovalRow>, EngineError>;
    /// The approved escalation with an unused grant of `principal_key` for `grant_fp`
    /// valid at `now`, oldest first.
    async fn grant_for(
        &self,
        principal_key: &str,
        grant_fp: &[u8],
        now: i64,
    ) -> Result<Option<String>, EngineError>;
    /// Pending escalations of `principal_key`.
    async fn pending_of(&self, principal_key: &str) -> Result<Vec<String>, EngineError>;
    /// What the sweeper has to do at `now`, at most `limit` items.
    async fn due(&self, now: i64, limit: i64) -> Result<Vec<(String, Due)>, EngineError>;
    /// Takes the claim on a row of `table` (`engine_halts`, `engine_overrides` or
    /// `engine_escalation_state`) keyed `id`, unless someone holds a claim taken after
    /// `lease_after`; true when taken.
    async fn claim(
        &self,
        table: Claimable,
        id: &str,
        now: i64,
        lease_after: i64,
        by: &str,
    ) -> Result<bool, EngineError>;
    /// Clears the claim `by` holds, if it still does.
    async fn unclaim(&self, table: Claimable, id: &str, by: &str) -> Result<(), EngineError>;
}

/// A table whose rows take claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimable {
    Halt,
    Override,
    Escalation,
}

impl Claimable {
    fn table_key(self) -> (&'static str, &'static str) {
        match self {
            Claimable::Halt => ("engine_halts", "halt_id"),
            Claimable::Override => ("engine_overrides", "override_id"),
            Claimable::Escalation => ("engine_escalation_state", "escalation_id"),
        }
    }
}

const ESC_COLUMNS: &str = "e.idx, e.escalation_id, e.decision_id, e.principal_key, \
     e.principal_name, e.actor, e.action, e.tool, e.request_json, e.grant_fp, e.policy_hash, \
     e.priority, e.created_at, e.due_at, e.warn_at, e.approvals_required, e.override_id, \
     s.idx AS s_idx, s.state, s.last_event, s.approvals, s.warned_idx, s.resolved_by, \
     s.resolution_reason, s.resolved_at, s.resolved_idx, s.grant_expires_at, s.grant_used_at, \
     s.grant_decision_id, s.grant_idx, s.token_claims, s.token_id, s.token_expires_at, \
     s.reservation_id";

const ESC_FROM: &str = "engine_escalations e JOIN engine_escalation_state s \
     ON s.escalation_id = e.escalation_id";

const OVERRIDE_SELECT: &str = "SELECT o.idx, o.override_id, o.kind, o.effect, o.actor_glob, \
     o.action_glob, o.tool_glob, o.justification, o.created_by, o.creator_role, o.created_at, \
     o.expires_at, r.revoked_by, r.revoked_at, r.reason AS revoke_reason, r.idx AS revoke_idx \
     FROM engine_overrides o LEFT JOIN engine_override_revocations r \
     ON r.override_id = o.override_id";

const HALT_SELECT: &str = "SELECT h.idx, h.halt_id, h.actor_glob, h.reason, h.placed_by, \
     h.placed_at, x.halt_id AS ended FROM engine_halts h LEFT JOIN engine_halt_ends x \
     ON x.halt_id = h.halt_id";

macro_rules! oversight_store {
    ($name:ident, $pool:ty, $row:ty) => {
        /// The oversight store on one pool type.
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub(crate) $pool);

        impl $name {
            fn halt_row(row: &$row) -> Result<HaltRow, sqlx::Error> {
                Ok(HaltRow {
                    idx: row.try_get("idx")?,
                    halt_id: row.try_get("halt_id")?,
                    actor_glob: row.try_get("actor_glob")?,
                    reason: row.try_get("reason")?,
                    placed_by: row.try_get("placed_by")?,
                    placed_at: row.try_get("placed_at")?,
                    ended: row.try_get::<Option<String>, _>("ended")?.is_some(),
                })
            }

            fn override_row(row: &$row) -> Result<OverrideRow, sqlx::Error> {
                let revoked_by: Option<String> = row.try_get("revoked_by")?;
                Ok(OverrideRow {
                    idx: row.try_get("idx")?,
                    override_id: row.try_get("override_id")?,
                    kind: row.try_get("kind")?,
                    effect: row.try_get("effect")?,
                    actor_glob: row.try_get("actor_glob")?,
                    action_glob: row.try_get("action_glob")?,
                    tool_glob: row.try_get("tool_glob")?,
                    justification: row.try_get("justification")?,
                    created_by: row.try_get("created_by")?,
                    creator_role: row.try_get("creator_role")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked: match revoked_by {
                        Some(by) => Some((
                            by,
                            row.try_get("revoked_at")?,
                            row.try_get("revoke_reason")?,
                            row.try_get("revoke_idx")?,
                        )),
                        None => None,
                    },
                })
            }

            fn esc_row(row: &$row) -> Result<EscRow, sqlx::Error> {
                Ok(EscRow {
                    idx: row.try_get("idx")?,
                    escalation_id: row.try_get("escalation_id")?,
                    decision_id: row.try_get("decision_id")?,
                    principal_key: row.try_get("principal_key")?,
                    principal_name: row.try_get("principal_name")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    tool: row.try_get("tool")?,
                    request_json: row.try_get("request_json")?,
                    grant_fp: row.try_get("grant_fp")?,
                    policy_hash: row.try_get("policy_hash")?,
                    priority: row.try_get("priority")?,
                    created_at: row.try_get("created_at")?,
                    due_at: row.try_get("due_at")?,
                    warn_at: row.try_get("warn_at")?,
                    approvals_required: row.try_get("approvals_required")?,
                    override_id: row.try_get("override_id")?,
                    state: StateRow {
                        idx: row.try_get("s_idx")?,
                        state: row.try_get("state")?,
                        last_event: row.try_get("last_event")?,
                        approvals: row.try_get("approvals")?,
                        warned_idx: row.try_get("warned_idx")?,
                        resolved_by: row.try_get("resolved_by")?,
                        resolution_reason: row.try_get("resolution_reason")?,
                        resolved_at: row.try_get("resolved_at")?,
                        resolved_idx: row.try_get("resolved_idx")?,
                        grant_expires_at: row.try_get("grant_expires_at")?,
                        grant_used_at: row.try_get("grant_used_at")?,
                        grant_decision_id: row.try_get("grant_decision_id")?,
                        grant_idx: row.try_get("grant_idx")?,
                        token_claims: row.try_get("token_claims")?,
                        token_id: row.try_get("token_id")?,
                        token_expires_at: row.try_get("token_expires_at")?,
                        reservation_id: row.try_get("reservation_id")?,
                    },
                })
            }
        }

        #[async_trait::async_trait]
        impl OversightStore for $name {
            async fn active_halts(&self) -> Result<Vec<HaltRow>, EngineError> {
                let rows = sqlx::query(&format!(
                    "{HALT_SELECT} WHERE x.halt_id IS NULL ORDER BY h.idx"
                ))
                .fetch_all(&self.0)
                .await?;
                Ok(rows.iter().map(Self::halt_row).collect::<Result<_, _>>()?)
            }

            async fn halt(&self, halt_id: &str) -> Result<Option<HaltRow>, EngineError> {
                let row = sqlx::query(&format!("{HALT_SELECT} WHERE h.halt_id = $1"))
                    .bind(halt_id)
                    .fetch_optional(&self.0)
                    .await?;
                Ok(row.as_ref().map(Self::halt_row).transpose()?)
            }

            async fn overrides(&self, now: i64, all: bool) -> Result<Vec<OverrideRow>, EngineError> {
                let rows = if all {
                    sqlx::query(&format!("{OVERRIDE_SELECT} ORDER BY o.idx DESC"))
                        .fetch_all(&self.0)
                        .await?
                } else {
                    sqlx::query(&format!(
                        "{OVERRIDE_SELECT} WHERE r.override_id IS NULL AND o.expires_at > $1 \
                         ORDER BY o.idx DESC"
                    ))
                    .bind(now)
                    .fetch_all(&self.0)
                    .await?
                };
                Ok(rows.iter().map(Self::override_row).collect::<Result<_, _>>()?)
            }

            async fn override_row(&self, override_id: &str) -> Result<Option<OverrideRow>, EngineError> {
                let row = sqlx::query(&format!("{OVERRIDE_SELECT} WHERE o.override_id = $1"))
                    .bind(override_id)
                    .fetch_optional(&self.0)
                    .await?;
                Ok(row.as_ref().map(Self::override_row).transpose()?)
            }

            async fn escalation(&self, escalation_id: &str) -> Result<Option<EscRow>, EngineError> {
                let row = sqlx::query(&format!(
                    "SELECT {ESC_COLUMNS} FROM {ESC_FROM} WHERE e.escalation_id = $1"
                ))
                .bind(escalation_id)
                .fetch_optional(&self.0)
                .await?;
                Ok(row.as_ref().map(Self::esc_row).transpose()?)
            }

            async fn escalations(
                &self,
                state: Option<&str>,
                before_idx: i64,
                limit: i64,
            ) -> Result<Vec<EscRow>, EngineError> {
                let rows = match state {
                    Some(state) => {
                        sqlx::query(&format!(
                            "SELECT {ESC_COLUMNS} FROM {ESC_FROM} WHERE e.idx < $1 AND s.state = $2 \
                             ORDER BY e.idx DESC LIMIT $3"
                        ))
                        .bind(before_idx)
                        .bind(state)
                        .bind(limit)
                        .fetch_all(&self.0)
                        .await?
                    }
                    None => {
                        sqlx::query(&format!(
                            "SELECT {ESC_COLUMNS} FROM {ESC_FROM} WHERE e.idx < $1 \
                             ORDER BY e.idx DESC LIMIT $2"
                        ))
                        .bind(before_idx)
                        .bind(limit)
                        .fetch_all(&self.0)
                        .await?
                    }
                };
                Ok(rows.iter().map(Self::esc_row).collect::<Result<_, _>>()?)
            }

            async fn approvals(&self, escalation_id: &str) -> Result<Vec<ApprovalRow>, EngineError> {
                let rows = sqlx::query(
                    "SELECT idx, approver_key, approve, approver, principal_kind, key_creator, \
                     mfa_verified, at, reason FROM engine_escalation_approvals \
                     WHERE escalation_id = $1 ORDER BY idx",
                )
                .bind(escalation_id)
                .fetch_all(&self.0)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ApprovalRow {
                            idx: row.try_get("idx")?,
                            approver_key: row.try_get("approver_key")?,
                            approve: row.try_get::<i64, _>("approve")? != 0,
                            approver: row.try_get("approver")?,
                            principal_kind: row.try_get("principal_kind")?,
                            key_creator: row.try_get("key_creator")?,
                            mfa_verified: row.try_get::<i64, _>("mfa_verified")? != 0,
                            at: row.try_get("at")?,
                            reason: row.try_get("reason")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(EngineError::from)
            }

            async fn grant_for(
                &self,
                principal_key: &str,
                grant_fp: &[u8],
                now: i64,
            ) -> Result<Option<String>, EngineError> {
                let row = sqlx::query(&format!(
                    "SELECT e.escalation_id FROM {ESC_FROM} WHERE e.principal_key = $1 \
                     AND e.grant_fp = $2 AND s.state = 'approved' AND s.grant_used_at IS NULL \
                     AND s.grant_expires_at > $3 ORDER BY e.idx LIMIT 1"
                ))
                .bind(principal_key)
                .bind(grant_fp)
                .bind(now)
                .fetch_optional(&self.0)
                .await?;
                Ok(row.map(|r| r.try_get("escalation_id")).transpose()?)
            }

            async fn pending_of(&self, principal_key: &str) -> Result<Vec<String>, EngineError> {
                let rows = sqlx::query(&format!(
                    "SELECT e.escalation_id FROM {ESC_FROM} WHERE e.principal_key = $1 \
                     AND s.state = 'pending' ORDER BY e.idx"
                ))
                .bind(principal_key)
                .fetch_all(&self.0)
                .await?;
                rows.iter()
                    .map(|r| r.try_get("escalation_id"))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(EngineError::from)
            }

            async fn due(&self, now: i64, limit: i64) -> Result<Vec<(String, Due)>, EngineError> {
                let rows = sqlx::query(&format!(
                    "SELECT e.escalation_id, s.state, e.due_at FROM {ESC_FROM} \
                     WHERE (s.state = 'pending' AND (e.due_at <= $1 \
                        OR (e.warn_at <= $1 AND s.warned_idx IS NULL AND s.last_event <> 'warned'))) \
                     OR (s.state = 'approved' AND s.grant_used_at IS NULL \
                        AND s.grant_expires_at <= $1 AND s.last_event <> 'grant_lapsed') \
                     ORDER BY e.idx LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.0)
                .await?;
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get("escalation_id")?;
                        let state: String = r.try_get("state")?;
                        let due_at: i64 = r.try_get("due_at")?;
                        let due = if state == "approved" {
                            Due::Lapse
                        } else if due_at <= now {
                            Due::Expire
                        } else {
                            Due::Warn
                        };
                        Ok((id, due))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(EngineError::from)
            }

            async fn claim(
                &self,
                table: Claimable,
                id: &str,
                now: i64,
                lease_after: i64,
                by: &str,
            ) -> Result<bool, EngineError> {
                let (t, k) = table.table_key();
                let done = sqlx::query(&format!(
                    "UPDATE {t} SET claim_at = $1, claim_by = $2 WHERE {k} = $3 \
                     AND (claim_at IS NULL OR claim_at <= $4)"
                ))
                .bind(now)
                .bind(by)
                .bind(id)
                .bind(lease_after)
                .execute(&self.0)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn unclaim(&self, table: Claimable, id: &str, by: &str) -> Result<(), EngineError> {
                let (t, k) = table.table_key();
                sqlx::query(&format!(
                    "UPDATE {t} SET claim_at = NULL, claim_by = NULL WHERE {k} = $1 AND claim_by = $2"
                ))
                .bind(id)
                .bind(by)
                .execute(&self.0)
                .await?;
                Ok(())
            }
        }
    };
}

oversight_store!(
    SqliteOversightStore,
    sqlx::SqlitePool,
    sqlx::sqlite::SqliteRow
);
oversight_store!(PgOversightStore, sqlx::PgPool, sqlx::postgres::PgRow);

/// The oversight store on the shared database.
pub(crate) fn on(db: &Database) -> std::sync::Arc<dyn OversightStore> {
    match db {
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteOversightStore(pool.clone())),
        Database::Postgres(pool) => std::sync::Arc::new(PgOversightStore(pool.clone())),
    }
}
