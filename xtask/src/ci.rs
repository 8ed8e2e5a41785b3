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
    eprintln!(
        "==> ci: all steps passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
