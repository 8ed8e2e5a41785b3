//! The command line, as clap sees it.

use clap::{Parser, Subcommand};

/// Lexecon: a governance engine for AI agents.
///
/// Decides, by policy, risk and budget, whether an agent's proposed action may go ahead;
/// issues short-lived signed capability tokens; and records every decision in a
/// tamper-evident ledger. Exit codes: 0 success/approved/valid, 1 a negative answer
/// (denied, invalid, tampered, failed test), 2 a usage or runtime error.
#[derive(Debug, Parser)]
#[command(
    name = "lexecon",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
    /// TLS to the server: --ca-file, --client-cert, --client-key.
    #[command(flatten)]
    pub(crate) tls: crate::commands::client::TlsArgs,
}

/// Every `lexecon` command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a data directory: configuration, keys, starter policy, database, admin token.
    Init(crate::commands::service::InitArgs),
    /// Run the gRPC server (initialising the data directory first if needed).
    Server(crate::commands::service::ServerArgs),
    /// Apply the database migrations to the configured database, then exit.
    ///
    /// The database is database.url of the configuration (DIR/lexecon.toml or --config
    /// FILE, with LEXECON_DATABASE__URL over both), or DIR/lexecon.db when none is set.
    /// Every component's migrations run (ledger, users and keys, budgets, the engine's
    /// own); those already applied are skipped, so running it again is harmless. `lexecon
    /// server` migrates at start too; run this as a deployment's migrate step so servers
    /// start on an up-to-date schema. Prints the database, with any password hidden.
    Migrate(crate::commands::migrate::MigrateArgs),
    /// Users: on the local database, or through a server with --server.
    #[command(subcommand)]
    User(crate::commands::admin::UserCommand),
    /// API keys and the actors they may speak for: local database, or --server.
    #[command(subcommand)]
    Apikey(crate::commands::admin::ApiKeyCommand),
    /// Ask a server whether an action may go ahead (DecisionService/Decide).
    Decide(crate::commands::decide::DecideArgs),
    /// Load generators against a running server.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Policy files: check, test, explain and hash them, without a server.
    #[command(subcommand)]
    Policy(crate::commands::policy::PolicyCommand),
    /// Capability tokens: verify one offline.
    #[command(subcommand)]
    Token(crate::commands::token::TokenCommand),
    /// The node's signing key: rotate it.
    #[command(subcommand)]
    Keys(crate::commands::token::KeysCommand),
    /// Secrets at rest (TOTP seeds): re-encrypt them under a new master key.
    #[command(subcommand)]
    Secrets(crate::commands::secrets::SecretsCommand),
    /// Verify the whole ledger offline; exit 0 valid, 1 tampered.
    ///
    /// Recomputes every leaf, chain link and payload hash, the Merkle tree, and every
    /// signed checkpoint's root and signature, and prints the first bad entry and what is
    /// wrong. Exit codes: 0 valid, 1 tampered, 2 error.
    ///
    /// Trust: signatures are checked with --public-key when given; otherwise, for the
    /// data directory's database (--data-dir, or --database-url beside a data directory),
    /// with the node's key ring in DIR/keys and DIR/keys/retired; for --ledger-file with
    /// the keys the ledger recorded in its database (or a bundle's verifier.vkey), which
    /// proves integrity but not authenticity. Pass --trusted-checkpoint (a checkpoint you
    /// saved earlier) to catch a truncated or rewritten tail.
    ///
    /// Compliance: a verification of the data directory's database is recorded in the
    /// ledger as a compliance entry with its result and trust basis; only one that trusted
    /// the key ring counts toward the controls that ask for a recent verification
    /// (compliance.verification_max_age_secs). Bundles and --ledger-file are not recorded.
    ///
    /// Examples:
    ///   lexecon verify-ledger
    ///   lexecon verify-ledger --ledger-file ./.lexecon/lexecon.db --public-key
    ///     ./.lexecon/keys/node.ed25519.pub --trusted-checkpoint saved.checkpoint
    ///   lexecon verify-ledger --bundle ./audit-2026-11 --json
    #[command(verbatim_doc_comment)]
    VerifyLedger(crate::commands::ledger::VerifyLedgerArgs),
    /// The ledger: export a bundle, print an inclusion proof.
    #[command(subcommand)]
    Ledger(crate::commands::ledger::LedgerCommand),
    /// Check Merkle proofs offline (RFC 9162); exit 0 valid, 1 invalid.
    #[command(subcommand)]
    Proof(crate::commands::ledger::ProofCommand),
    /// Risk scoring: assess a proposed action in six dimensions, without a server.
    #[command(subcommand)]
    Risk(crate::commands::risk::RiskCommand),
    /// Escalations: list them, show one, approve or deny (through a server).
    #[command(subcommand)]
    Escalations(crate::commands::oversight::EscalationsCommand),
    /// Overrides: create, list and revoke them (through a server).
    #[command(subcommand)]
    Override(crate::commands::oversight::OverrideCommand),
    /// The stop button: every matching Decide is denied until `lexecon resume`.
    Halt(crate::commands::oversight::HaltArgs),
    /// End a halt.
    Resume(crate::commands::oversight::ResumeArgs),
    /// Governance events as the ledger records them: watch them.
    #[command(subcommand)]
    Events(crate::commands::oversight::EventsCommand),
    /// Who was accountable for a decision.
    Accountability(crate::commands::oversight::AccountabilityArgs),
    /// Decisions: query the decision index (through a server).
    #[command(subcommand)]
    Decisions(crate::commands::decisions::DecisionsCommand),
    /// Audit exports: take a verifiable bundle of decisions, and verify one offline.
    #[command(subcommand)]
    Audit(crate::commands::audit::AuditCommand),
    /// Evidence: register, fetch, list and verify immutable artifacts (through a server).
    #[command(subcommand)]
    Evidence(crate::commands::evidence::EvidenceCommand),
    /// Compliance: control status from live facts, gaps, EU AI Act documentation and
    /// record keeping, legal holds, interventions and reports (through a server).
    #[command(subcommand)]
    Compliance(crate::commands::compliance::ComplianceCommand),
    /// The MCP gateway: a Lexecon decision in front of every MCP tool call.
    #[command(subcommand)]
    Mcp(crate::commands::mcp::McpCommand),
    /// Print shell completions for SHELL (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: `lexecon completions bash > /etc/bash_completion.d/lexecon`
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

/// `lexecon bench ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Drive Decide calls at a server and report decisions/s and latency percentiles.
    Decide(crate::commands::bench::BenchDecideArgs),
}
