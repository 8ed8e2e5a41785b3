//! The audit bundle of contract §7 (`docs/audit-export.md` specifies it byte by byte):
//! decisions, each with its leaf and an inclusion proof against one signed checkpoint,
//! the checkpoint, the verifier key, and a `manifest.json` listing every file's SHA-256,
//! signed by the node key in `manifest.sig`.
//!
//! This module formats the bundle's lines, manifest and signature, and verifies a bundle
//! offline, naming the first problem. The engine picks the decisions and streams the
//! bytes; nothing here reads a database.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::entry::{Entry, EntryKind, Leaf, payload_hash};
use crate::error::LedgerError;
use crate::ledger::InclusionProof;
use crate::merkle::{leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, CheckpointSigner, NoteVerifier};

/// The `format` of every manifest this version writes.
pub const AUDIT_BUNDLE_FORMAT: &str = "lexecon-audit-bundle/1";

/// The first line of the body `manifest.sig` signs.
pub const MANIFEST_NOTE_TITLE: &str = "lexecon audit manifest v1";

/// The CSV header, in column order (also the order of NDJSON keys).
pub const CSV_COLUMNS: [&str; 20] = [
    "index",
    "kind",
    "timestamp",
    "leaf",
    "leaf_hash",
    "payload_b64",
    "redacted",
    "proof",
    "decision_id",
    "decided_at",
    "principal",
    "actor",
    "action",
    "tool",
    "outcome",
    "risk_score",
    "reasons",
    "policy_hash",
    "escalation_id",
    "override_id",
];

/// The format of the decisions file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// `decisions.ndjson`: one JSON object per line.
    #[default]
    Ndjson,
    /// `decisions.csv`: a header line, then one row per decision.
    Csv,
}

impl AuditFormat {
    /// The decisions file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            AuditFormat::Ndjson => "decisions.ndjson",
            AuditFormat::Csv => "decisions.csv",
        }
    }

    /// The bytes the decisions file starts with (the CSV header).
    pub fn header(self) -> Vec<u8> {
        match self {
            AuditFormat::Ndjson => Vec::new(),
            AuditFormat::Csv => {
                let mut h = CSV_COLUMNS.join(",").into_bytes();
                h.extend_from_slice(b"\r\n");
                h
            }
        }
    }
}

/// What the decision index says of a decision; each field an auditor can check against
/// the payload is checked by the verifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionColumns {
    /// `dec_` + ULID.
    pub decision_id: String,
    /// RFC 3339, microseconds; its millisecond is the one `decision_id` carries.
    pub decided_at: String,
    /// Who asked (`key:<name>`, `user:<name>`, ...); null when withheld.
    pub principal: Option<String>,
    /// The actor; null when withheld.
    pub actor: Option<String>,
    /// The proposed action; null when withheld.
    pub action: Option<String>,
    /// The tool; null when none or withheld.
    pub tool: Option<String>,
    /// `approved`, `denied` or `escalated`.
    pub outcome: String,
    /// 0-100; null when withheld.
    pub risk_score: Option<u8>,
    /// The deciding relations or limits; null when withheld.
    pub reasons: Option<Vec<String>>,
    /// The policy's SHA-256, lowercase hex; null when withheld.
    pub policy_hash: Option<String>,
    /// The escalation the decision created or used.
    pub escalation_id: Option<String>,
    /// The override that decided it.
    pub override_id: Option<String>,
}

/// One decision of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    /// The ledger index.
    pub index: u64,
    /// The entry kind's name (always `decision`).
    pub kind: String,
    /// The leaf's timestamp, RFC 3339.
    pub timestamp: String,
    /// The leaf bytes, base64.
    pub leaf: String,
    /// SHA-256(0x00 || leaf), lowercase hex.
    pub leaf_hash: String,
    /// The exact payload bytes, base64; null when redacted.
    pub payload_b64: Option<String>,
    /// Whether the payload was redacted (its fields are withheld).
    pub redacted: bool,
    /// The inclusion proof against the bundle's checkpoint, leaf first, lowercase hex.
    pub proof: Vec<String>,
    /// The index's columns.
    #[serde(flatten)]
    pub decision: DecisionColumns,
}

impl AuditLine {
    /// The line of `entry` with its `proof` (of the same index) and the index's columns.
    pub fn new(
        entry: &Entry,
        proof: &InclusionProof,
        decision: DecisionColumns,
    ) -> Result<AuditLine, LedgerError> {
        if proof.index != entry.index {
            return Err(LedgerError::Corrupt(format!(
                "the proof of entry {} was paired with entry {}",
                proof.index, entry.index
            )));
        }
        let leaf = entry
            .decode_leaf()
            .map_err(|e| LedgerError::Corrupt(format!("entry {}: {e}", entry.index)))?;
        let redacted = entry.payload.is_none();
        let decision = if redacted {
            // Only what the leaf's position and the index's key say stays.
            DecisionColumns {
                decision_id: decision.decision_id,
                decided_at: decision.decided_at,
                outcome: decision.outcome,
                ..DecisionColumns::default()
            }
        } else {
            decision
        };
        Ok(AuditLine {
            index: entry.index,
            kind: leaf.kind.as_str().to_owned(),
            timestamp: leaf.timestamp.to_rfc3339(),
            leaf: B64.encode(&entry.leaf),
            leaf_hash: hex::encode(entry.leaf_hash),
            payload_b64: entry.payload.as_ref().map(|p| B64.encode(p)),
            redacted,
            proof: proof.proof.iter().map(hex::encode).collect(),
            decision,
        })
    }

    /// The line's bytes in `format`, with its line end.
    pub fn encode(&self, format: AuditFormat) -> Result<Vec<u8>, LedgerError> {
        match format {
            AuditFormat::Ndjson => {
                let mut out = serde_json::to_vec(self)?;
                out.push(b'\n');
                Ok(out)
            }
            AuditFormat::Csv => {
                let fields = self.csv_fields()?;
                let mut out = String::new();
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    csv_field(&mut out, f);
                }
                out.push_str("\r\n");
                Ok(out.into_bytes())
            }
        }
    }

    fn csv_fields(&self) -> Result<Vec<String>, LedgerError> {
        let d = &self.decision;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(vec![
            self.index.to_string(),
            self.kind.clone(),
            self.timestamp.clone(),
            self.leaf.clone(),
            self.leaf_hash.clone(),
            opt(&self.payload_b64),
            self.redacted.to_string(),
            self.proof.join(":"),
            d.decision_id.clone(),
            d.decided_at.clone(),
            opt(&d.principal),
            opt(&d.actor),
            opt(&d.action),
            opt(&d.tool),
            d.outcome.clone(),
            d.risk_score.map(|s| s.to_string()).unwrap_or_default(),
            match &d.reasons {
                Some(r) => serde_json::to_string(r)?,
                None => String::new(),
            },
            opt(&d.policy_hash),
            opt(&d.escalation_id),
            opt(&d.override_id),
        ])
    }

    fn from_csv(fields: &[String]) -> Result<AuditLine, String> {
        if fields.len() != CSV_COLUMNS.len() {
            return Err(format!(
                "has {} fields; the header has {}",
                fields.len(),
                CSV_COLUMNS.len()
            ));
        }
        let get = |i: usize| fields.get(i).cloned().unwrap_or_default();
        let opt = |i: usize| Some(get(i)).filter(|s| !s.is_empty());
        let num = |i: usize, name: &str| {
            get(i)
                .parse::<u64>()
                .map_err(|_| format!("{name} is not a number"))
        };
        Ok(AuditLine {
            index: num(0, "index")?,
            kind: get(1),
            timestamp: get(2),
            leaf: get(3),
            leaf_hash: get(4),
            payload_b64: opt(5),
            redacted: match get(6).as_str() {
                "true" => true,
                "false" => false,
                _ => return Err("redacted is neither true nor false".into()),
            },
            proof: opt(7)
                .map(|p| p.split(':').map(str::to_owned).collect())
                .unwrap_or_default(),
            decision: DecisionColumns {
                decision_id: get(8),
                decided_at: get(9),
                principal: opt(10),
                actor: opt(11),
                action: opt(12),
                tool: opt(13),
                outcome: get(14),
                risk_score: match opt(15) {
                    Some(s) => Some(
                        s.parse::<u8>()
                            .map_err(|_| "risk_score is not a number from 0 to 255".to_owned())?,
                    ),
                    None => None,
                },
                reasons: match opt(16) {
                    Some(s) => Some(
                        serde_json::from_str(&s)
                            .map_err(|_| "reasons is not a JSON array of strings".to_owned())?,
                    ),
                    None => None,
                },
                policy_hash: opt(17),
                escalation_id: opt(18),
                override_id: opt(19),
            },
        })
    }
}

fn csv_field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}

/// Splits CSV text (RFC 4180: CRLF or LF line ends, `"` quoting) into records.
fn csv_records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_start = true;
            }
            '"' => return Err(format!("record {} has a stray quote", records.len() + 1)),
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("the file ends inside a quoted field".into());
    }
    if !field.is_empty() || !record.is_empty() {
        return Err("the last record has no line end".into());
    }
    Ok(records)
}

/// One file of the bundle as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The path in the bundle.
    pub path: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`AUDIT_BUNDLE_FORMAT`].
    pub format: String,
    /// `exp_` + ULID; the `audit_exported` ledger entry names it.
    pub export_id: String,
    /// Who took the export, as the ledger names them.
    pub exported_by: String,
    /// When, RFC 3339.
    pub exported_at: String,
    /// The log's origin (the checkpoint's first line).
    pub origin: String,
    /// The checkpoint's tree size: every proof is against it.
    pub tree_size: u64,
    /// The checkpoint's root, lowercase hex.
    pub root: String,
    /// How many decisions the decisions file holds.
    pub decisions: u64,
    /// The decisions file's format.
    pub decisions_format: AuditFormat,
    /// The filters the export was taken with.
    pub filters: serde_json::Value,
    /// Every other file of the bundle, in the order they were written.
    pub files: Vec<ManifestFile>,
}

/// The body `manifest.sig` signs for a `manifest.json` of these bytes.
pub fn manifest_note_body(manifest_json: &[u8]) -> String {
    format!(
        "{MANIFEST_NOTE_TITLE}\n{}\n",
        hex::encode(Sha256::digest(manifest_json))
    )
}

/// `manifest.sig`: a C2SP signed note by the node key over [`manifest_note_body`].
pub fn sign_manifest(signer: &CheckpointSigner, manifest_json: &[u8]) -> String {
    signer.sign_text(&manifest_note_body(manifest_json))
}

/// Whom `verify_audit_bundle` trusts.
#[derive(Debug, Clone, Default)]
pub struct AuditVerifyOptions {
    /// The node's key; without one, the bundle's own `verifier.vkey` is used, which
    /// shows integrity but not who made the bundle.
    pub trusted_key: Option<NoteVerifier>,
    /// A checkpoint note the auditor obtained on their own: the bundle's checkpoint
    /// must be the same tree (size and root).
    pub trusted_checkpoint: Option<String>,
}

/// What `verify_audit_bundle` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditBundleReport {
    /// True when nothing is wrong.
    pub valid: bool,
    /// The first problem, when there is one.
    pub problem: Option<String>,
    /// The verifier key the signatures were checked with.
    pub key: String,
    /// `trusted` (given by the auditor) or `bundle` (the bundle's own verifier.vkey).
    pub key_source: String,
    /// The export's id (from the manifest, once it verified).
    pub export_id: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Decisions checked.
    pub decisions: u64,
}

/// A problem that ends verification.
struct Bad(String);

impl<T: std::fmt::Display> From<T> for Bad {
    fn from(v: T) -> Self {
        Bad(v.to_string())
    }
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, Bad> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| Bad(format!("cannot read {name}: {e}")))
}

fn text(bytes: Vec<u8>, name: &str) -> Result<String, Bad> {
    String::from_utf8(bytes).map_err(|_| Bad(format!("{name} is not UTF-8")))
}

/// Verifies the bundle in `dir` offline and names the first problem: the manifest's
/// signature, the checkpoint's signature and its agreement with the manifest (and the
/// trusted checkpoint), each decision (leaf, leaf hash, payload hash, the index's
/// columns against the payload, inclusion proof against the checkpoint, index order),
/// the decision count, then every file's SHA-256 and size.
///
/// `Err` only when `dir` is not a directory; everything wrong inside the bundle is a
/// report with `valid: false`.
pub fn verify_audit_bundle(
    dir: &Path,
    options: &AuditVerifyOptions,
) -> Result<AuditBundleReport, LedgerError> {
    if !dir.is_dir() {
        return Err(LedgerError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let mut report = AuditBundleReport {
        valid: false,
        problem: None,
        key: String::new(),
        key_source: String::new(),
        export_id: String::new(),
        tree_size: 0,
        decisions: 0,
    };
    match check_bundle(dir, options, &mut report) {
        Ok(()) => report.valid = true,
        Err(Bad(problem)) => report.problem = Some(problem),
    }
    Ok(report)
}

fn check_bundle(
    dir: &Path,
    options: &AuditVerifyOptions,
    report: &mut AuditBundleReport,
) -> Result<(), Bad> {
    // The key.
    let verifier = match &options.trusted_key {
        Some(key) => {
            report.key_source = "trusted".into();
            key.clone()
        }
        None => {
            report.key_source = "bundle".into();
            let vkeys = text(read(dir, "verifier.vkey")?, "verifier.vkey")?;
            let line = vkeys
                .lines()
                .find(|l| !l.trim().is_empty())
                .ok_or_else(|| Bad("verifier.vkey holds no key".into()))?;
            NoteVerifier::from_vkey(line.trim()).map_err(|e| Bad(format!("verifier.vkey: {e}")))?
        }
    };
    report.key = verifier.vkey();

    // The manifest and its signature.
    let manifest_bytes = read(dir, "manifest.json")?;
    let sig = text(read(dir, "manifest.sig")?, "manifest.sig")?;
    let body = verifier.verify_text(&sig).map_err(|e| {
        Bad(format!(
            "manifest.sig is not a valid signature by {}: {e}",
            report.key
        ))
    })?;
    if body != manifest_note_body(&manifest_bytes) {
        return Err(Bad(
            "manifest.sig signs another manifest: the SHA-256 it names is not manifest.json's"
                .into(),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Bad(format!("manifest.json is not a manifest: {e}")))?;
    if manifest.format != AUDIT_BUNDLE_FORMAT {
        return Err(Bad(format!(
            "manifest.json has format {:?}; this verifier reads {AUDIT_BUNDLE_FORMAT:?}",
            manifest.format
        )));
    }
    report.export_id.clone_from(&manifest.export_id);

    // The checkpoint.
    let note = text(read(dir, "checkpoint")?, "checkpoint")?;
    let cp = verifier.verify(&note).map_err(|e| {
        Bad(format!(
            "checkpoint is not a valid checkpoint signed by {}: {e}",
            report.key
        ))
    })?;
    report.tree_size = cp.size;
    if cp.size != manifest.tree_size || hex::encode(cp.root) != manifest.root {
        return Err(Bad(format!(
            "checkpoint (size {}, root {}) is not the one manifest.json names (size {}, root {})",
            cp.size,
            hex::encode(cp.root),
            manifest.tree_size,
            manifest.root
        )));
    }
    if let Some(trusted) = &options.trusted_checkpoint {
        let t = verifier
            .verify(trusted)
            .map_err(|e| Bad(format!("the trusted checkpoint does not verify: {e}")))?;
        if t.size != cp.size || t.root != cp.root {
            return Err(Bad(format!(
                "the bundle's checkpoint (size {}, root {}) is not the trusted checkpoint (size {}, root {})",
                cp.size,
                hex::encode(cp.root),
                t.size,
                hex::encode(t.root)
            )));
        }
    }

    // The decisions.
    let name = manifest.decisions_format.file_name();
    let decisions = text(read(dir, name)?, name)?;
    let lines = parse_lines(&decisions, manifest.decisions_format, name)?;
    let mut last = None;
    for (n, line) in lines.iter().enumerate() {
        check_line(line, &cp, last).map_err(|p| Bad(format!("{name} record {}: {p}", n + 1)))?;
        last = Some(line.index);
        report.decisions += 1;
    }
    if report.decisions != manifest.decisions {
        return Err(Bad(format!(
            "{name} holds {} decisions; manifest.json says {}",
            report.decisions, manifest.decisions
        )));
    }

    // Every file's hash.
    if !manifest.files.iter().any(|f| f.path == name) {
        return Err(Bad(format!("manifest.json does not list {name}")));
    }
    for file in &manifest.files {
        if file.path.contains("..") || file.path.starts_with('/') || file.path.contains('\\') {
            return Err(Bad(format!(
                "manifest.json lists the path {:?}, which leaves the bundle",
                file.path
            )));
        }
        let bytes = read(dir, &file.path)?;
        if hex::encode(Sha256::digest(&bytes)) != file.sha256 || bytes.len() as u64 != file.size {
            return Err(Bad(format!(
                "{} does not match its SHA-256 and size in manifest.json",
                file.path
            )));
        }
    }
    Ok(())
}

fn parse_lines(text: &str, format: AuditFormat, name: &str) -> Result<Vec<AuditLine>, Bad> {
    match format {
        AuditFormat::Ndjson => text
            .split_terminator('\n')
            .enumerate()
            .map(|(n, l)| {
                serde_json::from_str(l)
                    .map_err(|e| Bad(format!("{name} line {} is not a decision: {e}", n + 1)))
            })
            .collect(),
        AuditFormat::Csv => {
            let records = csv_records(text).map_err(|e| Bad(format!("{name}: {e}")))?;
            let mut records = records.into_iter();
            let header = records.next().unwrap_or_default();
            if header != CSV_COLUMNS {
                return Err(Bad(format!(
                    "{name}: the header is not {}",
                    CSV_COLUMNS.join(",")
                )));
            }
            records
                .enumerate()
                .map(|(n, r)| {
                    AuditLine::from_csv(&r)
                        .map_err(|e| Bad(format!("{name} record {}: {e}", n + 1)))
                })
                .collect()
        }
    }
}

/// The payload value at a JSON pointer, as text (strings bare, numbers and arrays as
/// JSON), `None` when absent or null.
fn at(payload: &serde_json::Value, pointer: &str) -> Option<serde_json::Value> {
    payload.pointer(pointer).filter(|v| !v.is_null()).cloned()
}

fn check_line(line: &AuditLine, cp: &Checkpoint, last: Option<u64>) -> Result<(), String> {
    let i = line.index;
    if let Some(last) = last
        && i <= last
    {
        return Err(format!(
            "index {i} does not follow {last}: decisions are in increasing index order"
        ));
    }
    if i >= cp.size {
        return Err(format!(
            "index {i} is not below the checkpoint's tree size {}",
            cp.size
        ));
    }
    let leaf_bytes = B64
        .decode(&line.leaf)
        .map_err(|_| format!("entry {i}: leaf is not base64"))?;
    let leaf = Leaf::decode(&leaf_bytes).map_err(|e| format!("entry {i}: leaf: {e}"))?;
    if leaf.index != i {
        return Err(format!("entry {i}: its leaf holds index {}", leaf.index));
    }
    if leaf.kind != EntryKind::Decision || line.kind != EntryKind::Decision.as_str() {
        return Err(format!(
            "entry {i}: kind {:?} (leaf: {}) is not decision",
            line.kind,
            leaf.kind.as_str()
        ));
    }
    if line.timestamp != leaf.timestamp.to_rfc3339() {
        return Err(format!("entry {i}: timestamp differs from its leaf's"));
    }
    let h = leaf_hash(&leaf_bytes);
    if hex::encode(h) != line.leaf_hash {
        return Err(format!("entry {i}: leaf_hash is not SHA-256(0x00 || leaf)"));
    }
    let proof = line
        .proof
        .iter()
        .map(|p| hex::decode(p).map_err(|_| format!("entry {i}: a proof hash is not hex")))
        .collect::<Result<Vec<_>, _>>()?;
    verify_inclusion(&h, i, cp.size, &proof, &cp.root).map_err(|e| {
        format!(
            "entry {i}: the inclusion proof does not lead to the checkpoint's root (size {}): {e}",
            cp.size
        )
    })?;
    let d = &line.decision;
    let id: lexecon_core::DecisionId = d
        .decision_id
        .parse()
        .map_err(|e| format!("entry {i}: decision_id: {e}"))?;
    let decided_at: lexecon_core::Timestamp = d
        .decided_at
        .parse()
        .map_err(|e| format!("entry {i}: decided_at: {e}"))?;
    if decided_at.unix_millis() != id.timestamp().unix_millis() {
        return Err(format!(
            "entry {i}: decided_at is not in the millisecond its decision_id carries"
        ));
    }
    match (&line.payload_b64, line.redacted) {
        (None, true) => Ok(()),
        (Some(_), true) => Err(format!("entry {i}: redacted but carries a payload")),
        (None, false) => Err(format!("entry {i}: payload_b64 is missing")),
        (Some(b64), false) => {
            let payload = B64
                .decode(b64)
                .map_err(|_| format!("entry {i}: payload_b64 is not base64"))?;
            if payload_hash(&payload) != leaf.payload_hash {
                return Err(format!(
                    "entry {i}: the payload's SHA-256 is not the one in its leaf"
                ));
            }
            let p: serde_json::Value = serde_json::from_slice(&payload)
                .map_err(|e| format!("entry {i}: the payload is not JSON: {e}"))?;
            check_columns(i, d, &p)
        }
    }
}

/// Each column against the payload field it comes from.
fn check_columns(i: u64, d: &DecisionColumns, p: &serde_json::Value) -> Result<(), String> {
    let s = |v: &str| Some(serde_json::Value::String(v.to_owned()));
    let opt = |v: &Option<String>| v.as_deref().and_then(s);
    let checks: [(&str, Option<serde_json::Value>, Option<serde_json::Value>); 9] = [
        ("decision_id", s(&d.decision_id), at(p, "/decision_id")),
        ("principal", opt(&d.principal), at(p, "/principal")),
        ("actor", opt(&d.actor), at(p, "/request/actor")),
        ("action", opt(&d.action), at(p, "/request/action")),
        ("tool", opt(&d.tool), at(p, "/request/tool")),
        ("outcome", s(&d.outcome), at(p, "/outcome")),
        (
            "risk_score",
            d.risk_score.map(serde_json::Value::from),
            at(p, "/risk/score"),
        ),
        (
            "reasons",
            d.reasons.as_ref().map(|r| serde_json::json!(r)),
            at(p, "/reasons"),
        ),
        ("policy_hash", opt(&d.policy_hash), at(p, "/policy/hash")),
    ];
    for (name, column, payload) in checks {
        if column != payload {
            return Err(format!("entry {i}: {name} differs from its payload"));
        }
    }
    let escalation = at(p, "/escalation/escalation_id").or_else(|| at(p, "/grant_escalation_id"));
    if escalation.is_some() && opt(&d.escalation_id) != escalation {
        return Err(format!("entry {i}: escalation_id differs from its payload"));
    }
    let override_id = at(p, "/override_id");
    if override_id.is_some() && opt(&d.override_id) != override_id {
        return Err(format!("entry {i}: override_id differs from its payload"));
    }
    Ok(())
}
