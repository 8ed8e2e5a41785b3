//! `lexecon init` and `lexecon server`: the commands that own a data directory.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use lexecon_core::SystemClock;
use lexecon_engine::Engine;
use lexecon_engine::config::{Config, LogFormat, Sources, is_initialised};
use lexecon_engine::init::{InitOptions, init};

use super::client::runtime;
use crate::Verdict;

/// `--data-dir` and `--config` for commands that read local state.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LocalArgs {
    /// The data directory.
    #[arg(long, value_name = "DIR", default_value = ".lexecon")]
    pub data_dir: PathBuf,
    /// A configuration file instead of DIR/lexecon.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl LocalArgs {
    pub(crate) fn load(&self) -> Result<Config> {
        Ok(Config::load(&Sources {
            data_dir: Some(self.data_dir.clone()),
            config_file: self.config.clone(),
        })?)
    }
}

/// `lexecon init`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Creates DIR/lexecon.toml (every key with its default), DIR/keys/node.ed25519 (0600) and
.pub, DIR/policy.toml (a strict starter policy), DIR/lexecon.db (migrated) and
DIR/admin.token (0600, an admin API key the CLI uses by default), DIR/master.key (0600,
32 random bytes that encrypt TOTP seeds; not made when LEXECON_MASTER_KEY is set). With --rsa, also an
RSA-4096 key that co-signs ledger checkpoints.

Example:
  lexecon init --data-dir /var/lib/lexecon --node-id eu-1")]
pub(crate) struct InitArgs {
    /// The data directory to create.
    #[arg(long, value_name = "DIR", default_value = ".lexecon")]
    pub data_dir: PathBuf,
    /// A name for this node (checkpoint origins, logs).
    #[arg(long, value_name = "ID", default_value = "lexecon-1")]
    pub node_id: String,
    /// Also create an RSA-4096 key that co-signs ledger checkpoints.
    #[arg(long)]
    pub rsa: bool,
    /// Replace an initialised directory; its files are moved to DIR/backup-<time>/ first.
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run_init(args: &InitArgs) -> Result<Verdict> {
    if args.node_id.is_empty()
        || !args
            .node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bail!(
            "--node-id must be letters, digits, - _ or ., got {:?}",
            args.node_id
        );
    }
    let rt = runtime()?;
    let options = InitOptions {
        data_dir: args.data_dir.clone(),
        node_id: args.node_id.clone(),
        rsa: args.rsa,
        force: args.force,
    };
    let done = rt.block_on(init(&options, Arc::new(SystemClock)))?;
    if let Some(backup) = &done.backup {
        println!("moved the previous files to {}", backup.display());
    }
    let layout = lexecon_engine::DataDir::new(&done.data_dir);
    println!("initialised {}", done.data_dir.display());
    println!(
        "  node key:    {} (key id {})",
        layout.node_key().display(),
        done.key_id
    );
    if done.rsa {
        println!("  rsa key:     {}", layout.rsa_key().display());
    }
    println!("  policy:      {}", layout.policy_file().display());
    println!("  admin token: {}", done.admin_token_file.display());
    println!(
        "next: lexecon server --data-dir {}",
        done.data_dir.display()
    );
    Ok(Verdict::Yes)
}

/// `lexecon server`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Serves gRPC (DecisionService, PolicyService, LedgerService, RiskService, health,
reflection) and Prometheus metrics. On a directory that is not initialised it runs
`lexecon init` first (zero-config start) and prints where the admin token is.
SIGTERM/SIGINT drain in-flight calls, flush the ledger and sign a final checkpoint;
SIGHUP reloads the policy file (an invalid file is refused and the old policy stays).

Examples:
  lexecon server
  lexecon server --data-dir /var/lib/lexecon --listen 0.0.0.0:50051
  LEXECON_DATABASE__URL=postgres://lexecon@db/lexecon lexecon server")]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// gRPC address [default: server.listen, 127.0.0.1:50051].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// gRPC port on the configured host (shorthand for --listen).
    #[arg(long, value_name = "N", conflicts_with = "listen")]
    pub port: Option<u16>,
    /// Metrics address [default: server.metrics_listen, 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LEXECON_LOG")
        .unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

pub(crate) fn run_server(args: &ServerArgs) -> Result<Verdict> {
    let rt = runtime()?;
    rt.block_on(async {
        if args.local.config.is_none() && !is_initialised(&args.local.data_dir) {
            let options = InitOptions {
                data_dir: args.local.data_dir.clone(),
                node_id: "lexecon-1".to_owned(),
                rsa: false,
                force: false,
            };
            let done = init(&options, Arc::new(SystemClock)).await?;
            eprintln!(
                "initialised {} (admin token: {})",
                done.data_dir.display(),
                done.admin_token_file.display()
            );
        }
        let config = args.local.load()?;
        init_tracing(&config);
        let mut grpc = args.listen.unwrap_or(config.server.listen);
        if let Some(port) = args.port {
            grpc.set_port(port);
        }
        let listen = lexecon_server::Listen {
            grpc,
            metrics: args.metrics_listen.unwrap_or(config.server.metrics_listen),
        };
        let token_file = config.admin_token_file();
        let (scheme, tls_note) = match (
            &config.server.tls_cert_file,
            &config.server.tls_client_ca_file,
        ) {
            (None, _) => ("http", ""),
            (Some(_), None) => ("https", " (TLS only)"),
            (Some(_), Some(_)) => ("https", " (TLS only, client certificates required)"),
        };
        let engine = Engine::open(config, Arc::new(SystemClock)).await?;
        lexecon_server::serve(
            engine,
            listen,
            lexecon_server::shutdown_signal(),
            |grpc, metrics| {
                eprintln!("lexecon: serving gRPC and HTTP/JSON on {grpc}{tls_note}, metrics on http://{metrics}/metrics");
                eprintln!("lexecon: API reference at {scheme}://{grpc}/docs");
                if token_file.exists() {
                    eprintln!("lexecon: admin token in {}", token_file.display());
                }
            },
        )
        .await?;
        Ok(Verdict::Yes)
    })
}
