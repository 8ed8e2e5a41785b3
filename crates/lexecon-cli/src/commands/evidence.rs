//! `lexecon evidence add|get|list|verify`: evidence through a server's EvidenceService
//! (contract §7).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use lexecon_proto::v1 as pb;
use lexecon_proto::v1::evidence_service_client::EvidenceServiceClient;
use serde_json::json;
use tonic::transport::Channel;

use super::client::{ServerArgs, authed, runtime, status_error};
use crate::Verdict;

/// `lexecon evidence ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum EvidenceCommand {
    /// Register a file as evidence: content-addressed, immutable, recorded in the ledger.
    #[command(after_long_help = "\
The evidence id is sha256: followed by the file's SHA-256 in lowercase hex. Registering
the same bytes again returns the same id and only adds the new links. The ledger entry
holds the hash, type, size, links and who registered it, never the content. Types:
decision_log, policy_snapshot, risk_assessment, human_review, test_result,
model_documentation, incident_report, external_attestation. A signature is the raw
64-byte Ed25519 signature over the file (or its hex); the key is the raw 32-byte
Ed25519 public key, its hex, or a PEM public key. Needs the compliance_officer or
admin role. Exit 0 registered, 2 on any error.

Examples:
  lexecon evidence add report.pdf --type test_result --title 'Q3 red-team report' \\
      --decision dec_01JD5Q8W7M3N4P5R6S7T8V9W0X --control soc2:CC6.1
  lexecon evidence add attestation.json --type external_attestation \\
      --signature attestation.sig --signer-public-key auditor.pub --json")]
    Add(AddArgs),
    /// Show an artifact's record, or write its content to a file with --out.
    #[command(after_long_help = "\
With --out the content is written to FILE after checking that it hashes to the id.
Needs the auditor role or higher.

Examples:
  lexecon evidence get sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  lexecon evidence get sha256:9f86... --out report.pdf")]
    Get {
        /// The evidence id (sha256:<hex>).
        id: String,
        /// Write the content to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// List artifacts, newest first.
    #[command(after_long_help = "\
Prints one page; when there are more, the last line gives the --page-token for the next.
Needs the auditor role or higher.

Examples:
  lexecon evidence list --type test_result
  lexecon evidence list --decision dec_01JD5Q8W7M3N4P5R6S7T8V9W0X --json")]
    List {
        /// Only this type.
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
        artifact_type: Option<pb::ArtifactType>,
        /// Only artifacts linked to this decision.
        #[arg(long, value_name = "ID")]
        decision: Option<String>,
        /// Only artifacts linked to this control.
        #[arg(long, value_name = "ID")]
        control: Option<String>,
        /// At most this many (default 100, at most 1000).
        #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
        page_size: u32,
        /// The token a previous page printed.
        #[arg(long, value_name = "TOKEN")]
        page_token: Option<String>,
        /// Print the page as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
    /// Check an artifact: its stored bytes against its id and its ledger entry, and its
    /// signature. Exit 0 valid, 1 not valid (the problem is printed).
    #[command(after_long_help = "\
Needs the auditor role or higher.

Example:
  lexecon evidence verify sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    Verify {
        /// The evidence id (sha256:<hex>).
        id: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: ServerArgs,
    },
}

/// `lexecon evidence add`.
#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The file to register.
    file: PathBuf,
    /// What it is: decision_log, policy_snapshot, risk_assessment, human_review,
    /// test_result, model_documentation, incident_report or external_attestation.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    artifact_type: pb::ArtifactType,
    /// A title for people.
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,
    /// Its media type [default: from the file's extension, else application/octet-stream].
    #[arg(long, value_name = "TYPE")]
    media_type: Option<String>,
    /// A decision it concerns (repeat for several).
    #[arg(long = "decision", value_name = "ID")]
    decisions: Vec<String>,
    /// A control it supports, e.g. soc2:CC6.1 (repeat for several).
    #[arg(long = "control", value_name = "ID")]
    controls: Vec<String>,
    /// A file holding the Ed25519 signature over the file (64 raw bytes or hex).
    #[arg(long, value_name = "FILE", requires = "signer_public_key")]
    signature: Option<PathBuf>,
    /// A file holding the signer's Ed25519 public key (32 raw bytes, hex, or PEM).
    #[arg(long, value_name = "FILE", requires = "signature")]
    signer_public_key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: ServerArgs,
}

/// An artifact type from `test_result`, `test-result`, `TEST_RESULT` or
/// `ARTIFACT_TYPE_TEST_RESULT`.
fn parse_type(s: &str) -> Result<pb::ArtifactType, String> {
    let upper = s.trim().to_ascii_uppercase().replace('-', "_");
    let name = if upper.starts_with("ARTIFACT_TYPE_") {
        upper
    } else {
        format!("ARTIFACT_TYPE_{upper}")
    };
    match pb::ArtifactType::from_str_name(&name) {
        Some(t) if t != pb::ArtifactType::Unspecified => Ok(t),
        _ => Err(format!(
            "unknown artifact type {s:?}: expected one of {}",
            TYPES.join(", ")
        )),
    }
}

const TYPES: [&str; 8] = [
    "decision_log",
    "policy_snapshot",
    "risk_assessment",
    "human_review",
    "test_result",
    "model_documentation",
    "incident_report",
    "external_attestation",
];

/// `test_result` for `ARTIFACT_TYPE_TEST_RESULT`.
fn type_word(t: pb::ArtifactType) -> String {
    t.as_str_name()
        .trim_start_matches("ARTIFACT_TYPE_")
        .to_ascii_lowercase()
}

/// A media type from a file's extension, for the common kinds of evidence.
fn media_type_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "toml" => "application/toml",
        "yaml" | "yml" => "application/yaml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => return None,
    })
}

/// A file holding `n` raw bytes, their hex, or (for keys) a PEM Ed25519 public key.
fn read_key_material(path: &Path, n: usize, what: &str) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.len() == n {
        return Ok(raw);
    }
    let text = String::from_utf8_lossy(&raw);
    let text = text.trim();
    if text.len() == 2 * n
        && let Ok(bytes) = hex::decode(text)
    {
        return Ok(bytes);
    }
    if n == 32
        && let Some(key) = pem_ed25519_public_key(text)
    {
        return Ok(key);
    }
    bail!(
        "{}: expected the {what} as {n} raw bytes or {} hex digits{}",
        path.display(),
        2 * n,
        if n == 32 { ", or a PEM public key" } else { "" }
    )
}

/// The raw key of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an Ed25519 key.
fn pem_ed25519_public_key(text: &str) -> Option<Vec<u8>> {
    /// The DER of an Ed25519 SubjectPublicKeyInfo before its 32 key bytes (RFC 8410).
    const SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let body = text
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .trim_end()
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let der = base64_decode(&body.split_whitespace().collect::<String>())?;
    let key = der.strip_prefix(&SPKI_PREFIX[..])?;
    (key.len() == 32).then(|| key.to_vec())
}

/// Standard base64 with padding (enough for a PEM body).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for group in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in group.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        let take = match group.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend(bytes.iter().skip(1).take(take));
    }
    Some(out)
}

/// The evidence client: responses as large as the server sends (content included).
async fn client(target: &ServerArgs) -> Result<(EvidenceServiceClient<Channel>, String)> {
    let (channel, bearer) = target.connect().await?;
    let client = EvidenceServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    Ok((client, bearer))
}

fn rfc3339(ts: Option<&lexecon_proto::prost_types::Timestamp>) -> String {
    ts.map(lexecon_server::convert::timestamp_from_pb)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn hex_string(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// An artifact's record as JSON: the type as a word, the key as hex, times as RFC 3339.
fn evidence_json(e: &pb::Evidence) -> serde_json::Value {
    json!({
        "evidence_id": e.evidence_id,
        "artifact_type": type_word(e.artifact_type()),
        "media_type": e.media_type,
        "title": e.title,
        "size": e.size,
        "decision_ids": e.decision_ids,
        "control_ids": e.control_ids,
        "signed": e.signed,
        "signer_public_key": hex_string(&e.signer_public_key),
        "registered_by": e.registered_by,
        "registered_at": rfc3339(e.registered_at.as_ref()),
        "ledger_index": e.ledger_index,
        "erased": e.erased,
    })
}

fn render_evidence(e: &pb::Evidence) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", e.evidence_id);
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<16}{v}");
    };
    line("type", type_word(e.artifact_type()));
    if !e.title.is_empty() {
        line("title", e.title.clone());
    }
    line("media type", e.media_type.clone());
    line("size", format!("{} bytes", e.size));
    line("registered by", e.registered_by.clone());
    line("registered at", rfc3339(e.registered_at.as_ref()));
    line("ledger entry", e.ledger_index.to_string());
    if e.signed {
        line(
            "signed by",
            format!("Ed25519 key {}", hex_string(&e.signer_public_key)),
        );
    }
    for d in &e.decision_ids {
        line("decision", d.clone());
    }
    for c in &e.control_ids {
        line("control", c.clone());
    }
    if e.erased {
        line("content", "erased".into());
    }
    out
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs `lexecon evidence ...`.
pub(crate) fn run(cmd: &EvidenceCommand) -> Result<Verdict> {
    match cmd {
        EvidenceCommand::Add(args) => add(args),
        EvidenceCommand::Get {
            id,
            out,
            json,
            target,
        } => get(id, out.as_deref(), *json, target),
        EvidenceCommand::List {
            artifact_type,
            decision,
            control,
            page_size,
            page_token,
            json,
            target,
        } => {
            let request = pb::ListEvidenceRequest {
                artifact_type: artifact_type.map_or(0, |t| t as i32),
                decision_id: decision.clone().unwrap_or_default(),
                control_id: control.clone().unwrap_or_default(),
                page_size: *page_size,
                page_token: page_token.clone().unwrap_or_default(),
            };
            list(request, *json, target)
        }
        EvidenceCommand::Verify { id, json, target } => verify(id, *json, target),
    }
}

fn add(args: &AddArgs) -> Result<Verdict> {
    let content = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let signature = args
        .signature
        .as_deref()
        .map(|p| read_key_material(p, 64, "Ed25519 signature"))
        .transpose()?
        .unwrap_or_default();
    let signer_public_key = args
        .signer_public_key
        .as_deref()
        .map(|p| read_key_material(p, 32, "Ed25519 public key"))
        .transpose()?
        .unwrap_or_default();
    let media_type = args
        .media_type
        .clone()
        .or_else(|| media_type_of(&args.file).map(str::to_owned))
        .unwrap_or_default();
    let size = content.len();
    let request = pb::RegisterEvidenceRequest {
        artifact_type: args.artifact_type as i32,
        // The file's bytes move into the request; no second copy.
        content: content.into(),
        media_type,
        title: args.title.clone().unwrap_or_default(),
        decision_ids: args.decisions.clone(),
        control_ids: args.controls.clone(),
        signature,
        signer_public_key,
    };
    let r = runtime()?.block_on(async {
        let (mut client, bearer) = client(&args.target).await?;
        client
            .register_evidence(authed(request, &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let r = r.into_inner();
    if args.json {
        print_json(&json!({
            "evidence_id": r.evidence_id,
            "ledger_index": r.ledger_index,
            "newly_registered": r.newly_registered,
        }))?;
    } else if r.newly_registered {
        println!(
            "registered {} ({size} bytes) in ledger entry {}",
            r.evidence_id, r.ledger_index
        );
    } else {
        println!(
            "already registered: {} (ledger entry {}; only new links were added)",
            r.evidence_id, r.ledger_index
        );
    }
    Ok(Verdict::Yes)
}

fn get(id: &str, out: Option<&Path>, json: bool, target: &ServerArgs) -> Result<Verdict> {
    let r = runtime()?.block_on(async {
        let (mut client, bearer) = client(target).await?;
        client
            .get_evidence(authed(
                pb::GetEvidenceRequest {
                    evidence_id: id.to_owned(),
                    include_content: out.is_some(),
                },
                &bearer,
            )?)
            .await
            .map_err(status_error)
    })?;
    let r = r.into_inner();
    let evidence = r
        .evidence
        .ok_or_else(|| anyhow!("the server sent no evidence record"))?;
    if let Some(out) = out {
        // Plain SHA-256 of the bytes, as the id is.
        let digest = format!(
            "sha256:{}",
            hex_string(&lexecon_ledger::payload_hash(&r.content))
        );
        if digest != evidence.evidence_id {
            bail!(
                "the content received hashes to {digest}, not {}; nothing was written",
                evidence.evidence_id
            );
        }
        std::fs::write(out, &r.content)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    if json {
        let mut value = evidence_json(&evidence);
        if let (Some(out), Some(map)) = (out, value.as_object_mut()) {
            map.insert("written_to".into(), json!(out.display().to_string()));
        }
        print_json(&value)?;
    } else {
        print!("{}", render_evidence(&evidence));
        if let Some(out) = out {
            println!("wrote {} bytes to {}", r.content.len(), out.display());
        }
    }
    Ok(Verdict::Yes)
}

fn list(request: pb::ListEvidenceRequest, json: bool, target: &ServerArgs) -> Result<Verdict> {
    let r = runtime()?.block_on(async {
        let (mut client, bearer) = client(target).await?;
        client
            .list_evidence(authed(request, &bearer)?)
            .await
            .map_err(status_error)
    })?;
    let r = r.into_inner();
    if json {
        print_json(&json!({
            "evidence": r.evidence.iter().map(evidence_json).collect::<Vec<_>>(),
            "next_page_token": r.next_page_token,
        }))?;
    } else {
        if r.evidence.is_empty() {
            println!("no evidence");
        }
        for e in &r.evidence {
            println!(
                "{}  {:<20} {:>10} B  {}",
                e.evidence_id,
                type_word(e.artifact_type()),
                e.size,
                e.title
            );
        }
        if !r.next_page_token.is_empty() {
            println!("more: --page-token {}", r.next_page_token);
        }
    }
    Ok(Verdict::Yes)
}

fn verify(id: &str, json: bool, target: &ServerArgs) -> Result<Verdict> {
    let r = runtime()?.block_on(async {
        let (mut client, bearer) = client(target).await?;
        client
            .verify_evidence(authed(
                pb::VerifyEvidenceRequest {
                    evidence_id: id.to_owned(),
                },
                &bearer,
            )?)
            .await
            .map_err(status_error)
    })?;
    let r = r.into_inner();
    if json {
        print_json(&json!({"evidence_id": id, "valid": r.valid, "problem": r.problem}))?;
    } else if r.valid {
        println!("valid: {id} matches its id, its ledger entry and its signature (if any)");
    } else {
        println!("NOT VALID: {id}: {}", r.problem);
    }
    Ok(if r.valid { Verdict::Yes } else { Verdict::No })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn types_parse_in_every_spelling() {
        for s in [
            "test_result",
            "test-result",
            "TEST_RESULT",
            "ARTIFACT_TYPE_TEST_RESULT",
        ] {
            assert_eq!(parse_type(s), Ok(pb::ArtifactType::TestResult), "{s}");
        }
        for word in TYPES {
            assert_eq!(type_word(parse_type(word).unwrap()), word);
        }
        assert!(parse_type("unspecified").is_err());
        let err = parse_type("memo").unwrap_err();
        assert!(
            err.contains("memo") && err.contains("incident_report"),
            "{err}"
        );
    }

    #[test]
    fn keys_read_as_raw_hex_or_pem() {
        let dir = tempfile::tempdir().unwrap();
        let key = [9u8; 32];
        let raw = dir.path().join("raw");
        std::fs::write(&raw, key).unwrap();
        assert_eq!(read_key_material(&raw, 32, "key").unwrap(), key);
        let hexed = dir.path().join("hex");
        std::fs::write(&hexed, format!("{}\n", hex::encode(key))).unwrap();
        assert_eq!(read_key_material(&hexed, 32, "key").unwrap(), key);
        // The PEM of the public key of the all-7s seed (as `openssl pkey -pubout` writes).
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pem = {
            use ed25519_dalek::pkcs8::EncodePublicKey as _;
            signing
                .verifying_key()
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap()
        };
        let pem_file = dir.path().join("pem");
        std::fs::write(&pem_file, pem).unwrap();
        assert_eq!(
            read_key_material(&pem_file, 32, "key").unwrap(),
            signing.verifying_key().to_bytes()
        );
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "nope").unwrap();
        let err = read_key_material(&bad, 64, "Ed25519 signature")
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 raw bytes or 128 hex digits"), "{err}");
    }

    #[test]
    fn media_types_come_from_extensions() {
        assert_eq!(
            media_type_of(Path::new("r/report.PDF")),
            Some("application/pdf")
        );
        assert_eq!(media_type_of(Path::new("blob")), None);
    }
}
