//! One function per command; each returns a [`Verdict`] or an error.

pub(crate) mod action;
pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod client;
pub(crate) mod compliance;
pub(crate) mod decide;
pub(crate) mod decisions;
pub(crate) mod evidence;
pub(crate) mod ledger;
pub(crate) mod mcp;
pub(crate) mod migrate;
pub(crate) mod oversight;
pub(crate) mod policy;
pub(crate) mod risk;
pub(crate) mod secrets;
pub(crate) mod service;
pub(crate) mod token;

use clap::CommandFactory;

use crate::{
    Cli, Verdict,
    args::{BenchCommand, Command},
};

/// Runs one parsed command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<Verdict> {
    client::set_tls(cli.tls);
    match cli.command {
        Command::Init(args) => service::run_init(&args),
        Command::Server(args) => service::run_server(&args),
        Command::Migrate(args) => migrate::run_migrate(&args),
        Command::User(cmd) => admin::run_user(&cmd),
        Command::Apikey(cmd) => admin::run_apikey(&cmd),
        Command::Decide(args) => decide::run_decide(&args),
        Command::Bench(BenchCommand::Decide(args)) => bench::run_bench(&args),
        Command::Policy(cmd) => policy::run(&cmd),
        Command::Token(cmd) => token::run_token(&cmd),
        Command::Keys(cmd) => token::run_keys(&cmd),
        Command::Secrets(cmd) => secrets::run(&cmd),
        Command::VerifyLedger(args) => ledger::run_verify(&args),
        Command::Ledger(cmd) => ledger::run_ledger(&cmd),
        Command::Proof(cmd) => ledger::run_proof(&cmd),
        Command::Risk(cmd) => risk::run(&cmd),
        Command::Decisions(cmd) => decisions::run(&cmd),
        Command::Audit(cmd) => audit::run(&cmd),
        Command::Evidence(cmd) => evidence::run(&cmd),
        Command::Compliance(cmd) => compliance::run(&cmd),
        Command::Escalations(cmd) => oversight::run_escalations(&cmd),
        Command::Override(cmd) => oversight::run_override(&cmd),
        Command::Halt(args) => oversight::run_halt(&args),
        Command::Resume(args) => oversight::run_resume(&args),
        Command::Events(cmd) => oversight::run_events(&cmd),
        Command::Accountability(args) => oversight::run_accountability(&args),
        Command::Mcp(cmd) => mcp::run(&cmd),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "lexecon", &mut std::io::stdout());
            Ok(Verdict::Yes)
        }
    }
}
