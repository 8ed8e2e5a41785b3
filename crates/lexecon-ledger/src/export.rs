//! The export bundle (`contract.md` §5) and its verification.
//!
//! `DIR/entries.jsonl`, `DIR/checkpoint`, `DIR/checkpoints/<size>`, `DIR/verifier.vkey`.

use std::io::{BufRead as _, BufWriter, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Tombstone};
use crate::error::LedgerError;
use crate::ledger::VKEYS_META;
use crate::note::NoteVerifier;
use crate::store::{LedgerStore, StoredCheckpoint};
use crate::verify::{EntryView, Problem, VerifyOptions, VerifyReport, prepare};

/// One line of `entries.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleEntry {
    /// The entry index.
    pub index: u64,
    /// The entry kind (snake_case).
    pub kind: String,
    /// RFC 3339 UTC timestamp.
    pub timestamp: String,
    /// The payload as JSON (`null` when redacted).
    pub payload: serde_json::Value,
    /// Base64 of the exact payload bytes whose SHA-256 the leaf holds (absent when
    /// redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_b64: Option<String>,
    /// Base64 of the exact leaf bytes that were hashed.
    pub leaf: String,
    /// `SHA-256(0x00 || leaf)`, lowercase hex.
    pub leaf_hash: String,
    /// Who erased the payload and why, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<Tombstone>,
}

impl BundleEntry {
    /// The bundle line of a stored entry.
    pub fn from_entry(e: &Entry) -> Result<Self, LedgerError> {
        let leaf = e
            .decode_leaf()
            .map_err(|err| LedgerError::Corrupt(format!("entry {}: {err}", e.index)))?;
        let payload = match &e.payload {
            Some(p) => serde_json::from_slice(p)?,
            None => serde_json::Value::Null,
        };
        Ok(BundleEntry {
            index: e.index,
            kind: leaf.kind.to_string(),
            timestamp: leaf.timestamp.to_rfc3339(),
            payload,
            payload_b64: e.payload.as_ref().map(|p| B64.encode(p)),
            leaf: B64.encode(&e.leaf),
            leaf_hash: hex::encode(e.leaf_hash),
            redacted: e.tombstone.clone(),
        })
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// First entry index written.
    pub from: u64,
    /// One past the last entry index written.
    pub to: u64,
    /// Checkpoint files written.
    pub checkpoints: u64,
    /// The size of `DIR/checkpoint`, if one was written.
    pub latest_checkpoint: Option<u64>,
}

fn write_file(path: &Path, text: &str) -> Result<(), LedgerError> {
    std::fs::write(path, text).map_err(|e| LedgerError::io(path, e))
}

/// Writes entries `[from, to)` (default: up to the latest checkpoint, or the head when
/// there is none) and the checkpoints of sizes `from..=to` to `out_dir`.
pub async fn export(
    store: &dyn LedgerStore,
    out_dir: &Path,
    from: u64,
    to: Option<u64>,
) -> Result<ExportSummary, LedgerError> {
    let head = store.head().await?.size;
    let latest = store.latest_checkpoint().await?;
    let to = to
        .unwrap_or_else(|| latest.as_ref().map_or(head, |c| c.size))
        .min(head);
    let from = from.min(to);
    let cp_dir = out_dir.join("checkpoints");
    std::fs::create_dir_all(&cp_dir).map_err(|e| LedgerError::io(&cp_dir, e))?;
    let path = out_dir.join("entries.jsonl");
    let file = std::fs::File::create(&path).map_err(|e| LedgerError::io(&path, e))?;
    let mut out = BufWriter::new(file);
    let mut at = from;
    while at < to {
        let page = store.entries(at, (to - at).min(10_000)).await?;
        let Some(last) = page.last() else { break };
        at = last.index + 1;
        for e in page.iter().filter(|e| e.index < to) {
            serde_json::to_writer(&mut out, &BundleEntry::from_entry(e)?)?;
            out.write_all(b"\n")
                .map_err(|e| LedgerError::io(&path, e))?;
        }
    }
    out.flush().map_err(|e| LedgerError::io(&path, e))?;
    let checkpoints = store.checkpoints(from, to).await?;
    for cp in &checkpoints {
        write_file(&cp_dir.join(cp.size.to_string()), &cp.note)?;
    }
    let last = store.checkpoints(0, to).await?.pop();
    if let Some(cp) = &last {
        write_file(&out_dir.join("checkpoint"), &cp.note)?;
    }
    let vkeys = store.meta(VKEYS_META).await?.unwrap_or_default();
    write_file(&out_dir.join("verifier.vkey"), &vkeys)?;
    Ok(ExportSummary {
        from,
        to,
        checkpoints: checkpoints.len() as u64,
        latest_checkpoint: last.map(|c| c.size),
    })
}

fn read_to_string(path: &Path) -> Result<String, LedgerError> {
    std::fs::read_to_string(path).map_err(|e| LedgerError::io(path, e))
}

/// Verifies an export bundle as an auditor would: only from its files (and the keys
/// and trusted checkpoint in `options`; without keys, the bundle's `verifier.vkey`).
pub fn verify_bundle(dir: &Path, options: &VerifyOptions) -> Result<VerifyReport, LedgerError> {
    let (verifiers, keys) = if options.verifiers.is_empty() {
        let text = read_to_string(&dir.join("verifier.vkey"))?;
        let v = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(NoteVerifier::from_vkey)
            .collect::<Result<Vec<_>, _>>()?;
        (v, "the bundle's verifier.vkey (integrity only: pass the public key or a trusted checkpoint for authenticity)".to_owned())
    } else {
        (
            options.verifiers.clone(),
            "the keys given by the auditor".to_owned(),
        )
    };
    let mut notes = Vec::new();
    let cp_dir = dir.join("checkpoints");
    if cp_dir.is_dir() {
        for item in std::fs::read_dir(&cp_dir).map_err(|e| LedgerError::io(&cp_dir, e))? {
            let item = item.map_err(|e| LedgerError::io(&cp_dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let Ok(size) = name.parse::<u64>() else {
                continue;
            };
            notes.push(StoredCheckpoint {
                size,
                note: read_to_string(&item.path())?,
            });
        }
    }
    let latest = dir.join("checkpoint");
    if latest.is_file() {
        let note = read_to_string(&latest)?;
        match crate::verify::verify_note(&note, &verifiers) {
            Ok(cp) => {
                if !notes.iter().any(|n| n.size == cp.size) {
                    notes.push(StoredCheckpoint {
                        size: cp.size,
                        note,
                    });
                }
            }
            Err(e) => {
                let p = Problem {
                    index: None,
                    what: format!("the bundle's checkpoint file does not verify: {e}"),
                };
                return Ok(crate::verify::Audit::new(0, Vec::new(), None).report(keys, Err(p)));
            }
        }
    }
    notes.sort_by_key(|n| n.size);
    let path = dir.join("entries.jsonl");
    let file = std::fs::File::open(&path).map_err(|e| LedgerError::io(&path, e))?;
    let mut lines = std::io::BufReader::new(file).lines().peekable();
    // The first entry's index decides whether the tree can be recomputed.
    let first_index = match lines.peek() {
        Some(Ok(line)) => serde_json::from_str::<BundleEntry>(line).map_or(0, |e| e.index),
        _ => 0,
    };
    let notes: Vec<_> = if first_index == 0 { notes } else { Vec::new() };
    let (mut audit, _) = match prepare(
        first_index,
        &notes,
        &verifiers,
        options.trusted_checkpoint.as_deref(),
    ) {
        Ok(a) => a,
        Err(p) => {
            return Ok(crate::verify::Audit::new(0, Vec::new(), None).report(keys, Err(p)));
        }
    };
    let mut result = Ok(());
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| LedgerError::io(&path, e))?;
        if let Err(p) = check_line(&mut audit, &line, n) {
            result = Err(p);
            break;
        }
        if let Some(progress) = &options.progress
            && n % 10_000 == 0
        {
            progress(audit.entries(), 0);
        }
    }
    if result.is_ok() {
        result = audit.finish();
    }
    Ok(audit.report(keys, result))
}

fn check_line(audit: &mut crate::verify::Audit, line: &str, n: usize) -> Result<(), Problem> {
    let bad = |index: Option<u64>, what: String| Problem { index, what };
    let e: BundleEntry = serde_json::from_str(line).map_err(|err| {
        bad(
            Some(audit.entries()),
            format!("line {} of entries.jsonl is not an entry: {err}", n + 1),
        )
    })?;
    let i = e.index;
    let leaf = B64
        .decode(&e.leaf)
        .map_err(|_| bad(Some(i), format!("entry {i}: leaf is not base64")))?;
    let leaf_hash = hex::decode(&e.leaf_hash)
        .map_err(|_| bad(Some(i), format!("entry {i}: leaf_hash is not hex")))?;
    let payload = match (&e.payload_b64, &e.redacted) {
        (Some(b), _) => Some(
            B64.decode(b)
                .map_err(|_| bad(Some(i), format!("entry {i}: payload_b64 is not base64")))?,
        ),
        (None, Some(_)) => None,
        (None, None) => Some(
            serde_json::to_vec(&e.payload)
                .map_err(|err| bad(Some(i), format!("entry {i}: {err}")))?,
        ),
    };
    if let Some(p) = &payload {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(p);
        if parsed.ok().as_ref() != Some(&e.payload) {
            return Err(bad(
                Some(i),
                format!("entry {i}'s payload differs from its payload_b64 bytes"),
            ));
        }
    }
    if let Ok(decoded) = crate::entry::Leaf::decode(&leaf)
        && (decoded.kind.as_str() != e.kind
            || Some(decoded.timestamp) != e.timestamp.parse::<lexecon_core::Timestamp>().ok())
    {
        return Err(bad(
            Some(i),
            format!("entry {i}'s kind or timestamp differs from its leaf"),
        ));
    }
    audit.feed(EntryView {
        index: i,
        leaf: &leaf,
        leaf_hash: &leaf_hash,
        payload: payload.as_deref(),
        redacted: e.redacted.is_some(),
    })
}
