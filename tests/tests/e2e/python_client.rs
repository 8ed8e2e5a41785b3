//! The Python client (`clients/python`, contract §9) against a real `lexecon server`:
//! the package is installed with pip into a FRESH virtual environment from its
//! `pyproject.toml` (offline, from the pinned wheelhouse `.ci/install-python-client`
//! keeps in the tool cache), and its whole pytest suite runs against the server, the
//! integration tests included: decisions, offline verification of a real token (a
//! tampered one fails), an escalation round trip with a compliance officer, the LLM guard
//! settling exact usage and releasing on an exception, the async client. The README's
//! five-line example runs too.
//!
//! Under CI (`CI` set) a failed tool install fails the test; elsewhere it says why it
//! skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lexecon_e2e::*;
use serde_json::Value;

/// The data directory: the default one, which the README's example reads.
const DATA: &str = ".lexecon";

/// The repository root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The cached virtual environment `.ci/install-python-client` prints (it installs once,
/// then only checks), or `None` with a note outside CI when it cannot be had.
fn cached_venv() -> Option<PathBuf> {
    let script = repo_root().join(".ci/install-python-client");
    let result = Command::new(&script)
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))
        .and_then(|out| {
            if out.status.success() {
                Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
            } else {
                Err(format!(
                    "{} failed ({}): {}",
                    script.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        });
    match result {
        Ok(venv) => Some(venv),
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the Python client's test tools are missing, and CI must run this test: {why}"
            );
            eprintln!("note: skipping the Python client test: {why}");
            None
        }
    }
}

/// Runs `cmd`, and fails the test with everything it printed unless it succeeded.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command that sees no pip configuration from the machine, so that only the
/// wheelhouse given on the command line is used.
fn isolated(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("PYTHONPATH")
        .env_remove("LEXECON_TOKEN");
    cmd
}

/// `lexecon apikey create --data-dir .lexecon --name NAME --role ROLE [--actor A]... --json`;
/// the key.
fn api_key(dir: &Path, name: &str, role: &str, actors: &[&str]) -> String {
    let mut args = vec![
        "apikey",
        "create",
        "--data-dir",
        DATA,
        "--name",
        name,
        "--role",
        role,
        "--json",
    ];
    for actor in actors {
        args.extend(["--actor", actor]);
    }
    let run = lexecon(dir, &args);
    assert_eq!(run.code, 0, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    json["api_key"].as_str().unwrap().to_owned()
}

/// The last line pytest printed (`N passed in Xs`, or with skipped/failed counts).
fn summary(stdout: &str) -> String {
    stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim_matches(|c: char| c == '=' || c.is_whitespace())
        .to_owned()
}

#[test]
fn the_python_client_installs_fresh_and_its_suite_passes_against_a_real_server() {
    let Some(cache) = cached_venv() else {
        return;
    };
    let wheelhouse = cache.join("wheelhouse");
    // The default data directory, as the README's example reads it.
    let dir = tempfile::tempdir().unwrap();
    let init = lexecon(dir.path(), &["init", "--data-dir", DATA]);
    assert_eq!(init.code, 0, "{init:?}");
    let data = dir.path().join(DATA);

    // pip install ./clients/python into a fresh environment, with no index: only the
    // package's own pyproject.toml and the pinned wheels.
    let venv = dir.path().join("venv");
    run_ok(
        isolated(&cache.join("bin/python"))
            .args(["-m", "venv"])
            .arg(&venv),
        "python -m venv",
    );
    let python = venv.join("bin/python");
    run_ok(
        isolated(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
            ])
            .arg(&wheelhouse)
            .arg(repo_root().join("clients/python"))
            .args(["pytest", "anyio"]),
        "pip install ./clients/python",
    );

    let server = Server::start(dir.path(), DATA, &[]);
    let admin = admin_token(&data);
    let agent = api_key(
        dir.path(),
        "py-agent",
        "agent",
        &["ai_agent:customer_service", "ai_agent:assistant"],
    );
    let officer = api_key(dir.path(), "py-officer", "compliance_officer", &[]);
    let public_key = data.join("keys/node.ed25519.pub");
    let url = server.url();

    let tests = repo_root().join("clients/python/tests");
    let out = isolated(&python)
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(&tests)
        .current_dir(dir.path())
        .env("LEXECON_URL", &url)
        .env("LEXECON_TOKEN", &admin)
        .env("LEXECON_AGENT_TOKEN", &agent)
        .env("LEXECON_OFFICER_TOKEN", &officer)
        .env("LEXECON_PUBLIC_KEY_FILE", &public_key)
        .env("LEXECON_REQUIRE_INTEGRATION", "1")
        .env("LEXECON_EXPECT_INSTALLED_IN", &venv)
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        server.log()
    );
    let line = summary(&stdout);
    assert!(
        line.contains(" passed") && !line.contains("skipped") && !line.contains("deselected"),
        "every test must run against the server, none skipped: {line:?}\n{stdout}"
    );
    let passed: usize = line
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 60, "too few Python tests ran: {line:?}");

    // The README's five-line example, as written, against this server.
    let readme = std::fs::read_to_string(repo_root().join("clients/python/README.md")).unwrap();
    let example = readme
        .split("## Five lines")
        .nth(1)
        .and_then(|rest| rest.split("```python\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("clients/python/README.md has a python block under '## Five lines'");
    assert_eq!(
        example.lines().count(),
        5,
        "the example has five lines:\n{example}"
    );
    let script = example.replace("http://127.0.0.1:50051", &url);
    let out = run_ok(
        isolated(&python)
            .args([
                "-c",
                &format!("{script}\nprint(claims.decision_id == d.decision_id)"),
            ])
            .current_dir(dir.path()),
        "the README's five-line example",
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with("approved ") && printed.trim_end().ends_with("True"),
        "{printed}"
    );
}
