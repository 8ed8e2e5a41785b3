//! OversightService in the every-RPC test: each RPC once with a valid request (checking
//! the answer) and once with a role the permission table refuses (GetHaltStatus is open
//! to every role, so none is refused).

use lexecon_e2e::{approved_request, authed};
use lexecon_proto::v1::oversight_service_client::OversightServiceClient;
use lexecon_proto::v1::*;
use tonic::Code;

use crate::every_rpc::Rpc;

/// The starter policy's permitted read, escalated by paranoid mode at the caller's risk
/// level 4 (priority high: one approver).
pub(crate) fn escalating_request() -> DecideRequest {
    DecideRequest {
        risk_level: 4,
        policy_mode: PolicyMode::Paranoid as i32,
        ..approved_request()
    }
}

/// Escalates one of `agent`'s requests and has `officer` approve it, after which the
/// agent fetches its token; creates, lists and revokes an override; halts and resumes
/// an actor nobody uses; watches the halt's event; and asks who was accountable.
/// Reading needs auditor or higher (GetEscalation also the asking agent), acting needs
/// compliance_officer or admin, GetHaltStatus anyone.
pub(crate) async fn oversight_rpcs(
    rpc: &Rpc,
    admin: &str,
    agent: &str,
    officer: &str,
    auditor: &str,
    _viewer: &str,
) {
    // A viewer of its own: the test may have logged the shared viewer out already.
    let created: CreateUserResponse = rpc
        .ok(
            "AuthService/CreateUser",
            Some(admin),
            CreateUserRequest {
                username: "oversight-viewer".into(),
                password: crate::common::PASSWORD.into(),
                role: Role::Viewer as i32,
            },
        )
        .await;
    assert!(!created.mfa_required, "{created:?}");
    let login: LoginResponse = rpc
        .ok(
            "AuthService/Login",
            None,
            LoginRequest {
                username: "oversight-viewer".into(),
                password: crate::common::PASSWORD.into(),
            },
        )
        .await;
    let viewer = login.session.expect("a session").token;
    let viewer = viewer.as_str();

    // --- Escalations ---
    let decided: DecideResponse = rpc
        .ok("DecisionService/Decide", Some(agent), escalating_request())
        .await;
    assert_eq!(decided.outcome(), Outcome::Escalated, "{decided:?}");
    assert!(decided.escalation_id.starts_with("esc_"), "{decided:?}");
    assert_eq!(decided.escalation_state(), EscalationState::Pending);
    assert!(decided.capability_token.is_empty(), "{decided:?}");
    let esc = decided.escalation_id.clone();

    let list = ListEscalationsRequest {
        state: EscalationState::Pending as i32,
        ..Default::default()
    };
    rpc.refused("OversightService/ListEscalations", agent, list.clone())
        .await;
    let listed: ListEscalationsResponse = rpc
        .ok("OversightService/ListEscalations", Some(auditor), list)
        .await;
    let shown = listed
        .escalations
        .iter()
        .find(|e| e.escalation_id == esc)
        .unwrap_or_else(|| panic!("{esc} is not listed: {listed:?}"));
    assert_eq!(shown.decision_id, decided.decision_id);
    assert_eq!(shown.asking_principal, "key:rpc-agent");
    assert_eq!(shown.priority(), EscalationPriority::High, "{shown:?}");
    assert_eq!(shown.approvals_required, 1);

    let get = GetEscalationRequest {
        escalation_id: esc.clone(),
    };
    rpc.refused("OversightService/GetEscalation", viewer, get.clone())
        .await;
    let mine: GetEscalationResponse = rpc
        .ok("OversightService/GetEscalation", Some(agent), get.clone())
        .await;
    let mine = mine.escalation.expect("the escalation");
    assert_eq!(mine.state(), EscalationState::Pending);
    assert!(mine.capability_token.is_empty(), "{mine:?}");

    let approve = ResolveEscalationRequest {
        escalation_id: esc.clone(),
        approve: true,
        reason: "every-RPC test: ticket checked".into(),
    };
    rpc.refused(
        "OversightService/ResolveEscalation",
        auditor,
        approve.clone(),
    )
    .await;
    let resolved: ResolveEscalationResponse = rpc
        .ok("OversightService/ResolveEscalation", Some(officer), approve)
        .await;
    let resolved_esc = resolved.escalation.expect("the escalation");
    assert_eq!(resolved_esc.state(), EscalationState::Approved);
    assert_eq!(resolved_esc.approvals.len(), 1);
    let approval = &resolved_esc.approvals[0];
    assert_eq!(
        (
            approval.principal.as_str(),
            approval.principal_kind.as_str(),
            approval.mfa_verified,
            approval.ledger_index
        ),
        ("user:carol", "user", true, resolved.ledger_index),
        "{approval:?}"
    );
    // The asking agent now gets its token, once minted the same on every fetch.
    let fetched: GetEscalationResponse = rpc
        .ok("OversightService/GetEscalation", Some(agent), get.clone())
        .await;
    let fetched = fetched.escalation.expect("the escalation");
    assert!(fetched.capability_token.starts_with("lxc1."), "{fetched:?}");
    let again: GetEscalationResponse = rpc
        .ok("OversightService/GetEscalation", Some(agent), get.clone())
        .await;
    assert_eq!(
        again.escalation.expect("the escalation").capability_token,
        fetched.capability_token
    );
    // Others see the token's id, never the token.
    let seen: GetEscalationResponse = rpc
        .ok("OversightService/GetEscalation", Some(auditor), get)
        .await;
    let seen = seen.escalation.expect("the escalation");
    assert!(
        seen.capability_token.is_empty() && !seen.token_id.is_empty(),
        "{seen:?}"
    );

    // --- Overrides ---
    let create = CreateOverrideRequest {
        kind: OverrideKind::TimeLimitedException as i32,
        effect: OverrideEffect::Deny as i32,
        actor: "ai_agent:every_rpc_nobody".into(),
        action: "write:*".into(),
        tool: String::new(),
        justification: "every-RPC test: a deny override nobody meets".into(),
        expires_at: Some(lexecon_proto::prost_types::Timestamp {
            seconds: unix_now() + 3600,
            nanos: 0,
        }),
    };
    rpc.refused("OversightService/CreateOverride", auditor, create.clone())
        .await;
    let created: CreateOverrideResponse = rpc
        .ok("OversightService/CreateOverride", Some(admin), create)
        .await;
    let ovr = created.r#override.expect("the override");
    assert!(ovr.override_id.starts_with("ovr_") && ovr.active, "{ovr:?}");
    assert_eq!(ovr.created_by, "key:admin");
    assert_eq!(ovr.ledger_index, created.ledger_index);

    let list = ListOverridesRequest {
        include_inactive: false,
    };
    rpc.refused("OversightService/ListOverrides", agent, list)
        .await;
    let listed: ListOverridesResponse = rpc
        .ok("OversightService/ListOverrides", Some(auditor), list)
        .await;
    assert!(
        listed
            .overrides
            .iter()
            .any(|o| o.override_id == ovr.override_id),
        "{listed:?}"
    );

    let revoke = RevokeOverrideRequest {
        override_id: ovr.override_id.clone(),
        reason: "every-RPC test done".into(),
    };
    rpc.refused("OversightService/RevokeOverride", auditor, revoke.clone())
        .await;
    let revoked: RevokeOverrideResponse = rpc
        .ok("OversightService/RevokeOverride", Some(officer), revoke)
        .await;
    let revoked_ovr = revoked.r#override.expect("the override");
    assert!(
        !revoked_ovr.active && revoked_ovr.revoked_by == "user:carol",
        "{revoked_ovr:?}"
    );
    assert!(revoked.ledger_index > created.ledger_index);

    // --- Halt, status, resume ---
    let halt = HaltRequest {
        actor: "ai_agent:every_rpc_nobody".into(),
        reason: "every-RPC test: halt an actor nobody uses".into(),
    };
    rpc.refused("OversightService/Halt", auditor, halt.clone())
        .await;
    let halted: HaltResponse = rpc.ok("OversightService/Halt", Some(officer), halt).await;
    assert!(halted.halt_id.starts_with("hlt_"), "{halted:?}");
    let status: GetHaltStatusResponse = rpc
        .ok(
            "OversightService/GetHaltStatus",
            Some(agent),
            GetHaltStatusRequest {},
        )
        .await;
    assert!(!status.halted_all, "{status:?}");
    let record = status
        .halts
        .iter()
        .find(|h| h.halt_id == halted.halt_id)
        .unwrap_or_else(|| panic!("{status:?}"));
    assert_eq!(
        (record.placed_by.as_str(), record.ledger_index),
        ("user:carol", halted.ledger_index)
    );
    let resume = ResumeRequest {
        halt_id: halted.halt_id.clone(),
        reason: "every-RPC test done".into(),
    };
    rpc.refused("OversightService/Resume", auditor, resume.clone())
        .await;
    let resumed: ResumeResponse = rpc
        .ok("OversightService/Resume", Some(officer), resume)
        .await;
    assert!(resumed.ledger_index > halted.ledger_index);

    // --- WatchEvents (a server stream) ---
    let mut client = OversightServiceClient::new(rpc.channel.clone());
    let watch = WatchEventsRequest {
        from_index: Some(0),
        kinds: vec!["halt_placed".into(), "halt_resumed".into()],
    };
    let refused = client.watch_events(authed(watch.clone(), agent)).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().code(),
        Code::PermissionDenied
    );
    rpc.record_refused("OversightService/WatchEvents");
    let mut stream = client
        .watch_events(authed(watch, auditor))
        .await
        .expect("WatchEvents for an auditor")
        .into_inner();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
            .expect("an event");
        let e = m.event.expect("an event");
        if e.ledger_index == halted.ledger_index || e.ledger_index == resumed.ledger_index {
            let payload: serde_json::Value = serde_json::from_str(&e.payload_json).unwrap();
            assert_eq!(payload["halt_id"], halted.halt_id.as_str());
            kinds.push(e.kind);
        }
    }
    assert_eq!(kinds, ["halt_placed", "halt_resumed"]);
    rpc.record_ok("OversightService/WatchEvents");

    // --- Accountability ---
    let ask = GetAccountabilityRequest {
        decision_id: decided.decision_id.clone(),
    };
    rpc.refused("OversightService/GetAccountability", agent, ask.clone())
        .await;
    let who: GetAccountabilityResponse = rpc
        .ok("OversightService/GetAccountability", Some(auditor), ask)
        .await;
    assert_eq!(
        (who.decision_maker(), who.responsibility_level()),
        (DecisionMaker::Hybrid, ResponsibilityLevel::Supervised),
        "{who:?}"
    );
    assert_eq!(who.asking_principal, "key:rpc-agent");
    assert_eq!(who.escalation_id, esc);
    assert_eq!(who.resolvers.len(), 1);
    assert_eq!(who.resolvers[0].principal, "user:carol");
    assert!(who.ledger_indexes.contains(&decided.ledger_index));
    assert!(who.ledger_indexes.contains(&resolved.ledger_index));
    let policy = who.policy.expect("the policy");
    assert_eq!(policy.hash, decided.policy_version_hash);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
