//! `lexecon migrate`: apply the database migrations and exit, a deployment's one-shot
//! migrate step.

use anyhow::{Context as _, Result, bail};
use lexecon_engine::db::{Database, redact_url};
use lexecon_engine::migrate_all;
use serde_json::json;

use super::client::runtime;
use super::service::LocalArgs;
use crate::Verdict;

/// `lexecon migrate`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Exit codes: 0 migrated (or already up to date), 2 error (unreachable database, a failed
migration, bad configuration).

Examples:
  lexecon migrate --data-dir /var/lib/lexecon
  LEXECON_DATABASE__URL=postgres://lexecon:secret@db/lexecon lexecon migrate --json")]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// Print {"database", "migrated"} as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lexecon migrate`.
pub(crate) fn run_migrate(args: &MigrateArgs) -> Result<Verdict> {
    let config = args.local.load()?;
    if config.database.url.is_none() && !config.data_dir.is_dir() {
        bail!(
            "no data directory {dir}: run `lexecon init --data-dir {dir}`, or set database.url",
            dir = config.data_dir.display()
        );
    }
    let url = config.database_url();
    let shown = redact_url(&url);
    runtime()?.block_on(async {
        // An error opening the database names it already.
        let db = Database::connect(&url, 2).await?;
        let migrated = migrate_all(&db).await;
        db.close().await;
        migrated.with_context(|| format!("migrating {shown}"))
    })?;
    if args.json {
        println!("{}", json!({ "database": shown, "migrated": true }));
    } else {
        println!("migrated {shown}: every migration is applied");
    }
    Ok(Verdict::Yes)
}
