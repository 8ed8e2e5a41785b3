//! The engine side of the MCP gateway (contract §11): recording the completion of a
//! forwarded tool call (`DecisionService/RecordCompletion`) and checking which tools
//! the active policy always denies an actor (`DecisionService/CheckTools`, for
//! `tools/list`).
//!
//! A completion is one `mcp_completion` ledger entry with a side row in
//! `engine_mcp_completions` (migration 4010), written in the entry's transaction. The
//! row's `decision_id` is UNIQUE: a decision has at most one completion row, and
//! `QueryDecisions` reads `completed` from it. Decide pays nothing for this: the table
//! is read only by completions and decision queries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use lexecon_core::{ActionRequest, DataClass, DecisionId, PolicyMode};
use lexecon_ledger::{EntryKind, SideRow, SideTable, SideType, SideValue};
use serde_json::json;

use super::payload::hex;
use super::{Caller, Engine, EngineError, journal};
use crate::db::Database;

const RECORD_COMPLETION: &str = "/lexecon.v1.DecisionService/RecordCompletion";
const CHECK_TOOLS: &str = "/lexecon.v1.DecisionService/CheckTools";

/// The most probes one `check_tools` call takes.
pub const MAX_TOOL_PROBES: usize = 1000;

/// The longest `arguments_json` or `result_json` a completion records, in bytes.
pub const MAX_COMPLETION_JSON_BYTES: usize = 1 << 20;

/// How long a completion waits for another call recording the same decision's
/// completion in this process before answering UNAVAILABLE.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `engine_mcp_completions`; the store prepends `idx`. This process never sends a
/// second row for a decision (see [`Engine::record_completion`]); a row that raced in
/// from another replica is dropped by the UNIQUE (`ON CONFLICT DO NOTHING`, so the
/// batch it came with, other callers' entries included, still commits) and the first
/// row stays the decision's completion.
pub(crate) static MCP_COMPLETIONS: SideTable = SideTable {
    name: "engine_mcp_completions",
    columns: &[
        ("decision_id", SideType::Text),
        ("is_error", SideType::Int),
        ("duration_us", SideType::Int),
        ("result_sha256", SideType::Bytes),
        ("payload_json", SideType::Text),
    ],
    on_conflict: "ON CONFLICT DO NOTHING",
};

/// The completion of a forwarded tool call, as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionInput {
    /// The APPROVED decision that let the call through (`dec_` + ULID).
    pub decision_id: String,
    /// Whether the call ended in an error (a JSON-RPC error, or a result with `isError`).
    pub is_error: bool,
    /// How long the upstream took, in microseconds.
    pub duration_us: u64,
    /// SHA-256 of the result's canonical JSON.
    pub result_sha256: [u8; 32],
    /// The call's arguments as JSON, only when `mcp.record_payloads` is on.
    pub arguments_json: Option<String>,
    /// The result as JSON, only when `mcp.record_payloads` is on.
    pub result_json: Option<String>,
}

/// A recorded completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionRecord {
    /// The index of the decision's `mcp_completion` entry.
    pub ledger_index: u64,
    /// False when the decision's completion had been recorded already (this call wrote
    /// nothing, and `ledger_index` is the first record's).
    pub newly_recorded: bool,
}

/// One tool as the gateway would ask for it (contract §11, "tools/list").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolProbe {
    /// The tool, `NAME/TOOL`.
    pub tool: String,
    /// The action the gateway would send (`call:TOOL` unless the config maps it).
    pub proposed_action: String,
    /// The data classes the gateway would send.
    pub data_classes: Vec<String>,
    /// The risk level it would send, 0 for none, else 1..=5.
    pub risk_level: u8,
    /// The mode it would ask for.
    pub policy_mode: Option<PolicyMode>,
    /// The context every call would carry (`mcp.server`); any other key may vary.
    pub context: BTreeMap<String, String>,
}

/// Decision ids whose completion a call of this process is recording now.
static COMPLETING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Removes its decision id from [`COMPLETING`] when dropped.
struct Claim(String);

impl Claim {
    fn take(decision_id: &str) -> Option<Claim> {
        let mut set = COMPLETING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.get_or_insert_with(HashSet::new)
            .insert(decision_id.to_owned())
            .then(|| Claim(decision_id.to_owned()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = COMPLETING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(set) = set.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// What the decision index says of one decision.
struct IndexedDecision {
    principal: Option<String>,
    outcome: i64,
    escalation_id: Option<String>,
}

fn i64_of(v: u64, field: &str) -> Result<i64, EngineError> {
    i64::try_from(v).map_err(|_| {
        EngineError::InvalidArgument(format!("{field}: {v} is too large (at most {})", i64::MAX))
    })
}

fn u64_of(v: i64) -> Result<u64, EngineError> {
    u64::try_from(v)
        .map_err(|_| EngineError::Corrupt(format!("engine_mcp_completions holds idx {v}")))
}

/// Parses an optional JSON text of the completion.
fn json_field(text: Option<&str>, field: &str) -> Result<Option<serde_json::Value>, EngineError> {
    let Some(text) = text else {
        return Ok(None);
    };
    if text.len() > MAX_COMPLETION_JSON_BYTES {
        return Err(EngineError::InvalidArgument(format!(
            "{field}: {} bytes; at most {MAX_COMPLETION_JSON_BYTES} are recorded (send its \
             SHA-256 only, as result_sha256 does)",
            text.len()
        )));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| EngineError::InvalidArgument(format!("{field}: not JSON: {e}")))
}

impl Engine {
    /// Records the completion of a tool call the gateway forwarded on `decision_id`
    /// (contract §11, "Audit"): one `mcp_completion` ledger entry linked to the
    /// decision. The decision must exist, be APPROVED and have been made by the same
    /// principal as `caller` (as the ledger names them: `key:<name>`, `local:<user>`);
    /// another principal's decision is NOT_FOUND, like one that does not exist. A
    /// decision's completion is recorded once: a second call writes nothing and answers
    /// the first entry's index with `newly_recorded = false`.
    pub async fn record_completion(
        &self,
        caller: &Caller,
        input: CompletionInput,
    ) -> Result<CompletionRecord, EngineError> {
        self.authorize(caller, RECORD_COMPLETION)?;
        let id: DecisionId = input.decision_id.parse().map_err(|e| {
            EngineError::InvalidArgument(format!("decision_id: {e} (expected dec_ + a ULID)"))
        })?;
        let decision_id = id.to_string();
        let duration_us = i64_of(input.duration_us, "duration_us")?;
        let arguments = json_field(input.arguments_json.as_deref(), "arguments_json")?;
        let result = json_field(input.result_json.as_deref(), "result_json")?;

        let by = caller.ledger_name();
        let from = id.timestamp().unix_micros();
        let not_found = || {
            EngineError::NotFound(format!(
                "decision_id: no decision {decision_id} made by {by}; a completion is \
                 recorded by the principal whose Decide approved the call"
            ))
        };
        let decision = indexed_decision(&self.db, &decision_id, from, from + 999)
            .await?
            .ok_or_else(not_found)?;
        if decision.principal.as_deref() != Some(by.as_str()) {
            return Err(not_found());
        }
        let approved = decision.outcome == journal::outcome_code(lexecon_core::Outcome::Approved)
            || (decision.outcome == journal::outcome_code(lexecon_core::Outcome::Escalated)
                && match &decision.escalation_id {
                    Some(esc) => grant_fetched(&self.db, esc).await?,
                    None => false,
                });
        if !approved {
            let outcome = journal::outcome_of(decision.outcome)?;
            return Err(EngineError::FailedPrecondition(format!(
                "decision_id: decision {decision_id} is {outcome}; only an approved decision \
                 (or an escalated one whose approved grant its principal fetched) lets a call \
                 through, so only it has a completion"
            )));
        }

        // One recording per decision in this process; others wait for it and answer
        // what it wrote.
        let started = std::time::Instant::now();
        let claim = loop {
            if let Some(idx) = completion_index(&self.db, &decision_id).await? {
                return Ok(CompletionRecord {
                    ledger_index: idx,
                    newly_recorded: false,
                });
            }
            if let Some(claim) = Claim::take(&decision_id) {
                break claim;
            }
            if started.elapsed() > CLAIM_WAIT {
                return Err(EngineError::Unavailable(format!(
                    "decision_id: the completion of {decision_id} is being recorded by another \
                     call; retry"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        if let Some(idx) = completion_index(&self.db, &decision_id).await? {
            return Ok(CompletionRecord {
                ledger_index: idx,
                newly_recorded: false,
            });
        }

        let mut payload = json!({
            "decision_id": decision_id,
            "is_error": input.is_error,
            "duration_us": input.duration_us,
            "result_sha256": hex(&input.result_sha256),
            "by": by,
        });
        if let Some(obj) = payload.as_object_mut() {
            if let Some(arguments) = arguments {
                obj.insert("arguments".to_owned(), arguments);
            }
            if let Some(result) = result {
                obj.insert("result".to_owned(), result);
            }
        }
        let payload = serde_json::to_vec(&payload)
            .map_err(|e| EngineError::InvalidArgument(format!("completion payload: {e}")))?;
        let payload_json = String::from_utf8_lossy(&payload).into_owned();
        let row = SideRow {
            table: &MCP_COMPLETIONS,
            values: vec![
                SideValue::Text(decision_id.clone()),
                SideValue::Int(i64::from(input.is_error)),
                SideValue::Int(duration_us),
                SideValue::Bytes(input.result_sha256.to_vec()),
                SideValue::Text(payload_json),
            ],
        };
        let receipt = self
            .ledger
            .append_entry(EntryKind::McpCompletion, payload, vec![row])
            .await?;
        drop(claim);
        // Another replica may have recorded the same decision in between: its row wins
        // (the UNIQUE kept ours out), and this call reports that one.
        match completion_index(&self.db, &decision_id).await? {
            Some(idx) if idx != receipt.index => Ok(CompletionRecord {
                ledger_index: idx,
                newly_recorded: false,
            }),
            _ => Ok(CompletionRecord {
                ledger_index: receipt.index,
                newly_recorded: true,
            }),
        }
    }

    /// For each probe, whether the active policy denies it for `actor` whatever context
    /// a call adds to the probe's (contract §11, "tools/list";
    /// [`lexecon_policy::CompiledPolicy::always_denies`] has the exact rule). The actor
    /// is checked against the caller's binding exactly as Decide checks it (an empty
    /// actor from a key bound to one literal actor means that actor). Halts are not
    /// considered: they do not hide tools. At most [`MAX_TOOL_PROBES`] probes.
    pub async fn check_tools(
        &self,
        caller: &Caller,
        actor: &str,
        probes: &[ToolProbe],
    ) -> Result<Vec<bool>, EngineError> {
        self.authorize(caller, CHECK_TOOLS)?;
        if probes.len() > MAX_TOOL_PROBES {
            return Err(EngineError::InvalidArgument(format!(
                "tools: {} probes; at most {MAX_TOOL_PROBES} per call (split the list)",
                probes.len()
            )));
        }
        let mut actor = actor.to_owned();
        self.resolve_actor(caller, &mut actor);
        if actor.is_empty()
            && let Some(binding) = caller.principal().and_then(|p| p.actors.as_ref())
        {
            return Err(EngineError::InvalidArgument(format!(
                "actor must not be empty: this key speaks for {}, so name the actor",
                binding.patterns().join(", ")
            )));
        }
        lexecon_core::Actor::new(actor.as_str()).map_err(lexecon_core::RequestError::from)?;
        let requests = probes
            .iter()
            .enumerate()
            .map(|(i, p)| probe_request(&actor, p).map_err(|e| prefixed(i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        self.speaks_for(caller, &actor).await?;
        let policy = self.policy.current();
        Ok(requests
            .iter()
            .map(|req| policy.compiled.always_denies(req))
            .collect())
    }

    /// The completion ledger index of each of `decision_ids` that has one.
    pub(crate) async fn completion_indexes(
        &self,
        decision_ids: &[&str],
    ) -> Result<HashMap<String, u64>, EngineError> {
        let mut out = HashMap::with_capacity(decision_ids.len());
        for chunk in decision_ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT decision_id, idx FROM engine_mcp_completions WHERE decision_id IN ({})",
                marks.join(", ")
            );
            let rows: Vec<(String, i64)> = match &self.db {
                Database::Sqlite(pool) => {
                    let mut q = sqlx::query_as(&sql);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.fetch_all(pool).await?
                }
                Database::Postgres(pool) => {
                    let mut q = sqlx::query_as(&sql);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.fetch_all(pool).await?
                }
            };
            for (id, idx) in rows {
                out.insert(id, u64_of(idx)?);
            }
        }
        Ok(out)
    }
}

/// Names the probe in a field error: `tools[3].tool ...`.
fn prefixed(i: usize, e: EngineError) -> EngineError {
    match e {
        EngineError::InvalidArgument(m) => EngineError::InvalidArgument(format!("tools[{i}].{m}")),
        other => other,
    }
}

/// The request a probe stands for, validated like a Decide's.
fn probe_request(actor: &str, p: &ToolProbe) -> Result<ActionRequest, EngineError> {
    let mut req = ActionRequest::new(actor, &p.proposed_action)?;
    req = req.with_tool(&p.tool)?;
    for class in &p.data_classes {
        req.data_classes
            .push(DataClass::new(class.as_str()).map_err(lexecon_core::RequestError::from)?);
    }
    req.risk_level = ActionRequest::parse_risk_level(u32::from(p.risk_level))?;
    req.mode = p.policy_mode;
    req.context.clone_from(&p.context);
    req.validate()?;
    Ok(req)
}

/// The index row of `decision_id`, decided within `[from, to]` (Unix microseconds; its
/// ULID fixes the millisecond, so the time index finds it).
async fn indexed_decision(
    db: &Database,
    decision_id: &str,
    from: i64,
    to: i64,
) -> Result<Option<IndexedDecision>, EngineError> {
    const SQL: &str = "SELECT principal, CAST(outcome AS BIGINT), escalation_id FROM engine_decision_index \
                       WHERE decided_at >= $1 AND decided_at <= $2 AND decision_id = $3 LIMIT 1";
    let row: Option<(Option<String>, i64, Option<String>)> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_as(SQL)
                .bind(from)
                .bind(to)
                .bind(decision_id)
                .fetch_optional(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as(SQL)
                .bind(from)
                .bind(to)
                .bind(decision_id)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(
        row.map(|(principal, outcome, escalation_id)| IndexedDecision {
            principal,
            outcome,
            escalation_id,
        }),
    )
}

/// Whether escalation `escalation_id`'s grant was used by its principal fetching the
/// token of the escalated decision itself (contract §6 "After approval" (a)): then that
/// decision let a call through (the MCP gateway waiting for an approval forwards it).
async fn grant_fetched(db: &Database, escalation_id: &str) -> Result<bool, EngineError> {
    const SQL: &str = "SELECT COUNT(*) FROM engine_escalation_state WHERE escalation_id = $1 \
                       AND token_claims IS NOT NULL AND grant_decision_id IS NULL";
    let n: i64 = match db {
        Database::Sqlite(pool) => {
            sqlx::query_scalar(SQL)
                .bind(escalation_id)
                .fetch_one(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar(SQL)
                .bind(escalation_id)
                .fetch_one(pool)
                .await?
        }
    };
    Ok(n > 0)
}

/// The ledger index of `decision_id`'s completion, if recorded.
async fn completion_index(db: &Database, decision_id: &str) -> Result<Option<u64>, EngineError> {
    const SQL: &str = "SELECT idx FROM engine_mcp_completions WHERE decision_id = $1";
    let row: Option<(i64,)> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_as(SQL)
                .bind(decision_id)
                .fetch_optional(pool)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as(SQL)
                .bind(decision_id)
                .fetch_optional(pool)
                .await?
        }
    };
    row.map(|(idx,)| u64_of(idx)).transpose()
}

#[cfg(test)]
mod tests;
