//! `lexecon.v1.AuditService`: decision queries, audit exports streamed as bundle chunks
//! (the server writes nothing to disk), and the list of exports (contract §7).

use std::pin::Pin;
use std::task::{Context, Poll};

use lexecon_core::Outcome;
use lexecon_engine::{
    AuditExportRecord, AuditExportStream, DecisionQuery, DecisionRecord, ExportQuery,
};
use lexecon_ledger::AuditFormat;
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{outcome_to_pb, timestamp_from_pb, timestamp_to_pb};

/// The audit service.
#[derive(Debug, Clone)]
pub struct AuditSvc(pub Shared);

/// The audit service with the server's request limit.
pub fn server(shared: Shared) -> AuditServiceServer<AuditSvc> {
    let max = shared.engine.config().server.max_request_bytes;
    AuditServiceServer::new(AuditSvc(shared)).max_decoding_message_size(max)
}

/// The engine's outcome of a proto value; unspecified is `None`.
fn outcome_from_pb(value: i32) -> Result<Option<Outcome>, Status> {
    match pb::Outcome::try_from(value) {
        Ok(pb::Outcome::Unspecified) => Ok(None),
        Ok(pb::Outcome::Approved) => Ok(Some(Outcome::Approved)),
        Ok(pb::Outcome::Denied) => Ok(Some(Outcome::Denied)),
        Ok(pb::Outcome::Escalated) => Ok(Some(Outcome::Escalated)),
        Err(_) => Err(Status::invalid_argument(format!(
            "outcome {value} is not an outcome; use OUTCOME_APPROVED, OUTCOME_DENIED or OUTCOME_ESCALATED"
        ))),
    }
}

fn format_from_pb(value: i32) -> Result<AuditFormat, Status> {
    match pb::AuditFormat::try_from(value) {
        Ok(pb::AuditFormat::Unspecified | pb::AuditFormat::Ndjson) => Ok(AuditFormat::Ndjson),
        Ok(pb::AuditFormat::Csv) => Ok(AuditFormat::Csv),
        Err(_) => Err(Status::invalid_argument(format!(
            "format {value} is not an audit format; use AUDIT_FORMAT_NDJSON or AUDIT_FORMAT_CSV"
        ))),
    }
}

/// The proto form of a decision record.
pub fn decision_record_to_pb(r: DecisionRecord) -> pb::DecisionRecord {
    pb::DecisionRecord {
        decision_id: r.decision_id,
        decided_at: Some(timestamp_to_pb(r.decided_at)),
        actor: r.actor,
        proposed_action: r.proposed_action,
        tool: r.tool,
        outcome: outcome_to_pb(r.outcome) as i32,
        risk_score: u32::from(r.risk_score),
        reasons: r.reasons,
        ledger_index: r.ledger_index,
        redacted: r.redacted,
        principal: r.principal,
        policy_hash: r.policy_hash,
        escalation_id: r.escalation_id,
        override_id: r.override_id,
        completed: r.completed,
        completion_ledger_index: r.completion_ledger_index.unwrap_or(0),
    }
}

/// The proto form of an export's record.
pub fn audit_export_to_pb(r: AuditExportRecord) -> pb::AuditExport {
    pb::AuditExport {
        export_id: r.export_id,
        exported_by: r.exported_by,
        exported_at: Some(timestamp_to_pb(r.exported_at)),
        tree_size: r.tree_size,
        decisions: r.decisions,
        manifest_sha256: r.manifest_sha256,
        filters_json: r.filters_json,
        ledger_index: r.ledger_index,
    }
}

/// The chunks of an export as a response stream.
pub struct Chunks(AuditExportStream);

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chunks")
    }
}

impl tokio_stream::Stream for Chunks {
    type Item = Result<pb::ExportAuditResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx).map(|item| {
            item.map(|r| {
                r.map(|c| pb::ExportAuditResponse {
                    path: c.path,
                    data: c.data.into(),
                })
                .map_err(status)
            })
        })
    }
}

#[tonic::async_trait]
impl AuditService for AuditSvc {
    async fn query_decisions(
        &self,
        request: Request<pb::QueryDecisionsRequest>,
    ) -> Result<Response<pb::QueryDecisionsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let query = DecisionQuery {
            actor: r.actor,
            action: r.action,
            tool: r.tool,
            outcome: outcome_from_pb(r.outcome)?,
            since: r.since.as_ref().map(timestamp_from_pb),
            until: r.until.as_ref().map(timestamp_from_pb),
            min_risk_score: r.min_risk_score,
            policy_hash: r.policy_hash,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let page = self
            .0
            .engine
            .query_decisions(&who, query)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::QueryDecisionsResponse {
            decisions: page.items.into_iter().map(decision_record_to_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    type ExportAuditStream = Chunks;

    async fn export_audit(
        &self,
        request: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<Self::ExportAuditStream>, Status> {
        let who = caller(&request)?;
        let r = request.into_inner();
        let query = ExportQuery {
            since: r.since.as_ref().map(timestamp_from_pb),
            until: r.until.as_ref().map(timestamp_from_pb),
            actor: r.actor,
            format: format_from_pb(r.format)?,
        };
        let stream = self
            .0
            .engine
            .export_audit(&who, query)
            .await
            .map_err(status)?;
        Ok(Response::new(Chunks(stream)))
    }

    async fn list_audit_exports(
        &self,
        request: Request<pb::ListAuditExportsRequest>,
    ) -> Result<Response<pb::ListAuditExportsResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let page = self
            .0
            .engine
            .list_audit_exports(&who, r.page_size, &r.page_token)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListAuditExportsResponse {
            exports: page.items.into_iter().map(audit_export_to_pb).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
