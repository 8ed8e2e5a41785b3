//! Unit tests: roles, the permission table against the `.proto` files and the docs,
//! actor bindings, TOTP test vectors, and redaction of secrets.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use lexecon_core::Glob;
use proptest::prelude::*;

use crate::secret::random_token;
use crate::*;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every RPC in `proto/lexecon/v1/*.proto` as a full method path.
fn proto_methods() -> BTreeSet<String> {
    let dir = workspace_root().join("proto/lexecon/v1");
    let mut methods = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut package = None;
        let mut service = None;
        for line in text.lines().map(str::trim) {
            if line.starts_with("//") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("package ") {
                package = Some(rest.trim_end_matches(';').trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("service ") {
                service = Some(rest.split_whitespace().next().unwrap().to_owned());
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap().trim();
                let pkg = package.as_deref().expect("package before rpc");
                let svc = service.as_deref().expect("service before rpc");
                methods.insert(format!("/{pkg}.{svc}/{name}"));
            }
        }
    }
    methods
}

#[test]
fn every_rpc_in_the_protos_is_in_the_table_and_nothing_else() {
    let from_protos = proto_methods();
    assert!(
        from_protos.len() >= 31,
        "parsed too few rpcs: {from_protos:?}"
    );
    let in_table: BTreeSet<String> = PERMISSIONS.iter().map(|(p, _)| (*p).to_owned()).collect();
    let missing: Vec<_> = from_protos.difference(&in_table).collect();
    assert!(
        missing.is_empty(),
        "rpcs without a permission entry: {missing:?}"
    );
    let stale: Vec<_> = in_table.difference(&from_protos).collect();
    assert!(
        stale.is_empty(),
        "permission entries for rpcs that do not exist: {stale:?}"
    );
    assert_eq!(
        in_table.len(),
        PERMISSIONS.len(),
        "duplicate entries in the table"
    );
    for method in &from_protos {
        let access = required_access(method);
        assert_ne!(access, Access::Roles(&[]), "{method} is denied to everyone");
    }
}

fn principal(role: Role, kind: PrincipalKind, mfa_verified: bool) -> Principal {
    Principal {
        kind,
        id: "usr_test".into(),
        name: "test".into(),
        role,
        mfa_verified,
        actors: None,
        llm_roles: Arc::default(),
        created_by: None,
    }
}

const DEFAULT_MFA_ROLES: &[Role] = &[Role::Admin, Role::ComplianceOfficer];

/// What each role may call beyond the open methods, written out by hand as the
/// reference the table is checked against.
fn expected_allowed(role: Role) -> BTreeSet<&'static str> {
    let viewer = [
        "DecisionService/VerifyToken",
        "PolicyService/GetActivePolicy",
        "PolicyService/ValidatePolicy",
        "PolicyService/ListPolicyVersions",
        "PolicyService/Explain",
        "LedgerService/GetEntries",
        "LedgerService/GetEntry",
        "LedgerService/GetCheckpoint",
        "LedgerService/GetInclusionProof",
        "LedgerService/GetConsistencyProof",
        "RiskService/Assess",
        "BudgetService/GetUsage",
        "BudgetService/GetLimits",
        "AuthService/Logout",
        "AuthService/WhoAmI",
        "AuthService/EnrollMfa",
        "OversightService/GetHaltStatus",
        "AuditService/QueryDecisions",
    ];
    let auditor = [
        "LedgerService/Verify",
        "OversightService/ListEscalations",
        "OversightService/GetEscalation",
        "OversightService/ListOverrides",
        "OversightService/WatchEvents",
        "OversightService/GetAccountability",
        "EvidenceService/GetEvidence",
        "EvidenceService/ListEvidence",
        "EvidenceService/VerifyEvidence",
        "AuditService/ExportAudit",
        "AuditService/ListAuditExports",
        "ComplianceService/ListFrameworks",
        "ComplianceService/GetComplianceStatus",
        "ComplianceService/GetGaps",
        "ComplianceService/GetTechnicalDocumentation",
        "ComplianceService/GetRecordKeepingStatus",
        "ComplianceService/ListLegalHolds",
        "ComplianceService/GetComplianceReport",
    ];
    let officer = [
        "DecisionService/RevokeToken",
        "OversightService/ResolveEscalation",
        "OversightService/CreateOverride",
        "OversightService/RevokeOverride",
        "OversightService/Halt",
        "OversightService/Resume",
        "EvidenceService/RegisterEvidence",
        "ComplianceService/PlaceLegalHold",
        "ComplianceService/ReleaseLegalHold",
        "ComplianceService/RecordIntervention",
    ];
    let admin = [
        "DecisionService/Decide",
        "PolicyService/LoadPolicy",
        "BudgetService/Authorize",
        "BudgetService/Settle",
        "BudgetService/Release",
        "BudgetService/UpdateLimits",
        "AuthService/CreateUser",
        "AuthService/CreateApiKey",
        "AuthService/RevokeApiKey",
        "AuthService/SetApiKeyActors",
        "LedgerService/Redact",
        "DecisionService/RecordCompletion",
        "DecisionService/CheckTools",
    ];
    let agent = [
        "AuthService/WhoAmI",
        "DecisionService/Decide",
        "DecisionService/RecordCompletion",
        "DecisionService/CheckTools",
        "DecisionService/VerifyToken",
        "BudgetService/Authorize",
        "BudgetService/Settle",
        "BudgetService/Release",
        "RiskService/Assess",
        "OversightService/GetEscalation",
        "OversightService/GetHaltStatus",
    ];
    let mut set = BTreeSet::new();
    let mut add = |list: &[&'static str]| set.extend(list.iter().copied());
    match role {
        Role::Viewer => add(&viewer),
        Role::Auditor => {
            add(&viewer);
            add(&auditor);
        }
        Role::ComplianceOfficer => {
            add(&viewer);
            add(&auditor);
            add(&officer);
        }
        Role::Admin => {
            add(&viewer);
            add(&auditor);
            add(&officer);
            add(&admin);
        }
        Role::Agent => add(&agent),
    }
    set
}

#[test]
fn each_role_may_call_exactly_its_methods_and_is_refused_the_rest() {
    for method in proto_methods() {
        let short = method.strip_prefix("/lexecon.v1.").unwrap();
        let open = required_access(&method) == Access::Open;
        for role in Role::ALL {
            let kind = if role == Role::Agent {
                PrincipalKind::ApiKey
            } else {
                PrincipalKind::User
            };
            let result = check_access(&principal(role, kind, true), &method, DEFAULT_MFA_ROLES);
            let allowed = open || expected_allowed(role).contains(short);
            match result {
                Ok(()) => assert!(allowed, "{role} may call {method} but should not"),
                Err(e) => {
                    assert!(!allowed, "{role} is refused {method} but should be allowed");
                    assert!(e.is_permission_denied(), "{e}");
                    assert!(!e.is_unauthenticated());
                }
            }
        }
    }
}

#[test]
fn agent_may_call_only_the_service_rpcs_its_own_escalations_and_who_am_i() {
    let allowed: BTreeSet<&str> = PERMISSIONS
        .iter()
        .filter(|(_, a)| matches!(a, Access::Roles(r) if r.contains(&Role::Agent)))
        .map(|(p, _)| *p)
        .collect();
    let expected: BTreeSet<&str> = [
        "/lexecon.v1.DecisionService/Decide",
        "/lexecon.v1.DecisionService/VerifyToken",
        // The MCP gateway's calls: the engine limits them to the agent's own decisions
        // and bound actors.
        "/lexecon.v1.DecisionService/RecordCompletion",
        "/lexecon.v1.DecisionService/CheckTools",
        "/lexecon.v1.BudgetService/Authorize",
        "/lexecon.v1.BudgetService/Settle",
        "/lexecon.v1.BudgetService/Release",
        "/lexecon.v1.RiskService/Assess",
        "/lexecon.v1.AuthService/WhoAmI",
        // The engine limits an agent to the escalations its own requests created.
        "/lexecon.v1.OversightService/GetEscalation",
        "/lexecon.v1.OversightService/GetHaltStatus",
    ]
    .into();
    assert_eq!(allowed, expected);
}

#[test]
fn open_methods_unknown_paths_and_lookalikes() {
    let check = |path: &str, expect: Access| assert_eq!(required_access(path), expect, "{path}");
    for open in [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/lexecon.v1.AuthService/Login",
        "/lexecon.v1.AuthService/VerifyMfa",
        "/lexecon.v1.AuthService/ListOidcProviders",
        "/lexecon.v1.AuthService/ExchangeOidcToken",
    ] {
        check(open, Access::Open);
    }
    for denied in [
        "",
        "/",
        "/lexecon.v1.DecisionService/Unknown",
        "/lexecon.v1.DecisionService/Decide/",
        "/lexecon.v1.DecisionService/decide",
        "/grpc.health.v1.Health/",
        "/grpc.health.v1.Health/Check/extra",
        "/grpc.health.v1.HealthX/Check",
        "/other.Health/Check",
        "lexecon.v1.DecisionService/Decide",
    ] {
        check(denied, Access::Roles(&[]));
        let admin = principal(Role::Admin, PrincipalKind::ApiKey, false);
        assert!(
            check_access(&admin, denied, DEFAULT_MFA_ROLES)
                .unwrap_err()
                .is_permission_denied()
        );
    }
}

#[test]
fn mfa_roles_without_mfa_may_only_enroll() {
    for role in [Role::Admin, Role::ComplianceOfficer] {
        let p = principal(role, PrincipalKind::User, false);
        for m in MFA_ENROLLMENT_METHODS {
            assert!(check_access(&p, m, DEFAULT_MFA_ROLES).is_ok(), "{role} {m}");
        }
        let err = check_access(
            &p,
            "/lexecon.v1.LedgerService/GetEntries",
            DEFAULT_MFA_ROLES,
        )
        .unwrap_err();
        assert!(
            matches!(err, AuthError::MfaEnrollmentRequired { .. }),
            "{err}"
        );
        assert!(err.is_permission_denied());
        // An API key of the same role is a machine credential: not subject to MFA.
        let key = principal(role, PrincipalKind::ApiKey, false);
        assert!(
            check_access(
                &key,
                "/lexecon.v1.LedgerService/GetEntries",
                DEFAULT_MFA_ROLES
            )
            .is_ok()
        );
    }
    // A viewer is not required to use MFA by default.
    let viewer = principal(Role::Viewer, PrincipalKind::User, false);
    assert!(
        check_access(
            &viewer,
            "/lexecon.v1.LedgerService/GetEntries",
            DEFAULT_MFA_ROLES
        )
        .is_ok()
    );
}

#[test]
fn security_doc_permission_table_matches_the_code() {
    let path = workspace_root().join("docs/security.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (start, end) = (
        "<!-- permission-table:start -->\n",
        "<!-- permission-table:end -->",
    );
    let begin = doc.find(start).expect("start marker in docs/security.md") + start.len();
    let finish = doc.find(end).expect("end marker in docs/security.md");
    let generated = permission_table_markdown();
    if doc[begin..finish] != generated {
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            let updated = format!("{}{}{}", &doc[..begin], generated, &doc[finish..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "docs/security.md permission table is stale; rerun with UPDATE_EXPECT=1\n{generated}"
            );
        }
    }
}

#[test]
fn roles_parse_and_display_their_names() {
    for role in Role::ALL {
        assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
    }
    assert_eq!(
        "compliance_officer".parse::<Role>().unwrap(),
        Role::ComplianceOfficer
    );
    for bad in ["", "Admin", "root", "compliance-officer", " admin"] {
        let err = bad.parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("use viewer, auditor"), "{err}");
    }
    assert!(Role::Viewer < Role::Auditor && Role::ComplianceOfficer < Role::Admin);
}

/// RFC 6238 appendix B, SHA-1 rows: the seed is the ASCII "12345678901234567890" and
/// the codes have 8 digits.
#[test]
fn totp_rfc6238_appendix_b_sha1_vectors() {
    let seed = b"12345678901234567890";
    let check = |unix: i64, expect: &str| {
        assert_eq!(
            totp::code_at_step(seed, totp::step_at(unix), 8),
            expect,
            "t = {unix}"
        );
    };
    check(59, "94287082");
    check(1_111_111_109, "07081804");
    check(1_111_111_111, "14050471");
    check(1_234_567_890, "89005924");
    check(2_000_000_000, "69279037");
    check(20_000_000_000, "65353130");
    // RFC 4226 appendix D: HOTP with the same seed, 6 digits.
    let hotp: Vec<u32> = (0..10).map(|c| totp::hotp(seed, c, 6)).collect();
    assert_eq!(
        hotp,
        [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489
        ]
    );
}

#[test]
fn totp_accepts_one_step_of_drift_and_no_more() {
    let seed = b"12345678901234567890";
    let now = totp::step_at(1_234_567_890);
    for (offset, expect) in [
        (-2, None),
        (-1, Some(now - 1)),
        (0, Some(now)),
        (1, Some(now + 1)),
        (2, None),
    ] {
        let code = totp::code_at_step(seed, now + offset, 6);
        assert_eq!(
            totp::matching_step(seed, &code, now),
            expect,
            "offset {offset}"
        );
    }
    for bad in ["", "12345", "1234567", "abcdef", " 12345"] {
        assert_eq!(totp::matching_step(seed, bad, now), None, "{bad:?}");
    }
}

#[test]
fn otpauth_uri_names_issuer_account_and_parameters() {
    expect_test::expect![[r#"otpauth://totp/Lexecon:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Lexecon&algorithm=SHA1&digits=6&period=30"#]]
        .assert_eq(&totp::otpauth_uri("Lexecon", "alice@example.com", "JBSWY3DPEHPK3PXP"));
}

#[test]
fn random_tokens_have_prefix_and_256_bits() {
    let mut rng = rand::rngs::OsRng;
    let a = random_token(&mut rng, SESSION_PREFIX);
    let b = random_token(&mut rng, SESSION_PREFIX);
    assert_ne!(a, b);
    assert!(a.expose().starts_with("lxs_"));
    assert_eq!(a.expose().len(), 4 + 43);
}

#[test]
fn debug_of_secrets_is_redacted() {
    let secret = "lxs_THIS-IS-THE-SECRET-VALUE";
    let s = SecretString::new(secret);
    let session = Session {
        token: s.clone(),
        expires_at: lexecon_core::Timestamp::EPOCH,
        idle_timeout_secs: 900,
        mfa_verified: false,
    };
    let texts = [
        format!("{s:?}"),
        format!("{s}"),
        format!("{session:?}"),
        format!(
            "{:?}",
            LoginOutcome::MfaRequired {
                challenge: s.clone()
            }
        ),
        format!(
            "{:?}",
            CreatedApiKey {
                key_id: "key_1".into(),
                api_key: s.clone(),
                actors: Some(vec!["ai_agent:bot".into()]),
                llm_roles: Vec::new(),
            }
        ),
        format!(
            "{:?}",
            MfaEnrollment {
                secret_base32: s.clone(),
                otpauth_uri: s.clone(),
                backup_codes: vec![s.clone()],
            }
        ),
        format!(
            "{:?}",
            UserRecord {
                id: "usr_1".into(),
                username: "alice".into(),
                password_hash: Some(secret.into()),
                role: Role::Viewer,
                created_at: lexecon_core::Timestamp::EPOCH,
                failed_logins: 0,
                locked_until: None,
                mfa_enabled: false,
            }
        ),
        format!(
            "{:?}",
            MfaRecord {
                totp_secret: secret.as_bytes().to_vec(),
                last_used_step: None
            }
        ),
    ];
    for text in texts {
        assert!(!text.contains("SECRET"), "secret leaked: {text}");
        assert!(text.contains("redacted"), "{text}");
    }
}

#[test]
fn bearer_tokens_are_parsed_from_the_authorization_header() {
    let check =
        |header: &str, expect: Option<&str>| assert_eq!(parse_bearer(header), expect, "{header:?}");
    check("Bearer lxk_abc", Some("lxk_abc"));
    check("bearer lxs_abc", Some("lxs_abc"));
    check("BEARER  lxs_abc ", Some("lxs_abc"));
    check("Basic dXNlcjpwdw==", None);
    check("Bearer", None);
    check("Bearer ", None);
    check("lxk_abc", None);
    check("Bearer a b", None);
}

#[test]
fn roles_and_provider_configs_deserialize_from_configuration() {
    let roles: Vec<Role> =
        serde_json::from_str(r#"["viewer", "compliance_officer", "agent"]"#).unwrap();
    assert_eq!(roles, [Role::Viewer, Role::ComplianceOfficer, Role::Agent]);
    assert_eq!(
        serde_json::to_string(&Role::ComplianceOfficer).unwrap(),
        r#""compliance_officer""#
    );
    assert!(serde_json::from_str::<Role>(r#""root""#).is_err());

    let minimal: OidcProviderConfig =
        serde_json::from_str(r#"{"name": "corp", "issuer": "https://idp", "client_id": "c"}"#)
            .unwrap();
    assert_eq!(minimal, OidcProviderConfig::new("corp", "https://idp", "c"));
    let full: OidcProviderConfig = serde_json::from_str(
        r#"{"name": "corp", "issuer": "https://idp", "client_id": "c", "role_claim": "groups",
            "role_map": {"admins": "admin"}, "default_role": "auditor", "clock_skew_secs": 5,
            "jwks_cache_secs": 60}"#,
    )
    .unwrap();
    assert_eq!(full.role_map.get("admins"), Some(&Role::Admin));
    assert_eq!(
        (
            full.default_role,
            full.clock_skew_secs,
            full.jwks_cache_secs
        ),
        (Role::Auditor, 5, 60)
    );
    let err = serde_json::from_str::<OidcProviderConfig>(
        r#"{"name": "corp", "issuer": "https://idp", "client_id": "c", "audience": "x"}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `audience`"),
        "{err}"
    );
}

fn binding(patterns: &[&str]) -> Result<ActorBinding, AuthError> {
    let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
    ActorBinding::new(&patterns)
}

#[test]
fn bindings_permit_exactly_the_actors_their_globs_match() {
    let check = |patterns: &[&str], actor: &str, want: bool| {
        assert_eq!(
            binding(patterns).unwrap().permits(actor),
            want,
            "{patterns:?} for {actor:?}"
        );
    };
    check(&["ai_agent:support_bot"], "ai_agent:support_bot", true);
    check(&["ai_agent:support_bot"], "ai_agent:support_bot2", false);
    check(&["ai_agent:support_bot"], "ai_agent:support", false);
    check(&["ai_agent:support_*"], "ai_agent:support_bot", true);
    check(&["ai_agent:support_*"], "ai_agent:support_", true);
    check(&["ai_agent:support_*"], "ai_agent:Support_bot", false);
    check(&["ai_agent:support_*"], "ai_agent:support", false);
    check(&["ai_agent:support_*"], "xai_agent:support_bot", false);
    check(&["ai_agent:support_*"], "admin:root", false);
    check(&["ai_agent:support_*"], "", false);
    check(&["ai_agent:support_?"], "ai_agent:support_1", true);
    check(&["ai_agent:support_?"], "ai_agent:support_12", false);
    check(&["support"], "ai_agent:support", false);
    check(&["a:x", "b:*"], "b:y", true);
    check(&["a:x", "b:*"], "a:y", false);
    check(&["*"], "admin:root", true);
    check(&[], "ai_agent:support_bot", false);
    check(&[], "", false);
}

#[test]
fn sole_literal_is_one_pattern_without_wildcards() {
    let sole = |patterns: &[&str]| binding(patterns).unwrap().sole_literal().map(str::to_owned);
    assert_eq!(sole(&["ai_agent:bot"]).as_deref(), Some("ai_agent:bot"));
    assert_eq!(sole(&["ai_agent:*"]), None);
    assert_eq!(sole(&["ai_agent:bo?"]), None);
    assert_eq!(sole(&["ai_agent:a", "ai_agent:b"]), None);
    assert_eq!(sole(&[]), None);
}

#[test]
fn bindings_compare_and_print_by_their_patterns() {
    let a = binding(&["ai_agent:*", "b"]).unwrap();
    assert_eq!(a, binding(&["ai_agent:*", "b"]).unwrap());
    assert_ne!(a, binding(&["b", "ai_agent:*"]).unwrap());
    assert_eq!(a.patterns(), ["ai_agent:*", "b"]);
    assert_eq!(format!("{a:?}"), r#"ActorBinding(["ai_agent:*", "b"])"#);
    assert_eq!(a.clone(), a);
}

#[test]
fn bad_bindings_are_refused_naming_actors_the_index_and_the_pattern() {
    let refused = |patterns: &[&str]| {
        let e = binding(patterns).unwrap_err();
        assert!(e.is_invalid_argument(), "{e}");
        assert!(e.to_string().starts_with("invalid actors: "), "{e}");
        e.to_string()
    };
    let msg = refused(&["ai_agent:ok", "ai agent"]);
    assert!(
        msg.contains(r#"pattern 1 ("ai agent") is invalid: pattern contains ' '"#),
        "{msg}"
    );
    let msg = refused(&["", "x"]);
    assert!(
        msg.contains(r#"pattern 0 ("") is invalid: pattern is empty"#),
        "{msg}"
    );
    let msg = refused(&["x", "y", "é*"]);
    assert!(msg.contains("pattern 2"), "{msg}");
    let long = "a".repeat(MAX_ACTOR_PATTERN_LEN + 1);
    let msg = refused(&["x", &long]);
    assert!(
        msg.contains("pattern 1") && msg.contains("257 bytes"),
        "{msg}"
    );
    assert!(msg.len() < 300, "the pattern is quoted in part: {msg}");
    assert!(binding(&[&"a".repeat(MAX_ACTOR_PATTERN_LEN)]).is_ok());

    let many: Vec<String> = (0..=MAX_ACTOR_PATTERNS).map(|i| format!("a:{i}")).collect();
    let e = ActorBinding::new(&many).unwrap_err();
    assert!(e.is_invalid_argument(), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid actors: 65 patterns given, at most 64"),
        "{e}"
    );
    assert!(ActorBinding::new(&many[..MAX_ACTOR_PATTERNS]).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A binding permits exactly what one of its patterns, compiled by the policy glob,
    /// matches.
    #[test]
    fn binding_permits_what_some_policy_glob_matches(
        patterns in proptest::collection::vec("[ab:*?]{1,6}", 0..4),
        actor in "[ab:]{0,6}",
    ) {
        let b = ActorBinding::new(&patterns).unwrap();
        let expected = patterns.iter().any(|p| Glob::new(p).unwrap().matches(&actor));
        prop_assert_eq!(b.permits(&actor), expected);
        if let Some(only) = b.sole_literal() {
            prop_assert_eq!(b.permits(&actor), actor == only);
        }
    }
}
