//! Accountability (`GetAccountability`), computed from ledger entries.
//!
//! The tables only locate entries: the decision index finds the decision's entry, the
//! oversight tables find the entries of its escalation and override, `engine_policies`
//! finds the `policy_loaded` entry of its policy. Every field of the answer is read from
//! the payloads of those entries, and each of their indexes is in `ledger_indexes`, so
//! an auditor can check the answer entry by entry with `GetEntry`.
//!
//! The levels (contract §6; docs/oversight.md):
//! - an override named in the decision's reasons (`override:<id>`) decided it:
//!   `HUMAN` / `FULL`, with the override's author;
//! - its escalation was approved (or the decision used the grant of one,
//!   `escalation:<id>`): `HYBRID` / `SUPERVISED` with one person, `SHARED` with two or
//!   more;
//! - its escalation was denied by a person: `HYBRID` / `SUPERVISED` (`SHARED` when an
//!   approval came before the denial);
//! - otherwise, including an escalation still pending, expired with nobody acting, or
//!   cancelled with its key: `AI_SYSTEM` / `AUTOMATED`. Votes cast on such an escalation
//!   are still listed in `resolvers`.

use std::collections::BTreeSet;

use lexecon_core::{DecisionId, EscalationId, OverrideId, Timestamp};
use lexecon_ledger::EntryKind;
use serde::Serialize;
use serde_json::Value;

use super::escalations::{ApprovalRecord, EscalationState};
use super::{index_of, store};
use crate::db::Database;
use crate::engine::{Caller, Engine, EngineError, ops};

/// Who made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMaker {
    /// The policy, risk and budget pipeline alone.
    AiSystem,
    /// A person, through an override.
    Human,
    /// The system escalated and people resolved it.
    Hybrid,
}

/// How responsibility for a decision is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponsibilityLevel {
    /// The policy alone decided.
    Automated,
    /// One person resolved the escalation.
    Supervised,
    /// Two or more people resolved it.
    Shared,
    /// A person's override decided.
    Full,
}

/// The policy a decision was made under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountablePolicy {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its canonical hash (lowercase hex, as the decision records it).
    pub hash: String,
    /// Who loaded it (`file` or a principal); empty when its load is not in the ledger.
    pub loaded_by: String,
    /// The `policy_loaded` entry; `None` when it is not in the ledger.
    pub ledger_index: Option<u64>,
}

/// Who was accountable for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accountability {
    /// The decision.
    pub decision_id: DecisionId,
    /// Its ledger entry.
    pub decision_index: u64,
    /// Who made it.
    pub decision_maker: DecisionMaker,
    /// How responsibility is shared.
    pub responsibility_level: ResponsibilityLevel,
    /// The principal whose request it was (`key:<name>`, `user:<name>`, ...).
    pub asking_principal: String,
    /// The policy in force.
    pub policy: AccountablePolicy,
    /// The people who approved or denied its escalation, in order.
    pub resolvers: Vec<ApprovalRecord>,
    /// The author of the override that decided it.
    pub override_author: Option<String>,
    /// That override.
    pub override_id: Option<OverrideId>,
    /// The escalation it created, or whose grant it used.
    pub escalation_id: Option<EscalationId>,
    /// The state of that escalation.
    pub escalation_state: Option<EscalationState>,
    /// Every ledger entry involved, ascending.
    pub ledger_indexes: Vec<u64>,
}

fn corrupt(idx: u64, what: &str) -> EngineError {
    EngineError::Corrupt(format!("ledger entry {idx}: {what}"))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The id after `prefix:` in the first reason that has it.
fn reason_id(payload: &Value, prefix: &str) -> Option<String> {
    payload
        .get("reasons")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|r| r.strip_prefix(prefix))
        .map(str::to_owned)
}

/// The ledger index of `decision_id`'s entry, from the decision index. A decision id's
/// ULID time is its `decided_at` to the millisecond, so the time index narrows the
/// search to one millisecond.
async fn decision_index(db: &Database, id: &DecisionId) -> Result<Option<u64>, EngineError> {
    const SQL: &str = "SELECT idx FROM engine_decision_index \
                       WHERE decided_at >= $1 AND decided_at <= $2 AND decision_id = $3";
    let micros = id.timestamp().unix_micros();
    let low = micros - micros.rem_euclid(1000);
    let high = low + 999;
    let text = id.to_string();
    let row: Option<(i64,)> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_as(SQL)
                .bind(low)
                .bind(high)
                .bind(&text)
                .fetch_optional(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as(SQL)
                .bind(low)
                .bind(high)
                .bind(&text)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(row.and_then(|(idx,)| u64::try_from(idx).ok()))
}

/// The `policy_loaded` entry of the newest load of `hash` before `before`.
async fn policy_index(db: &Database, hash: &[u8], before: u64) -> Result<Option<u64>, EngineError> {
    const SQL: &str = "SELECT ledger_index FROM engine_policies \
                       WHERE hash = $1 AND ledger_index < $2 ORDER BY ledger_index DESC LIMIT 1";
    let row: Option<(i64,)> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_as(SQL)
                .bind(hash)
                .bind(i64_of(before))
                .fetch_optional(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as(SQL)
                .bind(hash)
                .bind(i64_of(before))
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(row.and_then(|(idx,)| u64::try_from(idx).ok()))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Entries read while answering, with their indexes kept for `ledger_indexes`.
struct Reader<'a> {
    engine: &'a Engine,
    seen: BTreeSet<u64>,
}

impl Reader<'_> {
    /// The payload of entry `idx`, which must be of `kind` and carry `key == value`.
    async fn payload(
        &mut self,
        idx: u64,
        kind: EntryKind,
        key: &str,
        value: &str,
    ) -> Result<Value, EngineError> {
        let entry = self
            .engine
            .ledger
            .entry(idx)
            .await?
            .ok_or_else(|| corrupt(idx, "a table points at it, but it does not exist"))?;
        let leaf = entry
            .decode_leaf()
            .map_err(|e| corrupt(idx, &e.to_string()))?;
        if leaf.kind != kind {
            return Err(corrupt(
                idx,
                &format!("expected a {kind} entry, found {}", leaf.kind),
            ));
        }
        if let Some(t) = &entry.tombstone {
            // An erasure (GDPR Art. 17) is a lawful state, not damage: say what was
            // erased and by whom, and that the facts read from it are gone.
            return Err(EngineError::FailedPrecondition(format!(
                "ledger entry {idx} ({kind}) was redacted by {} ({}): the facts accountability \
                 reads from it were erased",
                t.by, t.reason
            )));
        }
        let payload = entry
            .payload_json()
            .ok_or_else(|| corrupt(idx, "its payload is not JSON"))?;
        if str_at(&payload, key) != Some(value) {
            return Err(corrupt(idx, &format!("its {key} is not {value}")));
        }
        self.seen.insert(idx);
        Ok(payload)
    }
}

/// What the entries of one escalation say.
struct EscalationFacts {
    state: EscalationState,
    resolvers: Vec<ApprovalRecord>,
}

impl Engine {
    /// Who was accountable for decision `decision_id`, read from its ledger entries.
    pub async fn accountability(
        &self,
        caller: &Caller,
        decision_id: &str,
    ) -> Result<Accountability, EngineError> {
        self.authorize(caller, ops::GET_ACCOUNTABILITY)?;
        let id: DecisionId = decision_id.parse().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "decision_id {decision_id:?} is not a decision id (dec_ followed by 26 characters)"
            ))
        })?;
        let text = id.to_string();
        let idx = decision_index(&self.db, &id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no decision {text}")))?;
        let mut r = Reader {
            engine: self,
            seen: BTreeSet::new(),
        };
        let decision = r
            .payload(idx, EntryKind::Decision, "decision_id", &text)
            .await?;
        let asking_principal = str_at(&decision, "principal")
            .unwrap_or_default()
            .to_owned();
        let policy = self.accountable_policy(&mut r, &decision, idx).await?;

        let override_id = reason_id(&decision, "override:");
        let created = decision
            .get("escalation")
            .and_then(|e| str_at(e, "escalation_id"))
            .or_else(|| str_at(&decision, "escalation_id"))
            .map(str::to_owned);
        let granted = reason_id(&decision, "escalation:")
            .or_else(|| str_at(&decision, "grant_escalation_id").map(str::to_owned));
        let escalation_id = created.or(granted);

        let (mut maker, mut level) = (DecisionMaker::AiSystem, ResponsibilityLevel::Automated);
        let mut override_author = None;
        if let Some(o) = &override_id {
            override_author = Some(self.override_author(&mut r, o).await?);
            (maker, level) = (DecisionMaker::Human, ResponsibilityLevel::Full);
        }
        let mut escalation_state = None;
        let mut resolvers = Vec::new();
        if let Some(e) = &escalation_id {
            let facts = self.escalation_facts(&mut r, e).await?;
            if override_id.is_none() {
                let people: BTreeSet<&str> = facts
                    .resolvers
                    .iter()
                    .map(|a| a.principal.as_str())
                    .collect();
                let decided_by_people = matches!(
                    facts.state,
                    EscalationState::Approved | EscalationState::Denied
                );
                if decided_by_people {
                    maker = DecisionMaker::Hybrid;
                    level = if people.len() >= 2 {
                        ResponsibilityLevel::Shared
                    } else {
                        ResponsibilityLevel::Supervised
                    };
                }
            }
            escalation_state = Some(facts.state);
            resolvers = facts.resolvers;
        }
        Ok(Accountability {
            decision_id: id,
            decision_index: idx,
            decision_maker: maker,
            responsibility_level: level,
            asking_principal,
            policy,
            resolvers,
            override_author,
            override_id: override_id
                .map(|o| {
                    o.parse()
                        .map_err(|_| corrupt(idx, "an override reason names no override id"))
                })
                .transpose()?,
            escalation_id: escalation_id
                .map(|e| {
                    e.parse()
                        .map_err(|_| corrupt(idx, "it names no valid escalation id"))
                })
                .transpose()?,
            escalation_state,
            ledger_indexes: r.seen.into_iter().collect(),
        })
    }

    async fn accountable_policy(
        &self,
        r: &mut Reader<'_>,
        decision: &Value,
        idx: u64,
    ) -> Result<AccountablePolicy, EngineError> {
        let p = decision.get("policy").cloned().unwrap_or(Value::Null);
        let field = |k: &str| str_at(&p, k).unwrap_or_default().to_owned();
        let mut policy = AccountablePolicy {
            name: field("name"),
            version: field("version"),
            hash: field("hash"),
            loaded_by: String::new(),
            ledger_index: None,
        };
        let Some(bytes) = unhex(&policy.hash) else {
            return Ok(policy);
        };
        if let Some(at) = policy_index(&self.db, &bytes, idx).await? {
            let loaded = r
                .payload(at, EntryKind::PolicyLoaded, "hash", &policy.hash)
                .await?;
            str_at(&loaded, "loaded_by")
                .unwrap_or_default()
                .clone_into(&mut policy.loaded_by);
            policy.ledger_index = Some(at);
        }
        Ok(policy)
    }

    async fn override_author(
        &self,
        r: &mut Reader<'_>,
        override_id: &str,
    ) -> Result<String, EngineError> {
        let row = store::on(&self.db)
            .override_row(override_id)
            .await?
            .ok_or_else(|| {
                EngineError::Corrupt(format!(
                    "a decision names override {override_id}, which does not exist"
                ))
            })?;
        let created = r
            .payload(
                index_of(row.idx),
                EntryKind::Oversight,
                "override_id",
                override_id,
            )
            .await?;
        Ok(str_at(&created, "by").unwrap_or_default().to_owned())
    }

    async fn escalation_facts(
        &self,
        r: &mut Reader<'_>,
        escalation_id: &str,
    ) -> Result<EscalationFacts, EngineError> {
        let store = store::on(&self.db);
        let row = store.escalation(escalation_id).await?.ok_or_else(|| {
            EngineError::Corrupt(format!(
                "a decision names escalation {escalation_id}, which does not exist"
            ))
        })?;
        let key = "escalation_id";
        r.payload(index_of(row.idx), EntryKind::Oversight, key, escalation_id)
            .await?;
        let mut resolvers = Vec::new();
        for a in store.approvals(escalation_id).await? {
            let idx = index_of(a.idx);
            let p = r
                .payload(idx, EntryKind::Oversight, key, escalation_id)
                .await?;
            let at = p
                .get("at")
                .cloned()
                .and_then(|v| serde_json::from_value::<Timestamp>(v).ok())
                .ok_or_else(|| corrupt(idx, "its time is missing"))?;
            resolvers.push(ApprovalRecord {
                approve: p.get("approve").and_then(Value::as_bool).unwrap_or(false),
                principal: str_at(&p, "by").unwrap_or_default().to_owned(),
                principal_kind: str_at(&p, "principal_kind").unwrap_or_default().to_owned(),
                key_creator: str_at(&p, "key_creator").map(str::to_owned),
                mfa_verified: p
                    .get("mfa_verified")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                at,
                reason: str_at(&p, "reason").unwrap_or_default().to_owned(),
                ledger_index: idx,
            });
        }
        let s = super::grants::effective(&row.state);
        for idx in [s.resolved_idx, s.warned_idx, s.grant_idx]
            .into_iter()
            .flatten()
        {
            r.payload(index_of(idx), EntryKind::Oversight, key, escalation_id)
                .await?;
        }
        let state = EscalationState::parse(&s.state).ok_or_else(|| {
            EngineError::Corrupt(format!(
                "escalation {escalation_id} has an unreadable state"
            ))
        })?;
        Ok(EscalationFacts { state, resolvers })
    }
}
