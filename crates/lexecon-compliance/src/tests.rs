//! Unit tests: catalogs, the evaluator per framework (expect-test snapshots), reports and
//! the technical documentation.

use std::collections::BTreeMap;

use expect_test::{Expect, expect};
use lexecon_core::Timestamp;

use crate::facts::*;
use crate::*;

fn ts(s: &str) -> Timestamp {
    match s.parse() {
        Ok(t) => t,
        Err(e) => panic!("bad timestamp in test: {e}"),
    }
}

const NOW: &str = "2026-12-01T12:00:00Z";
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn ago(secs: i64) -> Timestamp {
    ts(NOW).add_secs(-secs)
}

fn kind(count: u64, first: u64, last: u64, last_at: Timestamp) -> KindStats {
    KindStats {
        count,
        first_index: Some(first),
        first_at: Some(ago(30 * DAY)),
        last_index: Some(last),
        last_at: Some(last_at),
    }
}

/// What `lexecon init` + `lexecon server` give: an admin API key, the starter policy,
/// default configuration, no verification, no people.
fn fresh() -> Facts {
    let mut by_kind = BTreeMap::new();
    by_kind.insert(
        "policy_loaded".to_owned(),
        KindStats {
            count: 1,
            first_index: Some(0),
            first_at: Some(ago(HOUR)),
            last_index: Some(0),
            last_at: Some(ago(HOUR)),
        },
    );
    Facts {
        now: ts(NOW),
        config: ConfigFacts {
            node_id: "node-1".to_owned(),
            mfa_required_roles: vec!["admin".to_owned(), "compliance_officer".to_owned()],
            ..ConfigFacts::default()
        },
        ledger: LedgerStats {
            total_entries: 1,
            redacted_entries: 0,
            oldest_at: Some(ago(HOUR)),
            newest_at: Some(ago(HOUR)),
            by_kind,
        },
        verification: None,
        principals: PrincipalFacts {
            active_api_keys: 1,
            admin_keys: 1,
            keys_without_expiry: 1,
            ..PrincipalFacts::default()
        },
        oversight: OversightFacts::default(),
        evidence: Vec::new(),
        policy: Some(PolicyFacts {
            name: "starter".to_owned(),
            version: "1".to_owned(),
            hash_hex: "ab".repeat(32),
            loaded_at: Some(ago(HOUR)),
            loaded_by: "startup".to_owned(),
            ledger_index: Some(0),
            relations: 6,
            deny_relations: 2,
            mode: "strict".to_owned(),
            loads_in_window: 1,
            history: vec![PolicyLoadFact {
                ledger_index: 0,
                at: ago(HOUR),
                name: "starter".to_owned(),
                version: "1".to_owned(),
                hash_hex: "ab".repeat(32),
                loaded_by: "startup".to_owned(),
            }],
        }),
        keys: KeyFacts {
            signing_key_id: "key-1".to_owned(),
            signing_key_created_at: Some(ago(HOUR)),
            rotations_total: 0,
            retired_keys: 0,
            last_rotation_index: None,
        },
        holds: Vec::new(),
        system: SystemFacts {
            lexecon_version: "0.1.0".to_owned(),
            relations: vec![
                "ai_agent:* may read on data:public".to_owned(),
                "ai_agent:* must_not delete on data:*".to_owned(),
            ],
            risk_dimensions: [
                "security",
                "privacy",
                "financial",
                "operational",
                "reputational",
                "compliance",
            ]
            .iter()
            .map(|n| RiskDimensionFact {
                name: (*n).to_owned(),
                weight: 1,
            })
            .collect(),
            risk_rules: vec!["pii: personal data (+30)".to_owned()],
            ..SystemFacts::default()
        },
    }
}

fn evidence(id: &str, artifact: &str, controls: &[&str], age: i64, index: u64) -> EvidenceFact {
    EvidenceFact {
        evidence_id: id.to_owned(),
        artifact_type: artifact.to_owned(),
        control_ids: controls.iter().map(|c| (*c).to_owned()).collect(),
        registered_at: ago(age),
        ledger_index: index,
        erased: false,
    }
}

/// A deployment that did what every remediation says.
fn good() -> Facts {
    let mut f = fresh();
    f.config.tls_enabled = true;
    f.config.approvers_people_only = true;
    f.config.model_access_lists = true;
    f.config.intended_purpose = "Govern the actions of support agents".to_owned();
    f.config.provider = "Example GmbH".to_owned();
    f.principals = PrincipalFacts {
        users_total: 4,
        users_with_mfa: 3,
        admins: 2,
        admins_with_mfa: 2,
        officers: 1,
        officers_with_mfa: 1,
        auditors: 1,
        viewers: 0,
        active_api_keys: 3,
        admin_keys: 1,
        officer_keys: 0,
        auditor_keys: 0,
        agent_keys: 2,
        agent_keys_bound: 2,
        keys_without_expiry: 0,
    };
    f.ledger.total_entries = 1_250;
    f.ledger.newest_at = Some(ago(60));
    f.ledger
        .by_kind
        .insert("decision".to_owned(), kind(1_200, 1, 1_240, ago(60)));
    f.ledger
        .by_kind
        .insert("oversight".to_owned(), kind(40, 5, 1_238, ago(2 * HOUR)));
    f.ledger
        .by_kind
        .insert("compliance".to_owned(), kind(9, 7, 1_249, ago(HOUR)));
    f.verification = Some(VerificationFact {
        at: ago(HOUR),
        valid: true,
        entries: 1_249,
        trusted_key_ring: true,
        basis: "key_ring".to_owned(),
        ledger_index: 1_249,
        by: "usr_auditor".to_owned(),
    });
    f.oversight = OversightFacts {
        escalations_created: 12,
        escalations_resolved: 12,
        escalations_expired: 0,
        pending: 1,
        overdue_pending: 0,
        overrides_created: 2,
        overrides_active: 1,
        halts_placed: 1,
        halts_active: 0,
        interventions: 3,
        interventions_by_kind: BTreeMap::from([("reverse".to_owned(), 3)]),
        two_person_approvals: 2,
        tokens_revoked: 3,
        last_oversight_index: Some(1_238),
        last_oversight_at: Some(ago(2 * HOUR)),
    };
    f.evidence = vec![
        evidence(
            "evd_ir",
            "incident_report",
            &[
                "soc2:CC7.4",
                "soc2:CC7.5",
                "iso27001:A.5.24",
                "iso27001:A.5.26",
                "iso27001:A.5.27",
                "gdpr:Art. 33",
                "nist_csf:RS.MA-01",
                "eu_ai_act:Art. 73",
            ],
            10 * DAY,
            100,
        ),
        evidence(
            "evd_risk",
            "risk_assessment",
            &["eu_ai_act:Art. 9", "gdpr:Art. 35"],
            20 * DAY,
            101,
        ),
        evidence(
            "evd_ropa",
            "external_attestation",
            &["gdpr:Art. 30"],
            20 * DAY,
            102,
        ),
        evidence(
            "evd_doc",
            "model_documentation",
            &["eu_ai_act:Art. 13"],
            20 * DAY,
            103,
        ),
        evidence(
            "evd_test",
            "test_result",
            &["eu_ai_act:Art. 15"],
            5 * DAY,
            104,
        ),
    ];
    f
}

/// Some things half done: one admin without MFA, a verification that trusted only the
/// database, a permissive policy, stale evidence, an overdue escalation.
fn mixed() -> Facts {
    let mut f = good();
    f.principals.admins_with_mfa = 1;
    f.principals.auditors = 0;
    f.config.tls_enabled = false;
    f.config.approvers_people_only = false;
    if let Some(v) = f.verification.as_mut() {
        v.trusted_key_ring = false;
        v.basis = "database".to_owned();
    }
    if let Some(p) = f.policy.as_mut() {
        p.mode = "permissive".to_owned();
    }
    f.principals.agent_keys_bound = 1;
    f.principals.keys_without_expiry = 1;
    f.oversight.overdue_pending = 1;
    f.config.mcp_record_payloads = true;
    for e in &mut f.evidence {
        e.registered_at = ago(400 * DAY);
    }
    f.config.intended_purpose.clear();
    f
}

/// Control id: status, one per line, then coverage.
fn table(framework: &str, facts: &Facts) -> String {
    let st = match evaluate(framework, facts) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let mut out = String::new();
    for c in &st.controls {
        out.push_str(&format!("{:<22} {}\n", c.control_id, c.status.as_str()));
    }
    out.push_str(&format!("coverage {}%\n", st.coverage_percent));
    out
}

fn check_table(framework: &str, fresh_e: Expect, mixed_e: Expect, good_e: Expect) {
    fresh_e.assert_eq(&table(framework, &fresh()));
    mixed_e.assert_eq(&table(framework, &mixed()));
    good_e.assert_eq(&table(framework, &good()));
}

fn control(framework: &str, id: &str, facts: &Facts) -> ControlResult {
    let st = match evaluate(framework, facts) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    match st.controls.into_iter().find(|c| c.control_id == id) {
        Some(c) => c,
        None => panic!("no control {id} in {framework}"),
    }
}

fn explain(c: &ControlResult) -> String {
    let ev = c
        .evidence
        .iter()
        .map(|e| format!("  [{}] {} = {}", e.kind, e.reference, e.detail))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "{} {}: {}\nwhy: {}\nevidence:\n{ev}\nremediation: {}\n",
        c.framework,
        c.control_id,
        c.status.as_str(),
        c.why,
        c.remediation
    )
}

#[test]
fn every_catalog_parses_with_unique_ids_and_known_checks() {
    for (id, text) in catalog::SOURCES {
        let c = match catalog::parse(id, text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let mut ids: Vec<&str> = c.controls.iter().map(|x| x.id.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate control ids in {id}");
        for ctl in &c.controls {
            assert!(
                !ctl.title.contains('\n'),
                "{id} {}: title spans lines",
                ctl.id
            );
        }
    }
    let ids: Vec<String> = frameworks().into_iter().map(|f| f.id).collect();
    assert_eq!(
        ids,
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
}

#[test]
fn catalogs_map_the_controls_the_issue_lists() {
    let want: &[(&str, &[&str])] = &[
        (
            "soc2",
            &[
                "CC6.1", "CC6.2", "CC6.3", "CC6.6", "CC6.7", "CC6.8", "CC7.1", "CC7.2", "CC7.3",
                "CC7.4", "CC7.5", "CC8.1",
            ],
        ),
        (
            "iso27001",
            &[
                "A.5.15", "A.5.16", "A.5.17", "A.5.18", "A.5.24", "A.5.25", "A.5.26", "A.5.27",
                "A.5.28", "A.8.2", "A.8.5", "A.8.15", "A.8.16", "A.8.24",
            ],
        ),
        (
            "nist_csf",
            &["PR.AA-05", "PR.PS-04", "DE.CM-03", "DE.CM-09", "GV.RR-02"],
        ),
        (
            "hipaa",
            &[
                "164.312(a)(1)",
                "164.312(b)",
                "164.312(c)(1)",
                "164.312(d)",
                "164.312(e)(1)",
            ],
        ),
        (
            "pci_dss",
            &["7.2", "8.3", "10.2.1", "10.2.2", "10.3", "10.5.1"],
        ),
        (
            "gdpr",
            &[
                "Art. 5(1)(f)",
                "Art. 22(3)",
                "Art. 25",
                "Art. 30",
                "Art. 32(1)",
            ],
        ),
        (
            "eu_ai_act",
            &[
                "Art. 9",
                "Art. 11",
                "Art. 12(1)",
                "Art. 13",
                "Art. 14(4)",
                "Art. 15",
                "Art. 19(1)",
                "Art. 26(2)",
                "Art. 72",
                "Art. 73",
            ],
        ),
    ];
    for (fw, ids) in want {
        let st = match evaluate(fw, &fresh()) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        for id in *ids {
            assert!(
                st.controls.iter().any(|c| c.control_id == *id),
                "{fw} lacks {id}"
            );
        }
    }
}

#[test]
fn unknown_framework_names_the_valid_ids() {
    let err = match evaluate("sox", &fresh()) {
        Ok(_) => panic!("sox evaluated"),
        Err(e) => e,
    };
    expect![[r#"unknown framework "sox": expected one of soc2, iso27001, gdpr, hipaa, pci_dss, nist_csf, eu_ai_act"#]]
        .assert_eq(&err.to_string());
}

#[test]
fn soc2_table() {
    check_table(
        "soc2",
        expect![[r#"
        CC4.1                  not_satisfied
        CC6.1                  partial
        CC6.2                  partial
        CC6.3                  satisfied
        CC6.6                  partial
        CC6.7                  partial
        CC6.8                  partial
        CC7.1                  partial
        CC7.2                  satisfied
        CC7.3                  partial
        CC7.4                  not_satisfied
        CC7.5                  not_satisfied
        CC8.1                  satisfied
        coverage 50%
    "#]],
        expect![[r#"
        CC4.1                  partial
        CC6.1                  partial
        CC6.2                  partial
        CC6.3                  not_satisfied
        CC6.6                  partial
        CC6.7                  partial
        CC6.8                  satisfied
        CC7.1                  partial
        CC7.2                  satisfied
        CC7.3                  partial
        CC7.4                  partial
        CC7.5                  partial
        CC8.1                  satisfied
        coverage 57.7%
    "#]],
        expect![[r#"
        CC4.1                  satisfied
        CC6.1                  satisfied
        CC6.2                  satisfied
        CC6.3                  satisfied
        CC6.6                  satisfied
        CC6.7                  satisfied
        CC6.8                  satisfied
        CC7.1                  satisfied
        CC7.2                  satisfied
        CC7.3                  satisfied
        CC7.4                  satisfied
        CC7.5                  satisfied
        CC8.1                  satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn iso27001_table() {
    check_table(
        "iso27001",
        expect![[r#"
        A.5.15                 satisfied
        A.5.16                 partial
        A.5.17                 not_satisfied
        A.5.18                 satisfied
        A.5.24                 not_satisfied
        A.5.25                 partial
        A.5.26                 not_satisfied
        A.5.27                 not_satisfied
        A.5.28                 partial
        A.5.33                 partial
        A.8.2                  partial
        A.8.5                  not_satisfied
        A.8.15                 partial
        A.8.16                 satisfied
        A.8.24                 partial
        A.8.32                 satisfied
        coverage 46.9%
    "#]],
        expect![[r#"
        A.5.15                 partial
        A.5.16                 partial
        A.5.17                 partial
        A.5.18                 not_satisfied
        A.5.24                 partial
        A.5.25                 partial
        A.5.26                 partial
        A.5.27                 partial
        A.5.28                 partial
        A.5.33                 partial
        A.8.2                  partial
        A.8.5                  partial
        A.8.15                 partial
        A.8.16                 satisfied
        A.8.24                 partial
        A.8.32                 satisfied
        coverage 53.1%
    "#]],
        expect![[r#"
        A.5.15                 satisfied
        A.5.16                 satisfied
        A.5.17                 satisfied
        A.5.18                 satisfied
        A.5.24                 satisfied
        A.5.25                 satisfied
        A.5.26                 satisfied
        A.5.27                 satisfied
        A.5.28                 satisfied
        A.5.33                 satisfied
        A.8.2                  satisfied
        A.8.5                  satisfied
        A.8.15                 satisfied
        A.8.16                 satisfied
        A.8.24                 satisfied
        A.8.32                 satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn gdpr_table() {
    check_table(
        "gdpr",
        expect![[r#"
        Art. 5(1)(f)           partial
        Art. 5(2)              partial
        Art. 22(3)             not_satisfied
        Art. 25                satisfied
        Art. 30                partial
        Art. 32(1)             not_satisfied
        Art. 33                not_satisfied
        Art. 35                not_satisfied
        coverage 31.3%
    "#]],
        expect![[r#"
        Art. 5(1)(f)           partial
        Art. 5(2)              partial
        Art. 22(3)             partial
        Art. 25                partial
        Art. 30                partial
        Art. 32(1)             partial
        Art. 33                partial
        Art. 35                partial
        coverage 50%
    "#]],
        expect![[r#"
        Art. 5(1)(f)           satisfied
        Art. 5(2)              satisfied
        Art. 22(3)             satisfied
        Art. 25                satisfied
        Art. 30                satisfied
        Art. 32(1)             satisfied
        Art. 33                satisfied
        Art. 35                satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn hipaa_table() {
    check_table(
        "hipaa",
        expect![[r#"
        164.308(a)(1)(ii)(D)   partial
        164.312(a)(1)          satisfied
        164.312(b)             satisfied
        164.312(c)(1)          not_satisfied
        164.312(c)(2)          partial
        164.312(d)             not_satisfied
        164.312(e)(1)          not_satisfied
        164.316(b)(2)(i)       satisfied
        coverage 50%
    "#]],
        expect![[r#"
        164.308(a)(1)(ii)(D)   partial
        164.312(a)(1)          partial
        164.312(b)             satisfied
        164.312(c)(1)          partial
        164.312(c)(2)          partial
        164.312(d)             partial
        164.312(e)(1)          not_satisfied
        164.316(b)(2)(i)       satisfied
        coverage 56.3%
    "#]],
        expect![[r#"
        164.308(a)(1)(ii)(D)   satisfied
        164.312(a)(1)          satisfied
        164.312(b)             satisfied
        164.312(c)(1)          satisfied
        164.312(c)(2)          satisfied
        164.312(d)             satisfied
        164.312(e)(1)          satisfied
        164.316(b)(2)(i)       satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn pci_dss_table() {
    check_table(
        "pci_dss",
        expect![[r#"
        7.2                    satisfied
        8.3                    partial
        8.4.1                  not_satisfied
        10.2.1                 satisfied
        10.2.2                 satisfied
        10.3                   not_satisfied
        10.4.1                 partial
        10.5.1                 satisfied
        coverage 62.5%
    "#]],
        expect![[r#"
        7.2                    partial
        8.3                    partial
        8.4.1                  partial
        10.2.1                 satisfied
        10.2.2                 satisfied
        10.3                   partial
        10.4.1                 partial
        10.5.1                 satisfied
        coverage 68.8%
    "#]],
        expect![[r#"
        7.2                    satisfied
        8.3                    satisfied
        8.4.1                  satisfied
        10.2.1                 satisfied
        10.2.2                 satisfied
        10.3                   satisfied
        10.4.1                 satisfied
        10.5.1                 satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn nist_csf_table() {
    check_table(
        "nist_csf",
        expect![[r#"
        GV.RR-02               not_satisfied
        PR.AA-01               partial
        PR.AA-03               not_satisfied
        PR.AA-05               satisfied
        PR.DS-01               not_satisfied
        PR.DS-02               not_satisfied
        PR.PS-04               satisfied
        DE.CM-03               satisfied
        DE.CM-09               partial
        RS.MA-01               not_satisfied
        coverage 40%
    "#]],
        expect![[r#"
        GV.RR-02               partial
        PR.AA-01               partial
        PR.AA-03               partial
        PR.AA-05               partial
        PR.DS-01               partial
        PR.DS-02               not_satisfied
        PR.PS-04               satisfied
        DE.CM-03               satisfied
        DE.CM-09               partial
        RS.MA-01               partial
        coverage 55%
    "#]],
        expect![[r#"
        GV.RR-02               satisfied
        PR.AA-01               satisfied
        PR.AA-03               satisfied
        PR.AA-05               satisfied
        PR.DS-01               satisfied
        PR.DS-02               satisfied
        PR.PS-04               satisfied
        DE.CM-03               satisfied
        DE.CM-09               satisfied
        RS.MA-01               satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn eu_ai_act_table() {
    check_table(
        "eu_ai_act",
        expect![[r#"
        Art. 9                 partial
        Art. 11                partial
        Art. 12(1)             satisfied
        Art. 12(2)             partial
        Art. 13                partial
        Art. 14(1)             not_satisfied
        Art. 14(4)             partial
        Art. 14(5)             partial
        Art. 15                not_satisfied
        Art. 19(1)             satisfied
        Art. 26(2)             not_satisfied
        Art. 26(5)             satisfied
        Art. 26(6)             satisfied
        Art. 72                satisfied
        Art. 73                not_satisfied
        coverage 53.3%
    "#]],
        expect![[r#"
        Art. 9                 partial
        Art. 11                partial
        Art. 12(1)             satisfied
        Art. 12(2)             partial
        Art. 13                partial
        Art. 14(1)             partial
        Art. 14(4)             partial
        Art. 14(5)             partial
        Art. 15                partial
        Art. 19(1)             satisfied
        Art. 26(2)             partial
        Art. 26(5)             satisfied
        Art. 26(6)             satisfied
        Art. 72                satisfied
        Art. 73                partial
        coverage 66.7%
    "#]],
        expect![[r#"
        Art. 9                 satisfied
        Art. 11                satisfied
        Art. 12(1)             satisfied
        Art. 12(2)             satisfied
        Art. 13                satisfied
        Art. 14(1)             satisfied
        Art. 14(4)             satisfied
        Art. 14(5)             satisfied
        Art. 15                satisfied
        Art. 19(1)             satisfied
        Art. 26(2)             satisfied
        Art. 26(5)             satisfied
        Art. 26(6)             satisfied
        Art. 72                satisfied
        Art. 73                satisfied
        coverage 100%
    "#]],
    );
}

#[test]
fn fresh_deployment_gaps_explained() {
    let f = fresh();
    expect![[r#"
        pci_dss 8.4.1: not_satisfied
        why: 0 of 0 admin users have MFA enrolled; auth.mfa_required_roles includes admin; 1 API key with these roles authenticates without MFA.
        evidence:
          [config] auth.mfa_required_roles = ["admin", "compliance_officer"]
          [fact] principals = admin users: 0, with MFA: 0; privileged API keys: 1
        remediation: Give people, not only API keys, the role: lexecon user add NAME --role admin and have each of them log in and enroll TOTP MFA (AuthService/EnrollMfa).
    "#]].assert_eq(&explain(&control("pci_dss", "8.4.1", &f)));
    expect![[r#"
        pci_dss 10.3: not_satisfied
        why: The ledger has never been fully verified; redaction is refused for entries under an active legal hold; 0 holds active, 0 placed in all.
        evidence:
          [config] compliance.verification_max_age_secs = 86400
          [fact] holds = 0 placed, none active
        remediation: Run a full verification against the node's key ring: lexecon verify-ledger --data-dir DIR (or LedgerService/Verify on the server), and repeat it at least every 24 hours.
    "#]].assert_eq(&explain(&control("pci_dss", "10.3", &f)));
    expect![[r#"
        nist_csf GV.RR-02: not_satisfied
        why: 0 compliance officers (0 users, 0 API keys) and 0 auditors (0 users, 0 API keys) are assigned.
        evidence:
          [fact] principals = compliance_officer: 0 users + 0 keys; auditor: 0 users + 0 keys
        remediation: Assign a compliance officer, who resolves escalations and may halt or intervene: lexecon user add NAME --role compliance_officer; assign an auditor, who reviews the ledger and verifies it: lexecon user add NAME --role auditor (or lexecon apikey create --name NAME --role auditor).
    "#]].assert_eq(&explain(&control("nist_csf", "GV.RR-02", &f)));
}

#[test]
fn satisfied_and_partial_controls_explained() {
    expect![[r#"
        soc2 CC6.1: satisfied
        why: Policy starter 1 (strict mode) decides every request with 6 relations, 2 of them denying; 2 of 2 admin users have MFA enrolled; auth.mfa_required_roles includes admin; 1 API key with these roles authenticates without MFA.
        evidence:
          [fact] policy = starter 1 (sha256 abababababab), mode strict, 6 relations (2 deny)
          [ledger] ledger:0 = policy_loaded
          [config] auth.mfa_required_roles = ["admin", "compliance_officer"]
          [fact] principals = admin users: 2, with MFA: 2; privileged API keys: 1
        remediation: 
    "#]].assert_eq(&explain(&control("soc2", "CC6.1", &good())));
    expect![[r#"
        soc2 CC6.1: partial
        why: Policy starter 1 has 6 relations but runs in permissive mode, which approves whatever no relation forbids; 1 of 2 admin users have MFA enrolled; auth.mfa_required_roles includes admin; 1 API key with these roles authenticates without MFA.
        evidence:
          [fact] policy = starter 1 (sha256 abababababab), mode permissive, 6 relations (2 deny)
          [ledger] ledger:0 = policy_loaded
          [config] auth.mfa_required_roles = ["admin", "compliance_officer"]
          [fact] principals = admin users: 2, with MFA: 1; privileged API keys: 1
        remediation: Set the policy's mode to strict (approve only what a relation permits) and reload it; 1 of the 2 admin users have no MFA yet: have each of them log in and enroll TOTP MFA (AuthService/EnrollMfa).
    "#]].assert_eq(&explain(&control("soc2", "CC6.1", &mixed())));
    expect![[r#"
        eu_ai_act Art. 14(4): partial
        why: 1 compliance officer can resolve escalations, override, halt and intervene; oversight.auto_escalate is on (threshold 80); 1 pending, 1 overdue; in the last 90 days: 12 escalations created, 12 resolved by people, 0 expired; 2 overrides, 1 halt, 3 interventions; 18 oversight acts by people in the last 90 days (escalations resolved, overrides, halts, interventions); 0 escalations expired unresolved, 1 overdue now.
        evidence:
          [config] oversight.auto_escalate = true
          [config] risk.escalation_threshold = 80
          [config] compliance.activity_window_secs = 7776000
          [ledger] ledger:1238 = last oversight or intervention entry
        remediation: Resolve the overdue escalations (1): lexecon escalations list, then approve or deny each; escalations were left to expire or run overdue (0 expired, 1 overdue): have compliance officers work the queue within oversight.sla_secs (lexecon escalations list, then approve or deny).
    "#]].assert_eq(&explain(&control("eu_ai_act", "Art. 14(4)", &mixed())));
    expect![[r#"
        eu_ai_act Art. 15: partial
        why: Evidence for eu_ai_act:Art. 15 exists (evd_test) but is older than compliance.evidence_max_age_secs (365 days); the last full verification (60 minutes ago, ledger:1249) passed over 1249 entries, but it trusted only keys recorded in the database, not the node's key ring.
        evidence:
          [config] compliance.evidence_max_age_secs = 31536000
          [evidence] evd_test = test_result registered 400 days ago (ledger:104)
          [config] compliance.verification_max_age_secs = 86400
          [verification] ledger:1249 = valid at 2026-12-01T11:00:00.000000Z by usr_auditor: 1249 entries, trust basis database
        remediation: Register a current version: lexecon evidence add FILE --type test_result --title "..." --control "eu_ai_act:Art. 15"; verify with the key ring from the data directory: lexecon verify-ledger --data-dir DIR.
    "#]].assert_eq(&explain(&control("eu_ai_act", "Art. 15", &mixed())));
}

fn status(framework: &str, id: &str, facts: &Facts) -> ControlStatus {
    control(framework, id, facts).status
}

#[test]
fn doing_the_remediation_satisfies_and_undoing_it_reverts() {
    // MFA for admins (pci_dss 8.4.1): a fresh node has only an admin API key.
    let mut f = fresh();
    assert_eq!(status("pci_dss", "8.4.1", &f), ControlStatus::NotSatisfied);
    f.principals.admins = 1;
    assert_eq!(status("pci_dss", "8.4.1", &f), ControlStatus::NotSatisfied);
    f.principals.admins_with_mfa = 1;
    assert_eq!(status("pci_dss", "8.4.1", &f), ControlStatus::Satisfied);
    f.config.mfa_required_roles = vec!["compliance_officer".to_owned()];
    assert_eq!(status("pci_dss", "8.4.1", &f), ControlStatus::Partial);
    f.principals.admins_with_mfa = 0;
    assert_eq!(status("pci_dss", "8.4.1", &f), ControlStatus::NotSatisfied);

    // Verification (hipaa 164.312(c)(1)): none, then one, then too old, then untrusted.
    let mut f = fresh();
    assert_eq!(
        status("hipaa", "164.312(c)(1)", &f),
        ControlStatus::NotSatisfied
    );
    f.verification = Some(VerificationFact {
        at: ago(10),
        valid: true,
        entries: 1,
        trusted_key_ring: true,
        basis: "key_ring".to_owned(),
        ledger_index: 1,
        by: "local".to_owned(),
    });
    assert_eq!(
        status("hipaa", "164.312(c)(1)", &f),
        ControlStatus::Satisfied
    );
    f.now = f.now.add_secs(86_400);
    assert_eq!(
        status("hipaa", "164.312(c)(1)", &f),
        ControlStatus::NotSatisfied
    );
    f.config.verification_max_age_secs = 2 * 86_400;
    assert_eq!(
        status("hipaa", "164.312(c)(1)", &f),
        ControlStatus::Satisfied
    );
    if let Some(v) = f.verification.as_mut() {
        v.trusted_key_ring = false;
    }
    assert_eq!(status("hipaa", "164.312(c)(1)", &f), ControlStatus::Partial);
    if let Some(v) = f.verification.as_mut() {
        v.valid = false;
        v.trusted_key_ring = true;
    }
    assert_eq!(
        status("hipaa", "164.312(c)(1)", &f),
        ControlStatus::NotSatisfied
    );

    // Oversight roles (nist_csf GV.RR-02, eu_ai_act Art. 26(2)).
    let mut f = fresh();
    assert_eq!(
        status("nist_csf", "GV.RR-02", &f),
        ControlStatus::NotSatisfied
    );
    f.principals.officers = 1;
    assert_eq!(status("nist_csf", "GV.RR-02", &f), ControlStatus::Partial);
    f.principals.auditor_keys = 1;
    assert_eq!(status("nist_csf", "GV.RR-02", &f), ControlStatus::Satisfied);
    assert_eq!(
        status("eu_ai_act", "Art. 26(2)", &f),
        ControlStatus::Satisfied
    );
    f.principals.officers = 0;
    assert_eq!(
        status("eu_ai_act", "Art. 26(2)", &f),
        ControlStatus::Partial
    );
}

#[test]
fn evidence_supports_only_its_control_within_its_window_unless_erased() {
    let mut f = fresh();
    assert_eq!(status("gdpr", "Art. 35", &f), ControlStatus::NotSatisfied);
    f.evidence.push(evidence(
        "evd_1",
        "risk_assessment",
        &["gdpr:Art.35"],
        DAY,
        9,
    ));
    assert_eq!(status("gdpr", "Art. 35", &f), ControlStatus::Satisfied);
    assert_eq!(
        status("eu_ai_act", "Art. 15", &f),
        ControlStatus::NotSatisfied
    );
    f.now = f.now.add_secs(366 * DAY);
    assert_eq!(status("gdpr", "Art. 35", &f), ControlStatus::Partial);
    f.config.evidence_max_age_secs = 400 * 86_400;
    assert_eq!(status("gdpr", "Art. 35", &f), ControlStatus::Satisfied);
    if let Some(e) = f.evidence.first_mut() {
        e.erased = true;
    }
    assert_eq!(status("gdpr", "Art. 35", &f), ControlStatus::NotSatisfied);
    // A tag naming a parent supports its sub-controls.
    let mut f = fresh();
    f.config.tls_enabled = false;
    f.evidence.push(evidence(
        "evd_tls",
        "external_attestation",
        &["hipaa:164.312(e)"],
        DAY,
        9,
    ));
    assert_eq!(
        status("hipaa", "164.312(e)(1)", &f),
        ControlStatus::Satisfied
    );
}

#[test]
fn coverage_counts_partial_as_half_and_gaps_list_not_satisfied_first() {
    let st = match evaluate("pci_dss", &fresh()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let s = st.count(ControlStatus::Satisfied) as f64;
    let p = st.count(ControlStatus::Partial) as f64;
    let n = st.controls.len() as f64;
    assert_eq!(
        st.coverage_percent,
        ((s + p / 2.0) * 1000.0 / n).round() / 10.0
    );
    let g = gaps(&st);
    let order: Vec<String> = g
        .iter()
        .map(|c| format!("{} {}", c.control_id, c.status.as_str()))
        .collect();
    expect![[r#"
        8.4.1 not_satisfied
        10.3 not_satisfied
        8.3 partial
        10.4.1 partial"#]]
    .assert_eq(&order.join("\n"));
    assert!(g.iter().all(|c| !c.remediation.is_empty()));
    assert!(
        st.controls
            .iter()
            .filter(|c| c.status == ControlStatus::Satisfied)
            .all(|c| c.remediation.is_empty())
    );
}

#[test]
fn uuid_v5_matches_the_rfc_reference() {
    // RFC 9562 / Python uuid.uuid5(uuid.NAMESPACE_DNS, "python.org").
    let dns = [
        0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    assert_eq!(
        oscal::uuid_v5(&dns, "python.org"),
        "886313e1-3b8a-5372-9b90-0c9aee199e5d"
    );
}

fn all_statuses(f: &Facts) -> Vec<FrameworkStatus> {
    frameworks()
        .iter()
        .filter_map(|fw| evaluate(&fw.id, f).ok())
        .collect()
}

fn text_of(r: &Report) -> String {
    String::from_utf8_lossy(&r.content).into_owned()
}

#[test]
fn html_is_self_contained_escaped_and_links_controls_to_evidence() {
    let mut f = mixed();
    f.config.system_name = "<script>alert(1)</script> & \"co\"".to_owned();
    let r = report(&all_statuses(&f), &f, ReportFormat::Html);
    let html = text_of(&r);
    assert_eq!(r.media_type, "text/html; charset=utf-8");
    assert!(r.file_name.ends_with(".html"), "{}", r.file_name);
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "a script tag");
    assert!(lower.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;"));
    for attr in ["src=", "href=", "url("] {
        for (i, _) in lower.match_indices(attr) {
            let rest = lower.get(i + attr.len()..).unwrap_or("");
            let rest = rest.trim_start_matches(['"', '\'']);
            assert!(
                !rest.starts_with("http:")
                    && !rest.starts_with("https:")
                    && !rest.starts_with("//"),
                "external reference at {i}: {}",
                lower.get(i..i + 60).unwrap_or("")
            );
        }
    }
    assert!(!lower.contains("@import"));
    assert!(lower.contains("@media print"));
    // Every in-page link has a target.
    for (i, _) in html.match_indices("href=\"#") {
        let rest = html.get(i + 7..).unwrap_or("");
        let id = rest.split('"').next().unwrap_or("");
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "dangling link #{id}"
        );
    }
    // Gaps come before the control tables, and a control links to its evidence.
    let gaps_at = html.find("id=\"gaps\"").unwrap_or(usize::MAX);
    let first_table = html.find("<table").unwrap_or(0);
    assert!(gaps_at < first_table);
    assert!(html.contains("href=\"#e-verification-ledger-1249\""));
    assert!(html.contains("id=\"c-pci-dss-8-4-1\""));
}

#[test]
fn oscal_has_the_required_model_and_is_reproducible() {
    let f = mixed();
    let st = all_statuses(&f);
    let a = report(&st, &f, ReportFormat::Oscal);
    let b = report(&all_statuses(&f), &f, ReportFormat::Oscal);
    assert_eq!(a.content, b.content, "same facts, same document");
    let doc: serde_json::Value = match serde_json::from_slice(&a.content) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let ar = &doc["assessment-results"];
    let uuid_re = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 5
            && [8, 4, 4, 4, 12]
                .iter()
                .zip(&parts)
                .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
            && parts.get(2).is_some_and(|p| p.starts_with('5'))
            && parts
                .get(3)
                .is_some_and(|p| p.starts_with(['8', '9', 'a', 'b']))
    };
    assert!(uuid_re(ar["uuid"].as_str().unwrap_or("")));
    assert_eq!(ar["metadata"]["oscal-version"], "1.2.1");
    for k in ["title", "last-modified", "version"] {
        assert!(
            ar["metadata"][k].as_str().is_some_and(|s| !s.is_empty()),
            "metadata.{k}"
        );
    }
    let href = ar["import-ap"]["href"].as_str().unwrap_or("");
    assert_eq!(
        href.trim_start_matches('#'),
        ar["back-matter"]["resources"][0]["uuid"]
            .as_str()
            .unwrap_or("-")
    );
    let results = ar["results"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    assert_eq!(results.len(), 7);
    let mut all_uuids = vec![ar["uuid"].as_str().unwrap_or("").to_owned()];
    for r in results {
        for k in ["uuid", "title", "description", "start"] {
            assert!(r[k].as_str().is_some(), "result.{k}");
        }
        let sel = &r["reviewed-controls"]["control-selections"][0]["include-controls"];
        let ids: Vec<&str> = sel
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["control-id"].as_str()).collect())
            .unwrap_or_default();
        assert!(!ids.is_empty());
        for id in &ids {
            let ok = id
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            assert!(ok, "control-id {id:?} is not an OSCAL token");
        }
        for finding in r["findings"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let t = &finding["target"];
            assert_eq!(t["type"], "objective-id");
            assert!(ids.contains(&t["target-id"].as_str().unwrap_or("")));
            let state = t["status"]["state"].as_str().unwrap_or("");
            assert!(state == "satisfied" || state == "not-satisfied");
            assert!(finding["title"].as_str().is_some_and(|s| !s.contains('\n')));
            all_uuids.push(finding["uuid"].as_str().unwrap_or("").to_owned());
        }
        for o in r["observations"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            assert_eq!(o["methods"][0], "TEST");
            assert!(o["collected"].as_str().is_some_and(|s| s.ends_with('Z')));
            all_uuids.push(o["uuid"].as_str().unwrap_or("").to_owned());
        }
        all_uuids.push(r["uuid"].as_str().unwrap_or("").to_owned());
    }
    assert!(all_uuids.iter().all(|u| uuid_re(u)));
    let n = all_uuids.len();
    all_uuids.sort();
    all_uuids.dedup();
    assert_eq!(all_uuids.len(), n, "uuids are unique");
    expect!["hipaa-164.312-c-1"].assert_eq(&oscal::control_token("hipaa", "164.312(c)(1)"));
    expect!["eu_ai_act-art.12-1"].assert_eq(&oscal::control_token("eu_ai_act", "Art. 12(1)"));
}

#[test]
fn json_and_markdown_reports() {
    let f = fresh();
    let st = all_statuses(&f);
    let j = report(&st, &f, ReportFormat::Json);
    let v: serde_json::Value = match serde_json::from_slice(&j.content) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(v["generated_at"], "2026-12-01T12:00:00.000000Z");
    assert_eq!(v["frameworks"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["frameworks"][0]["controls"][0]["status"], "not_satisfied");
    let one = report(&st[..1], &f, ReportFormat::Markdown);
    expect!["lexecon-compliance-soc2-20261201T120000Z.md"].assert_eq(&one.file_name);
    let md = text_of(&one);
    assert!(md.contains("### Gaps"));
    assert!(md.contains("What to do: Run a full verification"));
    assert_eq!("md".parse::<ReportFormat>(), Ok(ReportFormat::Markdown));
    expect![[r#"unknown report format "pdf": expected json, markdown, html or oscal"#]].assert_eq(
        &"pdf"
            .parse::<ReportFormat>()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default(),
    );
}

#[test]
fn technical_documentation_has_every_annex_iv_section_in_both_renderings() {
    let f = fresh();
    let doc = technical_documentation(&f);
    let sections = doc.json["sections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let numbers: Vec<u64> = sections
        .iter()
        .filter_map(|s| s["number"].as_u64())
        .collect();
    assert_eq!(numbers, (1..=9).collect::<Vec<u64>>());
    for s in sections {
        let heading = format!("## {}. {}", s["number"], s["title"].as_str().unwrap_or(""));
        assert!(doc.markdown.contains(&heading), "missing {heading}");
        for field in s["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let values: Vec<&str> = match &field["value"] {
                serde_json::Value::String(t) => vec![t.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                _ => Vec::new(),
            };
            for v in values {
                assert!(doc.markdown.contains(v), "markdown lacks {v:?}");
            }
        }
    }
    assert!(
        doc.markdown
            .contains("not provided: set compliance.intended_purpose")
    );
    assert!(
        doc.markdown
            .contains("not provided: set compliance.provider")
    );
    assert!(
        doc.markdown
            .contains("ai_agent:* must_not delete on data:*")
    );
    expect![[r##"
        # Technical documentation (EU AI Act Annex IV): AI agents governed by Lexecon

        Generated 2026-12-01T12:00:00.000000Z by Lexecon from the running configuration, policy, risk rules, model access lists and ledger statistics.

        ## 1. General description of the AI system

        - **System name:** AI agents governed by Lexecon
        - **Intended purpose:** not provided: set compliance.intended_purpose
        - **Provider:** not provided: set compliance.provider
        - **Governing software:** Lexecon 0.1.0
        - **Node:** node-1
        - **Deployment:** sqlite database, Redis not configured
        - **Policy in force:** starter 1 (sha256 abababababababababababababababababababababababababababababababab), strict mode, 6 relations (2 deny)

        ## 2. Elements of the system and its development

        - **Policy:** starter 1 (sha256 abababababababababababababababababababababababababababababababab), strict mode, 6 relations (2 deny)
        - **Relations:**
          - ai_agent:* may read on data:public
          - ai_agent:* must_not delete on data:*
        - **Risk dimensions:**
          - security (weight 1)
          - privacy (weight 1)
          - financial (weight 1)
          - operational (weight 1)
          - reputational (weight 1)
          - compliance (weight 1)
        - **Risk rules:**
          - pii: personal data (+30)
        - **Escalation threshold:** risk score 80 (risk.escalation_threshold)
        - **Model allowlist:** none (budget.model_allowlist)
        - **Model denylist:** none (budget.model_denylist)
        - **Restricted models:** none (budget.restricted_models)
        - **MCP tool rules:** none ([[mcp.tools]])

        ## 3. Monitoring, functioning and control (human oversight, logging)

        - **Automatic escalation:** on (oversight.auto_escalate), at risk score 80
        - **Two-person rule:** on (oversight.two_person_rule); approvers: any officer or admin principal
        - **Overrides:** at most 24 hours ahead (oversight.max_override_secs)
        - **Overseers:** 0 compliance officers (0 users, 0 API keys), 0 auditors (0 users, 0 API keys), 0 admins
        - **Interventions available:** disregard, override, reverse (revokes the decision's token), stop (halts the actor): lexecon compliance intervene
        - **Logging:** automatic: 1 ledger entries, 2026-12-01T11:00:00.000000Z to 2026-12-01T11:00:00.000000Z; signed checkpoints every 10000 entries
        - **MFA required for roles:** admin, compliance_officer

        ## 4. Appropriateness of the performance metrics

        - **Decisions recorded:** 0
        - **Oversight in the last window:** 90 days: 0 escalations created, 0 resolved by people, 0 expired, 0 pending (0 overdue); 0 overrides, 0 halts, 0 interventions
        - **Ledger integrity:** never verified
        - **Accuracy and robustness:** Lexecon records decisions, not model accuracy: register test results as evidence for eu_ai_act:Art. 15
        - **Evidence for Art. 15:** not provided: register it with lexecon evidence add FILE --type test_result --control "eu_ai_act:Art. 15"

        ## 5. Risk management system (Art. 9)

        - **Risk scoring:** every request is scored in 6 dimensions with 1 rules; scores at or above 80 escalate to a person when oversight.auto_escalate is on (on)
        - **Documented risk assessment:** not provided: register it with lexecon evidence add FILE --type risk_assessment --control "eu_ai_act:Art. 9"

        ## 6. Changes made over the lifecycle

        - **Policy loads:**
          - ledger:0 at 2026-12-01T11:00:00.000000Z: starter 1 (sha256 abababababab) loaded by startup
        - **Policy loads in the last window:** 1
        - **Configuration reloads:** 0
        - **Signing key rotations:** 0 (current key key-1, 0 retired keys kept)

        ## 7. Standards and specifications applied

        - **Control catalogs evaluated:**
          - SOC 2 Trust Services Criteria 2017 (rev. 2022) (soc2): 13 controls, coverage 50% from live facts
          - ISO/IEC 27001 2022 (iso27001): 16 controls, coverage 46.9% from live facts
          - GDPR Regulation (EU) 2016/679 (gdpr): 8 controls, coverage 31.3% from live facts
          - HIPAA Security Rule 45 CFR 164 Subpart C (hipaa): 8 controls, coverage 50% from live facts
          - PCI DSS 4.0 (pci_dss): 8 controls, coverage 62.5% from live facts
          - NIST CSF 2.0 (nist_csf): 10 controls, coverage 40% from live facts
          - EU AI Act Regulation (EU) 2024/1689 (eu_ai_act): 15 controls, coverage 53.3% from live facts

        ## 8. EU declaration of conformity

        - **Declaration:** not generated by Lexecon: the provider draws it up (Art. 47) and keeps a copy with this documentation

        ## 9. Post-market monitoring (Art. 72)

        - **Ledger:** 1 entries, 2026-12-01T11:00:00.000000Z to 2026-12-01T11:00:00.000000Z; 0 payloads redacted
        - **Entries by kind:**
          - policy_loaded: 1, last at 2026-12-01T11:00:00.000000Z
        - **Last full verification:** never verified
        - **Retention commitment:** 3650 days (compliance.log_retention_days); nothing is deleted automatically
        - **Active legal holds:** none
        - **Oversight events:** in the last 90 days: 0 escalations, 0 overrides, 0 halts, 0 interventions, 0 tokens revoked
    "##]].assert_eq(&doc.markdown);

    let g = technical_documentation(&good());
    assert!(
        !g.markdown
            .contains("not provided: set compliance.intended_purpose")
    );
    assert!(g.markdown.contains("Govern the actions of support agents"));
    assert!(g.markdown.contains("evd_test (test_result"));
}

#[test]
fn every_check_is_used_and_documented_and_every_control_is_in_the_docs() {
    let docs = include_str!("../../../docs/compliance.md");
    let mut used = std::collections::BTreeSet::new();
    for (id, text) in catalog::SOURCES {
        let c = match catalog::parse(id, text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        for ctl in &c.controls {
            used.extend(ctl.checks.iter().copied());
            assert!(
                docs.contains(&format!("| {} | {} |", ctl.id, ctl.title)),
                "docs/compliance.md lacks the row of {id} {}",
                ctl.id
            );
        }
    }
    for check in Check::ALL {
        assert!(
            used.contains(&check),
            "{} is used by no control",
            check.name()
        );
        assert!(
            docs.contains(&format!("#### `{}`", check.name())),
            "docs/compliance.md does not explain {}",
            check.name()
        );
    }
}
