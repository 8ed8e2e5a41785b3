//! Evidence (contract §7): immutable, content-addressed artifacts linked to decisions
//! and controls. The id is `sha256:` + the lowercase hex SHA-256 of the content. The
//! bytes are kept in chunks of at most [`EVIDENCE_CHUNK_BYTES`], written before the ledger entry
//! from slices of the request's own bytes; the artifact's row and its links are side
//! rows of its `evidence_registered` entry, so they commit with the entry or not at
//! all. That entry records the hash, never the content, so the ledger proves later that
//! the stored bytes did not change: [`Engine::verify_evidence`] checks them against it.
//!
//! Registering the same bytes again adds the links that are new (one more entry) and
//! changes nothing else: the first type, title, media type and signature stay.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use lexecon_core::{DecisionId, Timestamp};
use lexecon_ledger::{EntryKind, SideRow, SideTable, SideType, SideValue};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::evidence_store::{self, EvidenceRow, EvidenceStore, ListQuery};
use super::page::{Page, decode_cursor, encode_cursor, page_size};
use super::payload::hex;
use super::{Caller, Engine, EngineError, ops};

/// The most bytes one stored chunk holds.
pub const EVIDENCE_CHUNK_BYTES: usize = 1 << 20;
/// The most links of each kind (decisions, controls) one registration may name.
pub const MAX_EVIDENCE_LINKS: usize = 256;
/// The longest title, in bytes.
pub const MAX_EVIDENCE_TITLE_BYTES: usize = 1024;
/// The longest media type, in bytes.
pub const MAX_EVIDENCE_MEDIA_TYPE_BYTES: usize = 255;
/// The longest control id, in bytes.
pub const MAX_CONTROL_ID_BYTES: usize = 256;

const ID_PREFIX: &str = "sha256:";
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
const LINK_DECISION: &str = "decision";
const LINK_CONTROL: &str = "control";

/// The `engine_evidence` side table (migration 4006).
static EVIDENCE_TABLE: SideTable = SideTable {
    name: "engine_evidence",
    columns: &[
        ("evidence_id", SideType::Text),
        ("sha256", SideType::Bytes),
        ("artifact_type", SideType::Text),
        ("media_type", SideType::Text),
        ("title", SideType::Text),
        ("size", SideType::Int),
        ("signature", SideType::Bytes),
        ("signer_public_key", SideType::Bytes),
        ("registered_by", SideType::Text),
        ("registered_at", SideType::Int),
    ],
    // The same bytes registered twice at once: the lower index keeps the row.
    on_conflict: "ON CONFLICT DO NOTHING",
};

/// The `engine_evidence_links` side table (migration 4006).
static LINKS_TABLE: SideTable = SideTable {
    name: "engine_evidence_links",
    columns: &[
        ("evidence_id", SideType::Text),
        ("link_kind", SideType::Text),
        ("target", SideType::Text),
    ],
    on_conflict: "ON CONFLICT DO NOTHING",
};

/// What an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArtifactType {
    /// A log of decisions.
    DecisionLog,
    /// A policy as it was.
    PolicySnapshot,
    /// A risk assessment.
    RiskAssessment,
    /// A person's review.
    HumanReview,
    /// A test result.
    TestResult,
    /// Documentation of a model.
    ModelDocumentation,
    /// An incident report.
    IncidentReport,
    /// An attestation by a third party.
    ExternalAttestation,
}

impl ArtifactType {
    /// Every type, in the order of the proto enum.
    pub const ALL: [ArtifactType; 8] = [
        ArtifactType::DecisionLog,
        ArtifactType::PolicySnapshot,
        ArtifactType::RiskAssessment,
        ArtifactType::HumanReview,
        ArtifactType::TestResult,
        ArtifactType::ModelDocumentation,
        ArtifactType::IncidentReport,
        ArtifactType::ExternalAttestation,
    ];

    /// The name stored and ledgered, e.g. `test_result`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::DecisionLog => "decision_log",
            ArtifactType::PolicySnapshot => "policy_snapshot",
            ArtifactType::RiskAssessment => "risk_assessment",
            ArtifactType::HumanReview => "human_review",
            ArtifactType::TestResult => "test_result",
            ArtifactType::ModelDocumentation => "model_documentation",
            ArtifactType::IncidentReport => "incident_report",
            ArtifactType::ExternalAttestation => "external_attestation",
        }
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an artifact type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown artifact type {0:?}: expected one of {names}", names = ArtifactType::ALL.map(ArtifactType::as_str).join(", "))]
pub struct UnknownArtifactType(String);

impl FromStr for ArtifactType {
    type Err = UnknownArtifactType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArtifactType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownArtifactType(s.to_owned()))
    }
}

/// A registration: the content is borrowed from the request, never copied whole.
#[derive(Debug, Clone, Default)]
pub struct EvidenceInput<'a> {
    /// What it is (required).
    pub artifact_type: Option<ArtifactType>,
    /// The bytes.
    pub content: &'a [u8],
    /// Its media type (empty: `application/octet-stream`).
    pub media_type: String,
    /// A title for people.
    pub title: String,
    /// Decisions it concerns; each must exist.
    pub decision_ids: Vec<String>,
    /// Controls it supports.
    pub control_ids: Vec<String>,
    /// The 64-byte Ed25519 signature over `content`, or empty.
    pub signature: Vec<u8>,
    /// With `signature`: the 32-byte raw Ed25519 public key.
    pub signer_public_key: Vec<u8>,
}

/// The outcome of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// `sha256:<hex>`.
    pub evidence_id: String,
    /// This registration's entry; the first registration's when the bytes were known
    /// and no link was new (nothing was written).
    pub ledger_index: u64,
    /// False when the bytes were registered before.
    pub newly_registered: bool,
    /// The type the artifact has: the first registration's.
    pub artifact_type: ArtifactType,
}

/// An artifact's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EvidenceRecord {
    /// `sha256:<hex>`.
    pub evidence_id: String,
    /// What it is.
    #[serde(serialize_with = "serialize_type")]
    pub artifact_type: ArtifactType,
    /// Its media type.
    pub media_type: String,
    /// Its title.
    pub title: String,
    /// Its size in bytes.
    pub size: u64,
    /// Linked decisions, in the order they were linked.
    pub decision_ids: Vec<String>,
    /// Linked controls, in the order they were linked.
    pub control_ids: Vec<String>,
    /// Whether a signature was verified at registration.
    pub signed: bool,
    /// The signer's raw Ed25519 public key, when signed.
    #[serde(serialize_with = "serialize_hex")]
    pub signer_public_key: Vec<u8>,
    /// Who registered it (`user:<name>`, `key:<name>`, `local:<os user>`).
    pub registered_by: String,
    /// When.
    pub registered_at: Timestamp,
    /// Its first `evidence_registered` entry.
    pub ledger_index: u64,
    /// Whether its content was erased (a redaction of its entry; issue 18).
    pub erased: bool,
}

fn serialize_type<S: serde::Serializer>(t: &ArtifactType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn serialize_hex<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(b))
}

/// Which artifacts [`Engine::list_evidence`] returns.
#[derive(Debug, Clone, Default)]
pub struct EvidenceFilter {
    /// Only this type.
    pub artifact_type: Option<ArtifactType>,
    /// Only artifacts linked to this decision (empty: any).
    pub decision_id: String,
    /// Only artifacts linked to this control (empty: any).
    pub control_id: String,
    /// At most this many (0: [`super::DEFAULT_PAGE_SIZE`]; at most
    /// [`super::MAX_PAGE_SIZE`]).
    pub page_size: u32,
    /// From a previous page's `next_page_token`.
    pub page_token: String,
}

/// The result of [`Engine::verify_evidence`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EvidenceCheck {
    /// True when the stored bytes hash to the id, the ledger entry records that hash
    /// and the signature (if any) verifies.
    pub valid: bool,
    /// What differs (empty when valid).
    pub problem: String,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// Checks the form of an evidence id: `sha256:` and 64 lowercase hex digits.
fn check_id(field: &str, id: &str) -> Result<(), EngineError> {
    let ok = id.strip_prefix(ID_PREFIX).is_some_and(|h| {
        h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} must be \"sha256:\" followed by 64 lowercase hex digits, got {id:?}"
        )))
    }
}

/// A text field: at most `max` bytes and no control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), EngineError> {
    if value.len() > max {
        return Err(invalid(format!(
            "{field} is {} bytes; at most {max} are allowed",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// The links of a registration, validated, each once, in the order given.
fn links(input: &EvidenceInput<'_>) -> Result<(Vec<DecisionId>, Vec<String>), EngineError> {
    for (field, n) in [
        ("decision_ids", input.decision_ids.len()),
        ("control_ids", input.control_ids.len()),
    ] {
        if n > MAX_EVIDENCE_LINKS {
            return Err(invalid(format!(
                "{field} has {n} entries; at most {MAX_EVIDENCE_LINKS} are allowed per registration"
            )));
        }
    }
    let mut decisions: Vec<DecisionId> = Vec::new();
    for (i, id) in input.decision_ids.iter().enumerate() {
        let parsed = id
            .parse::<DecisionId>()
            .map_err(|e| invalid(format!("decision_ids[{i}]: {e}")))?;
        if !decisions.contains(&parsed) {
            decisions.push(parsed);
        }
    }
    let mut controls: Vec<String> = Vec::new();
    for (i, id) in input.control_ids.iter().enumerate() {
        let field = format!("control_ids[{i}]");
        if id.trim().is_empty() {
            return Err(invalid(format!("{field} is empty")));
        }
        check_text(&field, id, MAX_CONTROL_ID_BYTES)?;
        if !controls.contains(id) {
            controls.push(id.clone());
        }
    }
    Ok((decisions, controls))
}

/// An Ed25519 signature and the public key it verified with.
type Signed = ([u8; 64], [u8; 32]);

/// The signature and key of a registration, verified over `content`; `None` unsigned.
fn check_signature(input: &EvidenceInput<'_>) -> Result<Option<Signed>, EngineError> {
    match (
        input.signature.is_empty(),
        input.signer_public_key.is_empty(),
    ) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(invalid(
                "signer_public_key is required with signature: the 32-byte raw Ed25519 public key",
            ));
        }
        (true, false) => {
            return Err(invalid(
                "signature is required with signer_public_key: the 64-byte Ed25519 signature over content",
            ));
        }
        (false, false) => {}
    }
    let signature: [u8; 64] = input.signature.as_slice().try_into().map_err(|_| {
        invalid(format!(
            "signature must be 64 bytes (an Ed25519 signature), got {}",
            input.signature.len()
        ))
    })?;
    let key: [u8; 32] = input.signer_public_key.as_slice().try_into().map_err(|_| {
        invalid(format!(
            "signer_public_key must be 32 bytes (a raw Ed25519 public key), got {}",
            input.signer_public_key.len()
        ))
    })?;
    if !signature_verifies(input.content, &signature, &key) {
        return Err(invalid(
            "signature does not verify: it is not an Ed25519 signature over content by signer_public_key",
        ));
    }
    Ok(Some((signature, key)))
}

/// `verify_strict` of `signature` over `content` by `key` (false for a malformed key).
fn signature_verifies(content: &[u8], signature: &[u8; 64], key: &[u8; 32]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
        return false;
    };
    key.verify_strict(content, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// The SHA-256 of `content`, a chunk at a time, letting other tasks run in between.
async fn sha256(content: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in content.chunks(EVIDENCE_CHUNK_BYTES) {
        hasher.update(part);
        if content.len() > EVIDENCE_CHUNK_BYTES {
            tokio::task::yield_now().await;
        }
    }
    hasher.finalize().into()
}

fn size_i64(n: usize) -> Result<i64, EngineError> {
    i64::try_from(n).map_err(|_| invalid("content is too large"))
}

fn nullable(bytes: Option<&[u8]>) -> SideValue {
    bytes.map_or(SideValue::Null, |b| SideValue::Bytes(b.to_vec()))
}

/// What an `evidence_registered` payload and its side rows are built from.
struct Entry<'a> {
    id: &'a str,
    digest: &'a [u8],
    artifact_type: ArtifactType,
    requested_type: ArtifactType,
    media_type: &'a str,
    title: &'a str,
    size: i64,
    decisions: &'a [String],
    controls: &'a [String],
    signature: Option<(&'a [u8], &'a [u8])>,
    by: &'a str,
    first_index: Option<i64>,
}

impl Entry<'_> {
    fn payload(&self) -> Result<Vec<u8>, EngineError> {
        let mut p = json!({
            "evidence_id": self.id,
            "sha256": hex(self.digest),
            "artifact_type": self.artifact_type.as_str(),
            "media_type": self.media_type,
            "title": self.title,
            "size": self.size,
            "decision_ids": self.decisions,
            "control_ids": self.controls,
            "signature": self.signature.map(|(s, _)| hex(s)),
            "signer_public_key": self.signature.map(|(_, k)| hex(k)),
            "by": self.by,
        });
        if let Some(map) = p.as_object_mut() {
            if let Some(first) = self.first_index {
                // Links added to evidence registered earlier, at that index.
                map.insert("first_index".into(), json!(first));
            }
            if self.requested_type != self.artifact_type {
                map.insert(
                    "requested_artifact_type".into(),
                    json!(self.requested_type.as_str()),
                );
            }
        }
        serde_json::to_vec(&p).map_err(|e| EngineError::Corrupt(format!("evidence payload: {e}")))
    }

    fn link_rows(&self) -> Vec<SideRow> {
        let link = |kind: &str, target: &str| SideRow {
            table: &LINKS_TABLE,
            values: vec![
                SideValue::Text(self.id.to_owned()),
                SideValue::Text(kind.to_owned()),
                SideValue::Text(target.to_owned()),
            ],
        };
        self.decisions
            .iter()
            .map(|d| link(LINK_DECISION, d))
            .chain(self.controls.iter().map(|c| link(LINK_CONTROL, c)))
            .collect()
    }
}

impl Engine {
    fn evidence_store(&self) -> std::sync::Arc<dyn EvidenceStore> {
        evidence_store::on(&self.db)
    }

    /// Registers an artifact (contract §7). Checks, in order: the caller's role, the
    /// size (at most `evidence.max_bytes`), the type and text fields, the form of the
    /// links, the signature, and that each linked decision exists; then stores the
    /// content in chunks and appends the `evidence_registered` entry with the
    /// artifact's row and links as its side rows. A refused registration writes
    /// nothing. Bytes registered before only gain the links that are new.
    pub async fn register_evidence(
        &self,
        caller: &Caller,
        input: EvidenceInput<'_>,
    ) -> Result<Registered, EngineError> {
        self.authorize(caller, ops::REGISTER_EVIDENCE)?;
        let max = self.config.evidence.max_bytes;
        if input.content.len() > max {
            return Err(invalid(format!(
                "content is {} bytes; evidence.max_bytes is {max}",
                input.content.len()
            )));
        }
        if input.content.is_empty() {
            return Err(invalid(
                "content is empty; evidence needs at least one byte",
            ));
        }
        let requested_type = input.artifact_type.ok_or_else(|| {
            invalid(format!(
                "artifact_type is required: one of {}",
                ArtifactType::ALL.map(ArtifactType::as_str).join(", ")
            ))
        })?;
        check_text(
            "media_type",
            &input.media_type,
            MAX_EVIDENCE_MEDIA_TYPE_BYTES,
        )?;
        check_text("title", &input.title, MAX_EVIDENCE_TITLE_BYTES)?;
        let media_type = if input.media_type.trim().is_empty() {
            DEFAULT_MEDIA_TYPE
        } else {
            input.media_type.trim()
        };
        let (decisions, controls) = links(&input)?;
        let signature = check_signature(&input)?;
        let store = self.evidence_store();
        if !input.decision_ids.is_empty() {
            // A ledger from before the index: its old decisions must be found too.
            self.decision_index_ready().await?;
        }
        for (i, id) in input.decision_ids.iter().enumerate() {
            let Ok(parsed) = id.parse::<DecisionId>() else {
                continue;
            };
            let from = parsed.timestamp().unix_micros();
            if !store.decision_exists(id, from, from + 999).await? {
                return Err(invalid(format!("decision_ids[{i}]: no decision {id}")));
            }
        }
        let digest = sha256(input.content).await;
        let id = format!("{ID_PREFIX}{}", hex(&digest));
        let decisions: Vec<String> = decisions.iter().map(ToString::to_string).collect();
        let by = caller.ledger_name();
        let size = size_i64(input.content.len())?;

        if let Some(row) = store.get(&id).await? {
            return self
                .add_links(
                    store.as_ref(),
                    &row,
                    requested_type,
                    &decisions,
                    &controls,
                    &by,
                )
                .await;
        }

        store
            .put_chunks(&id, input.content, EVIDENCE_CHUNK_BYTES)
            .await?;
        let entry = Entry {
            id: &id,
            digest: &digest,
            artifact_type: requested_type,
            requested_type,
            media_type,
            title: &input.title,
            size,
            decisions: &decisions,
            controls: &controls,
            signature: signature
                .as_ref()
                .map(|(s, k)| (s.as_slice(), k.as_slice())),
            by: &by,
            first_index: None,
        };
        let mut side = vec![SideRow {
            table: &EVIDENCE_TABLE,
            values: vec![
                SideValue::Text(id.clone()),
                SideValue::Bytes(digest.to_vec()),
                SideValue::Text(requested_type.as_str().to_owned()),
                SideValue::Text(media_type.to_owned()),
                SideValue::Text(input.title.clone()),
                SideValue::Int(size),
                nullable(signature.as_ref().map(|(s, _)| s.as_slice())),
                nullable(signature.as_ref().map(|(_, k)| k.as_slice())),
                SideValue::Text(by.clone()),
                SideValue::Int(self.clock.now().unix_micros()),
            ],
        }];
        side.extend(entry.link_rows());
        let receipt = self
            .ledger
            .append_entry(EntryKind::EvidenceRegistered, entry.payload()?, side)
            .await?;
        // Two first registrations of the same bytes at once: the lower index keeps
        // the row, and the other is a duplicate that added its links.
        let row = store.get(&id).await?.ok_or_else(|| {
            EngineError::Corrupt(format!(
                "evidence {id}: its row is missing after entry {} committed",
                receipt.index
            ))
        })?;
        let stored_type = row.artifact_type.parse().unwrap_or(requested_type);
        Ok(Registered {
            evidence_id: id,
            ledger_index: receipt.index,
            newly_registered: u64::try_from(row.idx).ok() == Some(receipt.index),
            artifact_type: stored_type,
        })
    }

    /// A registration of bytes already registered: an entry for the links that are new,
    /// or nothing at all when none is.
    async fn add_links(
        &self,
        store: &dyn EvidenceStore,
        row: &EvidenceRow,
        requested_type: ArtifactType,
        decisions: &[String],
        controls: &[String],
        by: &str,
    ) -> Result<Registered, EngineError> {
        let artifact_type = parse_type(row)?;
        let existing: BTreeSet<(String, String)> = store
            .links(&[row.evidence_id.as_str()])
            .await?
            .into_iter()
            .map(|(_, kind, target)| (kind, target))
            .collect();
        let is_new =
            |kind: &str, target: &String| !existing.contains(&(kind.to_owned(), target.clone()));
        let decisions: Vec<String> = decisions
            .iter()
            .filter(|d| is_new(LINK_DECISION, d))
            .cloned()
            .collect();
        let controls: Vec<String> = controls
            .iter()
            .filter(|c| is_new(LINK_CONTROL, c))
            .cloned()
            .collect();
        if decisions.is_empty() && controls.is_empty() {
            return Ok(Registered {
                evidence_id: row.evidence_id.clone(),
                ledger_index: index_of(row)?,
                newly_registered: false,
                artifact_type,
            });
        }
        let signature = row
            .signature
            .as_deref()
            .zip(row.signer_public_key.as_deref());
        let entry = Entry {
            id: &row.evidence_id,
            digest: &row.sha256,
            artifact_type,
            requested_type,
            media_type: &row.media_type,
            title: &row.title,
            size: row.size,
            decisions: &decisions,
            controls: &controls,
            signature,
            by,
            first_index: Some(row.idx),
        };
        let receipt = self
            .ledger
            .append_entry(
                EntryKind::EvidenceRegistered,
                entry.payload()?,
                entry.link_rows(),
            )
            .await?;
        Ok(Registered {
            evidence_id: row.evidence_id.clone(),
            ledger_index: receipt.index,
            newly_registered: false,
            artifact_type,
        })
    }

    /// One artifact's record and, when asked, its content (checked against its id:
    /// stored bytes that no longer match are `DATA_LOSS`, and `VerifyEvidence` says
    /// what differs).
    pub async fn get_evidence(
        &self,
        caller: &Caller,
        evidence_id: &str,
        include_content: bool,
    ) -> Result<(EvidenceRecord, Option<Vec<u8>>), EngineError> {
        self.authorize(caller, ops::GET_EVIDENCE)?;
        check_id("evidence_id", evidence_id)?;
        let store = self.evidence_store();
        let row = store
            .get(evidence_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no evidence {evidence_id}")))?;
        let links = store.links(&[evidence_id]).await?;
        let record = record(&row, &links)?;
        if !include_content {
            return Ok((record, None));
        }
        let stored = read_content(store.as_ref(), &row, true).await?;
        match stored.problem {
            None => Ok((record, stored.content)),
            Some(problem) => Err(EngineError::Corrupt(format!(
                "evidence {evidence_id}: {problem}; run VerifyEvidence"
            ))),
        }
    }

    /// Artifacts, newest first, filtered by type, linked decision or linked control.
    pub async fn list_evidence(
        &self,
        caller: &Caller,
        filter: EvidenceFilter,
    ) -> Result<Page<EvidenceRecord>, EngineError> {
        self.authorize(caller, ops::LIST_EVIDENCE)?;
        let limit = page_size(filter.page_size, "page_size")?;
        let before = decode_cursor(&filter.page_token, "page_token")?
            .map(|c| i64::try_from(c).map_err(|_| invalid("page_token is out of range")))
            .transpose()?;
        if !filter.decision_id.is_empty() {
            filter
                .decision_id
                .parse::<DecisionId>()
                .map_err(|e| invalid(format!("decision_id: {e}")))?;
        }
        if !filter.control_id.is_empty() {
            check_text("control_id", &filter.control_id, MAX_CONTROL_ID_BYTES)?;
        }
        let link = |kind: &'static str, target: &str| -> Option<(&'static str, String)> {
            (!target.is_empty()).then(|| (kind, target.to_owned()))
        };
        let decision = link(LINK_DECISION, &filter.decision_id);
        let control = link(LINK_CONTROL, &filter.control_id);
        let store = self.evidence_store();
        let mut rows = store
            .list(ListQuery {
                artifact_type: filter.artifact_type.map(ArtifactType::as_str),
                links: [
                    decision.as_ref().map(|(k, t)| (*k, t.as_str())),
                    control.as_ref().map(|(k, t)| (*k, t.as_str())),
                ],
                before,
                limit: i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1),
            })
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let ids: Vec<&str> = rows.iter().map(|r| r.evidence_id.as_str()).collect();
        let links = store.links(&ids).await?;
        let mut by_id: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
        for link in links {
            by_id.entry(link.0.clone()).or_default().push(link);
        }
        let items = rows
            .iter()
            .map(|r| record(r, by_id.get(&r.evidence_id).map_or(&[], Vec::as_slice)))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_cursor(index_of(last)?),
            _ => String::new(),
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Recomputes the SHA-256 of the stored bytes and checks it against the id, against
    /// the hash the `evidence_registered` entry records, and checks the signature.
    pub async fn verify_evidence(
        &self,
        caller: &Caller,
        evidence_id: &str,
    ) -> Result<EvidenceCheck, EngineError> {
        self.authorize(caller, ops::VERIFY_EVIDENCE)?;
        check_id("evidence_id", evidence_id)?;
        let store = self.evidence_store();
        let row = store
            .get(evidence_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no evidence {evidence_id}")))?;
        let mut problems: Vec<String> = Vec::new();
        match self.ledger_problem(&row).await? {
            Some(p) if p == "erased" => {
                return Ok(EvidenceCheck {
                    valid: false,
                    problem: p,
                });
            }
            Some(p) => problems.push(p),
            None => {}
        }
        if hex(&row.sha256) != evidence_id.trim_start_matches(ID_PREFIX) {
            problems.push("the stored hash differs from the id".into());
        }
        let signed = row.signature.is_some() || row.signer_public_key.is_some();
        let stored = read_content(store.as_ref(), &row, signed).await?;
        if let Some(p) = stored.problem {
            problems.push(p);
        }
        if signed {
            let ok = match (
                row.signature.as_deref().map(<[u8; 64]>::try_from),
                row.signer_public_key.as_deref().map(<[u8; 32]>::try_from),
                stored.content.as_deref(),
            ) {
                (Some(Ok(sig)), Some(Ok(key)), Some(content)) => {
                    signature_verifies(content, &sig, &key)
                }
                _ => false,
            };
            if !ok {
                problems.push("signature does not verify".into());
            }
        }
        Ok(EvidenceCheck {
            valid: problems.is_empty(),
            problem: problems.join("; "),
        })
    }

    /// What is wrong with the artifact's `evidence_registered` entry, if anything:
    /// missing, of another kind, a payload its leaf does not commit to, another hash or
    /// another signature than the row's, or `erased`.
    async fn ledger_problem(&self, row: &EvidenceRow) -> Result<Option<String>, EngineError> {
        let index = index_of(row)?;
        let Some(entry) = self.ledger.entry(index).await? else {
            return Ok(Some(format!("ledger entry {index} is missing")));
        };
        if entry.tombstone.is_some() {
            return Ok(Some("erased".into()));
        }
        let leaf = match entry.decode_leaf() {
            Ok(leaf) if leaf.kind == EntryKind::EvidenceRegistered => leaf,
            _ => {
                return Ok(Some(format!(
                    "ledger entry {index} is not an evidence registration"
                )));
            }
        };
        let Some(payload) = entry.payload.as_deref() else {
            return Ok(Some(format!("ledger entry {index} has no payload")));
        };
        if lexecon_ledger::payload_hash(payload) != leaf.payload_hash {
            return Ok(Some(format!(
                "ledger entry {index}: its payload does not match its leaf"
            )));
        }
        let Some(json) = entry.payload_json() else {
            return Ok(Some(format!(
                "ledger entry {index}: its payload is not JSON"
            )));
        };
        let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if text("evidence_id").as_deref() != Some(row.evidence_id.as_str())
            || text("sha256") != Some(hex(&row.sha256))
        {
            return Ok(Some("ledger entry records another hash".into()));
        }
        if text("signature") != row.signature.as_deref().map(hex)
            || text("signer_public_key") != row.signer_public_key.as_deref().map(hex)
        {
            return Ok(Some("ledger entry records another signature".into()));
        }
        Ok(None)
    }
}

fn parse_type(row: &EvidenceRow) -> Result<ArtifactType, EngineError> {
    row.artifact_type
        .parse()
        .map_err(|e| EngineError::Corrupt(format!("evidence {}: {e}", row.evidence_id)))
}

fn index_of(row: &EvidenceRow) -> Result<u64, EngineError> {
    u64::try_from(row.idx)
        .map_err(|_| EngineError::Corrupt(format!("evidence {}: negative index", row.evidence_id)))
}

fn record(
    row: &EvidenceRow,
    links: &[(String, String, String)],
) -> Result<EvidenceRecord, EngineError> {
    let targets = |kind: &str| {
        links
            .iter()
            .filter(|(id, k, _)| id == &row.evidence_id && k == kind)
            .map(|(_, _, t)| t.clone())
            .collect()
    };
    Ok(EvidenceRecord {
        evidence_id: row.evidence_id.clone(),
        artifact_type: parse_type(row)?,
        media_type: row.media_type.clone(),
        title: row.title.clone(),
        size: u64::try_from(row.size).unwrap_or(0),
        decision_ids: targets(LINK_DECISION),
        control_ids: targets(LINK_CONTROL),
        signed: row.signature.is_some(),
        signer_public_key: row.signer_public_key.clone().unwrap_or_default(),
        registered_by: row.registered_by.clone(),
        registered_at: Timestamp::from_unix_micros(row.registered_at),
        ledger_index: index_of(row)?,
        erased: false,
    })
}

/// The stored bytes of an artifact as read: what is wrong with them, if anything, and
/// the bytes themselves when asked for.
struct Stored {
    problem: Option<String>,
    content: Option<Vec<u8>>,
}

/// Reads the chunks of `row` in order, hashing them; keeps them when `keep`.
async fn read_content(
    store: &dyn EvidenceStore,
    row: &EvidenceRow,
    keep: bool,
) -> Result<Stored, EngineError> {
    let id = row.evidence_id.as_str();
    let size = u64::try_from(row.size).unwrap_or(0);
    let expected = size.div_ceil(EVIDENCE_CHUNK_BYTES as u64);
    let expected = i64::try_from(expected).unwrap_or(i64::MAX);
    let mut content = keep.then(|| Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    for seq in 0..expected {
        let Some(chunk) = store.chunk(id, seq).await? else {
            return Ok(Stored {
                problem: Some(format!(
                    "the stored content is incomplete: chunk {seq} of {expected} is missing"
                )),
                content: None,
            });
        };
        hasher.update(&chunk);
        total += chunk.len() as u64;
        if let Some(content) = content.as_mut() {
            content.extend_from_slice(&chunk);
        }
    }
    let stored_chunks = store.chunk_count(id).await?;
    let problem = if stored_chunks != expected {
        Some(format!(
            "the stored content has {stored_chunks} chunks; its size {size} needs {expected}"
        ))
    } else if total != size {
        Some(format!(
            "the stored content is {total} bytes; {size} were registered"
        ))
    } else if hex(&hasher.finalize()) != id.trim_start_matches(ID_PREFIX) {
        Some("content hash differs from its id".into())
    } else {
        None
    };
    Ok(Stored { problem, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_types_round_trip_by_name() {
        for t in ArtifactType::ALL {
            assert_eq!(t.as_str().parse::<ArtifactType>(), Ok(t));
        }
        let err = "memo".parse::<ArtifactType>().unwrap_err().to_string();
        assert!(err.contains("memo") && err.contains("test_result"), "{err}");
    }

    #[test]
    fn ids_are_sha256_and_lowercase_hex() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(check_id("evidence_id", &good).is_ok());
        for bad in [
            "ab".repeat(32),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha1:{}", "ab".repeat(32)),
        ] {
            let err = check_id("evidence_id", &bad).unwrap_err().to_string();
            assert!(err.starts_with("evidence_id must be"), "{err}");
        }
    }

    #[test]
    fn side_tables_are_well_formed() {
        EVIDENCE_TABLE.check().unwrap();
        LINKS_TABLE.check().unwrap();
    }
}
