//! The README tour test: it runs README.md's own commands, so the README and the
//! program cannot drift apart.
//!
//! How the fenced ```sh blocks of README.md are run (write the README so):
//! - Every ```sh block, in order, by one `bash` per stretch between server starts, in a
//!   fresh temporary directory that holds a copy of `examples/` and `clients/python/`
//!   (as a checkout does), with the directory of the built `lexecon` first on `PATH` and
//!   `LEXECON_TOKEN` unset. Exported variables carry over from one stretch to the next;
//!   all variables carry over within one.
//! - A line ending in `\` continues on the next line. A line with a here-document
//!   (`python3 - <<'EOF'`) takes the lines up to its terminator, verbatim, as one command.
//! - Python: a fresh virtual environment the test creates comes next on `PATH`, so
//!   `python3`, `python` and `pip` are its own. Its `pip` installs offline from the
//!   wheelhouse of `.ci/install-python-client` (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), so
//!   `pip install ./clients/python` works as on a fresh machine with the network. The
//!   environment is made only when the README has a command starting with `python`,
//!   `python3`, `pip` or `pip3`; when it cannot be made those commands are skipped
//!   outside CI (and the test fails under CI).
//! - `cargo build ...` and `cargo xtask ci` are skipped. `cargo run ... server` is not
//!   run: the test starts `lexecon server` itself in that directory, in the background,
//!   on the default ports, and at the end stops it with SIGTERM (it must exit 0). Any
//!   other `cargo` line is an error here, so the README cannot grow a step this test
//!   does not understand.
//! - Exit codes: a command must exit 0, unless the comment line(s) directly above it
//!   say `exit N` or `exits N`, as in `# ...and a denied one exits 1, naming ...`.
//!   That reads naturally and pastes into any shell. Pipelines run with `pipefail`,
//!   so in `lexecon decide ... | tee d.json` it is lexecon's exit code that counts.
//! - `grpcurl` lines use the grpcurl of `LEXECON_TEST_GRPCURL` (or the one on `PATH`);
//!   without one they are skipped outside CI.
//! - The default ports 127.0.0.1:50051 and :9464 are held under a lock file, so only
//!   one tour runs at a time on this machine, and a port taken by anything else fails
//!   the test naming the port.
//! - After the commands: no secret printed by any command (API keys, capability
//!   tokens) nor the admin token is in an exported ledger bundle, and every refused
//!   `lexecon decide` names the actor it tried on stderr.
//!
//! It runs on SQLite and, when `LEXECON_TEST_DATABASE_URL` is set (always under CI),
//! again with `LEXECON_DATABASE__URL` pointing at a fresh PostgreSQL database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lexecon_e2e::*;

/// What the test does with one README command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Run it in the shell; it must exit with `expect`.
    Run { expect: i32 },
    /// Start `lexecon server` in place of `cargo run ... server`.
    StartServer,
    /// Leave it out (`cargo build`, `cargo xtask ci`, grpcurl when there is none, Python
    /// when its environment could not be made).
    Skip(&'static str),
}

/// One command of the README, continuation lines joined.
#[derive(Debug, Clone)]
struct ReadmeCommand {
    /// The 1-based line of README.md it starts on.
    line: usize,
    text: String,
    step: Step,
}

/// The exit code a comment states (`exit N`, `exits N`), if any.
fn stated_exit(comment: &str) -> Option<i32> {
    let words: Vec<&str> = comment
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find_map(|pair| match pair {
        [word, code] if *word == "exit" || *word == "exits" => code.parse().ok(),
        _ => None,
    })
}

/// The tools the tour has for the commands that need one.
#[derive(Debug, Clone, Copy)]
struct Have {
    grpcurl: bool,
    python: bool,
}

/// Whether a README command runs Python or pip (and so needs the tour's environment).
fn is_python(text: &str) -> bool {
    matches!(
        text.split_whitespace().next(),
        Some("python" | "python3" | "pip" | "pip3")
    )
}

/// The terminator of the here-document a command line starts (`<<EOF`, `<<'EOF'`,
/// `<<-"EOF"`), if any.
fn heredoc_terminator(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let rest = &line[at + 2..];
    if rest.starts_with('<') {
        return None; // a here-string, `<<<`
    }
    let word: String = rest
        .trim_start_matches('-')
        .trim_start()
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The commands of README.md's ```sh blocks, in order.
fn readme_commands(readme: &str, have: Have) -> Vec<ReadmeCommand> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut comment = String::new();
    let mut pending: Option<(usize, String)> = None;
    // A command whose here-document is being read: start line, text, terminator.
    let mut heredoc: Option<(usize, String, String)> = None;
    for (i, raw) in readme.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim();
        if let Some((start, mut text, end)) = heredoc.take() {
            text.push('\n');
            text.push_str(raw);
            if trimmed == end {
                out.push(classify(start, text, &comment, have));
                comment.clear();
            } else {
                heredoc = Some((start, text, end));
            }
            continue;
        }
        if !in_sh {
            if trimmed == "```sh" {
                in_sh = true;
                comment.clear();
            }
            continue;
        }
        if let Some((start, mut text)) = pending.take() {
            // A continuation of the previous line.
            let (part, more) = match trimmed.strip_suffix('\\') {
                Some(part) => (part.trim_end(), true),
                None => (trimmed, false),
            };
            text.push(' ');
            text.push_str(part);
            if more {
                pending = Some((start, text));
            } else if let Some(end) = heredoc_terminator(&text) {
                heredoc = Some((start, text, end));
            } else {
                out.push(classify(start, text, &comment, have));
                comment.clear();
            }
            continue;
        }
        if trimmed == "```" {
            in_sh = false;
            continue;
        }
        if trimmed.is_empty() {
            comment.clear();
        } else if trimmed.starts_with('#') {
            comment.push_str(trimmed);
            comment.push('\n');
        } else if let Some(part) = trimmed.strip_suffix('\\') {
            pending = Some((line_no, part.trim_end().to_owned()));
        } else if let Some(end) = heredoc_terminator(trimmed) {
            heredoc = Some((line_no, trimmed.to_owned(), end));
        } else {
            out.push(classify(line_no, trimmed.to_owned(), &comment, have));
            comment.clear();
        }
    }
    assert!(
        !in_sh && pending.is_none(),
        "README.md ends inside a ```sh block"
    );
    if let Some((line, _, end)) = heredoc {
        panic!("README.md line {line}: the here-document never ends (no line `{end}`)");
    }
    out
}

fn classify(line: usize, text: String, comment: &str, have: Have) -> ReadmeCommand {
    let words: Vec<&str> = text.split_whitespace().collect();
    let step = match words.as_slice() {
        ["cargo", "build", ..] => Step::Skip("cargo build"),
        ["cargo", "xtask", "ci"] => Step::Skip("cargo xtask ci"),
        ["cargo", "run", .., "server"] => Step::StartServer,
        ["cargo", ..] => panic!(
            "README.md line {line}: the tour test runs every command except `cargo build ...`, \
             `cargo run ... server` and `cargo xtask ci`; teach it `{text}`"
        ),
        ["grpcurl", ..] if !have.grpcurl => Step::Skip("no grpcurl"),
        _ if is_python(&text) && !have.python => Step::Skip("no Python environment"),
        _ => Step::Run {
            expect: stated_exit(comment).unwrap_or(0),
        },
    };
    ReadmeCommand { line, text, step }
}

/// The lock on the default ports; released when dropped.
#[derive(Debug)]
struct DefaultPorts {
    _lock: std::fs::File,
}

/// Takes the machine-wide lock on the default ports, then checks that both are free.
fn default_ports() -> DefaultPorts {
    let path = std::env::temp_dir().join("lexecon-e2e-default-ports.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    for (port, what) in [(50051, "gRPC"), (9464, "metrics")] {
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            panic!(
                "port {port} on 127.0.0.1 is taken ({e}): the README tour needs the default \
                 {what} port; stop whatever listens there"
            );
        }
    }
    DefaultPorts { _lock: file }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // What a checkout does not hold: caches and build output left by local runs.
        if name.starts_with('.')
            || name == "__pycache__"
            || name == "build"
            || name == "dist"
            || name.ends_with(".egg-info")
        {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A bash script that runs `commands` (indices into the tour), recording each one's
/// output and exit code under `log`, and stops at the first unexpected exit code.
fn script(commands: &[(usize, &ReadmeCommand)], log: &Path) -> String {
    let log = log.display();
    let mut s = String::from("set -o pipefail\n");
    s.push_str(&format!(
        "if [ -f '{log}/env.sh' ]; then . '{log}/env.sh' 2>/dev/null; fi\n"
    ));
    for (i, command) in commands {
        let Step::Run { expect } = command.step else {
            continue;
        };
        s.push_str(&format!(
            "# README.md line {line}\n{{ {text}\n}} >'{log}/{i}.out' 2>'{log}/{i}.err' </dev/null\n\
             __lexecon_tour_rc=$?\necho \"$__lexecon_tour_rc\" >'{log}/{i}.rc'\n\
             if [ \"$__lexecon_tour_rc\" -ne {expect} ]; then exit 97; fi\n",
            line = command.line,
            text = command.text,
        ));
    }
    s.push_str(&format!("export -p >'{log}/env.sh'\n"));
    s
}

/// What one command printed and how it exited (`None` when it did not run).
fn outcome(log: &Path, i: usize) -> Option<(i32, String, String)> {
    let rc = std::fs::read_to_string(log.join(format!("{i}.rc"))).ok()?;
    let read =
        |ext: &str| std::fs::read_to_string(log.join(format!("{i}.{ext}"))).unwrap_or_default();
    Some((rc.trim().parse().unwrap_or(-1), read("out"), read("err")))
}

/// Runs one stretch of commands (between server starts) in one `bash`; panics with
/// the first command whose exit code is not the one the README states.
fn run_stretch(
    stretch: &[(usize, &ReadmeCommand)],
    work: &Path,
    log: &Path,
    path: &std::ffi::OsStr,
    env: &[(&str, &str)],
    server: Option<&Server>,
) {
    let server_log = || server.map(Server::log).unwrap_or_default();
    let script_path = log.join("stretch.sh");
    std::fs::write(&script_path, script(stretch, log)).unwrap();
    let mut bash = Command::new("bash");
    bash.arg(&script_path)
        .current_dir(work)
        .env("PATH", path)
        .env_remove("LEXECON_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        bash.env(k, v);
    }
    let mut child = bash.spawn().expect("bash");
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let running = stretch
                .iter()
                .find(|(i, c)| matches!(c.step, Step::Run { .. }) && outcome(log, *i).is_none());
            panic!(
                "the README tour hung for 10 minutes at {running:?}\nserver log:\n{}",
                server_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.success() {
        return;
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut stderr);
    }
    for (i, c) in stretch {
        let Step::Run { expect } = c.step else {
            continue;
        };
        match outcome(log, *i) {
            Some((rc, _, _)) if rc == expect => {}
            Some((rc, out, err)) => panic!(
                "README.md line {}: `{}` exited {rc}, the README says {expect}\n\
                 stdout:\n{out}\nstderr:\n{err}\nserver log:\n{}",
                c.line,
                c.text,
                server_log()
            ),
            None => panic!(
                "README.md line {}: `{}` did not run; bash said ({status}): {stderr}",
                c.line, c.text
            ),
        }
    }
    panic!("the tour script failed ({status}): {stderr}");
}

/// Runs the README's commands in a fresh directory with `env`.
fn run_tour(env: &[(&str, &str)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let grpcurl = crate::grpcurl();
    let wants_python = readme_commands(
        &readme,
        Have {
            grpcurl: true,
            python: true,
        },
    )
    .iter()
    .any(|c| is_python(&c.text));
    let python = if wants_python {
        python_env(&root)
    } else {
        None
    };
    let commands = readme_commands(
        &readme,
        Have {
            grpcurl: grpcurl.is_some(),
            python: python.is_some(),
        },
    );
    assert!(
        commands.iter().any(|c| c.step == Step::StartServer),
        "the README no longer starts the server with `cargo run ... server`"
    );
    assert!(
        commands
            .iter()
            .filter(|c| matches!(c.step, Step::Run { .. }))
            .count()
            >= 10,
        "the README tour has fewer than 10 commands: {commands:#?}"
    );
    for c in &commands {
        if let Step::Skip(why) = c.step {
            eprintln!("README.md line {}: skipped ({why}): {}", c.line, c.text);
        }
    }

    let work = tempfile::tempdir().unwrap();
    let log = tempfile::tempdir().unwrap();
    copy_dir(&root.join("examples"), &work.path().join("examples"));
    copy_dir(
        &root.join("clients/python"),
        &work.path().join("clients/python"),
    );
    let tools = tempfile::tempdir().unwrap();
    if let Some(grpcurl) = &grpcurl {
        std::os::unix::fs::symlink(grpcurl, tools.path().join("grpcurl")).unwrap();
    }
    let bin_dir = lexecon_bin().parent().unwrap().to_path_buf();
    let mut path: Vec<PathBuf> = vec![bin_dir];
    path.extend(python.as_ref().map(|p| p.bin.clone()));
    path.push(tools.path().to_path_buf());
    if let Some(old) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&old));
    }
    let path = std::env::join_paths(path).unwrap();
    let python_vars = python.as_ref().map(PythonEnv::vars).unwrap_or_default();
    let env: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain(python_vars.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    let env = env.as_slice();

    let _ports = default_ports();
    let indexed: Vec<(usize, &ReadmeCommand)> = commands.iter().enumerate().collect();
    let mut server: Option<Server> = None;
    let mut stretch: Vec<(usize, &ReadmeCommand)> = Vec::new();
    for (i, c) in &indexed {
        if c.step == Step::StartServer {
            run_stretch(
                &stretch,
                work.path(),
                log.path(),
                &path,
                env,
                server.as_ref(),
            );
            stretch.clear();
            assert!(
                server.is_none(),
                "README.md line {}: a second server start",
                c.line
            );
            server = Some(Server::spawn(work.path(), &["server"], env));
        } else {
            stretch.push((*i, *c));
        }
    }
    run_stretch(
        &stretch,
        work.path(),
        log.path(),
        &path,
        env,
        server.as_ref(),
    );
    let server = server.expect("the README started no server");
    let server_output = server.log();

    // What the commands printed: secrets must not reach an exported ledger.
    let mut secrets = vec![admin_token(&work.path().join(".lexecon"))];
    let mut outputs = Vec::new();
    for (i, c) in &indexed {
        if let Some((rc, out, err)) = outcome(log.path(), *i) {
            for word in out
                .split(|ch: char| ch.is_whitespace() || ch == '"' || ch == ',')
                .chain(err.split(|ch: char| ch.is_whitespace() || ch == '"' || ch == ','))
            {
                if (word.starts_with("lxk_") || word.starts_with("lxc1.")) && word.len() > 12 {
                    secrets.push(word.to_owned());
                }
            }
            outputs.push((*c, rc, out, err));
        }
    }
    let mut exported = 0;
    for (c, _, _, _) in &outputs {
        let words: Vec<&str> = c.text.split_whitespace().collect();
        if words.starts_with(&["lexecon", "ledger", "export"]) {
            let out = words
                .windows(2)
                .find(|w| w[0] == "--out")
                .map(|w| w[1])
                .expect("ledger export --out DIR");
            let entries =
                std::fs::read_to_string(work.path().join(out).join("entries.jsonl")).unwrap();
            assert!(
                entries.contains("\"decision\""),
                "decisions are in the export"
            );
            for secret in &secrets {
                assert!(
                    !entries.contains(secret.as_str()),
                    "a secret the tour printed is in the exported ledger: {secret}"
                );
            }
            exported += 1;
        }
    }
    assert!(exported > 0, "the tour exports the ledger");
    // A refused claim says which actor was refused (and which key, when it made one).
    let mut key_name: Option<String> = None;
    for (c, rc, _, err) in &outputs {
        let words: Vec<&str> = c.text.split_whitespace().collect();
        let flag = |name: &str| {
            words
                .windows(2)
                .find(|w| w[0] == name)
                .map(|w| w[1].to_owned())
        };
        if words.contains(&"apikey") && words.contains(&"create") {
            key_name = flag("--name").or(key_name);
        }
        if words.contains(&"lexecon") && words.contains(&"decide") && *rc == 2 {
            let actor = flag("--actor").expect("a refused decide names --actor");
            assert!(
                err.contains(&actor),
                "README.md line {}: the refusal names {actor}: {err}",
                c.line
            );
            if let Some(name) = &key_name {
                assert!(
                    err.contains(name.as_str()),
                    "README.md line {}: the refusal names key {name}: {err}",
                    c.line
                );
            }
        }
    }
    assert!(
        outputs
            .iter()
            .any(|(c, rc, _, _)| c.text.contains("decide") && *rc == 2),
        "the tour shows a refused claim (a `lexecon decide` that exits 2)"
    );

    server.signal("TERM");
    let code = server.wait(Duration::from_secs(30));
    assert_eq!(
        code, 0,
        "the tour's server did not stop cleanly:\n{server_output}"
    );
}

/// The tour's Python: a fresh virtual environment whose `pip` installs offline from the
/// wheelhouse `.ci/install-python-client` keeps.
#[derive(Debug)]
struct PythonEnv {
    _dir: tempfile::TempDir,
    /// The environment itself.
    venv: PathBuf,
    /// Its `bin/`, put on `PATH` after `lexecon`'s directory.
    bin: PathBuf,
    /// Wheels of the client's pinned dependencies and build backend.
    wheelhouse: PathBuf,
}

impl PythonEnv {
    /// The variables that make `pip` and `python3` in the tour this environment's.
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VIRTUAL_ENV", self.venv.display().to_string()),
            ("PIP_NO_INDEX", "1".to_owned()),
            ("PIP_FIND_LINKS", self.wheelhouse.display().to_string()),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1".to_owned()),
            ("PYTHONDONTWRITEBYTECODE", "1".to_owned()),
        ]
    }
}

/// Makes the tour's Python environment; `None` (with the reason on stderr) when it cannot
/// be made outside CI. Under CI a failure fails the test.
fn python_env(root: &Path) -> Option<PythonEnv> {
    let fail = |why: String| {
        assert!(
            std::env::var_os("CI").is_none(),
            "the README tour's Python step must run under CI: {why}"
        );
        eprintln!("note: skipping the README tour's Python commands: {why}");
    };
    let out = Command::new("bash")
        .arg(root.join(".ci/install-python-client"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    if !out.status.success() {
        fail(format!(
            ".ci/install-python-client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
        return None;
    }
    let cache = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let wheelhouse = cache.join("wheelhouse");
    if !wheelhouse.is_dir() {
        fail(format!("no wheelhouse at {}", wheelhouse.display()));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            fail(format!(
                "python3 -m venv failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
            return None;
        }
        Err(e) => {
            fail(format!("cannot run python3: {e}"));
            return None;
        }
    }
    let bin = venv.join("bin");
    assert!(bin.join("python3").exists() && bin.join("pip").exists());
    Some(PythonEnv {
        _dir: dir,
        venv,
        bin,
        wheelhouse,
    })
}

#[test]
fn the_readme_tour_on_sqlite() {
    run_tour(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_on_postgres() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || run_tour(&[("LEXECON_DATABASE__URL", &url)]))
        .await
        .unwrap();
    drop(db);
}

#[test]
fn readme_commands_are_read_as_documented() {
    let readme = "\
text
```sh
cargo build --release -p lexecon-cli
cargo run --release -p lexecon-cli -- server
```
```sh
# 1. approved (exit 0)
lexecon decide --actor a \\
    --action b
# ...and a denied one exits 1, naming the relation.
lexecon decide --actor a --action delete:x

# a blank line ends what a comment says: exits 3

X=$(echo hi | tr a-z A-Z)
grpcurl -plaintext 127.0.0.1:50051 list
cargo xtask ci
pip install ./clients/python
python3 - <<'PY'
import lexecon
# not a comment of the tour

print(lexecon.__name__)
PY
echo done
```
```text
not run
```
";
    let none = Have {
        grpcurl: false,
        python: false,
    };
    let got: Vec<(usize, String, Step)> = readme_commands(readme, none)
        .into_iter()
        .map(|c| (c.line, c.text, c.step))
        .collect();
    let want = vec![
        (
            3,
            "cargo build --release -p lexecon-cli".to_owned(),
            Step::Skip("cargo build"),
        ),
        (
            4,
            "cargo run --release -p lexecon-cli -- server".to_owned(),
            Step::StartServer,
        ),
        (
            8,
            "lexecon decide --actor a --action b".to_owned(),
            Step::Run { expect: 0 },
        ),
        (
            11,
            "lexecon decide --actor a --action delete:x".to_owned(),
            Step::Run { expect: 1 },
        ),
        (
            15,
            "X=$(echo hi | tr a-z A-Z)".to_owned(),
            Step::Run { expect: 0 },
        ),
        (
            16,
            "grpcurl -plaintext 127.0.0.1:50051 list".to_owned(),
            Step::Skip("no grpcurl"),
        ),
        (
            17,
            "cargo xtask ci".to_owned(),
            Step::Skip("cargo xtask ci"),
        ),
        (
            18,
            "pip install ./clients/python".to_owned(),
            Step::Skip("no Python environment"),
        ),
        (
            19,
            "python3 - <<'PY'\nimport lexecon\n# not a comment of the tour\n\nprint(lexecon.__name__)\nPY"
                .to_owned(),
            Step::Skip("no Python environment"),
        ),
        (25, "echo done".to_owned(), Step::Run { expect: 0 }),
    ];
    assert_eq!(got, want);
    let all = Have {
        grpcurl: true,
        python: true,
    };
    let with_python = readme_commands(readme, all);
    assert_eq!(with_python[7].step, Step::Run { expect: 0 });
    assert_eq!(with_python[8].step, Step::Run { expect: 0 });
    assert_eq!(
        heredoc_terminator("cat <<-\"END\" >x"),
        Some("END".to_owned())
    );
    assert_eq!(heredoc_terminator("grep x <<< \"$y\""), None);
    assert_eq!(stated_exit("# refused (exit 2), naming the key"), Some(2));
    assert_eq!(stated_exit("# an exit is not a code"), None);
}

#[test]
fn the_readme_has_the_shape_the_tour_test_expects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = readme_commands(
        &readme,
        Have {
            grpcurl: true,
            python: true,
        },
    );
    let starts: Vec<_> = commands
        .iter()
        .filter(|c| c.step == Step::StartServer)
        .collect();
    assert_eq!(starts.len(), 1, "{commands:#?}");
    assert_eq!(
        starts[0].text,
        "cargo run --release -p lexecon-cli -- server"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.text == "cargo xtask ci" && c.step == Step::Skip("cargo xtask ci")),
        "{commands:#?}"
    );
    let expecting = |code: i32| {
        commands
            .iter()
            .filter(|c| c.step == Step::Run { expect: code })
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
    };
    assert!(
        expecting(1).iter().any(|t| t.starts_with("lexecon decide")),
        "a denied decision: {commands:#?}"
    );
    assert!(
        expecting(2).iter().any(|t| t.starts_with("lexecon decide")),
        "a refused claim: {commands:#?}"
    );
    assert!(
        commands.iter().any(|c| c.text.contains("apikey create")
            && c.text.contains("--role agent")
            && c.text.contains("--actor")),
        "an agent key bound to an actor: {commands:#?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.text.starts_with("lexecon init") || c.text.starts_with("lexecon server")),
        "the tour continues from the Set-up server: {commands:#?}"
    );
}
