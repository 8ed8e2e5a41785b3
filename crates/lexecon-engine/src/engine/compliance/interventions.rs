//! Interventions (contract §8, EU AI Act Art. 14): a person's act on one decision,
//! recorded as an `intervention_recorded` compliance entry naming the authenticated
//! caller. A reversal also revokes the decision's capability token (the token
//! revocation operation), a stop also places a halt on the decision's actor (the Halt
//! operation), an override links the override that overrode the decision.

use lexecon_core::{DecisionId, InterventionId, OverrideId};
use lexecon_ledger::{SideRow, SideValue};
use rand::Rng as _;
use serde_json::json;

use super::store::{self, tables};
use super::{InterventionInput, InterventionKind, InterventionRecord, ops, required_text, to_u64};
use crate::engine::{Caller, Engine, EngineError};

fn opt_text(s: Option<&str>) -> SideValue {
    s.map_or(SideValue::Null, |s| SideValue::Text(s.to_owned()))
}

impl Engine {
    /// Records a person's intervention on one decision; see [`InterventionKind`] for
    /// what each kind also does.
    pub async fn record_intervention(
        &self,
        caller: &Caller,
        input: InterventionInput,
    ) -> Result<InterventionRecord, EngineError> {
        self.authorize(caller, ops::RECORD_INTERVENTION)?;
        let decision: DecisionId = input.decision_id.parse().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "decision_id {:?} is not a decision id (dec_ followed by 26 characters)",
                input.decision_id
            ))
        })?;
        let decision_id = decision.to_string();
        required_text("reason", &input.reason)?;
        let override_id = match (input.kind, input.override_id.as_deref()) {
            (InterventionKind::Override, None | Some("")) => {
                return Err(EngineError::InvalidArgument(
                    "override_id is required for an override intervention: name the override \
                     (ovr_...) created with CreateOverride"
                        .into(),
                ));
            }
            (InterventionKind::Override, Some(id)) => {
                let parsed: OverrideId = id.parse().map_err(|_| {
                    EngineError::InvalidArgument(format!(
                        "override_id {id:?} is not an override id (ovr_ followed by 26 characters)"
                    ))
                })?;
                Some(parsed.to_string())
            }
            (_, None | Some("")) => None,
            (kind, Some(_)) => {
                return Err(EngineError::InvalidArgument(format!(
                    "override_id is only for kind override, not {}",
                    kind.as_str()
                )));
            }
        };
        let store = store::on(&self.db);
        let from = decision.timestamp().unix_micros();
        let row = store
            .decision(&decision_id, from, from + 999)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no decision {decision_id}")))?;
        if let Some(id) = &override_id
            && !store.override_exists(id).await?
        {
            return Err(EngineError::NotFound(format!("no override {id}")));
        }
        let now = self.clock.now();
        let intervention_id = InterventionId::new(now, rand::thread_rng().r#gen()).to_string();
        let mut halt_id = None;
        let mut token_id = None;
        match input.kind {
            InterventionKind::Disregard | InterventionKind::Override => {}
            InterventionKind::Reverse => {
                let token = self
                    .decision_token(&decision_id, to_u64(row.idx))
                    .await?
                    .ok_or_else(|| {
                        EngineError::FailedPrecondition(format!(
                            "decision {decision_id} has no capability token to revoke (only an \
                             approved decision, or an approved escalation's grant, has one); \
                             record it as disregard instead"
                        ))
                    })?;
                self.revoke_token(
                    caller,
                    &token,
                    &format!("reversed by intervention {intervention_id}"),
                )
                .await?;
                token_id = Some(token);
            }
            InterventionKind::Stop => {
                let actor = row.actor.clone().filter(|a| !a.is_empty()).ok_or_else(|| {
                    EngineError::FailedPrecondition(format!(
                        "decision {decision_id} has no actor on record (its entry was \
                         redacted): place a halt with `lexecon halt --actor GLOB` instead"
                    ))
                })?;
                let halt = self.halt(caller, &actor, &input.reason).await?;
                halt_id = Some(halt.halt_id.to_string());
            }
        }
        let by = caller.ledger_name();
        let payload = json!({
            "event": "intervention_recorded",
            "by": by,
            "intervention_id": intervention_id,
            "decision_id": decision_id,
            "decision_index": to_u64(row.idx),
            "kind": input.kind.as_str(),
            "reason": input.reason,
            "halt_id": halt_id,
            "override_id": override_id,
            "token_id": token_id,
            "at": now,
        });
        let side = SideRow {
            table: &tables::INTERVENTIONS,
            values: vec![
                SideValue::Text(intervention_id.clone()),
                SideValue::Text(decision_id),
                SideValue::Text(input.kind.as_str().to_owned()),
                SideValue::Text(input.reason),
                SideValue::Text(by),
                SideValue::Int(now.unix_micros()),
                opt_text(halt_id.as_deref()),
                opt_text(override_id.as_deref()),
                opt_text(token_id.as_deref()),
            ],
        };
        let ledger_index = self.append_compliance(&payload, vec![side]).await?;
        Ok(InterventionRecord {
            intervention_id,
            ledger_index,
            halt_id,
            revoked_token_id: token_id,
        })
    }

    /// The id of the capability token a decision carries: its own (in its ledger
    /// payload), else the token minted from its escalation's grant.
    async fn decision_token(
        &self,
        decision_id: &str,
        index: u64,
    ) -> Result<Option<String>, EngineError> {
        let own = self
            .ledger
            .entry(index)
            .await?
            .and_then(|e| e.payload_json())
            .and_then(|p| {
                p.get("token")
                    .and_then(|t| t.get("token_id"))
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
            });
        if own.is_some() {
            return Ok(own);
        }
        store::on(&self.db).escalation_token(decision_id).await
    }
}
