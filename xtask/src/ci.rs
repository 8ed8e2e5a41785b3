//! `cargo xtask ci`: the README's test command, and exactly what CI runs.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Each step: a label and the cargo arguments.
const STEPS: &[(&str, &[&str])] = &[
    ("rustfmt", &["fmt", "--all", "--check"]),
    (
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    ),
    ("codegen --check", &["xtask", "codegen", "--check"]),
    ("tests", &["test", "--workspace", "--locked"]),
    (
        "benches compile and run once",
        &["test", "--workspace", "--benches", "--locked"],
    ),
];

pub(crate) fn run() -> Result<()> {
    let root = crate::project_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let started = Instant::now();
    for (label, args) in STEPS {
        let step = Instant::now();
        eprintln!("==> {label}: cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(*args)
            .current_dir(&root)
            .status()
            .with_context(|| format!("starting `cargo {}`", args.join(" ")))?;
        if !status.success() {
            bail!(
                "step `{label}` failed ({status}); rerun `cargo {}` to see why",
                args.join(" ")
            );
        }
        eprintln!("==> {label}: ok in {:.1}s", step.elapsed().as_secs_f64());
    }
    let step = Instant::now();
    deny(&root, &cargo)?;
    eprintln!("==> cargo deny: ok in {:.1}s", step.elapsed().as_secs_f64());
    let step = Instant::now();
    fuzz(&root, &cargo)?;
    eprintln!("==> fuzz: ok in {:.1}s", step.elapsed().as_secs_f64());
    eprintln!(
        "==> ci: all steps passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `.ci/<script>`, which installs a cargo subcommand into the tool cache and prints
/// the directory holding it, and returns PATH with that directory first.
fn tool_path(root: &std::path::Path, step: &str, script: &str) -> Result<std::ffi::OsString> {
    let installed = Command::new("bash")
        .arg(root.join(".ci").join(script))
        .current_dir(root)
        .output()
        .with_context(|| format!("running .ci/{script}"))?;
    if !installed.status.success() {
        bail!(
            "step `{step}`: .ci/{script} failed: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
    }
    let bin_dir = String::from_utf8_lossy(&installed.stdout).trim().to_owned();
    Ok(match std::env::var_os("PATH") {
        Some(old) => {
            let mut dirs = vec![std::path::PathBuf::from(&bin_dir)];
            dirs.extend(std::env::split_paths(&old));
            std::env::join_paths(dirs).context("joining PATH")?
        }
        None => bin_dir.into(),
    })
}

/// The dependency policy of `deny.toml`: licences, banned crates and sources. The
/// advisories check needs the RustSec database from the network, which CI does not
/// reach; run `cargo deny check advisories` where it is (docs/development.md).
fn deny(root: &std::path::Path, cargo: &str) -> Result<()> {
    let path = tool_path(root, "cargo deny", "install-cargo-deny")?;
    let args = [
        "deny",
        "--locked",
        "check",
        "--hide-inclusion-graph",
        "licenses",
        "bans",
        "sources",
    ];
    eprintln!("==> cargo deny: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .env("PATH", &path)
        .status()
        .context("starting cargo deny")?;
    if !status.success() {
        bail!(
            "step `cargo deny` failed ({status}); rerun `cargo {}` with PATH=\"$(bash .ci/install-cargo-deny):$PATH\" to see why",
            args.join(" ")
        );
    }
    Ok(())
}

/// How long each fuzz target runs in CI (engineering.md: 60 s, two at a time).
const FUZZ_SECS: u32 = 60;

/// The fuzz step: lint `fuzz/` (outside the workspace, so clippy --workspace misses it),
/// build its targets with `RUSTC_BOOTSTRAP=1` on the pinned toolchain, replay each
/// target's regression inputs, then run the targets for [`FUZZ_SECS`] each, two at a
/// time (one per core). A crash fails the step; its input is in `fuzz/artifacts/`.
fn fuzz(root: &std::path::Path, cargo: &str) -> Result<()> {
    let dir = root.join("fuzz");
    if !dir.join("Cargo.toml").exists() {
        eprintln!("==> fuzz: no fuzz/ crate; skipped");
        return Ok(());
    }
    let path = tool_path(root, "fuzz", "install-cargo-fuzz")?;
    let fuzz_cmd = |args: &[&str]| {
        let mut cmd = Command::new(cargo);
        cmd.args(args)
            .current_dir(&dir)
            .env("PATH", &path)
            .env("RUSTC_BOOTSTRAP", "1");
        cmd
    };
    let run = |label: &str, args: &[&str]| -> Result<()> {
        eprintln!("==> fuzz: {label}: cargo {}", args.join(" "));
        let status = fuzz_cmd(args)
            .status()
            .with_context(|| format!("starting cargo {}", args.join(" ")))?;
        if !status.success() {
            bail!(
                "step `fuzz` ({label}) failed ({status}); rerun it in fuzz/ with RUSTC_BOOTSTRAP=1"
            );
        }
        Ok(())
    };
    run(
        "clippy",
        &[
            "clippy",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("build", &["fuzz", "build", "-O"])?;
    let listed = fuzz_cmd(&["fuzz", "list"])
        .output()
        .context("running cargo fuzz list")?;
    let targets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("step `fuzz`: `cargo fuzz list` named no targets");
    }
    for target in &targets {
        let regressions = dir.join("regressions").join(target);
        if regressions.is_dir() {
            let path = regressions.to_string_lossy().into_owned();
            run(
                &format!("replay {target}"),
                &["fuzz", "run", "-O", target, &path, "--", "-runs=0"],
            )?;
        }
    }
    let max_time = format!("-max_total_time={FUZZ_SECS}");
    for pair in targets.chunks(2) {
        let mut children = Vec::new();
        for target in pair {
            eprintln!("==> fuzz: {target} for {FUZZ_SECS} s");
            let child = fuzz_cmd(&[
                "fuzz",
                "run",
                "-O",
                target,
                "--",
                &max_time,
                "-print_final_stats=1",
            ])
            .spawn()
            .with_context(|| format!("starting cargo fuzz run {target}"))?;
            children.push((target, child));
        }
        for (target, mut child) in children {
            let status = child
                .wait()
                .with_context(|| format!("waiting for {target}"))?;
            if !status.success() {
                bail!(
                    "step `fuzz`: target {target} failed ({status}); its crashing input is in fuzz/artifacts/{target}/: fix the bug and keep the input in fuzz/regressions/{target}/"
                );
            }
        }
    }
    Ok(())
}
