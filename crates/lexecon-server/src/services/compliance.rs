//! `lexecon.v1.ComplianceService`: control status from live facts, gaps, the EU AI Act
//! technical documentation and record keeping, legal holds, interventions and reports
//! (contract §8). Every handler converts its request, calls one engine method, and
//! converts the answer; the evaluation itself is in `lexecon-compliance`.

use lexecon_compliance::{ControlResult, ControlStatus, EvidenceRef, Framework, ReportFormat};
use lexecon_engine::{HoldInput, HoldRecord, InterventionInput, InterventionKind, RecordKeeping};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::compliance_service_server::{ComplianceService, ComplianceServiceServer};
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::timestamp_to_pb;

/// The compliance service.
#[derive(Debug, Clone)]
pub struct ComplianceSvc(pub Shared);

/// The compliance service with the server's request limit. Responses (reports) are not
/// limited beyond tonic's default.
pub fn server(shared: Shared) -> ComplianceServiceServer<ComplianceSvc> {
    let max = shared.engine.config().server.max_request_bytes;
    ComplianceServiceServer::new(ComplianceSvc(shared)).max_decoding_message_size(max)
}

/// The proto value of a control status.
pub fn control_status_to_pb(s: ControlStatus) -> pb::ControlStatus {
    match s {
        ControlStatus::Satisfied => pb::ControlStatus::Satisfied,
        ControlStatus::Partial => pb::ControlStatus::Partial,
        ControlStatus::NotSatisfied => pb::ControlStatus::NotSatisfied,
        ControlStatus::NotApplicable => pb::ControlStatus::NotApplicable,
    }
}

/// The proto form of a framework.
pub fn framework_to_pb(f: Framework) -> pb::Framework {
    pb::Framework {
        id: f.id.to_string(),
        name: f.name.to_string(),
        version: f.version.to_string(),
        control_count: f.control_count,
    }
}

/// The proto form of one piece of evidence behind a status.
pub fn evidence_ref_to_pb(e: EvidenceRef) -> pb::EvidenceRef {
    pb::EvidenceRef {
        kind: e.kind,
        reference: e.reference,
        detail: e.detail,
    }
}

/// The proto form of an evaluated control.
pub fn control_to_pb(c: ControlResult) -> pb::ControlResult {
    pb::ControlResult {
        control_id: c.control_id,
        title: c.title,
        status: control_status_to_pb(c.status) as i32,
        why: c.why,
        evidence: c.evidence.into_iter().map(evidence_ref_to_pb).collect(),
        remediation: c.remediation,
        framework: c.framework,
    }
}

/// The proto form of a legal hold.
pub fn hold_to_pb(h: HoldRecord) -> pb::LegalHold {
    pb::LegalHold {
        hold_id: h.hold_id,
        reason: h.reason,
        matter: h.matter,
        from_index: h.from_index,
        to_index: h.to_index,
        decision_ids: h.decision_ids,
        actor: h.actor,
        placed_by: h.placed_by,
        placed_at: Some(timestamp_to_pb(h.placed_at)),
        ledger_index: h.ledger_index,
        active: h.active,
        released_by: h.released_by.unwrap_or_default(),
        released_at: h.released_at.map(timestamp_to_pb),
        release_ledger_index: h.release_ledger_index.unwrap_or(0),
    }
}

/// The proto form of the last recorded verification.
pub fn verification_to_pb(
    v: lexecon_compliance::facts::VerificationFact,
) -> pb::VerificationRecord {
    pb::VerificationRecord {
        at: Some(timestamp_to_pb(v.at)),
        valid: v.valid,
        entries: v.entries,
        trusted_key_ring: v.trusted_key_ring,
        by: v.by,
        ledger_index: v.ledger_index,
        basis: v.basis,
    }
}

/// The proto form of the record-keeping status.
pub fn record_keeping_to_pb(r: RecordKeeping) -> pb::GetRecordKeepingStatusResponse {
    pb::GetRecordKeepingStatusResponse {
        logging_enabled: r.logging_enabled,
        log_retention_days: r.log_retention_days,
        oldest_entry_at: r.oldest_entry_at.map(timestamp_to_pb),
        newest_entry_at: r.newest_entry_at.map(timestamp_to_pb),
        entries_by_kind: r.entries_by_kind.into_iter().collect(),
        last_verification: r.last_verification.map(verification_to_pb),
        legal_holds: r.legal_holds.into_iter().map(hold_to_pb).collect(),
        total_entries: r.total_entries,
        redacted_entries: r.redacted_entries,
    }
}

/// The engine's intervention kind of a proto value; unspecified is refused.
pub fn intervention_kind_from_pb(value: i32) -> Result<InterventionKind, Status> {
    match pb::InterventionKind::try_from(value) {
        Ok(pb::InterventionKind::Disregard) => Ok(InterventionKind::Disregard),
        Ok(pb::InterventionKind::Reverse) => Ok(InterventionKind::Reverse),
        Ok(pb::InterventionKind::Override) => Ok(InterventionKind::Override),
        Ok(pb::InterventionKind::Stop) => Ok(InterventionKind::Stop),
        Ok(pb::InterventionKind::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "kind {value} is not an intervention kind; use INTERVENTION_KIND_DISREGARD, \
             _REVERSE, _OVERRIDE or _STOP"
        ))),
    }
}

/// The engine's report format of a proto value; unspecified is JSON.
pub fn report_format_from_pb(value: i32) -> Result<ReportFormat, Status> {
    match pb::ReportFormat::try_from(value) {
        Ok(pb::ReportFormat::Unspecified | pb::ReportFormat::Json) => Ok(ReportFormat::Json),
        Ok(pb::ReportFormat::Markdown) => Ok(ReportFormat::Markdown),
        Ok(pb::ReportFormat::Html) => Ok(ReportFormat::Html),
        Ok(pb::ReportFormat::Oscal) => Ok(ReportFormat::Oscal),
        Err(_) => Err(Status::invalid_argument(format!(
            "format {value} is not a report format; use REPORT_FORMAT_JSON, _MARKDOWN, _HTML \
             or _OSCAL"
        ))),
    }
}

/// An optional string field: empty is `None`.
fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl ComplianceService for ComplianceSvc {
    async fn list_frameworks(
        &self,
        request: Request<pb::ListFrameworksRequest>,
    ) -> Result<Response<pb::ListFrameworksResponse>, Status> {
        let who = caller(&request)?;
        let frameworks = self.0.engine.compliance_frameworks(&who).map_err(status)?;
        Ok(Response::new(pb::ListFrameworksResponse {
            frameworks: frameworks.into_iter().map(framework_to_pb).collect(),
        }))
    }

    async fn get_compliance_status(
        &self,
        request: Request<pb::GetComplianceStatusRequest>,
    ) -> Result<Response<pb::GetComplianceStatusResponse>, Status> {
        let who = caller(&request)?;
        let s = self
            .0
            .engine
            .compliance_status(&who, &request.get_ref().framework)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetComplianceStatusResponse {
            framework: s.framework,
            controls: s.controls.into_iter().map(control_to_pb).collect(),
            coverage_percent: s.coverage_percent,
            evaluated_at: Some(timestamp_to_pb(s.evaluated_at)),
        }))
    }

    async fn get_gaps(
        &self,
        request: Request<pb::GetGapsRequest>,
    ) -> Result<Response<pb::GetGapsResponse>, Status> {
        let who = caller(&request)?;
        let framework = request.into_inner().framework;
        let gaps = self
            .0
            .engine
            .compliance_gaps(&who, &framework)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetGapsResponse {
            framework,
            gaps: gaps.into_iter().map(control_to_pb).collect(),
        }))
    }

    async fn get_technical_documentation(
        &self,
        request: Request<pb::GetTechnicalDocumentationRequest>,
    ) -> Result<Response<pb::GetTechnicalDocumentationResponse>, Status> {
        let who = caller(&request)?;
        let doc = self
            .0
            .engine
            .technical_documentation(&who)
            .await
            .map_err(status)?;
        let json = serde_json::to_string_pretty(&doc.json)
            .map_err(|e| Status::internal(format!("the documentation is not JSON: {e}")))?;
        Ok(Response::new(pb::GetTechnicalDocumentationResponse {
            markdown: doc.markdown,
            json,
            generated_at: doc
                .json
                .get("generated_at")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| t.parse::<lexecon_core::Timestamp>().ok())
                .map(timestamp_to_pb),
        }))
    }

    async fn get_record_keeping_status(
        &self,
        request: Request<pb::GetRecordKeepingStatusRequest>,
    ) -> Result<Response<pb::GetRecordKeepingStatusResponse>, Status> {
        let who = caller(&request)?;
        let r = self
            .0
            .engine
            .record_keeping_status(&who)
            .await
            .map_err(status)?;
        Ok(Response::new(record_keeping_to_pb(r)))
    }

    async fn place_legal_hold(
        &self,
        request: Request<pb::PlaceLegalHoldRequest>,
    ) -> Result<Response<pb::PlaceLegalHoldResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let input = HoldInput {
            reason: r.reason,
            matter: r.matter,
            from_index: r.from_index,
            to_index: r.to_index,
            decision_ids: r.decision_ids,
            actor: r.actor,
        };
        let hold = self
            .0
            .engine
            .place_legal_hold(&who, input)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::PlaceLegalHoldResponse {
            hold_id: hold.hold_id,
            ledger_index: hold.ledger_index,
        }))
    }

    async fn release_legal_hold(
        &self,
        request: Request<pb::ReleaseLegalHoldRequest>,
    ) -> Result<Response<pb::ReleaseLegalHoldResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let hold = self
            .0
            .engine
            .release_legal_hold(&who, &r.hold_id, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReleaseLegalHoldResponse {
            ledger_index: hold.release_ledger_index.unwrap_or(0),
        }))
    }

    async fn list_legal_holds(
        &self,
        request: Request<pb::ListLegalHoldsRequest>,
    ) -> Result<Response<pb::ListLegalHoldsResponse>, Status> {
        let who = caller(&request)?;
        let holds = self
            .0
            .engine
            .list_legal_holds(&who, request.get_ref().include_released)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListLegalHoldsResponse {
            holds: holds.into_iter().map(hold_to_pb).collect(),
        }))
    }

    async fn record_intervention(
        &self,
        request: Request<pb::RecordInterventionRequest>,
    ) -> Result<Response<pb::RecordInterventionResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let input = InterventionInput {
            decision_id: r.decision_id,
            kind: intervention_kind_from_pb(r.kind)?,
            reason: r.reason,
            override_id: non_empty(r.override_id),
        };
        let done = self
            .0
            .engine
            .record_intervention(&who, input)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RecordInterventionResponse {
            intervention_id: done.intervention_id,
            ledger_index: done.ledger_index,
            halt_id: done.halt_id.unwrap_or_default(),
            revoked_token_id: done.revoked_token_id.unwrap_or_default(),
        }))
    }

    async fn get_compliance_report(
        &self,
        request: Request<pb::GetComplianceReportRequest>,
    ) -> Result<Response<pb::GetComplianceReportResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let format = report_format_from_pb(r.format)?;
        let framework = non_empty(r.framework);
        let report = self
            .0
            .engine
            .compliance_report(&who, framework.as_deref(), format)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetComplianceReportResponse {
            content: report.content,
            media_type: report.media_type.to_string(),
            file_name: report.file_name,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn intervention_kinds_map_and_unspecified_is_refused() {
        assert!(matches!(
            intervention_kind_from_pb(pb::InterventionKind::Stop as i32),
            Ok(InterventionKind::Stop)
        ));
        assert!(matches!(
            intervention_kind_from_pb(pb::InterventionKind::Reverse as i32),
            Ok(InterventionKind::Reverse)
        ));
        for bad in [0, 99] {
            let err = intervention_kind_from_pb(bad).err().unwrap();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().starts_with(&format!("kind {bad}")), "{err:?}");
        }
    }

    #[test]
    fn report_formats_map_and_unspecified_is_json() {
        assert!(matches!(report_format_from_pb(0), Ok(ReportFormat::Json)));
        assert!(matches!(
            report_format_from_pb(pb::ReportFormat::Oscal as i32),
            Ok(ReportFormat::Oscal)
        ));
        let err = report_format_from_pb(7).err().unwrap();
        assert!(err.message().starts_with("format 7"), "{err:?}");
    }

    #[test]
    fn every_control_status_has_its_proto_value() {
        for (s, p) in [
            (ControlStatus::Satisfied, pb::ControlStatus::Satisfied),
            (ControlStatus::Partial, pb::ControlStatus::Partial),
            (ControlStatus::NotSatisfied, pb::ControlStatus::NotSatisfied),
            (
                ControlStatus::NotApplicable,
                pb::ControlStatus::NotApplicable,
            ),
        ] {
            assert_eq!(control_status_to_pb(s), p);
        }
    }
}
