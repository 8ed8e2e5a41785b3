//! Oversight in the engine, with a manual clock: escalation states and their exact
//! instants, the two-person rule, overrides by kind and role, halts, grants, budgets,
//! stale state, and the ledger entry (with its author) of every act.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::Path;
use std::sync::Arc;

use lexecon_auth::{ActorBinding, NewApiKey, Principal, PrincipalKind, Role};
use lexecon_core::{Clock, ManualClock, Outcome, SystemClock, Timestamp};

use super::*;
use crate::config::{Approvers, Config, Sources};
use crate::decision::{Decision, EscalationState};
use crate::engine::{ActionInput, DecideInput, ErrorClass};
use crate::init::{InitOptions, init};

/// Every request these tests make scores 80 or more (critical), so it auto-escalates
/// and needs two approvers.
fn critical(c: &mut Config) {
    c.risk.extreme_dimension = 1;
}

/// Every approved request escalates with the priority of its own (non-critical) level.
fn any_score(c: &mut Config) {
    c.risk.escalation_threshold = 1;
    c.risk.extreme_dimension = 100;
}

/// An engine on a fresh data directory under `dir` with `tweak` applied to its
/// configuration; `serving` = with its background tasks (sync, sweeper).
async fn engine_at(
    dir: &Path,
    clock: Arc<dyn Clock>,
    database_url: Option<&str>,
    serving: bool,
    tweak: impl FnOnce(&mut Config),
) -> Arc<Engine> {
    let data = dir.join("data");
    let env = crate::TEST_ENV_LOCK.lock().await;
    if !data.join("lexecon.toml").exists() {
        let options = InitOptions {
            data_dir: data.clone(),
            node_id: "test".into(),
            rsa: false,
            force: false,
        };
        init(&options, Arc::clone(&clock)).await.unwrap();
    }
    let mut config = Config::load(&Sources {
        data_dir: Some(data),
        config_file: None,
    })
    .unwrap();
    drop(env);
    if let Some(url) = database_url {
        config.database.url = Some(url.to_owned());
    }
    tweak(&mut config);
    if serving {
        Engine::open(config, clock).await.unwrap()
    } else {
        Engine::open_local(config, clock).await.unwrap()
    }
}

/// A local engine (no background sweeper: the tests drive it) on a manual clock.
async fn local(dir: &Path, tweak: impl FnOnce(&mut Config)) -> (Arc<Engine>, ManualClock) {
    let clock = ManualClock::new(SystemClock.now());
    let engine = engine_at(dir, Arc::new(clock.clone()), None, false, tweak).await;
    (engine, clock)
}

fn principal(kind: PrincipalKind, name: &str, role: Role, mfa: bool) -> Caller {
    Caller::Principal(Principal {
        kind,
        id: format!(
            "{}_{name}",
            if kind == PrincipalKind::User {
                "usr"
            } else {
                "key"
            }
        ),
        name: name.to_owned(),
        role,
        mfa_verified: mfa,
        actors: (kind == PrincipalKind::ApiKey)
            .then(|| Arc::new(ActorBinding::new(&["ai_agent:*".to_owned()]).unwrap())),
        llm_roles: Arc::from(Vec::<String>::new()),
        created_by: (kind == PrincipalKind::ApiKey).then(|| "user:root".to_owned()),
    })
}

fn agent() -> Caller {
    principal(PrincipalKind::ApiKey, "bot", Role::Agent, false)
}

fn officer(name: &str) -> Caller {
    principal(PrincipalKind::User, name, Role::ComplianceOfficer, true)
}

fn admin(name: &str) -> Caller {
    principal(PrincipalKind::User, name, Role::Admin, true)
}

/// The starter policy's approved read by `ai_agent:support`.
fn read() -> DecideInput {
    DecideInput {
        action: ActionInput {
            actor: "ai_agent:customer_service".into(),
            action: "read:customer_data".into(),
            tool: "database_query".into(),
            data_classes: vec!["pii".into()],
            ..ActionInput::default()
        },
        request_id: String::new(),
    }
}

fn with_id(mut input: DecideInput, request_id: &str) -> DecideInput {
    input.request_id = request_id.to_owned();
    input
}

/// Oversight entries in the ledger, in order, with their index.
async fn oversight_entries(engine: &Engine) -> Vec<(u64, serde_json::Value)> {
    let size = engine.ledger.tree_size().await.unwrap();
    engine
        .ledger
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            e.decode_leaf()
                .is_ok_and(|l| l.kind == lexecon_ledger::EntryKind::Oversight)
        })
        .map(|e| (e.index, e.payload_json().unwrap()))
        .collect()
}

async fn events(engine: &Engine, event: &str) -> Vec<serde_json::Value> {
    oversight_entries(engine)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p["event"] == event)
        .collect()
}

/// Decides `input` as the agent and expects an escalation.
async fn escalate(engine: &Engine, input: DecideInput) -> (Decision, String) {
    let d = engine.decide(&agent(), input).await.unwrap();
    assert_eq!(d.outcome, Outcome::Escalated, "{d:?}");
    assert_eq!(d.escalation_state, Some(EscalationState::Pending));
    let id = d.escalation_id.expect("an escalation id").to_string();
    (d, id)
}

fn in_future(engine: &Engine, secs: i64) -> Timestamp {
    engine.clock.now().add_secs(secs)
}

fn override_input(effect: OverrideEffect, kind: OverrideKind, engine: &Engine) -> OverrideInput {
    OverrideInput {
        kind,
        effect,
        actor: "ai_agent:customer_service".into(),
        action: "read:*".into(),
        tool: String::new(),
        justification: "incident 42: support must read customer records now".into(),
        expires_at: in_future(engine, 3600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_states_pending_approved_denied_expired_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), any_score).await;

    // Pending, then approved by one officer (not critical: one approver).
    let (d, approved) = escalate(&engine, read()).await;
    let view = engine
        .get_escalation(&officer("olga"), &approved)
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Pending);
    assert_eq!(view.decision_id, d.decision_id);
    assert_eq!(view.approvals_required, 1);
    assert_ne!(view.priority, EscalationPriority::Critical);
    let (view, index) = engine
        .resolve_escalation(&officer("olga"), &approved, true, "checked the ticket")
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Approved);
    assert_eq!(view.resolution.as_ref().unwrap().ledger_index, index);
    assert_eq!(view.approvals.len(), 1);
    assert!(view.grant_expires_at.is_some());
    // Resolving it again is refused.
    let err = engine
        .resolve_escalation(&officer("otto"), &approved, false, "too late")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");

    // Denied (another request: the approved one's grant would decide this one).
    let (_, denied) = escalate(&engine, resource("row-2")).await;
    let (view, _) = engine
        .resolve_escalation(&officer("olga"), &denied, false, "not today")
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Denied);
    assert!(!view.approvals.first().unwrap().approve);

    // Expired.
    let (_, expired) = escalate(&engine, resource("row-3")).await;
    let due = engine
        .get_escalation(&officer("olga"), &expired)
        .await
        .unwrap()
        .due_at;
    clock.set(due);
    let report = engine.sweep_oversight().await.unwrap();
    assert!(report.expired >= 1, "{report:?}");
    let view = engine
        .get_escalation(&officer("olga"), &expired)
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Expired);
    assert_eq!(view.resolution.unwrap().by, "system:oversight-sweeper");

    // Cancelled: the asking key is revoked (see revoking_a_key_cancels_...).
    let listed = engine
        .list_escalations(
            &officer("olga"),
            EscalationQuery {
                state: Some(EscalationState::Approved),
                ..EscalationQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|v| v.escalation_id.to_string())
            .collect::<Vec<_>>(),
        vec![approved.clone()]
    );
    // Paging: one at a time, newest first, every escalation exactly once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = engine
            .list_escalations(
                &officer("olga"),
                EscalationQuery {
                    state: None,
                    page_size: 1,
                    page_token: token.clone(),
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|v| v.escalation_id.to_string()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, vec![expired, denied, approved]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_expiry_and_warning_at_exact_instants() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), critical).await;
    let (d, id) = escalate(&engine, read()).await;
    let view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert_eq!(view.priority, EscalationPriority::Critical);
    // Defaults: critical = 7200 s, warning 3600 s before.
    assert_eq!(view.due_at, d.decided_at.add_secs(7200));
    assert_eq!(view.warn_at, d.decided_at.add_secs(3600));

    clock.set(view.warn_at.add_micros(-1));
    assert_eq!(
        engine.sweep_oversight().await.unwrap(),
        SweepReport::default()
    );
    clock.set(view.warn_at);
    let report = engine.sweep_oversight().await.unwrap();
    assert_eq!(report.warned, 1, "{report:?}");
    // Once only.
    assert_eq!(
        engine.sweep_oversight().await.unwrap(),
        SweepReport::default()
    );
    let warned = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert!(warned.warned_index.is_some());
    assert_eq!(warned.state, EscalationState::Pending);

    clock.set(view.due_at.add_micros(-1));
    assert_eq!(
        engine.sweep_oversight().await.unwrap(),
        SweepReport::default()
    );
    assert_eq!(
        engine
            .get_escalation(&officer("olga"), &id)
            .await
            .unwrap()
            .state,
        EscalationState::Pending
    );
    // At due_at it can no longer be resolved, and the sweep expires it.
    clock.set(view.due_at);
    let err = engine
        .resolve_escalation(&officer("olga"), &id, true, "just in time?")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    let report = engine.sweep_oversight().await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    let expired = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert_eq!(expired.state, EscalationState::Expired);
    assert_eq!(
        expired.warned_index, warned.warned_index,
        "the warning index is kept"
    );
    assert_eq!(events(&engine, "escalation_warned").await.len(), 1);
    assert_eq!(events(&engine, "escalation_expired").await.len(), 1);

    // A warning due at creation (warn_before > SLA) comes at once: max(created, due - warn).
    let dir2 = tempfile::tempdir().unwrap();
    let (engine2, _) = local(dir2.path(), |c| {
        critical(c);
        c.oversight.warn_before_secs = 10_000;
    })
    .await;
    let (d2, id2) = escalate(&engine2, read()).await;
    let view2 = engine2
        .get_escalation(&officer("olga"), &id2)
        .await
        .unwrap();
    assert_eq!(view2.warn_at, d2.decided_at);
    assert_eq!(engine2.sweep_oversight().await.unwrap().warned, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_is_recorded_expired_not_denied_and_stays_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), critical).await;
    let (first, id) = escalate(&engine, with_id(read(), "r-1")).await;
    let due = engine
        .get_escalation(&officer("olga"), &id)
        .await
        .unwrap()
        .due_at;
    clock.set(due);
    engine.sweep_oversight().await.unwrap();
    let expired = events(&engine, "escalation_expired").await;
    assert_eq!(expired.len(), 1);
    assert!(
        events(&engine, "escalation_resolved").await.is_empty(),
        "recorded as denied"
    );
    // The retry answers the original decision, now expired, with no token.
    let retried = engine
        .decide(&agent(), with_id(read(), "r-1"))
        .await
        .unwrap();
    assert_eq!(retried.decision_id, first.decision_id);
    assert_eq!(retried.escalation_state, Some(EscalationState::Expired));
    assert!(retried.capability_token.is_none());
    // A new request escalates again: nothing approved it.
    let (again, other) = escalate(&engine, read()).await;
    assert_ne!(other, id);
    assert!(again.capability_token.is_none());
    // The agent sees its own escalation as expired, with no token.
    let view = engine.get_escalation(&agent(), &id).await.unwrap();
    assert_eq!(view.state, EscalationState::Expired);
    assert!(view.capability_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_person_rule_same_approver_twice_does_not_count_and_self_approval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), critical).await;
    let (_, id) = escalate(&engine, read()).await;
    // The asking principal may not resolve its own escalation, whatever its role.
    let asker_admin = principal(PrincipalKind::ApiKey, "bot", Role::Admin, false);
    let err = engine
        .resolve_escalation(&asker_admin, &id, true, "I trust myself")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
    // An agent may not resolve at all (permission table).
    let err = engine
        .resolve_escalation(
            &principal(PrincipalKind::ApiKey, "other", Role::Agent, false),
            &id,
            true,
            "x",
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");

    let (view, _) = engine
        .resolve_escalation(&officer("olga"), &id, true, "looks fine")
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Pending, "one of two approvals");
    assert_eq!(view.approvals_required, 2);
    let err = engine
        .resolve_escalation(&officer("olga"), &id, true, "really fine")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    let view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert_eq!(view.state, EscalationState::Pending);
    assert_eq!(view.approvals.len(), 1);
    let (view, _) = engine
        .resolve_escalation(&admin("ada"), &id, true, "second pair of eyes")
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Approved);
    let who: Vec<_> = view
        .approvals
        .iter()
        .map(|a| a.principal.as_str())
        .collect();
    assert_eq!(who, ["user:olga", "user:ada"]);
    assert!(
        view.approvals
            .iter()
            .all(|a| a.mfa_verified && a.principal_kind == "user")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_denial_ends_a_critical_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), critical).await;
    let (_, id) = escalate(&engine, read()).await;
    engine
        .resolve_escalation(&officer("olga"), &id, true, "fine by me")
        .await
        .unwrap();
    let (view, _) = engine
        .resolve_escalation(&officer("otto"), &id, false, "not fine by me")
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Denied);
    assert_eq!(view.resolution.unwrap().by, "user:otto");
    let err = engine
        .resolve_escalation(&admin("ada"), &id, true, "overruling")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_people_needs_an_mfa_user_session_and_keys_record_their_creator() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), |c| {
        any_score(c);
        c.oversight.approvers = Approvers::People;
    })
    .await;
    let (_, id) = escalate(&engine, read()).await;
    let officer_key = principal(
        PrincipalKind::ApiKey,
        "ops-key",
        Role::ComplianceOfficer,
        false,
    );
    let err = engine
        .resolve_escalation(&officer_key, &id, true, "from a script")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
    // (With the default auth.mfa_required_roles the permission check refuses first.)
    let no_mfa = principal(PrincipalKind::User, "olga", Role::ComplianceOfficer, false);
    assert!(
        engine
            .resolve_escalation(&no_mfa, &id, true, "no second factor")
            .await
            .is_err()
    );
    engine
        .resolve_escalation(&officer("olga"), &id, true, "with MFA")
        .await
        .unwrap();

    // Under "any", a key may approve, and the approval names the key's creator.
    let dir2 = tempfile::tempdir().unwrap();
    let (engine2, _) = local(dir2.path(), any_score).await;
    let (_, id2) = escalate(&engine2, read()).await;
    let (view, _) = engine2
        .resolve_escalation(&officer_key, &id2, true, "from a script")
        .await
        .unwrap();
    let approval = view.approvals.first().unwrap();
    assert_eq!(approval.principal, "key:ops-key");
    assert_eq!(approval.principal_kind, "api_key");
    assert_eq!(approval.key_creator.as_deref(), Some("user:root"));
    assert!(!approval.mfa_verified);
    let resolved = events(&engine2, "escalation_resolved").await;
    assert_eq!(resolved.first().unwrap()["key_creator"], "user:root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_by_kind_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), |_| {}).await;
    let approve = |kind| override_input(OverrideEffect::Approve, kind, &engine);
    // An agent cannot create one (permission table).
    let err = engine
        .create_override(&agent(), approve(OverrideKind::RiskAccepted))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
    // An officer cannot create an approving emergency bypass or executive override...
    for kind in [
        OverrideKind::EmergencyBypass,
        OverrideKind::ExecutiveOverride,
    ] {
        let err = engine
            .create_override(&officer("olga"), approve(kind))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::PermissionDenied, "{kind:?}: {err}");
        // ...but may create a denying one, and an admin an approving one.
        engine
            .create_override(
                &officer("olga"),
                override_input(OverrideEffect::Deny, kind, &engine),
            )
            .await
            .unwrap();
        engine
            .create_override(&admin("ada"), approve(kind))
            .await
            .unwrap();
    }
    // An officer's approving override must name actors and actions.
    for (actor, action, field) in [("*", "read:*", "actor"), ("ai_agent:*", "**", "action")] {
        let input = OverrideInput {
            actor: actor.into(),
            action: action.into(),
            ..approve(OverrideKind::TimeLimitedException)
        };
        let err = engine
            .create_override(&officer("olga"), input.clone())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
        assert!(err.to_string().starts_with(field), "{err}");
        engine.create_override(&admin("ada"), input).await.unwrap();
    }
    engine
        .create_override(&officer("olga"), approve(OverrideKind::RiskAccepted))
        .await
        .unwrap();
    // Justification and expiry bounds, and the globs, name their field.
    let bad = [
        (
            OverrideInput {
                justification: "too short".into(),
                ..approve(OverrideKind::RiskAccepted)
            },
            "justification",
        ),
        (
            OverrideInput {
                expires_at: engine.clock.now(),
                ..approve(OverrideKind::RiskAccepted)
            },
            "expires_at",
        ),
        (
            OverrideInput {
                expires_at: in_future(&engine, 86_401),
                ..approve(OverrideKind::RiskAccepted)
            },
            "expires_at",
        ),
        (
            OverrideInput {
                actor: "bad actor".into(),
                ..approve(OverrideKind::RiskAccepted)
            },
            "actor",
        ),
        (
            OverrideInput {
                tool: "bad tool".into(),
                ..approve(OverrideKind::RiskAccepted)
            },
            "tool",
        ),
    ];
    for (input, field) in bad {
        let err = engine
            .create_override(&admin("ada"), input)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidArgument, "{err}");
        assert!(err.to_string().starts_with(field), "{field}: {err}");
    }
    // Listed newest first, with author and role; revoked ones only with include_inactive.
    let listed = engine
        .list_overrides(&officer("olga"), false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 7);
    let newest = listed.first().unwrap();
    assert_eq!(newest.created_by, "user:olga");
    assert_eq!(newest.creator_role, "compliance_officer");
    let revoked = engine
        .revoke_override(&officer("otto"), &newest.override_id.to_string(), "done")
        .await
        .unwrap();
    assert_eq!(revoked.revoked.as_ref().unwrap().by, "user:otto");
    let err = engine
        .revoke_override(&officer("otto"), &newest.override_id.to_string(), "again")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    assert_eq!(
        engine
            .list_overrides(&officer("olga"), false)
            .await
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        engine
            .list_overrides(&officer("olga"), true)
            .await
            .unwrap()
            .len(),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_decide_and_are_named_in_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), |_| {}).await;
    let approved = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(approved.outcome, Outcome::Approved, "{approved:?}");
    // A deny override denies an approved request.
    let deny = engine
        .create_override(
            &officer("olga"),
            override_input(OverrideEffect::Deny, OverrideKind::RiskAccepted, &engine),
        )
        .await
        .unwrap();
    let d = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Denied);
    assert_eq!(d.reasons, [format!("override:{}", deny.override_id)]);
    assert_eq!(d.override_id, Some(deny.override_id));
    let entry = engine.ledger.entry(d.ledger_index).await.unwrap().unwrap();
    assert_eq!(
        entry.payload_json().unwrap()["override_id"],
        deny.override_id.to_string()
    );
    // Other actors and actions are untouched.
    let mut other = read();
    other.action.actor = "ai_agent:other".into();
    assert!(
        engine
            .decide(&agent(), other)
            .await
            .unwrap()
            .override_id
            .is_none()
    );
    // Revoked: no longer applies, at once.
    engine
        .revoke_override(&officer("olga"), &deny.override_id.to_string(), "resolved")
        .await
        .unwrap();
    assert_eq!(
        engine.decide(&agent(), read()).await.unwrap().outcome,
        Outcome::Approved
    );

    // An approve override approves what the policy denied, until it expires.
    let mut denied = read();
    denied.action.action = "delete:customer_data".into();
    let before = engine.decide(&agent(), denied.clone()).await.unwrap();
    assert_eq!(before.outcome, Outcome::Denied, "{before:?}");
    let approve = engine
        .create_override(
            &admin("ada"),
            OverrideInput {
                action: "delete:*".into(),
                ..override_input(
                    OverrideEffect::Approve,
                    OverrideKind::EmergencyBypass,
                    &engine,
                )
            },
        )
        .await
        .unwrap();
    let d = engine.decide(&agent(), denied.clone()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Approved, "{d:?}");
    assert_eq!(d.reasons, [format!("override:{}", approve.override_id)]);
    assert!(d.capability_token.is_some());
    clock.set(approve.expires_at);
    let d = engine.decide(&agent(), denied).await.unwrap();
    assert_eq!(
        d.outcome,
        Outcome::Denied,
        "an expired override still applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_beats_override_and_grant_and_replay_answers_during_a_halt() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), any_score).await;
    // An approved grant waiting to be used.
    let (_, id) = escalate(&engine, read()).await;
    engine
        .resolve_escalation(&officer("olga"), &id, true, "ok")
        .await
        .unwrap();
    // An approve override for the same request.
    engine
        .create_override(
            &admin("ada"),
            override_input(
                OverrideEffect::Approve,
                OverrideKind::EmergencyBypass,
                &engine,
            ),
        )
        .await
        .unwrap();
    // A decision made before the halt, with a request_id.
    let mut other = with_id(read(), "before-halt");
    other.action.action = "read:orders".into();
    let before = engine.decide(&agent(), other.clone()).await.unwrap();

    let halt = engine
        .halt(&officer("olga"), "ai_agent:cust*", "agent misbehaving")
        .await
        .unwrap();
    let d = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Denied);
    assert_eq!(d.reasons, [format!("halted:{}", halt.halt_id)]);
    assert!(d.capability_token.is_none());
    // The grant stays unused.
    let view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert!(view.grant_used_at.is_none());
    // Other actors are not halted.
    let mut free = read();
    free.action.actor = "ai_agent:billing".into();
    let d = engine.decide(&agent(), free).await.unwrap();
    assert!(!d.reasons.iter().any(|r| r.starts_with("halted:")), "{d:?}");
    // A replay answers as stored, even during the halt.
    let replayed = engine.decide(&agent(), other).await.unwrap();
    assert_eq!(replayed, before);

    let status = engine.halt_status(&agent()).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status.first().unwrap().placed_by, "user:olga");
    engine
        .resume(&admin("ada"), &halt.halt_id.to_string(), "fixed")
        .await
        .unwrap();
    let err = engine
        .resume(&admin("ada"), &halt.halt_id.to_string(), "again")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    assert!(engine.halt_status(&agent()).await.unwrap().is_empty());
    // After the resume the grant is used first (it comes before overrides).
    let d = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Approved);
    assert_eq!(d.reasons, [format!("escalation:{id}")]);

    // A global halt stops every actor.
    let all = engine
        .halt(&admin("ada"), "", "stop everything")
        .await
        .unwrap();
    let d = engine
        .decide(&agent(), free_actor("ai_agent:billing"))
        .await
        .unwrap();
    assert_eq!(d.reasons, [format!("halted:{}", all.halt_id)]);
}

/// The read, of one resource.
fn resource(name: &str) -> DecideInput {
    let mut input = read();
    input.action.context.insert("resource".into(), name.into());
    input
}

fn free_actor(actor: &str) -> DecideInput {
    let mut input = read();
    input.action.actor = actor.into();
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_override_beats_grant_and_grant_is_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), any_score).await;
    let (_, id) = escalate(&engine, read()).await;
    engine
        .resolve_escalation(&officer("olga"), &id, true, "ok")
        .await
        .unwrap();
    let deny = engine
        .create_override(
            &officer("olga"),
            override_input(OverrideEffect::Deny, OverrideKind::RiskAccepted, &engine),
        )
        .await
        .unwrap();
    let d = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Denied);
    assert_eq!(d.override_id, Some(deny.override_id));
    engine
        .revoke_override(&officer("olga"), &deny.override_id.to_string(), "done")
        .await
        .unwrap();
    // Another principal's identical request does not get the grant.
    let other_agent = principal(PrincipalKind::ApiKey, "bot2", Role::Agent, false);
    let d = engine.decide(&other_agent, read()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Escalated);
    // A different request of the same principal does not either.
    let mut different = read();
    different
        .action
        .context
        .insert("resource".into(), "row-7".into());
    assert_eq!(
        engine.decide(&agent(), different).await.unwrap().outcome,
        Outcome::Escalated
    );
    // The same request uses it, once.
    let used = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(used.outcome, Outcome::Approved);
    assert_eq!(used.escalation_id.map(|e| e.to_string()), Some(id.clone()));
    assert!(used.capability_token.is_some());
    let grant = events(&engine, "escalation_grant_used").await;
    assert_eq!(grant.len(), 1);
    assert_eq!(
        grant.first().unwrap()["used_by_decision_id"],
        used.decision_id.to_string()
    );
    // The decision entry and the grant entry are consecutive (one group).
    let entries = oversight_entries(&engine).await;
    assert_eq!(entries.last().unwrap().0, used.ledger_index + 1);
    let again = engine.decide(&agent(), read()).await.unwrap();
    assert_eq!(again.outcome, Outcome::Escalated, "a grant is used once");
    let view = engine.get_escalation(&agent(), &id).await.unwrap();
    assert_eq!(view.grant_decision_id, Some(used.decision_id));
    assert!(
        view.capability_token.is_none(),
        "path (b) tokens belong to their decision"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_with_request_id_returns_same_decision_then_same_token_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), any_score).await;
    let (first, id) = escalate(&engine, with_id(read(), "r-1")).await;
    // Pending: the retry is the same decision, still pending, no token.
    let retry = engine
        .decide(&agent(), with_id(read(), "r-1"))
        .await
        .unwrap();
    assert_eq!(retry.decision_id, first.decision_id);
    assert_eq!(retry.ledger_index, first.ledger_index);
    assert_eq!(retry.escalation_state, Some(EscalationState::Pending));
    assert!(retry.capability_token.is_none());
    // Other principals never see the token; officers see its id only.
    engine
        .resolve_escalation(&officer("olga"), &id, true, "ok")
        .await
        .unwrap();
    let officer_view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert!(officer_view.capability_token.is_none());
    assert!(
        officer_view.grant_used_at.is_none(),
        "an officer's look uses nothing"
    );
    // The agent's retry uses the grant (path a): a token for the original decision.
    let retry = engine
        .decide(&agent(), with_id(read(), "r-1"))
        .await
        .unwrap();
    assert_eq!(retry.outcome, Outcome::Escalated);
    assert_eq!(retry.decision_id, first.decision_id);
    assert_eq!(retry.ledger_index, first.ledger_index);
    assert_eq!(retry.escalation_state, Some(EscalationState::Approved));
    let token = retry
        .capability_token
        .clone()
        .expect("a token once approved");
    let check = engine
        .verify_token(
            &officer("olga"),
            &crate::engine::VerifyTokenInput {
                token: token.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let claims = check.claims.expect("the token verifies");
    assert_eq!(claims.decision_id, first.decision_id);
    // Every later fetch, by either path, gives the same bytes until it expires.
    clock.advance_secs(60);
    let again = engine
        .decide(&agent(), with_id(read(), "r-1"))
        .await
        .unwrap();
    assert_eq!(again.capability_token.as_deref(), Some(token.as_str()));
    let view = engine.get_escalation(&agent(), &id).await.unwrap();
    assert_eq!(view.capability_token.as_deref(), Some(token.as_str()));
    assert_eq!(view.token_id, Some(claims.token_id));
    let officer_view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert!(officer_view.capability_token.is_none());
    assert_eq!(officer_view.token_id, Some(claims.token_id));
    assert_eq!(events(&engine, "escalation_grant_used").await.len(), 1);
    // The token is nowhere in the ledger.
    let text = serde_json::to_string(&oversight_entries(&engine).await).unwrap();
    assert!(!text.contains(&token));
    // A new decision of the same request does not get a second grant.
    assert_eq!(
        engine.decide(&agent(), read()).await.unwrap().outcome,
        Outcome::Escalated
    );
    // Once the token expired, it is not handed out again.
    clock.set(claims.expires_at);
    let late = engine
        .decide(&agent(), with_id(read(), "r-1"))
        .await
        .unwrap();
    assert!(late.capability_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_grant_lapses_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), any_score).await;
    let (_, id) = escalate(&engine, read()).await;
    let (view, _) = engine
        .resolve_escalation(&officer("olga"), &id, true, "ok")
        .await
        .unwrap();
    let until = view.grant_expires_at.unwrap();
    clock.set(until.add_micros(-1));
    assert_eq!(engine.sweep_oversight().await.unwrap().lapsed, 0);
    clock.set(until);
    assert_eq!(engine.sweep_oversight().await.unwrap().lapsed, 1);
    assert_eq!(engine.sweep_oversight().await.unwrap().lapsed, 0);
    assert_eq!(events(&engine, "escalation_grant_lapsed").await.len(), 1);
    assert_eq!(
        engine.decide(&agent(), read()).await.unwrap().outcome,
        Outcome::Escalated
    );
    let view = engine.get_escalation(&agent(), &id).await.unwrap();
    assert!(view.capability_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_override_does_not_skip_a_critical_two_person_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), critical).await;
    let ovr = engine
        .create_override(
            &admin("ada"),
            override_input(
                OverrideEffect::Approve,
                OverrideKind::ExecutiveOverride,
                &engine,
            ),
        )
        .await
        .unwrap();
    let (d, id) = escalate(&engine, read()).await;
    assert_eq!(d.override_id, Some(ovr.override_id));
    let view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert_eq!(view.override_id, Some(ovr.override_id));
    assert_eq!(view.approvals_required, 2);
    // Without the two-person rule the override approves it.
    let dir2 = tempfile::tempdir().unwrap();
    let (engine2, _) = local(dir2.path(), |c| {
        critical(c);
        c.oversight.two_person_rule = false;
    })
    .await;
    let ovr2 = engine2
        .create_override(
            &admin("ada"),
            override_input(
                OverrideEffect::Approve,
                OverrideKind::ExecutiveOverride,
                &engine2,
            ),
        )
        .await
        .unwrap();
    let d = engine2.decide(&agent(), read()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Approved);
    assert_eq!(d.reasons, [format!("override:{}", ovr2.override_id)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_never_lifts_a_budget_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), |_| {}).await;
    let root = Caller::Local("root".into());
    engine
        .update_limits(&root, "enabled = true\nmax_tokens_per_request = 10\n")
        .await
        .unwrap();
    let mut call = free_actor("ai_agent:assistant");
    call.action.action = "llm:chat".into();
    call.action.tool = "openai_api".into();
    call.action.data_classes = Vec::new();
    call.action.llm = Some(lexecon_core::LlmUsage {
        model: "gpt-4o-mini".into(),
        estimated_input_tokens: 100,
        max_output_tokens: 100,
        ..Default::default()
    });
    let before = engine.decide(&agent(), call.clone()).await.unwrap();
    assert_eq!(before.outcome, Outcome::Denied, "{before:?}");
    engine
        .create_override(
            &admin("ada"),
            OverrideInput {
                actor: "ai_agent:assistant".into(),
                action: "llm:*".into(),
                ..override_input(
                    OverrideEffect::Approve,
                    OverrideKind::EmergencyBypass,
                    &engine,
                )
            },
        )
        .await
        .unwrap();
    let d = engine.decide(&agent(), call).await.unwrap();
    assert_eq!(d.outcome, Outcome::Denied, "{d:?}");
    assert!(
        d.reasons.iter().all(|r| r.starts_with("budget.")),
        "{:?}",
        d.reasons
    );
    assert!(d.override_id.is_none());
    assert!(d.capability_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalated_llm_call_is_checked_against_budgets_not_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), any_score).await;
    let root = Caller::Local("root".into());
    engine
        .update_limits(&root, "enabled = true\nmax_tokens_per_request = 10\n")
        .await
        .unwrap();
    let mut call = free_actor("ai_agent:assistant");
    call.action.action = "llm:chat".into();
    call.action.tool = "openai_api".into();
    call.action.data_classes = Vec::new();
    call.action.llm = Some(lexecon_core::LlmUsage {
        model: "gpt-4o-mini".into(),
        estimated_input_tokens: 100,
        max_output_tokens: 100,
        ..Default::default()
    });
    let d = engine.decide(&agent(), call.clone()).await.unwrap();
    assert_eq!(d.outcome, Outcome::Denied, "{d:?}");
    assert!(
        d.escalation_id.is_none(),
        "a refused call creates no escalation"
    );
    // Within limits it escalates, holding no reservation.
    engine
        .update_limits(&root, "enabled = true\nmax_tokens_per_request = 1000\n")
        .await
        .unwrap();
    let d = engine.decide(&agent(), call).await.unwrap();
    assert_eq!(d.outcome, Outcome::Escalated, "{d:?}");
    assert!(d.reservation_id.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_cancels_its_pending_escalations() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), any_score).await;
    let me = Caller::Local("alice".into());
    let created = engine
        .create_api_key(
            &me,
            NewApiKey {
                actors: vec!["ai_agent:*".into()],
                ..NewApiKey::new("bot", Role::Agent)
            },
        )
        .await
        .unwrap();
    let bot = engine.authenticate(created.api_key.expose()).await.unwrap();
    let d1 = engine.decide(&bot, read()).await.unwrap();
    let d2 = engine.decide(&bot, read()).await.unwrap();
    let (pending, resolved) = (
        d1.escalation_id.unwrap().to_string(),
        d2.escalation_id.unwrap().to_string(),
    );
    engine
        .resolve_escalation(&officer("olga"), &resolved, false, "no")
        .await
        .unwrap();
    // Another principal's escalation is untouched.
    let (_, others) = escalate(&engine, read()).await;
    engine.revoke_api_key(&me, &created.key_id).await.unwrap();
    let view = engine
        .get_escalation(&officer("olga"), &pending)
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Cancelled);
    assert_eq!(view.resolution.unwrap().by, "local:alice");
    assert_eq!(
        engine
            .get_escalation(&officer("olga"), &resolved)
            .await
            .unwrap()
            .state,
        EscalationState::Denied
    );
    assert_eq!(
        engine
            .get_escalation(&officer("olga"), &others)
            .await
            .unwrap()
            .state,
        EscalationState::Pending
    );
    let cancelled = events(&engine, "escalation_cancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled.first().unwrap()["by"], "local:alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_gets_only_its_own_escalations() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), any_score).await;
    let (_, id) = escalate(&engine, read()).await;
    let other = principal(PrincipalKind::ApiKey, "bot2", Role::Agent, false);
    let err = engine.get_escalation(&other, &id).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    let err = engine
        .list_escalations(&agent(), EscalationQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
    let err = engine
        .get_escalation(&officer("olga"), "esc_nope")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidArgument, "{err}");
    assert!(err.to_string().starts_with("escalation_id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_oversight_act_is_ledgered_with_its_author() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = local(dir.path(), critical).await;
    let key_officer = principal(PrincipalKind::ApiKey, "ops", Role::ComplianceOfficer, false);
    let local = Caller::Local("alice".into());
    let (_, id) = escalate(&engine, read()).await;
    engine
        .resolve_escalation(&officer("olga"), &id, true, "one")
        .await
        .unwrap();
    engine
        .resolve_escalation(&key_officer, &id, true, "two")
        .await
        .unwrap();
    engine.get_escalation(&agent(), &id).await.unwrap();
    let (_, id2) = escalate(&engine, read()).await;
    let view = engine.get_escalation(&local, &id2).await.unwrap();
    clock.set(view.warn_at);
    engine.sweep_oversight().await.unwrap();
    clock.set(view.due_at);
    engine.sweep_oversight().await.unwrap();
    let ovr = engine
        .create_override(
            &key_officer,
            override_input(OverrideEffect::Deny, OverrideKind::RiskAccepted, &engine),
        )
        .await
        .unwrap();
    engine
        .revoke_override(&local, &ovr.override_id.to_string(), "done")
        .await
        .unwrap();
    let halt = engine.halt(&admin("ada"), "", "stop").await.unwrap();
    engine
        .resume(&officer("otto"), &halt.halt_id.to_string(), "go")
        .await
        .unwrap();

    let expected = [
        ("escalation_created", "key:bot"),
        ("escalation_resolved", "user:olga"),
        ("escalation_resolved", "key:ops"),
        ("escalation_grant_used", "key:bot"),
        ("escalation_created", "key:bot"),
        ("escalation_warned", "system:oversight-sweeper"),
        ("escalation_expired", "system:oversight-sweeper"),
        ("override_created", "key:ops"),
        ("override_revoked", "local:alice"),
        ("halt_placed", "user:ada"),
        ("halt_resumed", "user:otto"),
    ];
    let got: Vec<(String, String)> = oversight_entries(&engine)
        .await
        .into_iter()
        .map(|(_, p)| {
            (
                p["event"].as_str().unwrap().to_owned(),
                p["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(e, b)| ((*e).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_oversight_state_is_unavailable_never_approved() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(SystemClock), None, true, |_| {}).await;
    // Serving: the sync task keeps the copy fresh.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        engine.decide(&agent(), read()).await.unwrap().outcome,
        Outcome::Approved
    );
    let crate::db::Database::Sqlite(pool) = &engine.db else {
        unreachable!("the default database is SQLite")
    };
    // The halts table becomes unreadable: refreshes fail from now on.
    sqlx::query("ALTER TABLE engine_halts RENAME TO engine_halts_gone")
        .execute(pool)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    let err = engine.decide(&agent(), read()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");
    assert!(err.to_string().contains("oversight state"), "{err}");
    // Restored: decisions resume within a sync period.
    sqlx::query("ALTER TABLE engine_halts_gone RENAME TO engine_halts")
        .execute(pool)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(
        engine.decide(&agent(), read()).await.unwrap().outcome,
        Outcome::Approved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_engine_refreshes_inline_and_is_unavailable_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), |_| {}).await;
    assert_eq!(
        engine.decide(&agent(), read()).await.unwrap().outcome,
        Outcome::Approved
    );
    let crate::db::Database::Sqlite(pool) = &engine.db else {
        unreachable!("the default database is SQLite")
    };
    sqlx::query("ALTER TABLE engine_overrides RENAME TO engine_overrides_gone")
        .execute(pool)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let err = engine.decide(&agent(), read()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_change_and_entry_are_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), any_score).await;
    let (_, id) = escalate(&engine, read()).await;
    let crate::db::Database::Sqlite(pool) = &engine.db else {
        unreachable!("the default database is SQLite")
    };
    // The approvals table is gone: resolving fails, and neither the entry nor the
    // state change is written.
    sqlx::query("ALTER TABLE engine_escalation_approvals RENAME TO gone")
        .execute(pool)
        .await
        .unwrap();
    let size = engine.ledger.tree_size().await.unwrap();
    assert!(
        engine
            .resolve_escalation(&officer("olga"), &id, true, "ok")
            .await
            .is_err()
    );
    assert_eq!(engine.ledger.tree_size().await.unwrap(), size);
    sqlx::query("ALTER TABLE gone RENAME TO engine_escalation_approvals")
        .execute(pool)
        .await
        .unwrap();
    let view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    assert_eq!(view.state, EscalationState::Pending);
    assert!(view.approvals.is_empty());
    // The claim was given back: the same resolution now succeeds.
    let (view, _) = engine
        .resolve_escalation(&officer("olga"), &id, true, "ok")
        .await
        .unwrap();
    assert_eq!(view.state, EscalationState::Approved);

    // A halt whose side row cannot be written is not placed.
    sqlx::query("ALTER TABLE engine_halts RENAME TO gone_halts")
        .execute(pool)
        .await
        .unwrap();
    assert!(engine.halt(&admin("ada"), "", "stop").await.is_err());
    sqlx::query("ALTER TABLE gone_halts RENAME TO engine_halts")
        .execute(pool)
        .await
        .unwrap();
    assert!(events(&engine, "halt_placed").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_halt_reaches_another_engine_within_2s_and_a_grant_is_used_once() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = engine_at(
        dir.path(),
        Arc::new(SystemClock),
        Some(&db.url),
        true,
        any_score,
    )
    .await;
    let b = engine_at(
        dir.path(),
        Arc::new(SystemClock),
        Some(&db.url),
        true,
        any_score,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A grant, raced by both engines: used exactly once.
    let (_, id) = escalate(&a, read()).await;
    a.resolve_escalation(&officer("olga"), &id, true, "ok")
        .await
        .unwrap();
    let bot = agent();
    let (da, db_) = tokio::join!(a.decide(&bot, read()), b.decide(&bot, read()));
    let outcomes = [da.unwrap().outcome, db_.unwrap().outcome];
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Approved).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(events(&a, "escalation_grant_used").await.len(), 1);

    // A halt placed on A stops B within 2 seconds.
    let placed = std::time::Instant::now();
    let halt = a.halt(&officer("olga"), "", "stop").await.unwrap();
    loop {
        let d = b.decide(&agent(), read()).await.unwrap();
        if d.reasons == [format!("halted:{}", halt.halt_id)] {
            break;
        }
        assert!(
            placed.elapsed() < std::time::Duration::from_secs(2),
            "B still decides"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(placed.elapsed() < std::time::Duration::from_secs(2));

    a.resume(&officer("olga"), &halt.halt_id.to_string(), "go")
        .await
        .unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_sweepers_expire_and_warn_each_escalation_once() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemClock.now());
    let a = engine_at(
        dir.path(),
        Arc::new(clock.clone()),
        Some(&db.url),
        false,
        any_score,
    )
    .await;
    let b = engine_at(
        dir.path(),
        Arc::new(clock.clone()),
        Some(&db.url),
        false,
        any_score,
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(escalate(&a, read()).await.1);
    }
    let view = b
        .get_escalation(&officer("olga"), ids.first().unwrap())
        .await
        .unwrap();
    for (at, field) in [(view.warn_at, "warned"), (view.due_at, "expired")] {
        clock.set(at.add_secs(1));
        let (ra, rb) = tokio::join!(a.sweep_oversight(), b.sweep_oversight());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let total = if field == "warned" {
            ra.warned + rb.warned
        } else {
            ra.expired + rb.expired
        };
        assert_eq!(total, 5, "{field}: {ra:?} {rb:?}");
    }
    assert_eq!(events(&a, "escalation_warned").await.len(), 5);
    assert_eq!(events(&a, "escalation_expired").await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paranoid_escalation_for_the_callers_risk_level_is_at_least_high() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = local(dir.path(), |_| {}).await;
    let mut input = read();
    input.action.mode = Some(lexecon_core::PolicyMode::Paranoid);
    input.action.risk_level = 4;
    let (d, id) = escalate(&engine, input).await;
    assert!(
        d.reasons.iter().any(|r| r == "paranoid-risk-level"),
        "{d:?}"
    );
    let view = engine.get_escalation(&officer("olga"), &id).await.unwrap();
    // The request's own level is below high, so the floor is what is shown here.
    assert!(
        EscalationPriority::of(d.risk_level) < EscalationPriority::High,
        "{d:?}"
    );
    let expected = EscalationPriority::High;
    assert_eq!(view.priority, expected, "risk level {:?}", d.risk_level);
    // High: 28800 s by default, one approver.
    assert_eq!(view.due_at, d.decided_at.add_secs(28_800));
    assert_eq!(view.approvals_required, 1);
    // The decision's entry names its escalation.
    let entry = engine.ledger.entry(d.ledger_index).await.unwrap().unwrap();
    let payload = entry.payload_json().unwrap();
    assert_eq!(payload["escalation"]["escalation_id"], id);
    assert_eq!(payload["escalation"]["priority"], expected.as_str());
    let created = events(&engine, "escalation_created").await;
    assert_eq!(
        created.first().unwrap()["decision_id"],
        d.decision_id.to_string()
    );
}
