//! Escalations: every ESCALATED decision creates one, durable, with a priority, an SLA
//! deadline and a warning time. Compliance officers and admins resolve them (never the
//! asking principal); a critical one needs two distinct approvers under the two-person
//! rule, and one denial ends it. An approval creates a single-use grant ([`super::grants`]).

use lexecon_core::{DecisionId, EscalationId, OverrideId, RiskLevel, Timestamp, TokenId};
use serde::Serialize;

pub use crate::decision::EscalationState;

/// The priority of an escalation: the decision's risk level, at least `high` for a
/// paranoid-mode escalation caused by the caller's own risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationPriority {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical: two approvers under the two-person rule.
    Critical,
}

impl EscalationPriority {
    /// Every priority, lowest first.
    pub const ALL: [EscalationPriority; 4] = [
        EscalationPriority::Low,
        EscalationPriority::Medium,
        EscalationPriority::High,
        EscalationPriority::Critical,
    ];

    /// The name in payloads, tables and `oversight.sla_secs`.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationPriority::Low => "low",
            EscalationPriority::Medium => "medium",
            EscalationPriority::High => "high",
            EscalationPriority::Critical => "critical",
        }
    }

    /// The priority named `s`.
    pub fn parse(s: &str) -> Option<EscalationPriority> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The priority of a risk level.
    pub fn of(level: RiskLevel) -> EscalationPriority {
        match level {
            RiskLevel::Low => EscalationPriority::Low,
            RiskLevel::Medium => EscalationPriority::Medium,
            RiskLevel::High => EscalationPriority::High,
            RiskLevel::Critical => EscalationPriority::Critical,
        }
    }
}

/// One person's approval (or the denial) of an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRecord {
    /// True for an approval, false for the denial.
    pub approve: bool,
    /// `Caller::ledger_name` of the approver.
    pub principal: String,
    /// `user`, `api_key`, `local` or `system`.
    pub principal_kind: String,
    /// For an API key, who created it (`unknown` for keys from before creators were kept).
    pub key_creator: Option<String>,
    /// Whether the approver's session completed MFA.
    pub mfa_verified: bool,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
    /// The ledger index of the `escalation_resolved` entry of this approval.
    pub ledger_index: u64,
}

/// How an escalation ended (absent while pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EscalationResolution {
    /// The final state: approved, denied, expired or cancelled.
    pub state: EscalationState,
    /// Who ended it: the last approver, the denier, `system:oversight-sweeper` for an
    /// expiry, or whoever revoked the asking key.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
    /// The ledger index of the entry that ended it.
    pub ledger_index: u64,
}

/// An escalation as `GetEscalation` and `ListEscalations` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EscalationView {
    /// `esc_` + ULID.
    pub escalation_id: EscalationId,
    /// The escalated decision.
    pub decision_id: DecisionId,
    /// Its priority.
    pub priority: EscalationPriority,
    /// Its state.
    pub state: EscalationState,
    /// When it was created (the decision's time).
    pub created_at: Timestamp,
    /// The SLA deadline: pending past it means expired.
    pub due_at: Timestamp,
    /// When the warning is due: `max(created_at, due_at - oversight.warn_before_secs)`.
    pub warn_at: Timestamp,
    /// The ledger index of the warning, once given.
    pub warned_index: Option<u64>,
    /// The request's actor.
    pub actor: String,
    /// The request's action.
    pub proposed_action: String,
    /// The request's tool, if any.
    pub tool: Option<String>,
    /// `Caller::ledger_name` of the principal whose request escalated.
    pub asking_principal: String,
    /// The approvals so far, and the denial if it was denied, in order.
    pub approvals: Vec<ApprovalRecord>,
    /// How many approvals it needs (2 for a critical one under the two-person rule).
    pub approvals_required: u32,
    /// How it ended.
    pub resolution: Option<EscalationResolution>,
    /// An approve override that matched but could not decide (critical, two-person rule).
    pub override_id: Option<OverrideId>,
    /// The capability token, once the grant is used through this fetch or an earlier
    /// one: only ever shown to the asking principal.
    pub capability_token: Option<String>,
    /// The token's id (shown to officers and admins too).
    pub token_id: Option<TokenId>,
    /// The token's expiry.
    pub token_expires_at: Option<Timestamp>,
    /// The LLM budget reservation made when the grant was used.
    pub reservation_id: Option<String>,
    /// Until when the approval's grant may be used (approved escalations).
    pub grant_expires_at: Option<Timestamp>,
    /// When the grant was used, if it was.
    pub grant_used_at: Option<Timestamp>,
    /// The decision that used the grant (path b), if any.
    pub grant_decision_id: Option<DecisionId>,
    /// The ledger index of the `escalation_created` entry.
    pub ledger_index: u64,
}

/// A `ListEscalations` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EscalationQuery {
    /// Only this state; `None` = every state.
    pub state: Option<EscalationState>,
    /// At most this many (0 = the default, 100; more than 1000 is refused).
    pub page_size: u32,
    /// From `next_page_token` of the previous page; empty = the first page.
    pub page_token: String,
}

use lexecon_auth::PrincipalKind;
use lexecon_core::{ActionRequest, Outcome};
use lexecon_ledger::{EntryKind, SideRow};
use rand::Rng as _;
use serde_json::json;

use super::grants::{self, EscClaim, GrantUse, effective, last, state_row};
use super::store::{self, ApprovalRow, EscRow, StateRow, tables};
use super::{GroupEntry, index_of, int, opt_text, required_text, text, ts};
use crate::engine::page::{Page, decode_cursor, encode_cursor, page_size};
use crate::engine::{Caller, Engine, EngineError, ops};

/// Who ends an escalation that nobody resolved in time.
pub(crate) const SWEEPER: &str = "system:oversight-sweeper";

/// An escalation to create with its decision: the entry and rows to append right after
/// the decision's, in the same group.
#[derive(Debug)]
pub(crate) struct NewEscalation {
    pub(crate) id: EscalationId,
    pub(crate) state: EscalationState,
    pub(crate) priority: EscalationPriority,
    pub(crate) due_at: Timestamp,
    pub(crate) entry: GroupEntry,
}

/// What an escalation is created from.
#[derive(Debug)]
pub(crate) struct EscalationInput<'a> {
    pub(crate) by: &'a str,
    pub(crate) principal_key: &'a str,
    pub(crate) decision_id: DecisionId,
    pub(crate) req: &'a ActionRequest,
    pub(crate) priority: EscalationPriority,
    pub(crate) override_id: Option<OverrideId>,
    pub(crate) policy_hash: [u8; 32],
    pub(crate) now: Timestamp,
}

/// The principal kind of a caller, as approvals record it.
fn kind_of(caller: &Caller) -> &'static str {
    match caller {
        Caller::Principal(p) => match p.kind {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
        },
        Caller::Local(_) => "local",
        Caller::System(_) => "system",
    }
}

fn key_creator(caller: &Caller) -> Option<String> {
    match caller {
        Caller::Principal(p) if p.kind == PrincipalKind::ApiKey => {
            Some(p.created_by.clone().unwrap_or_else(|| "unknown".to_owned()))
        }
        Caller::Principal(_) | Caller::Local(_) | Caller::System(_) => None,
    }
}

fn corrupt(id: &str, what: &str) -> EngineError {
    EngineError::Corrupt(format!("escalation {id} has an unreadable {what}"))
}

fn parse_id(escalation_id: &str) -> Result<String, EngineError> {
    let id: EscalationId = escalation_id.parse().map_err(|_| {
        EngineError::InvalidArgument(format!(
            "escalation_id {escalation_id:?} is not an escalation id (esc_ followed by 26 characters)"
        ))
    })?;
    Ok(id.to_string())
}

impl Engine {
    /// The escalation of an ESCALATED decision: its `escalation_created` entry with the
    /// escalation row and its first state row.
    pub(crate) fn new_escalation(
        &self,
        input: &EscalationInput<'_>,
    ) -> Result<NewEscalation, EngineError> {
        let cfg = self.oversight_settings();
        let id = EscalationId::new(input.now, rand::thread_rng().r#gen());
        let created = input.now.unix_micros();
        let due = created.saturating_add(cfg.sla_micros(input.priority));
        let warn = due.saturating_sub(cfg.warn_before_micros).max(created);
        let required: i64 = if input.priority == EscalationPriority::Critical && cfg.two_person_rule
        {
            2
        } else {
            1
        };
        let req = input.req;
        let tool = req.tool.as_ref().map(|t| t.as_str());
        let request_json = serde_json::to_string(req)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode the request: {e}")))?;
        let payload = json!({
            "event": "escalation_created",
            "by": input.by,
            "escalation_id": id,
            "decision_id": input.decision_id,
            "priority": input.priority.as_str(),
            "due_at": ts(due),
            "warn_at": ts(warn),
            "approvals_required": required,
            "actor": req.actor.as_str(),
            "action": req.action.as_str(),
            "tool": tool,
            "override_id": input.override_id,
            "at": input.now,
        });
        let bytes = serde_json::to_vec(&payload)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode an oversight entry: {e}")))?;
        let id_text = id.to_string();
        let escalation = SideRow {
            table: &tables::ESCALATIONS,
            values: vec![
                text(&id_text),
                text(&input.decision_id.to_string()),
                text(input.principal_key),
                text(input.by),
                text(req.actor.as_str()),
                text(req.action.as_str()),
                opt_text(tool),
                text(&request_json),
                lexecon_ledger::SideValue::Bytes(grants::grant_fingerprint(req).to_vec()),
                lexecon_ledger::SideValue::Bytes(input.policy_hash.to_vec()),
                text(input.priority.as_str()),
                int(created),
                int(due),
                int(warn),
                int(required),
                opt_text(input.override_id.map(|o| o.to_string()).as_deref()),
            ],
        };
        let state = StateRow {
            state: EscalationState::Pending.as_str().to_owned(),
            ..StateRow::default()
        };
        Ok(NewEscalation {
            id,
            state: EscalationState::Pending,
            priority: input.priority,
            due_at: ts(due),
            entry: (
                EntryKind::Oversight,
                bytes,
                vec![escalation, state_row(&id_text, &state, last::CREATED)],
            ),
        })
    }

    /// The view of `row`; the token only when `asker` (the asking principal) looks.
    async fn view(&self, row: &EscRow, asker: bool) -> Result<EscalationView, EngineError> {
        let id = row.escalation_id.as_str();
        let approvals = store::on(&self.db).approvals(id).await?;
        let s = effective(&row.state);
        let state = EscalationState::parse(&s.state).ok_or_else(|| corrupt(id, "state"))?;
        let resolution = match (s.resolved_by.as_ref(), s.resolved_at, s.resolved_idx) {
            (Some(by), Some(at), Some(idx)) => Some(EscalationResolution {
                state,
                by: by.clone(),
                at: ts(at),
                reason: s.resolution_reason.clone().unwrap_or_default(),
                ledger_index: index_of(idx),
            }),
            _ => None,
        };
        let mut view = EscalationView {
            escalation_id: id.parse().map_err(|_| corrupt(id, "id"))?,
            decision_id: row
                .decision_id
                .parse()
                .map_err(|_| corrupt(id, "decision id"))?,
            priority: EscalationPriority::parse(&row.priority)
                .ok_or_else(|| corrupt(id, "priority"))?,
            state,
            created_at: ts(row.created_at),
            due_at: ts(row.due_at),
            warn_at: ts(row.warn_at),
            warned_index: s.warned_idx.map(index_of),
            actor: row.actor.clone(),
            proposed_action: row.action.clone(),
            tool: row.tool.clone(),
            asking_principal: row.principal_name.clone(),
            approvals: approvals.into_iter().map(approval_record).collect(),
            approvals_required: u32::try_from(row.approvals_required).unwrap_or(1),
            resolution,
            override_id: row
                .override_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt(id, "override id"))?,
            capability_token: None,
            token_id: s
                .token_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt(id, "token id"))?,
            token_expires_at: s.token_expires_at.map(ts),
            reservation_id: s.reservation_id.clone(),
            grant_expires_at: s.grant_expires_at.map(ts),
            grant_used_at: s.grant_used_at.map(ts),
            grant_decision_id: s
                .grant_decision_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt(id, "grant decision id"))?,
            ledger_index: index_of(row.idx),
        };
        if asker {
            view.capability_token = self.kept_grant_token(row).await?;
        }
        Ok(view)
    }

    /// Lists escalations, newest first.
    pub async fn list_escalations(
        &self,
        caller: &Caller,
        query: EscalationQuery,
    ) -> Result<Page<EscalationView>, EngineError> {
        self.authorize(caller, ops::LIST_ESCALATIONS)?;
        let size = page_size(query.page_size, "page_size")?;
        let before = decode_cursor(&query.page_token, "page_token")?
            .map_or(i64::MAX, |c| i64::try_from(c).unwrap_or(i64::MAX));
        let rows = store::on(&self.db)
            .escalations(
                query.state.map(EscalationState::as_str),
                before,
                i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1),
            )
            .await?;
        let more = rows.len() > size;
        let mut items = Vec::with_capacity(rows.len().min(size));
        let asker = caller.idempotency_key();
        for row in rows.iter().take(size) {
            items.push(self.view(row, row.principal_key == asker).await?);
        }
        let next_page_token = match (more, items.last()) {
            (true, Some(last)) => encode_cursor(last.ledger_index),
            _ => String::new(),
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// One escalation. An agent may get only the escalations its own requests created;
    /// for the asking principal, an approved grant not yet used is used by this fetch
    /// (path a), and the answer carries the capability token.
    pub async fn get_escalation(
        &self,
        caller: &Caller,
        escalation_id: &str,
    ) -> Result<EscalationView, EngineError> {
        self.authorize(caller, ops::GET_ESCALATION)?;
        let id = parse_id(escalation_id)?;
        let not_found = || EngineError::NotFound(format!("no escalation {id}"));
        let Some(row) = store::on(&self.db).escalation(&id).await? else {
            return Err(not_found());
        };
        let asker = row.principal_key == caller.idempotency_key();
        if !asker
            && caller
                .principal()
                .is_some_and(|p| p.role == lexecon_auth::Role::Agent)
        {
            // Say nothing about other principals' escalations.
            return Err(not_found());
        }
        let row = if asker {
            self.use_grant_by_fetch(row, &caller.ledger_name()).await?
        } else {
            row
        };
        self.view(&row, asker).await
    }

    /// Approves or denies a pending escalation. Returns it afterwards with the ledger
    /// index of the `escalation_resolved` entry.
    pub async fn resolve_escalation(
        &self,
        caller: &Caller,
        escalation_id: &str,
        approve: bool,
        reason: &str,
    ) -> Result<(EscalationView, u64), EngineError> {
        self.authorize(caller, ops::RESOLVE_ESCALATION)?;
        let id = parse_id(escalation_id)?;
        required_text("reason", reason)?;
        let cfg = self.oversight_settings();
        if cfg.people_only
            && !caller
                .principal()
                .is_some_and(|p| p.kind == PrincipalKind::User && p.mfa_verified)
        {
            return Err(EngineError::PermissionDenied(format!(
                "oversight.approvers is \"people\": only a user session that completed MFA may \
                 resolve escalations, and {} is not one",
                caller.ledger_name()
            )));
        }
        let store = store::on(&self.db);
        let Some(row) = store.escalation(&id).await? else {
            return Err(EngineError::NotFound(format!("no escalation {id}")));
        };
        let me = caller.idempotency_key();
        if row.principal_key == me {
            return Err(EngineError::PermissionDenied(format!(
                "{} asked for the escalated request, so it may not resolve escalation {id}",
                caller.ledger_name()
            )));
        }
        pending_now(&row, self.clock.now())?;
        let Some(claim) = self.claim_escalation(&id).await? else {
            return Err(EngineError::InProgress(format!(
                "escalation {id} is being changed by another call; retry in a moment"
            )));
        };
        let result = self
            .record_resolution(caller, &claim, approve, reason, &me)
            .await;
        if result.is_err() {
            self.release_claim(&id, &claim.owner).await;
        }
        let index = result?;
        let row = store
            .escalation(&id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no escalation {id}")))?;
        Ok((self.view(&row, false).await?, index))
    }

    async fn record_resolution(
        &self,
        caller: &Caller,
        claim: &EscClaim,
        approve: bool,
        reason: &str,
        me: &str,
    ) -> Result<u64, EngineError> {
        let row = &claim.row;
        let id = row.escalation_id.as_str();
        let now = self.clock.now();
        pending_now(row, now)?;
        let approvals = store::on(&self.db).approvals(id).await?;
        if approve && approvals.iter().any(|a| a.approve && a.approver_key == me) {
            return Err(EngineError::FailedPrecondition(format!(
                "{} already approved escalation {id}; it needs {} distinct approvers",
                caller.ledger_name(),
                row.approvals_required
            )));
        }
        let by = caller.ledger_name();
        let micros = now.unix_micros();
        let mut s = effective(&row.state);
        let event = if approve {
            s.approvals += 1;
            if s.approvals >= row.approvals_required {
                s.state = EscalationState::Approved.as_str().to_owned();
                let ttl = self.oversight_settings().approval_ttl_micros;
                s.grant_expires_at = Some(micros.saturating_add(ttl));
                last::RESOLVED
            } else {
                last::APPROVAL
            }
        } else {
            s.state = EscalationState::Denied.as_str().to_owned();
            last::RESOLVED
        };
        if event == last::RESOLVED {
            s.resolved_by = Some(by.clone());
            s.resolution_reason = Some(reason.to_owned());
            s.resolved_at = Some(micros);
        }
        let (kind, creator, mfa) = (
            kind_of(caller),
            key_creator(caller),
            caller.principal().is_some_and(|p| p.mfa_verified),
        );
        let payload = json!({
            "event": "escalation_resolved",
            "by": by,
            "escalation_id": id,
            "decision_id": row.decision_id,
            "approve": approve,
            "state": s.state,
            "approvals": s.approvals,
            "approvals_required": row.approvals_required,
            "principal_kind": kind,
            "key_creator": creator,
            "mfa_verified": mfa,
            "reason": reason,
            "grant_expires_at": s.grant_expires_at.map(ts),
            "at": now,
        });
        let vote = SideRow {
            table: &tables::APPROVALS,
            values: vec![
                text(id),
                text(me),
                int(i64::from(approve)),
                text(&by),
                text(kind),
                opt_text(creator.as_deref()),
                int(i64::from(mfa)),
                int(micros),
                text(reason),
            ],
        };
        self.append_oversight(&payload, vec![vote, state_row(id, &s, event)])
            .await
    }

    /// Cancels the pending escalations of `principal_key` (its API key was revoked by
    /// `by`); returns how many.
    pub(crate) async fn cancel_escalations_of(
        &self,
        principal_key: &str,
        by: &str,
    ) -> Result<usize, EngineError> {
        let ids = store::on(&self.db).pending_of(principal_key).await?;
        let mut cancelled = 0;
        for id in ids {
            let Some(claim) = self.claim_escalation(&id).await? else {
                tracing::warn!(escalation_id = %id, "an escalation of a revoked key is claimed by another call; the sweeper expires it if it stays pending");
                continue;
            };
            if claim.row.state.state != EscalationState::Pending.as_str() {
                self.release_claim(&id, &claim.owner).await;
                continue;
            }
            let now = self.clock.now();
            let mut s = effective(&claim.row.state);
            s.state = EscalationState::Cancelled.as_str().to_owned();
            s.resolved_by = Some(by.to_owned());
            s.resolution_reason = Some("the asking API key was revoked".to_owned());
            s.resolved_at = Some(now.unix_micros());
            let payload = json!({
                "event": "escalation_cancelled",
                "by": by,
                "escalation_id": id,
                "decision_id": claim.row.decision_id,
                "reason": "the asking API key was revoked",
                "at": now,
            });
            match self
                .append_oversight(&payload, vec![state_row(&id, &s, last::CANCELLED)])
                .await
            {
                Ok(_) => cancelled += 1,
                Err(e) => {
                    self.release_claim(&id, &claim.owner).await;
                    return Err(e);
                }
            }
        }
        Ok(cancelled)
    }

    /// Path (a): the asking principal fetches an approved escalation whose grant is
    /// unused: a token for the original request is minted now and its claims kept, so
    /// later fetches get the same token. Returns the row as it is afterwards.
    pub(crate) async fn use_grant_by_fetch(
        &self,
        row: EscRow,
        by: &str,
    ) -> Result<EscRow, EngineError> {
        let now = self.clock.now();
        if !grants::grant_usable(&row, now) {
            return Ok(row);
        }
        let id = row.escalation_id.clone();
        let Some(claim) = self.claim_escalation(&id).await? else {
            return Ok(row);
        };
        if !grants::grant_usable(&claim.row, now) {
            self.release_claim(&id, &claim.owner).await;
            return Ok(claim.row);
        }
        let result = self.record_fetch(&claim, by).await;
        if result.is_err() {
            self.release_claim(&id, &claim.owner).await;
        }
        result?;
        store::on(&self.db)
            .escalation(&id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no escalation {id}")))
    }

    async fn record_fetch(&self, claim: &EscClaim, by: &str) -> Result<(), EngineError> {
        let row = &claim.row;
        let req: ActionRequest = serde_json::from_str(&row.request_json)
            .map_err(|_| corrupt(&row.escalation_id, "request"))?;
        let mut reservation = None;
        let mut refused = None;
        if let Some(llm) = &req.llm {
            let key = row.principal_name.strip_prefix("key:");
            match self.budget.authorize_for(llm, key).await {
                Ok(auth) => reservation = Some(auth.reservation_id),
                Err(e) => refused = Some(e.to_string()),
            }
        }
        let reservation_text = reservation.map(|r| r.to_string());
        let (claims, token_claims) = if refused.is_none() {
            let claims = self.grant_claims(row)?;
            let keys = self.key_ring();
            let token = lexecon_capability::mint(keys.active(), &claims)
                .map_err(|e| EngineError::Keys(e.to_string()))?;
            let kept = lexecon_capability::unsigned(&token)
                .map_err(|e| EngineError::Keys(format!("cannot keep the token's claims: {e}")))?;
            (Some(claims), Some(kept))
        } else {
            (None, None)
        };
        let used = GrantUse {
            by,
            decision_id: None,
            outcome: if refused.is_some() {
                Outcome::Denied
            } else {
                Outcome::Approved
            },
            token: claims.as_ref(),
            token_claims: token_claims.as_deref(),
            reservation_id: reservation_text.as_deref(),
        };
        let (kind, bytes, side) = self.grant_used_entry(claim, used)?;
        if let Err(e) = self.ledger.append_entry(kind, bytes, side).await {
            self.release_reservation(reservation).await;
            return Err(e.into());
        }
        if let Some(why) = refused {
            tracing::info!(escalation_id = %row.escalation_id, why, "a used grant was refused by the LLM budget");
        }
        Ok(())
    }

    /// The token of a grant used by fetching (path a), signed again from its kept
    /// claims once they match the `escalation_grant_used` entry; `None` when there is
    /// none or it expired.
    async fn kept_grant_token(&self, row: &EscRow) -> Result<Option<String>, EngineError> {
        let s = effective(&row.state);
        let (Some(kept), Some(idx)) = (s.token_claims.as_deref(), s.grant_idx) else {
            return Ok(None);
        };
        let mismatch = || {
            EngineError::Corrupt(format!(
                "the kept token of escalation {} does not match its ledger entry {idx}; not signing it",
                row.escalation_id
            ))
        };
        let mut claims = lexecon_capability::unsigned_claims(kept).map_err(|_| mismatch())?;
        if self.clock.now() >= claims.expires_at {
            return Ok(None);
        }
        let entry = self.ledger.entry(index_of(idx)).await?;
        let recorded = entry.as_ref().and_then(lexecon_ledger::Entry::payload_json);
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(recorded.as_ref()?, |v, k| v.get(*k))
                .cloned()
        };
        let is_oversight = entry
            .as_ref()
            .and_then(|e| e.decode_leaf().ok())
            .is_some_and(|leaf| leaf.kind == EntryKind::Oversight);
        let matches = is_oversight
            && field(&["event"]) == Some(json!("escalation_grant_used"))
            && field(&["escalation_id"]) == Some(json!(row.escalation_id))
            && field(&["token", "token_id"]) == serde_json::to_value(claims.token_id).ok()
            && field(&["token", "key_id"]) == serde_json::to_value(&claims.key_id).ok()
            && field(&["token", "expires_at"]) == serde_json::to_value(claims.expires_at).ok();
        if !matches {
            return Err(mismatch());
        }
        let keys = self.key_ring();
        keys.active().key_id().clone_into(&mut claims.key_id);
        let token = lexecon_capability::mint(keys.active(), &claims)
            .map_err(|e| EngineError::Keys(format!("kept token claims: {e}")))?;
        Ok(Some(token))
    }

    /// The state of an escalation for a retried Decide of the decision that created
    /// it, using its grant by this fetch when it can (path a): the state, and the token
    /// with its expiry once used this way.
    pub(crate) async fn escalation_for_replay(
        &self,
        escalation_id: &EscalationId,
        by: &str,
    ) -> Result<(EscalationState, Option<(String, Timestamp)>), EngineError> {
        let id = escalation_id.to_string();
        let Some(row) = store::on(&self.db).escalation(&id).await? else {
            return Err(EngineError::Corrupt(format!(
                "a stored decision names escalation {id}, which does not exist"
            )));
        };
        let row = self.use_grant_by_fetch(row, by).await?;
        let state =
            EscalationState::parse(&row.state.state).ok_or_else(|| corrupt(&id, "state"))?;
        let token = self.kept_grant_token(&row).await?;
        let expires = row.state.token_expires_at.map(ts);
        Ok((state, token.zip(expires)))
    }
}

fn approval_record(a: ApprovalRow) -> ApprovalRecord {
    ApprovalRecord {
        approve: a.approve,
        principal: a.approver,
        principal_kind: a.principal_kind,
        key_creator: a.key_creator,
        mfa_verified: a.mfa_verified,
        at: ts(a.at),
        reason: a.reason,
        ledger_index: index_of(a.idx),
    }
}

/// Refuses a resolution of an escalation that is not pending, or is past its deadline
/// (it expires; it is never resolved late).
fn pending_now(row: &EscRow, now: Timestamp) -> Result<(), EngineError> {
    let id = &row.escalation_id;
    if row.state.state != EscalationState::Pending.as_str() {
        return Err(EngineError::FailedPrecondition(format!(
            "escalation {id} is {}, not pending",
            row.state.state
        )));
    }
    if now.unix_micros() >= row.due_at {
        return Err(EngineError::FailedPrecondition(format!(
            "escalation {id} passed its deadline {} unresolved; it is expired and stays refused",
            ts(row.due_at)
        )));
    }
    Ok(())
}
