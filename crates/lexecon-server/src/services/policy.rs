//! `lexecon.v1.PolicyService`.

use lexecon_engine::policy::ActivePolicy;
use lexecon_engine::{EngineError, PolicyRecord};
use lexecon_policy::{Diagnostic, Severity};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use super::{Shared, caller, status};
use crate::convert::{action_request, mode_to_pb, outcome_to_pb, timestamp_to_pb};

/// Largest policy source accepted, in bytes.
const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;

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

fn record_to_pb(r: &PolicyRecord, active: Option<&ActivePolicy>) -> pb::PolicyVersion {
    pb::PolicyVersion {
        name: r.name.clone(),
        version: r.version.clone(),
        hash: r.hash.to_vec(),
        mode: mode_word_to_pb(&r.mode),
        loaded_at: Some(timestamp_to_pb(r.loaded_at)),
        loaded_by: r.loaded_by.clone(),
        ledger_index: r.ledger_index,
        terms: active.map_or(0, |a| {
            u32::try_from(a.compiled.term_count()).unwrap_or(u32::MAX)
        }),
        relations: active.map_or(0, |a| {
            u32::try_from(a.compiled.relation_count()).unwrap_or(u32::MAX)
        }),
    }
}

fn check_size(source: &str) -> Result<(), Status> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(Status::invalid_argument(format!(
            "source is {} bytes; at most {MAX_POLICY_BYTES} are allowed",
            source.len()
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl PolicyService for PolicySvc {
    async fn get_active_policy(
        &self,
        _request: Request<pb::GetActivePolicyRequest>,
    ) -> Result<Response<pb::GetActivePolicyResponse>, Status> {
        let active = self.0.engine.active_policy();
        let history = self.0.engine.policy_history(20).await.map_err(status)?;
        let hash = active.compiled.hash();
        let record = history
            .iter()
            .find(|r| r.hash == hash)
            .cloned()
            .unwrap_or(PolicyRecord {
                hash,
                name: active.compiled.name().to_owned(),
                version: active.compiled.version().to_owned(),
                mode: active.compiled.mode().as_str().to_owned(),
                loaded_at: active.loaded_at,
                loaded_by: active.loaded_by.clone(),
                ledger_index: 0,
            });
        Ok(Response::new(pb::GetActivePolicyResponse {
            policy: Some(record_to_pb(&record, Some(&active))),
            source: active.source.clone(),
        }))
    }

    async fn validate_policy(
        &self,
        request: Request<pb::ValidatePolicyRequest>,
    ) -> Result<Response<pb::ValidatePolicyResponse>, Status> {
        let source = &request.get_ref().source;
        check_size(source)?;
        Ok(Response::new(
            match lexecon_engine::policy::compile(source, "request") {
                Ok((compiled, warnings)) => pb::ValidatePolicyResponse {
                    valid: true,
                    diagnostics: diagnostics(&warnings),
                    hash: compiled.hash().to_vec(),
                },
                Err(e) => pb::ValidatePolicyResponse {
                    valid: false,
                    diagnostics: diagnostics(&e.diagnostics),
                    hash: Vec::new(),
                },
            },
        ))
    }

    async fn load_policy(
        &self,
        request: Request<pb::LoadPolicyRequest>,
    ) -> Result<Response<pb::LoadPolicyResponse>, Status> {
        let who = caller(&request)?;
        let source = &request.get_ref().source;
        check_size(source)?;
        match self
            .0
            .engine
            .load_policy(source, "LoadPolicy", &who.name)
            .await
        {
            Ok(active) => {
                let history = self.0.engine.policy_history(1).await.map_err(status)?;
                Ok(Response::new(pb::LoadPolicyResponse {
                    loaded: true,
                    policy: history.first().map(|r| record_to_pb(r, Some(&active))),
                    diagnostics: diagnostics(&active.warnings),
                }))
            }
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
        let history = self
            .0
            .engine
            .policy_history(request.get_ref().limit)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListPolicyVersionsResponse {
            versions: history.iter().map(|r| record_to_pb(r, None)).collect(),
        }))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let r = request.get_ref();
        let req = action_request(
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
        let (eval, hash) = self.0.engine.explain(&req);
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
