//! ComplianceService and LedgerService/Redact in the every-RPC test: each RPC once with a
//! valid request (checking the answer) and once with a role the permission table
//! refuses.

use lexecon_e2e::{approved_request, unary};
use lexecon_proto::v1::*;
use tonic::Code;

use crate::every_rpc::{Rpc, path};

/// The reads need the auditor role or higher (an agent is refused); holds and
/// interventions compliance_officer or admin (an auditor is refused); Redact admin (a
/// compliance officer is refused). Runs after `LedgerService/Verify`, so the record
/// keeping shows a verification. The viewer is not used: its session may be logged out
/// by the time this runs.
pub(crate) async fn compliance_rpcs(
    rpc: &Rpc,
    admin: &str,
    agent: &str,
    officer: &str,
    auditor: &str,
    _viewer: &str,
) {
    rpc.refused(
        "ComplianceService/ListFrameworks",
        agent,
        ListFrameworksRequest {},
    )
    .await;
    let frameworks: ListFrameworksResponse = rpc
        .ok(
            "ComplianceService/ListFrameworks",
            Some(auditor),
            ListFrameworksRequest {},
        )
        .await;
    assert_eq!(
        frameworks
            .frameworks
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>(),
        [
            "soc2",
            "iso27001",
            "gdpr",
            "hipaa",
            "pci_dss",
            "nist_csf",
            "eu_ai_act"
        ]
    );
    assert!(
        frameworks
            .frameworks
            .iter()
            .all(|f| !f.name.is_empty() && f.control_count > 0),
        "{frameworks:?}"
    );

    let status_request = GetComplianceStatusRequest {
        framework: "soc2".into(),
    };
    rpc.refused(
        "ComplianceService/GetComplianceStatus",
        agent,
        status_request.clone(),
    )
    .await;
    let status: GetComplianceStatusResponse = rpc
        .ok(
            "ComplianceService/GetComplianceStatus",
            Some(auditor),
            status_request,
        )
        .await;
    assert_eq!(status.framework, "soc2");
    let soc2 = frameworks.frameworks.first().expect("soc2");
    assert_eq!(status.controls.len(), soc2.control_count as usize);
    assert!(
        (0.0..=100.0).contains(&status.coverage_percent),
        "{}",
        status.coverage_percent
    );
    assert!(status.evaluated_at.is_some());
    assert!(
        status.controls.iter().all(|c| c.framework == "soc2"
            && !c.control_id.is_empty()
            && !c.why.is_empty()
            && c.status() != ControlStatus::Unspecified),
        "{status:?}"
    );
    let unknown = unary::<_, GetComplianceStatusResponse>(
        &rpc.channel,
        &path("ComplianceService/GetComplianceStatus"),
        GetComplianceStatusRequest {
            framework: "sox".into(),
        },
        Some(auditor),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
    assert!(unknown.message().contains("framework"), "{unknown:?}");

    let gaps_request = GetGapsRequest {
        framework: "eu_ai_act".into(),
    };
    rpc.refused("ComplianceService/GetGaps", agent, gaps_request.clone())
        .await;
    let gaps: GetGapsResponse = rpc
        .ok("ComplianceService/GetGaps", Some(auditor), gaps_request)
        .await;
    assert_eq!(gaps.framework, "eu_ai_act");
    assert!(
        gaps.gaps.iter().all(|g| matches!(
            g.status(),
            ControlStatus::NotSatisfied | ControlStatus::Partial
        ) && !g.remediation.is_empty()),
        "{gaps:?}"
    );

    rpc.refused(
        "ComplianceService/GetTechnicalDocumentation",
        agent,
        GetTechnicalDocumentationRequest {},
    )
    .await;
    let doc: GetTechnicalDocumentationResponse = rpc
        .ok(
            "ComplianceService/GetTechnicalDocumentation",
            Some(auditor),
            GetTechnicalDocumentationRequest {},
        )
        .await;
    assert!(doc.markdown.starts_with('#'), "{}", doc.markdown);
    let json: serde_json::Value = serde_json::from_str(&doc.json).expect("JSON");
    assert!(json.is_object(), "{json}");

    rpc.refused(
        "ComplianceService/GetRecordKeepingStatus",
        agent,
        GetRecordKeepingStatusRequest {},
    )
    .await;
    let records: GetRecordKeepingStatusResponse = rpc
        .ok(
            "ComplianceService/GetRecordKeepingStatus",
            Some(auditor),
            GetRecordKeepingStatusRequest {},
        )
        .await;
    assert!(records.logging_enabled, "{records:?}");
    assert_eq!(records.log_retention_days, 3650);
    assert!(
        records.total_entries > 0 && records.entries_by_kind.contains_key("decision"),
        "{records:?}"
    );
    let verification = records.last_verification.expect("LedgerService/Verify ran");
    assert!(
        verification.valid && verification.trusted_key_ring && verification.ledger_index > 0,
        "{verification:?}"
    );

    // A hold on one decision: its redaction is refused, naming the hold, until released.
    let held: DecideResponse = rpc
        .ok("DecisionService/Decide", Some(agent), approved_request())
        .await;
    let place = PlaceLegalHoldRequest {
        reason: "every-RPC test".into(),
        matter: "case RPC-1".into(),
        decision_ids: vec![held.decision_id.clone()],
        ..Default::default()
    };
    rpc.refused("ComplianceService/PlaceLegalHold", auditor, place.clone())
        .await;
    let placed: PlaceLegalHoldResponse = rpc
        .ok("ComplianceService/PlaceLegalHold", Some(officer), place)
        .await;
    assert!(placed.hold_id.starts_with("hld_"), "{placed:?}");
    assert!(placed.ledger_index > held.ledger_index, "{placed:?}");

    let list = ListLegalHoldsRequest {
        include_released: false,
    };
    rpc.refused("ComplianceService/ListLegalHolds", agent, list)
        .await;
    let holds: ListLegalHoldsResponse = rpc
        .ok("ComplianceService/ListLegalHolds", Some(auditor), list)
        .await;
    let hold = holds
        .holds
        .iter()
        .find(|h| h.hold_id == placed.hold_id)
        .expect("the hold is listed");
    assert!(hold.active, "{hold:?}");
    assert_eq!(hold.decision_ids, std::slice::from_ref(&held.decision_id));
    assert_eq!(hold.ledger_index, placed.ledger_index);

    let redact = RedactRequest {
        index: held.ledger_index,
        reason: "every-RPC test: erasure request".into(),
    };
    rpc.refused("LedgerService/Redact", officer, redact.clone())
        .await;
    let refused = unary::<_, RedactResponse>(
        &rpc.channel,
        &path("LedgerService/Redact"),
        redact.clone(),
        Some(admin),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains(&placed.hold_id),
        "the refusal names the hold: {refused:?}"
    );

    let release = ReleaseLegalHoldRequest {
        hold_id: placed.hold_id.clone(),
        reason: "every-RPC test done".into(),
    };
    rpc.refused(
        "ComplianceService/ReleaseLegalHold",
        auditor,
        release.clone(),
    )
    .await;
    let released: ReleaseLegalHoldResponse = rpc
        .ok("ComplianceService/ReleaseLegalHold", Some(officer), release)
        .await;
    assert!(released.ledger_index > placed.ledger_index, "{released:?}");
    let redacted: RedactResponse = rpc.ok("LedgerService/Redact", Some(admin), redact).await;
    assert!(
        redacted.ledger_index > released.ledger_index,
        "{redacted:?}"
    );
    assert!(
        redacted.erased.iter().any(|e| e == "decision_index"),
        "{redacted:?}"
    );

    // An intervention on another decision: disregard only records.
    let other: DecideResponse = rpc
        .ok("DecisionService/Decide", Some(agent), approved_request())
        .await;
    let intervene = RecordInterventionRequest {
        decision_id: other.decision_id.clone(),
        kind: InterventionKind::Disregard as i32,
        reason: "every-RPC test: the output was not used".into(),
        override_id: String::new(),
    };
    rpc.refused(
        "ComplianceService/RecordIntervention",
        auditor,
        intervene.clone(),
    )
    .await;
    let intervened: RecordInterventionResponse = rpc
        .ok(
            "ComplianceService/RecordIntervention",
            Some(officer),
            intervene,
        )
        .await;
    assert!(
        intervened.intervention_id.starts_with("itv_"),
        "{intervened:?}"
    );
    assert!(
        intervened.ledger_index > other.ledger_index
            && intervened.halt_id.is_empty()
            && intervened.revoked_token_id.is_empty(),
        "{intervened:?}"
    );

    let report = GetComplianceReportRequest {
        framework: "gdpr".into(),
        format: ReportFormat::Html as i32,
    };
    rpc.refused(
        "ComplianceService/GetComplianceReport",
        agent,
        report.clone(),
    )
    .await;
    let html: GetComplianceReportResponse = rpc
        .ok(
            "ComplianceService/GetComplianceReport",
            Some(auditor),
            report,
        )
        .await;
    assert!(
        html.media_type.starts_with("text/html"),
        "{}",
        html.media_type
    );
    assert!(html.file_name.ends_with(".html"), "{}", html.file_name);
    let text = String::from_utf8(html.content).expect("UTF-8");
    assert!(text.contains("<html"), "{}", &text[..text.len().min(200)]);
}
