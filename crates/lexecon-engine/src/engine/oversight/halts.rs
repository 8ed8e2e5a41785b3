//! The stop button: a halt (global, or for the actors one glob matches) denies every
//! matching Decide with reason `halted:<halt_id>`, before policy, risk and overrides,
//! until it is resumed. Halts survive restarts and reach every replica within the
//! freshness bound of [`super::state`].

use lexecon_core::{HaltId, Timestamp};
use serde::Serialize;

/// A halt as placed (the active ones are in [`Engine::halt_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaltRecord {
    /// `hlt_` + ULID.
    pub halt_id: HaltId,
    /// The actor glob (full match); empty = every actor.
    pub actor: String,
    /// Why, in the author's words.
    pub reason: String,
    /// Who placed it (`Caller::ledger_name`).
    pub placed_by: String,
    /// When.
    pub placed_at: Timestamp,
    /// The ledger index of its `halt_placed` entry.
    pub ledger_index: u64,
}

use lexecon_core::glob::{Alphabet, Glob};
use lexecon_ledger::SideRow;
use rand::Rng as _;
use serde_json::json;

use super::store::{self, Claimable, HaltRow, tables};
use super::{CLAIM_LEASE_MICROS, claim_owner, index_of, int, required_text, text, ts};
use crate::engine::{Caller, Engine, EngineError, ops};

impl HaltRecord {
    fn of(row: HaltRow) -> Result<HaltRecord, EngineError> {
        Ok(HaltRecord {
            halt_id: row.halt_id.parse().map_err(|_| {
                EngineError::Corrupt(format!("halt id {:?} is unreadable", row.halt_id))
            })?,
            actor: row.actor_glob,
            reason: row.reason,
            placed_by: row.placed_by,
            placed_at: ts(row.placed_at),
            ledger_index: index_of(row.idx),
        })
    }
}

impl Engine {
    /// Places a halt: every Decide for an actor `actor` matches (empty: every actor) is
    /// DENIED with reason `halted:<halt_id>` until [`Engine::resume`]. Recorded as a
    /// `halt_placed` entry naming the caller.
    pub async fn halt(
        &self,
        caller: &Caller,
        actor: &str,
        reason: &str,
    ) -> Result<HaltRecord, EngineError> {
        self.authorize(caller, ops::HALT)?;
        if !actor.is_empty() {
            Glob::for_field(actor, Alphabet::Name("actor"))
                .map_err(|e| EngineError::InvalidArgument(format!("actor: {e}")))?;
        }
        required_text("reason", reason)?;
        let now = self.clock.now();
        let halt_id = HaltId::new(now, rand::thread_rng().r#gen());
        let by = caller.ledger_name();
        let payload = json!({
            "event": "halt_placed",
            "by": by,
            "halt_id": halt_id,
            "actor": actor,
            "reason": reason,
            "at": now,
        });
        let row = SideRow {
            table: &tables::HALTS,
            values: vec![
                text(&halt_id.to_string()),
                text(actor),
                text(reason),
                text(&by),
                int(now.unix_micros()),
            ],
        };
        let index = self.append_oversight(&payload, vec![row]).await?;
        self.sync_oversight_after_change().await;
        Ok(HaltRecord {
            halt_id,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            placed_by: by,
            placed_at: now,
            ledger_index: index,
        })
    }

    /// Ends a halt; returns the ledger index of its `halt_resumed` entry.
    pub async fn resume(
        &self,
        caller: &Caller,
        halt_id: &str,
        reason: &str,
    ) -> Result<u64, EngineError> {
        self.authorize(caller, ops::RESUME)?;
        let parsed: HaltId = halt_id.parse().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "halt_id {halt_id:?} is not a halt id (hlt_ followed by 26 characters)"
            ))
        })?;
        let halt_id = parsed.to_string();
        required_text("reason", reason)?;
        let store = store::on(&self.db);
        let ended =
            || EngineError::FailedPrecondition(format!("halt {halt_id} was already resumed"));
        match store.halt(&halt_id).await? {
            None => return Err(EngineError::NotFound(format!("no halt {halt_id}"))),
            Some(row) if row.ended => return Err(ended()),
            Some(_) => {}
        }
        let now = self.clock.now();
        let owner = claim_owner();
        let micros = now.unix_micros();
        if !store
            .claim(
                Claimable::Halt,
                &halt_id,
                micros,
                micros - CLAIM_LEASE_MICROS,
                &owner,
            )
            .await?
        {
            return Err(EngineError::InProgress(format!(
                "halt {halt_id} is being resumed by another call"
            )));
        }
        let result = async {
            if store.halt(&halt_id).await?.is_some_and(|r| r.ended) {
                return Err(ended());
            }
            let by = caller.ledger_name();
            let payload = json!({
                "event": "halt_resumed",
                "by": by,
                "halt_id": halt_id,
                "reason": reason,
                "at": now,
            });
            let row = SideRow {
                table: &tables::HALT_ENDS,
                values: vec![text(&halt_id), text(&by), int(micros), text(reason)],
            };
            self.append_oversight(&payload, vec![row]).await
        }
        .await;
        if result.is_err()
            && let Err(e) = store.unclaim(Claimable::Halt, &halt_id, &owner).await
        {
            tracing::warn!(error = %e, "could not clear a resume claim; it expires");
        }
        let index = result?;
        self.sync_oversight_after_change().await;
        Ok(index)
    }

    /// The halts in force, oldest first, read from the database.
    pub async fn halt_status(&self, caller: &Caller) -> Result<Vec<HaltRecord>, EngineError> {
        self.authorize(caller, ops::GET_HALT_STATUS)?;
        store::on(&self.db)
            .active_halts()
            .await?
            .into_iter()
            .map(HaltRecord::of)
            .collect()
    }
}
