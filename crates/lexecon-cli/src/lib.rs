//! The `lexecon` command-line tool.
//!
//! [`main`] parses arguments with clap, dispatches to one function per command, and
//! maps the result to an exit code in one place: `0` success, valid or approved; `1` a
//! negative answer (denied, invalid, tampered, failed test); `2` a usage or runtime
//! error, printed as one line on stderr that says what to fix.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use args::Cli;

/// What a command concluded, before it becomes an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Success, valid, approved: exit 0.
    Yes,
    /// A negative answer (denied, invalid proof, tampered ledger, failed test): exit 1.
    No,
}

/// The exit code for a usage or runtime error.
pub const EXIT_ERROR: u8 = 2;

/// Runs the CLI on the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version, as we want.
    let cli = Cli::parse();
    exit_code(commands::run(cli))
}

/// The one place where results become exit codes.
pub fn exit_code(result: anyhow::Result<Verdict>) -> ExitCode {
    match result {
        Ok(Verdict::Yes) => ExitCode::SUCCESS,
        Ok(Verdict::No) => ExitCode::from(1),
        Err(err) => {
            // One line: the chain of causes joined, so scripts can grep it.
            eprintln!("lexecon: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
