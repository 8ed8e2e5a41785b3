//! One function per command; each returns a [`Verdict`] or an error.

pub(crate) mod client;
pub(crate) mod decide;
pub(crate) mod token;

use clap::CommandFactory;

use crate::{
    Cli, Verdict,
    args::{BenchCommand, Command},
};

/// Runs one parsed command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<Verdict> {
    match cli.command {
        Command::Decide(args) => decide::run_decide(&args),
        Command::Bench(BenchCommand::Decide(args)) => decide::run_bench(&args),
        Command::Token(cmd) => token::run_token(&cmd),
        Command::Keys(cmd) => token::run_keys(&cmd),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "lexecon", &mut std::io::stdout());
            Ok(Verdict::Yes)
        }
    }
}
