//! AuditService in the every-RPC test: each RPC once with a valid request (checking
//! the answer) and once with a role the permission table refuses.

use lexecon_e2e::{approved_request, authed};
use lexecon_proto::v1::audit_service_client::AuditServiceClient;
use lexecon_proto::v1::*;
use tonic::Code;

use crate::every_rpc::Rpc;

/// `agent` decides a request; a viewer finds it with QueryDecisions (agents are
/// refused); an auditor exports the decisions as a bundle (the stream ends with the
/// manifest and its signature; viewers are refused) and finds the export with
/// ListAuditExports (viewers are refused).
pub(crate) async fn audit_rpcs(
    rpc: &Rpc,
    _admin: &str,
    agent: &str,
    _officer: &str,
    auditor: &str,
    viewer: &str,
) {
    let decided: DecideResponse = rpc
        .ok("DecisionService/Decide", Some(agent), approved_request())
        .await;

    let query = QueryDecisionsRequest {
        actor: approved_request().actor,
        page_size: 1000,
        ..Default::default()
    };
    rpc.refused("AuditService/QueryDecisions", agent, query.clone())
        .await;
    let found: QueryDecisionsResponse = rpc
        .ok("AuditService/QueryDecisions", Some(viewer), query)
        .await;
    let row = found
        .decisions
        .iter()
        .find(|d| d.decision_id == decided.decision_id)
        .expect("the decision just made is in the index");
    assert_eq!(row.ledger_index, decided.ledger_index);
    assert_eq!(row.outcome, decided.outcome);
    assert_eq!(row.proposed_action, approved_request().proposed_action);
    assert!(!row.redacted);

    // --- ExportAudit (a server stream) ---
    let mut client = AuditServiceClient::new(rpc.channel.clone());
    let export = ExportAuditRequest {
        actor: approved_request().actor,
        format: AuditFormat::Ndjson as i32,
        ..Default::default()
    };
    let refused = client.export_audit(authed(export.clone(), viewer)).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().code(),
        Code::PermissionDenied
    );
    rpc.record_refused("AuditService/ExportAudit");
    let mut stream = client
        .export_audit(authed(export, auditor))
        .await
        .expect("ExportAudit for an auditor")
        .into_inner();
    let mut paths: Vec<String> = Vec::new();
    let mut decisions = Vec::new();
    while let Some(chunk) = stream.message().await.expect("the export streams") {
        assert!(chunk.data.len() <= 64 * 1024);
        if paths.last() != Some(&chunk.path) {
            paths.push(chunk.path.clone());
        }
        if chunk.path == "decisions.ndjson" {
            decisions.extend_from_slice(&chunk.data);
        }
    }
    assert_eq!(
        paths,
        [
            "decisions.ndjson",
            "checkpoint",
            "verifier.vkey",
            "manifest.json",
            "manifest.sig"
        ]
    );
    assert!(
        String::from_utf8(decisions)
            .unwrap()
            .contains(&decided.decision_id),
        "the decision is in the bundle"
    );
    rpc.record_ok("AuditService/ExportAudit");

    let list = ListAuditExportsRequest::default();
    rpc.refused("AuditService/ListAuditExports", viewer, list.clone())
        .await;
    let listed: ListAuditExportsResponse = rpc
        .ok("AuditService/ListAuditExports", Some(auditor), list)
        .await;
    let newest = listed.exports.first().expect("the export is listed");
    assert!(newest.export_id.starts_with("exp_"), "{newest:?}");
    assert!(newest.decisions >= 1 && newest.tree_size > decided.ledger_index);
    assert!(newest.ledger_index >= newest.tree_size, "{newest:?}");
}
