//! Evidence through the CLI and a real server (contract §7): a signed artifact larger
//! than both `server.max_request_bytes` and a gRPC client's default 4 MiB limit is
//! registered, registered again (links only), read back byte for byte, listed, verified,
//! and its ledger entry holds its hash and never its content; once a stored chunk is
//! changed in the database, `evidence verify` exits 1 naming the problem and `evidence
//! get` refuses to hand the bytes out.

use ed25519_dalek::Signer as _;
use lexecon_e2e::*;

/// Runs `lexecon evidence ARGS --data-dir data --server URL`.
fn evidence(dir: &std::path::Path, url: &str, args: &[&str]) -> Run {
    let mut all = vec!["evidence"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", "data", "--server", url]);
    lexecon(dir, &all)
}

fn json(run: &Run) -> serde_json::Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_evidence_registered_read_listed_and_verified_through_the_cli() {
    let dir = crate::init_dir();
    let data = dir.path().join("data");
    let token = admin_token(&data);
    let server = Server::start(dir.path(), "data", &[]);
    let url = server.url();
    let decision = decision_client(&server)
        .await
        .decide(authed(approved_request(), &token))
        .await
        .unwrap()
        .into_inner();

    // 5 MiB: above server.max_request_bytes (256 KiB) and tonic's default 4 MiB.
    let bytes: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    std::fs::write(dir.path().join("report.pdf"), &bytes).unwrap();
    std::fs::write(dir.path().join("report.sig"), key.sign(&bytes).to_bytes()).unwrap();
    let public = key.verifying_key().to_bytes();
    let public_hex: String = public.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(dir.path().join("signer.pub"), format!("{public_hex}\n")).unwrap();
    let forged = ed25519_dalek::SigningKey::from_bytes(&[8; 32]).sign(&bytes);
    std::fs::write(dir.path().join("forged.sig"), forged.to_bytes()).unwrap();

    let refused = evidence(
        dir.path(),
        &url,
        &[
            "add",
            "report.pdf",
            "--type",
            "test_result",
            "--signature",
            "forged.sig",
            "--signer-public-key",
            "signer.pub",
        ],
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("invalid argument: signature does not verify"),
        "{}",
        refused.stderr
    );

    let added = json(&evidence(
        dir.path(),
        &url,
        &[
            "add",
            "report.pdf",
            "--type",
            "test_result",
            "--title",
            "Q3 red-team report",
            "--decision",
            &decision.decision_id,
            "--control",
            "soc2:CC6.1",
            "--signature",
            "report.sig",
            "--signer-public-key",
            "signer.pub",
            "--json",
        ],
    ));
    assert_eq!(added["newly_registered"], true, "{added}");
    let id = added["evidence_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let first_index = added["ledger_index"].as_u64().unwrap();

    let again = json(&evidence(
        dir.path(),
        &url,
        &[
            "add",
            "report.pdf",
            "--type",
            "incident_report",
            "--control",
            "iso27001:A.12.4",
            "--json",
        ],
    ));
    assert_eq!(again["evidence_id"], id.as_str());
    assert_eq!(again["newly_registered"], false, "{again}");
    assert!(again["ledger_index"].as_u64().unwrap() > first_index);

    let got = json(&evidence(
        dir.path(),
        &url,
        &["get", &id, "--out", "copy.pdf", "--json"],
    ));
    assert_eq!(
        std::fs::read(dir.path().join("copy.pdf")).unwrap(),
        bytes,
        "the content comes back byte for byte"
    );
    assert_eq!(got["artifact_type"], "test_result", "the first type stays");
    assert_eq!(got["media_type"], "application/pdf");
    assert_eq!(got["size"], bytes.len());
    assert_eq!(got["signed"], true);
    assert_eq!(got["signer_public_key"], public_hex.as_str());
    assert_eq!(got["registered_by"], "key:admin");
    assert_eq!(
        got["decision_ids"],
        serde_json::json!([decision.decision_id])
    );
    assert_eq!(
        got["control_ids"],
        serde_json::json!(["soc2:CC6.1", "iso27001:A.12.4"])
    );

    let listed = json(&evidence(
        dir.path(),
        &url,
        &["list", "--decision", &decision.decision_id, "--json"],
    ));
    assert_eq!(
        listed["evidence"][0]["evidence_id"],
        id.as_str(),
        "{listed}"
    );
    assert_eq!(listed["evidence"].as_array().unwrap().len(), 1);
    assert_eq!(listed["next_page_token"], "");

    let verified = evidence(dir.path(), &url, &["verify", &id]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(verified.stdout.starts_with("valid"), "{}", verified.stdout);

    // The ledger holds the hash, never the content.
    let entries = crate::entries_of_kind(&server, &token, "evidence_registered").await;
    assert_eq!(
        entries.len(),
        2,
        "one entry per registration that changed something"
    );
    let payload = crate::common::payload(&entries[0]);
    assert_eq!(payload["sha256"], &id["sha256:".len()..]);
    assert_eq!(payload["by"], "key:admin");
    assert!(entries[0].payload_json.len() < 2048);

    // Someone with write access to the database changes the third chunk.
    let tamper = format!(
        "UPDATE engine_evidence_chunks SET data = zeroblob(length(data)) \
         WHERE evidence_id = '{id}' AND seq = 2;"
    );
    let sqlite3 = std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(data.join("lexecon.db"))
        .arg(&tamper)
        .output();
    match sqlite3 {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "sqlite3 is missing; CI must run the evidence tamper step (apt-get install sqlite3)"
            );
            eprintln!("skipping the tamper step: sqlite3 is not on the PATH");
            return;
        }
        other => {
            let out = other.unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }
    let tampered = evidence(dir.path(), &url, &["verify", &id, "--json"]);
    assert_eq!(tampered.code, 1, "{tampered:?}");
    let report: serde_json::Value = serde_json::from_str(&tampered.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["problem"],
        "content hash differs from its id; signature does not verify"
    );
    let refused = evidence(dir.path(), &url, &["get", &id, "--out", "bad.pdf"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("content hash differs from its id"),
        "{}",
        refused.stderr
    );
    assert!(!dir.path().join("bad.pdf").exists());
}
