//! The evidence suite (contract §7), run on SQLite and on PostgreSQL: content
//! addressing, duplicate registration, signatures accepted and refused, the size limit,
//! tampering found by `verify_evidence`, and refused registrations that change nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;

use ed25519_dalek::Signer as _;
use lexecon_core::SystemClock;
use sha2::{Digest as _, Sha256};

use super::evidence::{ArtifactType, EVIDENCE_CHUNK_BYTES, EvidenceFilter, EvidenceInput};
use super::payload::hex;
use super::*;

/// The compliance officer these tests register as (a local caller may do everything).
fn officer() -> Caller {
    Caller::Local("officer".into())
}

/// `n` bytes that differ from those of any other `seed`.
fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn id_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn input(artifact_type: ArtifactType, bytes: &[u8]) -> EvidenceInput<'_> {
    EvidenceInput {
        artifact_type: Some(artifact_type),
        content: bytes,
        media_type: "application/pdf".into(),
        title: "quarterly model review".into(),
        ..EvidenceInput::default()
    }
}

/// A decision to link evidence to.
async fn decision(engine: &Engine) -> String {
    let decided = engine
        .decide(
            &Caller::Local("alice".into()),
            DecideInput {
                action: super::door_tests::action("ai_agent:customer_service"),
                request_id: String::new(),
            },
        )
        .await
        .unwrap();
    decided.decision_id.to_string()
}

/// Runs one statement as someone with write access to the database.
async fn execute(engine: &Engine, sql: &str, id: &str) -> u64 {
    match &engine.db {
        Database::Sqlite(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Database::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
    }
}

/// Overwrites chunk `seq` of `id` as someone with write access to the database would.
async fn set_chunk(engine: &Engine, id: &str, seq: i64, data: &[u8]) -> u64 {
    let sql = "UPDATE engine_evidence_chunks SET data = $1 WHERE evidence_id = $2 AND seq = $3";
    match &engine.db {
        Database::Sqlite(pool) => sqlx::query(sql)
            .bind(data)
            .bind(id)
            .bind(seq)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Database::Postgres(pool) => sqlx::query(sql)
            .bind(data)
            .bind(id)
            .bind(seq)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
    }
}

async fn count(engine: &Engine, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match &engine.db {
        Database::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
    }
}

/// The ledger's size and the row count of every evidence table.
async fn state(engine: &Engine) -> (u64, [i64; 3]) {
    (
        engine.ledger.tree_size().await.unwrap(),
        [
            count(engine, "engine_evidence").await,
            count(engine, "engine_evidence_chunks").await,
            count(engine, "engine_evidence_links").await,
        ],
    )
}

async fn refused(engine: &Engine, input: EvidenceInput<'_>) -> String {
    match engine.register_evidence(&officer(), input).await {
        Err(e @ EngineError::InvalidArgument(_)) => e.to_string(),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

async fn payload_at(engine: &Engine, index: u64) -> serde_json::Value {
    let entry = engine.ledger.entry(index).await.unwrap().unwrap();
    assert_eq!(
        entry.decode_leaf().unwrap().kind,
        lexecon_ledger::EntryKind::EvidenceRegistered
    );
    entry.payload_json().unwrap()
}

/// The id is `sha256:` + the hex digest; the bytes come back whole from several
/// chunks; the entry records hash, type, size, links and registrant, never the content.
async fn content_addressing(engine: &Engine) {
    let bytes = content(1, 2 * EVIDENCE_CHUNK_BYTES + 12_345);
    let decision_id = decision(engine).await;
    let mut registration = input(ArtifactType::TestResult, &bytes);
    registration.decision_ids = vec![decision_id.clone()];
    registration.control_ids = vec!["soc2:CC6.1".into()];
    let registered = engine
        .register_evidence(&officer(), registration)
        .await
        .unwrap();
    assert_eq!(registered.evidence_id, id_of(&bytes));
    assert!(registered.newly_registered);
    assert_eq!(registered.artifact_type, ArtifactType::TestResult);
    let chunks: i64 = {
        let sql = "SELECT COUNT(*) FROM engine_evidence_chunks WHERE evidence_id = $1";
        match &engine.db {
            Database::Sqlite(pool) => sqlx::query_scalar(sql)
                .bind(&registered.evidence_id)
                .fetch_one(pool)
                .await
                .unwrap(),
            Database::Postgres(pool) => sqlx::query_scalar(sql)
                .bind(&registered.evidence_id)
                .fetch_one(pool)
                .await
                .unwrap(),
        }
    };
    assert_eq!(chunks, 3, "chunks of at most 1 MiB");

    let (record, back) = engine
        .get_evidence(&officer(), &registered.evidence_id, true)
        .await
        .unwrap();
    assert_eq!(
        back.as_deref(),
        Some(bytes.as_slice()),
        "the bytes come back whole"
    );
    assert_eq!(record.size, bytes.len() as u64);
    assert_eq!(record.decision_ids, vec![decision_id.clone()]);
    assert_eq!(record.control_ids, ["soc2:CC6.1"]);
    assert_eq!(record.media_type, "application/pdf");
    assert_eq!(record.registered_by, "local:officer");
    assert_eq!(record.ledger_index, registered.ledger_index);
    assert!(!record.signed);
    let (_, none) = engine
        .get_evidence(&officer(), &registered.evidence_id, false)
        .await
        .unwrap();
    assert!(none.is_none());

    let payload = payload_at(engine, registered.ledger_index).await;
    assert_eq!(payload["evidence_id"], registered.evidence_id.as_str());
    assert_eq!(payload["sha256"], hex(&Sha256::digest(&bytes)));
    assert_eq!(payload["artifact_type"], "test_result");
    assert_eq!(payload["size"], bytes.len());
    assert_eq!(payload["decision_ids"], serde_json::json!([decision_id]));
    assert_eq!(payload["control_ids"], serde_json::json!(["soc2:CC6.1"]));
    assert_eq!(payload["by"], "local:officer");
    let raw = engine
        .ledger
        .entry(registered.ledger_index)
        .await
        .unwrap()
        .unwrap()
        .payload
        .unwrap();
    assert!(
        raw.len() < 2048,
        "the entry holds no content: {} bytes",
        raw.len()
    );

    let check = engine
        .verify_evidence(&officer(), &registered.evidence_id)
        .await
        .unwrap();
    assert!(check.valid && check.problem.is_empty(), "{check:?}");

    // Found by each filter, and not by another decision's.
    let by = |f: EvidenceFilter| async move {
        engine
            .list_evidence(&officer(), f)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.evidence_id)
            .collect::<Vec<_>>()
    };
    let found = by(EvidenceFilter {
        decision_id: decision_id.clone(),
        ..EvidenceFilter::default()
    })
    .await;
    assert_eq!(found, vec![registered.evidence_id.clone()]);
    let found = by(EvidenceFilter {
        control_id: "soc2:CC6.1".into(),
        artifact_type: Some(ArtifactType::TestResult),
        ..EvidenceFilter::default()
    })
    .await;
    assert_eq!(found, vec![registered.evidence_id.clone()]);
    let other = decision(engine).await;
    assert!(
        by(EvidenceFilter {
            decision_id: other,
            ..EvidenceFilter::default()
        })
        .await
        .is_empty()
    );
    assert!(
        by(EvidenceFilter {
            artifact_type: Some(ArtifactType::IncidentReport),
            ..EvidenceFilter::default()
        })
        .await
        .is_empty()
    );

    let missing = engine
        .get_evidence(&officer(), &id_of(b"never registered"), false)
        .await
        .unwrap_err();
    assert_eq!(missing.class(), ErrorClass::NotFound, "{missing}");
    let malformed = engine
        .get_evidence(&officer(), "sha256:XYZ", false)
        .await
        .unwrap_err();
    assert!(
        malformed.to_string().starts_with("evidence_id"),
        "{malformed}"
    );
}

/// The same bytes again: the same id, links added (one entry for the new ones, none
/// when nothing is new), nothing else changed.
async fn duplicate_registration_adds_links_only(engine: &Engine) {
    let bytes = content(2, 5000);
    let first = engine
        .register_evidence(&officer(), input(ArtifactType::HumanReview, &bytes))
        .await
        .unwrap();
    let before = state(engine).await;
    let again = engine
        .register_evidence(&officer(), input(ArtifactType::HumanReview, &bytes))
        .await
        .unwrap();
    assert_eq!(again.evidence_id, first.evidence_id);
    assert!(!again.newly_registered);
    assert_eq!(
        again.ledger_index, first.ledger_index,
        "nothing new: no entry"
    );
    assert_eq!(state(engine).await, before, "nothing new: nothing written");

    let decision_id = decision(engine).await;
    let before = state(engine).await;
    let mut more = input(ArtifactType::IncidentReport, &bytes);
    more.title = "another title".into();
    more.decision_ids = vec![decision_id.clone()];
    more.control_ids = vec!["iso27001:A.12.4".into(), "iso27001:A.12.4".into()];
    let linked = engine.register_evidence(&officer(), more).await.unwrap();
    assert_eq!(linked.evidence_id, first.evidence_id);
    assert!(!linked.newly_registered);
    assert_eq!(
        linked.artifact_type,
        ArtifactType::HumanReview,
        "the first type stays"
    );
    assert!(linked.ledger_index > first.ledger_index);
    let after = state(engine).await;
    assert_eq!(after.0, before.0 + 1, "one entry for the new links");
    assert_eq!(after.1[0], before.1[0], "no new evidence row");
    assert_eq!(after.1[1], before.1[1], "no new chunk");
    assert_eq!(after.1[2], before.1[2] + 2, "two new links");
    let payload = payload_at(engine, linked.ledger_index).await;
    assert_eq!(payload["first_index"], first.ledger_index);
    assert_eq!(payload["artifact_type"], "human_review");
    assert_eq!(payload["requested_artifact_type"], "incident_report");
    assert_eq!(payload["decision_ids"], serde_json::json!([decision_id]));
    assert_eq!(
        payload["control_ids"],
        serde_json::json!(["iso27001:A.12.4"])
    );

    let (record, _) = engine
        .get_evidence(&officer(), &first.evidence_id, false)
        .await
        .unwrap();
    assert_eq!(record.artifact_type, ArtifactType::HumanReview);
    assert_eq!(
        record.title, "quarterly model review",
        "the first title stays"
    );
    assert_eq!(record.ledger_index, first.ledger_index);
    assert_eq!(record.decision_ids, [decision_id]);
    assert_eq!(record.control_ids, ["iso27001:A.12.4"]);
    let check = engine
        .verify_evidence(&officer(), &first.evidence_id)
        .await
        .unwrap();
    assert!(check.valid, "{check:?}");
}

/// A valid Ed25519 signature is accepted and kept; bad ones are refused naming the
/// field, and write nothing.
async fn signatures(engine: &Engine) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key().to_bytes().to_vec();
    let bytes = content(3, 40_000);
    let mut signed = input(ArtifactType::ExternalAttestation, &bytes);
    signed.signature = key.sign(&bytes).to_bytes().to_vec();
    signed.signer_public_key = public.clone();
    let registered = engine.register_evidence(&officer(), signed).await.unwrap();
    let (record, _) = engine
        .get_evidence(&officer(), &registered.evidence_id, false)
        .await
        .unwrap();
    assert!(record.signed);
    assert_eq!(record.signer_public_key, public);
    let payload = payload_at(engine, registered.ledger_index).await;
    assert_eq!(payload["signer_public_key"], hex(&public));
    let check = engine
        .verify_evidence(&officer(), &registered.evidence_id)
        .await
        .unwrap();
    assert!(check.valid, "{check:?}");

    let other = content(4, 1000);
    let before = state(engine).await;
    let with = |signature: Vec<u8>, key: Vec<u8>| EvidenceInput {
        signature,
        signer_public_key: key,
        ..input(ArtifactType::ExternalAttestation, &other)
    };
    let good_sig = key.sign(&other).to_bytes().to_vec();
    let cases = [
        (
            with(key.sign(&bytes).to_bytes().to_vec(), public.clone()),
            "signature does not verify",
        ),
        (
            with(
                good_sig.clone(),
                ed25519_dalek::SigningKey::from_bytes(&[8; 32])
                    .verifying_key()
                    .to_bytes()
                    .to_vec(),
            ),
            "signature does not verify",
        ),
        (
            with(good_sig[..63].to_vec(), public.clone()),
            "signature must be 64 bytes",
        ),
        (
            with(good_sig.clone(), public[..31].to_vec()),
            "signer_public_key must be 32 bytes",
        ),
        (
            with(good_sig.clone(), Vec::new()),
            "signer_public_key is required",
        ),
        (with(Vec::new(), public.clone()), "signature is required"),
    ];
    for (case, expected) in cases {
        let message = refused(engine, case).await;
        assert!(
            message.starts_with(expected),
            "{message:?} should start with {expected:?}"
        );
    }
    assert_eq!(
        state(engine).await,
        before,
        "refused signatures write nothing"
    );
}

/// Content above `evidence.max_bytes` is refused first, with a message naming it.
async fn size_limit(engine: &Engine) {
    let max = engine.config.evidence.max_bytes;
    let too_big = vec![0u8; max + 1];
    let before = state(engine).await;
    // Refused before the missing type is noticed: the size comes first.
    let message = refused(
        engine,
        EvidenceInput {
            artifact_type: None,
            content: &too_big,
            ..EvidenceInput::default()
        },
    )
    .await;
    assert_eq!(
        message,
        format!("content is {} bytes; evidence.max_bytes is {max}", max + 1)
    );
    let message = refused(engine, input(ArtifactType::TestResult, &[])).await;
    assert!(message.starts_with("content is empty"), "{message}");
    assert_eq!(state(engine).await, before);
}

/// Bytes changed in the database are found by `verify_evidence`, and `get_evidence`
/// refuses to hand them out as the artifact.
async fn tampering_is_detected(engine: &Engine) {
    let bytes = content(5, EVIDENCE_CHUNK_BYTES + 100);
    let registered = engine
        .register_evidence(&officer(), input(ArtifactType::DecisionLog, &bytes))
        .await
        .unwrap();
    let id = registered.evidence_id.as_str();
    let mut longer = bytes[EVIDENCE_CHUNK_BYTES..].to_vec();
    longer.extend_from_slice(&bytes[EVIDENCE_CHUNK_BYTES..]);
    assert_eq!(set_chunk(engine, id, 1, &longer).await, 1);
    let check = engine.verify_evidence(&officer(), id).await.unwrap();
    assert!(!check.valid, "{check:?}");
    assert!(
        check
            .problem
            .contains("is 1048776 bytes; 1048676 were registered"),
        "{check:?}"
    );
    // The same length, one byte different.
    let mut flipped = bytes[EVIDENCE_CHUNK_BYTES..].to_vec();
    flipped[7] ^= 1;
    assert_eq!(set_chunk(engine, id, 1, &flipped).await, 1);
    let check = engine.verify_evidence(&officer(), id).await.unwrap();
    assert_eq!(
        (check.valid, check.problem.as_str()),
        (false, "content hash differs from its id")
    );
    let err = engine.get_evidence(&officer(), id, true).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::DataLoss, "{err}");
    assert!(err.to_string().contains("content hash differs"), "{err}");

    // A chunk removed.
    execute(
        engine,
        "DELETE FROM engine_evidence_chunks WHERE evidence_id = $1 AND seq = 0",
        id,
    )
    .await;
    let check = engine.verify_evidence(&officer(), id).await.unwrap();
    assert!(
        !check.valid && check.problem.contains("chunk 0 of 2 is missing"),
        "{check:?}"
    );

    // The row's hash and the entry's disagree once someone rewrites the row.
    let small = content(6, 10);
    let other = engine
        .register_evidence(&officer(), input(ArtifactType::DecisionLog, &small))
        .await
        .unwrap();
    execute(
        engine,
        "UPDATE engine_evidence SET signer_public_key = sha256 WHERE evidence_id = $1",
        &other.evidence_id,
    )
    .await;
    let check = engine
        .verify_evidence(&officer(), &other.evidence_id)
        .await
        .unwrap();
    assert!(!check.valid, "{check:?}");
    assert!(
        check
            .problem
            .contains("ledger entry records another signature"),
        "{check:?}"
    );
}

/// Refused registrations (unknown decision, bad fields) write nothing anywhere.
async fn refused_registration_changes_nothing(engine: &Engine) {
    let bytes = content(7, 3 * EVIDENCE_CHUNK_BYTES);
    let before = state(engine).await;
    let unknown = lexecon_core::DecisionId::new(lexecon_core::Timestamp::from_unix_secs(1), 7);
    let real = decision(engine).await;
    let before_decision = state(engine).await;
    assert_eq!(before_decision.1, before.1);
    let cases: Vec<(EvidenceInput<'_>, &str)> = vec![
        (
            EvidenceInput {
                decision_ids: vec![real.clone(), unknown.to_string()],
                ..input(ArtifactType::RiskAssessment, &bytes)
            },
            "decision_ids[1]: no decision",
        ),
        (
            EvidenceInput {
                decision_ids: vec!["dec_nope".into()],
                ..input(ArtifactType::RiskAssessment, &bytes)
            },
            "decision_ids[0]: invalid decision id",
        ),
        (
            EvidenceInput {
                artifact_type: None,
                ..input(ArtifactType::RiskAssessment, &bytes)
            },
            "artifact_type is required",
        ),
        (
            EvidenceInput {
                title: "a\u{7}b".into(),
                ..input(ArtifactType::RiskAssessment, &bytes)
            },
            "title must not contain control characters",
        ),
        (
            EvidenceInput {
                control_ids: vec!["ok".into(), " ".into()],
                ..input(ArtifactType::RiskAssessment, &bytes)
            },
            "control_ids[1] is empty",
        ),
        (
            EvidenceInput {
                media_type: "x".repeat(300),
                ..input(ArtifactType::RiskAssessment, &bytes)
            },
            "media_type is 300 bytes",
        ),
    ];
    for (case, expected) in cases {
        let message = refused(engine, case).await;
        assert!(
            message.starts_with(expected),
            "{message:?} should start with {expected:?}"
        );
    }
    assert_eq!(state(engine).await, before_decision, "nothing was written");
}

/// The same new bytes registered twice at once: one artifact, one first registration,
/// the other's links added.
async fn concurrent_first_registrations_make_one_artifact(engine: &Engine) {
    let bytes = content(20, 70_000);
    let before = state(engine).await;
    let mut a = input(ArtifactType::TestResult, &bytes);
    a.control_ids = vec!["a".into()];
    let mut b = input(ArtifactType::TestResult, &bytes);
    b.control_ids = vec!["b".into()];
    let caller = officer();
    let (a, b) = tokio::join!(
        engine.register_evidence(&caller, a),
        engine.register_evidence(&caller, b)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.evidence_id, b.evidence_id);
    assert_eq!(
        [a.newly_registered, b.newly_registered]
            .iter()
            .filter(|n| **n)
            .count(),
        1,
        "exactly one first registration: {a:?} {b:?}"
    );
    let after = state(engine).await;
    assert_eq!(after.1[0], before.1[0] + 1, "one evidence row");
    assert_eq!(after.1[1], before.1[1] + 1, "one chunk");
    let (record, _) = engine
        .get_evidence(&officer(), &a.evidence_id, false)
        .await
        .unwrap();
    let mut controls = record.control_ids.clone();
    controls.sort();
    assert_eq!(controls, ["a", "b"]);
    assert_eq!(
        record.ledger_index,
        a.ledger_index.min(b.ledger_index),
        "the lower index keeps the row"
    );
}

/// Pages of `list_evidence` are newest first and meet without gaps or repeats.
async fn listing_pages(engine: &Engine) {
    let mut registered = Vec::new();
    for seed in 10..15 {
        let bytes = content(seed, 100);
        registered.push(
            engine
                .register_evidence(&officer(), input(ArtifactType::ModelDocumentation, &bytes))
                .await
                .unwrap()
                .evidence_id,
        );
    }
    registered.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = engine
            .list_evidence(
                &officer(),
                EvidenceFilter {
                    artifact_type: Some(ArtifactType::ModelDocumentation),
                    page_size: 2,
                    page_token: token,
                    ..EvidenceFilter::default()
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|r| r.evidence_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, registered, "newest first, each once");
    let too_many = engine
        .list_evidence(
            &officer(),
            EvidenceFilter {
                page_size: MAX_PAGE_SIZE + 1,
                ..EvidenceFilter::default()
            },
        )
        .await
        .unwrap_err();
    assert!(too_many.to_string().starts_with("page_size"), "{too_many}");
    let bad_token = engine
        .list_evidence(
            &officer(),
            EvidenceFilter {
                page_token: "not a token".into(),
                ..EvidenceFilter::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        bad_token.class(),
        ErrorClass::InvalidArgument,
        "{bad_token}"
    );
}

async fn evidence_suite(engine: &Engine) {
    content_addressing(engine).await;
    duplicate_registration_adds_links_only(engine).await;
    signatures(engine).await;
    size_limit(engine).await;
    tampering_is_detected(engine).await;
    refused_registration_changes_nothing(engine).await;
    concurrent_first_registrations_make_one_artifact(engine).await;
    listing_pages(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let engine = super::tests::open(dir.path(), Arc::new(SystemClock), None).await;
    evidence_suite(&engine).await;
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_suite_on_postgres() {
    let Some(db) = lexecon_testkit::PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = super::tests::open(dir.path(), Arc::new(SystemClock), Some(&db.url)).await;
    evidence_suite(&engine).await;
    engine.shutdown().await.unwrap();
}
