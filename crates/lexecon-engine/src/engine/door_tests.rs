//! The engine as the one door: it validates, binds actors to keys, audits every human
//! act, and keeps run-time state (policy, revocations, limits, key revocations) in the
//! database where restarts and other replicas see it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;

use lexecon_auth::{ActorBinding, NewApiKey, Principal, PrincipalKind, Role};
use lexecon_core::{ManualClock, SystemClock};
use proptest::prelude::*;

use super::tests::open;
use super::*;

/// The starter policy's approved read, for `actor`.
pub(super) fn action(actor: &str) -> ActionInput {
    ActionInput {
        actor: actor.into(),
        action: "read:customer_data".into(),
        tool: "database_query".into(),
        data_classes: vec!["pii".into()],
        ..ActionInput::default()
    }
}

fn decide_input(actor: &str) -> DecideInput {
    DecideInput {
        action: action(actor),
        request_id: String::new(),
    }
}

/// An agent key's principal bound to `patterns`.
fn agent(name: &str, patterns: &[&str]) -> Caller {
    let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
    Caller::Principal(Principal {
        kind: PrincipalKind::ApiKey,
        id: format!("key_{name}"),
        name: name.to_owned(),
        role: Role::Agent,
        mfa_verified: false,
        actors: Some(Arc::new(ActorBinding::new(&patterns).unwrap())),
        llm_roles: Arc::from(Vec::<String>::new()),
        created_by: None,
    })
}

async fn payloads(engine: &Engine, kind: &str) -> Vec<serde_json::Value> {
    let size = engine.ledger.tree_size().await.unwrap();
    engine
        .ledger
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.decode_leaf().is_ok_and(|l| l.kind.to_string() == kind))
        .filter_map(|e| e.payload_json())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_validates_every_decide_field_and_records_nothing_bad() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let admin = Caller::Local("root".into());
    let before = engine.ledger.tree_size().await.unwrap();
    let base = decide_input("ai_agent:support");
    let cases: Vec<(DecideInput, &str)> = vec![
        (decide_input(&"x".repeat(300)), "actor"),
        (decide_input("bad actor"), "actor"),
        (
            DecideInput {
                action: ActionInput {
                    action: String::new(),
                    ..base.action.clone()
                },
                ..base.clone()
            },
            "proposed_action",
        ),
        (
            DecideInput {
                action: ActionInput {
                    tool: "t*".into(),
                    ..base.action.clone()
                },
                ..base.clone()
            },
            "tool",
        ),
        (
            DecideInput {
                action: ActionInput {
                    data_classes: vec!["p ii".into()],
                    ..base.action.clone()
                },
                ..base.clone()
            },
            "data_classes",
        ),
        (
            DecideInput {
                action: ActionInput {
                    risk_level: 9,
                    ..base.action.clone()
                },
                ..base.clone()
            },
            "risk_level",
        ),
        (
            DecideInput {
                action: ActionInput {
                    context: [("k".to_owned(), "v\n".to_owned())].into(),
                    ..base.action.clone()
                },
                ..base.clone()
            },
            "context.k",
        ),
        (
            DecideInput {
                request_id: "r".repeat(200),
                ..base.clone()
            },
            "request_id",
        ),
        (
            DecideInput {
                action: ActionInput {
                    llm: Some(lexecon_core::LlmUsage::default()),
                    ..base.action.clone()
                },
                ..base.clone()
            },
            "llm.model",
        ),
    ];
    for (input, field) in cases {
        let err = engine.decide(&admin, input).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidArgument, "{field}: {err}");
        assert!(err.to_string().starts_with(field), "{field}: {err}");
    }
    assert_eq!(engine.ledger.tree_size().await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reused_for_another_request_is_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let me = Caller::Local("alice".into());
    let first = DecideInput {
        request_id: "same".into(),
        ..decide_input("ai_agent:customer_service")
    };
    engine.decide(&me, first.clone()).await.unwrap();
    let size = engine.ledger.tree_size().await.unwrap();
    let other = DecideInput {
        request_id: "same".into(),
        ..decide_input("ai_agent:someone_else")
    };
    let err = engine.decide(&me, other).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::AlreadyExists, "{err}");
    assert!(err.to_string().contains("request_id"), "{err}");
    assert_eq!(engine.ledger.tree_size().await.unwrap(), size);
    // The intent is free text, not part of the request's identity.
    let mut same = first;
    same.action.user_intent = "retrying".into();
    engine.decide(&me, same).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_key_speaks_only_for_its_actors_and_refusals_do_not_swell_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let refused = Arc::clone(&refused);
        engine.on_actor_refused(move |key| {
            assert_eq!(key, "support-bot");
            refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let bot = agent("support-bot", &["ai_agent:customer_service"]);
    let ok = engine
        .decide(&bot, decide_input("ai_agent:customer_service"))
        .await
        .unwrap();
    assert_eq!(ok.actor, "ai_agent:customer_service");
    // One literal actor: an empty actor means that actor.
    let implied = engine.decide(&bot, decide_input("")).await.unwrap();
    assert_eq!(implied.actor, "ai_agent:customer_service");
    let decisions = payloads(&engine, "decision").await;
    assert_eq!(
        decisions.last().unwrap()["principal"],
        "key:support-bot",
        "the entry names the authenticated principal"
    );
    let before = engine.ledger.tree_size().await.unwrap();
    for actor in [
        "ai_agent:billing",
        "ai_agent:Customer_service",
        "ai_agent:customer_servic",
        "admin:root",
    ] {
        let err = engine.decide(&bot, decide_input(actor)).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(actor) && msg.contains("support-bot"), "{msg}");
    }
    for i in 0..196 {
        let _ = engine
            .decide(&bot, decide_input(&format!("ai_agent:other_{i}")))
            .await
            .unwrap_err();
    }
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 200);
    let grown = engine.ledger.tree_size().await.unwrap() - before;
    assert_eq!(grown, 1, "one actor_refused entry for the whole window");
    assert!(payloads(&engine, "decision").await.len() == decisions.len());
    engine.shutdown().await.unwrap();
    let reopened = open(dir.path(), Arc::new(SystemClock), None).await;
    let events = payloads(&reopened, "auth_event").await;
    let summary = events
        .iter()
        .find(|e| e["event"] == "actor_refusals")
        .expect("the window's summary is written at shutdown");
    assert_eq!(summary["refused"], 199);
    assert_eq!(summary["principal"], "key:support-bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_speak_for_anyone_and_agents_name_only_their_llm_roles() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let admin = Caller::Principal(Principal {
        kind: PrincipalKind::ApiKey,
        id: "key_admin".into(),
        name: "admin".into(),
        role: Role::Admin,
        mfa_verified: false,
        actors: None,
        llm_roles: Arc::from(Vec::<String>::new()),
        created_by: None,
    });
    let d = engine
        .decide(&admin, decide_input("admin:root"))
        .await
        .unwrap();
    assert_eq!(d.actor, "admin:root");
    let last = payloads(&engine, "decision").await.pop().unwrap();
    assert_eq!(last["principal"], "key:admin");
    assert_eq!(last["request"]["actor"], "admin:root");
    // An unbound agent key speaks for nobody, and is told how to bind it.
    let Caller::Principal(mut unbound) = agent("old", &["x"]) else {
        unreachable!()
    };
    unbound.actors = None;
    let err = engine
        .decide(&Caller::Principal(unbound), decide_input("ai_agent:x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lexecon apikey bind"), "{err}");
    // llm.roles must be among the key's.
    let bot = agent("llm-bot", &["ai_agent:assistant"]);
    let mut input = decide_input("ai_agent:assistant");
    input.action.llm = Some(lexecon_core::LlmUsage {
        model: "gpt-4o-mini".into(),
        roles: vec!["premium".into()],
        ..Default::default()
    });
    let err = engine.decide(&bot, input).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied);
    assert!(err.to_string().contains("premium"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For random bindings and actors, the engine accepts exactly the actors the glob
    /// matcher of policies matches.
    #[test]
    fn the_engine_accepts_exactly_the_actors_the_binding_globs_match(
        patterns in proptest::collection::vec("[ab:*?]{1,5}", 1..4),
        actors in proptest::collection::vec("[ab:]{1,6}", 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let engine = open(dir.path(), Arc::new(SystemClock), None).await;
            let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let caller = agent("prop", &refs);
            for actor in &actors {
                let expected = patterns
                    .iter()
                    .any(|p| lexecon_policy::Glob::new(p).unwrap().matches(actor));
                let got = engine.speaks_for(&caller, actor).await.is_ok();
                prop_assert_eq!(got, expected, "patterns {:?} actor {:?}", patterns, actor);
            }
            engine.shutdown().await.unwrap();
            Ok(())
        })?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_change_is_ledgered_with_its_author_and_revocation_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    // init's admin key was ledgered by the local user that ran it.
    let events = payloads(&engine, "auth_event").await;
    let admin_key = events
        .iter()
        .find(|e| e["event"] == "api_key_created" && e["name"] == "admin")
        .expect("init's admin key is ledgered");
    assert!(admin_key["by"].as_str().unwrap().starts_with("local:"));
    let me = Caller::Local("alice".into());
    let created = engine
        .create_api_key(
            &me,
            NewApiKey {
                actors: vec!["ai_agent:bot".into()],
                ..NewApiKey::new("bot", Role::Agent)
            },
        )
        .await
        .unwrap();
    let caller = engine.authenticate(created.api_key.expose()).await.unwrap();
    engine.decide(&caller, decide_input("")).await.unwrap();
    let (bound, _) = engine
        .set_api_key_actors(&me, &created.key_id, vec!["ai_agent:other".into()], vec![])
        .await
        .unwrap();
    assert!(bound);
    let caller = engine.authenticate(created.api_key.expose()).await.unwrap();
    assert!(
        engine
            .decide(&caller, decide_input("ai_agent:bot"))
            .await
            .is_err()
    );
    let (revoked, _) = engine.revoke_api_key(&me, &created.key_id).await.unwrap();
    assert!(revoked);
    let err = engine
        .authenticate(created.api_key.expose())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthenticated, "{err}");
    engine
        .create_user(&me, "carol", "correct horse battery staple", Role::Auditor)
        .await
        .unwrap();
    let events = payloads(&engine, "auth_event").await;
    for event in [
        "api_key_created",
        "api_key_bound",
        "api_key_revoked",
        "user_created",
    ] {
        let e = events
            .iter()
            .rev()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} entry"));
        assert_eq!(e["by"], "local:alice", "{e}");
    }
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains(created.api_key.expose()),
        "a key in the ledger"
    );
    assert!(!text.contains("correct horse"), "a password in the ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_policy_survives_restarts_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let me = Caller::Local("alice".into());
    let source = lexecon_policy::STARTER_POLICY.replace("version = ", "version = \"9.9.9\"\n#");
    let (loaded, record) = engine.load_policy(&me, &source).await.unwrap();
    assert!(record.terms > 0 && record.relations > 0, "{record:?}");
    let hash = loaded.compiled.hash();
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    assert_eq!(
        engine.policy.current().compiled.hash(),
        hash,
        "LoadPolicy lost on restart"
    );
    assert_eq!(
        engine.reload().await.unwrap().policy.compiled.hash(),
        hash,
        "lost on SIGHUP"
    );
    let versions = engine.policy_versions(&me, 0).await.unwrap();
    assert!(versions.iter().all(|v| v.terms > 0), "{versions:?}");
    // A changed file wins again.
    let file = dir.path().join("data/policy.toml");
    let changed = std::fs::read_to_string(&file).unwrap()
        + "\n[[terms]]\nid = \"extra\"\nkind = \"tool\"\nmatch = \"extra_tool\"\n";
    std::fs::write(&file, changed).unwrap();
    let reloaded = engine.reload().await.unwrap();
    assert_ne!(reloaded.policy.compiled.hash(), hash);
    assert_eq!(reloaded.policy.loaded_by, "file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_share_policy_revocations_limits_and_keys() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let a = open(dir.path(), Arc::new(clock.clone()), Some(&db.url)).await;
    let b = open(dir.path(), Arc::new(clock.clone()), Some(&db.url)).await;
    let me = Caller::Local("alice".into());
    // The policy.
    let source = lexecon_policy::STARTER_POLICY.replace("version = ", "version = \"7.0.0\"\n#");
    let (loaded, _) = a.load_policy(&me, &source).await.unwrap();
    b.sync_once().await;
    assert_eq!(b.policy.current().compiled.hash(), loaded.compiled.hash());
    // A token revocation.
    let d = a
        .decide(&me, decide_input("ai_agent:customer_service"))
        .await
        .unwrap();
    let token = d.capability_token.unwrap();
    let claims = a
        .verify_token(
            &me,
            &VerifyTokenInput {
                token: token.clone(),
                ..Default::default()
            },
        )
        .unwrap()
        .claims
        .unwrap();
    a.revoke_token(&me, &claims.token_id.to_string(), "test")
        .await
        .unwrap();
    b.sync_once().await;
    let check = b
        .verify_token(
            &me,
            &VerifyTokenInput {
                token,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(check.error.map(|e| e.kind()), Some("revoked"));
    // The budget limits.
    a.update_limits(&me, "enabled = true\nmonthly_budget = 42\n")
        .await
        .unwrap();
    b.sync_once().await;
    assert!(
        b.limits(&me, "", &[]).unwrap().contains("monthly_budget"),
        "{}",
        b.limits(&me, "", &[]).unwrap()
    );
    // An API key revoked on A is refused by B once B's key cache (2 s) has passed.
    let key = a
        .create_api_key(
            &me,
            NewApiKey {
                actors: vec!["ai_agent:x".into()],
                ..NewApiKey::new("k", Role::Agent)
            },
        )
        .await
        .unwrap();
    b.authenticate(key.api_key.expose()).await.unwrap();
    a.revoke_api_key(&me, &key.key_id).await.unwrap();
    assert!(
        a.authenticate(key.api_key.expose()).await.is_err(),
        "at once on A"
    );
    clock.advance_secs(2);
    assert!(
        b.authenticate(key.api_key.expose()).await.is_err(),
        "within 2 s on B"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assessment_needs_no_actor_but_a_decide_for_several_actors_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let viewer = Caller::Local("alice".into());
    let mut input = action("");
    input.action = "delete:customer_records".into();
    let assessed = engine.assess(&viewer, &input).unwrap();
    assert!(assessed.score > 0);
    let fleet = agent("fleet", &["ai_agent:fleet_*"]);
    let err = engine.decide(&fleet, decide_input("")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidArgument);
    assert!(err.to_string().contains("ai_agent:fleet_*"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventing_user_ids_escapes_no_budget_a_key_counts_under_its_own_scope() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(SystemClock), None).await;
    let admin = Caller::Local("root".into());
    engine
        .update_limits(&admin, "enabled = true\nrpm_limit = 2\n")
        .await
        .unwrap();
    let bot = agent("chat-frontend", &["ai_agent:assistant"]);
    let call = |user: &str| {
        let mut input = decide_input("ai_agent:assistant");
        input.action.action = "llm:chat".into();
        input.action.tool = "openai_api".into();
        input.action.data_classes = Vec::new();
        input.action.llm = Some(lexecon_core::LlmUsage {
            model: "gpt-4o-mini".into(),
            user_id: Some(user.to_owned()),
            estimated_input_tokens: 100,
            max_output_tokens: 100,
            ..Default::default()
        });
        input
    };
    let mut outcomes = Vec::new();
    for user in ["u1", "u2", "u3"] {
        outcomes.push(engine.decide(&bot, call(user)).await.unwrap());
    }
    let last = outcomes.last().unwrap();
    assert_eq!(last.outcome, lexecon_core::Outcome::Denied, "{last:?}");
    assert!(
        last.reasons.iter().any(|r| r.contains("key:chat-frontend")),
        "{:?}",
        last.reasons
    );
}
