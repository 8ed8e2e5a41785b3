//! End-to-end tests of the `lexecon` binary, run as a process.

use lexecon_e2e::lexecon;

fn tmp() -> std::path::PathBuf {
    std::env::temp_dir()
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let run = lexecon(&tmp(), &["--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("completions"), "{}", run.stdout);
    let text = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("Exit codes: 0 success"), "{text}");
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let run = lexecon(&tmp(), &["no-such-command"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no-such-command"), "{}", run.stderr);
}

#[test]
fn completions_for_bash() {
    let run = lexecon(&tmp(), &["completions", "bash"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("_lexecon()"),
        "{}",
        &run.stdout[..run.stdout.len().min(200)]
    );
}
