//! `cargo xtask dist`: a release archive of the `lexecon` binary with SHA-256 sums.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

pub(crate) fn run() -> Result<()> {
    let root = crate::project_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "lexecon-cli",
            "--bin",
            "lexecon",
        ])
        .current_dir(&root)
        .status()
        .context("starting cargo build")?;
    if !status.success() {
        bail!("release build failed ({status})");
    }
    let binary = root.join("target/release/lexecon");
    let version = env!("CARGO_PKG_VERSION");
    let cli_version = cli_version(&root).unwrap_or_else(|| version.to_owned());
    let name = format!(
        "lexecon-{cli_version}-{}-{}",
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    let dist = root.join("dist");
    let stage = dist.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(&stage)?;
    fs::copy(&binary, stage.join("lexecon"))
        .with_context(|| format!("copying {}", binary.display()))?;
    for doc in ["README.md", "LICENSE"] {
        if root.join(doc).exists() {
            fs::copy(root.join(doc), stage.join(doc))?;
        }
    }
    let archive = format!("{name}.tar.gz");
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-czf",
            &archive,
            &name,
        ])
        .current_dir(&dist)
        .status()
        .context("starting tar")?;
    if !status.success() {
        bail!("tar failed ({status})");
    }
    fs::remove_dir_all(&stage)?;
    let bytes = fs::read(dist.join(&archive))?;
    let sum = hex::encode(Sha256::digest(&bytes));
    fs::write(dist.join("SHA256SUMS"), format!("{sum}  {archive}\n"))?;
    println!(
        "dist: {} ({} bytes)\ndist: {}",
        dist.join(&archive).display(),
        bytes.len(),
        dist.join("SHA256SUMS").display()
    );
    Ok(())
}

/// The version of the `lexecon-cli` package, read from its manifest.
fn cli_version(root: &std::path::Path) -> Option<String> {
    let manifest = fs::read_to_string(root.join("crates/lexecon-cli/Cargo.toml")).ok()?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_owned)
}
