//! The MCP gateway's RPCs of DecisionService in the every-RPC test (contract §11):
//! `RecordCompletion` and `CheckTools`, each once with a valid request (checking the
//! answer) and once with a role the permission table refuses.

use lexecon_e2e::{approved_request, unary};
use lexecon_proto::v1::*;
use tonic::Code;

use crate::every_rpc::{Rpc, path};

/// The agent decides an approved request and records its completion (twice: the second
/// answers the first entry); the admin, another principal, may not complete the agent's
/// decision; an auditor may call neither RPC, an officer not CheckTools. The auditor
/// then sees the decision completed in QueryDecisions.
pub(crate) async fn mcp_rpcs(
    rpc: &Rpc,
    admin: &str,
    agent: &str,
    officer: &str,
    auditor: &str,
    _viewer: &str,
) {
    let decided: DecideResponse = rpc
        .ok("DecisionService/Decide", Some(agent), approved_request())
        .await;
    assert_eq!(decided.outcome(), Outcome::Approved, "{decided:?}");
    let complete = RecordCompletionRequest {
        decision_id: decided.decision_id.clone(),
        is_error: false,
        duration_us: 1_234,
        result_sha256: vec![7u8; 32],
        ..Default::default()
    };
    rpc.refused(
        "DecisionService/RecordCompletion",
        auditor,
        complete.clone(),
    )
    .await;
    let recorded: RecordCompletionResponse = rpc
        .ok(
            "DecisionService/RecordCompletion",
            Some(agent),
            complete.clone(),
        )
        .await;
    assert!(
        recorded.newly_recorded && recorded.ledger_index > decided.ledger_index,
        "{recorded:?}"
    );
    let again: RecordCompletionResponse = rpc
        .ok(
            "DecisionService/RecordCompletion",
            Some(agent),
            complete.clone(),
        )
        .await;
    assert_eq!(again.ledger_index, recorded.ledger_index);
    assert!(!again.newly_recorded, "{again:?}");
    let not_theirs = unary::<_, RecordCompletionResponse>(
        &rpc.channel,
        &path("DecisionService/RecordCompletion"),
        complete.clone(),
        Some(admin),
    )
    .await
    .unwrap_err();
    assert_eq!(not_theirs.code(), Code::NotFound, "{not_theirs:?}");
    let short_hash = unary::<_, RecordCompletionResponse>(
        &rpc.channel,
        &path("DecisionService/RecordCompletion"),
        RecordCompletionRequest {
            result_sha256: vec![7u8; 31],
            ..complete
        },
        Some(agent),
    )
    .await
    .unwrap_err();
    assert_eq!(short_hash.code(), Code::InvalidArgument, "{short_hash:?}");
    assert!(
        short_hash.message().starts_with("result_sha256"),
        "{short_hash:?}"
    );

    let queried: QueryDecisionsResponse = rpc
        .ok(
            "AuditService/QueryDecisions",
            Some(auditor),
            QueryDecisionsRequest {
                actor: decided.actor.clone(),
                page_size: 1000,
                ..Default::default()
            },
        )
        .await;
    let row = queried
        .decisions
        .iter()
        .find(|d| d.decision_id == decided.decision_id)
        .expect("the decision is listed");
    assert!(row.completed, "{row:?}");
    assert_eq!(row.completion_ledger_index, recorded.ledger_index);

    let probe = |tool: &str, action: &str| ToolProbe {
        tool: tool.into(),
        proposed_action: action.into(),
        data_classes: vec!["pii".into()],
        context: [("mcp.server".to_owned(), "db".to_owned())].into(),
        ..Default::default()
    };
    let check = CheckToolsRequest {
        actor: "ai_agent:customer_service".into(),
        tools: vec![
            // The starter policy forbids every agent deleting.
            probe("database_query", "delete:customer_data"),
            probe("database_query", "read:customer_data"),
            // No permit for this tool, whatever the context.
            probe("db/drop_table", "read:customer_data"),
        ],
    };
    rpc.refused("DecisionService/CheckTools", officer, check.clone())
        .await;
    let checked: CheckToolsResponse = rpc
        .ok("DecisionService/CheckTools", Some(agent), check.clone())
        .await;
    assert_eq!(checked.always_denied, vec![true, false, true]);
    let unbound = unary::<_, CheckToolsResponse>(
        &rpc.channel,
        &path("DecisionService/CheckTools"),
        CheckToolsRequest {
            actor: "ai_agent:someone_else".into(),
            ..check
        },
        Some(agent),
    )
    .await
    .unwrap_err();
    assert_eq!(unbound.code(), Code::PermissionDenied, "{unbound:?}");
}
