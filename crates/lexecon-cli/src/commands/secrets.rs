//! `lexecon secrets rotate`: re-encrypt every secret at rest under the current (or a new)
//! master key.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use lexecon_core::SystemClock;
use lexecon_engine::config::is_initialised;
use lexecon_engine::secrets::read_key_file;
use lexecon_engine::{Caller, Engine};
use serde_json::json;

use super::client::runtime;
use super::service::LocalArgs;
use crate::Verdict;

/// `lexecon secrets ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SecretsCommand {
    /// Re-encrypt every secret at rest (TOTP seeds) under the current master key, or
    /// under --new-key-file, in one transaction; recorded in the ledger.
    #[command(after_long_help = "\
Secrets at rest (TOTP seeds) are encrypted with the master key: LEXECON_MASTER_KEY
(base64 of 32 bytes) or secrets.master_key_file (default DIR/master.key, mode 0600).
Keys in secrets.previous_master_key_files only decrypt. This command opens every secret
with any configured key and encrypts it again under the current key (or under
--new-key-file, with every configured key accepted for decryption), all in one
transaction: if one secret does not open, nothing changes. It is recorded in the ledger
as an auth event `secrets_rotated` by local:<os user>, with the key ids (never a key).

Rotation, step by step (docs/security.md, \"Secrets at rest\"):
  1. (umask 077; head -c 32 /dev/urandom > /etc/lexecon/master-2.key)
  2. In lexecon.toml: master_key_file = \"/etc/lexecon/master-2.key\" and
     previous_master_key_files = [\"<the old key file>\"]; restart every server.
  3. lexecon secrets rotate --data-dir DIR      (re-encrypts under master-2.key)
  4. Drop the old file from previous_master_key_files, restart; keep the old key
     offline for as long as you keep backups taken before step 3.
With the servers stopped, --new-key-file FILE does steps 2-3 in one go for this run; then
point secrets.master_key_file at FILE before starting them again.

Exit codes: 0 rotated, 2 error (a key missing or readable by others, a secret that does
not open, an unreachable database).

Examples:
  lexecon secrets rotate --data-dir /var/lib/lexecon
  lexecon secrets rotate --data-dir /var/lib/lexecon --new-key-file /etc/lexecon/master-2.key --json
  LEXECON_DATABASE__URL=postgres://lexecon@db/lexecon lexecon secrets rotate --json")]
    Rotate(RotateSecretsArgs),
}

/// Arguments of `lexecon secrets rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RotateSecretsArgs {
    #[command(flatten)]
    local: LocalArgs,
    /// A database URL (`sqlite://PATH` or `postgres://...`) instead of the configured one.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Encrypt under the 32-byte key in FILE (mode 0600) instead of the configured key.
    #[arg(long, value_name = "FILE")]
    new_key_file: Option<PathBuf>,
    /// Print {"key_id", "previous_key_ids", "reencrypted", ...} as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `lexecon secrets ...`.
pub(crate) fn run(cmd: &SecretsCommand) -> Result<Verdict> {
    match cmd {
        SecretsCommand::Rotate(args) => rotate(args),
    }
}

fn rotate(args: &RotateSecretsArgs) -> Result<Verdict> {
    if args.local.config.is_none() && !is_initialised(&args.local.data_dir) {
        bail!(
            "{dir} is not initialised; run `lexecon init --data-dir {dir}` first, or pass --config",
            dir = args.local.data_dir.display()
        );
    }
    let mut config = args.local.load()?;
    if let Some(url) = &args.database_url {
        config.database.url = Some(url.clone());
    }
    let new_key = args
        .new_key_file
        .as_deref()
        .map(|path| read_key_file(path, "--new-key-file"))
        .transpose()?;
    let rotation = runtime()?.block_on(async {
        let engine = Engine::open_local(config, Arc::new(SystemClock)).await?;
        let result = engine.rotate_secrets(&Caller::local(), new_key).await;
        engine.shutdown().await?;
        anyhow::Ok(result?)
    })?;
    if args.json {
        println!("{}", json!(rotation));
    } else {
        println!(
            "re-encrypted {} secret(s) under master key {} ({}); {} were under another key; \
             ledger entry {}",
            rotation.reencrypted,
            rotation.key_id,
            rotation.key_source,
            rotation.moved_from_other_keys,
            rotation.ledger_index
        );
        if args.new_key_file.is_some() {
            println!(
                "next: set secrets.master_key_file to {} before starting a server",
                rotation.key_source
            );
        } else if !rotation.previous_key_ids.is_empty() {
            println!(
                "next: remove {} from secrets.previous_master_key_files and restart; keep the \
                 old key offline while backups encrypted with it exist",
                rotation.previous_key_ids.join(", ")
            );
        }
    }
    Ok(Verdict::Yes)
}
