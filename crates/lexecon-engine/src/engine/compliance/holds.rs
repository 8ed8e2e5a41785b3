//! Legal holds (contract §8): placed and released as `compliance` ledger entries whose
//! state rows are side rows of the entry. A held entry cannot be redacted; holds live
//! in the database, so they survive restarts and bind every replica.

use lexecon_core::glob::{Alphabet, Glob};
use lexecon_core::{DecisionId, HoldId, Timestamp};
use lexecon_ledger::{SideRow, SideValue};
use rand::Rng as _;
use serde_json::json;

use super::store::{self, HoldRow, tables};
use super::{
    HoldInput, HoldRecord, MAX_COMPLIANCE_TEXT_BYTES, MAX_HOLD_DECISION_IDS, ops, required_text,
    to_i64, to_u64,
};
use crate::engine::{Caller, Engine, EngineError};

impl HoldRecord {
    pub(super) fn of(row: HoldRow) -> HoldRecord {
        let decision_ids: Vec<String> = serde_json::from_str(&row.decision_ids).unwrap_or_default();
        HoldRecord {
            hold_id: row.hold_id,
            reason: row.reason,
            matter: row.matter,
            from_index: row.from_idx.map(to_u64),
            to_index: row.to_idx.map(to_u64),
            decision_ids,
            actor: row.actor_glob,
            placed_by: row.placed_by,
            placed_at: Timestamp::from_unix_micros(row.placed_at),
            ledger_index: to_u64(row.idx),
            active: row.released.is_none(),
            released_by: row.released.as_ref().map(|r| r.0.clone()),
            released_at: row
                .released
                .as_ref()
                .map(|r| Timestamp::from_unix_micros(r.1)),
            release_ledger_index: row.released.as_ref().map(|r| to_u64(r.2)),
        }
    }
}

/// What of a ledger entry a hold can name: its index, the decisions it belongs to and
/// the actor it is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct HeldKeys {
    pub(super) index: u64,
    pub(super) decision_ids: Vec<String>,
    pub(super) actor: Option<String>,
}

impl HeldKeys {
    /// The keys of entry `index` with JSON payload `payload`: a decision's own id and
    /// actor; for any other entry, the decisions it names (`decision_id`,
    /// `decision_ids`, `grant_decision_id`) and the actor it names.
    pub(super) fn of(index: u64, payload: Option<&serde_json::Value>) -> HeldKeys {
        let mut keys = HeldKeys {
            index,
            ..HeldKeys::default()
        };
        let Some(p) = payload else {
            return keys;
        };
        for field in ["decision_id", "grant_decision_id"] {
            if let Some(id) = p.get(field).and_then(|v| v.as_str()) {
                keys.decision_ids.push(id.to_owned());
            }
        }
        if let Some(ids) = p.get("decision_ids").and_then(|v| v.as_array()) {
            keys.decision_ids
                .extend(ids.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
        keys.actor = p
            .get("request")
            .and_then(|r| r.get("actor"))
            .or_else(|| p.get("actor"))
            .and_then(|v| v.as_str())
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        keys
    }
}

/// The columns a hold check reads, as text: hold_id, from_idx, to_idx, decision_ids,
/// actor_glob, of every active hold.
pub(super) const ACTIVE_HOLDS_GUARD: &str = "SELECT h.hold_id, CAST(h.from_idx AS TEXT), \
     CAST(h.to_idx AS TEXT), h.decision_ids, h.actor_glob FROM engine_legal_holds h \
     WHERE NOT EXISTS (SELECT 1 FROM engine_legal_hold_releases r WHERE r.hold_id = h.hold_id) \
     ORDER BY h.idx";

/// The first active hold (a row of [`ACTIVE_HOLDS_GUARD`]) that covers `keys`.
pub(super) fn covering_hold(rows: &[Vec<Option<String>>], keys: &HeldKeys) -> Option<String> {
    rows.iter().find_map(|row| {
        let col = |i: usize| row.get(i).cloned().flatten();
        let hold_id = col(0)?;
        let from = col(1).and_then(|s| s.parse::<u64>().ok());
        let to = col(2).and_then(|s| s.parse::<u64>().ok());
        let in_range = (from.is_some() || to.is_some())
            && from.unwrap_or(0) <= keys.index
            && to.is_none_or(|t| keys.index < t);
        let ids: Vec<String> = col(3)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let by_decision = keys.decision_ids.iter().any(|d| ids.contains(d));
        let glob = col(4).unwrap_or_default();
        let by_actor = !glob.is_empty()
            && keys.actor.as_deref().is_some_and(|a| {
                Glob::for_field(&glob, Alphabet::Name("actor")).is_ok_and(|g| g.matches(a))
            });
        (in_range || by_decision || by_actor).then_some(hold_id)
    })
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

impl Engine {
    /// Places a legal hold: the entries it covers cannot be redacted until it is
    /// released. Recorded as a `legal_hold_placed` compliance entry naming the caller.
    pub async fn place_legal_hold(
        &self,
        caller: &Caller,
        input: HoldInput,
    ) -> Result<HoldRecord, EngineError> {
        self.authorize(caller, ops::PLACE_HOLD)?;
        required_text("reason", &input.reason)?;
        required_text("matter", &input.matter)?;
        let has_range = input.from_index.is_some() || input.to_index.is_some();
        if !has_range && input.decision_ids.is_empty() && input.actor.is_empty() {
            return Err(invalid(
                "a legal hold needs a scope: set from_index/to_index, decision_ids or actor".into(),
            ));
        }
        if let (Some(from), Some(to)) = (input.from_index, input.to_index)
            && from >= to
        {
            return Err(invalid(format!(
                "from_index ({from}) must be below to_index ({to}); to_index is exclusive"
            )));
        }
        if input.to_index == Some(0) {
            return Err(invalid(
                "to_index must be above 0 (it is exclusive); leave it unset for no upper bound"
                    .into(),
            ));
        }
        for (field, v) in [
            ("from_index", input.from_index),
            ("to_index", input.to_index),
        ] {
            if v.is_some_and(|v| i64::try_from(v).is_err()) {
                return Err(invalid(format!("{field} is beyond any ledger index")));
            }
        }
        if input.decision_ids.len() > MAX_HOLD_DECISION_IDS {
            return Err(invalid(format!(
                "decision_ids has {} ids; at most {MAX_HOLD_DECISION_IDS} are accepted (place \
                 several holds, or hold an index range)",
                input.decision_ids.len()
            )));
        }
        let store = store::on(&self.db);
        for (i, id) in input.decision_ids.iter().enumerate() {
            let parsed: DecisionId = id.parse().map_err(|_| {
                invalid(format!(
                    "decision_ids[{i}]: {id:?} is not a decision id (dec_ followed by 26 characters)"
                ))
            })?;
            let from = parsed.timestamp().unix_micros();
            if store.decision(id, from, from + 999).await?.is_none() {
                return Err(invalid(format!("decision_ids[{i}]: no decision {id}")));
            }
        }
        if !input.actor.is_empty() {
            if input.actor.len() > MAX_COMPLIANCE_TEXT_BYTES {
                return Err(invalid("actor is too long".into()));
            }
            Glob::for_field(&input.actor, Alphabet::Name("actor"))
                .map_err(|e| invalid(format!("actor: {e}")))?;
        }
        let mut decision_ids: Vec<String> = Vec::with_capacity(input.decision_ids.len());
        for id in &input.decision_ids {
            if !decision_ids.contains(id) {
                decision_ids.push(id.clone());
            }
        }
        let now = self.clock.now();
        let hold_id = HoldId::new(now, rand::thread_rng().r#gen()).to_string();
        let by = caller.ledger_name();
        let ids_json = serde_json::to_string(&decision_ids)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode decision ids: {e}")))?;
        let payload = json!({
            "event": "legal_hold_placed",
            "by": by,
            "hold_id": hold_id,
            "reason": input.reason,
            "matter": input.matter,
            "from_index": input.from_index,
            "to_index": input.to_index,
            "decision_ids": decision_ids,
            "actor": input.actor,
            "at": now,
        });
        let opt = |v: Option<u64>| v.map_or(SideValue::Null, |v| SideValue::Int(to_i64(v)));
        let row = SideRow {
            table: &tables::HOLDS,
            values: vec![
                SideValue::Text(hold_id.clone()),
                SideValue::Text(input.reason.clone()),
                SideValue::Text(input.matter.clone()),
                opt(input.from_index),
                opt(input.to_index),
                SideValue::Text(ids_json),
                SideValue::Text(input.actor.clone()),
                SideValue::Text(by.clone()),
                SideValue::Int(now.unix_micros()),
            ],
        };
        let index = self.append_compliance(&payload, vec![row]).await?;
        Ok(HoldRecord {
            hold_id,
            reason: input.reason,
            matter: input.matter,
            from_index: input.from_index,
            to_index: input.to_index,
            decision_ids,
            actor: input.actor,
            placed_by: by,
            placed_at: now,
            ledger_index: index,
            active: true,
            released_by: None,
            released_at: None,
            release_ledger_index: None,
        })
    }

    /// Releases a legal hold: recorded as a `legal_hold_released` compliance entry
    /// naming the caller; the entries it covered may then be redacted.
    pub async fn release_legal_hold(
        &self,
        caller: &Caller,
        hold_id: &str,
        reason: &str,
    ) -> Result<HoldRecord, EngineError> {
        self.authorize(caller, ops::RELEASE_HOLD)?;
        let parsed: HoldId = hold_id.parse().map_err(|_| {
            invalid(format!(
                "hold_id {hold_id:?} is not a hold id (hld_ followed by 26 characters)"
            ))
        })?;
        let hold_id = parsed.to_string();
        required_text("reason", reason)?;
        let store = store::on(&self.db);
        match store.hold(&hold_id).await? {
            None => return Err(EngineError::NotFound(format!("no legal hold {hold_id}"))),
            Some(row) if row.released.is_some() => {
                return Err(EngineError::FailedPrecondition(format!(
                    "legal hold {hold_id} was already released"
                )));
            }
            Some(_) => {}
        }
        let now = self.clock.now();
        let by = caller.ledger_name();
        let payload = json!({
            "event": "legal_hold_released",
            "by": by,
            "hold_id": hold_id,
            "reason": reason,
            "at": now,
        });
        let row = SideRow {
            table: &tables::HOLD_RELEASES,
            values: vec![
                SideValue::Text(hold_id.clone()),
                SideValue::Text(by),
                SideValue::Int(now.unix_micros()),
                SideValue::Text(reason.to_owned()),
            ],
        };
        self.append_compliance(&payload, vec![row]).await?;
        let row = store
            .hold(&hold_id)
            .await?
            .ok_or_else(|| EngineError::Corrupt(format!("legal hold {hold_id} vanished")))?;
        Ok(HoldRecord::of(row))
    }

    /// The legal holds in force (and the released ones with `include_released`),
    /// oldest first.
    pub async fn list_legal_holds(
        &self,
        caller: &Caller,
        include_released: bool,
    ) -> Result<Vec<HoldRecord>, EngineError> {
        self.authorize(caller, ops::LIST_HOLDS)?;
        Ok(store::on(&self.db)
            .holds(include_released)
            .await?
            .into_iter()
            .map(HoldRecord::of)
            .collect())
    }
}
