//! Helpers for the end-to-end tests: find (and if needed build) the real `lexecon`
//! binary, run it, and read what it printed.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The path of the `lexecon` binary of this workspace, built if it is missing or stale.
///
/// `cargo test --workspace` builds it before any test runs; running this crate alone
/// (`cargo test -p lexecon-e2e`) does not, so we ask cargo once per test binary. Cargo
/// does nothing when the binary is already up to date.
pub fn lexecon_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--package",
                "lexecon-cli",
                "--bin",
                "lexecon",
            ])
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "building lexecon failed: {status:?}"
        );
        let exe = std::env::current_exe().unwrap_or_default();
        // target/<profile>/deps/<test binary> -> target/<profile>/lexecon
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(PathBuf::from)
            .unwrap_or_default();
        let bin = profile_dir.join("lexecon");
        assert!(bin.exists(), "no lexecon binary at {}", bin.display());
        bin
    })
    .clone()
}

/// What a finished `lexecon` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `lexecon` with `args` in `dir` and waits for it.
pub fn lexecon(dir: &std::path::Path, args: &[&str]) -> Run {
    let out = Command::new(lexecon_bin())
        .args(args)
        .current_dir(dir)
        .output();
    match out {
        Ok(out) => out.into(),
        Err(err) => Run {
            code: -1,
            stdout: String::new(),
            stderr: format!("could not start lexecon: {err}"),
        },
    }
}
