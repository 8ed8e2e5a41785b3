//! The oversight sweeper: expires overdue escalations, gives the warnings before their
//! deadlines, and lapses unused grants. Each transition runs under a claim, so with
//! several replicas exactly one of them records each.

use serde::Serialize;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Escalations expired.
    pub expired: usize,
    /// Warnings given.
    pub warned: usize,
    /// Grants lapsed.
    pub lapsed: usize,
}

use serde_json::json;

use super::escalations::SWEEPER;
use super::grants::{EscClaim, effective, last, state_row};
use super::store::{self, Due};
use super::ts;
use crate::decision::EscalationState;
use crate::engine::{Engine, EngineError};

/// The most escalations one sweep handles; the next sweep takes the rest.
const SWEEP_BATCH: i64 = 256;

impl Engine {
    /// Expires overdue escalations (refused, recorded as expired, not denied), gives the
    /// warning of each pending one at `warn_at`, and lapses grants not used within
    /// `oversight.approval_ttl_secs`. Each is recorded once, under a claim, by whichever
    /// replica wins it. Public so tests with a manual clock can drive it; a serving
    /// engine runs it every second.
    pub async fn sweep_oversight(&self) -> Result<SweepReport, EngineError> {
        let now = self.clock.now();
        let due = store::on(&self.db)
            .due(now.unix_micros(), SWEEP_BATCH)
            .await?;
        let mut report = SweepReport::default();
        for (id, what) in due {
            let Some(claim) = self.claim_escalation(&id).await? else {
                continue;
            };
            let result = self.sweep_one(&claim, what).await;
            match result {
                Ok(Some(done)) => match done {
                    Due::Expire => report.expired += 1,
                    Due::Warn => report.warned += 1,
                    Due::Lapse => report.lapsed += 1,
                },
                Ok(None) => self.release_claim(&id, &claim.owner).await,
                Err(e) => {
                    self.release_claim(&id, &claim.owner).await;
                    return Err(e);
                }
            }
        }
        Ok(report)
    }

    /// Records what is due for one claimed escalation, checked again under the claim.
    async fn sweep_one(&self, claim: &EscClaim, _hint: Due) -> Result<Option<Due>, EngineError> {
        let row = &claim.row;
        let now = self.clock.now();
        let micros = now.unix_micros();
        let mut s = effective(&row.state);
        let pending = s.state == EscalationState::Pending.as_str();
        let approved = s.state == EscalationState::Approved.as_str();
        let (what, event, payload) = if pending && micros >= row.due_at {
            s.state = EscalationState::Expired.as_str().to_owned();
            s.resolved_by = Some(SWEEPER.to_owned());
            s.resolution_reason = Some("nobody resolved it before its deadline".to_owned());
            s.resolved_at = Some(micros);
            (
                Due::Expire,
                last::EXPIRED,
                json!({
                    "event": "escalation_expired",
                    "by": SWEEPER,
                    "escalation_id": row.escalation_id,
                    "decision_id": row.decision_id,
                    "due_at": ts(row.due_at),
                    "approvals": s.approvals,
                    "at": now,
                }),
            )
        } else if pending && micros >= row.warn_at && s.warned_idx.is_none() {
            (
                Due::Warn,
                last::WARNED,
                json!({
                    "event": "escalation_warned",
                    "by": SWEEPER,
                    "escalation_id": row.escalation_id,
                    "decision_id": row.decision_id,
                    "priority": row.priority,
                    "due_at": ts(row.due_at),
                    "at": now,
                }),
            )
        } else if approved
            && s.grant_used_at.is_none()
            && s.last_event != last::GRANT_LAPSED
            && s.grant_expires_at.is_some_and(|t| micros >= t)
        {
            (
                Due::Lapse,
                last::GRANT_LAPSED,
                json!({
                    "event": "escalation_grant_lapsed",
                    "by": SWEEPER,
                    "escalation_id": row.escalation_id,
                    "decision_id": row.decision_id,
                    "grant_expires_at": s.grant_expires_at.map(ts),
                    "at": now,
                }),
            )
        } else {
            return Ok(None);
        };
        self.append_oversight(&payload, vec![state_row(&row.escalation_id, &s, event)])
            .await?;
        Ok(Some(what))
    }
}
