//! `lexecon audit export|verify`: verifiable audit bundles (contract §7,
//! `docs/audit-export.md`).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use lexecon_core::{SystemClock, Timestamp};
use lexecon_engine::config::{Config, Sources};
use lexecon_engine::{Caller, Engine, ExportQuery};
use lexecon_ledger::{AuditFormat, AuditVerifyOptions, Manifest, NoteVerifier};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::audit_service_client::AuditServiceClient;
use serde_json::json;

use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// `lexecon audit ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Export the matching decisions as a verifiable bundle: each decision with its leaf
    /// and an inclusion proof against one signed checkpoint, the checkpoint, the
    /// verifier key, and a manifest.json signed by the node key.
    #[command(after_long_help = "\
With --server the server streams the bundle and it is assembled here (the server writes
nothing to its disk; needs the auditor role or higher); without it the bundle is built in
process from --data-dir, as local:<user>. Every export is itself a ledger entry
(`ListAuditExports`). DIR must not exist or be empty. Times are RFC 3339. Exit 0
exported, 2 on any error.

Examples:
  lexecon audit export --out ./audit-2026-q4 --since 2026-10-01T00:00:00Z --until 2027-01-01T00:00:00Z
  lexecon audit export --out ./support --actor 'ai_agent:support*' --format csv --server http://10.0.0.5:50051")]
    Export(ExportArgs),
    /// Verify a bundle offline and name the first thing that is wrong.
    #[command(after_long_help = "\
Checks the manifest's signature, the checkpoint's signature and that it is the one the
manifest names, every decision (leaf, leaf hash, payload hash, each column against the
payload, inclusion proof against the checkpoint, index order), the decision count and
every file's SHA-256. Without --public-key or --data-dir the key in the bundle's
verifier.vkey is used: the bundle is shown intact, not who made it (the output says so).
Exit 0 valid, 1 not valid (the first problem is printed), 2 on any error.

Examples:
  lexecon audit verify ./audit-2026-q4 --public-key node.ed25519.pub
  lexecon audit verify ./audit-2026-q4 --data-dir /var/lib/lexecon --trusted-checkpoint cp.txt --json")]
    Verify(VerifyArgs),
}

/// `lexecon audit export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The directory to write the bundle to.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only decisions made at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Only decisions made before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Only actors matching this full-match glob.
    #[arg(long, value_name = "GLOB", default_value = "")]
    actor: String,
    /// The decisions file's format.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: FormatArg,
    /// Print the manifest's summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: ServerArgs,
}

/// `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// decisions.ndjson.
    Ndjson,
    /// decisions.csv.
    Csv,
}

/// `lexecon audit verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The bundle directory.
    dir: PathBuf,
    /// The node's Ed25519 public key (PEM) to trust.
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    public_key: Option<PathBuf>,
    /// Trust the node key of this data directory (its public key file).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A checkpoint you obtained yourself: the bundle's must be the same tree.
    #[arg(long, value_name = "FILE")]
    trusted_checkpoint: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|e| e.to_string())
}

/// Runs `lexecon audit ...`.
pub(crate) fn run(cmd: &AuditCommand) -> Result<Verdict> {
    match cmd {
        AuditCommand::Export(args) => run_export(args),
        AuditCommand::Verify(args) => run_verify(args),
    }
}

fn progress(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} exporting: {bytes} written ({bytes_per_sec}), {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Some(bar)
}

/// Writes the chunks of a bundle into `dir`, one file after another.
struct Assembler {
    dir: PathBuf,
    current: Option<(String, std::fs::File)>,
    bar: Option<indicatif::ProgressBar>,
}

impl Assembler {
    fn new(dir: &Path, json: bool) -> Result<Assembler> {
        if dir.exists() {
            let mut items =
                std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
            if items.next().is_some() {
                bail!(
                    "{} is not empty: choose a new directory for the bundle",
                    dir.display()
                );
            }
        } else {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Assembler {
            dir: dir.to_owned(),
            current: None,
            bar: progress(json),
        })
    }

    fn write(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let plain = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !path.contains("..");
        if !plain {
            bail!("the server sent the path {path:?}, which is not a plain file name");
        }
        if self.current.as_ref().is_none_or(|(p, _)| p != path) {
            let full = self.dir.join(path);
            if full.exists() {
                bail!("the server sent {path} twice");
            }
            let file = std::fs::File::create(&full)
                .with_context(|| format!("cannot create {}", full.display()))?;
            self.current = Some((path.to_owned(), file));
            if let Some(bar) = &self.bar {
                bar.set_message(path.to_owned());
            }
        }
        if let Some((_, file)) = &mut self.current {
            file.write_all(data)
                .with_context(|| format!("cannot write {}", self.dir.join(path).display()))?;
        }
        if let Some(bar) = &self.bar {
            bar.inc(data.len() as u64);
        }
        Ok(())
    }

    fn finish(self) -> Result<Manifest> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some((_, file)) = self.current {
            file.sync_all().context("syncing the bundle")?;
        }
        let path = self.dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|_| {
            anyhow!(
                "the export ended before its manifest.json arrived; {} is incomplete",
                self.dir.display()
            )
        })?;
        if !self.dir.join("manifest.sig").is_file() {
            bail!(
                "the export ended before its manifest.sig arrived; {} is incomplete",
                self.dir.display()
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

fn run_export(args: &ExportArgs) -> Result<Verdict> {
    let format = match args.format {
        FormatArg::Ndjson => AuditFormat::Ndjson,
        FormatArg::Csv => AuditFormat::Csv,
    };
    let mut out = Assembler::new(&args.out, args.json)?;
    runtime()?.block_on(async {
        if args.target.server.is_some() {
            let (channel, bearer) = args.target.connect().await?;
            let mut client = AuditServiceClient::new(channel);
            let request = pb::ExportAuditRequest {
                since: args.since.map(lexecon_server::convert::timestamp_to_pb),
                until: args.until.map(lexecon_server::convert::timestamp_to_pb),
                actor: args.actor.clone(),
                format: match format {
                    AuditFormat::Ndjson => pb::AuditFormat::Ndjson,
                    AuditFormat::Csv => pb::AuditFormat::Csv,
                } as i32,
            };
            let mut stream = client
                .export_audit(authed(request, &bearer)?)
                .await
                .map_err(status_error)?
                .into_inner();
            while let Some(chunk) = stream.message().await.map_err(status_error)? {
                out.write(&chunk.path, &chunk.data)?;
            }
            anyhow::Ok(())
        } else {
            let data_dir = &args.target.data_dir;
            if !data_dir.join("lexecon.toml").is_file() && args.target.config.is_none() {
                bail!(
                    "no data directory {}: pass --data-dir DIR, or --server URL to export through a server",
                    data_dir.display()
                );
            }
            let config = Config::load(&Sources {
                data_dir: Some(data_dir.clone()),
                config_file: args.target.config.clone(),
            })?;
            let engine = Engine::open_local(config, Arc::new(SystemClock)).await?;
            let result = async {
                let query = ExportQuery {
                    since: args.since,
                    until: args.until,
                    actor: args.actor.clone(),
                    format,
                };
                let mut stream = engine.export_audit(&Caller::local(), query).await?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    out.write(&chunk.path, &chunk.data)?;
                }
                anyhow::Ok(())
            }
            .await;
            engine.shutdown().await?;
            result
        }
    })?;
    let manifest = out.finish()?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dir": args.out,
                "export_id": manifest.export_id,
                "exported_by": manifest.exported_by,
                "tree_size": manifest.tree_size,
                "decisions": manifest.decisions,
                "files": manifest.files,
            }))?
        );
    } else {
        println!(
            "exported {} decisions to {} (export {}, checkpoint of tree size {})",
            manifest.decisions,
            args.out.display(),
            manifest.export_id,
            manifest.tree_size
        );
        println!(
            "check it with: lexecon audit verify {} --public-key NODE_PUBLIC_KEY.pem",
            args.out.display()
        );
    }
    Ok(Verdict::Yes)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn run_verify(args: &VerifyArgs) -> Result<Verdict> {
    if !args.dir.is_dir() {
        bail!("{} is not a bundle directory", args.dir.display());
    }
    // The key's name is the log's origin, which the manifest names (the signature
    // binds name and key, so a wrong name only fails the check).
    let origin = || -> Result<String> {
        let manifest: serde_json::Value =
            serde_json::from_str(&read(&args.dir.join("manifest.json"))?)
                .context("manifest.json is not JSON")?;
        manifest
            .get("origin")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("manifest.json names no origin"))
    };
    let pem = match (&args.public_key, &args.data_dir) {
        (Some(file), _) => Some((read(file)?, file.display().to_string())),
        (None, Some(dir)) => {
            let config = Config::load(&Sources {
                data_dir: Some(dir.clone()),
                config_file: None,
            })?;
            let file = config.layout().node_pub();
            Some((read(&file)?, file.display().to_string()))
        }
        (None, None) => None,
    };
    let trusted_key = match &pem {
        Some((pem, file)) => Some(
            NoteVerifier::from_public_key_pem(&origin()?, pem)
                .with_context(|| format!("{file} is not a PEM Ed25519 public key"))?,
        ),
        None => None,
    };
    let options = AuditVerifyOptions {
        trusted_key,
        trusted_checkpoint: args.trusted_checkpoint.as_deref().map(read).transpose()?,
    };
    let report = lexecon_ledger::verify_audit_bundle(&args.dir, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report.problem {
            None => println!(
                "valid: {} decisions, each proved against the checkpoint of tree size {} (export {})",
                report.decisions, report.tree_size, report.export_id
            ),
            Some(p) => println!("NOT VALID: {p}"),
        }
        match report.key_source.as_str() {
            "trusted" => println!("key: {} (given)", report.key),
            _ => println!(
                "key: {} (taken from the bundle's verifier.vkey: this shows the bundle is intact, \
                 not who made it; pass --public-key or --data-dir to check that)",
                report.key
            ),
        }
    }
    Ok(if report.valid {
        Verdict::Yes
    } else {
        Verdict::No
    })
}
