//! `lexecon user ...` and `lexecon apikey ...`: people and keys, on the local database
//! (through an embedded engine, ledgered as `local:<os user>`) or, with `--server`,
//! through a running server's AuthService (ledgered as the token's principal).

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use lexecon_auth::{NewApiKey, Role};
use lexecon_core::{Clock, SystemClock, Timestamp};
use lexecon_engine::config::is_initialised;
use lexecon_engine::{Caller, Engine};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::auth_service_client::AuthServiceClient;

use lexecon_server::convert::role_to_pb;

use super::client::{ServerArgs, authed, runtime, status_error};
use super::service::LocalArgs;
use crate::Verdict;

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

/// `lexecon user ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user (on the local database, or with --server through a server).
    #[command(after_long_help = "\
The password is read from the first line of standard input with --password-stdin;
otherwise a random one is generated and printed once. Roles: viewer, auditor,
compliance_officer, admin (agent is for API keys). admin and compliance_officer must
enroll in TOTP MFA before they get a full session. The creation is a ledger entry
naming who did it: local:<os user> on the local database, the token's principal
with --server.

Examples:
  echo 'correct horse battery staple' | lexecon user add alice --role auditor --password-stdin
  lexecon user add bob --role viewer --server http://10.0.0.5:50051 --token \"$ADMIN_TOKEN\"")]
    Add {
        /// The user name.
        name: String,
        /// The role.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// `lexecon apikey ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Create an API key; it is printed once and stored only as a hash.
    #[command(after_long_help = "\
A key of role agent speaks only for the actors its --actor globs match (full-match
globs, the glob rules of policies: * any run of characters, ? one character): a Decide
for another actor is refused. A key bound to exactly one literal actor may leave the
actor out. --llm-role lists the LLM roles its requests may name (llm.roles).

Works on the local database, or with --server through a running server.

Examples:
  lexecon apikey create --name support-bot --role agent --actor ai_agent:customer_service
  lexecon apikey create --name fleet --role agent --actor 'ai_agent:fleet_*' --expires-in-days 90
  lexecon apikey create --name ci-admin --role admin --json")]
    Create {
        /// A name for the key (ledger entries call it key:<name>).
        #[arg(long)]
        name: String,
        /// The role: agent for services that ask for decisions; viewer, auditor,
        /// compliance_officer or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// An actor glob the key may speak for (repeat for several; required for agent).
        #[arg(long = "actor", value_name = "GLOB")]
        actors: Vec<String>,
        /// An LLM role the key's requests may name (repeat for several).
        #[arg(long = "llm-role", value_name = "ROLE")]
        llm_roles: Vec<String>,
        /// Expire the key after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Replace the actors (and LLM roles) an existing key may speak for.
    #[command(after_long_help = "\
Takes effect at once on the server that makes the change and within 2 seconds on
every other server. Keys created before bindings existed speak for no actor until
they are bound this way.

Example:
  lexecon apikey bind key_0123abcd --actor ai_agent:customer_service")]
    Bind {
        /// The key id (key_...).
        key_id: String,
        /// An actor glob the key may speak for (repeat for several).
        #[arg(long = "actor", value_name = "GLOB", required = true)]
        actors: Vec<String>,
        /// An LLM role the key's requests may name (repeat for several).
        #[arg(long = "llm-role", value_name = "ROLE")]
        llm_roles: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Revoke a key: refused at once on the server that revokes it, within 2 seconds on
    /// every other server.
    Revoke {
        /// The key id (key_...).
        key_id: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// Runs `work` on an engine opened on the local database, then shuts it down.
async fn with_local_engine<T>(
    target: &ServerArgs,
    work: impl AsyncFnOnce(&Engine, &Caller) -> Result<T>,
) -> Result<T> {
    let local = LocalArgs {
        data_dir: target.data_dir.clone(),
        config: target.config.clone(),
    };
    if local.config.is_none() && !is_initialised(&local.data_dir) {
        bail!(
            "{} is not initialised; run `lexecon init --data-dir {}` first (or pass --server)",
            local.data_dir.display(),
            local.data_dir.display()
        );
    }
    let engine = Engine::open_local(local.load()?, Arc::new(SystemClock)).await?;
    let result = work(&engine, &Caller::local()).await;
    engine.shutdown().await?;
    result
}

async fn auth_client(
    target: &ServerArgs,
) -> Result<(AuthServiceClient<tonic::transport::Channel>, String)> {
    let (channel, bearer) = target.connect().await?;
    Ok((AuthServiceClient::new(channel), bearer))
}

pub(crate) fn run_user(cmd: &UserCommand) -> Result<Verdict> {
    let UserCommand::Add {
        name,
        role,
        password_stdin,
        json,
        target,
    } = cmd;
    let (password, generated) = if *password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (random_password(), true)
    };
    let (user_id, mfa_required) = runtime()?.block_on(async {
        if target.server.is_some() {
            let (mut client, bearer) = auth_client(target).await?;
            let r = client
                .create_user(authed(
                    pb::CreateUserRequest {
                        username: name.clone(),
                        password: password.clone(),
                        role: role_to_pb(*role) as i32,
                    },
                    &bearer,
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            anyhow::Ok((r.user_id, r.mfa_required))
        } else {
            with_local_engine(target, async |engine, caller| {
                let (created, _) = engine.create_user(caller, name, &password, *role).await?;
                Ok((created.user_id, created.mfa_required))
            })
            .await
        }
    })?;
    if *json {
        let v = serde_json::json!({
            "user_id": user_id,
            "username": name,
            "role": role.to_string(),
            "mfa_required": mfa_required,
            "password": generated.then_some(&password),
        });
        println!("{v}");
        return Ok(Verdict::Yes);
    }
    println!("created user {name} ({role}) with id {user_id}");
    if generated {
        println!("password (shown once): {password}");
    }
    if mfa_required {
        println!("this role requires MFA: log in, then call AuthService/EnrollMfa");
    }
    Ok(Verdict::Yes)
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .filter_map(|_| {
            ALPHABET
                .get(rng.gen_range(0..ALPHABET.len()))
                .copied()
                .map(char::from)
        })
        .collect()
}

/// What a created key reports.
struct Created {
    key_id: String,
    api_key: String,
    ledger_index: u64,
}

pub(crate) fn run_apikey(cmd: &ApiKeyCommand) -> Result<Verdict> {
    match cmd {
        ApiKeyCommand::Create {
            name,
            role,
            actors,
            llm_roles,
            expires_in_days,
            json,
            target,
        } => {
            if *role == Role::Agent && actors.is_empty() {
                bail!(
                    "an agent key must be bound to the actors it speaks for: pass --actor GLOB \
                     (for example --actor ai_agent:support_bot)"
                );
            }
            let expires =
                expires_in_days.map(|d| SystemClock.now().add_secs(i64::from(d) * 86_400));
            let key = NewApiKey {
                name: name.clone(),
                role: *role,
                expires_at: expires,
                actors: actors.clone(),
                llm_roles: llm_roles.clone(),
                created_by: None,
            };
            let created = runtime()?.block_on(create_key(target, key))?;
            if *json {
                let v = serde_json::json!({
                    "key_id": created.key_id,
                    "api_key": created.api_key,
                    "name": name,
                    "role": role.to_string(),
                    "actors": actors,
                    "llm_roles": llm_roles,
                    "expires_at": expires.map(Timestamp::to_rfc3339),
                    "ledger_index": created.ledger_index,
                });
                println!("{v}");
            } else {
                println!("created API key {} ({name}, {role})", created.key_id);
                if !actors.is_empty() {
                    println!("speaks for: {}", actors.join(", "));
                }
                println!(
                    "key (shown once, stored only as a hash): {}",
                    created.api_key
                );
            }
            Ok(Verdict::Yes)
        }
        ApiKeyCommand::Bind {
            key_id,
            actors,
            llm_roles,
            json,
            target,
        } => {
            let (updated, ledger_index) = runtime()?.block_on(async {
                if target.server.is_some() {
                    let (mut client, bearer) = auth_client(target).await?;
                    let r = client
                        .set_api_key_actors(authed(
                            pb::SetApiKeyActorsRequest {
                                key_id: key_id.clone(),
                                actors: actors.clone(),
                                llm_roles: llm_roles.clone(),
                            },
                            &bearer,
                        )?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    anyhow::Ok((r.updated, r.ledger_index))
                } else {
                    with_local_engine(target, async |engine, caller| {
                        Ok(engine
                            .set_api_key_actors(caller, key_id, actors.clone(), llm_roles.clone())
                            .await?)
                    })
                    .await
                }
            })?;
            report(
                *json,
                updated,
                ledger_index,
                || format!("{key_id} now speaks for: {}", actors.join(", ")),
                || format!("no live key {key_id} (unknown or revoked)"),
            )
        }
        ApiKeyCommand::Revoke {
            key_id,
            json,
            target,
        } => {
            let (revoked, ledger_index) = runtime()?.block_on(async {
                if target.server.is_some() {
                    let (mut client, bearer) = auth_client(target).await?;
                    let r = client
                        .revoke_api_key(authed(
                            pb::RevokeApiKeyRequest {
                                key_id: key_id.clone(),
                            },
                            &bearer,
                        )?)
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    anyhow::Ok((r.revoked, 0))
                } else {
                    with_local_engine(target, async |engine, caller| {
                        Ok(engine.revoke_api_key(caller, key_id).await?)
                    })
                    .await
                }
            })?;
            report(
                *json,
                revoked,
                ledger_index,
                || format!("revoked {key_id}"),
                || format!("no live key {key_id} (unknown or already revoked)"),
            )
        }
    }
}

/// Prints a change's result; a change that did not happen is the negative answer (1).
fn report(
    json: bool,
    changed: bool,
    ledger_index: u64,
    yes: impl FnOnce() -> String,
    no: impl FnOnce() -> String,
) -> Result<Verdict> {
    if json {
        println!(
            "{}",
            serde_json::json!({"changed": changed, "ledger_index": ledger_index})
        );
    } else if changed {
        println!("{}", yes());
    } else {
        println!("{}", no());
    }
    Ok(if changed { Verdict::Yes } else { Verdict::No })
}

async fn create_key(target: &ServerArgs, key: NewApiKey) -> Result<Created> {
    if target.server.is_some() {
        let (mut client, bearer) = auth_client(target).await?;
        let r = client
            .create_api_key(authed(
                pb::CreateApiKeyRequest {
                    name: key.name,
                    role: role_to_pb(key.role) as i32,
                    expires_at: key
                        .expires_at
                        .map(|t| lexecon_proto::prost_types::Timestamp {
                            seconds: t.unix_secs(),
                            nanos: 0,
                        }),
                    actors: key.actors,
                    llm_roles: key.llm_roles,
                },
                &bearer,
            )?)
            .await
            .map_err(status_error)?
            .into_inner();
        return Ok(Created {
            key_id: r.key_id,
            api_key: r.api_key,
            ledger_index: r.ledger_index,
        });
    }
    with_local_engine(target, async |engine, caller| {
        let c = engine.create_api_key(caller, key).await?;
        Ok(Created {
            key_id: c.key_id,
            api_key: c.api_key.expose().to_owned(),
            ledger_index: c.ledger_index,
        })
    })
    .await
}
