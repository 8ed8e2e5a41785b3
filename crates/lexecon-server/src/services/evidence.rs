//! `lexecon.v1.EvidenceService`: registers and reads evidence (contract §7). Its
//! message limit is `evidence.max_bytes` plus 64 KiB, whatever `server.max_request_bytes`
//! says; the content reaches the engine as a view of the received buffer.

use lexecon_engine::{ArtifactType, EvidenceCheck, EvidenceFilter, EvidenceInput, EvidenceRecord};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::evidence_service_server::{EvidenceService, EvidenceServiceServer};
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::timestamp_to_pb;

/// Room for the fields around the content in a `RegisterEvidenceRequest`.
pub const ENVELOPE_BYTES: usize = 64 * 1024;

/// The evidence service.
#[derive(Debug, Clone)]
pub struct EvidenceSvc(pub Shared);

/// The evidence service with its message limits: requests up to `evidence.max_bytes`
/// plus [`ENVELOPE_BYTES`], and responses (content included) as large.
pub fn server(shared: Shared) -> EvidenceServiceServer<EvidenceSvc> {
    let max = shared
        .engine
        .config()
        .evidence
        .max_bytes
        .saturating_add(ENVELOPE_BYTES);
    EvidenceServiceServer::new(EvidenceSvc(shared))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

/// The engine's artifact type of a proto value; unspecified is `None`.
fn artifact_type_from_pb(value: i32) -> Result<Option<ArtifactType>, Status> {
    Ok(match pb::ArtifactType::try_from(value) {
        Ok(pb::ArtifactType::Unspecified) => None,
        Ok(pb::ArtifactType::DecisionLog) => Some(ArtifactType::DecisionLog),
        Ok(pb::ArtifactType::PolicySnapshot) => Some(ArtifactType::PolicySnapshot),
        Ok(pb::ArtifactType::RiskAssessment) => Some(ArtifactType::RiskAssessment),
        Ok(pb::ArtifactType::HumanReview) => Some(ArtifactType::HumanReview),
        Ok(pb::ArtifactType::TestResult) => Some(ArtifactType::TestResult),
        Ok(pb::ArtifactType::ModelDocumentation) => Some(ArtifactType::ModelDocumentation),
        Ok(pb::ArtifactType::IncidentReport) => Some(ArtifactType::IncidentReport),
        Ok(pb::ArtifactType::ExternalAttestation) => Some(ArtifactType::ExternalAttestation),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "artifact_type {value} is not an artifact type; use ARTIFACT_TYPE_DECISION_LOG, \
                 _POLICY_SNAPSHOT, _RISK_ASSESSMENT, _HUMAN_REVIEW, _TEST_RESULT, \
                 _MODEL_DOCUMENTATION, _INCIDENT_REPORT or _EXTERNAL_ATTESTATION"
            )));
        }
    })
}

/// The proto value of an artifact type.
pub fn artifact_type_to_pb(t: ArtifactType) -> pb::ArtifactType {
    match t {
        ArtifactType::DecisionLog => pb::ArtifactType::DecisionLog,
        ArtifactType::PolicySnapshot => pb::ArtifactType::PolicySnapshot,
        ArtifactType::RiskAssessment => pb::ArtifactType::RiskAssessment,
        ArtifactType::HumanReview => pb::ArtifactType::HumanReview,
        ArtifactType::TestResult => pb::ArtifactType::TestResult,
        ArtifactType::ModelDocumentation => pb::ArtifactType::ModelDocumentation,
        ArtifactType::IncidentReport => pb::ArtifactType::IncidentReport,
        ArtifactType::ExternalAttestation => pb::ArtifactType::ExternalAttestation,
    }
}

/// The proto form of an artifact's record.
pub fn evidence_to_pb(r: EvidenceRecord) -> pb::Evidence {
    pb::Evidence {
        evidence_id: r.evidence_id,
        artifact_type: artifact_type_to_pb(r.artifact_type) as i32,
        media_type: r.media_type,
        title: r.title,
        size: r.size,
        decision_ids: r.decision_ids,
        control_ids: r.control_ids,
        signed: r.signed,
        signer_public_key: r.signer_public_key,
        registered_by: r.registered_by,
        registered_at: Some(timestamp_to_pb(r.registered_at)),
        ledger_index: r.ledger_index,
        erased: r.erased,
    }
}

#[tonic::async_trait]
impl EvidenceService for EvidenceSvc {
    async fn register_evidence(
        &self,
        request: Request<pb::RegisterEvidenceRequest>,
    ) -> Result<Response<pb::RegisterEvidenceResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let input = EvidenceInput {
            artifact_type: artifact_type_from_pb(r.artifact_type)?,
            content: &r.content,
            media_type: r.media_type,
            title: r.title,
            decision_ids: r.decision_ids,
            control_ids: r.control_ids,
            signature: r.signature,
            signer_public_key: r.signer_public_key,
        };
        let registered = self
            .0
            .engine
            .register_evidence(&who, input)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RegisterEvidenceResponse {
            evidence_id: registered.evidence_id,
            ledger_index: registered.ledger_index,
            newly_registered: registered.newly_registered,
        }))
    }

    async fn get_evidence(
        &self,
        request: Request<pb::GetEvidenceRequest>,
    ) -> Result<Response<pb::GetEvidenceResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let (record, content) = self
            .0
            .engine
            .get_evidence(&who, &r.evidence_id, r.include_content)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetEvidenceResponse {
            evidence: Some(evidence_to_pb(record)),
            content: content.unwrap_or_default().into(),
        }))
    }

    async fn list_evidence(
        &self,
        request: Request<pb::ListEvidenceRequest>,
    ) -> Result<Response<pb::ListEvidenceResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let filter = EvidenceFilter {
            artifact_type: artifact_type_from_pb(r.artifact_type)?,
            decision_id: r.decision_id,
            control_id: r.control_id,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let page = self
            .0
            .engine
            .list_evidence(&who, filter)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListEvidenceResponse {
            evidence: page.items.into_iter().map(evidence_to_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn verify_evidence(
        &self,
        request: Request<pb::VerifyEvidenceRequest>,
    ) -> Result<Response<pb::VerifyEvidenceResponse>, Status> {
        let who = caller(&request)?;
        let EvidenceCheck { valid, problem } = self
            .0
            .engine
            .verify_evidence(&who, &request.get_ref().evidence_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::VerifyEvidenceResponse { valid, problem }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn every_artifact_type_maps_both_ways() {
        for t in ArtifactType::ALL {
            let pb = artifact_type_to_pb(t);
            assert_eq!(artifact_type_from_pb(pb as i32).ok(), Some(Some(t)));
        }
        assert_eq!(
            artifact_type_from_pb(pb::ArtifactType::Unspecified as i32).ok(),
            Some(None)
        );
        let err = artifact_type_from_pb(99).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("artifact_type 99"), "{err:?}");
    }
}
