//! One function per command; each returns a [`Verdict`] or an error.

use clap::CommandFactory;

use crate::{Cli, Verdict, args::Command};

/// Runs one parsed command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<Verdict> {
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "lexecon", &mut std::io::stdout());
            Ok(Verdict::Yes)
        }
    }
}
