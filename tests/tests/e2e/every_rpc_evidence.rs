//! EvidenceService in the every-RPC test: each RPC once with a valid request (checking
//! the answer) and once with a role the permission table refuses.

use lexecon_e2e::approved_request;
use lexecon_proto::v1::*;

use crate::every_rpc::Rpc;

/// Registers, gets, lists and verifies one artifact; `agent` decides the request the
/// artifact is linked to. Registering needs compliance_officer or admin (an auditor and
/// an agent are refused), the rest auditor or higher (an agent is refused). The viewer
/// is not used: its session may be logged out by the time this runs.
pub(crate) async fn evidence_rpcs(
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
    let content = b"every-RPC evidence: a test result".to_vec();
    let register = RegisterEvidenceRequest {
        artifact_type: ArtifactType::TestResult as i32,
        content: content.clone().into(),
        media_type: "text/plain".into(),
        title: "every-RPC test result".into(),
        decision_ids: vec![decided.decision_id.clone()],
        control_ids: vec!["soc2:CC6.1".into()],
        ..Default::default()
    };
    rpc.refused(
        "EvidenceService/RegisterEvidence",
        auditor,
        register.clone(),
    )
    .await;
    rpc.refused("EvidenceService/RegisterEvidence", agent, register.clone())
        .await;
    let registered: RegisterEvidenceResponse = rpc
        .ok(
            "EvidenceService/RegisterEvidence",
            Some(officer),
            register.clone(),
        )
        .await;
    assert!(
        registered.evidence_id.starts_with("sha256:") && registered.evidence_id.len() == 71,
        "{registered:?}"
    );
    assert!(
        registered.newly_registered && registered.ledger_index > decided.ledger_index,
        "{registered:?}"
    );
    // The same bytes from the admin: the same artifact, nothing new.
    let again: RegisterEvidenceResponse = rpc
        .ok("EvidenceService/RegisterEvidence", Some(admin), register)
        .await;
    assert_eq!(again.evidence_id, registered.evidence_id);
    assert!(!again.newly_registered, "{again:?}");
    assert_eq!(again.ledger_index, registered.ledger_index);

    let get = GetEvidenceRequest {
        evidence_id: registered.evidence_id.clone(),
        include_content: true,
    };
    rpc.refused("EvidenceService/GetEvidence", agent, get.clone())
        .await;
    let got: GetEvidenceResponse = rpc
        .ok("EvidenceService/GetEvidence", Some(auditor), get)
        .await;
    assert_eq!(got.content.as_ref(), content.as_slice());
    let evidence = got.evidence.expect("a record");
    assert_eq!(evidence.artifact_type(), ArtifactType::TestResult);
    let officer_is: WhoAmIResponse = rpc
        .ok("AuthService/WhoAmI", Some(officer), WhoAmIRequest {})
        .await;
    assert_eq!(evidence.registered_by, officer_is.principal);
    assert_eq!(evidence.size, content.len() as u64);
    assert_eq!(evidence.decision_ids, vec![decided.decision_id.clone()]);
    assert_eq!(evidence.ledger_index, registered.ledger_index);

    let list = ListEvidenceRequest {
        decision_id: decided.decision_id.clone(),
        ..Default::default()
    };
    rpc.refused("EvidenceService/ListEvidence", agent, list.clone())
        .await;
    let listed: ListEvidenceResponse = rpc
        .ok("EvidenceService/ListEvidence", Some(auditor), list)
        .await;
    assert_eq!(
        listed
            .evidence
            .iter()
            .map(|e| e.evidence_id.as_str())
            .collect::<Vec<_>>(),
        [registered.evidence_id.as_str()]
    );
    assert!(listed.next_page_token.is_empty());

    let verify = VerifyEvidenceRequest {
        evidence_id: registered.evidence_id.clone(),
    };
    rpc.refused("EvidenceService/VerifyEvidence", agent, verify.clone())
        .await;
    let verified: VerifyEvidenceResponse = rpc
        .ok("EvidenceService/VerifyEvidence", Some(auditor), verify)
        .await;
    assert!(
        verified.valid && verified.problem.is_empty(),
        "{verified:?}"
    );
}
