//! Compliance (contract §8): legal holds, interventions, redaction under holds, the
//! recording of ledger verifications, ledger statistics kept as entries are appended,
//! and the facts the pure `lexecon-compliance` crate turns into control statuses,
//! Annex IV documentation and reports.
//!
//! Holds and interventions are `compliance` ledger entries whose state rows are side
//! rows of the entry (migration 4009), so a state change and its record are one
//! transaction. Redaction runs the hold check, the payload tombstone and the erasure of
//! every engine copy of the entry's fields in one database transaction.

mod facts;
mod holds;
mod interventions;
mod redact;
mod stats;
mod status;
mod store;
mod verification;

use std::collections::BTreeMap;

use lexecon_core::Timestamp;
use lexecon_ledger::{EntryKind, SideRow};

use super::{Engine, EngineError};

use lexecon_compliance::facts::VerificationFact;

/// The gRPC method paths compliance operations authorize under.
mod ops {
    pub(super) const LIST_FRAMEWORKS: &str = "/lexecon.v1.ComplianceService/ListFrameworks";
    pub(super) const GET_STATUS: &str = "/lexecon.v1.ComplianceService/GetComplianceStatus";
    pub(super) const GET_GAPS: &str = "/lexecon.v1.ComplianceService/GetGaps";
    pub(super) const GET_TECH_DOC: &str = "/lexecon.v1.ComplianceService/GetTechnicalDocumentation";
    pub(super) const GET_RECORD_KEEPING: &str =
        "/lexecon.v1.ComplianceService/GetRecordKeepingStatus";
    pub(super) const GET_REPORT: &str = "/lexecon.v1.ComplianceService/GetComplianceReport";
    pub(super) const PLACE_HOLD: &str = "/lexecon.v1.ComplianceService/PlaceLegalHold";
    pub(super) const RELEASE_HOLD: &str = "/lexecon.v1.ComplianceService/ReleaseLegalHold";
    pub(super) const LIST_HOLDS: &str = "/lexecon.v1.ComplianceService/ListLegalHolds";
    pub(super) const RECORD_INTERVENTION: &str = "/lexecon.v1.ComplianceService/RecordIntervention";
    pub(super) const REDACT: &str = "/lexecon.v1.LedgerService/Redact";
}

/// The longest reason or matter accepted, in bytes.
pub const MAX_COMPLIANCE_TEXT_BYTES: usize = 4096;

/// The most decision ids one legal hold may name.
pub const MAX_HOLD_DECISION_IDS: usize = 1000;

/// What a legal hold covers and why (`PlaceLegalHold`). At least one scope is set: an
/// index range, decision ids, or an actor glob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldInput {
    /// Why the records must be kept (required).
    pub reason: String,
    /// The legal matter (case, request, investigation) the hold is for (required).
    pub matter: String,
    /// The first ledger index held (inclusive); unset with `to_index` unset = no range.
    pub from_index: Option<u64>,
    /// The end of the held range (exclusive); unset = up to the end of the ledger.
    pub to_index: Option<u64>,
    /// Decisions held: each decision's entry and the entries linked to it.
    pub decision_ids: Vec<String>,
    /// A full-match actor glob: every entry whose actor it matches is held; empty = none.
    pub actor: String,
}

/// A legal hold as placed (and, once released, as released).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HoldRecord {
    /// `hld_` + ULID.
    pub hold_id: String,
    /// Why the records must be kept.
    pub reason: String,
    /// The legal matter.
    pub matter: String,
    /// The first ledger index held, when the hold has a range.
    pub from_index: Option<u64>,
    /// The end of the held range (exclusive), when bounded.
    pub to_index: Option<u64>,
    /// The decisions held.
    pub decision_ids: Vec<String>,
    /// The actor glob held; empty = none.
    pub actor: String,
    /// Who placed it (`Caller::ledger_name`).
    pub placed_by: String,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// The ledger index of its `legal_hold_placed` entry.
    pub ledger_index: u64,
    /// Whether it is in force.
    pub active: bool,
    /// Who released it.
    pub released_by: Option<String>,
    /// When it was released.
    pub released_at: Option<Timestamp>,
    /// The ledger index of its `legal_hold_released` entry.
    pub release_ledger_index: Option<u64>,
}

/// What a person did about one decision (EU AI Act Art. 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InterventionKind {
    /// The output was disregarded: recorded only.
    Disregard,
    /// The output was reversed: the decision's capability token is revoked.
    Reverse,
    /// The output was overridden by an override created with `CreateOverride`.
    Override,
    /// The system was stopped: a halt is placed on the decision's actor.
    Stop,
}

impl InterventionKind {
    /// The name in ledger payloads: `disregard`, `reverse`, `override`, `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            InterventionKind::Disregard => "disregard",
            InterventionKind::Reverse => "reverse",
            InterventionKind::Override => "override",
            InterventionKind::Stop => "stop",
        }
    }
}

/// A person's act on one decision (`RecordIntervention`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterventionInput {
    /// The decision acted on.
    pub decision_id: String,
    /// What was done.
    pub kind: InterventionKind,
    /// Why (required).
    pub reason: String,
    /// For [`InterventionKind::Override`]: the override (`ovr_...`) that overrode it.
    pub override_id: Option<String>,
}

/// A recorded intervention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterventionRecord {
    /// `itv_` + ULID.
    pub intervention_id: String,
    /// The ledger index of its `intervention_recorded` entry.
    pub ledger_index: u64,
    /// For a stop: the halt placed on the decision's actor.
    pub halt_id: Option<String>,
    /// For a reversal: the token revoked.
    pub revoked_token_id: Option<String>,
}

/// Record keeping (EU AI Act Art. 12 and 19): `GetRecordKeepingStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordKeeping {
    /// Every operation is logged in the ledger; always true for a running engine.
    pub logging_enabled: bool,
    /// `compliance.log_retention_days`.
    pub log_retention_days: u32,
    /// The time of the oldest entry.
    pub oldest_entry_at: Option<Timestamp>,
    /// The time of the newest entry.
    pub newest_entry_at: Option<Timestamp>,
    /// Entries per kind name.
    pub entries_by_kind: BTreeMap<String, u64>,
    /// All entries.
    pub total_entries: u64,
    /// Entries whose payload was redacted.
    pub redacted_entries: u64,
    /// The newest recorded verification of the whole ledger.
    pub last_verification: Option<VerificationFact>,
    /// The legal holds, released ones included, oldest first.
    pub legal_holds: Vec<HoldRecord>,
}

/// A redacted entry (`LedgerService/Redact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// The entry redacted.
    pub index: u64,
    /// The ledger index of the `entry_redacted` compliance entry.
    pub ledger_index: u64,
    /// What was erased: always `payload`, then each copy that held some of the entry's
    /// fields: `decision_index`, `idempotency`, `escalation`, `override`, `halt`,
    /// `revocation`, `evidence_content`, `mcp_completion`.
    pub erased: Vec<String>,
}

/// A required free-text field: not blank, at most [`MAX_COMPLIANCE_TEXT_BYTES`], no
/// control characters.
fn required_text(field: &str, value: &str) -> Result<(), EngineError> {
    if value.trim().is_empty() {
        return Err(EngineError::InvalidArgument(format!(
            "{field} is required: say it in a few words"
        )));
    }
    if value.len() > MAX_COMPLIANCE_TEXT_BYTES {
        return Err(EngineError::InvalidArgument(format!(
            "{field} is {} bytes; at most {MAX_COMPLIANCE_TEXT_BYTES} are accepted",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::InvalidArgument(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Engine {
    /// Appends one `compliance` entry with the side rows that make its change; the entry
    /// and the rows commit together or not at all.
    async fn append_compliance(
        &self,
        payload: &serde_json::Value,
        side: Vec<SideRow>,
    ) -> Result<u64, EngineError> {
        let bytes = serde_json::to_vec(payload)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode a compliance entry: {e}")))?;
        let receipt = self
            .ledger
            .append_entry(EntryKind::Compliance, bytes, side)
            .await?;
        Ok(receipt.index)
    }
}

#[cfg(test)]
mod tests;
