//! `cargo xtask`: code generation, the CI pipeline and release archives.
//!
//! Run `cargo xtask --help` for the subcommands.

use std::process::ExitCode;

use anyhow::{Result, bail};

mod ci;
mod codegen;
mod dist;

const HELP: &str = "\
cargo xtask: project automation

USAGE:
    cargo xtask <COMMAND>

COMMANDS:
    codegen [--check]   generate crates/lexecon-proto/src/gen/ from proto/ (protox +
                        tonic-prost-build, no protoc) and docs/openapi.json (from
                        the same descriptors, by lexecon-json); with --check, fail
                        if anything checked in differs from what would be generated
    ci                  everything CI checks: rustfmt, clippy -D warnings, codegen
                        --check, the whole test suite, benches compiled
    dist                release build of `lexecon` into dist/ as a .tar.gz with a
                        SHA256SUMS file
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen::run(false),
        ["codegen", "--check"] => codegen::run(true),
        ["ci"] => ci::run(),
        ["dist"] => dist::run(),
        [] | ["help" | "--help" | "-h"] => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown arguments {other:?}; run `cargo xtask --help`"),
    }
}

/// The workspace root (the parent of this crate's folder).
fn project_root() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().unwrap_or(dir).to_path_buf()
}

#[cfg(test)]
mod architecture_tests;
