//! `lexecon migrate`: apply the database migrations and exit, a deployment's one-shot
//! migrate step. Where the data directory holds the node key, it also builds the
//! decision index of decisions recorded before the index existed (resumable; a server
//! would otherwise do it in the background while `QueryDecisions` answers UNAVAILABLE).

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use lexecon_core::SystemClock;
use lexecon_engine::db::{Database, redact_url};
use lexecon_engine::{Engine, migrate_all};
use serde_json::json;

use super::client::runtime;
use super::service::LocalArgs;
use crate::Verdict;

/// `lexecon migrate`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Exit codes: 0 migrated (or already up to date), 2 error (unreachable database, a failed
migration, bad configuration). With the node key in DIR/keys, the decision index of
decisions recorded before it existed is built too (it resumes where an interrupted run
stopped); without it, a server builds it in the background.

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
    let has_key = config.layout().node_key().is_file();
    let quiet = args.json || !std::io::stderr().is_terminal();
    let backfilled = runtime()?.block_on(async {
        // An error opening the database names it already.
        let db = Database::connect(&url, 2).await?;
        let migrated = migrate_all(&db).await;
        db.close().await;
        migrated.with_context(|| format!("migrating {shown}"))?;
        if !has_key {
            return anyhow::Ok(None);
        }
        let engine = Engine::open_local(config, Arc::new(SystemClock)).await?;
        let done = engine
            .backfill_decision_index(|p| {
                if !quiet && !p.done() {
                    eprintln!("building the decision index: {}%", p.percent());
                }
            })
            .await;
        engine.shutdown().await?;
        anyhow::Ok(Some(done.context("building the decision index")?))
    })?;
    if args.json {
        println!(
            "{}",
            json!({
                "database": shown,
                "migrated": true,
                "decision_index_backfilled": backfilled.map(|p| p.indexed),
            })
        );
    } else {
        println!("migrated {shown}: every migration is applied");
        if let Some(p) = backfilled
            && p.indexed > 0
        {
            println!("decision index: {} earlier decisions indexed", p.indexed);
        }
    }
    Ok(Verdict::Yes)
}
