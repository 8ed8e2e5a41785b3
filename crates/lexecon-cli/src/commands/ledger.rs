//! `lexecon verify-ledger`, `lexecon ledger export|prove|redact`, `lexecon proof verify-*`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use lexecon_capability::PublicKeyRing;
use lexecon_core::SystemClock;
use lexecon_engine::config::{Config, DEFAULT_DATA_DIR, Sources};
use lexecon_engine::db::Database;
use lexecon_engine::layout::NODE_KEY_NAME;
use lexecon_engine::{Caller, Engine, ErrorClass};
use lexecon_ledger::{
    LedgerStore, NoteVerifier, PgLedgerStore, SqliteLedgerStore, VerifyOptions, VerifyReport,
};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::ledger_service_client::LedgerServiceClient;

use super::client::{ServerArgs, authed, runtime as client_runtime, status_error};
use crate::Verdict;

/// Where the ledger lives, for commands that read it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SourceArgs {
    /// The data directory (its configuration names the database; default
    /// `DIR/lexecon.db`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub(crate) data_dir: PathBuf,
    /// A configuration file instead of DIR/lexecon.toml.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A database URL (`sqlite://PATH` or `postgres://...`) instead of the configured one.
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,
}

/// `lexecon verify-ledger` (its help text is on the `Command::VerifyLedger` variant).
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyLedgerArgs {
    /// A SQLite ledger file.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["database_url", "bundle"])]
    ledger_file: Option<PathBuf>,
    /// A database URL (`sqlite://PATH` or `postgres://...`).
    #[arg(long, value_name = "URL", conflicts_with = "bundle")]
    database_url: Option<String>,
    /// An export bundle directory (`lexecon ledger export`).
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// A signed checkpoint the log must still contain (catches truncation and rewrites).
    #[arg(long, value_name = "FILE")]
    trusted_checkpoint: Option<PathBuf>,
    /// The node's Ed25519 public key (PEM); repeat for keys from before a rotation.
    #[arg(long, value_name = "FILE")]
    public_key: Vec<PathBuf>,
    /// The node's RSA-4096 co-signing public key (PEM, `init --rsa` writes
    /// keys/node.rsa4096.pub.pem): every checkpoint must carry its RSA-PSS co-signature.
    /// Not for bundles.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    rsa_public_key: Vec<PathBuf>,
    /// Also check the stored proof index (the subtree hashes proofs are built from);
    /// not for bundles.
    #[arg(long, conflicts_with = "bundle")]
    check_proof_index: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The data directory (default source: its configured database).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// A configuration file instead of DIR/lexecon.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `lexecon ledger ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LedgerCommand {
    /// Write an export bundle: entries.jsonl, checkpoint, checkpoints/, verifier.vkey.
    ///
    /// Entries N..M are written (--to is exclusive; default: up to the latest signed
    /// checkpoint). The format is specified in docs/ledger-format.md.
    ///
    /// Example: `lexecon ledger export --out ./audit-2026-11`
    Export {
        /// The directory to write.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The first entry index.
        #[arg(long, value_name = "N", default_value_t = 0)]
        from: u64,
        /// One past the last entry index.
        #[arg(long, value_name = "N")]
        to: Option<u64>,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Print an inclusion proof of entry N as JSON (index, size, leaf_hash, root, proof).
    ///
    /// Example: `lexecon ledger prove --index 5 --size 1000`, then check it with
    /// `lexecon proof verify-inclusion`.
    Prove {
        /// The entry index.
        #[arg(long, value_name = "N")]
        index: u64,
        /// The tree size (default: the current size).
        #[arg(long, value_name = "N")]
        size: Option<u64>,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Erase one entry's payload (GDPR Art. 17); its leaf stays, so the ledger and every
    /// proof still verify.
    #[command(after_long_help = "\
Erases the payload and every copy the engine keeps of its fields (the decision index
keeps only the decision id, time, ledger index and outcome; idempotency, escalation and
override rows; evidence content for an evidence_registered entry). The redaction and its
reason are recorded as a compliance entry; the erased data never is. An entry under a
legal hold is refused with the hold named (exit 1): release the hold first with
`lexecon compliance hold release`. Nothing is deleted automatically.

With --server the redaction goes to that server (admin role); without it, it runs in
process on --data-dir. Exit 0 redacted, 1 refused by a legal hold, 2 on any other error.

Examples:
  lexecon ledger redact --index 42 --reason 'GDPR Art. 17 request 2026-311'
  lexecon ledger redact --index 42 --reason 'erasure request' --server http://127.0.0.1:50051")]
    Redact {
        /// The entry to redact.
        #[arg(long, value_name = "N")]
        index: u64,
        /// Why (required; recorded in the ledger).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// `lexecon proof ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProofCommand {
    /// Verify an inclusion proof (RFC 9162 §2.1.3.2); exit 0 valid, 1 invalid.
    ///
    /// Example: `lexecon proof verify-inclusion --leaf-hash 6e34... --index 0 --size 1
    /// --root 6e34...`
    VerifyInclusion {
        /// The leaf hash, hex.
        #[arg(long, value_name = "HEX")]
        leaf_hash: String,
        /// The leaf index.
        #[arg(long, value_name = "N")]
        index: u64,
        /// The tree size.
        #[arg(long, value_name = "N")]
        size: u64,
        /// The tree root, hex.
        #[arg(long, value_name = "HEX")]
        root: String,
        /// The proof hashes, hex, comma-separated (empty for a one-leaf tree).
        #[arg(long, value_name = "HEX,...", value_delimiter = ',')]
        proof: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a consistency proof (RFC 9162 §2.1.4.2); exit 0 valid, 1 invalid.
    ///
    /// Example: `lexecon proof verify-consistency --size1 3 --size2 7 --root1 HEX
    /// --root2 HEX --proof HEX,HEX,HEX`
    VerifyConsistency {
        /// The older tree size.
        #[arg(long, value_name = "N")]
        size1: u64,
        /// The newer tree size.
        #[arg(long, value_name = "N")]
        size2: u64,
        /// The older root, hex.
        #[arg(long, value_name = "HEX")]
        root1: String,
        /// The newer root, hex.
        #[arg(long, value_name = "HEX")]
        root2: String,
        /// The proof hashes, hex, comma-separated.
        #[arg(long, value_name = "HEX,...", value_delimiter = ',')]
        proof: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The database URL a command should read.
fn database_url(data_dir: &Path, config: Option<&Path>, url: Option<&str>) -> Result<String> {
    if let Some(url) = url {
        return Ok(url.to_owned());
    }
    let config = Config::load(&Sources {
        data_dir: Some(data_dir.to_owned()),
        config_file: config.map(Path::to_owned),
    })?;
    Ok(config.database_url())
}

/// Opens an existing ledger database (never creates one).
async fn open_store(url: &str) -> Result<Arc<dyn LedgerStore>> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or(path);
        if !Path::new(path).is_file() {
            bail!("no ledger database at {path}: give --data-dir, --ledger-file or --database-url");
        }
        // The ledger's own opener: WAL, and a row buffer sized for streaming audits.
        let pool = lexecon_ledger::open_sqlite(Path::new(path), false).await?;
        return Ok(Arc::new(SqliteLedgerStore::new(pool)));
    }
    Ok(match Database::connect(url, 4).await? {
        Database::Sqlite(pool) => Arc::new(SqliteLedgerStore::new(pool)),
        Database::Postgres(pool) => Arc::new(PgLedgerStore::new(pool)),
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Verifiers for the given PEM keys, named as the log names its keys.
fn pem_verifiers(keys: &[PathBuf], names: &[String]) -> Result<Vec<NoteVerifier>> {
    if names.is_empty() && !keys.is_empty() {
        bail!(
            "the ledger records no key name to check --public-key against: it has never been signed"
        );
    }
    let mut out = Vec::new();
    for key in keys {
        let pem = read(key)?;
        for name in names {
            out.push(
                NoteVerifier::from_public_key_pem(name, &pem)
                    .with_context(|| format!("{}", key.display()))?,
            );
        }
    }
    Ok(out)
}

/// RSA co-signature verifiers for the given PEM keys, named as the log names its keys.
fn rsa_verifiers(
    keys: &[PathBuf],
    names: &[String],
) -> Result<Vec<lexecon_ledger::RsaNoteVerifier>> {
    use rsa::pkcs8::DecodePublicKey as _;
    let mut out = Vec::new();
    for key in keys {
        let pem = read(key)?;
        let public = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
            .with_context(|| format!("{} is not a PEM RSA public key", key.display()))?;
        for name in names {
            out.push(
                lexecon_ledger::RsaNoteVerifier::new(name, public.clone())
                    .with_context(|| format!("{}", key.display()))?,
            );
        }
    }
    Ok(out)
}

fn progress_bar(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:40} {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Runs `verify-ledger`.
pub(crate) fn run_verify(args: &VerifyLedgerArgs) -> Result<Verdict> {
    let trusted = args.trusted_checkpoint.as_deref().map(read).transpose()?;
    let bar = progress_bar(args.json);
    let progress: Option<lexecon_ledger::Progress> = bar.clone().map(|bar| {
        Arc::new(move |done: u64, total: u64| {
            if total > 0 {
                bar.set_length(total);
            }
            bar.set_position(done);
        }) as lexecon_ledger::Progress
    });
    let report = if let Some(dir) = &args.bundle {
        let names: Vec<String> = read(&dir.join("verifier.vkey"))?
            .lines()
            .filter_map(|l| NoteVerifier::from_vkey(l).ok())
            .map(|v| v.name().to_owned())
            .collect();
        let options = VerifyOptions {
            verifiers: pem_verifiers(&args.public_key, &names)?,
            trusted_checkpoint: trusted,
            page_size: 0,
            progress,
            check_proof_index: false,
        };
        lexecon_ledger::verify_bundle(dir, &options)?
    } else {
        // The data directory's configuration, unless the ledger is a bare file or a
        // database URL was given with no data directory beside it.
        let initialised = args.config.is_some() || args.data_dir.join("lexecon.toml").is_file();
        let config = match &args.ledger_file {
            Some(_) => None,
            None if args.database_url.is_some() && !initialised => None,
            None => Some(Config::load(&Sources {
                data_dir: Some(args.data_dir.clone()),
                config_file: args.config.clone(),
            })?),
        };
        let url = match (&args.ledger_file, &args.database_url, &config) {
            (Some(path), _, _) => format!("sqlite://{}", path.display()),
            (None, Some(url), _) => url.clone(),
            (None, None, Some(config)) => config.database_url(),
            (None, None, None) => bail!("give --data-dir, --ledger-file or --database-url"),
        };
        runtime()?.block_on(async {
            let store = open_store(&url).await?;
            let stored = lexecon_ledger::stored_verifiers(store.as_ref()).await?;
            let names: Vec<String> = stored.iter().map(|v| v.name().to_owned()).collect();
            // With the data directory and no --public-key, checkpoints are checked against
            // the node's key ring (keys/, keys/retired/): that is what makes the result
            // count toward compliance. Keys only the database records are still accepted
            // (a key pruned from the ring after its rotation), but then the trust basis
            // is the database's keys and the report says so.
            let ring = match (&config, args.public_key.is_empty()) {
                (Some(config), true) => Some(key_ring_verifiers(config, &names)?),
                _ => None,
            };
            let (verifiers, trusted_key_ring) = match ring {
                Some(ring) => {
                    let in_ring = |v: &NoteVerifier| ring.iter().any(|r| r.vkey() == v.vkey());
                    if stored.iter().all(in_ring) {
                        (ring, true)
                    } else {
                        let mut all = ring.clone();
                        all.extend(stored.iter().filter(|v| !in_ring(v)).cloned());
                        (all, false)
                    }
                }
                None => (pem_verifiers(&args.public_key, &names)?, false),
            };
            let options = VerifyOptions {
                verifiers,
                trusted_checkpoint: trusted,
                page_size: 0,
                progress,
                check_proof_index: args.check_proof_index,
            };
            let mut report = lexecon_ledger::verify(Arc::clone(&store), &options).await?;
            let rsa = rsa_verifiers(&args.rsa_public_key, &names)?;
            if report.valid
                && let Some(problem) =
                    lexecon_ledger::verify_rsa_cosignatures(store.as_ref(), &rsa).await?
            {
                report.valid = false;
                report.problem = Some(problem);
            }
            report.trusted_key_ring = trusted_key_ring;
            if let Some(config) = config.as_ref().filter(|_| args.public_key.is_empty()) {
                report.keys = if trusted_key_ring {
                    format!(
                        "the node's key ring in {} (authenticity as far as that directory is trusted)",
                        config.keys_dir().display()
                    )
                } else {
                    format!(
                        "the node's key ring in {} and keys only the database records",
                        config.keys_dir().display()
                    )
                };
            }
            if let Some(mut config) = config {
                // A full verification of the node's own database is a compliance fact.
                if let Some(url) = &args.database_url {
                    config.database.url = Some(url.clone());
                }
                match record_verification(config, &report).await {
                    Ok(index) => report.recorded_at_index = Some(index),
                    Err(e) => eprintln!(
                        "lexecon: warning: the verification was not recorded in the ledger, so \
                         compliance does not count it: {e:#}"
                    ),
                }
            }
            anyhow::Ok(report)
        })?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_report(&report, args.json)?;
    Ok(if report.valid {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

/// Verifiers for the node's key ring in the configured data directory (`keys/`, active
/// and retired), named as the log names its keys (the ledger origin when it records none).
fn key_ring_verifiers(config: &Config, names: &[String]) -> Result<Vec<NoteVerifier>> {
    let keys_dir = config.keys_dir();
    let ring = PublicKeyRing::load(&keys_dir, NODE_KEY_NAME).with_context(|| {
        format!(
            "cannot load the node's key ring from {}; pass --public-key, or --ledger-file to \
             verify a bare ledger file",
            keys_dir.display()
        )
    })?;
    let origin = [config.ledger_origin()];
    let names = if names.is_empty() { &origin[..] } else { names };
    let keys = std::iter::once(ring.active()).chain(ring.retired().iter().map(|r| &r.key));
    let mut out = Vec::new();
    for key in keys {
        for name in names {
            out.push(
                NoteVerifier::new(name, *key.verifying_key()).with_context(|| {
                    format!("the key {} cannot verify checkpoints", key.key_id())
                })?,
            );
        }
    }
    Ok(out)
}

/// Records a finished verification as a `compliance` entry through an engine opened on
/// the node's database; returns the entry's index.
async fn record_verification(config: Config, report: &VerifyReport) -> Result<u64> {
    let engine = Engine::open_local(config, Arc::new(SystemClock)).await?;
    let recorded = engine
        .record_local_verification(&Caller::local(), report, report.trusted_key_ring)
        .await;
    engine.shutdown().await?;
    Ok(recorded?)
}

fn print_report(report: &VerifyReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    match &report.problem {
        None => {
            println!(
                "valid: {} entries, {} checkpoints checked, {} redacted, root {}",
                report.entries, report.checkpoints, report.redacted, report.root
            );
            if report.partial {
                println!(
                    "partial bundle: leaves, payloads and the chain were checked; roots and checkpoints need the entries from index 0"
                );
            }
            if let Some(size) = report.trusted_checkpoint_size {
                println!("the trusted checkpoint at size {size} matches");
            }
        }
        Some(p) => match p.index {
            Some(i) => println!("TAMPERED: first bad index {i}: {}", p.what),
            None => println!("TAMPERED: {}", p.what),
        },
    }
    println!("keys: {}", report.keys);
    if let Some(index) = report.recorded_at_index {
        println!(
            "recorded in ledger entry {index} (trust: {})",
            if report.trusted_key_ring {
                "the node's key ring"
            } else {
                "keys recorded in the database"
            }
        );
    }
    Ok(())
}

/// Runs `ledger export|prove`.
pub(crate) fn run_ledger(cmd: &LedgerCommand) -> Result<Verdict> {
    match cmd {
        LedgerCommand::Export {
            out,
            from,
            to,
            json,
            source,
        } => {
            let url = database_url(
                &source.data_dir,
                source.config.as_deref(),
                source.database_url.as_deref(),
            )?;
            let summary = runtime()?.block_on(async {
                let store = open_store(&url).await?;
                anyhow::Ok(lexecon_ledger::export(store.as_ref(), out, *from, *to).await?)
            })?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "exported entries {}..{} and {} checkpoints to {}",
                    summary.from,
                    summary.to,
                    summary.checkpoints,
                    out.display()
                );
                if summary.latest_checkpoint.is_none() {
                    println!("warning: no signed checkpoint covers these entries yet");
                }
            }
            Ok(Verdict::Yes)
        }
        LedgerCommand::Prove {
            index,
            size,
            source,
        } => {
            let url = database_url(
                &source.data_dir,
                source.config.as_deref(),
                source.database_url.as_deref(),
            )?;
            let proof = runtime()?.block_on(async {
                let store = open_store(&url).await?;
                anyhow::Ok(lexecon_ledger::inclusion_proof(store.as_ref(), *index, *size).await?)
            })?;
            println!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(Verdict::Yes)
        }
        LedgerCommand::Redact {
            index,
            reason,
            json,
            target,
        } => redact(*index, reason, *json, target),
    }
}

/// What a redaction came to: done (the compliance entry and what was erased), or
/// refused by a legal hold (the engine's message, which names the hold).
enum Redacted {
    Done {
        ledger_index: u64,
        erased: Vec<String>,
    },
    Held(String),
}

/// Runs `ledger redact`: through the server with --server, else in process.
fn redact(index: u64, reason: &str, json: bool, target: &ServerArgs) -> Result<Verdict> {
    let outcome = client_runtime()?.block_on(async {
        if target.server.is_some() {
            let (channel, bearer) = target.connect().await?;
            let request = pb::RedactRequest {
                index,
                reason: reason.to_owned(),
            };
            match LedgerServiceClient::new(channel)
                .redact(authed(request, &bearer)?)
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    Ok(Redacted::Done {
                        ledger_index: r.ledger_index,
                        erased: r.erased,
                    })
                }
                Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                    Ok(Redacted::Held(s.message().to_owned()))
                }
                Err(s) => Err(status_error(s)),
            }
        } else {
            let data_dir = &target.data_dir;
            if !data_dir.join("lexecon.toml").is_file() && target.config.is_none() {
                bail!(
                    "no data directory {}: pass --data-dir DIR, or --server URL to ask a server",
                    data_dir.display()
                );
            }
            let config = Config::load(&Sources {
                data_dir: Some(data_dir.clone()),
                config_file: target.config.clone(),
            })?;
            let engine = Engine::open_local(config, Arc::new(SystemClock)).await?;
            let result = engine.redact_entry(&Caller::local(), index, reason).await;
            engine.shutdown().await?;
            match result {
                Ok(r) => Ok(Redacted::Done {
                    ledger_index: r.ledger_index,
                    erased: r.erased,
                }),
                Err(e) if e.class() == ErrorClass::FailedPrecondition => {
                    Ok(Redacted::Held(e.to_string()))
                }
                Err(e) => Err(e.into()),
            }
        }
    })?;
    match outcome {
        Redacted::Done {
            ledger_index,
            erased,
        } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"index": index, "redacted": true,
                        "ledger_index": ledger_index, "erased": erased})
                );
            } else {
                println!(
                    "redacted entry {index} (recorded in ledger entry {ledger_index}); erased: {}",
                    erased.join(", ")
                );
            }
            Ok(Verdict::Yes)
        }
        Redacted::Held(why) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"index": index, "redacted": false, "refused": why})
                );
            } else {
                println!("NOT REDACTED: {why}");
            }
            Ok(Verdict::No)
        }
    }
}

fn hex_arg(what: &str, value: &str) -> Result<Vec<u8>> {
    hex::decode(value.trim())
        .with_context(|| format!("--{what} is not hex: give lowercase hex such as 6e340b9c..."))
}

fn hex_list(values: &[String]) -> Result<Vec<Vec<u8>>> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| hex_arg("proof", v))
        .collect()
}

fn proof_verdict(result: Result<(), lexecon_ledger::ProofError>, json: bool) -> Result<Verdict> {
    if json {
        let value = match &result {
            Ok(()) => serde_json::json!({"valid": true}),
            Err(e) => serde_json::json!({"valid": false, "reason": e.to_string()}),
        };
        println!("{value}");
    } else {
        match &result {
            Ok(()) => println!("valid"),
            Err(e) => println!("invalid: {e}"),
        }
    }
    Ok(if result.is_ok() {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

/// Runs `proof verify-inclusion|verify-consistency`.
pub(crate) fn run_proof(cmd: &ProofCommand) -> Result<Verdict> {
    match cmd {
        ProofCommand::VerifyInclusion {
            leaf_hash,
            index,
            size,
            root,
            proof,
            json,
        } => {
            let result = lexecon_ledger::verify_inclusion(
                &hex_arg("leaf-hash", leaf_hash)?,
                *index,
                *size,
                &hex_list(proof)?,
                &hex_arg("root", root)?,
            );
            proof_verdict(result, *json)
        }
        ProofCommand::VerifyConsistency {
            size1,
            size2,
            root1,
            root2,
            proof,
            json,
        } => {
            let result = lexecon_ledger::verify_consistency(
                *size1,
                *size2,
                &hex_list(proof)?,
                &hex_arg("root1", root1)?,
                &hex_arg("root2", root2)?,
            );
            proof_verdict(result, *json)
        }
    }
}
