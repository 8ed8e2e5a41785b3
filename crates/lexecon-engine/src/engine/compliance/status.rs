//! The read side of compliance: frameworks, control status and gaps, the Annex IV
//! technical documentation, record keeping and reports. Each call gathers live facts
//! ([`Engine::gather_facts`]) and hands them to the pure `lexecon-compliance` crate;
//! nothing is a flag someone set.

use lexecon_compliance::{
    ControlResult, Framework, FrameworkStatus, Report, ReportFormat, TechDoc,
};

use super::{HoldRecord, RecordKeeping, ops, store};
use crate::engine::{Caller, Engine, EngineError};

fn evaluate(
    framework: &str,
    facts: &lexecon_compliance::Facts,
) -> Result<FrameworkStatus, EngineError> {
    lexecon_compliance::evaluate(framework, facts)
        .map_err(|e| EngineError::InvalidArgument(format!("framework: {e}")))
}

impl Engine {
    /// The frameworks compliance maps, in the order soc2, iso27001, gdpr, hipaa,
    /// pci_dss, nist_csf, eu_ai_act.
    pub fn compliance_frameworks(&self, caller: &Caller) -> Result<Vec<Framework>, EngineError> {
        self.authorize(caller, ops::LIST_FRAMEWORKS)?;
        Ok(lexecon_compliance::frameworks())
    }

    /// Every control of `framework` with its status, why, evidence and remediation,
    /// from the facts of this moment. An unknown framework is INVALID_ARGUMENT naming
    /// `framework` and the valid ids.
    pub async fn compliance_status(
        &self,
        caller: &Caller,
        framework: &str,
    ) -> Result<FrameworkStatus, EngineError> {
        self.authorize(caller, ops::GET_STATUS)?;
        let facts = self.gather_facts().await?;
        evaluate(framework, &facts)
    }

    /// The controls of `framework` not satisfied (not satisfied first, then partial),
    /// each with what to configure or do.
    pub async fn compliance_gaps(
        &self,
        caller: &Caller,
        framework: &str,
    ) -> Result<Vec<ControlResult>, EngineError> {
        self.authorize(caller, ops::GET_GAPS)?;
        let facts = self.gather_facts().await?;
        Ok(lexecon_compliance::gaps(&evaluate(framework, &facts)?))
    }

    /// The EU AI Act Annex IV technical documentation (Art. 11), generated from the
    /// configuration, the policy, the risk rules, the model access lists and the ledger
    /// statistics.
    pub async fn technical_documentation(&self, caller: &Caller) -> Result<TechDoc, EngineError> {
        self.authorize(caller, ops::GET_TECH_DOC)?;
        let facts = self.gather_facts().await?;
        Ok(lexecon_compliance::technical_documentation(&facts))
    }

    /// Record keeping (EU AI Act Art. 12 and 19): retention, the span and kinds of the
    /// ledger, redactions, the last verification and the legal holds.
    pub async fn record_keeping_status(
        &self,
        caller: &Caller,
    ) -> Result<RecordKeeping, EngineError> {
        self.authorize(caller, ops::GET_RECORD_KEEPING)?;
        let stats = self.ledger_stats().await?;
        let store = store::on(&self.db);
        let last_verification = store
            .latest_verification()
            .await?
            .map(super::store::VerificationRow::fact);
        let legal_holds = store
            .holds(true)
            .await?
            .into_iter()
            .map(HoldRecord::of)
            .collect();
        Ok(RecordKeeping {
            logging_enabled: true,
            log_retention_days: self.config.compliance.log_retention_days,
            oldest_entry_at: stats.oldest_at,
            newest_entry_at: stats.newest_at,
            entries_by_kind: stats
                .by_kind
                .iter()
                .map(|(k, s)| (k.clone(), s.count))
                .collect(),
            total_entries: stats.total_entries,
            redacted_entries: stats.redacted_entries,
            last_verification,
            legal_holds,
        })
    }

    /// A report on `framework` (every framework when `None`) in `format`.
    pub async fn compliance_report(
        &self,
        caller: &Caller,
        framework: Option<&str>,
        format: ReportFormat,
    ) -> Result<Report, EngineError> {
        self.authorize(caller, ops::GET_REPORT)?;
        let facts = self.gather_facts().await?;
        let statuses = match framework {
            Some(f) => vec![evaluate(f, &facts)?],
            None => lexecon_compliance::frameworks()
                .iter()
                .map(|f| evaluate(&f.id, &facts))
                .collect::<Result<_, _>>()?,
        };
        Ok(lexecon_compliance::report(&statuses, &facts, format))
    }
}
