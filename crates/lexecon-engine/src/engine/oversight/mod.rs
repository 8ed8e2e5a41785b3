//! Human oversight (contract §6): halts, overrides, escalations with SLAs and grants,
//! the sweeper that expires and warns, accountability and the event stream.
//!
//! Durable state lives in the tables of migration 4005, written as side rows of the
//! oversight ledger entry that records each change, so a state change and its entry are
//! one transaction. Decide reads halts and overrides from an in-memory snapshot
//! ([`state`]), refreshed by the sync task; a snapshot older than two seconds makes
//! Decide answer UNAVAILABLE rather than decide on stale oversight state.

mod accountability;
mod escalations;
mod events;
mod grants;
mod halts;
mod overrides;
mod state;
mod store;
mod sweeper;

pub use accountability::{Accountability, AccountablePolicy, DecisionMaker, ResponsibilityLevel};
pub use escalations::{
    ApprovalRecord, EscalationPriority, EscalationQuery, EscalationResolution, EscalationState,
    EscalationView,
};
pub use events::{Event, EventStream};
pub use halts::HaltRecord;
pub use overrides::{
    MIN_JUSTIFICATION_CHARS, OverrideEffect, OverrideInput, OverrideKind, OverrideRecord,
    OverrideRevocation,
};
pub use sweeper::SweepReport;

pub(crate) use escalations::{EscalationInput, NewEscalation};
pub(crate) use events::events_hook;
pub(crate) use grants::{EscClaim, GrantUse};
pub(crate) use state::{Matched, OversightState};

use lexecon_core::Timestamp;
use lexecon_ledger::{EntryKind, SideRow, SideValue};
use rand::Rng as _;

use super::{Caller, Engine, EngineError};

/// One entry of a ledger group: kind, payload and side rows.
pub(crate) type GroupEntry = (EntryKind, Vec<u8>, Vec<SideRow>);

/// How often a serving engine runs the oversight sweeper.
pub(crate) const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest reason or justification accepted, in bytes.
pub const MAX_OVERSIGHT_TEXT_BYTES: usize = 4096;

/// A claim older than this belongs to a call that crashed and may be taken over.
const CLAIM_LEASE_MICROS: i64 = super::decide::CLAIM_LEASE_SECS * 1_000_000;

/// A fresh claim owner, unique per claim.
fn claim_owner() -> String {
    format!("{:032x}", rand::thread_rng().r#gen::<u128>())
}

/// A required free-text field: not blank, at most [`MAX_OVERSIGHT_TEXT_BYTES`].
fn required_text(field: &str, value: &str) -> Result<(), EngineError> {
    if value.trim().is_empty() {
        return Err(EngineError::InvalidArgument(format!(
            "{field} is required: say why, in a few words"
        )));
    }
    if value.len() > MAX_OVERSIGHT_TEXT_BYTES {
        return Err(EngineError::InvalidArgument(format!(
            "{field} is {} bytes; at most {MAX_OVERSIGHT_TEXT_BYTES} are accepted",
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

fn text(s: &str) -> SideValue {
    SideValue::Text(s.to_owned())
}

fn opt_text(s: Option<&str>) -> SideValue {
    s.map_or(SideValue::Null, text)
}

fn int(i: i64) -> SideValue {
    SideValue::Int(i)
}

fn opt_int(i: Option<i64>) -> SideValue {
    i.map_or(SideValue::Null, SideValue::Int)
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

fn index_of(idx: i64) -> u64 {
    u64::try_from(idx).unwrap_or(0)
}

impl Engine {
    /// Appends one oversight entry with the side rows that make its change; the entry
    /// and the rows commit together or not at all.
    async fn append_oversight(
        &self,
        payload: &serde_json::Value,
        side: Vec<SideRow>,
    ) -> Result<u64, EngineError> {
        let bytes = serde_json::to_vec(payload)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode an oversight entry: {e}")))?;
        let receipt = self
            .ledger
            .append_entry(EntryKind::Oversight, bytes, side)
            .await?;
        Ok(receipt.index)
    }
}

/// `[oversight]` as the engine uses it, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) auto_escalate: bool,
    pub(crate) two_person_rule: bool,
    pub(crate) people_only: bool,
    pub(crate) warn_before_micros: i64,
    pub(crate) approval_ttl_micros: i64,
    pub(crate) sla_micros: [i64; 4],
}

fn secs_to_micros<T: TryInto<i64>>(secs: T) -> i64 {
    secs.try_into()
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

impl Settings {
    fn sla_micros(&self, priority: EscalationPriority) -> i64 {
        let [critical, high, medium, low] = self.sla_micros;
        match priority {
            EscalationPriority::Critical => critical,
            EscalationPriority::High => high,
            EscalationPriority::Medium => medium,
            EscalationPriority::Low => low,
        }
    }
}

impl Engine {
    pub(crate) fn oversight_settings(&self) -> Settings {
        let o = &self.config.oversight;
        Settings {
            auto_escalate: o.auto_escalate,
            two_person_rule: o.two_person_rule,
            people_only: o.approvers == crate::config::Approvers::People,
            warn_before_micros: secs_to_micros(o.warn_before_secs),
            approval_ttl_micros: secs_to_micros(o.approval_ttl_secs),
            sla_micros: [
                secs_to_micros(o.sla_secs.critical),
                secs_to_micros(o.sla_secs.high),
                secs_to_micros(o.sla_secs.medium),
                secs_to_micros(o.sla_secs.low),
            ],
        }
    }
}

/// The role a caller acts with in oversight records.
fn role_name(caller: &Caller) -> &'static str {
    match caller {
        Caller::Principal(p) => p.role.as_str(),
        Caller::Local(_) => "local",
        Caller::System(_) => "system",
    }
}

#[cfg(test)]
mod surface_tests;
#[cfg(test)]
mod tests;
