//! Helpers shared by the end-to-end test modules: principals, ledger reading, policies.

use std::path::{Path, PathBuf};
use std::process::Command;

use lexecon_e2e::*;
use lexecon_proto::v1::auth_service_client::AuthServiceClient;
use lexecon_proto::v1::{
    CreateApiKeyRequest, CreateUserRequest, DecideRequest, DecideResponse, LedgerEntry,
    LoginRequest, Role, WhoAmIRequest, WhoAmIResponse,
};

/// A password good enough for `CreateUser` (at least 12 characters).
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// An API key as `CreateApiKey` returned it.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) key_id: String,
    pub(crate) api_key: String,
    pub(crate) ledger_index: u64,
}

/// Creates an API key through `AuthService/CreateApiKey` with the admin token.
pub(crate) async fn create_key(
    server: &Server,
    admin: &str,
    name: &str,
    role: Role,
    actors: &[&str],
    llm_roles: &[&str],
) -> Key {
    let mut auth = AuthServiceClient::new(server.channel().await);
    let created = auth
        .create_api_key(authed(
            CreateApiKeyRequest {
                name: name.to_owned(),
                role: role as i32,
                expires_at: None,
                actors: actors.iter().map(|a| (*a).to_owned()).collect(),
                llm_roles: llm_roles.iter().map(|r| (*r).to_owned()).collect(),
            },
            admin,
        ))
        .await
        .unwrap_or_else(|e| panic!("CreateApiKey {name}: {e:?}"))
        .into_inner();
    assert!(created.api_key.starts_with("lxk_"), "{created:?}");
    Key {
        key_id: created.key_id,
        api_key: created.api_key,
        ledger_index: created.ledger_index,
    }
}

/// An agent key bound to `actors`, with no LLM roles.
pub(crate) async fn agent_key(server: &Server, admin: &str, name: &str, actors: &[&str]) -> Key {
    create_key(server, admin, name, Role::Agent, actors, &[]).await
}

/// Creates a user whose role needs no MFA (viewer, auditor) and logs them in; returns
/// the session token.
pub(crate) async fn user_session(server: &Server, admin: &str, name: &str, role: Role) -> String {
    let mut auth = AuthServiceClient::new(server.channel().await);
    auth.create_user(authed(
        CreateUserRequest {
            username: name.to_owned(),
            password: PASSWORD.to_owned(),
            role: role as i32,
        },
        admin,
    ))
    .await
    .unwrap_or_else(|e| panic!("CreateUser {name}: {e:?}"));
    let login = auth
        .login(tonic::Request::new(LoginRequest {
            username: name.to_owned(),
            password: PASSWORD.to_owned(),
        }))
        .await
        .unwrap_or_else(|e| panic!("Login {name}: {e:?}"))
        .into_inner();
    assert!(!login.mfa_required, "{name} ({role:?}) should need no MFA");
    login.session.expect("a session").token
}

/// `AuthService/WhoAmI` with `token`.
pub(crate) async fn who_am_i(
    server: &Server,
    token: &str,
) -> Result<WhoAmIResponse, tonic::Status> {
    AuthServiceClient::new(server.channel().await)
        .who_am_i(authed(WhoAmIRequest {}, token))
        .await
        .map(tonic::Response::into_inner)
}

/// `DecisionService/Decide` with `token`.
pub(crate) async fn decide(
    server: &Server,
    token: &str,
    request: DecideRequest,
) -> Result<DecideResponse, tonic::Status> {
    decision_client(server)
        .await
        .decide(authed(request, token))
        .await
        .map(tonic::Response::into_inner)
}

/// The approved request of the starter policy for `actor`.
pub(crate) fn request_for(actor: &str) -> DecideRequest {
    DecideRequest {
        actor: actor.to_owned(),
        ..approved_request()
    }
}

/// An entry's payload as JSON.
pub(crate) fn payload(entry: &LedgerEntry) -> serde_json::Value {
    serde_json::from_str(&entry.payload_json)
        .unwrap_or_else(|e| panic!("entry {} has no JSON payload: {e}", entry.index))
}

/// The payloads of every `auth_event` entry, in ledger order.
pub(crate) async fn auth_events(server: &Server, token: &str) -> Vec<serde_json::Value> {
    crate::entries_of_kind(server, token, "auth_event")
        .await
        .iter()
        .map(payload)
        .collect()
}

/// How many `decision` entries the ledger holds.
pub(crate) async fn decision_count(server: &Server, token: &str) -> usize {
    crate::entries_of_kind(server, token, "decision")
        .await
        .len()
}

/// The environment that points a command or server at a PostgreSQL database.
pub(crate) fn pg_env(url: &str) -> Vec<(&'static str, String)> {
    vec![("LEXECON_DATABASE__URL", url.to_owned())]
}

/// `env` as the borrowed pairs the process helpers take.
pub(crate) fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `lexecon init --data-dir data` in a fresh directory, with `env`.
pub(crate) fn init_dir_with(env: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = lexecon_env(dir.path(), &["init", "--data-dir", "data"], env);
    assert_eq!(run.code, 0, "{run:?}");
    dir
}

/// How ledger entries name a command run on this machine by this OS user, when the
/// environment says who that is (`local:<os user>`).
pub(crate) fn local_principal() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .map(|u| format!("local:{u}"))
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The starter policy (as `init` wrote it into `data_dir`) with another version string,
/// so that it hashes differently.
pub(crate) fn starter_with_version(data_dir: &Path, version: &str) -> String {
    let starter = std::fs::read_to_string(data_dir.join("policy.toml")).unwrap();
    let changed = starter.replacen(
        "version = \"1.0.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    assert_ne!(
        changed, starter,
        "the starter policy has no version = \"1.0.0\""
    );
    changed
}

/// `lexecon policy hash FILE`: the version hash as lowercase hex.
pub(crate) fn policy_hash(dir: &Path, file: &Path) -> String {
    let run = lexecon(dir, &["policy", "hash", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout.trim().to_owned()
}

/// The `lexecon_actor_refusals_total` sample for `key` on the metrics page, if any.
pub(crate) fn refusal_metric(metrics: &str, key: &str) -> Option<u64> {
    let prefix = format!("lexecon_actor_refusals_total{{key=\"{key}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Asserts `status` is `code` and its message names every one of `needles`.
pub(crate) fn assert_status(status: &tonic::Status, code: tonic::Code, needles: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "the {code:?} message does not name {needle:?}: {:?}",
            status.message()
        );
    }
}

/// Runs a `.ci/install-*` script and returns the path it printed; `None` (with the
/// reason on stderr) when it failed outside CI. Under CI a failed install fails the test.
pub(crate) fn install(script: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join(".ci").join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    if out.status.success() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        return Some(PathBuf::from(path));
    }
    let why = format!(
        ".ci/{script} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping the step that needs it: {why}");
    None
}
