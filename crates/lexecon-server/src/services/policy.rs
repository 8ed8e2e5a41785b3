//! `lexecon.v1.PolicyService`.

use lexecon_engine::{EngineError, PolicyRecord};
use lexecon_policy::{Diagnostic, Severity};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{action_input, mode_to_pb, outcome_to_pb, timestamp_to_pb};

/// The policy service.
#[derive(Debug, Clone)]
pub struct PolicySvc(pub Shared);

fn diagnostics(diags: &[Diagnostic]) -> Vec<pb::PolicyDiagnostic> {
    diags
        .iter()
        .map(|d| pb::PolicyDiagnostic {
            severity: if d.severity == Severity::Error {
                "error"
            } else {
                "warning"
            }
            .to_owned(),
            message: d.message.clone(),
            line: d.line,
            column: d.column,
        })
        .collect()
}

fn mode_word_to_pb(mode: &str) -> i32 {
    mode.parse::<lexecon_core::PolicyMode>()
        .map_or(0, |m| mode_to_pb(m) as i32)
}

fn record_to_pb(r: &PolicyRecord) -> pb::PolicyVersion {
    pb::PolicyVersion {
        name: r.name.clone(),
        version: r.version.clone(),
        hash: r.hash.to_vec(),
        mode: mode_word_to_pb(&r.mode),
        loaded_at: Some(timestamp_to_pb(r.loaded_at)),
        loaded_by: r.loaded_by.clone(),
        ledger_index: r.ledger_index,
        terms: u32::try_from(r.terms).unwrap_or(u32::MAX),
        relations: u32::try_from(r.relations).unwrap_or(u32::MAX),
    }
}

#[tonic::async_trait]
impl PolicyService for PolicySvc {
    async fn get_active_policy(
        &self,
        request: Request<pb::GetActivePolicyRequest>,
    ) -> Result<Response<pb::GetActivePolicyResponse>, Status> {
        let who = caller(&request)?;
        let (active, record) = self.0.engine.active_policy(&who).await.map_err(status)?;
        Ok(Response::new(pb::GetActivePolicyResponse {
            policy: Some(record_to_pb(&record)),
            source: active.source.clone(),
        }))
    }

    async fn validate_policy(
        &self,
        request: Request<pb::ValidatePolicyRequest>,
    ) -> Result<Response<pb::ValidatePolicyResponse>, Status> {
        let who = caller(&request)?;
        let v = self
            .0
            .engine
            .validate_policy(&who, &request.get_ref().source)
            .map_err(status)?;
        Ok(Response::new(pb::ValidatePolicyResponse {
            valid: v.hash.is_some(),
            diagnostics: diagnostics(&v.diagnostics),
            hash: v.hash.map(|h| h.to_vec()).unwrap_or_default(),
        }))
    }

    async fn load_policy(
        &self,
        request: Request<pb::LoadPolicyRequest>,
    ) -> Result<Response<pb::LoadPolicyResponse>, Status> {
        let who = caller(&request)?;
        match self
            .0
            .engine
            .load_policy(&who, &request.get_ref().source)
            .await
        {
            Ok((active, record)) => Ok(Response::new(pb::LoadPolicyResponse {
                loaded: true,
                policy: Some(record_to_pb(&record)),
                diagnostics: diagnostics(&active.warnings),
            })),
            Err(EngineError::Policy(e)) => Ok(Response::new(pb::LoadPolicyResponse {
                loaded: false,
                policy: None,
                diagnostics: diagnostics(&e.diagnostics),
            })),
            Err(other) => Err(status(other)),
        }
    }

    async fn list_policy_versions(
        &self,
        request: Request<pb::ListPolicyVersionsRequest>,
    ) -> Result<Response<pb::ListPolicyVersionsResponse>, Status> {
        let who = caller(&request)?;
        let history = self
            .0
            .engine
            .policy_versions(&who, request.get_ref().limit)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListPolicyVersionsResponse {
            versions: history.iter().map(record_to_pb).collect(),
        }))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let who = caller(&request)?;
        let r = request.get_ref();
        let input = action_input(
            &r.actor,
            &r.proposed_action,
            &r.tool,
            "",
            &r.data_classes,
            r.risk_level,
            r.policy_mode,
            &r.context,
            None,
        )?;
        let (eval, hash) = self.0.engine.explain(&who, &input).map_err(status)?;
        Ok(Response::new(pb::ExplainResponse {
            outcome: outcome_to_pb(eval.outcome) as i32,
            mode: mode_to_pb(eval.mode) as i32,
            reasons: eval.reasons,
            matched_terms: eval.matched_terms,
            trace: eval
                .trace
                .into_iter()
                .map(|t| pb::RelationTrace {
                    relation_id: t.relation_id,
                    kind: t.kind.to_string(),
                    applied: t.applied,
                    why: t.why,
                })
                .collect(),
            policy_hash: hash.to_vec(),
            reasoning: eval.reasoning,
        }))
    }
}
