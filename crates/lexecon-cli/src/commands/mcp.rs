//! `lexecon mcp proxy` and `lexecon mcp serve`: the MCP gateway (contract §11, docs/mcp.md). The work is in
//! the `lexecon-mcp` crate; this only parses the command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use lexecon_mcp::{Backend, ProxyOptions, ServeBackend, ServeOptions};

use crate::Verdict;
use crate::commands::client::runtime;

/// `lexecon mcp ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum McpCommand {
    /// Put a Lexecon decision in front of every tool call of a stdio MCP server.
    ///
    /// An MCP host starts this instead of the server's own command; it starts COMMAND
    /// as the upstream server and relays JSON-RPC both ways. Each tools/call becomes
    /// one decision (tool NAME/TOOL); only an APPROVED call reaches the upstream, and
    /// its result carries the decision id and capability token in _meta. Everything
    /// else is relayed unchanged. The key comes from --token or LEXECON_TOKEN, never
    /// from DIR/admin.token.
    ///
    /// Examples:
    ///   lexecon mcp proxy --name files --data-dir .lexecon --actor agent:coder --
    ///     npx -y @modelcontextprotocol/server-filesystem /srv/docs
    ///   LEXECON_TOKEN=lxk_... lexecon mcp proxy --name time --server
    ///     http://127.0.0.1:50051 -- uvx mcp-server-time
    #[command(verbatim_doc_comment)]
    Proxy(ProxyArgs),
    /// The same over Streamable HTTP: several upstreams behind one listener.
    ///
    /// Each upstream is reached at http://ADDR/mcp/NAME. Agents authenticate with their
    /// Lexecon API key (Authorization: Bearer), checked before anything is forwarded and
    /// never sent upstream; the actor is the key's one bound actor, or the
    /// X-Lexecon-Actor header (which the binding must allow). Foreign Origin headers are
    /// refused; a non-loopback --listen is refused.
    ///
    /// Example:
    ///   lexecon mcp serve --listen 127.0.0.1:8930 --upstream files=http://127.0.0.1:3001/mcp
    ///     --upstream-header files:Authorization=Bearer\ abc --server http://127.0.0.1:50051
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
}

/// `lexecon mcp serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on, e.g. 127.0.0.1:8930.
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// An upstream Streamable HTTP MCP server, NAME=URL (repeatable).
    #[arg(long, value_name = "NAME=URL", required = true)]
    pub upstream: Vec<String>,
    /// A header sent to upstream NAME only, NAME:HEADER=VALUE (repeatable).
    #[arg(long, value_name = "NAME:HEADER=VALUE")]
    pub upstream_header: Vec<String>,
    /// Decide through this Lexecon server, with each agent's own key.
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub server: Option<String>,
    /// Decide (and authenticate keys) with the embedded engine on this data directory
    /// [default: .lexecon].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML file whose [mcp] table is read after DIR/lexecon.toml's.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TLS certificate chain (PEM); not supported by this build.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); not supported by this build.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `lexecon mcp proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProxyArgs {
    /// The upstream's name: tools are decided as NAME/TOOL.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Decide through this Lexecon server, e.g. http://127.0.0.1:50051.
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub server: Option<String>,
    /// The agent's API key for --server.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LEXECON_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Decide in-process with the embedded engine on this data directory
    /// [default: .lexecon]; decisions name the principal local:<os user>.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The actor decisions are asked for [default: with --server the key's one bound
    /// actor; with --data-dir mcp:NAME].
    #[arg(long, value_name = "ACTOR")]
    pub actor: Option<String>,
    /// A TOML file whose [mcp] table is read after DIR/lexecon.toml's.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accept a --server key whose role is not agent.
    #[arg(long)]
    pub allow_admin_key: bool,
    /// The upstream MCP server's command and arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // stdout carries the protocol: logs go to stderr only.
    let filter = EnvFilter::try_from_env("LEXECON_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs `lexecon mcp ...`.
pub(crate) fn run(cmd: &McpCommand) -> Result<Verdict> {
    init_tracing();
    let args = match cmd {
        McpCommand::Proxy(args) => args,
        McpCommand::Serve(args) => return run_serve(args),
    };
    let backend = match &args.server {
        Some(url) => Backend::Server {
            url: url.clone(),
            token: args.token.clone(),
            allow_admin_key: args.allow_admin_key,
        },
        None => Backend::DataDir(
            args.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".lexecon")),
        ),
    };
    let options = ProxyOptions {
        name: args.name.clone(),
        backend,
        actor: args.actor.clone(),
        config: args.config.clone(),
        command: args.command.clone(),
    };
    runtime()?.block_on(lexecon_mcp::run_proxy(options))?;
    Ok(Verdict::Yes)
}

fn run_serve(args: &ServeArgs) -> Result<Verdict> {
    let backend = match &args.server {
        Some(url) => ServeBackend::Server(url.clone()),
        None => ServeBackend::DataDir(
            args.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".lexecon")),
        ),
    };
    let options = ServeOptions {
        listen: args.listen.clone(),
        upstreams: args.upstream.clone(),
        upstream_headers: args.upstream_header.clone(),
        backend,
        config: args.config.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
    };
    runtime()?.block_on(lexecon_mcp::run_serve(options))?;
    Ok(Verdict::Yes)
}
