//! schemathesis (PyPI, pinned by `.ci/install-schemathesis`) against a live server and
//! its `/openapi.json` (engineering.md "HTTP/JSON testing"): a throw-away data
//! directory, the admin token, positive data, at most 20 examples per operation, and
//! the checks `not_a_server_error` and `response_schema_conformance`. A 5xx or an
//! answer the document does not describe fails the test with schemathesis's report.
//!
//! The streaming operations are bounded by their `wait_ms` query parameter (contract
//! §9): the run's configuration fixes it at [`STREAM_WAIT_MS`], so that every call ends
//! quickly whatever else schemathesis generates (its own choice could be the 30 s
//! default on every example).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lexecon_e2e::*;

/// The seed of CI's run, so that a red run is the code's doing, not the dice's, and can
/// be replayed. `LEXECON_SCHEMATHESIS_SEED=<n>` picks another; `=random` lets
/// schemathesis draw one (it prints it): run that way locally to explore, and when it
/// finds something, fix it and keep a test of it where the bug was.
const CI_SEED: &str = "20261205";

/// `wait_ms` of every streaming call.
const STREAM_WAIT_MS: u64 = 300;
/// The most the whole run may take before the test stops it.
const RUN_LIMIT: Duration = Duration::from_secs(360);

/// The schemathesis executable `.ci/install-schemathesis` installs (or
/// `LEXECON_TEST_SCHEMATHESIS`); `None` with the reason on stderr when the install
/// failed outside CI. Under CI a failed install fails the test.
fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LEXECON_TEST_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    crate::common::install("install-schemathesis")
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(exe) = schemathesis() else {
        return;
    };
    let dir = crate::init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"query.wait_ms\" = {STREAM_WAIT_MS}\n"),
    )
    .unwrap();
    let (out_path, err_path) = (work.path().join("out.txt"), work.path().join("err.txt"));
    let schema = format!("{}/openapi.json", server.url());
    let auth = format!("Authorization: Bearer {token}");
    let seed = std::env::var("LEXECON_SCHEMATHESIS_SEED").unwrap_or_else(|_| CI_SEED.to_owned());
    let mut args: Vec<&str> = vec![
        "run",
        &schema,
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "20",
        "--mode",
        "positive",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "-H",
        &auth,
    ];
    if seed != "random" {
        args.extend(["--seed", &seed]);
    }
    let started = Instant::now();
    let mut child = Command::new(&exe)
        .arg("--config-file")
        .arg(&config)
        .args(&args)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let report = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = last_lines(&server.log(), 40);
        format!(
            "schemathesis {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log (last 40 lines) ---\n{tail}",
            args.join(" ").replace(&token, "<admin token>"),
            read(&out_path).replace(&token, "<admin token>"),
            read(&err_path).replace(&token, "<admin token>"),
        )
    };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {RUN_LIMIT:?}; stopped.\n{}",
                report()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed();
    assert!(
        status.success(),
        "schemathesis found problems ({status}) after {took:?}:\n{}",
        report()
    );
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    eprintln!(
        "schemathesis passed in {:.1}s:\n{}",
        took.as_secs_f64(),
        last_lines(&stdout, 12)
    );
    // "API Operations: ... Tested: N" in its summary.
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        tested > 0,
        "schemathesis tested no operation:\n{}",
        report()
    );
}

/// The last `n` lines of `text`, in order.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
