//! Recording full ledger verifications (contract §8): each one, run by the server
//! (`LedgerService/Verify`) or by the CLI on the database directly (`lexecon
//! verify-ledger --data-dir|--database-url`), becomes a `ledger_verified` compliance
//! entry with its result and trust basis, and a row of `engine_ledger_verifications`
//! (a side row of that entry) from which compliance reads the last one.

use lexecon_compliance::facts::VerificationFact;
use lexecon_core::Timestamp;
use lexecon_ledger::{SideRow, SideValue};
use serde_json::json;

use super::store::{VerificationRow, tables};
use super::{to_i64, to_u64};
use crate::engine::{Caller, Engine, EngineError, VerifyReport};

/// The trust basis named in `ledger_verified` entries.
fn basis(trusted_key_ring: bool) -> &'static str {
    if trusted_key_ring {
        "key_ring"
    } else {
        "database_keys"
    }
}

impl VerificationRow {
    /// The fact compliance evaluates.
    pub(super) fn fact(self) -> VerificationFact {
        VerificationFact {
            at: Timestamp::from_unix_micros(self.verified_at),
            valid: self.valid,
            entries: to_u64(self.entries),
            trusted_key_ring: self.trusted_key_ring,
            basis: self.basis,
            ledger_index: to_u64(self.idx),
            by: self.verified_by,
        }
    }
}

impl Engine {
    /// Records a verification of the whole ledger that `caller` ran with `report`'s
    /// result; `trusted_key_ring` says whether it trusted the node's key ring from the
    /// data directory rather than keys recorded in the database alone. Returns the index
    /// of the `ledger_verified` compliance entry.
    pub async fn record_local_verification(
        &self,
        caller: &Caller,
        report: &VerifyReport,
        trusted_key_ring: bool,
    ) -> Result<u64, EngineError> {
        self.authorize(caller, crate::engine::ops::VERIFY_LEDGER)?;
        if report.partial {
            return Err(EngineError::InvalidArgument(
                "report: a partial verification (a bundle that starts after entry 0) is not a \
                 verification of the whole ledger and is not recorded"
                    .into(),
            ));
        }
        self.record_verification(caller, report, trusted_key_ring)
            .await
    }

    /// Appends the `ledger_verified` entry of `report` with its side row.
    pub(crate) async fn record_verification(
        &self,
        caller: &Caller,
        report: &VerifyReport,
        trusted_key_ring: bool,
    ) -> Result<u64, EngineError> {
        let now = self.clock.now();
        let by = caller.ledger_name();
        let basis = basis(trusted_key_ring);
        let payload = json!({
            "event": "ledger_verified",
            "by": by,
            "valid": report.valid,
            "entries": report.entries,
            "checkpoints": report.checkpoints,
            "redacted": report.redacted,
            "root": report.root,
            "trusted_key_ring": trusted_key_ring,
            "basis": basis,
            "keys": report.keys,
            "problem": report.problem.as_ref().map(|p| p.what.clone()),
            "at": now,
        });
        let row = SideRow {
            table: &tables::VERIFICATIONS,
            values: vec![
                SideValue::Int(now.unix_micros()),
                SideValue::Int(i64::from(report.valid)),
                SideValue::Int(to_i64(report.entries)),
                SideValue::Int(to_i64(report.checkpoints)),
                SideValue::Int(i64::from(trusted_key_ring)),
                SideValue::Text(basis.to_owned()),
                SideValue::Text(by),
            ],
        };
        self.append_compliance(&payload, vec![row]).await
    }
}
