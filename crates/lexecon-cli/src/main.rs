//! The `lexecon` binary: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    lexecon_cli::main()
}
