//! `ExportAudit`: the audit bundle of contract §7 as a stream of file chunks
//! (`docs/audit-export.md`), and `ListAuditExports`.
//!
//! 1. A checkpoint is signed now: its tree size N bounds the export, and every proof is
//!    against it.
//! 2. The matching decisions below N come from the index, in index order, a page at a
//!    time; each page's entries and inclusion proofs are read with one call each.
//! 3. The decisions file streams as it is made, hashed on the way; then `checkpoint`
//!    and `verifier.vkey`.
//! 4. The `audit_exported` entry (with its `engine_audit_exports` side row, naming the
//!    caller and the manifest's SHA-256) is appended; only then do `manifest.json` and
//!    `manifest.sig` follow. A client that goes away earlier gets no entry and no
//!    manifest.
//!
//! The server writes nothing to disk.

use std::sync::Arc;

use lexecon_core::{ExportId, Timestamp};
use lexecon_ledger::{
    AUDIT_BUNDLE_FORMAT, AuditFormat, AuditLine, CheckpointSigner, DecisionColumns, EntryKind,
    Manifest, ManifestFile, SideRow, SideTable, SideType, SideValue, sign_manifest,
};
use rand::Rng as _;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::super::page::{Page, decode_cursor, encode_cursor, page_size};
use super::super::payload::hex;
use super::super::{Caller, Engine, EngineError, ops};
use super::query::{Compiled, compile};
use super::store::StoredRow;

/// The largest `data` of one chunk.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// Decisions read, proved and written per step.
const EXPORT_PAGE: usize = 1_000;

/// `engine_audit_exports`; the store prepends `idx`.
pub(crate) static AUDIT_EXPORTS: SideTable = SideTable {
    name: "engine_audit_exports",
    columns: &[
        ("export_id", SideType::Text),
        ("exported_by", SideType::Text),
        ("exported_at", SideType::Int),
        ("tree_size", SideType::Int),
        ("decisions", SideType::Int),
        ("manifest_sha256", SideType::Bytes),
        ("filters", SideType::Text),
    ],
    on_conflict: "",
};

/// What to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportQuery {
    /// Decided at or after.
    pub since: Option<Timestamp>,
    /// Decided before.
    pub until: Option<Timestamp>,
    /// Full-match glob over actors; empty = any.
    pub actor: String,
    /// The decisions file's format.
    pub format: AuditFormat,
}

/// A piece of one bundle file; files arrive one after another, each in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleChunk {
    /// The file's path in the bundle (relative, never `..`).
    pub path: String,
    /// At most [`MAX_CHUNK_BYTES`] bytes.
    pub data: Vec<u8>,
}

/// The chunks of an export being made.
#[derive(Debug)]
pub struct AuditExportStream {
    rx: mpsc::Receiver<Result<BundleChunk, EngineError>>,
}

impl AuditExportStream {
    /// The next chunk; `None` after the last (`manifest.sig`) or after an error.
    pub async fn next(&mut self) -> Option<Result<BundleChunk, EngineError>> {
        self.rx.recv().await
    }
}

impl tokio_stream::Stream for AuditExportStream {
    type Item = Result<BundleChunk, EngineError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// One export, as `ListAuditExports` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditExportRecord {
    /// `exp_` + ULID.
    pub export_id: String,
    /// Who took it.
    pub exported_by: String,
    /// When.
    pub exported_at: Timestamp,
    /// The tree size of its checkpoint.
    pub tree_size: u64,
    /// How many decisions it holds.
    pub decisions: u64,
    /// The SHA-256 of its `manifest.json`.
    #[serde(serialize_with = "hex_bytes")]
    pub manifest_sha256: Vec<u8>,
    /// Its filters, as JSON.
    pub filters_json: String,
    /// Its `audit_exported` entry.
    pub ledger_index: u64,
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(b))
}

/// The stream went away: stop quietly.
struct Gone;

/// Sends one file in chunks, hashing it.
struct FileSink<'a> {
    tx: &'a mpsc::Sender<Result<BundleChunk, EngineError>>,
    path: &'static str,
    buf: Vec<u8>,
    hash: Sha256,
    size: u64,
}

impl<'a> FileSink<'a> {
    fn new(tx: &'a mpsc::Sender<Result<BundleChunk, EngineError>>, path: &'static str) -> Self {
        FileSink {
            tx,
            path,
            buf: Vec::with_capacity(MAX_CHUNK_BYTES),
            hash: Sha256::new(),
            size: 0,
        }
    }

    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), Gone> {
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = MAX_CHUNK_BYTES - self.buf.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            if self.buf.len() == MAX_CHUNK_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(MAX_CHUNK_BYTES));
        self.tx
            .send(Ok(BundleChunk {
                path: self.path.to_owned(),
                data,
            }))
            .await
            .map_err(|_| Gone)
    }

    /// Sends what is left (an empty file still sends one empty chunk, so it exists).
    async fn finish(mut self) -> Result<ManifestFile, Gone> {
        if !self.buf.is_empty() || self.size == 0 {
            self.flush().await?;
        }
        Ok(ManifestFile {
            path: self.path.to_owned(),
            sha256: hex(&self.hash.finalize()),
            size: self.size,
        })
    }
}

fn columns_of(row: &StoredRow) -> DecisionColumns {
    DecisionColumns {
        decision_id: row.decision_id.clone(),
        decided_at: Timestamp::from_unix_micros(row.decided_at).to_rfc3339(),
        principal: row.principal.clone(),
        actor: row.actor.clone(),
        action: row.action.clone(),
        tool: row.tool.clone(),
        outcome: super::super::journal::outcome_of(row.outcome)
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
        risk_score: row.risk_score.and_then(|s| u8::try_from(s).ok()),
        reasons: row
            .reasons
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        policy_hash: row.policy_hash.as_deref().map(hex),
        escalation_id: row.escalation_id.clone(),
        override_id: row.override_id.clone(),
    }
}

/// Everything the producer needs, checked before the stream starts.
struct Job {
    by: String,
    compiled: Compiled,
    filters: serde_json::Value,
    format: AuditFormat,
}

impl Engine {
    /// Takes an audit export (contract §7): checks the caller and the filters, then
    /// streams the bundle's files in chunks of at most [`MAX_CHUNK_BYTES`].
    pub async fn export_audit(
        self: &Arc<Self>,
        caller: &Caller,
        query: ExportQuery,
    ) -> Result<AuditExportStream, EngineError> {
        self.authorize(caller, ops::EXPORT_AUDIT)?;
        let compiled = compile(&query.actor, "", "", query.since, query.until)?;
        self.decision_index_ready().await?;
        let filters = serde_json::json!({
            "since": query.since.map(Timestamp::to_rfc3339),
            "until": query.until.map(Timestamp::to_rfc3339),
            "actor": (!query.actor.is_empty()).then_some(query.actor.as_str()),
            "format": query.format,
        });
        let job = Job {
            by: caller.ledger_name(),
            compiled,
            filters,
            format: query.format,
        };
        let (tx, rx) = mpsc::channel(8);
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            match engine.produce_export(job, &tx).await {
                Ok(Ok(())) | Ok(Err(Gone)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "audit export failed");
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Ok(AuditExportStream { rx })
    }

    async fn produce_export(
        &self,
        mut job: Job,
        tx: &mpsc::Sender<Result<BundleChunk, EngineError>>,
    ) -> Result<Result<(), Gone>, EngineError> {
        let cp = self.ledger.checkpoint().await?;
        let size = cp.checkpoint.size;
        let store = super::store::on(&self.db);
        let path = job.format.file_name();
        let mut file = FileSink::new(tx, path);
        if file.write(&job.format.header()).await.is_err() {
            return Ok(Err(Gone));
        }
        let mut count = 0u64;
        job.compiled.filter.ascending = true;
        job.compiled.filter.before = Some(i64::try_from(size).unwrap_or(i64::MAX));
        job.compiled.filter.limit = EXPORT_PAGE as i64;
        let mut from = 0i64;
        loop {
            job.compiled.filter.from = Some(from);
            let rows = store.index_rows(&job.compiled.filter).await?;
            let fetched = rows.len();
            if let Some(last) = rows.last() {
                from = last.idx + 1;
            }
            let rows: Vec<StoredRow> = rows
                .into_iter()
                .filter(|r| job.compiled.matches(r))
                .collect();
            let indexes: Vec<u64> = rows
                .iter()
                .map(|r| u64::try_from(r.idx).unwrap_or(0))
                .collect();
            let entries = self.ledger.entries_at(&indexes).await?;
            let proofs = self.ledger.inclusion_proofs(&indexes, size).await?;
            if entries.len() != rows.len() {
                return Err(EngineError::Corrupt(format!(
                    "the decision index names {} entries below {size} the ledger does not hold",
                    rows.len() - entries.len().min(rows.len())
                )));
            }
            for ((row, entry), proof) in rows.iter().zip(&entries).zip(&proofs) {
                let line = AuditLine::new(entry, proof, columns_of(row))?;
                if file.write(&line.encode(job.format)?).await.is_err() {
                    return Ok(Err(Gone));
                }
                count += 1;
            }
            if fetched < EXPORT_PAGE {
                break;
            }
        }
        let Ok(decisions_file) = file.finish().await else {
            return Ok(Err(Gone));
        };
        let mut files = vec![decisions_file];
        let vkey = format!("{}\n", self.ledger.verifier().vkey());
        for (name, bytes) in [
            ("checkpoint", cp.note.as_bytes()),
            ("verifier.vkey", vkey.as_bytes()),
        ] {
            let mut f = FileSink::new(tx, name);
            if f.write(bytes).await.is_err() {
                return Ok(Err(Gone));
            }
            match f.finish().await {
                Ok(m) => files.push(m),
                Err(Gone) => return Ok(Err(Gone)),
            }
        }

        let now = self.clock.now();
        let export_id = ExportId::new(now, rand::thread_rng().r#gen());
        let manifest = Manifest {
            format: AUDIT_BUNDLE_FORMAT.to_owned(),
            export_id: export_id.to_string(),
            exported_by: job.by.clone(),
            exported_at: now.to_rfc3339(),
            origin: cp.checkpoint.origin.clone(),
            tree_size: size,
            root: hex(&cp.checkpoint.root),
            decisions: count,
            decisions_format: job.format,
            filters: job.filters.clone(),
            files,
        };
        let mut manifest_json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode the manifest: {e}")))?;
        manifest_json.push(b'\n');
        let manifest_sha = Sha256::digest(&manifest_json).to_vec();
        let signer = CheckpointSigner::new(
            &self.config.ledger_origin(),
            self.key_ring().active().signing_key().clone(),
        )
        .map_err(|e| EngineError::Keys(e.to_string()))?;
        let sig = sign_manifest(&signer, &manifest_json);

        // The export is a ledger entry before anyone holds its manifest.
        if tx.is_closed() {
            return Ok(Err(Gone));
        }
        let filters = job.filters.to_string();
        let payload = serde_json::json!({
            "event": "audit_exported",
            "export_id": export_id.to_string(),
            "by": job.by,
            "tree_size": size,
            "decisions": count,
            "format": job.format,
            "filters": job.filters,
            "manifest_sha256": hex(&manifest_sha),
        });
        let row = SideRow {
            table: &AUDIT_EXPORTS,
            values: vec![
                SideValue::Text(export_id.to_string()),
                SideValue::Text(job.by.clone()),
                SideValue::Int(now.unix_micros()),
                SideValue::Int(i64::try_from(size).unwrap_or(i64::MAX)),
                SideValue::Int(i64::try_from(count).unwrap_or(i64::MAX)),
                SideValue::Bytes(manifest_sha),
                SideValue::Text(filters),
            ],
        };
        let payload = serde_json::to_vec(&payload)
            .map_err(|e| EngineError::Corrupt(format!("cannot encode the export entry: {e}")))?;
        self.ledger
            .append_entry(EntryKind::AuditExported, payload, vec![row])
            .await?;

        for (name, bytes) in [
            ("manifest.json", manifest_json),
            ("manifest.sig", sig.into_bytes()),
        ] {
            let mut f = FileSink::new(tx, name);
            if f.write(&bytes).await.is_err() {
                return Ok(Err(Gone));
            }
            if f.finish().await.is_err() {
                return Ok(Err(Gone));
            }
        }
        Ok(Ok(()))
    }

    /// The audit exports taken so far, newest first.
    pub async fn list_audit_exports(
        &self,
        caller: &Caller,
        page_size_asked: u32,
        page_token: &str,
    ) -> Result<Page<AuditExportRecord>, EngineError> {
        self.authorize(caller, ops::LIST_AUDIT_EXPORTS)?;
        let page = page_size(page_size_asked, "page_size")?;
        let before = match decode_cursor(page_token, "page_token")? {
            Some(c) => Some(
                i64::try_from(c)
                    .map_err(|_| EngineError::InvalidArgument("page_token: out of range".into()))?,
            ),
            None => None,
        };
        let limit = i64::try_from(page + 1).unwrap_or(i64::MAX);
        let mut rows = super::store::on(&self.db).exports(before, limit).await?;
        let more = rows.len() > page;
        rows.truncate(page);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_cursor(u64::try_from(last.idx).unwrap_or(0)),
            _ => String::new(),
        };
        let items = rows
            .into_iter()
            .map(|r| AuditExportRecord {
                export_id: r.export_id,
                exported_by: r.exported_by,
                exported_at: Timestamp::from_unix_micros(r.exported_at),
                tree_size: u64::try_from(r.tree_size).unwrap_or(0),
                decisions: u64::try_from(r.decisions).unwrap_or(0),
                manifest_sha256: r.manifest_sha256,
                filters_json: r.filters,
                ledger_index: u64::try_from(r.idx).unwrap_or(0),
            })
            .collect();
        Ok(Page {
            items,
            next_page_token,
        })
    }
}
