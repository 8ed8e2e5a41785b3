//! An agent speaks only for itself (issue 23, contract §3 "Who may speak for which
//! actor"): API keys of role agent are bound to actor globs and LLM roles, and the
//! server refuses, counts and records claims outside the binding.

use std::time::Duration;

use lexecon_e2e::*;
use lexecon_proto::v1::auth_service_client::AuthServiceClient;
use lexecon_proto::v1::budget_service_client::BudgetServiceClient;
use lexecon_proto::v1::ledger_service_client::LedgerServiceClient;
use lexecon_proto::v1::{
    AuthorizeRequest, CreateApiKeyRequest, DecideRequest, GetEntryRequest, GetUsageRequest,
    GetUsageResponse, Outcome, ReleaseRequest, RevokeApiKeyRequest, Role, SetApiKeyActorsRequest,
};
use tonic::Code;

use crate::common::{
    agent_key, assert_status, auth_events, create_key, decide, decision_count, env_refs,
    init_dir_with, payload, pg_env, refusal_metric, request_for, user_session, who_am_i,
};

/// The decision entry at `index`, as JSON.
async fn decision_entry(server: &Server, token: &str, index: u64) -> serde_json::Value {
    let entry = LedgerServiceClient::new(server.channel().await)
        .get_entry(authed(GetEntryRequest { index }, token))
        .await
        .unwrap()
        .into_inner()
        .entry
        .expect("an entry");
    assert_eq!(entry.kind, "decision", "{entry:?}");
    payload(&entry)
}

async fn usage(server: &Server, admin: &str, scope: &str) -> GetUsageResponse {
    BudgetServiceClient::new(server.channel().await)
        .get_usage(authed(
            GetUsageRequest {
                scope: scope.to_owned(),
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn set_actors(
    server: &Server,
    admin: &str,
    key_id: &str,
    actors: &[&str],
    llm_roles: &[&str],
) -> Result<lexecon_proto::v1::SetApiKeyActorsResponse, tonic::Status> {
    AuthServiceClient::new(server.channel().await)
        .set_api_key_actors(authed(
            SetApiKeyActorsRequest {
                key_id: key_id.to_owned(),
                actors: actors.iter().map(|a| (*a).to_owned()).collect(),
                llm_roles: llm_roles.iter().map(|r| (*r).to_owned()).collect(),
            },
            admin,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn revoke_key(server: &Server, admin: &str, key_id: &str) -> bool {
    AuthServiceClient::new(server.channel().await)
        .revoke_api_key(authed(
            RevokeApiKeyRequest {
                key_id: key_id.to_owned(),
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .revoked
}

fn authorize_for(actor: &str, user: &str, roles: &[&str]) -> AuthorizeRequest {
    AuthorizeRequest {
        model: "gpt-4o-mini".into(),
        user_id: user.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        estimated_input_tokens: 1000,
        max_output_tokens: 500,
        actor: actor.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_key_decides_only_for_the_actors_its_globs_match() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = agent_key(
        &server,
        &admin,
        "support-bot",
        &["ai_agent:customer_service"],
    )
    .await;
    let fleet = agent_key(
        &server,
        &admin,
        "fleet",
        &["ai_agent:customer_*", "ai_agent:?ssistant"],
    )
    .await;

    let ok = decide(
        &server,
        &bot.api_key,
        request_for("ai_agent:customer_service"),
    )
    .await
    .unwrap();
    assert_eq!(ok.outcome(), Outcome::Approved, "{ok:?}");
    assert_eq!(ok.actor, "ai_agent:customer_service");
    let recorded = decision_entry(&server, &admin, ok.ledger_index).await;
    assert_eq!(recorded["principal"], "key:support-bot", "{recorded}");
    assert_eq!(
        recorded["request"]["actor"], "ai_agent:customer_service",
        "{recorded}"
    );

    let decisions = decision_count(&server, &admin).await;
    for actor in [
        "ai_agent:billing",             // another agent
        "AI_AGENT:customer_service",    // a different case
        "ai_agent:Customer_service",    // a different case, inside
        "ai_agent:customer",            // a prefix of the literal glob
        "ai_agent:customer_servic",     // a prefix of the literal glob
        "ai_agent:customer_service_v2", // the literal glob as a prefix
        "admin:root",
    ] {
        let refused = decide(&server, &bot.api_key, request_for(actor))
            .await
            .unwrap_err();
        assert_status(&refused, Code::PermissionDenied, &[actor, "support-bot"]);
    }
    let refused = decide(&server, &bot.api_key, request_for("admin:root"))
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("ai_agent:customer_service"),
        "the refusal says what the binding allows: {:?}",
        refused.message()
    );

    // Globs: `*` is any run (':' included), `?` one character, matched in full and by case.
    let mut allowed = 0;
    for actor in [
        "ai_agent:customer_service",
        "ai_agent:customer_",
        "ai_agent:customer_eu:west",
        "ai_agent:assistant",
        "ai_agent:xssistant",
    ] {
        let r = decide(&server, &fleet.api_key, request_for(actor))
            .await
            .unwrap_or_else(|e| panic!("fleet may speak for {actor}: {e:?}"));
        assert_eq!(r.actor, actor);
        allowed += 1;
    }
    for actor in [
        "ai_agent:customer",
        "ai_agent:Customer_service",
        "x:ai_agent:customer_service",
        "ai_agent:ssistant",
        "ai_agent:aassistant",
        "ai_agent:assistant:x",
        "admin:root",
    ] {
        let refused = decide(&server, &fleet.api_key, request_for(actor))
            .await
            .unwrap_err();
        assert_status(&refused, Code::PermissionDenied, &[actor, "fleet"]);
    }
    assert_eq!(
        decision_count(&server, &admin).await,
        decisions + allowed,
        "a refused claim was decided"
    );

    // A refused LLM claim reserves nothing, in any scope.
    let before = usage(&server, &admin, "user:mallory").await;
    let llm_claim = DecideRequest {
        actor: "ai_agent:assistant".into(),
        ..llm_request("mallory", 1000, 500)
    };
    let refused = decide(&server, &bot.api_key, llm_claim).await.unwrap_err();
    assert_status(
        &refused,
        Code::PermissionDenied,
        &["ai_agent:assistant", "support-bot"],
    );
    let mut budget = BudgetServiceClient::new(server.channel().await);
    let refused = budget
        .authorize(authed(
            authorize_for("ai_agent:assistant", "mallory", &[]),
            &bot.api_key,
        ))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::PermissionDenied,
        &["ai_agent:assistant", "support-bot"],
    );
    for scope in ["user:mallory", "global"] {
        let after = usage(&server, &admin, scope).await;
        assert_eq!(after.reserved_micros, 0, "{scope}: {after:?}");
        assert_eq!(after.spent_micros, 0, "{scope}: {after:?}");
    }
    assert_eq!(
        usage(&server, &admin, "user:mallory")
            .await
            .requests_last_minute,
        before.requests_last_minute,
        "a refused claim was counted as a request"
    );
    assert_eq!(
        decision_count(&server, &admin).await,
        decisions + allowed,
        "a refused LLM claim was decided"
    );

    // Authorize from the literal key with an empty actor speaks for its one actor.
    let admitted = budget
        .authorize(authed(authorize_for("", "mallory", &[]), &bot.api_key))
        .await
        .unwrap()
        .into_inner();
    assert!(admitted.allowed, "{admitted:?}");
    let released = budget
        .release(authed(
            ReleaseRequest {
                reservation_id: admitted.reservation_id,
            },
            &bot.api_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(released.released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_actor_from_a_key_bound_to_one_literal_actor_means_that_actor() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = agent_key(
        &server,
        &admin,
        "support-bot",
        &["ai_agent:customer_service"],
    )
    .await;
    let r = decide(&server, &bot.api_key, request_for(""))
        .await
        .unwrap();
    assert_eq!(r.actor, "ai_agent:customer_service", "{r:?}");
    assert_eq!(r.outcome(), Outcome::Approved, "{r:?}");
    let recorded = decision_entry(&server, &admin, r.ledger_index).await;
    assert_eq!(
        recorded["request"]["actor"], "ai_agent:customer_service",
        "{recorded}"
    );
    assert_eq!(recorded["principal"], "key:support-bot", "{recorded}");
    // The token is for that actor too.
    let check = decision_client(&server)
        .await
        .verify_token(authed(
            lexecon_proto::v1::VerifyTokenRequest {
                token: r.capability_token,
                actor: "ai_agent:customer_service".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(check.valid, "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_speaks_for_any_actor_and_the_ledger_names_the_principal() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    for (actor, outcome) in [
        ("ai_agent:customer_service", Outcome::Approved),
        ("ai_agent:billing", Outcome::Denied),
        ("admin:root", Outcome::Denied),
        ("AI_AGENT:anything:at:all", Outcome::Denied),
    ] {
        let r = decide(&server, &admin, request_for(actor))
            .await
            .unwrap_or_else(|e| panic!("an admin may decide for {actor}: {e:?}"));
        assert_eq!(r.outcome(), outcome, "{actor}: {r:?}");
        assert_eq!(r.actor, actor);
        let recorded = decision_entry(&server, &admin, r.ledger_index).await;
        assert_eq!(recorded["principal"], "key:admin", "{recorded}");
        assert_eq!(recorded["request"]["actor"], actor, "{recorded}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_answers_every_principal_with_its_binding() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = create_key(
        &server,
        &admin,
        "support-bot",
        Role::Agent,
        &["ai_agent:customer_service", "ai_agent:support_*"],
        &["support", "tier1"],
    )
    .await;
    let created = LedgerServiceClient::new(server.channel().await)
        .get_entry(authed(
            GetEntryRequest {
                index: bot.ledger_index,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .entry
        .expect("the key's ledger entry");
    assert_eq!(created.kind, "auth_event", "{created:?}");
    let created = payload(&created);
    assert_eq!(created["event"], "api_key_created", "{created}");
    assert_eq!(
        created["actors"],
        serde_json::json!(["ai_agent:customer_service", "ai_agent:support_*"]),
        "the key's ledger entry shows its binding: {created}"
    );
    let me = who_am_i(&server, &bot.api_key).await.unwrap();
    assert_eq!(me.principal_kind, "api_key", "{me:?}");
    assert_eq!(me.name, "support-bot");
    assert_eq!(me.principal, "key:support-bot");
    assert_eq!(me.role(), Role::Agent);
    assert_eq!(
        me.actors,
        ["ai_agent:customer_service", "ai_agent:support_*"]
    );
    assert_eq!(me.llm_roles, ["support", "tier1"]);

    let me = who_am_i(&server, &admin).await.unwrap();
    assert_eq!(
        (me.principal_kind.as_str(), me.principal.as_str(), me.role()),
        ("api_key", "key:admin", Role::Admin),
        "{me:?}"
    );

    let viewer = user_session(&server, &admin, "vera", Role::Viewer).await;
    let me = who_am_i(&server, &viewer).await.unwrap();
    assert_eq!(
        (me.principal_kind.as_str(), me.principal.as_str(), me.role()),
        ("user", "user:vera", Role::Viewer),
        "{me:?}"
    );
    assert!(me.actors.is_empty() && me.llm_roles.is_empty(), "{me:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_key_needs_actors_through_grpc_and_the_cli() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let url = server.url();
    let mut auth = AuthServiceClient::new(server.channel().await);
    for actors in [vec![], vec!["has space".to_owned()], vec![String::new()]] {
        let refused = auth
            .create_api_key(authed(
                CreateApiKeyRequest {
                    name: "unbound".into(),
                    role: Role::Agent as i32,
                    actors: actors.clone(),
                    ..Default::default()
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{actors:?}: {refused:?}"
        );
        assert!(
            refused.message().contains("actors"),
            "{actors:?}: the message names the field: {:?}",
            refused.message()
        );
    }

    let base = [
        "apikey",
        "create",
        "--data-dir",
        "data",
        "--name",
        "unbound",
        "--role",
        "agent",
    ];
    let local = lexecon(dir.path(), &base);
    assert_eq!(local.code, 2, "{local:?}");
    assert!(local.stderr.contains("--actor"), "{}", local.stderr);
    let mut remote_args = base.to_vec();
    remote_args.extend(["--server", &url]);
    let remote = lexecon(dir.path(), &remote_args);
    assert_eq!(remote.code, 2, "{remote:?}");
    assert!(remote.stderr.contains("--actor"), "{}", remote.stderr);

    // With --actor it works, locally and through the server, and --json shows the binding.
    for (name, through_server) in [("local-bot", false), ("remote-bot", true)] {
        let mut args = vec![
            "apikey",
            "create",
            "--data-dir",
            "data",
            "--name",
            name,
            "--role",
            "agent",
            "--actor",
            "ai_agent:customer_service",
            "--actor",
            "ai_agent:support_*",
            "--llm-role",
            "support",
            "--json",
        ];
        if through_server {
            args.extend(["--server", &url, "--expires-in-days", "30"]);
        }
        let run = lexecon(dir.path(), &args);
        assert_eq!(run.code, 0, "{run:?}");
        let json: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("--json prints JSON ({e}): {}", run.stdout));
        assert!(
            json["key_id"].as_str().is_some_and(|k| !k.is_empty()),
            "{json}"
        );
        assert_eq!(json["role"], "agent", "{json}");
        assert_eq!(
            json["actors"],
            serde_json::json!(["ai_agent:customer_service", "ai_agent:support_*"]),
            "{json}"
        );
        assert_eq!(json["llm_roles"], serde_json::json!(["support"]), "{json}");
        let key = json["api_key"].as_str().unwrap();
        let r = decide(&server, key, request_for("ai_agent:customer_service"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(r.outcome(), Outcome::Approved);
        let refused = decide(&server, key, request_for("ai_agent:billing"))
            .await
            .unwrap_err();
        assert_status(
            &refused,
            Code::PermissionDenied,
            &["ai_agent:billing", name],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_claims_is_counted_and_barely_grows_the_ledger() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = agent_key(
        &server,
        &admin,
        "support-bot",
        &["ai_agent:customer_service"],
    )
    .await;
    let size_before = crate::ledger_size(&server, &admin).await;
    let decisions_before = decision_count(&server, &admin).await;
    let mut client = decision_client(&server).await;
    for i in 0..200 {
        let actor = if i % 2 == 0 {
            "admin:root".to_owned()
        } else {
            format!("ai_agent:other_{i}")
        };
        let refused = client
            .decide(authed(request_for(&actor), &bot.api_key))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{i}: {refused:?}");
    }
    let grown = crate::ledger_size(&server, &admin).await - size_before;
    assert!(
        grown <= 3,
        "200 refused claims grew the ledger by {grown} entries while the server runs"
    );
    assert_eq!(decision_count(&server, &admin).await, decisions_before);
    let metrics = crate::reqwest_metrics(server.metrics).await;
    assert_eq!(
        refusal_metric(&metrics, "support-bot"),
        Some(200),
        "lexecon_actor_refusals_total{{key=\"support-bot\"}} counts every refusal:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("refusal"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !metrics.contains("admin:root") && !metrics.contains("other_1"),
        "the metric's labels never name the actor tried"
    );
    let events = auth_events(&server, &admin).await;
    let first: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "actor_refused")
        .collect();
    assert_eq!(
        first.len(),
        1,
        "the first refusal is recorded at once: {first:?}"
    );
    assert_eq!(first[0]["actor"], "admin:root", "{}", first[0]);
    assert!(
        first[0].to_string().contains("support-bot"),
        "the entry names the key: {}",
        first[0]
    );

    // The rest of the window is one summary, written at shutdown at the latest.
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(30)), 0);
    let server = Server::start(dir.path(), "data", &[]);
    let events = auth_events(&server, &admin).await;
    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "actor_refusals")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(
        summaries[0]["refused"], 199,
        "the summary counts the refusals after the first: {}",
        summaries[0]
    );
    assert!(
        summaries[0].to_string().contains("support-bot"),
        "{}",
        summaries[0]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "actor_refused")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_changes_and_revocation_take_effect_on_the_next_call() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let url = server.url();
    let bot = agent_key(
        &server,
        &admin,
        "support-bot",
        &["ai_agent:customer_service"],
    )
    .await;
    let service = || request_for("ai_agent:customer_service");
    let assistant = || DecideRequest {
        proposed_action: "llm:chat".into(),
        tool: "openai_api".into(),
        data_classes: vec![],
        ..request_for("ai_agent:assistant")
    };
    decide(&server, &bot.api_key, service()).await.unwrap();

    // Through the API: the very next call sees the new binding.
    let changed = set_actors(&server, &admin, &bot.key_id, &["ai_agent:assistant"], &[])
        .await
        .unwrap();
    assert!(changed.updated && changed.ledger_index > 0, "{changed:?}");
    let refused = decide(&server, &bot.api_key, service()).await.unwrap_err();
    assert_status(
        &refused,
        Code::PermissionDenied,
        &["ai_agent:customer_service", "support-bot"],
    );
    let r = decide(&server, &bot.api_key, assistant()).await.unwrap();
    assert_eq!(r.outcome(), Outcome::Approved, "{r:?}");
    assert_eq!(
        who_am_i(&server, &bot.api_key).await.unwrap().actors,
        ["ai_agent:assistant"]
    );

    // An agent key cannot be bound to nothing.
    let empty = set_actors(&server, &admin, &bot.key_id, &[], &[])
        .await
        .unwrap_err();
    assert_status(&empty, Code::InvalidArgument, &["actors"]);

    // Through the CLI against the server: the same.
    let run = lexecon(
        dir.path(),
        &[
            "apikey",
            "bind",
            &bot.key_id,
            "--actor",
            "ai_agent:customer_service",
            "--data-dir",
            "data",
            "--server",
            &url,
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    decide(&server, &bot.api_key, service())
        .await
        .unwrap_or_else(|e| panic!("bound again by `apikey bind --server`: {e:?}"));
    let refused = decide(&server, &bot.api_key, assistant())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Through the CLI on the database: another process, so within the cache's 2 s.
    let run = lexecon(
        dir.path(),
        &[
            "apikey",
            "bind",
            &bot.key_id,
            "--actor",
            "ai_agent:assistant",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let seen = poll(Duration::from_secs(5), || {
        let key = bot.api_key.clone();
        let server = &server;
        async move {
            match decide(server, &key, service()).await {
                Err(e) if e.code() == Code::PermissionDenied => Some(()),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        seen.is_some(),
        "a local `apikey bind` was not in force after 5 s"
    );

    // Revocation: the very next call is unauthenticated.
    assert!(revoke_key(&server, &admin, &bot.key_id).await);
    let gone = decide(&server, &bot.api_key, assistant())
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated, "{gone:?}");
    let gone = who_am_i(&server, &bot.api_key).await.unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated, "{gone:?}");
    let late = set_actors(&server, &admin, &bot.key_id, &["ai_agent:assistant"], &[])
        .await
        .unwrap();
    assert_eq!((late.updated, late.ledger_index), (false, 0), "{late:?}");
    let unknown = set_actors(&server, &admin, "no-such-key", &["ai_agent:assistant"], &[])
        .await
        .unwrap();
    assert_eq!(
        (unknown.updated, unknown.ledger_index),
        (false, 0),
        "{unknown:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_roles_an_agent_names_must_be_within_its_binding() {
    let dir = crate::init_dir();
    let admin = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let bot = create_key(
        &server,
        &admin,
        "assistant-bot",
        Role::Agent,
        &["ai_agent:assistant"],
        &["support"],
    )
    .await;
    let plain = agent_key(&server, &admin, "plain-bot", &["ai_agent:assistant"]).await;
    let with_roles = |roles: &[&str]| {
        let mut r = llm_request("alice", 100, 100);
        if let Some(llm) = r.llm.as_mut() {
            llm.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        }
        r
    };
    let r = decide(&server, &bot.api_key, with_roles(&["support"]))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Approved, "{r:?}");
    let r = decide(&server, &bot.api_key, with_roles(&[]))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Approved, "{r:?}");
    let decisions = decision_count(&server, &admin).await;
    for roles in [&["admin"][..], &["support", "admin"], &["Support"]] {
        let refused = decide(&server, &bot.api_key, with_roles(roles))
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::PermissionDenied,
            "{roles:?}: {refused:?}"
        );
    }
    let refused = decide(&server, &plain.api_key, with_roles(&["support"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(decision_count(&server, &admin).await, decisions);

    let mut budget = BudgetServiceClient::new(server.channel().await);
    let refused = budget
        .authorize(authed(authorize_for("", "alice", &["admin"]), &bot.api_key))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let admitted = budget
        .authorize(authed(
            authorize_for("ai_agent:assistant", "alice", &["support"]),
            &bot.api_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(admitted.allowed, "{admitted:?}");

    // An admin may name any role.
    let r = decide(&server, &admin, with_roles(&["admin", "support"]))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Approved, "{r:?}");
}

/// `sqlite3` on the PATH; `None` with a note outside CI.
fn sqlite3() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("sqlite3"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "sqlite3 is missing; CI must run the unbound-key test (apt-get install sqlite3)"
        );
        eprintln!("skipping: sqlite3 is not on the PATH");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_from_before_bindings_speaks_for_no_actor_until_bound() {
    let Some(sqlite3) = sqlite3() else {
        return;
    };
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let admin = admin_token(&data);
    let created = lexecon(
        dir.path(),
        &[
            "apikey",
            "create",
            "--data-dir",
            "data",
            "--name",
            "legacy",
            "--role",
            "agent",
            "--actor",
            "ai_agent:customer_service",
            "--json",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    let json: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    let (key_id, key) = (
        json["key_id"].as_str().unwrap().to_owned(),
        json["api_key"].as_str().unwrap().to_owned(),
    );
    // What a key created before bindings existed looks like in the database.
    let out = std::process::Command::new(sqlite3)
        .arg(data.join("lexecon.db"))
        .arg(format!(
            "UPDATE auth_api_keys SET actors = NULL WHERE key_id = '{key_id}'; SELECT changes();"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{out:?}");

    let server = Server::start(dir.path(), "data", &[]);
    let me = who_am_i(&server, &key).await.unwrap();
    assert!(me.actors.is_empty(), "{me:?}");
    let refused = decide(&server, &key, request_for("ai_agent:customer_service"))
        .await
        .unwrap_err();
    assert_status(
        &refused,
        Code::PermissionDenied,
        &["legacy", "ai_agent:customer_service", "lexecon apikey bind"],
    );
    let run = lexecon(
        dir.path(),
        &[
            "apikey",
            "bind",
            &key_id,
            "--actor",
            "ai_agent:customer_service",
            "--data-dir",
            "data",
            "--server",
            &server.url(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let r = decide(&server, &key, request_for("ai_agent:customer_service"))
        .await
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Approved);
    let bound: Vec<_> = auth_events(&server, &admin)
        .await
        .into_iter()
        .filter(|e| e["event"] == "api_key_bound")
        .collect();
    assert_eq!(bound.len(), 1, "{bound:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_two_servers_a_binding_change_and_a_revocation_reach_the_other_within_2s() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let env = pg_env(&db.url);
    let env = env_refs(&env);
    let dir = init_dir_with(&env);
    let admin = admin_token(&dir.path().join("data"));
    let a = Server::start(dir.path(), "data", &env);
    let b = Server::start(dir.path(), "data", &env);
    let bot = agent_key(&a, &admin, "support-bot", &["ai_agent:customer_service"]).await;
    let service = || request_for("ai_agent:customer_service");
    // B learns (and caches) the key.
    decide(&b, &bot.api_key, service()).await.unwrap();
    who_am_i(&b, &bot.api_key).await.unwrap();

    let changed = set_actors(&a, &admin, &bot.key_id, &["ai_agent:assistant"], &[])
        .await
        .unwrap();
    assert!(changed.updated, "{changed:?}");
    let on_a = decide(&a, &bot.api_key, service()).await.unwrap_err();
    assert_eq!(
        on_a.code(),
        Code::PermissionDenied,
        "at once on A: {on_a:?}"
    );
    let on_b = poll(Duration::from_secs(3), || {
        let key = bot.api_key.clone();
        let b = &b;
        async move {
            match decide(b, &key, service()).await {
                Err(e) if e.code() == Code::PermissionDenied => Some(()),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        on_b.is_some(),
        "B still used the old binding 3 s after the change on A"
    );

    assert!(revoke_key(&a, &admin, &bot.key_id).await);
    let on_a = who_am_i(&a, &bot.api_key).await.unwrap_err();
    assert_eq!(on_a.code(), Code::Unauthenticated, "at once on A: {on_a:?}");
    let on_b = poll(Duration::from_secs(3), || {
        let key = bot.api_key.clone();
        let b = &b;
        async move {
            match who_am_i(b, &key).await {
                Err(e) if e.code() == Code::Unauthenticated => Some(()),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        on_b.is_some(),
        "B still accepted the key 3 s after its revocation on A"
    );
    let gone = decide(&b, &bot.api_key, request_for("ai_agent:assistant"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated, "{gone:?}");
}
