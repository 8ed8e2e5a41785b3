//! Decision queries and audit exports through the CLI and a real server (contract §7):
//! the decision index agrees with the ledger after a SIGKILL during appends; an export
//! taken through a server and one built from the data directory both verify offline;
//! `audit verify` rejects a changed byte, a removed entry, a proof from another
//! checkpoint and a manifest signed by another key, naming the first problem (exit 1).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lexecon_e2e::*;
use lexecon_proto::v1::audit_service_client::AuditServiceClient;
use lexecon_proto::v1::{DecideRequest, QueryDecisionsRequest};

fn json(run: &Run) -> serde_json::Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn request(i: usize) -> DecideRequest {
    DecideRequest {
        actor: if i.is_multiple_of(2) {
            "ai_agent:customer_service".into()
        } else {
            "ai_agent:billing".into()
        },
        ..approved_request()
    }
}

/// Every (ledger index, decision id) the index holds, through QueryDecisions.
async fn indexed(server: &Server, token: &str) -> BTreeSet<(u64, String)> {
    let mut client = AuditServiceClient::new(server.channel().await);
    let mut out = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .query_decisions(authed(
                QueryDecisionsRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(
            page.decisions
                .into_iter()
                .map(|d| (d.ledger_index, d.decision_id)),
        );
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// Every (ledger index, decision id) among the ledger's decision entries.
async fn in_ledger(server: &Server, token: &str) -> BTreeSet<(u64, String)> {
    crate::entries_of_kind(server, token, "decision")
        .await
        .iter()
        .map(|e| {
            let p = crate::common::payload(e);
            (e.index, p["decision_id"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_agrees_with_ledger_after_sigkill_during_appends() {
    let dir = crate::init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = decision_client(&server).await;
        let (stop, token) = (Arc::clone(&stop), token.clone());
        writers.push(tokio::spawn(async move {
            let mut client = client;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                // Errors are expected once the server is killed.
                if client.decide(authed(request(i), &token)).await.is_err() {
                    break;
                }
                i += 4;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let server = Server::start(dir.path(), "data", &[]);
    let ledger = in_ledger(&server, &token).await;
    assert!(ledger.len() > 20, "decisions were made: {}", ledger.len());
    assert_eq!(indexed(&server, &token).await, ledger);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

fn lines(bundle: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(bundle.join("decisions.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn put_lines(bundle: &Path, lines: &[serde_json::Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(bundle.join("decisions.ndjson"), text).unwrap();
}

/// `lexecon audit verify DIR --data-dir data`: exit 1 and the first problem named.
fn rejected(dir: &Path, bundle: &str, extra: &[&str], needle: &str) {
    let mut args = vec!["audit", "verify", bundle];
    args.extend_from_slice(extra);
    let run = lexecon(dir, &args);
    assert_eq!(run.code, 1, "{bundle}: {run:?}");
    assert!(
        run.stdout.contains("NOT VALID") && run.stdout.contains(needle),
        "{bundle}: expected {needle:?} in {}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_export_server_and_data_dir_verify_and_tampering_is_rejected() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let token = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let url = server.url();
    let mut client = decision_client(&server).await;
    for i in 0..12 {
        client.decide(authed(request(i), &token)).await.unwrap();
    }

    // Through the server, assembled here.
    let exported = json(&lexecon(
        dir.path(),
        &[
            "audit",
            "export",
            "--out",
            "by-server",
            "--actor",
            "ai_agent:customer_*",
            "--server",
            &url,
            "--data-dir",
            "data",
            "--json",
        ],
    ));
    assert_eq!(exported["decisions"], 6, "{exported}");
    assert!(exported["export_id"].as_str().unwrap().starts_with("exp_"));
    let ok = json(&lexecon(
        dir.path(),
        &[
            "audit",
            "verify",
            "by-server",
            "--data-dir",
            "data",
            "--json",
        ],
    ));
    assert_eq!(
        (ok["valid"].as_bool(), ok["key_source"].as_str()),
        (Some(true), Some("trusted"))
    );
    assert_eq!(ok["decisions"], 6);
    // Without a trusted key: valid, and it says where the key came from.
    let own = lexecon(dir.path(), &["audit", "verify", "by-server"]);
    assert_eq!(own.code, 0, "{own:?}");
    assert!(
        own.stdout.contains("taken from the bundle"),
        "{}",
        own.stdout
    );

    // The CLI's query sees the same decisions.
    let queried = json(&lexecon(
        dir.path(),
        &[
            "decisions",
            "query",
            "--actor",
            "ai_agent:customer_*",
            "--json",
            "--server",
            &url,
            "--data-dir",
            "data",
        ],
    ));
    assert_eq!(queried["decisions"].as_array().unwrap().len(), 6);

    // More decisions, then an export built in process from the data directory (CSV).
    for i in 12..16 {
        client.decide(authed(request(i), &token)).await.unwrap();
    }
    let local = json(&lexecon(
        dir.path(),
        &[
            "audit",
            "export",
            "--out",
            "local",
            "--data-dir",
            "data",
            "--format",
            "csv",
            "--json",
        ],
    ));
    assert_eq!(local["decisions"], 16, "{local}");
    let pem = data.join("keys/node.ed25519.pub");
    let run = lexecon(
        dir.path(),
        &[
            "audit",
            "verify",
            "local",
            "--public-key",
            pem.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("valid: 16 decisions"), "{}", run.stdout);
    // A later export through the server: another checkpoint.
    json(&lexecon(
        dir.path(),
        &[
            "audit",
            "export",
            "--out",
            "later",
            "--actor",
            "ai_agent:customer_*",
            "--server",
            &url,
            "--data-dir",
            "data",
            "--json",
        ],
    ));
    // Both exports by the server's caller and the local one are listed as ledger entries.
    let exports = crate::entries_of_kind(&server, &token, "audit_exported").await;
    assert_eq!(exports.len(), 3);
    let by: Vec<String> = exports
        .iter()
        .map(|e| crate::common::payload(e)["by"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        by[0].starts_with("key:") && by[1].starts_with("local:"),
        "{by:?}"
    );

    let base = dir.path().join("by-server");
    let trusted = ["--data-dir", "data"];

    // A changed byte in a payload.
    let b = dir.path().join("changed-byte");
    copy_dir(&base, &b);
    let mut ls = lines(&b);
    let index = ls[3]["index"].as_u64().unwrap();
    let payload = ls[3]["payload_b64"].as_str().unwrap().to_owned();
    let flipped = if payload.starts_with('e') { "f" } else { "e" };
    ls[3]["payload_b64"] = format!("{flipped}{}", &payload[1..]).into();
    put_lines(&b, &ls);
    rejected(
        dir.path(),
        "changed-byte",
        &trusted,
        &format!("entry {index}"),
    );

    // A removed entry.
    let b = dir.path().join("removed");
    copy_dir(&base, &b);
    let mut ls = lines(&b);
    ls.remove(2);
    put_lines(&b, &ls);
    rejected(
        dir.path(),
        "removed",
        &trusted,
        "holds 5 decisions; manifest.json says 6",
    );

    // A proof from another checkpoint.
    let b = dir.path().join("foreign-proof");
    copy_dir(&base, &b);
    let mut ls = lines(&b);
    let other = lines(&dir.path().join("later"));
    let same = other.iter().find(|o| o["index"] == ls[0]["index"]).unwrap();
    assert_ne!(same["proof"], ls[0]["proof"]);
    ls[0]["proof"] = same["proof"].clone();
    let index = ls[0]["index"].as_u64().unwrap();
    put_lines(&b, &ls);
    rejected(
        dir.path(),
        "foreign-proof",
        &trusted,
        &format!("entry {index}: the inclusion proof"),
    );

    // A manifest signed by another key: this node's bundle checked against another
    // node's key, and another node's signature over this manifest.
    let other = tempfile::tempdir().unwrap();
    let run = lexecon(other.path(), &["init", "--data-dir", "data"]);
    assert_eq!(run.code, 0, "{run:?}");
    let other_pem = other.path().join("data/keys/node.ed25519.pub");
    rejected(
        dir.path(),
        "by-server",
        &["--public-key", other_pem.to_str().unwrap()],
        "manifest.sig is not a valid signature",
    );
}
