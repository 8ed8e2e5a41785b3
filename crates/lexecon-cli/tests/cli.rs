//! The real `lexecon` binary as a process: exit codes and output. One shared test binary;
//! each area prefixes its test names (`policy_`, ...).

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
