//! The real `lexecon` binary as a process: exit codes and output. One shared test binary;
//! each area prefixes its test names (`policy_`, ...).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]

use std::process::{Command, Output};

fn lexecon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lexecon"))
        .args(args)
        .output()
        .unwrap()
}

fn example(name: &str) -> String {
    format!(
        "{}/../../examples/policies/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn policy_commands_exit_codes() {
    let policy = example("customer-support.toml");
    let cases = example("customer-support.cases.toml");
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "explain",
            policy.as_str(),
            "--actor",
            "ai_agent:customer_service",
            "--action",
            "read:customer_data",
        ];
        args.extend_from_slice(extra);
        lexecon(&args)
    };
    for (what, out, code) in [
        ("check valid", lexecon(&["policy", "check", &policy]), 0),
        (
            "check cases file as a policy",
            lexecon(&["policy", "check", &cases]),
            1,
        ),
        (
            "check missing file",
            lexecon(&["policy", "check", "/nonexistent/p.toml"]),
            2,
        ),
        (
            "test passes",
            lexecon(&["policy", "test", &policy, &cases]),
            0,
        ),
        (
            "test with the policy as cases",
            lexecon(&["policy", "test", &policy, &policy]),
            2,
        ),
        (
            "explain approved",
            explain(&["--tool", "database_query"]),
            0,
        ),
        ("explain denied", explain(&[]), 1),
        (
            "explain escalated",
            explain(&["--tool", "crm_x", "--risk-level", "4", "--mode", "paranoid"]),
            1,
        ),
        ("explain bad risk level", explain(&["--risk-level", "9"]), 2),
        ("hash", lexecon(&["policy", "hash", &policy]), 0),
        (
            "hash of an invalid policy",
            lexecon(&["policy", "hash", &cases]),
            2,
        ),
    ] {
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = lexecon(&["policy", "test", &policy, &cases]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("ok ") || l.ends_with(" passed, 0 failed")),
        "{stdout}"
    );
    let out = lexecon(&["policy", "check", "/nonexistent/p.toml"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("lexecon: error: cannot read policy file /nonexistent/p.toml"),
        "{stderr}"
    );
}

#[test]
fn token_verify_and_keys_rotate_exit_codes() {
    use lexecon_capability::{Claims, NodeKey, mint};
    use lexecon_core::{Action, Actor, Clock, DecisionId, SystemClock, Tool};

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let key = NodeKey::generate(&mut rand_core::OsRng);
    key.write_files(&dir.path().join("keys"), "node").unwrap();
    let now = SystemClock.now();
    let claims = Claims::builder(
        DecisionId::new(now, 1),
        Actor::new("ai_agent:support").unwrap(),
        Action::new("read:customer_data").unwrap(),
        [0; 32],
    )
    .tool(Some(Tool::new("database_query").unwrap()))
    .build(key.key_id(), now, 2)
    .unwrap();
    let token = mint(&key, &claims).unwrap();
    let public = dir.path().join("keys/node.ed25519.pub");
    let public = public.to_str().unwrap();

    let verify = |extra: &[&str]| {
        let mut args = vec!["token", "verify", token.as_str()];
        args.extend_from_slice(extra);
        lexecon(&args)
    };
    for (what, out, code, stdout_start) in [
        (
            "valid",
            verify(&["--data-dir", data_dir]),
            0,
            "valid: ai_agent:support may read:customer_data via database_query",
        ),
        (
            "valid by public key, scoped",
            verify(&[
                "--public-key",
                public,
                "--actor",
                "ai_agent:support",
                "--tool",
                "database_query",
            ]),
            0,
            "valid:",
        ),
        (
            "wrong actor",
            verify(&["--data-dir", data_dir, "--actor", "ai_agent:other"]),
            1,
            "invalid (scope): ",
        ),
        (
            "wrong action",
            verify(&["--data-dir", data_dir, "--action", "delete:customer_data"]),
            1,
            "invalid (scope): ",
        ),
        (
            "garbage",
            lexecon(&["token", "verify", "lxc1.nope", "--data-dir", data_dir]),
            1,
            "invalid (malformed): ",
        ),
        (
            "missing key file",
            verify(&["--public-key", "/nonexistent/node.ed25519.pub"]),
            2,
            "",
        ),
        (
            "both key sources",
            verify(&["--public-key", public, "--data-dir", data_dir]),
            2,
            "",
        ),
    ] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: stdout {stdout} stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with(stdout_start), "{what}: {stdout}");
    }

    let out = verify(&["--data-dir", data_dir, "--tool", "shell", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["error"], "scope");

    // The token from standard input keeps it out of the process list.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lexecon"))
        .args(["token", "verify", "-", "--public-key", public, "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{token}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["token_id"], claims.token_id.to_string());

    // After a rotation the old token still verifies against the data directory, but not
    // against the new public key alone.
    let out = lexecon(&["keys", "rotate", "--data-dir", data_dir, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["old_key_id"], key.key_id());
    assert_eq!(verify(&["--data-dir", data_dir]).status.code(), Some(0));
    let out = verify(&["--public-key", public]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("invalid (unknown_key): "));
}

/// A 40-entry SQLite ledger signed by a fixed key; returns (db path, public key PEM
/// path, the final checkpoint's file).
fn ledger_fixture(dir: &std::path::Path) -> (String, String, String) {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let db = dir.join("lexecon.db");
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let pem = dir.join("node.ed25519.pub");
    std::fs::write(
        &pem,
        key.verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let note = rt.block_on(async {
        let pool = lexecon_ledger::open_sqlite(&db, true).await.unwrap();
        let store = lexecon_ledger::SqliteLedgerStore::new(pool);
        store.migrate().await.unwrap();
        let signer = lexecon_ledger::CheckpointSigner::new("lexecon/cli-test", key).unwrap();
        let config = lexecon_ledger::LedgerConfig {
            checkpoint_every_entries: 16,
            checkpoint_interval_ms: 60_000,
            max_batch: 64,
        };
        let ledger = lexecon_ledger::Ledger::open(
            std::sync::Arc::new(store),
            signer,
            config,
            std::sync::Arc::new(lexecon_core::SystemClock),
        )
        .await
        .unwrap();
        for i in 0..40 {
            ledger
                .append(
                    lexecon_ledger::EntryKind::Decision,
                    serde_json::json!({"i": i, "actor": "agent"}),
                )
                .await
                .unwrap();
        }
        ledger.shutdown().await.unwrap().unwrap().note
    });
    let trusted = dir.join("trusted.checkpoint");
    std::fs::write(&trusted, note).unwrap();
    (
        db.display().to_string(),
        pem.display().to_string(),
        trusted.display().to_string(),
    )
}

#[test]
fn ledger_verify_export_prove_and_proof_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (db, pem, trusted) = ledger_fixture(dir.path());
    let code = |out: &Output| out.status.code().unwrap();
    let stdout = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = lexecon(&[
        "verify-ledger",
        "--ledger-file",
        &db,
        "--public-key",
        &pem,
        "--trusted-checkpoint",
        &trusted,
        "--check-proof-index",
        "--json",
    ]);
    assert_eq!(
        code(&out),
        0,
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["entries"], 40);

    // A different public key does not vouch for these checkpoints.
    let other = dir.path().join("other.pub");
    {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let k = ed25519_dalek::SigningKey::from_bytes(&[10; 32]).verifying_key();
        std::fs::write(&other, k.to_public_key_pem(Default::default()).unwrap()).unwrap();
    }
    let out = lexecon(&[
        "verify-ledger",
        "--ledger-file",
        &db,
        "--public-key",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("TAMPERED"), "{}", stdout(&out));

    // prove, then verify-inclusion with its output; a changed root is invalid.
    let url = format!("sqlite://{db}");
    let out = lexecon(&[
        "ledger",
        "prove",
        "--index",
        "5",
        "--size",
        "33",
        "--database-url",
        &url,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let proof: Vec<&str> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let proof = proof.join(",");
    let leaf = p["leaf_hash"].as_str().unwrap().to_owned();
    let root = p["root"].as_str().unwrap().to_owned();
    let verify = |root: &str| {
        lexecon(&[
            "proof",
            "verify-inclusion",
            "--leaf-hash",
            &leaf,
            "--index",
            "5",
            "--size",
            "33",
            "--root",
            root,
            "--proof",
            &proof,
        ])
    };
    assert_eq!(code(&verify(&root)), 0);
    let mut bad = root.clone();
    bad.replace_range(0..1, if root.starts_with('0') { "1" } else { "0" });
    assert_eq!(code(&verify(&bad)), 1);
    assert_eq!(code(&verify("not-hex")), 2);

    // Consistency: the RFC 6962 reference tree's sizes 1 and 1 (equal), and a bad pair.
    let r1 = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
    let out = lexecon(&[
        "proof",
        "verify-consistency",
        "--size1",
        "1",
        "--size2",
        "1",
        "--root1",
        r1,
        "--root2",
        r1,
    ]);
    assert_eq!(code(&out), 0);
    let out = lexecon(&[
        "proof",
        "verify-consistency",
        "--size1",
        "0",
        "--size2",
        "1",
        "--root1",
        r1,
        "--root2",
        r1,
        "--json",
    ]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("\"valid\":false"));

    // Export, verify the bundle, then tamper with it.
    let bundle = dir.path().join("bundle");
    let out = lexecon(&[
        "ledger",
        "export",
        "--out",
        bundle.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let b = bundle.to_str().unwrap();
    assert_eq!(
        code(&lexecon(&[
            "verify-ledger",
            "--bundle",
            b,
            "--public-key",
            &pem
        ])),
        0
    );
    let entries = bundle.join("entries.jsonl");
    let text = std::fs::read_to_string(&entries).unwrap();
    // Truncate the tail and drop the checkpoints covering it: only the trusted
    // checkpoint notices.
    let kept: Vec<&str> = text.lines().take(30).collect();
    std::fs::write(&entries, kept.join("\n") + "\n").unwrap();
    std::fs::remove_file(bundle.join("checkpoint")).unwrap();
    for size in ["32", "40"] {
        let _ = std::fs::remove_file(bundle.join("checkpoints").join(size));
    }
    assert_eq!(code(&lexecon(&["verify-ledger", "--bundle", b])), 0);
    let out = lexecon(&[
        "verify-ledger",
        "--bundle",
        b,
        "--trusted-checkpoint",
        &trusted,
    ]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("first bad index 30"),
        "{}",
        stdout(&out)
    );
    // One changed payload byte.
    std::fs::write(&entries, text.replacen("\"agent\"", "\"agenT\"", 1)).unwrap();
    let out = lexecon(&["verify-ledger", "--bundle", b]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("first bad index 0"),
        "{}",
        stdout(&out)
    );

    // No database: a runtime error, exit 2.
    let out = lexecon(&[
        "verify-ledger",
        "--ledger-file",
        dir.path().join("nope.db").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
}

#[test]
fn risk_assess_json_human_config_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let base = [
        "risk",
        "assess",
        "--data-dir",
        data_dir,
        "--action",
        "delete:customer_records",
        "--tool",
        "database_query",
        "--data-class",
        "pii",
        "--risk-level",
        "3",
        "--context",
        "volume=10000",
    ];

    let mut args = base.to_vec();
    args.push("--json");
    let out = lexecon(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["risk_score"], 70);
    assert_eq!(json["level"], "high");
    for dim in [
        "security",
        "privacy",
        "compliance",
        "operational",
        "reputational",
        "financial",
    ] {
        assert!(json["dimensions"][dim]["score"].is_u64(), "{dim}: {json}");
        assert!(
            json["dimensions"][dim]["factors"].is_array(),
            "{dim}: {json}"
        );
    }
    assert_eq!(
        json["dimensions"]["security"]["factors"][0]["rule_id"],
        "verb.delete"
    );

    let out = lexecon(&base);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("risk score 70: high, below the escalation threshold 80\n"),
        "{text}"
    );

    // The [risk] table of DIR/lexecon.toml is used, and an invalid one is an error.
    std::fs::write(
        dir.path().join("lexecon.toml"),
        "[risk]\nescalation_threshold = 60\n",
    )
    .unwrap();
    let out = lexecon(&args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["escalate"], true, "{json}");
    std::fs::write(
        dir.path().join("lexecon.toml"),
        "[risk.weights]\nsecurity = -0.1\n",
    )
    .unwrap();
    let out = lexecon(&args);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("risk.weights.security must be between 0 and 1, got -0.1"),
        "{stderr}"
    );

    let out = lexecon(&["risk", "assess", "--action", "read:x", "--risk-level", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--risk-level"));
    let out = lexecon(&[
        "risk",
        "assess",
        "--data-dir",
        data_dir,
        "--action",
        "read x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("proposed_action"));
}

/// `decide`, `policy explain` and `risk assess` share their action flags: a `--context`
/// that one accepts, all accept; one that one refuses, all refuse with the same one-line
/// reason naming the flag (exit 2, before any server, policy or configuration is read).
#[test]
fn action_commands_accept_and_reject_the_same_context() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let policy = example("customer-support.toml");
    let run = |command: &str, context: &str| {
        let mut args: Vec<&str> = match command {
            // Nothing listens on port 1: an accepted request fails only at connecting.
            "decide" => vec!["decide", "--server", "http://127.0.0.1:1", "--token", "t"],
            "explain" => vec!["policy", "explain", policy.as_str()],
            _ => vec!["risk", "assess", "--data-dir", data_dir],
        };
        args.extend([
            "--actor",
            "ai_agent:customer_service",
            "--action",
            "read:customer_data",
            "--context",
            context,
        ]);
        lexecon(&args)
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    for context in ["region=eu-west", "resource=db/x=y", "note="] {
        let out = run("decide", context);
        assert_eq!(out.status.code(), Some(2), "{context}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("lexecon: error: no Lexecon server answers"),
            "{context}: {}",
            stderr(&out)
        );
        let out = run("explain", context);
        assert_eq!(out.status.code(), Some(1), "{context}: {}", stderr(&out));
        let out = run("risk", context);
        assert_eq!(out.status.code(), Some(0), "{context}: {}", stderr(&out));
    }

    for (context, reason) in [
        ("novalue", "it has no `=`"),
        ("=eu-west", "the key before `=` is empty"),
        ("re gion=eu", "context.re gion key contains ' '"),
        ("région=eu", "key contains 'é'"),
        (
            "region=eu\u{7}",
            "context.region contains the control character",
        ),
    ] {
        let first_lines = ["decide", "explain", "risk"].map(|command| {
            let out = run(command, context);
            assert_eq!(out.status.code(), Some(2), "{command} {context:?}");
            assert!(out.stdout.is_empty(), "{command} {context:?}");
            stderr(&out).lines().next().unwrap_or_default().to_owned()
        });
        let [decide, explain, risk] = &first_lines;
        assert_eq!(decide, explain, "{context:?}");
        assert_eq!(decide, risk, "{context:?}");
        assert!(
            decide.contains("for '--context <KEY=VALUE>': ") && decide.contains(reason),
            "{context:?}: {decide}"
        );
    }
}

#[test]
fn migrate_applies_the_migrations_to_the_configured_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let db = dir.path().join("lexecon.db");

    let out = lexecon(&["migrate", "--data-dir", data_dir]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "migrated sqlite://{}: every migration is applied\n",
            db.display()
        )
    );
    // The schema is there: an empty ledger verifies.
    let out = lexecon(&["verify-ledger", "--ledger-file", db.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Running it again is harmless.
    let out = lexecon(&["migrate", "--data-dir", data_dir, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["database"], format!("sqlite://{}", db.display()));
    assert_eq!(json["migrated"], true);

    // The configured database.url is the one used, and its password is never shown.
    let out = Command::new(env!("CARGO_BIN_EXE_lexecon"))
        .args(["migrate", "--data-dir", data_dir])
        .env(
            "LEXECON_DATABASE__URL",
            "postgres://lexecon:hunter2@127.0.0.1:notaport/lexecon",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("postgres://lexecon:***@127.0.0.1:notaport/lexecon"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // No data directory: say how to make one.
    let missing = dir.path().join("missing");
    let out = lexecon(&["migrate", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run `lexecon init --data-dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!missing.exists());

    let out = lexecon(&["migrate", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--data-dir <DIR>",
        "--config <FILE>",
        "LEXECON_DATABASE__URL",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
