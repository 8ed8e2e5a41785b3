//! The `lexecon` binary: parses arguments and hands over to the library.

/// mimalloc instead of glibc malloc: a decision allocates and frees many small buffers
/// across threads (request, payload, token, response), and glibc's allocator took ~14%
/// of the server's CPU under load (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lexecon_cli::main()
}
