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
