//! The engine as the one door (issue 15): the same behaviour from every entry point, and
//! run-time state (policy, revocations, limits, keys) shared through the database.

use std::time::Duration;

use lexecon_e2e::*;
use lexecon_proto::v1::auth_service_client::AuthServiceClient;
use lexecon_proto::v1::budget_service_client::BudgetServiceClient;
use lexecon_proto::v1::ledger_service_client::LedgerServiceClient;
use lexecon_proto::v1::policy_service_client::PolicyServiceClient;
use lexecon_proto::v1::{
    AuthorizeRequest, CreateApiKeyRequest, CreateUserRequest, DecideRequest, EnrollMfaRequest,
    GetActivePolicyRequest, GetLimitsRequest, LedgerEntry, ListPolicyVersionsRequest,
    LoadPolicyRequest, LoginRequest, Outcome, ReleaseRequest, RevokeApiKeyRequest,
    RevokeTokenRequest, Role, SetApiKeyActorsRequest, SettleRequest, UpdateLimitsRequest,
    VerifyRequest, VerifyTokenRequest,
};
use tonic::Code;

use crate::common::{
    PASSWORD, agent_key, assert_status, auth_events, decide, decision_count, env_refs, hex,
    init_dir_with, local_principal, payload, pg_env, policy_hash, request_for,
    starter_with_version, who_am_i,
};

async fn active_hash(server: &Server, token: &str) -> Vec<u8> {
    PolicyServiceClient::new(server.channel().await)
        .get_active_policy(authed(GetActivePolicyRequest {}, token))
        .await
        .unwrap()
        .into_inner()
        .policy
        .expect("an active policy")
        .hash
}

async fn load_policy(server: &Server, token: &str, source: &str) -> Vec<u8> {
    let loaded = PolicyServiceClient::new(server.channel().await)
        .load_policy(authed(
            LoadPolicyRequest {
                source: source.to_owned(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(loaded.loaded, "{loaded:?}");
    loaded.policy.expect("the loaded version").hash
}

async fn limits_toml(server: &Server, token: &str) -> String {
    BudgetServiceClient::new(server.channel().await)
        .get_limits(authed(GetLimitsRequest::default(), token))
        .await
        .unwrap()
        .into_inner()
        .config_toml
}

fn stop(server: Server) {
    server.signal("TERM");
    assert_eq!(
        server.wait(Duration::from_secs(30)),
        0,
        "graceful shutdown exits 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_api_key_is_refused_on_the_very_next_call() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = agent_key(
        &server,
        &admin,
        "short-lived",
        &["ai_agent:customer_service"],
    )
    .await;
    who_am_i(&server, &bot.api_key).await.unwrap();
    decide(&server, &bot.api_key, approved_request())
        .await
        .unwrap();
    let revoked = AuthServiceClient::new(server.channel().await)
        .revoke_api_key(authed(
            RevokeApiKeyRequest {
                key_id: bot.key_id.clone(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked, "{revoked:?}");
    let next = who_am_i(&server, &bot.api_key).await.unwrap_err();
    assert_eq!(
        next.code(),
        Code::Unauthenticated,
        "the very next call: {next:?}"
    );
    let next = decide(&server, &bot.api_key, approved_request())
        .await
        .unwrap_err();
    assert_eq!(next.code(), Code::Unauthenticated, "{next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zero_config_start_and_init_put_the_admin_key_in_postgres() {
    // `lexecon server` on an empty directory.
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let env = pg_env(&db.url);
    let env = env_refs(&env);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "data", &env);
    let admin = admin_token(&dir.path().join("data"));
    let me = who_am_i(&server, &admin)
        .await
        .unwrap_or_else(|e| panic!("admin.token of a zero-config start on PostgreSQL: {e:?}"));
    assert_eq!(
        (me.role(), me.principal.as_str()),
        (Role::Admin, "key:admin"),
        "{me:?}"
    );
    decide(&server, &admin, approved_request()).await.unwrap();
    drop(server);
    let verify = lexecon(dir.path(), &["verify-ledger", "--database-url", &db.url]);
    assert_eq!(verify.code, 0, "{verify:?}");

    // `lexecon init`, then the server.
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let env = pg_env(&db.url);
    let env = env_refs(&env);
    let dir = init_dir_with(&env);
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &env);
    let me = who_am_i(&server, &admin)
        .await
        .unwrap_or_else(|e| panic!("admin.token of `lexecon init` on PostgreSQL: {e:?}"));
    assert_eq!(me.principal, "key:admin", "{me:?}");
    let events = auth_events(&server, &admin).await;
    let created = events
        .iter()
        .find(|e| e["event"] == "api_key_created")
        .unwrap_or_else(|| panic!("init's admin key is not in the PostgreSQL ledger: {events:?}"));
    assert_eq!(created["role"], "admin", "{created}");
}

/// The `auth_event` entries (index and payload).
async fn auth_entries(server: &Server, token: &str) -> Vec<(u64, serde_json::Value)> {
    crate::entries_of_kind(server, token, "auth_event")
        .await
        .iter()
        .map(|e| (e.index, payload(e)))
        .collect()
}

/// Asserts that exactly one `auth_event` was added since `before` entries, of `event`
/// (when given) and by `by` (a prefix when it ends in `:`); returns its index and
/// payload.
async fn one_more(
    server: &Server,
    token: &str,
    before: usize,
    door: &str,
    event: Option<&str>,
    by: &str,
) -> (u64, serde_json::Value) {
    let entries = auth_entries(server, token).await;
    let added = entries.get(before..).unwrap_or_default();
    assert_eq!(
        added.len(),
        1,
        "{door}: expected one auth_event, got {}: {added:?}",
        added.len()
    );
    let (index, payload) = added[0].clone();
    if let Some(event) = event {
        assert_eq!(payload["event"], event, "{door}: {payload}");
    }
    let author = payload["by"].as_str().unwrap_or_default();
    if by.ends_with(':') {
        assert!(author.starts_with(by), "{door}: by {by}...: {payload}");
    } else {
        assert_eq!(author, by, "{door}: {payload}");
    }
    (index, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_key_and_mfa_change_is_one_auth_event_whatever_the_door() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let url = server.url();
    // `local:<os user>`; just the `local:` prefix when the environment does not say.
    let local = local_principal().unwrap_or_else(|| "local:".to_owned());
    let local = local.as_str();
    let mut secrets = vec![admin.clone(), PASSWORD.to_owned()];

    // init: the admin key.
    let entries = auth_entries(&server, &admin).await;
    let (_, init) = entries.first().cloned().expect("init's auth_event");
    assert_eq!(init["event"], "api_key_created", "{init}");
    assert_eq!(init["role"], "admin", "{init}");
    let author = init["by"].as_str().unwrap_or_default();
    assert!(
        author.starts_with(local),
        "init's admin key is by {local}...: {init}"
    );
    let mut count = entries.len();

    // lexecon user add, on the database and through the server.
    for (name, role, server_args) in [
        ("vera", "viewer", vec![]),
        ("walt", "auditor", vec!["--server", url.as_str()]),
    ] {
        let mut args = vec![
            "user",
            "add",
            name,
            "--role",
            role,
            "--data-dir",
            "data",
            "--password-stdin",
        ];
        args.extend(server_args.iter().copied());
        let run = lexecon_stdin(dir.path(), &args, &[], &format!("{PASSWORD}\n"));
        assert_eq!(run.code, 0, "{run:?}");
        let by = if server_args.is_empty() {
            local
        } else {
            "key:admin"
        };
        let door = format!("lexecon {}", args.join(" "));
        let (_, event) = one_more(&server, &admin, count, &door, Some("user_created"), by).await;
        assert!(event.to_string().contains(name), "{door}: {event}");
        count += 1;
    }

    // lexecon apikey create and bind, on the database and through the server.
    for (name, server_args) in [
        ("cli-local", vec![]),
        ("cli-remote", vec!["--server", url.as_str()]),
    ] {
        let by = if server_args.is_empty() {
            local
        } else {
            "key:admin"
        };
        let mut args = vec![
            "apikey",
            "create",
            "--name",
            name,
            "--role",
            "agent",
            "--actor",
            "ai_agent:customer_service",
            "--json",
            "--data-dir",
            "data",
        ];
        args.extend(server_args.iter().copied());
        let run = lexecon(dir.path(), &args);
        assert_eq!(run.code, 0, "{run:?}");
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        secrets.push(json["api_key"].as_str().unwrap().to_owned());
        let key_id = json["key_id"].as_str().unwrap().to_owned();
        let door = format!("lexecon {}", args.join(" "));
        let (_, event) = one_more(&server, &admin, count, &door, Some("api_key_created"), by).await;
        assert_eq!(
            event["actors"],
            serde_json::json!(["ai_agent:customer_service"]),
            "{door}: {event}"
        );
        count += 1;

        let mut args = vec![
            "apikey",
            "bind",
            &key_id,
            "--actor",
            "ai_agent:assistant",
            "--data-dir",
            "data",
        ];
        args.extend(server_args.iter().copied());
        let run = lexecon(dir.path(), &args);
        assert_eq!(run.code, 0, "{run:?}");
        let door = format!("lexecon {}", args.join(" "));
        let (_, event) = one_more(&server, &admin, count, &door, Some("api_key_bound"), by).await;
        assert!(
            event.to_string().contains("ai_agent:assistant"),
            "{door}: {event}"
        );
        count += 1;
    }

    // gRPC: CreateApiKey, SetApiKeyActors, RevokeApiKey, CreateUser, EnrollMfa.
    let mut auth = AuthServiceClient::new(server.channel().await);
    let created = auth
        .create_api_key(authed(
            CreateApiKeyRequest {
                name: "grpc-bot".into(),
                role: Role::Agent as i32,
                actors: vec!["ai_agent:customer_service".into()],
                llm_roles: vec!["support".into()],
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    secrets.push(created.api_key.clone());
    let (index, event) = one_more(
        &server,
        &admin,
        count,
        "CreateApiKey",
        Some("api_key_created"),
        "key:admin",
    )
    .await;
    assert_eq!(
        index, created.ledger_index,
        "CreateApiKeyResponse.ledger_index names the entry"
    );
    assert_eq!(
        event["actors"],
        serde_json::json!(["ai_agent:customer_service"]),
        "{event}"
    );
    count += 1;
    let bound = auth
        .set_api_key_actors(authed(
            SetApiKeyActorsRequest {
                key_id: created.key_id.clone(),
                actors: vec!["ai_agent:assistant".into()],
                llm_roles: vec![],
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let (index, _) = one_more(
        &server,
        &admin,
        count,
        "SetApiKeyActors",
        Some("api_key_bound"),
        "key:admin",
    )
    .await;
    assert_eq!(index, bound.ledger_index);
    count += 1;
    auth.revoke_api_key(authed(
        RevokeApiKeyRequest {
            key_id: created.key_id.clone(),
        },
        &admin,
    ))
    .await
    .unwrap();
    one_more(
        &server,
        &admin,
        count,
        "RevokeApiKey",
        Some("api_key_revoked"),
        "key:admin",
    )
    .await;
    count += 1;
    auth.create_user(authed(
        CreateUserRequest {
            username: "carol".into(),
            password: PASSWORD.into(),
            role: Role::ComplianceOfficer as i32,
        },
        &admin,
    ))
    .await
    .unwrap();
    one_more(
        &server,
        &admin,
        count,
        "CreateUser",
        Some("user_created"),
        "key:admin",
    )
    .await;
    let session = auth
        .login(tonic::Request::new(LoginRequest {
            username: "carol".into(),
            password: PASSWORD.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .session
        .expect("an enrollment session")
        .token;
    let count = auth_entries(&server, &admin).await.len();
    let enrolled = auth
        .enroll_mfa(authed(EnrollMfaRequest {}, &session))
        .await
        .unwrap()
        .into_inner();
    secrets.push(enrolled.secret_base32.clone());
    secrets.extend(enrolled.backup_codes.iter().cloned());
    secrets.push(session);
    one_more(&server, &admin, count, "EnrollMfa", None, "user:carol").await;

    // Never a secret in the ledger, in any entry.
    let all: Vec<LedgerEntry> = crate::entries_of_kind(&server, &admin, "").await;
    for entry in &all {
        for secret in &secrets {
            assert!(
                !entry.payload_json.contains(secret.as_str()),
                "entry {} ({}) holds a secret: {}",
                entry.index,
                entry.kind,
                entry.payload_json
            );
        }
    }
    stop(server);
    let verify = lexecon(dir.path(), &["verify-ledger", "--data-dir", "data"]);
    assert_eq!(
        verify.code, 0,
        "the ledger stays one chain with local writers: {verify:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_policy_stays_active_across_restarts_and_sighups_until_the_file_changes() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let admin = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let from_file = active_hash(&server, &admin).await;
    assert_eq!(
        hex(&from_file),
        policy_hash(dir.path(), &data.join("policy.toml"))
    );
    let loaded = load_policy(&server, &admin, &starter_with_version(&data, "2.0.0")).await;
    assert_ne!(loaded, from_file);
    assert_eq!(active_hash(&server, &admin).await, loaded);

    stop(server);
    let server = Server::start(dir.path(), "data", &[]);
    assert_eq!(
        active_hash(&server, &admin).await,
        loaded,
        "after a restart the LoadPolicy'd policy must still be active"
    );
    let r = decide(&server, &admin, approved_request()).await.unwrap();
    assert_eq!(r.policy_version_hash, loaded);

    // SIGHUP with the file unchanged: the loaded policy stays.
    server.signal("HUP");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            active_hash(&server, &admin).await,
            loaded,
            "a SIGHUP with an unchanged policy file replaced the LoadPolicy'd policy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A changed file is loaded on SIGHUP.
    std::fs::write(
        data.join("policy.toml"),
        starter_with_version(&data, "3.0.0"),
    )
    .unwrap();
    let changed = policy_hash(dir.path(), &data.join("policy.toml"));
    server.signal("HUP");
    let seen = poll(Duration::from_secs(15), || {
        let (server, admin, changed) = (&server, &admin, &changed);
        async move { (hex(&active_hash(server, admin).await) == *changed).then_some(()) }
    })
    .await;
    assert!(
        seen.is_some(),
        "the changed policy file was not loaded on SIGHUP:\n{}",
        server.log()
    );
    stop(server);
    let server = Server::start(dir.path(), "data", &[]);
    assert_eq!(hex(&active_hash(&server, &admin).await), changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_two_servers_policy_revocations_and_limits_reach_the_other_within_2s() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let env = pg_env(&db.url);
    let env = env_refs(&env);
    let dir = init_dir_with(&env);
    let data = dir.path().join("data");
    let admin = admin_token(&data);
    let a = Server::start(dir.path(), "data", &env);
    let b = Server::start(dir.path(), "data", &env);
    let bound = Duration::from_secs(5);

    // LoadPolicy on A.
    let loaded = load_policy(&a, &admin, &starter_with_version(&data, "2.0.0")).await;
    let seen = poll(bound, || {
        let (b, admin, loaded) = (&b, &admin, &loaded);
        async move { (active_hash(b, admin).await == *loaded).then_some(()) }
    })
    .await;
    let (_, took) = seen.expect("LoadPolicy on A was not active on B within 5 s");
    eprintln!("policy reached B in {took:?}");
    let r = decide(&b, &admin, approved_request()).await.unwrap();
    assert_eq!(
        r.policy_version_hash, loaded,
        "B decides with the loaded policy"
    );

    // RevokeToken on A.
    let decided = decide(&a, &admin, approved_request()).await.unwrap();
    let check = VerifyTokenRequest {
        token: decided.capability_token.clone(),
        ..Default::default()
    };
    let mut on_b = decision_client(&b).await;
    let valid = on_b
        .verify_token(authed(check.clone(), &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(valid.valid, "{valid:?}");
    decision_client(&a)
        .await
        .revoke_token(authed(
            RevokeTokenRequest {
                token_id: valid.token_id.clone(),
                reason: "replication test".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    let seen = poll(bound, || {
        let (mut on_b, check, admin) = (on_b.clone(), check.clone(), &admin);
        async move {
            let r = on_b
                .verify_token(authed(check, admin))
                .await
                .ok()?
                .into_inner();
            (r.error_kind == "revoked").then_some(())
        }
    })
    .await;
    let (_, took) = seen.expect("a token revoked on A still verified on B after 5 s");
    eprintln!("revocation reached B in {took:?}");

    // UpdateLimits on A.
    let updated = BudgetServiceClient::new(a.channel().await)
        .update_limits(authed(
            UpdateLimitsRequest {
                config_toml: "enabled = true\nrpm_limit = 7\n".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(updated.updated, "{updated:?}");
    assert!(limits_toml(&a, &admin).await.contains("rpm_limit = 7"));
    let seen = poll(bound, || {
        let (b, admin) = (&b, &admin);
        async move {
            limits_toml(b, admin)
                .await
                .contains("rpm_limit = 7")
                .then_some(())
        }
    })
    .await;
    let (_, took) = seen.expect("limits updated on A were not in force on B within 5 s");
    eprintln!("limits reached B in {took:?}");

    // All three survive a restart of B.
    stop(b);
    let b = Server::start(dir.path(), "data", &env);
    assert_eq!(active_hash(&b, &admin).await, loaded);
    let limits = limits_toml(&b, &admin).await;
    assert!(
        limits.contains("rpm_limit = 7"),
        "after a restart: {limits}"
    );
    let r = decision_client(&b)
        .await
        .verify_token(authed(check, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.error_kind, "revoked", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_verify_trusts_every_key_the_ledger_records_after_a_rotation() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    decide(&server, &admin, approved_request()).await.unwrap();
    stop(server);
    let rotated = lexecon(dir.path(), &["keys", "rotate", "--data-dir", "data"]);
    assert_eq!(rotated.code, 0, "{rotated:?}");
    let server = Server::start(dir.path(), "data", &[]);
    decide(&server, &admin, approved_request()).await.unwrap();
    let verified = LedgerServiceClient::new(server.channel().await)
        .verify(authed(VerifyRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(
        verified.valid,
        "LedgerService/Verify after `keys rotate`: {verified:?}"
    );
    assert!(verified.checkpoints > 0, "{verified:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_policy_versions_counts_terms_and_relations() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let small = r#"
[policy]
name = "small"
version = "1"
mode = "strict"

[[terms]]
id = "bots"
kind = "actor"
match = "ai_agent:*"

[[terms]]
id = "reads"
kind = "action"
match = "read:*"

[[relations]]
id = "bots-read"
kind = "permits"
from = "bots"
to = "reads"
"#;
    let hash = load_policy(&server, &admin, small).await;
    let versions = PolicyServiceClient::new(server.channel().await)
        .list_policy_versions(authed(ListPolicyVersionsRequest { limit: 0 }, &admin))
        .await
        .unwrap()
        .into_inner()
        .versions;
    let counts: Vec<_> = versions
        .iter()
        .map(|v| (v.name.as_str(), v.terms, v.relations))
        .collect();
    let newest = versions.first().expect("versions");
    assert_eq!(newest.hash, hash);
    assert_eq!(counts.first(), Some(&("small", 2, 1)), "{counts:?}");
    assert!(
        counts.contains(&("starter", 6, 3)),
        "the starter policy has 6 terms and 3 relations: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_authorize_settle_and_release_are_ledgered() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = agent_key(&server, &admin, "assistant-bot", &["ai_agent:assistant"]).await;
    let mut budget = BudgetServiceClient::new(server.channel().await);
    let authorize = |model: &str| AuthorizeRequest {
        model: model.into(),
        user_id: "alice".into(),
        roles: vec![],
        estimated_input_tokens: 1000,
        max_output_tokens: 500,
        actor: "ai_agent:assistant".into(),
    };
    let first = budget
        .authorize(authed(authorize("gpt-4o-mini"), &bot.api_key))
        .await
        .unwrap()
        .into_inner();
    assert!(first.allowed, "{first:?}");
    let settled = budget
        .settle(authed(
            SettleRequest {
                reservation_id: first.reservation_id.clone(),
                input_tokens: 900,
                output_tokens: 100,
            },
            &bot.api_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(settled.newly_settled, "{settled:?}");
    let second = budget
        .authorize(authed(authorize("gpt-4o-mini"), &bot.api_key))
        .await
        .unwrap()
        .into_inner();
    assert!(second.allowed, "{second:?}");
    let released = budget
        .release(authed(
            ReleaseRequest {
                reservation_id: second.reservation_id.clone(),
            },
            &bot.api_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(released.released, "{released:?}");
    let denied = budget
        .authorize(authed(authorize("no-such-model-xyz"), &bot.api_key))
        .await
        .unwrap()
        .into_inner();
    assert!(!denied.allowed, "an unpriced model is refused: {denied:?}");

    let events: Vec<serde_json::Value> = crate::entries_of_kind(&server, &admin, "budget_event")
        .await
        .iter()
        .map(payload)
        .filter(|p| {
            ["authorized", "denied", "settled", "released"]
                .iter()
                .any(|e| p["event"] == *e)
        })
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|p| p["event"].as_str()).collect();
    assert_eq!(
        names,
        ["authorized", "settled", "authorized", "released", "denied"],
        "{events:?}"
    );
    for (event, reservation) in [
        (&events[0], &first.reservation_id),
        (&events[1], &first.reservation_id),
        (&events[3], &second.reservation_id),
    ] {
        assert!(
            event.to_string().contains(reservation.as_str()),
            "the entry names its reservation: {event}"
        );
    }
    assert!(
        events[4].to_string().contains("no-such-model-xyz"),
        "{}",
        events[4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_crosses_a_soft_limit_carries_the_warning() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(
        dir.path(),
        "data",
        &[
            ("LEXECON_BUDGET__ENABLED", "true"),
            ("LEXECON_BUDGET__MONTHLY_BUDGET", "1"),
            ("LEXECON_BUDGET__SOFT_LIMIT_PCT", "0.5"),
        ],
    );
    // gpt-4o-mini: $0.15 / $0.60 per million tokens. $0.03 worst case: 3% of $1.
    let small = decide(&server, &admin, llm_request("alice", 100_000, 25_000))
        .await
        .unwrap();
    assert_eq!(small.outcome(), Outcome::Approved, "{small:?}");
    assert!(small.warnings.is_empty(), "{small:?}");
    // $0.60 more: 63% of $1 crosses the 50% soft limit, under the budget.
    let large = decide(&server, &admin, llm_request("alice", 2_000_000, 500_000))
        .await
        .unwrap();
    assert_eq!(large.outcome(), Outcome::Approved, "{large:?}");
    assert!(
        !large.warnings.is_empty(),
        "crossing the soft limit must warn the caller: {large:?}"
    );
    assert!(
        large.warnings.iter().any(|w| w.contains("alice")),
        "the warning names the scope: {:?}",
        large.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reused_for_another_request_is_already_exists_and_records_nothing() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let first = decide(
        &server,
        &admin,
        DecideRequest {
            request_id: "order-1".into(),
            ..approved_request()
        },
    )
    .await
    .unwrap();
    let size = crate::ledger_size(&server, &admin).await;
    let decisions = decision_count(&server, &admin).await;
    for other in [
        DecideRequest {
            proposed_action: "read:customer_orders".into(),
            ..approved_request()
        },
        DecideRequest {
            data_classes: vec![],
            ..approved_request()
        },
        DecideRequest {
            context: [("region".to_owned(), "eu".to_owned())].into(),
            ..approved_request()
        },
        llm_request("alice", 10, 10),
    ] {
        let conflict = decide(
            &server,
            &admin,
            DecideRequest {
                request_id: "order-1".into(),
                ..other
            },
        )
        .await
        .unwrap_err();
        assert_status(&conflict, Code::AlreadyExists, &["request_id"]);
    }
    assert_eq!(
        crate::ledger_size(&server, &admin).await,
        size,
        "a conflict was recorded"
    );
    assert_eq!(decision_count(&server, &admin).await, decisions);
    let again = decide(
        &server,
        &admin,
        DecideRequest {
            request_id: "order-1".into(),
            ..approved_request()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.decision_id, first.decision_id);

    // The key is (principal, request_id): another principal may use the same id.
    let bot = agent_key(
        &server,
        &admin,
        "support-bot",
        &["ai_agent:customer_service"],
    )
    .await;
    let theirs = decide(
        &server,
        &bot.api_key,
        DecideRequest {
            request_id: "order-1".into(),
            proposed_action: "read:customer_orders".into(),
            ..request_for("ai_agent:customer_service")
        },
    )
    .await
    .unwrap();
    assert_ne!(theirs.decision_id, first.decision_id);
}
