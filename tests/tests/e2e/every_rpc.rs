//! Every RPC of every service over the wire, through a real server: each once with a
//! valid request (checking the answer), once with a principal whose role the permission
//! table refuses (where one exists), and each open RPC once without a token. The set
//! of RPCs comes from the `.proto` files at test time, so an RPC added there without
//! being added here fails the test.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use lexecon_e2e::*;
use lexecon_proto::v1::*;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::PASSWORD;

/// RPCs every authenticated role may call: no role is refused, so none is tried.
const FOR_EVERY_ROLE: &[&str] = &[
    "DecisionService/VerifyToken",
    "RiskService/Assess",
    "AuthService/WhoAmI",
    "OversightService/GetHaltStatus",
];

/// RPCs that need no token.
const OPEN: &[&str] = &[
    "AuthService/Login",
    "AuthService/VerifyMfa",
    "AuthService/ListOidcProviders",
    "AuthService/ExchangeOidcToken",
];

/// What the test called, by `Service/Method`.
#[derive(Debug, Default)]
struct Called {
    ok: BTreeSet<String>,
    refused: BTreeSet<String>,
    open: BTreeSet<String>,
}

/// Calls RPCs by name and records which were called how. The area modules
/// (`every_rpc_<area>.rs`) use it too.
#[derive(Debug)]
pub(crate) struct Rpc {
    pub(crate) channel: Channel,
    called: Mutex<Called>,
}

pub(crate) fn path(method: &str) -> String {
    if method.starts_with("grpc.") {
        format!("/{method}")
    } else {
        format!("/lexecon.v1.{method}")
    }
}

impl Rpc {
    /// A valid call that must succeed; `token` `None` calls an open RPC without one.
    pub(crate) async fn ok<Req, Resp>(
        &self,
        method: &str,
        token: Option<&str>,
        request: Req,
    ) -> Resp
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let response = unary::<Req, Resp>(&self.channel, &path(method), request, token)
            .await
            .unwrap_or_else(|status| panic!("{method}: expected OK, got {status:?}"));
        let mut called = self.called.lock().unwrap();
        called.ok.insert(method.to_owned());
        if token.is_none() {
            called.open.insert(method.to_owned());
        }
        response
    }

    /// A call by a principal whose role may not call `method`: `PERMISSION_DENIED`.
    pub(crate) async fn refused<Req>(&self, method: &str, token: &str, request: Req)
    where
        Req: prost::Message + Send + Sync + 'static,
    {
        let result = unary::<Req, ()>(&self.channel, &path(method), request, Some(token)).await;
        match result {
            Err(status) if status.code() == Code::PermissionDenied => {}
            other => {
                panic!("{method}: expected PERMISSION_DENIED for a refused role, got {other:?}")
            }
        }
        self.called
            .lock()
            .unwrap()
            .refused
            .insert(method.to_owned());
    }
}

impl Rpc {
    /// Records a valid call the caller made itself (a server-streaming RPC).
    pub(crate) fn record_ok(&self, method: &str) {
        self.called.lock().unwrap().ok.insert(method.to_owned());
    }

    /// Records a refused call the caller checked itself (a server-streaming RPC).
    pub(crate) fn record_refused(&self, method: &str) {
        self.called
            .lock()
            .unwrap()
            .refused
            .insert(method.to_owned());
    }
}

/// Every `Service/Method` declared in `proto/lexecon/v1/*.proto`.
fn rpcs_in_protos() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/lexecon/v1");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "proto") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let mut service = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap().trim();
                let service = service.as_deref().unwrap_or_else(|| {
                    panic!("rpc {name} outside a service in {}", file.display())
                });
                out.insert(format!("{service}/{name}"));
            }
        }
    }
    assert!(
        out.len() >= 30,
        "too few RPCs found in {}: {out:?}",
        dir.display()
    );
    out
}

fn config_with_oidc(data: &Path) {
    std::fs::write(data.join("corp-jwks.json"), crate::oidc_test_jwks()).unwrap();
    let mut config = std::fs::read_to_string(data.join("lexecon.toml")).unwrap();
    config.push_str(&format!(
        "\n[[auth.oidc]]\nname = \"corp\"\nissuer = \"https://login.example.com\"\nclient_id = \"lexecon\"\njwks_file = \"{}\"\n",
        data.join("corp-jwks.json").display()
    ));
    std::fs::write(data.join("lexecon.toml"), config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_over_the_wire_with_a_valid_request_a_refused_role_and_no_token() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    config_with_oidc(&data);
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let rpc = Rpc {
        channel: server.channel().await,
        called: Mutex::new(Called::default()),
    };
    let admin = admin.as_str();

    // --- AuthService: the principals the rest of the test uses. ---
    let providers: ListOidcProvidersResponse = rpc
        .ok(
            "AuthService/ListOidcProviders",
            None,
            ListOidcProvidersRequest {},
        )
        .await;
    assert_eq!(
        providers
            .providers
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["corp"]
    );

    let agent_request = CreateApiKeyRequest {
        name: "rpc-agent".into(),
        role: Role::Agent as i32,
        expires_at: None,
        actors: vec![
            "ai_agent:customer_service".into(),
            "ai_agent:assistant".into(),
        ],
        llm_roles: vec!["support".into()],
    };
    let agent_key: CreateApiKeyResponse = rpc
        .ok(
            "AuthService/CreateApiKey",
            Some(admin),
            agent_request.clone(),
        )
        .await;
    assert!(agent_key.api_key.starts_with("lxk_"), "{agent_key:?}");
    assert!(
        !agent_key.key_id.is_empty() && agent_key.ledger_index > 0,
        "{agent_key:?}"
    );
    let agent = agent_key.api_key.clone();
    let agent = agent.as_str();
    rpc.refused(
        "AuthService/CreateApiKey",
        agent,
        CreateApiKeyRequest {
            name: "escalation".into(),
            role: Role::Admin as i32,
            ..Default::default()
        },
    )
    .await;

    let me: WhoAmIResponse = rpc
        .ok("AuthService/WhoAmI", Some(agent), WhoAmIRequest {})
        .await;
    assert_eq!(me.principal_kind, "api_key", "{me:?}");
    assert_eq!(me.name, "rpc-agent");
    assert_eq!(me.role(), Role::Agent);
    assert_eq!(me.principal, "key:rpc-agent");
    assert_eq!(me.actors, agent_request.actors);
    assert_eq!(me.llm_roles, ["support"]);

    let new_user = |name: &str, role: Role| CreateUserRequest {
        username: name.into(),
        password: PASSWORD.into(),
        role: role as i32,
    };
    rpc.refused(
        "AuthService/CreateUser",
        agent,
        new_user("mallory", Role::Admin),
    )
    .await;
    for (name, role) in [
        ("vera", Role::Viewer),
        ("audrey", Role::Auditor),
        ("carol", Role::ComplianceOfficer),
    ] {
        let created: CreateUserResponse = rpc
            .ok("AuthService/CreateUser", Some(admin), new_user(name, role))
            .await;
        assert!(!created.user_id.is_empty(), "{created:?}");
        assert_eq!(
            created.mfa_required,
            role == Role::ComplianceOfficer,
            "{name}: {created:?}"
        );
    }
    let login = |name: &str| LoginRequest {
        username: name.into(),
        password: PASSWORD.into(),
    };
    let session = |r: LoginResponse| {
        assert!(!r.mfa_required, "{r:?}");
        r.session.expect("a session").token
    };
    let viewer: LoginResponse = rpc.ok("AuthService/Login", None, login("vera")).await;
    let viewer = session(viewer);
    let viewer = viewer.as_str();
    let auditor: LoginResponse = rpc.ok("AuthService/Login", None, login("audrey")).await;
    let auditor = session(auditor);
    let auditor = auditor.as_str();

    // A compliance officer must enroll in MFA, then log in with a second factor.
    let enrolling: LoginResponse = rpc.ok("AuthService/Login", None, login("carol")).await;
    let enrolling = session(enrolling);
    rpc.refused("AuthService/EnrollMfa", agent, EnrollMfaRequest {})
        .await;
    let enrolled: EnrollMfaResponse = rpc
        .ok(
            "AuthService/EnrollMfa",
            Some(&enrolling),
            EnrollMfaRequest {},
        )
        .await;
    assert!(!enrolled.secret_base32.is_empty(), "no TOTP secret");
    assert!(
        enrolled.otpauth_uri.starts_with("otpauth://"),
        "{}",
        enrolled.otpauth_uri
    );
    assert_eq!(enrolled.backup_codes.len(), 10);
    let challenge: LoginResponse = rpc.ok("AuthService/Login", None, login("carol")).await;
    assert!(
        challenge.mfa_required && !challenge.mfa_challenge.is_empty(),
        "{challenge:?}"
    );
    let verified: VerifyMfaResponse = rpc
        .ok(
            "AuthService/VerifyMfa",
            None,
            VerifyMfaRequest {
                mfa_challenge: challenge.mfa_challenge,
                code: enrolled.backup_codes[0].clone(),
            },
        )
        .await;
    let officer = verified.session.expect("a session").token;
    let officer = officer.as_str();
    let me: WhoAmIResponse = rpc
        .ok("AuthService/WhoAmI", Some(officer), WhoAmIRequest {})
        .await;
    assert_eq!(
        (me.principal.as_str(), me.role(), me.mfa_verified),
        ("user:carol", Role::ComplianceOfficer, true),
        "{me:?}"
    );

    // --- DecisionService ---
    rpc.refused("DecisionService/Decide", viewer, approved_request())
        .await;
    let decided: DecideResponse = rpc
        .ok("DecisionService/Decide", Some(agent), approved_request())
        .await;
    assert_eq!(decided.outcome(), Outcome::Approved, "{decided:?}");
    assert!(decided.decision_id.starts_with("dec_"), "{decided:?}");
    assert_eq!(decided.actor, "ai_agent:customer_service");
    assert!(decided.capability_token.starts_with("lxc1."), "{decided:?}");
    assert_eq!(decided.ledger_leaf_hash.len(), 32);
    let verify_token = VerifyTokenRequest {
        token: decided.capability_token.clone(),
        actor: "ai_agent:customer_service".into(),
        ..Default::default()
    };
    let valid: VerifyTokenResponse = rpc
        .ok(
            "DecisionService/VerifyToken",
            Some(viewer),
            verify_token.clone(),
        )
        .await;
    assert!(valid.valid, "{valid:?}");
    assert_eq!(valid.decision_id, decided.decision_id);
    let revoke = RevokeTokenRequest {
        token_id: valid.token_id.clone(),
        reason: "every-RPC test".into(),
    };
    rpc.refused("DecisionService/RevokeToken", agent, revoke.clone())
        .await;
    let revoked: RevokeTokenResponse = rpc
        .ok("DecisionService/RevokeToken", Some(officer), revoke)
        .await;
    assert!(
        revoked.newly_revoked && revoked.ledger_index > 0,
        "{revoked:?}"
    );
    let now_invalid: VerifyTokenResponse = rpc
        .ok("DecisionService/VerifyToken", Some(agent), verify_token)
        .await;
    assert_eq!(
        (now_invalid.valid, now_invalid.error_kind.as_str()),
        (false, "revoked"),
        "{now_invalid:?}"
    );

    // --- PolicyService ---
    rpc.refused(
        "PolicyService/GetActivePolicy",
        agent,
        GetActivePolicyRequest {},
    )
    .await;
    let active: GetActivePolicyResponse = rpc
        .ok(
            "PolicyService/GetActivePolicy",
            Some(viewer),
            GetActivePolicyRequest {},
        )
        .await;
    let active_version = active.policy.clone().expect("a policy version");
    assert_eq!(active_version.name, "starter", "{active_version:?}");
    assert_eq!(active_version.hash, decided.policy_version_hash);
    assert!(active.source.contains("[policy]"), "{}", active.source);
    let v2 = crate::common::starter_with_version(&data, "2.0.0");
    rpc.refused(
        "PolicyService/ValidatePolicy",
        agent,
        ValidatePolicyRequest { source: v2.clone() },
    )
    .await;
    let validated: ValidatePolicyResponse = rpc
        .ok(
            "PolicyService/ValidatePolicy",
            Some(viewer),
            ValidatePolicyRequest { source: v2.clone() },
        )
        .await;
    assert!(
        validated.valid && validated.hash.len() == 32,
        "{validated:?}"
    );
    rpc.refused(
        "PolicyService/LoadPolicy",
        agent,
        LoadPolicyRequest { source: v2.clone() },
    )
    .await;
    let loaded: LoadPolicyResponse = rpc
        .ok(
            "PolicyService/LoadPolicy",
            Some(admin),
            LoadPolicyRequest { source: v2.clone() },
        )
        .await;
    assert!(loaded.loaded, "{loaded:?}");
    let loaded_version = loaded.policy.expect("the loaded version");
    assert_eq!(loaded_version.hash, validated.hash);
    assert_eq!(loaded_version.version, "2.0.0");
    rpc.refused(
        "PolicyService/ListPolicyVersions",
        agent,
        ListPolicyVersionsRequest { limit: 0 },
    )
    .await;
    let versions: ListPolicyVersionsResponse = rpc
        .ok(
            "PolicyService/ListPolicyVersions",
            Some(viewer),
            ListPolicyVersionsRequest { limit: 0 },
        )
        .await;
    let newest = versions.versions.first().expect("versions");
    assert_eq!(newest.hash, validated.hash, "newest first: {versions:?}");
    assert_eq!((newest.terms, newest.relations), (6, 3), "{newest:?}");
    assert!(versions.versions.len() >= 2, "{versions:?}");
    let explain = ExplainRequest {
        actor: "ai_agent:customer_service".into(),
        proposed_action: "delete:customer_records".into(),
        tool: "database_query".into(),
        ..Default::default()
    };
    rpc.refused("PolicyService/Explain", agent, explain.clone())
        .await;
    let explained: ExplainResponse = rpc.ok("PolicyService/Explain", Some(viewer), explain).await;
    assert_eq!(explained.outcome(), Outcome::Denied, "{explained:?}");
    assert!(
        explained.reasons.iter().any(|r| r == "agents-never-delete"),
        "{explained:?}"
    );
    assert_eq!(explained.policy_hash, validated.hash);

    // --- LedgerService ---
    let entries_request = GetEntriesRequest {
        from: 0,
        limit: 1000,
        kind: String::new(),
    };
    rpc.refused("LedgerService/GetEntries", agent, entries_request.clone())
        .await;
    let entries: GetEntriesResponse = rpc
        .ok("LedgerService/GetEntries", Some(viewer), entries_request)
        .await;
    assert!(
        entries
            .entries
            .iter()
            .any(|e| e.kind == "decision" && e.index == decided.ledger_index),
        "the decision is not in the ledger"
    );
    let entry_request = GetEntryRequest {
        index: decided.ledger_index,
    };
    rpc.refused("LedgerService/GetEntry", agent, entry_request)
        .await;
    let entry: GetEntryResponse = rpc
        .ok("LedgerService/GetEntry", Some(viewer), entry_request)
        .await;
    let entry = entry.entry.expect("an entry");
    assert_eq!(entry.kind, "decision");
    assert_eq!(entry.leaf_hash, decided.ledger_leaf_hash);
    let decision_payload = crate::common::payload(&entry);
    assert_eq!(
        decision_payload["decision_id"],
        decided.decision_id.as_str()
    );
    assert_eq!(decision_payload["principal"], "key:rpc-agent");
    rpc.refused("LedgerService/Verify", viewer, VerifyRequest {})
        .await;
    let verified: VerifyResponse = rpc
        .ok("LedgerService/Verify", Some(auditor), VerifyRequest {})
        .await;
    assert!(
        verified.valid && verified.entries > decided.ledger_index,
        "{verified:?}"
    );
    rpc.refused(
        "LedgerService/GetCheckpoint",
        agent,
        GetCheckpointRequest {},
    )
    .await;
    // Checkpoints are signed on a timer: wait (bounded) for one covering the decision.
    let mut checkpoint = GetCheckpointResponse::default();
    for _ in 0..300 {
        checkpoint = rpc
            .ok(
                "LedgerService/GetCheckpoint",
                Some(viewer),
                GetCheckpointRequest {},
            )
            .await;
        if checkpoint.tree_size > decided.ledger_index {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        checkpoint.tree_size > decided.ledger_index,
        "no checkpoint covers the decision after 30 s: {checkpoint:?}"
    );
    assert!(
        checkpoint.note.contains('\u{2014}'),
        "a signed note: {}",
        checkpoint.note
    );
    assert_eq!(checkpoint.root_hash.len(), 32);
    assert!(!checkpoint.verifier_key.is_empty());
    let inclusion_request = GetInclusionProofRequest {
        index: decided.ledger_index,
        tree_size: checkpoint.tree_size,
    };
    rpc.refused("LedgerService/GetInclusionProof", agent, inclusion_request)
        .await;
    let inclusion: GetInclusionProofResponse = rpc
        .ok(
            "LedgerService/GetInclusionProof",
            Some(viewer),
            inclusion_request,
        )
        .await;
    assert_eq!(inclusion.leaf_hash, decided.ledger_leaf_hash);
    assert_eq!(inclusion.root_hash, checkpoint.root_hash);
    assert_eq!(inclusion.tree_size, checkpoint.tree_size);
    let consistency_request = GetConsistencyProofRequest {
        size1: 1,
        size2: checkpoint.tree_size,
    };
    rpc.refused(
        "LedgerService/GetConsistencyProof",
        agent,
        consistency_request,
    )
    .await;
    let consistency: GetConsistencyProofResponse = rpc
        .ok(
            "LedgerService/GetConsistencyProof",
            Some(viewer),
            consistency_request,
        )
        .await;
    assert_eq!(consistency.root2, checkpoint.root_hash);
    assert_eq!(consistency.root1.len(), 32);
    assert_eq!(
        (consistency.size1, consistency.size2),
        (1, checkpoint.tree_size)
    );

    // --- RiskService ---
    let assessed: AssessResponse = rpc
        .ok(
            "RiskService/Assess",
            Some(agent),
            AssessRequest {
                actor: "ai_agent:customer_service".into(),
                proposed_action: "delete:customer_records".into(),
                data_classes: vec!["pii".into()],
                ..Default::default()
            },
        )
        .await;
    assert!(assessed.risk_score > 0, "{assessed:?}");
    let dims = assessed.dimensions.expect("dimensions");
    assert!(
        dims.privacy.is_some_and(|d| d.score > 0),
        "pii is a privacy risk"
    );

    // --- BudgetService ---
    let authorize = AuthorizeRequest {
        model: "gpt-4o-mini".into(),
        user_id: "alice".into(),
        roles: vec!["support".into()],
        estimated_input_tokens: 1000,
        max_output_tokens: 500,
        actor: "ai_agent:assistant".into(),
    };
    rpc.refused("BudgetService/Authorize", viewer, authorize.clone())
        .await;
    let reserved: AuthorizeResponse = rpc
        .ok("BudgetService/Authorize", Some(agent), authorize.clone())
        .await;
    assert!(reserved.allowed, "{reserved:?}");
    assert!(reserved.reservation_id.starts_with("res_"), "{reserved:?}");
    assert!(reserved.reserved_micros > 0, "{reserved:?}");
    let settle = SettleRequest {
        reservation_id: reserved.reservation_id.clone(),
        input_tokens: 800,
        output_tokens: 200,
    };
    rpc.refused("BudgetService/Settle", viewer, settle.clone())
        .await;
    let settled: SettleResponse = rpc.ok("BudgetService/Settle", Some(agent), settle).await;
    assert!(
        settled.newly_settled && settled.charged_micros > 0,
        "{settled:?}"
    );
    assert!(
        settled.charged_micros <= reserved.reserved_micros,
        "{settled:?}"
    );
    let second: AuthorizeResponse = rpc
        .ok("BudgetService/Authorize", Some(agent), authorize)
        .await;
    assert!(second.allowed, "{second:?}");
    let release = ReleaseRequest {
        reservation_id: second.reservation_id.clone(),
    };
    rpc.refused("BudgetService/Release", viewer, release.clone())
        .await;
    let released: ReleaseResponse = rpc.ok("BudgetService/Release", Some(agent), release).await;
    assert!(released.released, "{released:?}");
    let usage_request = GetUsageRequest {
        scope: "user:alice".into(),
    };
    rpc.refused("BudgetService/GetUsage", agent, usage_request.clone())
        .await;
    let usage: GetUsageResponse = rpc
        .ok("BudgetService/GetUsage", Some(viewer), usage_request)
        .await;
    assert_eq!(usage.scope, "user:alice");
    assert_eq!(usage.spent_micros, settled.charged_micros, "{usage:?}");
    assert_eq!(usage.reserved_micros, 0, "settled and released: {usage:?}");
    assert!(!usage.period.is_empty());
    let limits_request = GetLimitsRequest {
        user_id: "alice".into(),
        roles: vec![],
    };
    rpc.refused("BudgetService/GetLimits", agent, limits_request.clone())
        .await;
    let update = UpdateLimitsRequest {
        config_toml: "enabled = true\nrpm_limit = 1000\n".into(),
    };
    rpc.refused("BudgetService/UpdateLimits", agent, update.clone())
        .await;
    let updated: UpdateLimitsResponse = rpc
        .ok("BudgetService/UpdateLimits", Some(admin), update)
        .await;
    assert!(updated.updated && updated.error.is_empty(), "{updated:?}");
    let limits: GetLimitsResponse = rpc
        .ok("BudgetService/GetLimits", Some(viewer), limits_request)
        .await;
    assert!(
        limits.config_toml.contains("rpm_limit = 1000"),
        "{}",
        limits.config_toml
    );

    // --- AuthService: binding, revocation, OIDC, logout. ---
    let bind = SetApiKeyActorsRequest {
        key_id: agent_key.key_id.clone(),
        actors: vec!["ai_agent:customer_*".into()],
        llm_roles: vec![],
    };
    rpc.refused("AuthService/SetApiKeyActors", agent, bind.clone())
        .await;
    let bound: SetApiKeyActorsResponse = rpc
        .ok("AuthService/SetApiKeyActors", Some(admin), bind)
        .await;
    assert!(bound.updated && bound.ledger_index > 0, "{bound:?}");
    let me: WhoAmIResponse = rpc
        .ok("AuthService/WhoAmI", Some(agent), WhoAmIRequest {})
        .await;
    assert_eq!(me.actors, ["ai_agent:customer_*"], "{me:?}");
    assert!(me.llm_roles.is_empty(), "{me:?}");

    let spare: CreateApiKeyResponse = rpc
        .ok(
            "AuthService/CreateApiKey",
            Some(admin),
            CreateApiKeyRequest {
                name: "spare".into(),
                role: Role::Viewer as i32,
                ..Default::default()
            },
        )
        .await;
    let revoke_key = RevokeApiKeyRequest {
        key_id: spare.key_id.clone(),
    };
    rpc.refused("AuthService/RevokeApiKey", agent, revoke_key.clone())
        .await;
    let key_revoked: RevokeApiKeyResponse = rpc
        .ok("AuthService/RevokeApiKey", Some(admin), revoke_key)
        .await;
    assert!(key_revoked.revoked, "{key_revoked:?}");
    let gone = crate::common::who_am_i(&server, &spare.api_key)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated, "{gone:?}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let id_token = crate::id_token(
        &key,
        &serde_json::json!({
            "iss": "https://login.example.com", "aud": "lexecon", "sub": "u-42",
            "email": "bob@example.com", "email_verified": true, "iat": now, "exp": now + 300,
        }),
    );
    let exchanged: ExchangeOidcTokenResponse = rpc
        .ok(
            "AuthService/ExchangeOidcToken",
            None,
            ExchangeOidcTokenRequest {
                provider: "corp".into(),
                id_token,
                nonce: String::new(),
            },
        )
        .await;
    assert_eq!(exchanged.role(), Role::Viewer);
    assert!(exchanged.session.is_some_and(|s| !s.token.is_empty()));

    // --- Oversight, evidence, audit and compliance. ---
    crate::every_rpc_oversight::oversight_rpcs(&rpc, admin, agent, officer, auditor, viewer).await;
    crate::every_rpc_evidence::evidence_rpcs(&rpc, admin, agent, officer, auditor, viewer).await;
    crate::every_rpc_audit::audit_rpcs(&rpc, admin, agent, officer, auditor, viewer).await;
    crate::every_rpc_mcp::mcp_rpcs(&rpc, admin, agent, officer, auditor, viewer).await;
    crate::every_rpc_compliance::compliance_rpcs(&rpc, admin, agent, officer, auditor, viewer)
        .await;

    rpc.refused("AuthService/Logout", agent, LogoutRequest {})
        .await;
    let logged_out: LogoutResponse = rpc
        .ok("AuthService/Logout", Some(viewer), LogoutRequest {})
        .await;
    assert!(logged_out.revoked, "{logged_out:?}");
    let after = crate::common::who_am_i(&server, viewer).await.unwrap_err();
    assert_eq!(after.code(), Code::Unauthenticated, "{after:?}");

    // --- Health and reflection need no token. ---
    let mut health = crate::tonic_health_client(&server).await;
    let status = health
        .check(tonic::Request::new(
            crate::lexecon_e2e_health::HealthCheckRequest {
                service: "lexecon.v1.DecisionService".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
    let listed = list_services_v1(&server).await;
    assert!(
        listed.iter().any(|s| s == "lexecon.v1.AuthService"),
        "{listed:?}"
    );

    // --- Every RPC that is not open refuses a call without a token. ---
    let declared = rpcs_in_protos();
    for method in &declared {
        if OPEN.contains(&method.as_str()) {
            continue;
        }
        let result = unary::<(), ()>(&rpc.channel, &path(method), (), None).await;
        match result {
            Err(status) if status.code() == Code::Unauthenticated => {}
            other => panic!("{method} without a token: expected UNAUTHENTICATED, got {other:?}"),
        }
    }

    // --- Nothing declared was left out. ---
    let called = rpc.called.lock().unwrap();
    let not_called: Vec<_> = declared.difference(&called.ok).collect();
    assert!(
        not_called.is_empty(),
        "RPCs in proto/ this test never calls with a valid request: {not_called:?}"
    );
    let needs_refusal: Vec<_> = declared
        .iter()
        .filter(|m| !OPEN.contains(&m.as_str()) && !FOR_EVERY_ROLE.contains(&m.as_str()))
        .filter(|m| !called.refused.contains(*m))
        .collect();
    assert!(
        needs_refusal.is_empty(),
        "RPCs this test never calls with a refused role (or add them to FOR_EVERY_ROLE): {needs_refusal:?}"
    );
    for method in OPEN {
        assert!(
            declared.contains(*method),
            "{method} is no longer in proto/"
        );
        assert!(
            called.open.contains(*method),
            "{method} was not called without a token"
        );
    }
    for method in FOR_EVERY_ROLE {
        assert!(
            declared.contains(*method),
            "{method} is no longer in proto/"
        );
    }
}

async fn list_services_v1(server: &Server) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    match stream.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}
