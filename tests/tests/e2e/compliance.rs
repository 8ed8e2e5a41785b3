//! Compliance end to end (contract §8), against a real server and the `lexecon` binary:
//! statuses follow the facts both ways, a legal hold blocks redaction across a restart,
//! and the reports load in independent tools (OSCAL in compliance-trestle, HTML in
//! headless chromium). One server (restarted once) carries every step, to keep CI short.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lexecon_e2e::*;
use lexecon_proto::v1::auth_service_client::AuthServiceClient;
use lexecon_proto::v1::compliance_service_client::ComplianceServiceClient;
use lexecon_proto::v1::{
    ControlStatus, CreateUserRequest, EnrollMfaRequest, GetComplianceStatusRequest, LoginRequest,
    Role,
};

use crate::common::{PASSWORD, payload, request_for};

/// The verification window the test configures: the smallest the configuration accepts.
const VERIFICATION_WINDOW_SECS: u64 = 60;

/// One control whose status rests on one fact, per fact the test turns on and off.
/// `mfa_for_admins` alone:
const MFA_CONTROL: (&str, &str) = ("pci_dss", "8.4.1");
/// `ledger_verified_recently` alone:
const VERIFIED_CONTROL: (&str, &str) = ("soc2", "CC4.1");
/// `oversight_roles_assigned` alone:
const ROLES_CONTROL: (&str, &str) = ("eu_ai_act", "Art. 26(2)");

/// `lexecon ARGS --data-dir data --server URL` in `dir`.
fn cli(dir: &Path, server: &Server, args: &[&str]) -> Run {
    let url = server.url();
    let mut all = args.to_vec();
    all.extend(["--data-dir", "data", "--server", url.as_str()]);
    lexecon(dir, &all)
}

/// A command's stdout as JSON, after checking it exited 0.
fn json_of(run: &Run) -> serde_json::Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

/// The status of one control, read through `ComplianceService/GetComplianceStatus`.
async fn status_of(
    server: &Server,
    token: &str,
    (framework, control): (&str, &str),
) -> ControlStatus {
    let status = ComplianceServiceClient::new(server.channel().await)
        .get_compliance_status(authed(
            GetComplianceStatusRequest {
                framework: framework.to_owned(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    status
        .controls
        .iter()
        .find(|c| c.control_id == control)
        .unwrap_or_else(|| panic!("{framework} has no control {control}: {status:?}"))
        .status()
}

/// The gap rows `lexecon compliance gaps --framework F --json` prints.
fn gaps(dir: &Path, server: &Server, framework: &str) -> Vec<serde_json::Value> {
    let out = json_of(&cli(
        dir,
        server,
        &["compliance", "gaps", "--framework", framework, "--json"],
    ));
    out["gaps"].as_array().cloned().unwrap_or_default()
}

fn gap<'a>(gaps: &'a [serde_json::Value], control: &str) -> Option<&'a serde_json::Value> {
    gaps.iter().find(|g| g["control_id"] == control)
}

/// Creates a user of `role` whose MFA is required, logs in and enrolls a TOTP factor.
async fn user_with_mfa(server: &Server, admin: &str, name: &str, role: Role) {
    let mut auth = AuthServiceClient::new(server.channel().await);
    auth.create_user(authed(
        CreateUserRequest {
            username: name.to_owned(),
            password: PASSWORD.to_owned(),
            role: role as i32,
        },
        admin,
    ))
    .await
    .unwrap_or_else(|e| panic!("CreateUser {name}: {e:?}"));
    let session = auth
        .login(tonic::Request::new(LoginRequest {
            username: name.to_owned(),
            password: PASSWORD.to_owned(),
        }))
        .await
        .unwrap()
        .into_inner()
        .session
        .expect("an enrollment session")
        .token;
    let enrolled = auth
        .enroll_mfa(authed(EnrollMfaRequest {}, &session))
        .await
        .unwrap_or_else(|e| panic!("EnrollMfa {name}: {e:?}"))
        .into_inner();
    assert_eq!(enrolled.backup_codes.len(), 10);
}

/// Replaces `from` with `to` in `data/lexecon.toml` (once; it must be there).
fn edit_config(data: &Path, from: &str, to: &str) {
    let file = data.join("lexecon.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "lexecon.toml has no {from:?}");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
}

fn stop(server: Server) {
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), 0, "graceful shutdown");
}

/// Loads `file` with compliance-trestle 5.2.0's OSCAL assessment-results model.
fn check_oscal_with_trestle(python: &Path, file: &Path) {
    let script = "import pathlib, sys\n\
        from trestle.oscal.assessment_results import AssessmentResults\n\
        def plain(v):\n\
        \x20   while hasattr(v, 'root') or hasattr(v, '__root__'):\n\
        \x20       v = getattr(v, 'root', None) or getattr(v, '__root__')\n\
        \x20   return v\n\
        ar = AssessmentResults.oscal_read(pathlib.Path(sys.argv[1]))\n\
        assert ar is not None, 'trestle read nothing'\n\
        print(plain(ar.metadata.oscal_version))\n\
        print(len(ar.results))\n\
        print(ar.import_ap.href)\n";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compliance-trestle refused the OSCAL report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("1.2.1"), "{stdout}");
    assert!(
        lines
            .get(1)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            >= 1,
        "no results: {stdout}"
    );
    assert!(
        lines.get(2).is_some_and(|h| !h.is_empty()),
        "no import-ap: {stdout}"
    );
}

/// Opens `html` in headless chromium (tests/browser/check_report.mjs) and returns what it
/// saw; the screenshot goes to `shot` (the whole page, or its top `height` pixels).
fn open_in_chromium(
    modules: &Path,
    html: &Path,
    shot: &Path,
    height: Option<u32>,
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/check_report.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(html)
        .arg(shot)
        .args(height.map(|h| h.to_string()))
        .env("NODE_PATH", modules)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    assert!(
        out.status.success(),
        "the browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the browser check printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_the_facts_holds_block_redaction_and_reports_load_elsewhere() {
    let started = Instant::now();
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    edit_config(
        &data,
        "verification_max_age_secs = 86400",
        &format!("verification_max_age_secs = {VERIFICATION_WINDOW_SECS}"),
    );
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);

    // --- A fresh deployment has the gaps it really has. ---
    for (framework, control) in [MFA_CONTROL, VERIFIED_CONTROL, ROLES_CONTROL] {
        let listed = gaps(dir.path(), &server, framework);
        let row = gap(&listed, control)
            .unwrap_or_else(|| panic!("{framework} {control} is not a gap: {listed:?}"));
        assert_eq!(row["status"], "not_satisfied", "{row}");
        assert!(
            !row["remediation"].as_str().unwrap_or_default().is_empty(),
            "{row}"
        );
    }
    let table = cli(
        dir.path(),
        &server,
        &["compliance", "status", "--framework", "soc2"],
    );
    assert_eq!(table.code, 0, "{table:?}");
    assert!(
        table.stdout.lines().any(|l| l.starts_with("✗ CC4.1")),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("soc2: coverage ")),
        "{}",
        table.stdout
    );

    eprintln!("compliance e2e: fresh gaps at {:?}", started.elapsed());
    // --- Doing what each remediation says turns it satisfied. ---
    let verify = lexecon(dir.path(), &["verify-ledger", "--data-dir", "data"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let verified_at = Instant::now();
    assert_eq!(
        status_of(&server, &admin, VERIFIED_CONTROL).await,
        ControlStatus::Satisfied
    );
    let records = json_of(&cli(
        dir.path(),
        &server,
        &["compliance", "record-keeping", "--json"],
    ));
    let last = &records["last_verification"];
    assert_eq!(last["valid"], true, "{records}");
    assert_eq!(last["trusted_key_ring"], true, "{records}");
    assert!(last["ledger_index"].as_u64().unwrap_or(0) > 0, "{records}");

    user_with_mfa(&server, &admin, "ada", Role::Admin).await;
    assert_eq!(
        status_of(&server, &admin, MFA_CONTROL).await,
        ControlStatus::Satisfied
    );
    user_with_mfa(&server, &admin, "carol", Role::ComplianceOfficer).await;
    crate::common::user_session(&server, &admin, "audrey", Role::Auditor).await;
    assert_eq!(
        status_of(&server, &admin, ROLES_CONTROL).await,
        ControlStatus::Satisfied
    );

    eprintln!("compliance e2e: remediated at {:?}", started.elapsed());
    // --- A legal hold on a decision blocks its redaction. ---
    let decided = crate::common::decide(&server, &admin, request_for("ai_agent:customer_service"))
        .await
        .unwrap();
    let other = crate::common::decide(&server, &admin, request_for("ai_agent:assistant"))
        .await
        .unwrap();
    let placed = json_of(&cli(
        dir.path(),
        &server,
        &[
            "compliance",
            "hold",
            "place",
            "--reason",
            "litigation hold",
            "--matter",
            "case 2026-114",
            "--decision",
            &decided.decision_id,
            "--json",
        ],
    ));
    let hold_id = placed["hold_id"].as_str().unwrap().to_owned();
    assert!(hold_id.starts_with("hld_"), "{placed}");
    let index = decided.ledger_index.to_string();
    let redact = [
        "ledger",
        "redact",
        "--index",
        &index,
        "--reason",
        "GDPR Art. 17 request",
    ];
    let refused = cli(dir.path(), &server, &redact);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stdout.contains(&hold_id),
        "names the hold: {refused:?}"
    );

    let intervened = json_of(&cli(
        dir.path(),
        &server,
        &[
            "compliance",
            "intervene",
            &other.decision_id,
            "--kind",
            "disregard",
            "--reason",
            "the agent's answer was not used",
            "--json",
        ],
    ));
    assert!(
        intervened["intervention_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("itv_")),
        "{intervened}"
    );
    let tech_doc = cli(dir.path(), &server, &["compliance", "tech-doc"]);
    assert_eq!(tech_doc.code, 0, "{tech_doc:?}");
    assert!(tech_doc.stdout.starts_with('#'), "{}", tech_doc.stdout);

    eprintln!("compliance e2e: hold placed at {:?}", started.elapsed());
    // --- Reports, from this state (some controls satisfied, some gaps). ---
    let oscal = dir.path().join("report.oscal.json");
    let wrote = cli(
        dir.path(),
        &server,
        &[
            "compliance",
            "report",
            "--format",
            "oscal",
            "--out",
            oscal.to_str().unwrap(),
        ],
    );
    assert_eq!(wrote.code, 0, "{wrote:?}");
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&oscal).unwrap()).unwrap();
    assert_eq!(
        document["assessment-results"]["metadata"]["oscal-version"],
        "1.2.1"
    );
    if let Some(python) = crate::common::install("install-trestle") {
        check_oscal_with_trestle(&python, &oscal);
    }
    let html = dir.path().join("report.html");
    let wrote = cli(
        dir.path(),
        &server,
        &[
            "compliance",
            "report",
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(wrote.code, 0, "{wrote:?}");
    if let Some(modules) = crate::common::install("install-chromium") {
        let shot = dir.path().join("report.png");
        let seen = open_in_chromium(&modules, &html, &shot, None);
        assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
        assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
        assert_eq!(
            seen["requests"],
            serde_json::json!([]),
            "no network: {seen}"
        );
        assert!(seen["text_length"].as_u64().unwrap_or(0) > 500, "{seen}");
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "a screenshot"
        );
        // LEXECON_TEST_REPORT_SCREENSHOT=FILE keeps the top of the page as a picture (the
        // one in docs/img is made this way).
        if let Some(keep) = std::env::var_os("LEXECON_TEST_REPORT_SCREENSHOT") {
            open_in_chromium(&modules, &html, Path::new(&keep), Some(1400));
        }
    }

    eprintln!("compliance e2e: reports checked at {:?}", started.elapsed());
    // --- The hold survives a restart; turning MFA off for admins is seen at once. ---
    stop(server);
    let offline = lexecon(
        dir.path(),
        &[
            "ledger",
            "redact",
            "--index",
            &index,
            "--reason",
            "offline attempt",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(offline.code, 1, "{offline:?}");
    assert!(offline.stdout.contains(&hold_id), "{offline:?}");
    edit_config(
        &data,
        r#"mfa_required_roles = ["admin", "compliance_officer"]"#,
        r#"mfa_required_roles = ["compliance_officer"]"#,
    );
    let server = Server::start(dir.path(), "data", &[]);
    assert_ne!(
        status_of(&server, &admin, MFA_CONTROL).await,
        ControlStatus::Satisfied,
        "MFA is no longer required for admins"
    );
    assert!(
        gap(&gaps(dir.path(), &server, MFA_CONTROL.0), MFA_CONTROL.1).is_some(),
        "turning MFA off for admins is a gap again"
    );
    let refused = cli(dir.path(), &server, &redact);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains(&hold_id), "{refused:?}");
    let holds = json_of(&cli(
        dir.path(),
        &server,
        &["compliance", "hold", "list", "--json"],
    ));
    assert_eq!(holds["holds"][0]["hold_id"], hold_id.as_str(), "{holds}");
    assert_eq!(holds["holds"][0]["active"], true, "{holds}");

    eprintln!("compliance e2e: restarted at {:?}", started.elapsed());
    // --- Releasing allows the redaction; all three are ledger entries. ---
    let released = cli(
        dir.path(),
        &server,
        &[
            "compliance",
            "hold",
            "release",
            &hold_id,
            "--reason",
            "case closed",
        ],
    );
    assert_eq!(released.code, 0, "{released:?}");
    let redacted = json_of(&cli(
        dir.path(),
        &server,
        &[&redact[..], &["--json"]].concat(),
    ));
    assert_eq!(redacted["redacted"], true, "{redacted}");
    let events: Vec<serde_json::Value> = crate::entries_of_kind(&server, &admin, "compliance")
        .await
        .iter()
        .map(payload)
        .collect();
    let named = |event: &str| events.iter().filter(|e| e["event"] == event).count();
    assert_eq!(named("legal_hold_placed"), 1, "{events:?}");
    assert_eq!(named("legal_hold_released"), 1, "{events:?}");
    let erasure = events
        .iter()
        .find(|e| e["event"] == "entry_redacted")
        .unwrap_or_else(|| panic!("no entry_redacted event: {events:?}"));
    assert_eq!(erasure["index"], decided.ledger_index, "{erasure}");
    assert_eq!(erasure["reason"], "GDPR Art. 17 request", "{erasure}");

    // The decision index keeps the id, time and outcome only; the ledger still verifies.
    let query = json_of(&cli(dir.path(), &server, &["decisions", "query", "--json"]));
    let row = query["decisions"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["decision_id"] == decided.decision_id.as_str())
        })
        .unwrap_or_else(|| panic!("the decision is not in the index: {query}"));
    assert_eq!(row["redacted"], true, "{row}");
    assert_eq!(row["actor"], "", "{row}");
    let still = json_of(&cli(
        dir.path(),
        &server,
        &[
            "decisions",
            "query",
            "--actor",
            "ai_agent:customer_service",
            "--json",
        ],
    ));
    assert!(
        still["decisions"].as_array().is_some_and(|rows| rows
            .iter()
            .all(|r| r["decision_id"] != decided.decision_id.as_str())),
        "a filter on an erased field never matches: {still}"
    );
    let file = data.join("lexecon.db");
    let valid = lexecon(
        dir.path(),
        &["verify-ledger", "--ledger-file", file.to_str().unwrap()],
    );
    assert_eq!(valid.code, 0, "{valid:?}");

    eprintln!("compliance e2e: redacted at {:?}", started.elapsed());
    // --- Letting the verification age past its window turns its control back. ---
    let aged = verified_at + Duration::from_secs(VERIFICATION_WINDOW_SECS + 1);
    tokio::time::sleep(aged.saturating_duration_since(Instant::now())).await;
    assert_eq!(
        status_of(&server, &admin, VERIFIED_CONTROL).await,
        ControlStatus::NotSatisfied,
        "the last verification is older than compliance.verification_max_age_secs"
    );
    let listed = gaps(dir.path(), &server, "soc2");
    assert!(gap(&listed, VERIFIED_CONTROL.1).is_some(), "{listed:?}");
    stop(server);
    eprintln!("compliance e2e took {:?}", started.elapsed());
}
