//! Behaviour, tamper, crash and multi-process tests of the ledger against real SQLite

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions fail loudly"
)]
//! files and (when `LEXECON_TEST_DATABASE_URL` is set) a real PostgreSQL database.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use lexecon_core::{Clock, ManualClock, SystemClock, Timestamp};
use lexecon_ledger::{
    CheckpointSigner, EntryKind, Ledger, LedgerConfig, LedgerStore, PgLedgerStore, SideRow,
    SideTable, SideType, SideValue, SqliteLedgerStore, VerifyOptions, VerifyReport, export,
    open_sqlite, verify, verify_bundle, verify_consistency, verify_inclusion,
};
use serde_json::json;
use sqlx::Executor as _;

const ORIGIN: &str = "lexecon.test/ledger";

fn signer(seed: u8) -> CheckpointSigner {
    CheckpointSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

/// A store under test and what keeps it alive.
enum Db {
    Sqlite(SqliteLedgerStore, #[allow(dead_code)] tempfile::TempDir),
    Pg(
        PgLedgerStore,
        #[allow(dead_code)] lexecon_testkit::PgDatabase,
    ),
}

impl Db {
    fn store(&self) -> Arc<dyn LedgerStore> {
        match self {
            Db::Sqlite(s, _) => Arc::new(s.clone()),
            Db::Pg(s, _) => Arc::new(s.clone()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "sqlite",
            Db::Pg(..) => "postgres",
        }
    }

    /// Runs SQL (no parameters; blobs are written with `blob()`).
    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(s, _) => {
                s.pool().execute(sql).await.unwrap();
            }
            Db::Pg(s, _) => {
                s.pool().execute(sql).await.unwrap();
            }
        }
    }

    /// A blob literal in this database's dialect.
    fn blob(&self, bytes: &[u8]) -> String {
        match self {
            Db::Sqlite(..) => format!("X'{}'", hex::encode(bytes)),
            Db::Pg(..) => format!("'\\x{}'::bytea", hex::encode(bytes)),
        }
    }
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let pool = open_sqlite(&dir.path().join("lexecon.db"), true)
        .await
        .unwrap();
    let store = SqliteLedgerStore::new(pool);
    store.migrate().await.unwrap();
    Db::Sqlite(store, dir)
}

async fn pg_db() -> Option<Db> {
    let db = lexecon_testkit::PgDatabase::create().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .unwrap();
    let store = PgLedgerStore::new(pool);
    store.migrate().await.unwrap();
    // Migrating twice is a no-op (the engine migrates at every start).
    store.migrate().await.unwrap();
    Some(Db::Pg(store, db))
}

/// Every store implementation available here.
async fn dbs() -> Vec<Db> {
    let mut out = vec![sqlite_db().await];
    out.extend(pg_db().await);
    out
}

fn config(every: u64) -> LedgerConfig {
    LedgerConfig {
        checkpoint_every_entries: every,
        checkpoint_interval_ms: 60_000,
        max_batch: 256,
    }
}

async fn open(db: &Db, seed: u8, every: u64) -> Ledger {
    let clock: Arc<dyn Clock> =
        Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_764_000_000)));
    Ledger::open(db.store(), signer(seed), config(every), clock)
        .await
        .unwrap()
}

async fn fill(ledger: &Ledger, n: u64) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            l.append(
                EntryKind::Decision,
                json!({"n": i, "actor": "agent-7", "why": "test"}),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Full verification of `store` with the key of `signer(1)`.
async fn verify_signed_by_1(store: Arc<dyn LedgerStore>) -> VerifyReport {
    verify(
        store,
        &VerifyOptions {
            verifiers: vec![signer(1).verifier()],
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn check_verify(db: &Db, options: &VerifyOptions) -> VerifyReport {
    verify(db.store(), options).await.unwrap()
}

/// Indexes come from callers (GetEntries, GetEntry): one no ledger can reach is an
/// absent entry or an empty page, never "stored data is damaged" (found by schemathesis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_beyond_any_ledger_are_absent_not_corrupt() {
    for db in dbs().await {
        let name = db.name();
        let ledger = open(&db, 1, 16).await;
        fill(&ledger, 3).await;
        for from in [3, 1 << 63, u64::MAX - 1, u64::MAX] {
            assert!(
                ledger.entries(from, 100).await.unwrap().is_empty(),
                "{name} {from}"
            );
            assert!(ledger.entry(from).await.unwrap().is_none(), "{name} {from}");
        }
        // A huge limit from a real index reads what is there.
        assert_eq!(
            ledger.entries(1, u64::MAX).await.unwrap().len(),
            2,
            "{name}"
        );
        let at = ledger.entries_at(&[0, 1 << 63, u64::MAX, 2]).await.unwrap();
        let got: Vec<u64> = at.iter().map(|e| e.index).collect();
        assert_eq!(got, vec![0, 2], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_prove_resume_redact_and_export_on_every_store() {
    for db in dbs().await {
        let name = db.name();
        let ledger = open(&db, 1, 16).await;
        // Concurrent appenders get distinct, dense indexes.
        fill(&ledger, 100).await;
        let mut seen: Vec<u64> = ledger
            .entries(0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.index)
            .collect();
        seen.dedup();
        assert_eq!(seen, (0..100).collect::<Vec<_>>(), "{name}");
        assert_eq!(ledger.tree_size().await.unwrap(), 100);
        let r = ledger
            .append(EntryKind::Note, json!({"hello": "world"}))
            .await
            .unwrap();
        assert_eq!(r.index, 100, "{name}");
        let cp = ledger.checkpoint().await.unwrap();
        assert_eq!(cp.checkpoint.size, 101);
        // Proofs from stored subtrees verify for every index and many sizes.
        for size in [1, 2, 7, 16, 17, 64, 100, 101] {
            let root = ledger.root_at(size).await.unwrap();
            for index in (0..size).step_by(7) {
                let p = ledger.inclusion_proof(index, Some(size)).await.unwrap();
                assert_eq!(p.root, root);
                verify_inclusion(&p.leaf_hash, index, size, &p.proof, &root).unwrap();
            }
            let c = ledger.consistency_proof(size, 101).await.unwrap();
            verify_consistency(size, 101, &c.proof, &c.root1, &c.root2).unwrap();
        }
        assert_eq!(
            ledger.root_at(101).await.unwrap(),
            cp.checkpoint.root,
            "{name}"
        );
        assert!(ledger.inclusion_proof(101, Some(101)).await.is_err());
        // Many nodes at once (more than one statement's worth) come back in order.
        let mut ids = Vec::new();
        for level in 0..7u8 {
            for index in 0..(101u64 >> level) {
                ids.push(lexecon_ledger::merkle::NodeId { level, index });
            }
        }
        let ids: Vec<_> = ids.iter().cycle().take(ids.len() * 4).copied().collect();
        let hashes = db.store().nodes(&ids).await.unwrap();
        assert_eq!(hashes.len(), ids.len(), "{name}");
        assert_eq!(hashes[ids.len() - 1], hashes[ids.len() / 4 - 1], "{name}");
        assert!(ledger.root_at(102).await.is_err());
        let latest = ledger.latest_checkpoint().await.unwrap().unwrap();
        assert_eq!(latest.checkpoint.size, 101);
        assert_eq!(
            ledger.shutdown().await.unwrap(),
            None,
            "{name}: nothing new to checkpoint"
        );
        assert!(
            ledger.append(EntryKind::Note, json!(1)).await.is_err(),
            "{name}: appends after shutdown fail"
        );

        // Reopen: resumes at the stored head and continues the same tree.
        let ledger = open(&db, 1, 1000).await;
        let r = ledger
            .append(EntryKind::PolicyLoaded, json!({"v": 2}))
            .await
            .unwrap();
        assert_eq!(r.index, 101, "{name}");
        let fin = ledger.shutdown().await.unwrap().unwrap();
        assert_eq!(
            fin.checkpoint.size, 102,
            "{name}: shutdown signs a checkpoint"
        );
        let c = lexecon_ledger::consistency_proof(db.store().as_ref(), 101, 102)
            .await
            .unwrap();
        verify_consistency(
            101,
            102,
            &c.proof,
            &cp.checkpoint.root,
            &fin.checkpoint.root,
        )
        .unwrap();

        // Redaction erases the payload, keeps the leaf and every proof.
        let ledger = open(&db, 1, 1000).await;
        let before = ledger.inclusion_proof(5, Some(102)).await.unwrap();
        ledger
            .redact(5, "dpo@example.com", "GDPR erasure request 42")
            .await
            .unwrap();
        let e = ledger.entry(5).await.unwrap().unwrap();
        assert_eq!(e.payload, None);
        assert_eq!(e.tombstone.as_ref().unwrap().by, "dpo@example.com");
        assert_eq!(ledger.inclusion_proof(5, Some(102)).await.unwrap(), before);
        assert!(ledger.redact(500, "x", "y").await.is_err());
        let full = VerifyOptions {
            check_proof_index: true,
            ..Default::default()
        };
        let report = check_verify(&db, &full).await;
        assert!(report.valid, "{name}: {report:?}");
        assert_eq!((report.entries, report.redacted), (102, 1), "{name}");
        assert!(report.checkpoints >= 3, "{name}: {report:?}");

        // Export, then verify the bundle from its files alone.
        let out = tempfile::tempdir().unwrap();
        let summary = export(db.store().as_ref(), out.path(), 0, None)
            .await
            .unwrap();
        assert_eq!(
            (summary.from, summary.to, summary.latest_checkpoint),
            (0, 102, Some(102))
        );
        for f in [
            "entries.jsonl",
            "checkpoint",
            "verifier.vkey",
            "checkpoints/101",
            "checkpoints/102",
        ] {
            assert!(out.path().join(f).is_file(), "{name}: {f}");
        }
        let first: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(out.path().join("entries.jsonl"))
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        for field in ["index", "kind", "timestamp", "payload", "leaf", "leaf_hash"] {
            assert!(first.get(field).is_some(), "{field}");
        }
        assert_eq!(first["timestamp"], "2025-11-24T16:00:00.000000Z");
        let report = verify_bundle(out.path(), &VerifyOptions::default()).unwrap();
        assert!(report.valid, "{name}: {report:?}");
        assert_eq!(report.root, hex::encode(fin.checkpoint.root));
        // A partial export checks leaves, payloads and the chain, not roots.
        let part = tempfile::tempdir().unwrap();
        let summary = export(db.store().as_ref(), part.path(), 50, Some(80))
            .await
            .unwrap();
        assert_eq!((summary.from, summary.to), (50, 80));
        let report = verify_bundle(part.path(), &VerifyOptions::default()).unwrap();
        assert!(
            report.valid && report.partial && report.entries == 80,
            "{name}: {report:?}"
        );
        // A changed byte in the bundle is found.
        let path = out.path().join("entries.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("agent-7", "agent-8", 1)).unwrap();
        let report = verify_bundle(out.path(), &VerifyOptions::default()).unwrap();
        assert!(!report.valid, "{name}");
        assert_eq!(report.problem.unwrap().index, Some(0), "{name}");
        ledger.shutdown().await.unwrap();
    }
}

/// Builds a 30-entry log signed by key 1 and returns the checkpoint at 30 (what an
/// auditor would have kept).
async fn thirty(db: &Db) -> String {
    let ledger = open(db, 1, 10).await;
    for i in 0..30 {
        ledger
            .append(EntryKind::Decision, json!({"i": i}))
            .await
            .unwrap();
    }
    ledger.shutdown().await.unwrap();
    ledger.latest_checkpoint().await.unwrap().unwrap().note
}

fn bad_at(report: &VerifyReport, index: u64, what: &str) {
    assert!(!report.valid, "{report:?}");
    let p = report.problem.as_ref().unwrap();
    assert_eq!(p.index, Some(index), "{p:?}");
    assert!(
        p.what.contains(what),
        "{:?} should mention {what:?}",
        p.what
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_on_every_store() {
    let plain = VerifyOptions::default();
    for make in 0..2 {
        for attack in 0..6 {
            let db = if make == 0 {
                sqlite_db().await
            } else {
                match pg_db().await {
                    Some(db) => db,
                    None => continue,
                }
            };
            let trusted = thirty(&db).await;
            let with_trusted = VerifyOptions {
                trusted_checkpoint: Some(trusted.clone()),
                ..Default::default()
            };
            assert!(check_verify(&db, &with_trusted).await.valid);
            let name = db.name();
            match attack {
                0 => {
                    // One byte of one payload.
                    let e = db.store().entries(12, 1).await.unwrap().remove(0);
                    let mut p = e.payload.unwrap();
                    p[3] ^= 1;
                    db.exec(&format!(
                        "UPDATE ledger_payloads SET payload = {} WHERE idx = 12",
                        db.blob(&p)
                    ))
                    .await;
                    bad_at(&check_verify(&db, &plain).await, 12, "payload was altered");
                }
                1 => {
                    db.exec("DELETE FROM ledger_leaves WHERE idx = 7").await;
                    db.exec("DELETE FROM ledger_payloads WHERE idx = 7").await;
                    bad_at(&check_verify(&db, &plain).await, 7, "missing");
                    // A row far beyond the head is a gap found at once, not after
                    // reading billions of empty pages.
                    db.exec(&format!(
                        "INSERT INTO ledger_leaves (idx, leaf, leaf_hash) VALUES (4000000000000, {}, {})",
                        db.blob(&[1u8; 82]),
                        db.blob(&[2u8; 32])
                    ))
                    .await;
                    let small = VerifyOptions {
                        page_size: 10,
                        ..Default::default()
                    };
                    bad_at(&check_verify(&db, &small).await, 7, "missing");
                    db.exec("DELETE FROM ledger_leaves WHERE idx < 20").await;
                    bad_at(&check_verify(&db, &small).await, 0, "missing");
                }
                2 => {
                    for t in ["ledger_leaves", "ledger_payloads"] {
                        db.exec(&format!("UPDATE {t} SET idx = -1 WHERE idx = 3"))
                            .await;
                        db.exec(&format!("UPDATE {t} SET idx = 3 WHERE idx = 4"))
                            .await;
                        db.exec(&format!("UPDATE {t} SET idx = 4 WHERE idx = -1"))
                            .await;
                    }
                    bad_at(&check_verify(&db, &plain).await, 3, "swapped");
                }
                3 => {
                    // Truncate the tail and the checkpoints that covered it.
                    db.exec("DELETE FROM ledger_leaves WHERE idx >= 25").await;
                    db.exec("DELETE FROM ledger_payloads WHERE idx >= 25").await;
                    db.exec("DELETE FROM ledger_checkpoints WHERE size > 25")
                        .await;
                    db.exec("DELETE FROM ledger_nodes").await;
                    assert!(
                        check_verify(&db, &plain).await.valid,
                        "{name}: undetectable without a trusted checkpoint"
                    );
                    bad_at(
                        &check_verify(&db, &with_trusted).await,
                        25,
                        "removed from the tail",
                    );
                }
                5 => {
                    // A changed subtree hash in the proof index: entries still verify,
                    // the index check finds it.
                    let h = db.blob(&[7u8; 32]);
                    db.exec(&format!(
                        "UPDATE ledger_nodes SET hash = {h} WHERE level = 2 AND idx = 3"
                    ))
                    .await;
                    assert!(check_verify(&db, &plain).await.valid, "{name}");
                    let index = VerifyOptions {
                        check_proof_index: true,
                        ..Default::default()
                    };
                    let r = check_verify(&db, &index).await;
                    assert!(
                        !r.valid && r.problem.unwrap().what.contains("proof index"),
                        "{name}"
                    );
                }
                _ => {
                    // Rewrite the tail and re-chain it; the attacker signs with a key of
                    // their own (and records it), since they lack the node key.
                    db.exec("DELETE FROM ledger_leaves WHERE idx >= 20").await;
                    db.exec("DELETE FROM ledger_payloads WHERE idx >= 20").await;
                    db.exec("DELETE FROM ledger_checkpoints WHERE size > 20")
                        .await;
                    db.exec("DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > 20")
                        .await;
                    let evil = open(&db, 66, 1000).await;
                    for i in 0..10 {
                        evil.append(EntryKind::Decision, json!({"i": i, "forged": true}))
                            .await
                            .unwrap();
                    }
                    evil.shutdown().await.unwrap();
                    assert!(
                        check_verify(&db, &plain).await.valid,
                        "{name}: the database's own keys vouch for the forgery"
                    );
                    bad_at(&check_verify(&db, &with_trusted).await, 29, "rewritten");
                    // Given the real key, the forged checkpoint's signature fails too.
                    let real = VerifyOptions {
                        verifiers: vec![signer(1).verifier()],
                        ..Default::default()
                    };
                    let r = check_verify(&db, &real).await;
                    assert!(
                        !r.valid && r.problem.unwrap().what.contains("checkpoint at size 30"),
                        "{name}"
                    );
                }
            }
        }
    }
}

/// The crash child: appends from many tasks, printing each acknowledged entry.
async fn crash_child(path: &Path) {
    let pool = open_sqlite(path, true).await.unwrap();
    let store = SqliteLedgerStore::new(pool);
    store.migrate().await.unwrap();
    let config = LedgerConfig {
        checkpoint_every_entries: 500,
        checkpoint_interval_ms: 50,
        max_batch: 128,
    };
    let ledger = Ledger::open(Arc::new(store), signer(1), config, Arc::new(SystemClock))
        .await
        .unwrap();
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let (l, out) = (ledger.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let r = l
                    .append(EntryKind::Decision, json!({"t": t, "i": i}))
                    .await
                    .unwrap();
                let mut o = out.lock().unwrap();
                writeln!(o, "ack {} {}", r.index, hex::encode(r.leaf_hash)).unwrap();
                o.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn crash_child_process() {
    // Only does something when `crash_survives_sigkill_at_random_moments` starts this
    // binary as its child.
    if let Ok(path) = std::env::var("LEDGER_CRASH_CHILD") {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(crash_child(Path::new(&path)));
    }
}

#[test]
fn crash_survives_sigkill_at_random_moments() {
    use rand::Rng as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lexecon.db");
    let mut rng = rand::thread_rng();
    let mut acked: Vec<(u64, String)> = Vec::new();
    let rounds = if std::env::var("RUN_SLOW_TESTS").is_ok() {
        8
    } else {
        3
    };
    for _ in 0..rounds {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LEDGER_CRASH_CHILD", &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut parts = l.strip_prefix("ack ")?.split(' ');
                    Some((parts.next()?.parse().ok()?, parts.next()?.to_owned()))
                })
                .collect::<Vec<(u64, String)>>()
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        assert!(
            !got.is_empty(),
            "the child acknowledged nothing before it was killed"
        );
        acked.extend(got);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = open_sqlite(&path, false).await.unwrap();
        let store: Arc<dyn LedgerStore> = Arc::new(SqliteLedgerStore::new(pool));
        for (index, hash) in &acked {
            let e = store.entries(*index, 1).await.unwrap();
            assert_eq!(
                e.first().map(|e| (e.index, hex::encode(e.leaf_hash))),
                Some((*index, hash.clone())),
                "acknowledged entry {index} is lost"
            );
        }
        let report = verify(store.clone(), &VerifyOptions::default())
            .await
            .unwrap();
        assert!(report.valid, "{report:?}");
        let ledger = Ledger::open(store.clone(), signer(1), config(100), Arc::new(SystemClock))
            .await
            .unwrap();
        let next = ledger
            .append(EntryKind::Note, json!("after the crash"))
            .await
            .unwrap();
        assert_eq!(next.index, report.entries);
        ledger.shutdown().await.unwrap();
        assert!(
            verify(store, &VerifyOptions::default())
                .await
                .unwrap()
                .valid
        );
    });
}

#[test]
fn pg_child_process() {
    // Only does something when `two_processes_append_to_one_postgres_log` starts it.
    if let Ok(url) = std::env::var("LEDGER_PG_CHILD") {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .unwrap();
            let store = PgLedgerStore::new(pool);
            store.migrate().await.unwrap();
            let ledger = Ledger::open(
                Arc::new(store),
                signer(1),
                config(50),
                Arc::new(SystemClock),
            )
            .await
            .unwrap();
            let mut tasks = Vec::new();
            for t in 0..8 {
                let l = ledger.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..50 {
                        l.append(
                            EntryKind::Decision,
                            json!({"pid": std::process::id(), "t": t, "i": i}),
                        )
                        .await
                        .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            ledger.shutdown().await.unwrap();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_append_to_one_postgres_log() {
    let Some(Db::Pg(store, db)) = pg_db().await else {
        return;
    };
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "pg_child_process", "--test-threads=1"])
                .env("LEDGER_PG_CHILD", &db.url)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let store: Arc<dyn LedgerStore> = Arc::new(store);
    let entries = store.entries(0, 10_000).await.unwrap();
    assert_eq!(entries.len(), 800);
    let pids: std::collections::BTreeSet<_> = entries
        .iter()
        .filter_map(|e| e.payload_json().and_then(|p| p["pid"].as_u64()))
        .collect();
    assert_eq!(pids.len(), 2, "both processes wrote");
    let report = verify_signed_by_1(store).await;
    assert!(report.valid, "{report:?}");
    assert!(report.checkpoints >= 2);
}

#[tokio::test]
async fn commit_observer_sees_every_entry_once() {
    let db = sqlite_db().await;
    let ledger = open(&db, 1, 1_000).await;
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (seen, batches) = (seen.clone(), batches.clone());
        ledger.on_commit(move |entries, _took| {
            seen.fetch_add(entries, std::sync::atomic::Ordering::SeqCst);
            batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    fill(&ledger, 50).await;
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 50);
    let b = batches.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=50).contains(&b), "{b} batches");
}

/// Two writers on one SQLite file (as two processes would be: separate pools and
/// connections) interleave batches; each notices the other moved the head, re-reads the
/// frontier and sequences again, and the result is one log that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_sqlite_file_make_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lexecon.db");
    let mut ledgers = Vec::new();
    for _ in 0..2 {
        let store = SqliteLedgerStore::new(open_sqlite(&path, true).await.unwrap());
        store.migrate().await.unwrap();
        let store: Arc<dyn LedgerStore> = Arc::new(store);
        let clock: Arc<dyn Clock> =
            Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_764_000_000)));
        ledgers.push(
            Ledger::open(store, signer(1), config(50), clock)
                .await
                .unwrap(),
        );
    }
    // Rounds of five appends per writer at once: within a round the two race for the
    // write lock, and each round starts from a head the other may have moved.
    let mut indexes: Vec<u64> = Vec::new();
    for round in 0..20_u64 {
        let mut tasks = Vec::new();
        for (w, ledger) in ledgers.iter().enumerate() {
            for k in 0..5 {
                let ledger = ledger.clone();
                tasks.push(tokio::spawn(async move {
                    ledger
                        .append(
                            EntryKind::Note,
                            json!({"writer": w, "round": round, "k": k}),
                        )
                        .await
                        .unwrap()
                }));
            }
        }
        for t in tasks {
            indexes.push(t.await.unwrap().index);
        }
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..200).collect::<Vec<_>>(), "one index per entry");
    let store: Arc<dyn LedgerStore> = Arc::new(SqliteLedgerStore::new(
        open_sqlite(&path, false).await.unwrap(),
    ));
    // A writer's cached head goes stale whenever the other one commits, so every switch
    // of writer along the log is a batch that had to re-sequence.
    let writers: Vec<u64> = store
        .entries(0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.payload_json().unwrap()["writer"].as_u64().unwrap())
        .collect();
    let switches = writers.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 2, "the writers never interleaved: {writers:?}");
    let report = verify_signed_by_1(store).await;
    assert!(report.valid, "{report:?}");
    assert_eq!(report.entries, 200);
}

/// Under load that never pauses, the timed maintenance still runs and the SQLite WAL
/// keeps starting over, instead of growing with every entry ever written (the timeout
/// that drove maintenance never fired while appends kept arriving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_wal_stays_bounded_under_steady_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lexecon.db");
    let store = SqliteLedgerStore::new(open_sqlite(&path, true).await.unwrap());
    store.migrate().await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ledger = Ledger::open(
        Arc::new(store),
        signer(1),
        LedgerConfig {
            checkpoint_every_entries: 1_000_000,
            checkpoint_interval_ms: 20,
            max_batch: 256,
        },
        clock,
    )
    .await
    .unwrap();
    let padding = "x".repeat(400);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let ledger = ledger.clone();
        let padding = padding.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while started.elapsed() < Duration::from_secs(3) {
                ledger
                    .append(EntryKind::Note, json!({"t": t, "n": n, "pad": padding}))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("lexecon.db-wal"))
        .unwrap()
        .len();
    let written = total * 400;
    assert!(total > 2_000, "too few appends to tell: {total}");
    assert!(
        wal < written / 4,
        "the WAL holds {wal} bytes after {total} entries (~{written} payload bytes): it never restarted"
    );
}

// ---- Side rows: caller-defined rows written in the entries' transaction ----

static TEST_SIDE: SideTable = SideTable {
    name: "test_side",
    columns: &[
        ("name", SideType::Text),
        ("n", SideType::Int),
        ("b", SideType::Bytes),
    ],
    on_conflict: "",
};

static TEST_UNIQUE: SideTable = SideTable {
    name: "test_unique",
    columns: &[("k", SideType::Text)],
    on_conflict: "",
};

static TEST_UNIQUE_OR_NOTHING: SideTable = SideTable {
    name: "test_unique",
    columns: &[("k", SideType::Text)],
    on_conflict: "ON CONFLICT DO NOTHING",
};

async fn side_tables(db: &Db) {
    let blob = match db {
        Db::Sqlite(..) => "BLOB",
        Db::Pg(..) => "BYTEA",
    };
    db.exec(&format!(
        "CREATE TABLE test_side (idx BIGINT PRIMARY KEY, name TEXT NOT NULL, n BIGINT, b {blob})"
    ))
    .await;
    db.exec("CREATE TABLE test_unique (idx BIGINT PRIMARY KEY, k TEXT NOT NULL UNIQUE)")
        .await;
}

type SideRowView = (i64, String, Option<i64>, Option<Vec<u8>>);

async fn side_rows(db: &Db) -> Vec<SideRowView> {
    let sql = "SELECT idx, name, n, b FROM test_side ORDER BY idx";
    match db {
        Db::Sqlite(s, _) => sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap(),
        Db::Pg(s, _) => sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap(),
    }
}

async fn unique_keys(db: &Db) -> Vec<(i64, String)> {
    let sql = "SELECT idx, k FROM test_unique ORDER BY idx";
    match db {
        Db::Sqlite(s, _) => sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap(),
        Db::Pg(s, _) => sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap(),
    }
}

fn side_row(name: Option<&str>, n: Option<i64>, b: Option<&[u8]>) -> SideRow {
    SideRow {
        table: &TEST_SIDE,
        values: vec![
            name.map_or(SideValue::Null, |s| SideValue::Text(s.into())),
            n.map_or(SideValue::Null, SideValue::Int),
            b.map_or(SideValue::Null, |b| SideValue::Bytes(b.to_vec())),
        ],
    }
}

fn unique_row(table: &'static SideTable, k: &str) -> SideRow {
    SideRow {
        table,
        values: vec![SideValue::Text(k.into())],
    }
}

fn body(i: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"n": i})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_rows_commit_with_their_batch_on_every_store() {
    for db in dbs().await {
        let name = db.name();
        side_tables(&db).await;
        let ledger = open(&db, 1, 1_000).await;
        ledger
            .append(EntryKind::Decision, json!({"plain": true}))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..20u64 {
            let l = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let bytes = [i as u8, 0, 0xff];
                let row = side_row(
                    Some(&format!("row-{i}")),
                    (i % 2 == 0).then_some(i as i64),
                    Some(&bytes),
                );
                (
                    i,
                    l.append_entry(EntryKind::Decision, body(i), vec![row])
                        .await
                        .unwrap(),
                )
            }));
        }
        let mut expected = Vec::new();
        for t in tasks {
            let (i, receipt) = t.await.unwrap();
            expected.push((
                receipt.index as i64,
                format!("row-{i}"),
                (i % 2 == 0).then_some(i as i64),
                Some(vec![i as u8, 0, 0xff]),
            ));
        }
        // Two rows for one entry, in two tables, and an entry with none, in a group.
        let receipts = ledger
            .append_group(vec![
                (
                    EntryKind::Decision,
                    body(100),
                    vec![
                        side_row(Some("grouped"), None, None),
                        unique_row(&TEST_UNIQUE, "a"),
                    ],
                ),
                (EntryKind::Decision, body(101), vec![]),
            ])
            .await
            .unwrap();
        expected.push((receipts[0].index as i64, "grouped".into(), None, None));
        expected.sort();
        assert_eq!(side_rows(&db).await, expected, "{name}");
        assert_eq!(
            unique_keys(&db).await,
            vec![(receipts[0].index as i64, "a".into())],
            "{name}"
        );
        assert_eq!(receipts[1].index, receipts[0].index + 1, "{name}");
        // Each row's idx is its entry's index: the entry at idx holds the same n.
        for (idx, row_name, _, _) in side_rows(&db).await {
            let entry = ledger.entry(idx as u64).await.unwrap().unwrap();
            let n = serde_json::from_slice::<serde_json::Value>(entry.payload.as_deref().unwrap())
                .unwrap()["n"]
                .as_u64()
                .unwrap();
            let want = if row_name == "grouped" {
                "grouped".to_string()
            } else {
                format!("row-{n}")
            };
            assert_eq!(row_name, want, "{name}");
        }
        ledger.shutdown().await.unwrap();
        let report = verify_signed_by_1(db.store()).await;
        assert!(report.valid, "{name}: {report:?}");
        assert_eq!(ledger.tree_size().await.unwrap(), 23, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_side_row_fails_the_whole_batch_and_writes_no_leaf() {
    for db in dbs().await {
        let name = db.name();
        side_tables(&db).await;
        let ledger = open(&db, 1, 1_000).await;
        ledger
            .append_entry(
                EntryKind::Decision,
                body(0),
                vec![unique_row(&TEST_UNIQUE, "a")],
            )
            .await
            .unwrap();
        // NOT NULL violated.
        let err = ledger
            .append_entry(
                EntryKind::Decision,
                body(1),
                vec![side_row(None, Some(1), None)],
            )
            .await
            .unwrap_err();
        assert!(
            !matches!(err, lexecon_ledger::LedgerError::SideRow(_)),
            "{name}: {err}"
        );
        assert_eq!(ledger.tree_size().await.unwrap(), 1, "{name}");
        // A unique conflict without ON CONFLICT, inside a group: nothing of it lands.
        let err = ledger
            .append_group(vec![
                (
                    EntryKind::Decision,
                    body(2),
                    vec![side_row(Some("x"), None, None)],
                ),
                (
                    EntryKind::Decision,
                    body(3),
                    vec![unique_row(&TEST_UNIQUE, "a")],
                ),
            ])
            .await
            .unwrap_err();
        assert!(
            !matches!(err, lexecon_ledger::LedgerError::SideRow(_)),
            "{name}: {err}"
        );
        assert_eq!(ledger.tree_size().await.unwrap(), 1, "{name}");
        assert_eq!(side_rows(&db).await, vec![], "{name}");
        // With ON CONFLICT DO NOTHING the same key is accepted and the first row stays.
        let r = ledger
            .append_entry(
                EntryKind::Decision,
                body(4),
                vec![unique_row(&TEST_UNIQUE_OR_NOTHING, "a")],
            )
            .await
            .unwrap();
        assert_eq!(r.index, 1, "{name}");
        assert_eq!(unique_keys(&db).await, vec![(0, "a".into())], "{name}");
        // Two definitions of one table in one group: each row gets its own clause.
        let rs = ledger
            .append_group(vec![
                (
                    EntryKind::Decision,
                    body(6),
                    vec![unique_row(&TEST_UNIQUE, "b")],
                ),
                (
                    EntryKind::Decision,
                    body(7),
                    vec![unique_row(&TEST_UNIQUE_OR_NOTHING, "b")],
                ),
            ])
            .await
            .unwrap();
        assert_eq!(
            unique_keys(&db).await,
            vec![(0, "a".into()), (rs[0].index as i64, "b".into())],
            "{name}"
        );
        // The writer goes on after a failed batch, and the log verifies.
        ledger
            .append_entry(
                EntryKind::Decision,
                body(5),
                vec![side_row(Some("ok"), None, None)],
            )
            .await
            .unwrap();
        ledger.shutdown().await.unwrap();
        let report = verify_signed_by_1(db.store()).await;
        assert!(report.valid, "{name}: {report:?}");
        assert_eq!(report.entries, 5, "{name}");
    }
}

static BAD_NAME: SideTable = SideTable {
    name: "test_side; DROP TABLE ledger_leaves",
    columns: &[("name", SideType::Text)],
    on_conflict: "",
};

static BAD_COLUMN: SideTable = SideTable {
    name: "test_side",
    columns: &[("Name", SideType::Text)],
    on_conflict: "",
};

static IDX_COLUMN: SideTable = SideTable {
    name: "test_side",
    columns: &[("idx", SideType::Int)],
    on_conflict: "",
};

static BAD_CONFLICT: SideTable = SideTable {
    name: "test_unique",
    columns: &[("k", SideType::Text)],
    on_conflict: "ON CONFLICT (k) DO UPDATE SET k = (select name from test_side)",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_side_row_is_refused_before_queueing_and_alone() {
    for db in dbs().await {
        let name = db.name();
        side_tables(&db).await;
        let ledger = open(&db, 1, 1_000).await;
        let bad_rows = vec![
            // Too few values.
            SideRow {
                table: &TEST_SIDE,
                values: vec![SideValue::Text("x".into())],
            },
            // Wrong type.
            SideRow {
                table: &TEST_SIDE,
                values: vec![SideValue::Int(1), SideValue::Null, SideValue::Null],
            },
            SideRow {
                table: &BAD_NAME,
                values: vec![SideValue::Text("x".into())],
            },
            SideRow {
                table: &BAD_COLUMN,
                values: vec![SideValue::Text("x".into())],
            },
            SideRow {
                table: &IDX_COLUMN,
                values: vec![SideValue::Int(1)],
            },
            SideRow {
                table: &BAD_CONFLICT,
                values: vec![SideValue::Text("x".into())],
            },
        ];
        let mut tasks = Vec::new();
        for i in 0..30u64 {
            let l = ledger.clone();
            tasks.push(tokio::spawn(async move {
                l.append_entry(
                    EntryKind::Decision,
                    body(i),
                    vec![side_row(Some("good"), Some(i as i64), None)],
                )
                .await
                .unwrap();
            }));
        }
        for row in bad_rows {
            let l = ledger.clone();
            let err = l
                .append_entry(
                    EntryKind::Decision,
                    body(99),
                    vec![side_row(Some("fine"), None, None), row],
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, lexecon_ledger::LedgerError::SideRow(_)),
                "{name}: {err}"
            );
            // In a group, one bad row refuses the whole group.
            let err = l
                .append_group(vec![
                    (EntryKind::Decision, body(98), vec![]),
                    (
                        EntryKind::Decision,
                        body(97),
                        vec![SideRow {
                            table: &BAD_NAME,
                            values: vec![SideValue::Text("x".into())],
                        }],
                    ),
                ])
                .await
                .unwrap_err();
            assert!(
                matches!(err, lexecon_ledger::LedgerError::SideRow(_)),
                "{name}: {err}"
            );
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(ledger.tree_size().await.unwrap(), 30, "{name}");
        assert_eq!(side_rows(&db).await.len(), 30, "{name}");
        ledger.shutdown().await.unwrap();
        assert!(verify_signed_by_1(db.store()).await.valid, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_gets_consecutive_indexes_under_concurrent_appends() {
    for db in dbs().await {
        let name = db.name();
        let clock: Arc<dyn Clock> =
            Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_764_000_000)));
        // A small max_batch, so groups meet full batches.
        let ledger = Ledger::open(
            db.store(),
            signer(1),
            LedgerConfig {
                checkpoint_every_entries: 50,
                checkpoint_interval_ms: 60_000,
                max_batch: 8,
            },
            clock,
        )
        .await
        .unwrap();
        let mut singles = Vec::new();
        for i in 0..100u64 {
            let l = ledger.clone();
            singles.push(tokio::spawn(async move {
                l.append(EntryKind::Decision, json!({"n": i}))
                    .await
                    .unwrap()
            }));
        }
        let mut groups = Vec::new();
        for g in 0..20u64 {
            let l = ledger.clone();
            groups.push(tokio::spawn(async move {
                let entries = (0..5u64)
                    .map(|k| (EntryKind::Decision, body(1_000 + g * 10 + k), vec![]))
                    .collect();
                l.append_group(entries).await.unwrap()
            }));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in singles {
            assert!(seen.insert(t.await.unwrap().index), "{name}");
        }
        for t in groups {
            let receipts = t.await.unwrap();
            assert_eq!(receipts.len(), 5, "{name}");
            for (k, r) in receipts.iter().enumerate() {
                assert_eq!(
                    r.index,
                    receipts[0].index + k as u64,
                    "{name}: {receipts:?}"
                );
                assert!(seen.insert(r.index), "{name}");
                let entry = ledger.entry(r.index).await.unwrap().unwrap();
                let n =
                    serde_json::from_slice::<serde_json::Value>(entry.payload.as_deref().unwrap())
                        .unwrap()["n"]
                        .as_u64()
                        .unwrap();
                assert_eq!(n % 10, k as u64, "{name}");
            }
        }
        assert_eq!(seen.len(), 200, "{name}");
        assert_eq!(ledger.append_group(vec![]).await.unwrap(), vec![], "{name}");
        ledger.shutdown().await.unwrap();
        let report = verify_signed_by_1(db.store()).await;
        assert!(report.valid, "{name}: {report:?}");
    }
}

/// `subscribe` starts at the size the ledger opened with and shows the local head after
/// every commit: a watcher woken by it finds every entry up to the size it saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_shows_the_local_head_after_every_commit() {
    for db in dbs().await {
        let name = db.name();
        let ledger = open(&db, 1, 1_000).await;
        fill(&ledger, 3).await;
        ledger.shutdown().await.unwrap();
        let ledger = open(&db, 1, 1_000).await;
        let mut rx = ledger.subscribe();
        assert_eq!(*rx.borrow_and_update(), 3, "{name}: the size at open");
        let watcher = tokio::spawn(async move {
            let mut sizes = Vec::new();
            while rx.changed().await.is_ok() {
                let size = *rx.borrow_and_update();
                sizes.push(size);
                if size >= 43 {
                    break;
                }
            }
            sizes
        });
        let mut receipts = Vec::new();
        for i in 0..40u64 {
            let l = ledger.clone();
            receipts.push(tokio::spawn(async move {
                let r = l
                    .append(EntryKind::Decision, json!({"n": i}))
                    .await
                    .unwrap();
                // By the time an append is acknowledged, the head shows it.
                assert!(*l.subscribe().borrow() > r.index);
                r
            }));
        }
        for r in receipts {
            r.await.unwrap();
        }
        let sizes = tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the watcher saw size 43")
            .unwrap();
        assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{name}: {sizes:?}");
        assert_eq!(sizes.last(), Some(&43), "{name}");
        // A second subscriber starts at the current head.
        assert_eq!(*ledger.subscribe().borrow(), 43, "{name}");
        ledger.shutdown().await.unwrap();
    }
}

/// The side hook's rows are written with every entry appended through any handle
/// (single, grouped, plain `append`), after the caller's rows; a hook row the table
/// refuses refuses the append before queueing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_hook_rows_are_written_with_every_entry() {
    for db in dbs().await {
        let name = db.name();
        side_tables(&db).await;
        let ledger = open(&db, 1, 1_000).await;
        ledger
            .append(EntryKind::Note, json!({"before": "hook"}))
            .await
            .unwrap();
        let hook: lexecon_ledger::SideHook = Arc::new(|kind, payload| {
            if kind == EntryKind::Note {
                return Vec::new();
            }
            let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
            vec![side_row(
                Some(&format!("hook-{}", kind.as_str())),
                v["n"].as_i64(),
                None,
            )]
        });
        ledger.clone().set_side_hook(hook);
        let plain = ledger
            .append(EntryKind::Decision, json!({"n": 1}))
            .await
            .unwrap();
        let with_row = ledger
            .append_entry(
                EntryKind::AuthEvent,
                body(2),
                vec![unique_row(&TEST_UNIQUE, "own")],
            )
            .await
            .unwrap();
        let group = ledger
            .append_group(vec![
                (EntryKind::Decision, body(3), vec![]),
                (EntryKind::Note, body(4), vec![]),
                (EntryKind::BudgetEvent, body(5), vec![]),
            ])
            .await
            .unwrap();
        assert_eq!(
            side_rows(&db).await,
            vec![
                (plain.index as i64, "hook-decision".into(), Some(1), None),
                (
                    with_row.index as i64,
                    "hook-auth_event".into(),
                    Some(2),
                    None
                ),
                (group[0].index as i64, "hook-decision".into(), Some(3), None),
                (
                    group[2].index as i64,
                    "hook-budget_event".into(),
                    Some(5),
                    None
                ),
            ],
            "{name}"
        );
        assert_eq!(
            unique_keys(&db).await,
            vec![(with_row.index as i64, "own".into())],
            "{name}"
        );
        // A hook whose row does not fit is refused on the caller's task.
        let bad: lexecon_ledger::SideHook = Arc::new(|_, _| {
            vec![SideRow {
                table: &TEST_SIDE,
                values: vec![SideValue::Int(1)],
            }]
        });
        ledger.set_side_hook(bad);
        let err = ledger
            .append(EntryKind::Decision, json!({"n": 9}))
            .await
            .unwrap_err();
        assert!(
            matches!(err, lexecon_ledger::LedgerError::SideRow(_)),
            "{name}: {err}"
        );
        assert_eq!(ledger.tree_size().await.unwrap(), 6, "{name}");
        ledger.shutdown().await.unwrap();
        assert!(verify_signed_by_1(db.store()).await.valid, "{name}");
    }
}

/// `inclusion_proofs` gives, in the order asked, the proofs `inclusion_proof` gives one
/// at a time; `entries_at` the entries `entry` gives, in index order, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_proofs_and_entries_at_match_the_single_reads() {
    for db in dbs().await {
        let name = db.name();
        let ledger = open(&db, 1, 16).await;
        fill(&ledger, 77).await;
        let asked = [76u64, 0, 5, 5, 33, 64, 12];
        for size in [77u64, 65, 40] {
            let wanted: Vec<u64> = asked.iter().copied().filter(|i| *i < size).collect();
            let many = ledger.inclusion_proofs(&wanted, size).await.unwrap();
            assert_eq!(many.len(), wanted.len(), "{name}");
            for (p, i) in many.iter().zip(&wanted) {
                let one = ledger.inclusion_proof(*i, Some(size)).await.unwrap();
                assert_eq!(*p, one, "{name}: index {i} at size {size}");
                verify_inclusion(&p.leaf_hash, p.index, size, &p.proof, &p.root).unwrap();
            }
        }
        assert!(ledger.inclusion_proofs(&[80], 77).await.is_err(), "{name}");
        let got = ledger.entries_at(&[64, 3, 99, 3, 0]).await.unwrap();
        let indexes: Vec<u64> = got.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [0, 3, 64], "{name}");
        for e in got {
            assert_eq!(
                Some(e.clone()),
                ledger.entry(e.index).await.unwrap(),
                "{name}"
            );
        }
        ledger.shutdown().await.unwrap();
    }
}

// ---- Guarded redaction: checks and erasures in the tombstone's transaction ----

/// A plan whose guard refuses when `test_unique` holds a row naming the entry's index
/// (a stand-in for a legal hold), and whose erasure blanks the entry's `test_side` row.
fn guarded_plan(index: u64, erase_sql: &'static str) -> lexecon_ledger::RedactPlan {
    lexecon_ledger::RedactPlan {
        guards: vec![lexecon_ledger::RedactGuard {
            query: "SELECT k, CAST(idx AS TEXT) FROM test_unique WHERE k = $1",
            binds: vec![SideValue::Text(format!("hold-{index}"))],
            check: Box::new(|rows: &lexecon_ledger::GuardRows| match rows.first() {
                None => Ok(()),
                Some(row) => Err(format!(
                    "held by {} (entry {})",
                    row[0].clone().unwrap_or_default(),
                    row[1].clone().unwrap_or_default()
                )),
            }),
        }],
        erase: vec![lexecon_ledger::RedactErase {
            name: "test_side",
            sql: erase_sql,
            binds: vec![SideValue::Int(index as i64)],
        }],
    }
}

const ERASE_SIDE: &str = "UPDATE test_side SET name = 'erased', n = NULL, b = NULL WHERE idx = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_redaction_checks_and_erases_in_one_transaction_on_every_store() {
    for db in dbs().await {
        let name = db.name();
        side_tables(&db).await;
        let ledger = open(&db, 1, 1_000).await;
        let mut indexes = Vec::new();
        for i in 0..4u64 {
            let row = side_row(Some(&format!("row-{i}")), Some(i as i64), Some(&[1, 2]));
            indexes.push(
                ledger
                    .append_entry(EntryKind::Decision, body(i), vec![row])
                    .await
                    .unwrap()
                    .index,
            );
        }
        // Hold entry indexes[1] (the hold row is itself a side row of an entry).
        let hold = ledger
            .append_entry(
                EntryKind::Compliance,
                body(99),
                vec![unique_row(&TEST_UNIQUE, &format!("hold-{}", indexes[1]))],
            )
            .await
            .unwrap();

        // Held: refused with the guard's words, nothing changed.
        let before = side_rows(&db).await;
        let err = ledger
            .redact_guarded(
                indexes[1],
                "dpo",
                "erasure",
                &guarded_plan(indexes[1], ERASE_SIDE),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, lexecon_ledger::LedgerError::Refused(m)
                if m == &format!("held by hold-{} (entry {})", indexes[1], hold.index)),
            "{name}: {err}"
        );
        assert!(
            ledger
                .entry(indexes[1])
                .await
                .unwrap()
                .unwrap()
                .payload
                .is_some(),
            "{name}"
        );
        assert_eq!(side_rows(&db).await, before, "{name}");

        // Not held: the tombstone and the erasure commit together.
        let erased = ledger
            .redact_guarded(
                indexes[0],
                "dpo",
                "erasure",
                &guarded_plan(indexes[0], ERASE_SIDE),
            )
            .await
            .unwrap();
        assert_eq!(erased, vec!["test_side"], "{name}");
        let e = ledger.entry(indexes[0]).await.unwrap().unwrap();
        assert!(e.payload.is_none(), "{name}");
        assert_eq!(e.tombstone.as_ref().unwrap().reason, "erasure", "{name}");
        let rows = side_rows(&db).await;
        let row0 = rows.iter().find(|r| r.0 == indexes[0] as i64).unwrap();
        assert_eq!(
            row0,
            &(indexes[0] as i64, "erased".to_owned(), None, None),
            "{name}"
        );

        // Twice: refused as already redacted; the first tombstone stays.
        let again = ledger
            .redact_guarded(
                indexes[0],
                "other",
                "again",
                &guarded_plan(indexes[0], ERASE_SIDE),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(again, lexecon_ledger::LedgerError::AlreadyRedacted(i) if i == indexes[0]),
            "{name}: {again}"
        );
        let e = ledger.entry(indexes[0]).await.unwrap().unwrap();
        assert_eq!(e.tombstone.unwrap().by, "dpo", "{name}");
        let missing = ledger
            .redact_guarded(500, "dpo", "x", &guarded_plan(500, ERASE_SIDE))
            .await
            .unwrap_err();
        assert!(
            matches!(missing, lexecon_ledger::LedgerError::NoSuchEntry(500)),
            "{name}"
        );

        // A failing erasure rolls the tombstone back.
        let failing = ledger
            .redact_guarded(
                indexes[2],
                "dpo",
                "erasure",
                &guarded_plan(indexes[2], "UPDATE no_such_table SET x = 1 WHERE idx = $1"),
            )
            .await;
        assert!(failing.is_err(), "{name}");
        assert!(
            ledger
                .entry(indexes[2])
                .await
                .unwrap()
                .unwrap()
                .payload
                .is_some(),
            "{name}"
        );
        assert_eq!(side_rows(&db).await, rows, "{name}");

        // The plain redaction still works, and the ledger still verifies.
        ledger.redact(indexes[3], "dpo", "plain").await.unwrap();
        ledger.checkpoint().await.unwrap();
        let report = verify_signed_by_1(db.store()).await;
        assert!(report.valid, "{name}: {report:?}");
        assert_eq!(report.redacted, 2, "{name}");
    }
}
