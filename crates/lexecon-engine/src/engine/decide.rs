//! The decision pipeline, in the order of contract §6: validate, check the actor
//! binding, replay by `request_id`, halt, policy, risk, auto-escalation, an approved
//! escalation's grant, overrides, budget, token, ledger append. An ESCALATED decision is
//! appended in one group with the `escalation_created` entry of its escalation; one that
//! used a grant, with the `escalation_grant_used` entry.

use std::sync::Arc;

use lexecon_budget::BudgetError;
use lexecon_capability::Claims;
use lexecon_core::{ActionRequest, DecisionId, Outcome, ReservationId};
use lexecon_ledger::EntryKind;
use lexecon_policy::RiskInput;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::oversight::{
    EscClaim, EscalationInput, EscalationPriority, GrantUse, GroupEntry, Matched, NewEscalation,
};
use super::payload::{OversightFields, decision_payload, dimension_views};
use super::store::{IdemKey, IdemRow};
use super::{Caller, CallerGone, DecideInput, Engine, EngineError, input, ops};
use crate::decision::Decision;

/// How long an unfinished idempotency claim protects its request. A claim lives from
/// just before its ledger append to just after it (milliseconds); one older than this
/// belongs to a call that crashed, and if its entry is not in the ledger it answered
/// nobody, so the request may be decided again.
pub(crate) const CLAIM_LEASE_SECS: i64 = 30;

/// How long a call waits for another call's unfinished claim before answering
/// [`EngineError::InProgress`].
const IN_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A decision made, its token minted and its ledger payload built, not yet appended.
pub(crate) struct Prepared {
    /// With a zero receipt.
    pub(crate) decision: Decision,
    pub(crate) payload: Vec<u8>,
    pub(crate) reservation: Option<ReservationId>,
    /// The escalation an ESCALATED decision creates, appended in its group.
    pub(crate) escalation: Option<NewEscalation>,
    /// The claimed grant an APPROVED decision uses, with its `escalation_grant_used`
    /// entry, appended in its group.
    pub(crate) grant: Option<(EscClaim, GroupEntry)>,
}

/// What a validated Decide carries through the pipeline.
pub(crate) struct Checked {
    pub(crate) req: ActionRequest,
    pub(crate) request_id: Option<String>,
    /// `Caller::ledger_name`, written into the decision's entry.
    pub(crate) principal: String,
    /// `Caller::idempotency_key`.
    pub(crate) idem: String,
    /// The API key's name: every budget also counts under `key:<name>` (contract §3).
    pub(crate) key: Option<String>,
}

/// An idempotency row, read.
enum Stored {
    /// Recorded in the ledger: the answer.
    Done {
        decision: Decision,
        token_claims: Option<String>,
    },
    /// Claimed before its ledger append and not (yet) marked recorded.
    Claimed {
        decision: Decision,
        token_claims: Option<String>,
        ledger_from: u64,
        claimed_at: i64,
    },
}

/// SHA-256 over the canonical request, without the free-text intent (contract §3).
pub(crate) fn fingerprint(req: &ActionRequest) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        actor: &'a str,
        proposed_action: &'a str,
        tool: Option<&'a str>,
        data_classes: Vec<&'a str>,
        risk_level: Option<u8>,
        policy_mode: Option<&'a str>,
        context: &'a std::collections::BTreeMap<String, String>,
        llm: Option<&'a lexecon_core::LlmUsage>,
    }
    let canonical = Canonical {
        actor: req.actor.as_str(),
        proposed_action: req.action.as_str(),
        tool: req.tool.as_ref().map(|t| t.as_str()),
        data_classes: req.data_classes.iter().map(|d| d.as_str()).collect(),
        risk_level: req.risk_level,
        policy_mode: req.mode.map(|m| m.as_str()),
        context: &req.context,
        llm: req.llm.as_ref(),
    };
    // Serializing plain strings, numbers and a BTreeMap cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    Sha256::digest(&bytes).to_vec()
}

impl Engine {
    /// Decides a request for `caller`. The engine validates every field, checks that
    /// the caller may speak for the actor, and with a `request_id` returns the same
    /// decision (and no second ledger entry) to the same caller asking again, from this
    /// server or any other on the same database, and after a crash.
    pub async fn decide(
        &self,
        caller: &Caller,
        input: DecideInput,
    ) -> Result<Decision, EngineError> {
        self.decide_unless_gone(caller, input, &CallerGone::new())
            .await
    }

    /// [`Engine::decide`] for a caller who may go away: once `gone` is set, the call
    /// stops with [`EngineError::Cancelled`] if it has not yet claimed its request,
    /// a grant or a budget; from then on it runs to completion (contract §10). Run it
    /// in a task of its own (not in the request future, which the transport drops).
    pub async fn decide_unless_gone(
        &self,
        caller: &Caller,
        input: DecideInput,
        gone: &CallerGone,
    ) -> Result<Decision, EngineError> {
        self.authorize(caller, ops::DECIDE)?;
        let DecideInput {
            mut action,
            request_id,
        } = input;
        self.resolve_actor(caller, &mut action.actor);
        if action.actor.is_empty()
            && let Some(binding) = caller.principal().and_then(|p| p.actors.as_ref())
        {
            return Err(EngineError::InvalidArgument(format!(
                "actor must not be empty: this key speaks for {}, so name the actor",
                binding.patterns().join(", ")
            )));
        }
        let req = action.validate()?;
        let request_id = input::request_id(&request_id)?;
        // Not cut short: a refusal opens its window and ledgers itself in one go.
        gone.check()?;
        self.speaks_for(caller, req.actor.as_str()).await?;
        if let Some(llm) = &req.llm {
            Self::may_name_llm_roles(caller, &llm.roles)?;
        }
        let checked = Checked {
            req,
            request_id,
            principal: caller.ledger_name(),
            idem: caller.idempotency_key(),
            key: caller.key_name().map(str::to_owned),
        };
        self.decide_checked(checked, gone).await
    }

    pub(crate) async fn decide_checked(
        &self,
        checked: Checked,
        gone: &CallerGone,
    ) -> Result<Decision, EngineError> {
        let Some(request_id) = checked.request_id.clone() else {
            // The last point at which the caller may still be let go.
            gone.check()?;
            let prepared = self.prepare(&checked).await?;
            return self.record(prepared).await;
        };
        let key = (checked.idem.clone(), request_id);
        let cell = {
            // A panic elsewhere cannot leave this map half-updated; keep using it.
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                map.entry(key.clone())
                    .or_insert_with(|| Arc::new(OnceCell::new())),
            )
        };
        let result = cell
            .get_or_try_init(|| self.decide_once_per_key(&checked, (&key.0, &key.1), gone))
            .await
            .cloned();
        // Once the decision is stored, the database answers repeats; keep the map small.
        if let Ok(mut map) = self.in_flight.lock() {
            map.remove(&key);
        }
        let decision = result?;
        // A concurrent call that shared this cell may have sent another request under the
        // same key: it is refused like a later one.
        self.same_request(&checked, &decision)?;
        Ok(decision)
    }

    fn same_request(&self, checked: &Checked, decision: &Decision) -> Result<(), EngineError> {
        if decision.fingerprint.is_empty() || decision.fingerprint == fingerprint(&checked.req) {
            return Ok(());
        }
        Err(EngineError::AlreadyExists(format!(
            "request_id {:?} was already used for a different request; send a new request_id",
            checked.request_id.as_deref().unwrap_or_default()
        )))
    }

    /// The database side of idempotency. The decision is claimed in the engine store
    /// before its ledger entry is appended (with the ledger's size at that moment) and
    /// completed after. A claim found unfinished means another call is appending, or
    /// one crashed: if the ledger holds the claimed decision, that decision is the
    /// answer; if not and the claim is older than [`CLAIM_LEASE_SECS`], the crashed call
    /// answered nobody and the request is decided afresh.
    async fn decide_once_per_key(
        &self,
        checked: &Checked,
        key: IdemKey<'_>,
        gone: &CallerGone,
    ) -> Result<Decision, EngineError> {
        let request_id = key.1;
        let give_up = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
        let in_progress = || {
            EngineError::InProgress(format!(
                "request_id {request_id:?} is being decided by another call; retry in a few \
                 seconds (a call that failed mid-way holds it for at most {CLAIM_LEASE_SECS} s)"
            ))
        };
        loop {
            match gone.or_gone(self.stored_decision(key)).await? {
                Some(Stored::Done {
                    decision,
                    token_claims: None,
                }) => return self.with_escalation(decision, &checked.principal).await,
                Some(Stored::Done {
                    decision,
                    token_claims: Some(kept),
                }) => {
                    let entry = self.ledger.entry(decision.ledger_index).await?;
                    return self.with_token(decision, &kept, entry.as_ref());
                }
                Some(Stored::Claimed {
                    mut decision,
                    token_claims,
                    ledger_from,
                    claimed_at,
                }) => {
                    if let Some(entry) = self.locate(&decision.decision_id, ledger_from).await? {
                        decision.ledger_index = entry.index;
                        decision.ledger_leaf_hash = entry.leaf_hash;
                        // The entry is the answer whether this call or the claim's owner
                        // completes the row (`false`: the owner did, with the same receipt).
                        self.complete(key, claimed_at, &decision).await?;
                        if let Some(kept) = token_claims {
                            return self.with_token(decision, &kept, Some(&entry));
                        }
                        return Ok(decision);
                    }
                    let age_secs = (self.clock.now().unix_micros() - claimed_at) / 1_000_000;
                    if age_secs >= CLAIM_LEASE_SECS {
                        tracing::warn!(
                            request_id,
                            age_secs,
                            "an unfinished decision claim has no ledger entry; deciding afresh"
                        );
                        if self.store.idem_drop(key, claimed_at).await? {
                            let reservation = decision
                                .reservation_id
                                .as_deref()
                                .and_then(|r| r.parse().ok());
                            self.release_reservation(reservation).await;
                        }
                        continue;
                    }
                    if tokio::time::Instant::now() >= give_up {
                        return Err(in_progress());
                    }
                    gone.or_gone(async {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        Ok(())
                    })
                    .await?;
                    continue;
                }
                None => {}
            }
            // The last point at which the caller may still be let go: what follows claims
            // a grant or a budget, then the request.
            gone.check()?;
            let prepared = self.prepare(checked).await?;
            let ledger_from = match self.ledger.tree_size().await {
                Ok(size) => size,
                Err(e) => {
                    self.release_prepared(&prepared).await;
                    return Err(e.into());
                }
            };
            let claimed_at = self.clock.now().unix_micros();
            match self
                .claim(key, &prepared.decision, ledger_from, claimed_at)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Another server claimed it first: its decision is the answer.
                    self.release_prepared(&prepared).await;
                    continue;
                }
                Err(e) => {
                    self.release_prepared(&prepared).await;
                    return Err(e);
                }
            }
            let decision_id = prepared.decision.decision_id;
            let decision = match self.record(prepared).await {
                Ok(decision) => decision,
                Err(e) => {
                    // A retry may decide at once unless the entry was written after all
                    // (an append can fail after its commit); then the claim answers it.
                    match self.locate(&decision_id, ledger_from).await {
                        Ok(None) => {
                            if let Err(drop_err) = self.store.idem_drop(key, claimed_at).await {
                                tracing::warn!(error = %drop_err, "could not drop a failed decision claim; it expires");
                            }
                        }
                        Ok(Some(_)) => {}
                        Err(locate_err) => {
                            tracing::warn!(error = %locate_err, "could not check the ledger after a failed append; the claim expires");
                        }
                    }
                    return Err(e);
                }
            };
            if !self.complete(key, claimed_at, &decision).await? {
                // Our claim outlived its lease and another call took the key over: its
                // decision is the one every retry gets, so do not hand out ours.
                tracing::error!(
                    request_id,
                    ledger_index = decision.ledger_index,
                    "a decision claim was taken over before its append completed"
                );
                return Err(in_progress());
            }
            return Ok(decision);
        }
    }

    /// The ledger entry of `decision_id`, looked for from `from` on.
    async fn locate(
        &self,
        decision_id: &DecisionId,
        from: u64,
    ) -> Result<Option<lexecon_ledger::Entry>, EngineError> {
        const PAGE: u64 = 1_000;
        let id = decision_id.to_string();
        let mut from = from;
        loop {
            let entries = self.ledger.entries(from, PAGE).await?;
            let Some(last) = entries.last() else {
                return Ok(None);
            };
            from = last.index + 1;
            let full = entries.len() as u64 == PAGE;
            for entry in entries {
                let Some(payload) = entry.payload.as_deref() else {
                    continue;
                };
                // Parse only the entries that mention the id.
                if !payload.windows(id.len()).any(|w| w == id.as_bytes()) {
                    continue;
                }
                // Other kinds of entry may name a decision too; only its own entry counts.
                let is_decision = entry
                    .decode_leaf()
                    .is_ok_and(|leaf| leaf.kind == EntryKind::Decision);
                if is_decision
                    && entry
                        .payload_json()
                        .as_ref()
                        .and_then(|j| j.get("decision_id")?.as_str())
                        == Some(&id)
                {
                    return Ok(Some(entry));
                }
            }
            if !full {
                return Ok(None);
            }
        }
    }

    /// `decision` with its capability token: the kept claims signed again, once they are
    /// checked against the decision's ledger entry, so that only a token the ledger
    /// recorded is ever signed again (a row written into the database by hand is not).
    fn with_token(
        &self,
        mut decision: Decision,
        kept: &str,
        entry: Option<&lexecon_ledger::Entry>,
    ) -> Result<Decision, EngineError> {
        let mismatch = || {
            EngineError::Corrupt(format!(
                "the stored token of {} does not match its ledger entry {}; not signing it",
                decision.decision_id, decision.ledger_index
            ))
        };
        let mut claims = lexecon_capability::unsigned_claims(kept).map_err(|_| mismatch())?;
        let recorded = entry.and_then(lexecon_ledger::Entry::payload_json);
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(recorded.as_ref()?, |v, k| v.get(*k))
                .cloned()
        };
        let matches = entry.is_some_and(|e| e.index == decision.ledger_index)
            && claims.decision_id == decision.decision_id
            && field(&["decision_id"]) == serde_json::to_value(decision.decision_id).ok()
            && field(&["token", "token_id"]) == serde_json::to_value(claims.token_id).ok()
            && field(&["token", "key_id"]) == serde_json::to_value(&claims.key_id).ok()
            && field(&["token", "expires_at"]) == serde_json::to_value(claims.expires_at).ok();
        if !matches {
            return Err(mismatch());
        }
        // What `lexecon_capability::resign` does, without decoding the claims again.
        let keys = self.key_ring();
        keys.active().key_id().clone_into(&mut claims.key_id);
        let token = lexecon_capability::mint(keys.active(), &claims)
            .map_err(|e| EngineError::Keys(format!("stored token claims: {e}")))?;
        decision.capability_token = Some(token);
        Ok(decision)
    }

    /// Decides, mints the token and builds the ledger payload of a checked request:
    /// everything but the append.
    pub(crate) async fn prepare(&self, checked: &Checked) -> Result<Prepared, EngineError> {
        let req = &checked.req;
        let oversight = self.oversight_now().await?;
        let now = self.clock.now();
        let decision_id = DecisionId::new(now, rand::thread_rng().r#gen());
        let policy = self.policy.current();
        let policy_hash = policy.compiled.hash();
        let assessment = self.assess_request(req);
        let eval = policy.compiled.evaluate(
            req,
            RiskInput {
                score: Some(assessment.score),
                escalation_threshold: assessment.escalation_threshold,
            },
        );
        let mut outcome = eval.outcome;
        let mut reasons = eval.reasons.clone();
        let mut reasoning = eval.reasoning.clone();
        let mut override_id = None;
        let mut grant: Option<EscClaim> = None;
        let mut priority = None;

        if let Some(halt) = oversight.halt_for(req.actor.as_str()) {
            // Policy and risk ran so the entry is complete, but a halt decides alone.
            outcome = Outcome::Denied;
            reasons = vec![format!("halted:{halt}")];
            reasoning = format!(
                "Denied: halt {halt} stops every decision for this actor until it is resumed."
            );
        } else {
            let settings = self.oversight_settings();
            if outcome == Outcome::Approved
                && settings.auto_escalate
                && assessment.score >= assessment.escalation_threshold
            {
                outcome = Outcome::Escalated;
                reasons = vec!["auto-escalation".to_owned()];
                reasoning = format!(
                    "Escalated: permitted by the policy, but the risk score {} is at or above \
                     risk.escalation_threshold ({}), so a person must confirm.",
                    assessment.score, assessment.escalation_threshold
                );
            }
            let matched = if oversight.is_empty() {
                Matched::default()
            } else {
                oversight.overrides_for(req, now)
            };
            match outcome {
                Outcome::Escalated => {
                    let level = EscalationPriority::of(assessment.level);
                    let prio = if reasons.iter().any(|r| r == "paranoid-risk-level") {
                        level.max(EscalationPriority::High)
                    } else {
                        level
                    };
                    if let Some(deny) = matched.deny {
                        outcome = Outcome::Denied;
                        reasons = vec![format!("override:{deny}")];
                        reasoning = format!("Denied by override {deny}.");
                        override_id = Some(deny);
                    } else if let Some(claim) = self.claim_grant(&checked.idem, req, now).await? {
                        let id = claim.row.escalation_id.clone();
                        outcome = Outcome::Approved;
                        reasons = vec![format!("escalation:{id}")];
                        reasoning = format!(
                            "Approved: people approved escalation {id} for this request; its \
                             grant is used by this decision."
                        );
                        grant = Some(claim);
                    } else if let Some(approve) = matched.approve {
                        override_id = Some(approve);
                        if prio == EscalationPriority::Critical && settings.two_person_rule {
                            priority = Some(prio);
                        } else {
                            outcome = Outcome::Approved;
                            reasons = vec![format!("override:{approve}")];
                            reasoning = format!("Approved by override {approve}.");
                        }
                    } else {
                        priority = Some(prio);
                    }
                }
                Outcome::Denied => {
                    if let (None, Some(approve)) = (matched.deny, matched.approve) {
                        outcome = Outcome::Approved;
                        reasons = vec![format!("override:{approve}")];
                        reasoning = format!(
                            "Approved by override {approve} over the policy's denial ({}).",
                            eval.reasons.join(", ")
                        );
                        override_id = Some(approve);
                    }
                }
                Outcome::Approved => {
                    if let Some(deny) = matched.deny {
                        outcome = Outcome::Denied;
                        reasons = vec![format!("override:{deny}")];
                        reasoning = format!("Denied by override {deny}.");
                        override_id = Some(deny);
                    }
                }
            }
        }

        // Budget, rate and model access for an LLM call the policy approved. Any failure
        // of the budget step denies: deny is the safe failure. An escalated call is
        // checked but not reserved: it is reserved when its grant is used.
        let mut reservation = None;
        let mut warnings = Vec::new();
        if let (Outcome::Escalated, Some(llm)) = (outcome, &req.llm)
            && let Err(e) = self.budget.check_for(llm, checked.key.as_deref()).await
        {
            priority = None;
            override_id = None;
            outcome = Outcome::Denied;
            (reasons, reasoning) = budget_refusal(&e);
        }
        if let (Outcome::Approved, Some(llm)) = (outcome, &req.llm) {
            match self.budget.authorize_for(llm, checked.key.as_deref()).await {
                Ok(auth) => {
                    reservation = Some(auth.reservation_id);
                    warnings = auth
                        .warnings
                        .iter()
                        .map(lexecon_budget::SoftLimitEvent::message)
                        .collect();
                }
                Err(e) => {
                    // An override never lifts a budget limit; a used grant stays spent.
                    override_id = None;
                    outcome = Outcome::Denied;
                    (reasons, reasoning) = budget_refusal(&e);
                }
            }
        }

        let mut token = None;
        let mut token_claims = None;
        if outcome == Outcome::Approved {
            let keys = self.key_ring();
            let claims = Claims::builder(
                decision_id,
                req.actor.clone(),
                req.action.clone(),
                policy_hash,
            )
            .tool(req.tool.clone())
            .audience(
                (!self.config.tokens.audience.is_empty())
                    .then(|| self.config.tokens.audience.clone()),
            )
            .ttl_secs(self.config.tokens.ttl_secs)
            .build(keys.active().key_id(), now, rand::thread_rng().r#gen())
            .map_err(|e| EngineError::Keys(e.to_string()))?;
            token = Some(
                lexecon_capability::mint(keys.active(), &claims)
                    .map_err(|e| EngineError::Keys(e.to_string()))?,
            );
            token_claims = Some(claims);
        }

        let reservation_text = reservation.map(|r| r.to_string());
        let escalation = match priority.filter(|_| outcome == Outcome::Escalated) {
            Some(priority) => match self.new_escalation(&EscalationInput {
                by: &checked.principal,
                principal_key: &checked.idem,
                decision_id,
                req,
                priority,
                override_id,
                policy_hash,
                now,
            }) {
                Ok(e) => Some(e),
                Err(e) => {
                    self.release_parts(reservation, grant.as_ref()).await;
                    return Err(e);
                }
            },
            None => None,
        };
        let grant = match grant {
            Some(claim) => {
                let used = GrantUse {
                    by: &checked.principal,
                    decision_id: Some(&decision_id),
                    outcome,
                    token: token_claims.as_ref(),
                    token_claims: None,
                    reservation_id: reservation_text.as_deref(),
                };
                match self.grant_used_entry(&claim, used) {
                    Ok(entry) => Some((claim, entry)),
                    Err(e) => {
                        self.release_parts(reservation, Some(&claim)).await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let escalation_id = escalation.as_ref().map(|e| e.id).or_else(|| {
            grant
                .as_ref()
                .and_then(|(c, _)| c.row.escalation_id.parse().ok())
        });
        let oversight_fields = OversightFields {
            escalation: escalation.as_ref().map(|e| (&e.id, e.priority, e.due_at)),
            override_id: override_id.as_ref(),
            grant_escalation_id: grant.as_ref().map(|(c, _)| c.row.escalation_id.as_str()),
        };
        let payload = decision_payload(
            &checked.principal,
            &decision_id,
            checked.request_id.as_deref(),
            req,
            &eval,
            (outcome, &reasons, &reasoning),
            &assessment,
            &policy,
            token_claims.as_ref(),
            reservation_text.as_deref(),
            &oversight_fields,
        );
        let payload = match payload {
            Ok(bytes) => bytes,
            Err(e) => {
                self.release_parts(reservation, grant.as_ref().map(|(c, _)| c))
                    .await;
                return Err(e);
            }
        };
        Ok(Prepared {
            decision: Decision {
                decision_id,
                request_id: checked.request_id.clone(),
                actor: req.actor.as_str().to_owned(),
                outcome,
                effective_mode: eval.mode,
                reasoning,
                reasons,
                risk_level: assessment.level,
                risk_score: assessment.score,
                risk_dimensions: dimension_views(&assessment),
                capability_token: token,
                token_expires_at: token_claims.as_ref().map(|c| c.expires_at),
                reservation_id: reservation_text,
                warnings,
                ledger_index: 0,
                ledger_leaf_hash: [0; 32],
                policy_version_hash: policy_hash,
                decided_at: now,
                escalation_id,
                override_id,
                escalation_state: escalation.as_ref().map(|e| e.state),
                fingerprint: if checked.request_id.is_some() {
                    fingerprint(req)
                } else {
                    Vec::new()
                },
            },
            payload,
            reservation,
            escalation,
            grant,
        })
    }

    /// Appends a prepared decision's entry (with the escalation or grant entry that goes
    /// with it, as one group at consecutive indexes) and returns the decision with its
    /// receipt. On failure nothing was acknowledged: the budget reservation and any grant
    /// claim are given back.
    pub(crate) async fn record(&self, prepared: Prepared) -> Result<Decision, EngineError> {
        let Prepared {
            mut decision,
            payload,
            reservation,
            escalation,
            grant,
        } = prepared;
        let index_row = match super::journal::decision_index_row(&decision, &payload) {
            Ok(row) => row,
            Err(e) => {
                self.release_parts(reservation, grant.as_ref().map(|(c, _)| c))
                    .await;
                return Err(e);
            }
        };
        let (claim, extra) = match (escalation, grant) {
            (Some(e), _) => (None, Some(e.entry)),
            (None, Some((claim, entry))) => (Some(claim), Some(entry)),
            (None, None) => (None, None),
        };
        let appended = match extra {
            None => self
                .ledger
                .append_entry(EntryKind::Decision, payload, vec![index_row])
                .await
                .map(|r| (r.index, r.leaf_hash)),
            Some(extra) => self
                .ledger
                .append_group(vec![(EntryKind::Decision, payload, vec![index_row]), extra])
                .await
                .and_then(|receipts| {
                    receipts
                        .first()
                        .map(|r| (r.index, r.leaf_hash))
                        .ok_or_else(|| {
                            lexecon_ledger::LedgerError::Corrupt(
                                "a group append returned no receipt".to_owned(),
                            )
                        })
                }),
        };
        match appended {
            Ok((index, leaf_hash)) => {
                decision.ledger_index = index;
                decision.ledger_leaf_hash = leaf_hash;
                Ok(decision)
            }
            Err(e) => {
                self.release_parts(reservation, claim.as_ref()).await;
                Err(e.into())
            }
        }
    }

    /// Gives back what a prepared decision holds: its budget reservation and its grant
    /// claim.
    pub(crate) async fn release_prepared(&self, prepared: &Prepared) {
        self.release_parts(
            prepared.reservation,
            prepared.grant.as_ref().map(|(c, _)| c),
        )
        .await;
    }

    async fn release_parts(&self, reservation: Option<ReservationId>, grant: Option<&EscClaim>) {
        self.release_reservation(reservation).await;
        if let Some(claim) = grant {
            self.release_claim(&claim.row.escalation_id, &claim.owner)
                .await;
        }
    }

    /// A stored ESCALATED decision answered again: with its escalation's state now, and
    /// the token once its grant was used by fetching (this fetch or an earlier one).
    async fn with_escalation(
        &self,
        mut decision: Decision,
        by: &str,
    ) -> Result<Decision, EngineError> {
        let Some(id) = decision
            .escalation_id
            .filter(|_| decision.outcome == Outcome::Escalated)
        else {
            return Ok(decision);
        };
        let (state, token) = self.escalation_for_replay(&id, by).await?;
        decision.escalation_state = Some(state);
        if let Some((token, expires_at)) = token {
            decision.capability_token = Some(token);
            decision.token_expires_at = Some(expires_at);
        }
        Ok(decision)
    }

    pub(crate) async fn release_reservation(&self, reservation: Option<ReservationId>) {
        if let Some(id) = reservation {
            let _ = self.budget.release(id).await;
        }
    }

    /// The idempotency row of `key`, if any.
    async fn stored_decision(&self, key: IdemKey<'_>) -> Result<Option<Stored>, EngineError> {
        let Some(row) = self.store.idem_get(key).await? else {
            return Ok(None);
        };
        let mut decision: Decision = serde_json::from_str(&row.decision)
            .map_err(|e| EngineError::Corrupt(format!("stored decision is unreadable: {e}")))?;
        if let Some(fp) = row.fingerprint {
            decision.fingerprint = fp;
        }
        Ok(Some(match row.ledger_from {
            None => Stored::Done {
                decision,
                token_claims: row.token_claims,
            },
            Some(from) => Stored::Claimed {
                decision,
                token_claims: row.token_claims,
                ledger_from: u64::try_from(from).unwrap_or(0),
                claimed_at: row.created_at,
            },
        }))
    }

    /// Claims `key` for `decision`, not yet recorded; `false` when another call holds
    /// the key already.
    pub(crate) async fn claim(
        &self,
        key: IdemKey<'_>,
        decision: &Decision,
        ledger_from: u64,
        claimed_at: i64,
    ) -> Result<bool, EngineError> {
        let (json, token_claims) = row_of(decision)?;
        self.store
            .idem_claim(
                key,
                &IdemRow {
                    decision: json,
                    created_at: claimed_at,
                    ledger_from: Some(i64::try_from(ledger_from).unwrap_or(i64::MAX)),
                    token_claims,
                    fingerprint: (!decision.fingerprint.is_empty())
                        .then(|| decision.fingerprint.clone()),
                },
            )
            .await
    }

    /// Marks the claim of `key` made at `claimed_at` recorded, with the decision's
    /// receipt. `false` when that claim is no longer there: completed by another call,
    /// or taken over.
    async fn complete(
        &self,
        key: IdemKey<'_>,
        claimed_at: i64,
        decision: &Decision,
    ) -> Result<bool, EngineError> {
        let (json, _) = row_of(decision)?;
        self.store.idem_complete(key, claimed_at, &json).await
    }
}

/// A decision as its idempotency row keeps it: the JSON without the capability token,
/// and the token's claims without the signature. A stored token would be a credential
/// anyone who reads the database could use; the claims grant nothing.
fn row_of(decision: &Decision) -> Result<(String, Option<String>), EngineError> {
    let token_claims = decision
        .capability_token
        .as_deref()
        .map(lexecon_capability::unsigned)
        .transpose()
        .map_err(|e| EngineError::Keys(format!("cannot keep the token's claims: {e}")))?;
    let json = serde_json::to_string(&Decision {
        capability_token: None,
        ..decision.clone()
    })
    .map_err(|e| EngineError::Corrupt(format!("cannot encode the decision: {e}")))?;
    Ok((json, token_claims))
}

/// The reasons and reasoning of a decision the budget step refused.
fn budget_refusal(e: &BudgetError) -> (Vec<String>, String) {
    match e {
        BudgetError::Denied(denial) => (
            vec![denial.limit_id.clone()],
            format!("Denied by the LLM budget: {}.", denial.message()),
        ),
        other => {
            tracing::error!(error = %other, "budget check failed; denying");
            (
                vec!["budget-unavailable".to_owned()],
                format!("Denied because the budget check failed: {other}."),
            )
        }
    }
}
