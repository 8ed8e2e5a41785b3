//! Compliance in the engine: legal holds against redaction (across a restart), the
//! erasure of every copy of a redacted entry, interventions of each kind, recorded
//! verifications, ledger statistics against a brute-force count, and control statuses
//! that follow the facts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lexecon_auth::{ActorBinding, Principal, PrincipalKind, Role};
use lexecon_compliance::ControlStatus;
use lexecon_core::{Clock, ManualClock, Outcome, SystemClock};
use lexecon_ledger::EntryKind;

use super::holds::{HeldKeys, covering_hold};
use super::*;
use crate::config::{Config, Sources};
use crate::db::Database;
use crate::engine::{
    ActionInput, Caller, DecideInput, DecisionQuery, ErrorClass, EvidenceInput, OverrideEffect,
    OverrideInput, OverrideKind,
};
use crate::init::{InitOptions, init};

async fn engine_at(
    dir: &Path,
    clock: Arc<dyn Clock>,
    database_url: Option<&str>,
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
    Engine::open_local(config, clock).await.unwrap()
}

fn principal(kind: PrincipalKind, name: &str, role: Role) -> Caller {
    Caller::Principal(Principal {
        kind,
        id: format!("id_{name}"),
        name: name.to_owned(),
        role,
        mfa_verified: true,
        actors: (kind == PrincipalKind::ApiKey)
            .then(|| Arc::new(ActorBinding::new(&["ai_agent:*".to_owned()]).unwrap())),
        llm_roles: Arc::from(Vec::<String>::new()),
        created_by: (kind == PrincipalKind::ApiKey).then(|| "user:root".to_owned()),
    })
}

fn agent() -> Caller {
    principal(PrincipalKind::ApiKey, "bot", Role::Agent)
}

fn officer() -> Caller {
    principal(PrincipalKind::User, "olga", Role::ComplianceOfficer)
}

fn admin() -> Caller {
    principal(PrincipalKind::User, "root", Role::Admin)
}

fn auditor() -> Caller {
    principal(PrincipalKind::User, "ava", Role::Auditor)
}

/// The starter policy's approved read.
fn read(request_id: &str) -> DecideInput {
    DecideInput {
        action: ActionInput {
            actor: "ai_agent:customer_service".into(),
            action: "read:customer_data".into(),
            tool: "database_query".into(),
            data_classes: vec!["pii".into()],
            ..ActionInput::default()
        },
        request_id: request_id.to_owned(),
    }
}

/// The payloads of the compliance entries, with their index.
async fn compliance_entries(engine: &Engine) -> Vec<(u64, serde_json::Value)> {
    let size = engine.ledger.tree_size().await.unwrap();
    engine
        .ledger
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            e.decode_leaf()
                .is_ok_and(|l| l.kind == EntryKind::Compliance)
        })
        .map(|e| (e.index, e.payload_json().unwrap()))
        .collect()
}

async fn entry_payload(engine: &Engine, index: u64) -> Option<serde_json::Value> {
    engine
        .ledger
        .entry(index)
        .await
        .unwrap()
        .unwrap()
        .payload_json()
}

fn hold_on(decision_ids: Vec<String>) -> HoldInput {
    HoldInput {
        reason: "litigation hold for case 7".into(),
        matter: "Doe v. Example".into(),
        decision_ids,
        ..HoldInput::default()
    }
}

/// Holds block redaction, survive a reopen of the engine, and once released let it
/// through; placing and releasing are compliance entries naming their author.
async fn holds_and_redaction(dir: &Path, url: Option<&str>) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_at(dir, Arc::clone(&clock), url, |_| {}).await;
    let d = engine.decide(&agent(), read("req-1")).await.unwrap();
    assert_eq!(d.outcome, Outcome::Approved);
    let other = engine.decide(&agent(), read("")).await.unwrap();
    let hold = engine
        .place_legal_hold(&officer(), hold_on(vec![d.decision_id.to_string()]))
        .await
        .unwrap();
    assert!(hold.hold_id.starts_with("hld_"), "{hold:?}");
    assert!(hold.active);
    let placed = entry_payload(&engine, hold.ledger_index).await.unwrap();
    assert_eq!(placed["event"], "legal_hold_placed");
    assert_eq!(placed["by"], "user:olga");
    assert_eq!(placed["matter"], "Doe v. Example");

    let refused = engine
        .redact_entry(&admin(), d.ledger_index, "GDPR erasure request 9")
        .await
        .unwrap_err();
    assert_eq!(refused.class(), ErrorClass::FailedPrecondition, "{refused}");
    assert!(
        refused.to_string().contains(&hold.hold_id),
        "the refusal names the hold: {refused}"
    );
    assert!(entry_payload(&engine, d.ledger_index).await.is_some());
    // An entry the hold does not cover is redacted.
    engine
        .redact_entry(&admin(), other.ledger_index, "GDPR erasure request 8")
        .await
        .unwrap();

    // After a restart the hold still binds.
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = engine_at(dir, Arc::clone(&clock), url, |_| {}).await;
    let err = engine
        .redact_entry(&admin(), d.ledger_index, "GDPR erasure request 9")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    let listed = engine.list_legal_holds(&auditor(), false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hold_id, hold.hold_id);

    let released = engine
        .release_legal_hold(&admin(), &hold.hold_id, "case settled")
        .await
        .unwrap();
    assert!(!released.active);
    assert_eq!(released.released_by.as_deref(), Some("user:root"));
    let release_entry = entry_payload(&engine, released.release_ledger_index.unwrap())
        .await
        .unwrap();
    assert_eq!(release_entry["event"], "legal_hold_released");
    assert_eq!(release_entry["by"], "user:root");
    let again = engine
        .release_legal_hold(&admin(), &hold.hold_id, "twice")
        .await
        .unwrap_err();
    assert_eq!(again.class(), ErrorClass::FailedPrecondition, "{again}");
    assert!(
        engine
            .list_legal_holds(&auditor(), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        engine
            .list_legal_holds(&auditor(), true)
            .await
            .unwrap()
            .len(),
        1
    );

    let r = engine
        .redact_entry(&admin(), d.ledger_index, "GDPR erasure request 9")
        .await
        .unwrap();
    assert!(r.erased.contains(&"decision_index".to_owned()), "{r:?}");
    assert!(r.erased.contains(&"idempotency".to_owned()), "{r:?}");
    assert!(entry_payload(&engine, d.ledger_index).await.is_none());
    let record = entry_payload(&engine, r.ledger_index).await.unwrap();
    assert_eq!(record["event"], "entry_redacted");
    assert_eq!(record["index"], d.ledger_index);
    assert_eq!(record["by"], "user:root");
    assert_eq!(record["reason"], "GDPR erasure request 9");

    // The ledger still verifies, and the redactions are counted.
    let report = engine.verify_ledger(&auditor()).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.redacted, 2);
    let rk = engine.record_keeping_status(&auditor()).await.unwrap();
    assert_eq!(rk.redacted_entries, 2);
    let events: Vec<String> = compliance_entries(&engine)
        .await
        .into_iter()
        .map(|(_, p)| p["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "legal_hold_placed",
            "entry_redacted",
            "legal_hold_released",
            "entry_redacted",
            "ledger_verified"
        ]
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_blocks_redaction_across_a_restart_until_released() {
    let dir = tempfile::tempdir().unwrap();
    holds_and_redaction(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_blocks_redaction_on_postgres() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    holds_and_redaction(dir.path(), Some(&db.url)).await;
}

#[test]
fn a_hold_covers_entries_by_range_decision_and_actor() {
    let row = |id: &str, from: Option<&str>, to: Option<&str>, ids: &str, actor: &str| {
        vec![
            Some(id.to_owned()),
            from.map(str::to_owned),
            to.map(str::to_owned),
            Some(ids.to_owned()),
            Some(actor.to_owned()),
        ]
    };
    let keys = |index: u64, ids: &[&str], actor: Option<&str>| HeldKeys {
        index,
        decision_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        actor: actor.map(str::to_owned),
    };
    let range = [row("hld_r", Some("10"), Some("20"), "[]", "")];
    assert_eq!(covering_hold(&range, &keys(9, &[], None)), None);
    assert_eq!(
        covering_hold(&range, &keys(10, &[], None)).as_deref(),
        Some("hld_r")
    );
    assert_eq!(
        covering_hold(&range, &keys(19, &[], None)).as_deref(),
        Some("hld_r")
    );
    assert_eq!(covering_hold(&range, &keys(20, &[], None)), None);
    let open = [row("hld_o", Some("5"), None, "[]", "")];
    assert_eq!(
        covering_hold(&open, &keys(1_000_000, &[], None)).as_deref(),
        Some("hld_o")
    );
    let upto = [row("hld_u", None, Some("3"), "[]", "")];
    assert_eq!(
        covering_hold(&upto, &keys(0, &[], None)).as_deref(),
        Some("hld_u")
    );
    assert_eq!(covering_hold(&upto, &keys(3, &[], None)), None);
    let by_id = [row("hld_d", None, None, r#"["dec_A","dec_B"]"#, "")];
    assert_eq!(
        covering_hold(&by_id, &keys(1, &["dec_B"], None)).as_deref(),
        Some("hld_d")
    );
    assert_eq!(covering_hold(&by_id, &keys(1, &["dec_C"], None)), None);
    let by_actor = [row("hld_a", None, None, "[]", "ai_agent:*")];
    assert_eq!(
        covering_hold(&by_actor, &keys(1, &[], Some("ai_agent:x"))).as_deref(),
        Some("hld_a")
    );
    assert_eq!(
        covering_hold(&by_actor, &keys(1, &[], Some("human:x"))),
        None
    );
    assert_eq!(covering_hold(&by_actor, &keys(1, &[], None)), None);
    // The keys of entries: a decision's own id and actor; an oversight entry's links.
    let k = HeldKeys::of(
        4,
        Some(&serde_json::json!({"decision_id": "dec_A", "request": {"actor": "ai_agent:x"}})),
    );
    assert_eq!(k, keys(4, &["dec_A"], Some("ai_agent:x")));
    let k = HeldKeys::of(
        5,
        Some(&serde_json::json!({"decision_ids": ["dec_A", "dec_B"]})),
    );
    assert_eq!(k, keys(5, &["dec_A", "dec_B"], None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_are_validated_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_at(dir.path(), clock, None, |_| {}).await;
    let cases: Vec<(HoldInput, &str)> = vec![
        (HoldInput::default(), "reason"),
        (
            HoldInput {
                matter: String::new(),
                ..hold_on(vec!["dec_x".into()])
            },
            "matter",
        ),
        (
            HoldInput {
                decision_ids: Vec::new(),
                ..hold_on(Vec::new())
            },
            "scope",
        ),
        (
            HoldInput {
                from_index: Some(5),
                to_index: Some(5),
                ..hold_on(Vec::new())
            },
            "from_index",
        ),
        (hold_on(vec!["nope".into()]), "decision_ids[0]"),
        (
            hold_on(vec!["dec_01JAAAAAAAAAAAAAAAAAAAAAAA".into()]),
            "decision_ids[0]: no decision",
        ),
        (
            HoldInput {
                actor: "bad actor[".into(),
                ..hold_on(Vec::new())
            },
            "actor",
        ),
    ];
    for (input, field) in cases {
        let err = engine
            .place_legal_hold(&officer(), input.clone())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidArgument, "{input:?}: {err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    // Auditors may list but not place; agents may do neither.
    let err = engine
        .place_legal_hold(
            &auditor(),
            HoldInput {
                from_index: Some(0),
                ..hold_on(Vec::new())
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");
    assert!(engine.list_legal_holds(&agent(), true).await.is_err());
    let ranged = engine
        .place_legal_hold(
            &officer(),
            HoldInput {
                from_index: Some(0),
                to_index: Some(2),
                actor: "ai_agent:*".into(),
                ..hold_on(Vec::new())
            },
        )
        .await
        .unwrap();
    assert_eq!((ranged.from_index, ranged.to_index), (Some(0), Some(2)));
    let err = engine.redact_entry(&admin(), 1, "erase").await.unwrap_err();
    assert!(err.to_string().contains(&ranged.hold_id), "{err}");
    // Beyond the range, the actor glob holds a decision by its actor.
    let d = engine.decide(&agent(), read("")).await.unwrap();
    assert!(d.ledger_index >= 2);
    let err = engine
        .redact_entry(&admin(), d.ledger_index, "erase")
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&ranged.hold_id), "{err}");
    // An entry the hold does not cover (a note about no actor) is redacted.
    let note = engine
        .ledger
        .append(EntryKind::Note, serde_json::json!({"note": "about nobody"}))
        .await
        .unwrap();
    engine
        .redact_entry(&admin(), note.index, "erase")
        .await
        .unwrap();
    // Compliance records themselves are never redacted.
    let err = engine
        .redact_entry(&admin(), ranged.ledger_index, "erase")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_erases_every_copy_and_the_ledger_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_at(dir.path(), clock, None, |_| {}).await;
    let d = engine.decide(&agent(), read("req-erase")).await.unwrap();
    let token = d.capability_token.clone().unwrap();
    assert!(!token.is_empty());
    let by_actor = |actor: &str| DecisionQuery {
        actor: actor.into(),
        ..DecisionQuery::default()
    };
    let found = engine
        .query_decisions(&auditor(), by_actor("ai_agent:customer_service"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    let r = engine
        .redact_entry(&admin(), d.ledger_index, "GDPR Art. 17 request 12")
        .await
        .unwrap();
    assert_eq!(r.index, d.ledger_index);
    for name in ["payload", "decision_index", "idempotency"] {
        assert!(r.erased.contains(&name.to_owned()), "{name}: {r:?}");
    }
    // The index keeps only decision_id, decided_at and outcome; filters on the erased
    // fields never match it; unfiltered it still shows.
    let Database::Sqlite(pool) = &engine.db else {
        panic!("sqlite expected");
    };
    let row: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        i64,
        String,
    ) = sqlx::query_as(
        "SELECT actor, action, principal, risk_score, outcome, decision_id \
             FROM engine_decision_index WHERE idx = $1",
    )
    .bind(i64::try_from(d.ledger_index).unwrap())
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(row, (None, None, None, None, 1, d.decision_id.to_string()));
    let found = engine
        .query_decisions(&auditor(), by_actor("ai_agent:customer_service"))
        .await
        .unwrap();
    assert!(found.items.is_empty(), "{:?}", found.items);
    let all = engine
        .query_decisions(&auditor(), DecisionQuery::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);
    // The idempotency row answers a retry with the erased decision: same id, outcome,
    // index and time, nothing of the request, no token.
    let stored: String = sqlx::query_scalar(
        "SELECT decision FROM engine_idempotency WHERE request_id = 'req-erase'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(!stored.contains("customer_service"), "{stored}");
    let replay = engine.decide(&agent(), read("req-erase")).await.unwrap();
    assert_eq!(replay.decision_id, d.decision_id);
    assert_eq!(replay.outcome, d.outcome);
    assert_eq!(replay.ledger_index, d.ledger_index);
    assert_eq!(replay.decided_at, d.decided_at);
    assert!(replay.actor.is_empty(), "{replay:?}");
    assert!(replay.reasons.is_empty(), "{replay:?}");
    assert!(replay.capability_token.is_none(), "{replay:?}");
    // Accountability of the erased decision says it was erased, by whom and why: a
    // lawful state, not damaged data (schemathesis once found this answered DATA_LOSS).
    let err = engine
        .accountability(&auditor(), &d.decision_id.to_string())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("redacted") && text.contains("GDPR Art. 17 request 12"),
        "{text}"
    );
    // A second redaction is refused.
    let err = engine
        .redact_entry(&admin(), d.ledger_index, "again")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    // Only admins redact.
    let other = engine.decide(&agent(), read("")).await.unwrap();
    let err = engine
        .redact_entry(&officer(), other.ledger_index, "x")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");

    // Evidence: its content is erased, VerifyEvidence answers "erased".
    let registered = engine
        .register_evidence(
            &officer(),
            EvidenceInput {
                artifact_type: Some(crate::engine::ArtifactType::HumanReview),
                content: b"review notes naming a person",
                media_type: "text/plain".into(),
                title: "review of Jane Doe".into(),
                decision_ids: Vec::new(),
                control_ids: vec!["soc2:CC6.1".into()],
                signature: Vec::new(),
                signer_public_key: Vec::new(),
            },
        )
        .await
        .unwrap();
    let check = engine
        .verify_evidence(&auditor(), &registered.evidence_id)
        .await
        .unwrap();
    assert!(check.valid, "{check:?}");
    let r = engine
        .redact_entry(&admin(), registered.ledger_index, "erasure")
        .await
        .unwrap();
    assert!(r.erased.contains(&"evidence_content".to_owned()), "{r:?}");
    let chunks: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM engine_evidence_chunks WHERE evidence_id = $1")
            .bind(&registered.evidence_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(chunks, 0);
    let check = engine
        .verify_evidence(&auditor(), &registered.evidence_id)
        .await
        .unwrap();
    assert!(!check.valid);
    assert_eq!(check.problem, "erased");

    // A completion of a forwarded MCP call: its recorded arguments and result go.
    let forwarded = engine.decide(&agent(), read("")).await.unwrap();
    let done = engine
        .record_completion(
            &agent(),
            crate::engine::CompletionInput {
                decision_id: forwarded.decision_id.to_string(),
                is_error: false,
                duration_us: 1200,
                result_sha256: [7; 32],
                arguments_json: Some(r#"{"customer":"Jane Doe"}"#.into()),
                result_json: Some(r#"{"rows":1}"#.into()),
            },
        )
        .await
        .unwrap();
    let r = engine
        .redact_entry(&admin(), done.ledger_index, "erasure")
        .await
        .unwrap();
    assert!(r.erased.contains(&"mcp_completion".to_owned()), "{r:?}");
    let kept: Option<String> =
        sqlx::query_scalar("SELECT payload_json FROM engine_mcp_completions WHERE idx = $1")
            .bind(i64::try_from(done.ledger_index).unwrap())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(kept, None);

    let report = engine.verify_ledger(&auditor()).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.redacted, 3);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_are_recorded_with_their_trust_basis() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_at(dir.path(), clock, None, |_| {}).await;
    engine.decide(&agent(), read("")).await.unwrap();
    let report = engine.verify_ledger(&auditor()).await.unwrap();
    assert!(report.valid, "{report:?}");
    assert!(report.trusted_key_ring, "{report:?}");
    let at = report.recorded_at_index.unwrap();
    let entry = entry_payload(&engine, at).await.unwrap();
    assert_eq!(entry["event"], "ledger_verified");
    assert_eq!(entry["valid"], true);
    assert_eq!(entry["trusted_key_ring"], true);
    assert_eq!(entry["basis"], "key_ring");
    assert_eq!(entry["by"], "user:ava");
    assert_eq!(entry["entries"], report.entries);
    let rk = engine.record_keeping_status(&auditor()).await.unwrap();
    let last = rk.last_verification.unwrap();
    assert_eq!(
        (last.ledger_index, last.valid, last.trusted_key_ring),
        (at, true, true)
    );

    // A verification the CLI ran elsewhere, trusting database keys only.
    let local = engine
        .record_local_verification(&Caller::Local("ops".into()), &report, false)
        .await
        .unwrap();
    assert!(local > at);
    let entry = entry_payload(&engine, local).await.unwrap();
    assert_eq!(entry["basis"], "database_keys");
    assert_eq!(entry["by"], "local:ops");
    let last = engine
        .record_keeping_status(&auditor())
        .await
        .unwrap()
        .last_verification
        .unwrap();
    assert_eq!((last.ledger_index, last.trusted_key_ring), (local, false));
    engine.shutdown().await.unwrap();
}

/// Per kind, the count and first and last index of `engine`'s whole ledger, by reading
/// every entry.
async fn brute_force(engine: &Engine) -> BTreeMap<String, (u64, u64, u64)> {
    let size = engine.ledger.tree_size().await.unwrap();
    let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut from = 0;
    while from < size {
        let page = engine.ledger.entries(from, 1000).await.unwrap();
        for e in &page {
            let kind = e.decode_leaf().unwrap().kind.to_string();
            out.entry(kind)
                .and_modify(|s| {
                    s.0 += 1;
                    s.2 = e.index;
                })
                .or_insert((1, e.index, e.index));
        }
        from = page.last().unwrap().index + 1;
    }
    out
}

async fn kept_stats(engine: &Engine) -> BTreeMap<String, (u64, u64, u64)> {
    engine
        .ledger_stats()
        .await
        .unwrap()
        .by_kind
        .into_iter()
        .map(|(k, s)| (k, (s.count, s.first_index.unwrap(), s.last_index.unwrap())))
        .collect()
}

async fn statistics(dir: &Path, url: Option<&str>) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_at(dir, Arc::clone(&clock), url, |_| {}).await;
    for i in 0..40 {
        engine.decide(&agent(), read("")).await.unwrap();
        if i % 3 == 0 {
            engine
                .ledger
                .append(EntryKind::Note, serde_json::json!({"note": i}))
                .await
                .unwrap();
        }
    }
    // Steps of the sync task and on-demand catch-up add up to the same thing.
    let counted = engine.tail_ledger_stats_step().await.unwrap();
    assert!(counted > 0);
    let bulk = super::stats::TAIL_STEP + 50;
    for chunk in 0..bulk.div_ceil(500) {
        let mut tasks = Vec::new();
        for i in (chunk * 500)..((chunk + 1) * 500).min(bulk) {
            let ledger = engine.ledger.clone();
            tasks.push(tokio::spawn(async move {
                ledger
                    .append(EntryKind::Note, serde_json::json!({"bulk": i}))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    assert_eq!(kept_stats(&engine).await, brute_force(&engine).await);
    let size = engine.ledger.tree_size().await.unwrap();
    assert_eq!(engine.ledger_stats().await.unwrap().total_entries, size);

    // After a reopen the statistics continue from the mark.
    engine.shutdown().await.unwrap();
    drop(engine);
    let engine = engine_at(dir, clock, url, |_| {}).await;
    for _ in 0..7 {
        engine.decide(&agent(), read("")).await.unwrap();
    }
    let stats = kept_stats(&engine).await;
    assert_eq!(stats, brute_force(&engine).await);
    assert_eq!(
        engine
            .record_keeping_status(&auditor())
            .await
            .unwrap()
            .entries_by_kind,
        stats.iter().map(|(k, v)| (k.clone(), v.0)).collect()
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_match_a_brute_force_count_after_appends_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    statistics(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_match_a_brute_force_count_on_postgres() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    statistics(dir.path(), Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interventions_of_each_kind_do_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_at(dir.path(), clock, None, |_| {}).await;
    let input =
        |d: &crate::decision::Decision, kind, override_id: Option<String>| InterventionInput {
            decision_id: d.decision_id.to_string(),
            kind,
            reason: "the reviewer disagreed with the output".into(),
            override_id,
        };

    let d = engine.decide(&agent(), read("")).await.unwrap();
    let rec = engine
        .record_intervention(&officer(), input(&d, InterventionKind::Disregard, None))
        .await
        .unwrap();
    assert!(rec.intervention_id.starts_with("itv_"));
    assert_eq!(
        (rec.halt_id.as_ref(), rec.revoked_token_id.as_ref()),
        (None, None)
    );
    let p = entry_payload(&engine, rec.ledger_index).await.unwrap();
    assert_eq!(p["event"], "intervention_recorded");
    assert_eq!(p["kind"], "disregard");
    assert_eq!(p["by"], "user:olga");
    assert_eq!(p["decision_id"], d.decision_id.to_string());

    // Reverse: the decision's token is revoked.
    let d = engine.decide(&agent(), read("")).await.unwrap();
    let rec = engine
        .record_intervention(&officer(), input(&d, InterventionKind::Reverse, None))
        .await
        .unwrap();
    let token_id = rec.revoked_token_id.clone().unwrap();
    assert!(engine.is_revoked(&token_id.parse().unwrap()));
    assert_eq!(
        entry_payload(&engine, rec.ledger_index).await.unwrap()["token_id"],
        token_id
    );

    // Override: needs an existing override, and links it.
    let d = engine.decide(&agent(), read("")).await.unwrap();
    let err = engine
        .record_intervention(&officer(), input(&d, InterventionKind::Override, None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("override_id"), "{err}");
    let err = engine
        .record_intervention(
            &officer(),
            input(
                &d,
                InterventionKind::Override,
                Some("ovr_01JAAAAAAAAAAAAAAAAAAAAAAA".into()),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    let ovr = engine
        .create_override(
            &admin(),
            OverrideInput {
                kind: OverrideKind::RiskAccepted,
                effect: OverrideEffect::Deny,
                actor: "ai_agent:customer_service".into(),
                action: "read:*".into(),
                tool: String::new(),
                justification: "the reviewer found the read unjustified".into(),
                expires_at: engine.clock.now().add_secs(600),
            },
        )
        .await
        .unwrap();
    let rec = engine
        .record_intervention(
            &officer(),
            input(
                &d,
                InterventionKind::Override,
                Some(ovr.override_id.to_string()),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        entry_payload(&engine, rec.ledger_index).await.unwrap()["override_id"],
        ovr.override_id.to_string()
    );
    // An override in force cannot have its record redacted; once revoked it can, and
    // its row keeps none of the record's words.
    let err = engine
        .redact_entry(&admin(), ovr.ledger_index, "erasure")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("revoke it first"), "{err}");
    engine
        .revoke_override(&admin(), &ovr.override_id.to_string(), "done")
        .await
        .unwrap();
    let r = engine
        .redact_entry(&admin(), ovr.ledger_index, "erasure")
        .await
        .unwrap();
    assert!(r.erased.contains(&"override".to_owned()), "{r:?}");
    let listed = engine.list_overrides(&auditor(), true).await.unwrap();
    let row = listed
        .iter()
        .find(|o| o.override_id == ovr.override_id)
        .unwrap();
    assert!(row.justification.is_empty(), "{row:?}");

    // Stop: a halt on the decision's actor, through the Halt operation.
    let d = engine.decide(&agent(), read("")).await.unwrap();
    let rec = engine
        .record_intervention(&officer(), input(&d, InterventionKind::Stop, None))
        .await
        .unwrap();
    let halt_id = rec.halt_id.clone().unwrap();
    let halts = engine.halt_status(&auditor()).await.unwrap();
    assert_eq!(halts.len(), 1);
    assert_eq!(halts[0].halt_id.to_string(), halt_id);
    assert_eq!(halts[0].actor, "ai_agent:customer_service");
    assert_eq!(halts[0].placed_by, "user:olga");

    // Unknown decisions and agents are refused.
    let err = engine
        .record_intervention(
            &officer(),
            InterventionInput {
                decision_id: "dec_01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
                kind: InterventionKind::Disregard,
                reason: "x".into(),
                override_id: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    let err = engine
        .record_intervention(&agent(), input(&d, InterventionKind::Disregard, None))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{err}");

    // Art. 14 counts them.
    let facts = engine.gather_facts().await.unwrap();
    assert_eq!(facts.oversight.interventions, 4);
    assert_eq!(facts.oversight.interventions_by_kind.get("stop"), Some(&1));
    assert_eq!(facts.oversight.halts_active, 1);
    engine.shutdown().await.unwrap();
}

/// The status of the first control of `framework` whose evidence names `reference`.
async fn status_of(engine: &Engine, framework: &str, reference: &str) -> ControlStatus {
    let status = engine
        .compliance_status(&auditor(), framework)
        .await
        .unwrap();
    status
        .controls
        .iter()
        .find(|c| c.evidence.iter().any(|e| e.reference == reference))
        .unwrap_or_else(|| panic!("no control of {framework} rests on {reference}"))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_the_facts() {
    let dir = tempfile::tempdir().unwrap();
    let manual = ManualClock::new(SystemClock.now());
    let clock: Arc<dyn Clock> = Arc::new(manual.clone());
    let engine = engine_at(dir.path(), Arc::clone(&clock), None, |c| {
        c.auth.mfa_required_roles = vec![Role::Admin, Role::ComplianceOfficer];
    })
    .await;
    let window = "compliance.verification_max_age_secs";
    assert_eq!(
        status_of(&engine, "soc2", window).await,
        ControlStatus::NotSatisfied
    );
    engine.verify_ledger(&auditor()).await.unwrap();
    assert_eq!(
        status_of(&engine, "soc2", window).await,
        ControlStatus::Satisfied
    );
    manual.advance_secs(
        i64::try_from(engine.config.compliance.verification_max_age_secs).unwrap() + 1,
    );
    assert_eq!(
        status_of(&engine, "soc2", window).await,
        ControlStatus::NotSatisfied
    );

    // An admin with MFA: satisfied while the configuration requires MFA for admins.
    let Database::Sqlite(pool) = &engine.db else {
        panic!("sqlite expected");
    };
    sqlx::query(
        "INSERT INTO auth_users (id, username, password_hash, role, created_at, mfa_enabled) \
         VALUES ('usr_root', 'root', NULL, 'admin', 0, 1)",
    )
    .execute(pool)
    .await
    .unwrap();
    let mfa = "auth.mfa_required_roles";
    assert_eq!(
        status_of(&engine, "soc2", mfa).await,
        ControlStatus::Satisfied
    );
    let err = engine
        .compliance_status(&auditor(), "sox")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidArgument, "{err}");
    assert!(err.to_string().contains("framework"), "{err}");
    assert!(engine.compliance_status(&agent(), "soc2").await.is_err());
    engine.shutdown().await.unwrap();
    drop(engine);

    // The same deployment with MFA no longer required: the control is no longer met.
    let engine = engine_at(dir.path(), clock, None, |c| {
        c.auth.mfa_required_roles = Vec::new();
    })
    .await;
    assert_ne!(
        status_of(&engine, "soc2", mfa).await,
        ControlStatus::Satisfied
    );

    // The other read operations answer from the same facts.
    assert_eq!(engine.compliance_frameworks(&auditor()).unwrap().len(), 7);
    assert!(
        !engine
            .compliance_gaps(&auditor(), "eu_ai_act")
            .await
            .unwrap()
            .is_empty()
    );
    let doc = engine.technical_documentation(&auditor()).await.unwrap();
    assert!(!doc.markdown.is_empty());
    let report = engine
        .compliance_report(&auditor(), None, lexecon_compliance::ReportFormat::Json)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&report.content).unwrap();
    assert!(json.is_object(), "{json}");
    engine.shutdown().await.unwrap();
}
