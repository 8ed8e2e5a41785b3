//! Helpers for the end-to-end tests: find (and if needed build) the real `lexecon`
//! binary, run it, start a server as a child process on free ports, and talk to it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: failing loudly is the point"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lexecon_proto::v1::DecideRequest;
use lexecon_proto::v1::decision_service_client::DecisionServiceClient;
use tonic::transport::Channel;

/// The path of the `lexecon` binary of this workspace, built if it is missing or stale.
///
/// `cargo test --workspace` builds it before any test runs; running this crate alone
/// (`cargo test -p lexecon-e2e`) does not, so we ask cargo once per test binary. Cargo
/// does nothing when the binary is already up to date.
pub fn lexecon_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--package",
                "lexecon-cli",
                "--bin",
                "lexecon",
            ])
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "building lexecon failed: {status:?}"
        );
        let exe = std::env::current_exe().unwrap_or_default();
        // target/<profile>/deps/<test binary> -> target/<profile>/lexecon
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(PathBuf::from)
            .unwrap_or_default();
        let bin = profile_dir.join("lexecon");
        assert!(bin.exists(), "no lexecon binary at {}", bin.display());
        bin
    })
    .clone()
}

/// What a finished `lexecon` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `lexecon` with `args` in `dir` and waits for it.
pub fn lexecon(dir: &Path, args: &[&str]) -> Run {
    lexecon_env(dir, args, &[])
}

/// Runs `lexecon` with `args` and extra environment variables.
pub fn lexecon_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(lexecon_bin());
    cmd.args(args).current_dir(dir).env_remove("LEXECON_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(out) => out.into(),
        Err(err) => Run {
            code: -1,
            stdout: String::new(),
            stderr: format!("could not start lexecon: {err}"),
        },
    }
}

/// Runs `lexecon` with `args` and extra environment variables, writing `stdin` to its
/// standard input.
pub fn lexecon_stdin(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    use std::io::Write as _;
    let mut cmd = Command::new(lexecon_bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("LEXECON_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            return Run {
                code: -1,
                stdout: String::new(),
                stderr: format!("could not start lexecon: {err}"),
            };
        }
    };
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap().into()
}

/// A `lexecon server` child process; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// The bound gRPC address.
    pub grpc: SocketAddr,
    /// The bound metrics address.
    pub metrics: SocketAddr,
    /// Everything it printed on stderr so far is collected here by a thread.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `lexecon server --data-dir DIR` on free ports and waits until it serves.
    pub fn start(dir: &Path, data_dir: &str, env: &[(&str, &str)]) -> Server {
        Server::spawn(
            dir,
            &[
                "server",
                "--data-dir",
                data_dir,
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
            env,
        )
    }

    /// Runs `lexecon ARGS` (a `server` command line) in `dir` and waits until it
    /// prints the addresses it serves on.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(lexecon_bin());
        cmd.args(args)
            .current_dir(dir)
            .env_remove("LEXECON_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn lexecon server");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line
                        .strip_prefix("lexecon: serving gRPC and HTTP/JSON on ")
                        .or_else(|| line.strip_prefix("lexecon: serving gRPC on "))
                    {
                        let mut parts = rest.split(", metrics on http://");
                        // With TLS the address is followed by " (TLS only...)".
                        let grpc = parts.next().and_then(|s| {
                            s.split(' ')
                                .next()
                                .and_then(|a| a.parse::<SocketAddr>().ok())
                        });
                        let metrics = parts.next().and_then(|s| {
                            s.trim_end_matches("/metrics").parse::<SocketAddr>().ok()
                        });
                        if let (Some(g), Some(m)) = (grpc, metrics) {
                            let _ = tx.send((g, m));
                        }
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((grpc, metrics)) = rx.recv_timeout(Duration::from_millis(100)) {
                return Server {
                    child: Some(child),
                    grpc,
                    metrics,
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "server exited with {status} before serving:\n{}",
                    log.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server did not start within 60s:\n{}",
                log.lock().unwrap()
            );
        }
    }

    /// `http://ADDR` of the gRPC listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// What the server printed on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal (by number) to the server.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Waits for the server to exit; returns its exit code (-1 when killed by a signal).
    pub fn wait(mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A request with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Calls the unary RPC at `path` (`/package.Service/Method`) with `message`, with
/// `authorization: Bearer <token>` when a token is given. One function for every RPC,
/// so a test can name methods as data (as the `.proto` files do).
pub async fn unary<Req, Resp>(
    channel: &Channel,
    path: &str,
    message: Req,
    token: Option<&str>,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("channel not ready: {e}")))?;
    let request = match token {
        Some(token) => authed(message, token),
        None => tonic::Request::new(message),
    };
    let path: tonic::codegen::http::uri::PathAndQuery = path.parse().unwrap();
    let codec: tonic_prost::ProstCodec<Req, Resp> = tonic_prost::ProstCodec::default();
    grpc.unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`; returns
/// the value and how long it took, or `None` when the time ran out.
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The request the starter policy approves.
pub fn approved_request() -> DecideRequest {
    DecideRequest {
        actor: "ai_agent:customer_service".into(),
        proposed_action: "read:customer_data".into(),
        tool: "database_query".into(),
        data_classes: vec!["pii".into()],
        user_intent: "answer a ticket".into(),
        ..Default::default()
    }
}

/// An LLM call the starter policy approves (`ai_agent:assistant`, `llm:chat` on
/// `openai_api`) with a priced model; `user_id` empty means anonymous.
pub fn llm_request(user_id: &str, input_tokens: u64, max_output_tokens: u64) -> DecideRequest {
    DecideRequest {
        actor: "ai_agent:assistant".into(),
        proposed_action: "llm:chat".into(),
        tool: "openai_api".into(),
        llm: Some(lexecon_proto::v1::LlmUsage {
            model: "gpt-4o-mini".into(),
            user_id: user_id.into(),
            roles: vec![],
            estimated_input_tokens: input_tokens,
            max_output_tokens,
        }),
        ..Default::default()
    }
}

/// A decision client.
pub async fn decision_client(server: &Server) -> DecisionServiceClient<Channel> {
    DecisionServiceClient::new(server.channel().await)
}

/// The admin token of an initialised data directory.
pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Whether slow tests were asked for (`RUN_SLOW_TESTS=1`; CI sets it).
pub fn slow_tests() -> bool {
    std::env::var("RUN_SLOW_TESTS").is_ok_and(|v| v == "1")
}
