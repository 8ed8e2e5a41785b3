//! `QueryDecisions`: decisions from the decision index, newest first.
//!
//! The cursor is the last `idx` a page returned; the next page reads `idx < cursor`.
//! Index rows commit in the transaction of their leaf and batches commit in index order
//! (the ledger's head lock), so no row with a lower `idx` appears after a page was read:
//! paging while decisions arrive returns every matching decision exactly once, and
//! decisions newer than the first page are left to a new query.
//!
//! Outcome, time, risk, policy hash and a literal actor are SQL predicates (the three
//! secondary indexes serve them); other globs are matched here with
//! [`lexecon_core::Glob`], so one SQL text serves both databases. A query reads at most
//! [`MAX_SCAN_ROWS`] rows per page: a page cut short carries a token.

use lexecon_core::glob::Alphabet;
use lexecon_core::{Glob, Outcome, Timestamp};

use super::super::page::{Page, decode_cursor, encode_cursor, page_size};
use super::super::{Caller, Engine, EngineError, journal, ops};
use super::store::{IndexFilter, StoredRow};

/// The most index rows one page reads before it answers with what it found.
pub const MAX_SCAN_ROWS: usize = 10_000;

/// Which decisions (contract §7). Empty globs match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionQuery {
    /// Full-match glob over actors.
    pub actor: String,
    /// Full-match glob over proposed actions.
    pub action: String,
    /// Full-match glob over tools (a decision without a tool matches only `*` or empty).
    pub tool: String,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Decided at or after.
    pub since: Option<Timestamp>,
    /// Decided before.
    pub until: Option<Timestamp>,
    /// Risk score at least this (0-100).
    pub min_risk_score: u32,
    /// Decided under the policy with this SHA-256 (32 bytes; empty = any).
    pub policy_hash: Vec<u8>,
    /// At most this many (0 = 100, at most 1000).
    pub page_size: u32,
    /// The previous page's `next_page_token`.
    pub page_token: String,
}

/// One decision as the index holds it. A redacted decision keeps its id, time, outcome
/// and ledger index; every other field is withheld (empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DecisionRecord {
    /// `dec_` + ULID.
    pub decision_id: String,
    /// When it was decided.
    pub decided_at: Timestamp,
    /// Who asked (`key:<name>`, `user:<name>`, ...).
    pub principal: String,
    /// The actor.
    pub actor: String,
    /// The proposed action.
    pub proposed_action: String,
    /// The tool (empty when none).
    pub tool: String,
    /// The outcome.
    pub outcome: Outcome,
    /// The risk score.
    pub risk_score: u8,
    /// The deciding relations or limits.
    pub reasons: Vec<String>,
    /// The deciding policy's SHA-256 (empty when withheld).
    #[serde(serialize_with = "hex_bytes")]
    pub policy_hash: Vec<u8>,
    /// The escalation it created or used.
    pub escalation_id: String,
    /// The override that decided it.
    pub override_id: String,
    /// Its ledger entry.
    pub ledger_index: u64,
    /// Whether the entry's payload was redacted.
    pub redacted: bool,
    /// Whether the completion of the tool call it let through is recorded (an
    /// `mcp_completion` entry, contract §11).
    pub completed: bool,
    /// The completion's ledger index, when `completed`.
    pub completion_ledger_index: Option<u64>,
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::super::payload::hex(b))
}

/// A checked query.
pub(crate) struct Compiled {
    pub(crate) actor: Option<Glob>,
    pub(crate) action: Option<Glob>,
    pub(crate) tool: Option<Glob>,
    pub(crate) filter: IndexFilter,
}

impl Compiled {
    /// Whether a row the SQL returned matches the globs (redacted rows match only
    /// filters on what they keep: time and outcome).
    pub(crate) fn matches(&self, row: &StoredRow) -> bool {
        if row.redacted {
            return self.actor.is_none()
                && self.action.is_none()
                && self.tool.is_none()
                && self.filter.min_risk.is_none()
                && self.filter.policy_hash.is_none();
        }
        let m = |g: &Option<Glob>, v: &Option<String>| {
            g.as_ref()
                .is_none_or(|g| v.as_deref().is_some_and(|v| g.matches(v)))
        };
        m(&self.actor, &row.actor) && m(&self.action, &row.action) && {
            // A decision without a tool matches `*` (any tool, or none).
            match (&self.tool, &row.tool) {
                (None, _) => true,
                (Some(g), Some(t)) => g.matches(t),
                (Some(g), None) => g.as_str() == "*",
            }
        }
    }
}

/// Compiles the filters shared by queries and exports; errors name the field.
pub(crate) fn compile(
    actor: &str,
    action: &str,
    tool: &str,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<Compiled, EngineError> {
    let glob = |pattern: &str, field: &'static str| -> Result<Option<Glob>, EngineError> {
        if pattern.is_empty() {
            return Ok(None);
        }
        Glob::for_field(pattern, Alphabet::Name(field))
            .map(Some)
            .map_err(|e| EngineError::InvalidArgument(format!("{field}: {e}")))
    };
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(EngineError::InvalidArgument(format!(
            "since: {s} is after until {u}"
        )));
    }
    let actor = glob(actor, "actor")?;
    let mut filter = IndexFilter {
        since: since.map(Timestamp::unix_micros),
        until: until.map(Timestamp::unix_micros),
        ..IndexFilter::default()
    };
    // A literal actor is an equality on the (actor, idx) index.
    if let Some(g) = &actor
        && g.is_literal()
    {
        filter.actor = Some(g.as_str().to_owned());
    }
    Ok(Compiled {
        actor,
        action: glob(action, "action")?,
        tool: glob(tool, "tool")?,
        filter,
    })
}

/// The record of a stored row.
pub(crate) fn record_of(row: StoredRow) -> Result<DecisionRecord, EngineError> {
    let outcome = journal::outcome_of(row.outcome)?;
    let ledger_index = u64::try_from(row.idx)
        .map_err(|_| EngineError::Corrupt(format!("decision index idx {}", row.idx)))?;
    let decided_at = Timestamp::from_unix_micros(row.decided_at);
    if row.redacted {
        return Ok(DecisionRecord {
            decision_id: row.decision_id,
            decided_at,
            principal: String::new(),
            actor: String::new(),
            proposed_action: String::new(),
            tool: String::new(),
            outcome,
            risk_score: 0,
            reasons: Vec::new(),
            policy_hash: Vec::new(),
            escalation_id: String::new(),
            override_id: String::new(),
            ledger_index,
            redacted: true,
            completed: false,
            completion_ledger_index: None,
        });
    }
    let reasons = match &row.reasons {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            EngineError::Corrupt(format!(
                "decision index row {}: reasons are not a JSON list: {e}",
                row.idx
            ))
        })?,
        None => Vec::new(),
    };
    Ok(DecisionRecord {
        decision_id: row.decision_id,
        decided_at,
        principal: row.principal.unwrap_or_default(),
        actor: row.actor.unwrap_or_default(),
        proposed_action: row.action.unwrap_or_default(),
        tool: row.tool.unwrap_or_default(),
        outcome,
        risk_score: row
            .risk_score
            .and_then(|s| u8::try_from(s).ok())
            .unwrap_or(0),
        reasons,
        policy_hash: row.policy_hash.unwrap_or_default(),
        escalation_id: row.escalation_id.unwrap_or_default(),
        override_id: row.override_id.unwrap_or_default(),
        ledger_index,
        redacted: false,
        completed: false,
        completion_ledger_index: None,
    })
}

impl Engine {
    /// Decisions matching `query`, newest first, a page at a time (contract §7).
    pub async fn query_decisions(
        &self,
        caller: &Caller,
        query: DecisionQuery,
    ) -> Result<Page<DecisionRecord>, EngineError> {
        self.authorize(caller, ops::QUERY_DECISIONS)?;
        let page = page_size(query.page_size, "page_size")?;
        let cursor = decode_cursor(&query.page_token, "page_token")?;
        let mut compiled = compile(
            &query.actor,
            &query.action,
            &query.tool,
            query.since,
            query.until,
        )?;
        if query.min_risk_score > 100 {
            return Err(EngineError::InvalidArgument(format!(
                "min_risk_score: {} is above 100, the highest risk score",
                query.min_risk_score
            )));
        }
        if query.min_risk_score > 0 {
            compiled.filter.min_risk = Some(i64::from(query.min_risk_score));
        }
        if !query.policy_hash.is_empty() {
            if query.policy_hash.len() != 32 {
                return Err(EngineError::InvalidArgument(format!(
                    "policy_hash: {} bytes; a policy hash is 32 bytes (SHA-256)",
                    query.policy_hash.len()
                )));
            }
            compiled.filter.policy_hash = Some(query.policy_hash.clone());
        }
        compiled.filter.outcome = query.outcome.map(journal::outcome_code);
        self.decision_index_ready().await?;

        let store = super::store::on(&self.db);
        let batch = (page * 4).clamp(64, MAX_SCAN_ROWS);
        let mut before = match cursor {
            Some(c) => Some(
                i64::try_from(c)
                    .map_err(|_| EngineError::InvalidArgument("page_token: out of range".into()))?,
            ),
            None => None,
        };
        let mut items = Vec::with_capacity(page);
        let mut scanned = 0usize;
        loop {
            compiled.filter.before = before;
            compiled.filter.limit = i64::try_from(batch).unwrap_or(i64::MAX);
            let rows = store.index_rows(&compiled.filter).await?;
            let fetched = rows.len();
            for row in rows {
                scanned += 1;
                before = Some(row.idx);
                if !compiled.matches(&row) {
                    continue;
                }
                items.push(record_of(row)?);
                if items.len() == page {
                    self.fill_completions(&mut items).await?;
                    return Ok(Page {
                        items,
                        next_page_token: before.map_or_else(String::new, |b| {
                            encode_cursor(u64::try_from(b).unwrap_or(0))
                        }),
                    });
                }
            }
            if fetched < batch {
                self.fill_completions(&mut items).await?;
                return Ok(Page {
                    items,
                    next_page_token: String::new(),
                });
            }
            if scanned >= MAX_SCAN_ROWS {
                // Cut short: the caller continues below the last row read.
                self.fill_completions(&mut items).await?;
                return Ok(Page {
                    items,
                    next_page_token: before.map_or_else(String::new, |b| {
                        encode_cursor(u64::try_from(b).unwrap_or(0))
                    }),
                });
            }
        }
    }

    /// Sets `completed` and `completion_ledger_index` of a page's records: one query
    /// by decision id (the UNIQUE index of `engine_mcp_completions`) per page, so
    /// neither Decide nor the index scan pays for completions.
    async fn fill_completions(&self, items: &mut [DecisionRecord]) -> Result<(), EngineError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = items.iter().map(|r| r.decision_id.as_str()).collect();
        let done = self.completion_indexes(&ids).await?;
        for item in items.iter_mut() {
            if let Some(&idx) = done.get(&item.decision_id) {
                item.completed = true;
                item.completion_ledger_index = Some(idx);
            }
        }
        Ok(())
    }
}
