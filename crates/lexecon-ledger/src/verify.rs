//! Full verification: every leaf, chain link, payload hash, the tree, and every
//! checkpoint's root and signature; optionally against a checkpoint the auditor trusts.
//!
//! [`Audit`] is the pure core (fed entries in order); [`verify`] streams a store through
//! it in pages, reading the next page while the current one is hashed.

use std::sync::Arc;

use serde::Serialize;

use crate::entry::{Leaf, payload_hash};
use crate::error::LedgerError;
use crate::ledger::VKEYS_META;
use crate::merkle::{Frontier, Hash, empty_root, leaf_hash};
use crate::note::{Checkpoint, NoteVerifier};
use crate::store::{LedgerStore, StoredCheckpoint};

/// Called with (entries verified, total entries) as verification advances.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// What to verify against.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// The keys checkpoints must be signed by. Empty: the keys recorded in the store
    /// (that checks integrity; only keys from outside the store check authenticity).
    pub verifiers: Vec<NoteVerifier>,
    /// A signed checkpoint the auditor kept from earlier (catches truncation and a
    /// rewritten tail even when the stored checkpoints were removed).
    pub trusted_checkpoint: Option<String>,
    /// Entries per page (default 10,000).
    pub page_size: u64,
    /// Progress callback.
    pub progress: Option<Progress>,
    /// Also check the stored proof index (every subtree hash proofs are built from)
    /// against the tree the entries give; reads about one more row per entry.
    pub check_proof_index: bool,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("verifiers", &self.verifiers)
            .field("trusted_checkpoint", &self.trusted_checkpoint.is_some())
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The first bad entry index (`None` for a problem with a checkpoint alone).
    pub index: Option<u64>,
    /// What is wrong.
    pub what: String,
}

/// The outcome of a full verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// `true` when nothing is wrong.
    pub valid: bool,
    /// One past the last entry index read (the entry count for a whole log).
    pub entries: u64,
    /// `true` for a bundle that starts after entry 0: its leaves, payloads and chain
    /// were checked, but roots and checkpoints cannot be recomputed without the entries
    /// before it (a trusted checkpoint is then ignored).
    pub partial: bool,
    /// Entries whose payload was erased (their leaves still verify).
    pub redacted: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// The tree root over every entry read (lowercase hex).
    pub root: String,
    /// Whether a trusted checkpoint was given and matched.
    pub trusted_checkpoint_size: Option<u64>,
    /// Where the verifier keys came from.
    pub keys: String,
    /// The first problem, when not valid.
    pub problem: Option<Problem>,
    /// Whether the verification trusted only the node's key ring from the data directory
    /// (`keys/`, `keys/retired/`) and not keys recorded in the database alone. This
    /// crate's verifiers leave it `false`; the caller that chose the keys sets it.
    pub trusted_key_ring: bool,
    /// The index of the `compliance` entry recording this verification, once recorded.
    pub recorded_at_index: Option<u64>,
}

/// One entry as a verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    /// The index it is stored under.
    pub index: u64,
    /// The leaf bytes.
    pub leaf: &'a [u8],
    /// The stored leaf hash.
    pub leaf_hash: &'a [u8],
    /// The payload bytes, `None` when redacted.
    pub payload: Option<&'a [u8]>,
    /// Whether a tombstone explains a missing payload.
    pub redacted: bool,
}

/// The hashes verification recomputes for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHashes {
    /// `SHA-256(0x00 || leaf)`.
    pub leaf: Hash,
    /// SHA-256 of the payload bytes, when present.
    pub payload: Option<Hash>,
}

impl EntryHashes {
    /// Computes them.
    pub fn of(e: &EntryView<'_>) -> Self {
        EntryHashes {
            leaf: leaf_hash(e.leaf),
            payload: e.payload.map(payload_hash),
        }
    }
}

/// The pure verification state machine.
#[derive(Debug)]
pub struct Audit {
    frontier: Frontier,
    /// `false` for a partial export (from > 0): roots cannot be recomputed.
    tree: bool,
    expected: u64,
    prev: Option<Hash>,
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    trusted: Option<Checkpoint>,
    redacted: u64,
    checked: u64,
    /// Set-hash of the subtree hashes (level >= 1) the entries give, when checked.
    nodes: Option<NodeSum>,
}

/// An order-independent digest of a set of subtree hashes: their count and the sum,
/// modulo 2^256, of `SHA-256(level || index || hash)` (an additive set hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeSum {
    count: u64,
    sum: [u64; 4],
}

impl NodeSum {
    pub(crate) fn add(&mut self, id: crate::merkle::NodeId, hash: &Hash) {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update([id.level]);
        h.update(id.index.to_be_bytes());
        h.update(hash);
        let d: Hash = h.finalize().into();
        let mut carry = 0u64;
        for (limb, chunk) in self.sum.iter_mut().zip(d.chunks_exact(8)) {
            let v = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let (s1, c1) = limb.overflowing_add(v);
            let (s2, c2) = s1.overflowing_add(carry);
            *limb = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
        self.count += 1;
    }
}

fn problem(index: Option<u64>, what: impl Into<String>) -> Problem {
    Problem {
        index,
        what: what.into(),
    }
}

/// Verifies each checkpoint's signature with any of `verifiers`.
pub(crate) fn check_checkpoints(
    notes: &[StoredCheckpoint],
    verifiers: &[NoteVerifier],
) -> Result<Vec<Checkpoint>, Problem> {
    let mut out = Vec::with_capacity(notes.len());
    for stored in notes {
        let cp = verify_note(&stored.note, verifiers)
            .map_err(|e| problem(None, format!("checkpoint at size {}: {e}", stored.size)))?;
        if cp.size != stored.size {
            return Err(problem(
                None,
                format!(
                    "checkpoint stored as size {} says size {}",
                    stored.size, cp.size
                ),
            ));
        }
        out.push(cp);
    }
    Ok(out)
}

/// Checks that every stored checkpoint carries a valid RSA-PSS co-signature by each of
/// `verifiers` (the RSA-4096 keys an auditor was given); the first failure is returned.
pub async fn verify_rsa_cosignatures(
    store: &dyn LedgerStore,
    verifiers: &[crate::note::RsaNoteVerifier],
) -> Result<Option<Problem>, LedgerError> {
    if verifiers.is_empty() {
        return Ok(None);
    }
    for stored in store.checkpoints(0, u64::MAX).await? {
        for v in verifiers {
            if let Err(e) = v.verify(&stored.note) {
                return Ok(Some(problem(
                    None,
                    format!("checkpoint at size {}: RSA co-signature: {e}", stored.size),
                )));
            }
        }
    }
    Ok(None)
}

/// Verifies a note with the first of `verifiers` that signed it.
pub fn verify_note(note: &str, verifiers: &[NoteVerifier]) -> Result<Checkpoint, String> {
    let mut last = String::from("no verifier key is known: give the log's public key");
    for v in verifiers {
        match v.verify(note) {
            Ok(cp) => return Ok(cp),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

impl Audit {
    /// An audit of a log starting at `first_index` (0 for a whole log) with these
    /// verified checkpoints (sorted by size) and an optional trusted one.
    pub fn new(
        first_index: u64,
        checkpoints: Vec<Checkpoint>,
        trusted: Option<Checkpoint>,
    ) -> Self {
        Audit {
            frontier: Frontier::new(),
            tree: first_index == 0,
            expected: first_index,
            prev: (first_index == 0).then_some([0u8; 32]),
            checkpoints,
            next_checkpoint: 0,
            trusted: trusted.filter(|_| first_index == 0),
            redacted: 0,
            checked: 0,
            nodes: None,
        }
    }

    fn check_roots_at(&mut self, size: u64) -> Result<(), Problem> {
        if !self.tree {
            return Ok(());
        }
        // The root costs O(log n) hashes: compute it only where a checkpoint needs it.
        let due = self
            .checkpoints
            .get(self.next_checkpoint)
            .is_some_and(|cp| cp.size <= size)
            || self.trusted.as_ref().is_some_and(|t| t.size == size);
        if !due {
            return Ok(());
        }
        let root = if size == 0 {
            empty_root()
        } else {
            self.frontier.root()
        };
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            if cp.size > size {
                break;
            }
            if cp.size == size && cp.root != root {
                return Err(problem(
                    size.checked_sub(1),
                    format!(
                        "the signed checkpoint at size {size} has root {} but the entries give {}: entries before it were changed",
                        hex::encode(cp.root),
                        hex::encode(root)
                    ),
                ));
            }
            self.checked += 1;
            self.next_checkpoint += 1;
        }
        if let Some(t) = &self.trusted
            && t.size == size
            && t.root != root
        {
            return Err(problem(
                size.checked_sub(1),
                format!(
                    "the trusted checkpoint at size {size} has root {} but the entries give {}: the log was rewritten",
                    hex::encode(t.root),
                    hex::encode(root)
                ),
            ));
        }
        Ok(())
    }

    /// Checks the next entry.
    pub fn feed(&mut self, e: EntryView<'_>) -> Result<(), Problem> {
        let hashes = EntryHashes::of(&e);
        self.feed_hashed(e, hashes)
    }

    /// Checks the next entry with its hashes computed beforehand (possibly on another
    /// thread, which is how [`verify`] keeps both cores busy).
    pub fn feed_hashed(&mut self, e: EntryView<'_>, hashes: EntryHashes) -> Result<(), Problem> {
        let i = self.expected;
        if self.frontier.size() == 0 && self.tree && i == 0 {
            self.check_roots_at(0)?;
        }
        if e.index != i {
            return Err(if e.index > i {
                problem(
                    Some(i),
                    format!(
                        "entry {i} is missing (the next stored entry is {})",
                        e.index
                    ),
                )
            } else {
                problem(
                    Some(e.index),
                    format!(
                        "entry {} is out of order after entry {}",
                        e.index,
                        i.saturating_sub(1)
                    ),
                )
            });
        }
        let leaf =
            Leaf::decode(e.leaf).map_err(|err| problem(Some(i), format!("entry {i}: {err}")))?;
        if leaf.index != i {
            return Err(problem(
                Some(i),
                format!(
                    "entry {i}'s leaf says index {}: entries were moved or swapped",
                    leaf.index
                ),
            ));
        }
        let h = hashes.leaf;
        if e.leaf_hash != h.as_slice() {
            return Err(problem(
                Some(i),
                format!("entry {i}'s stored leaf hash does not match its leaf bytes"),
            ));
        }
        if let Some(prev) = self.prev
            && leaf.prev_leaf_hash != prev
        {
            return Err(problem(
                Some(i),
                format!(
                    "entry {i} does not chain to entry {}: its previous-hash field differs",
                    i.saturating_sub(1)
                ),
            ));
        }
        match hashes.payload {
            Some(p) => {
                if p != leaf.payload_hash {
                    return Err(problem(
                        Some(i),
                        format!(
                            "entry {i}'s payload was altered: its SHA-256 does not match the leaf"
                        ),
                    ));
                }
            }
            None if e.redacted => self.redacted += 1,
            None => {
                return Err(problem(
                    Some(i),
                    format!("entry {i}'s payload is missing and no tombstone explains it"),
                ));
            }
        }
        self.prev = Some(h);
        self.expected = i + 1;
        if self.tree {
            match &mut self.nodes {
                Some(sum) => self.frontier.push(h, |id, hash| {
                    if id.level > 0 {
                        sum.add(id, hash);
                    }
                }),
                None => self.frontier.push(h, |_, _| {}),
            }
            self.check_roots_at(self.frontier.size())?;
        }
        Ok(())
    }

    /// Finishes: checks that no checkpoint, trusted or stored, covers more entries than
    /// were read.
    pub fn finish(&mut self) -> Result<(), Problem> {
        let n = self.expected;
        if self.tree && self.frontier.size() == 0 {
            self.check_roots_at(0)?;
        }
        if let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            return Err(problem(
                Some(n),
                format!(
                    "the log ends at {n} entries but a signed checkpoint covers {}: entries were removed from the tail",
                    cp.size
                ),
            ));
        }
        if let Some(t) = &self.trusted
            && t.size > n
        {
            return Err(problem(
                Some(n),
                format!(
                    "the log ends at {n} entries but the trusted checkpoint covers {}: entries were removed from the tail",
                    t.size
                ),
            ));
        }
        Ok(())
    }

    /// Entries verified so far.
    pub fn entries(&self) -> u64 {
        self.expected
    }

    /// The current root (over the entries read).
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// Builds the audit's inputs: verified checkpoints and the trusted checkpoint.
pub(crate) fn prepare(
    first_index: u64,
    notes: &[StoredCheckpoint],
    verifiers: &[NoteVerifier],
    trusted: Option<&str>,
) -> Result<(Audit, u64), Problem> {
    let checkpoints = check_checkpoints(notes, verifiers)?;
    let trusted = trusted
        .map(|note| {
            verify_note(note, verifiers)
                .map_err(|e| problem(None, format!("the trusted checkpoint does not verify: {e}")))
        })
        .transpose()?;
    let n = checkpoints.len() as u64;
    Ok((Audit::new(first_index, checkpoints, trusted), n))
}

/// Reads the verifier keys recorded in a store.
pub async fn stored_verifiers(store: &dyn LedgerStore) -> Result<Vec<NoteVerifier>, LedgerError> {
    let vkeys = store.meta(VKEYS_META).await?.unwrap_or_default();
    vkeys
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| NoteVerifier::from_vkey(l).map_err(LedgerError::from))
        .collect()
}

/// A page of entries with their recomputed hashes.
type Hashed = (Vec<crate::entry::Entry>, Vec<EntryHashes>);

fn hash_page(entries: &[crate::entry::Entry]) -> Vec<EntryHashes> {
    entries
        .iter()
        .map(|e| {
            EntryHashes::of(&EntryView {
                index: e.index,
                leaf: &e.leaf,
                leaf_hash: &e.leaf_hash,
                payload: e.payload.as_deref(),
                redacted: e.tombstone.is_some(),
            })
        })
        .collect()
}

/// Pages read at once (each on its own connection; `open_sqlite` pools 4).
const READERS: usize = 3;

async fn read_and_hash(
    store: Arc<dyn LedgerStore>,
    page: u64,
    total: u64,
    tx: tokio::sync::mpsc::Sender<Result<Hashed, LedgerError>>,
) {
    // Pages are index ranges [k*page, (k+1)*page) read [`READERS`] at a time on separate
    // connections. A page holding a row past its range has a gap: the audit stops there
    // (the gap is a missing entry), so reading ends with that page, however far away
    // the next stored index is.
    let fetch = |from: u64| {
        let store = store.clone();
        tokio::spawn(async move { store.entries(from, page).await })
    };
    // Read past the head by one page so entries appended during verification are seen.
    let end = total.saturating_add(page);
    let mut inflight = std::collections::VecDeque::new();
    let mut from = 0u64;
    while inflight.len() < READERS && from < end {
        inflight.push_back((from, fetch(from)));
        from = from.saturating_add(page);
    }
    while let Some((start, handle)) = inflight.pop_front() {
        let mut entries = match handle.await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let _ = tx
                    .send(Err(LedgerError::Corrupt(format!(
                        "verification reader failed: {e}"
                    ))))
                    .await;
                return;
            }
        };
        let limit = start.saturating_add(page);
        if let Some(beyond) = entries.iter().position(|e| e.index >= limit) {
            entries.truncate(beyond + 1);
            for (_, h) in inflight.drain(..) {
                h.abort();
            }
            from = end;
        }
        if from < end {
            inflight.push_back((from, fetch(from)));
            from = from.saturating_add(page);
        }
        let hashed = tokio::task::spawn_blocking(move || {
            let hashes = hash_page(&entries);
            (entries, hashes)
        })
        .await;
        let item =
            hashed.map_err(|e| LedgerError::Corrupt(format!("verification hasher failed: {e}")));
        if tx.send(item).await.is_err() {
            for (_, h) in inflight {
                h.abort();
            }
            return;
        }
    }
}

/// Compares the stored proof index with the subtree hashes the entries gave.
async fn check_nodes(
    store: &dyn LedgerStore,
    page: u64,
    want: NodeSum,
) -> Result<Result<(), Problem>, LedgerError> {
    let mut got = NodeSum::default();
    let mut after = None;
    loop {
        let rows = store.node_page(after, page).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.0);
        for (id, hash) in &rows {
            got.add(*id, hash);
        }
    }
    Ok(if got == want {
        Ok(())
    } else {
        Err(problem(
            None,
            format!(
                "the stored proof index (ledger_nodes: {} subtree hashes, {} expected) does not match the entries: proofs served from it would not verify",
                got.count, want.count
            ),
        ))
    })
}

/// Verifies a whole stored log.
pub async fn verify(
    store: Arc<dyn LedgerStore>,
    options: &VerifyOptions,
) -> Result<VerifyReport, LedgerError> {
    let (verifiers, keys) = if options.verifiers.is_empty() {
        (
            stored_verifiers(store.as_ref()).await?,
            "the keys recorded in the database (integrity only: pass the public key or a trusted checkpoint for authenticity)".to_owned(),
        )
    } else {
        (
            options.verifiers.clone(),
            "the keys given by the auditor".to_owned(),
        )
    };
    // Checkpoints first: every one read is then covered by the head read after it,
    // even while a writer keeps appending.
    let notes = store.checkpoints(0, u64::MAX).await?;
    let total = store.head().await?.size;
    let mut report = VerifyReport {
        valid: false,
        entries: 0,
        partial: false,
        redacted: 0,
        checkpoints: 0,
        root: String::new(),
        trusted_checkpoint_size: None,
        keys,
        problem: None,
        trusted_key_ring: false,
        recorded_at_index: None,
    };
    let (mut audit, _) = match prepare(0, &notes, &verifiers, options.trusted_checkpoint.as_deref())
    {
        Ok(a) => a,
        Err(p) => {
            report.problem = Some(p);
            return Ok(report);
        }
    };
    if options.check_proof_index {
        audit.nodes = Some(NodeSum::default());
    }
    let page = if options.page_size == 0 {
        20_000
    } else {
        options.page_size
    };
    // Three stages run at once: reading page k+1, hashing page k (a blocking thread),
    // and the sequential audit of page k-1 here.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Hashed, LedgerError>>(2);
    let reader = tokio::spawn(read_and_hash(store.clone(), page, total, tx));
    let result = loop {
        let Some(next) = rx.recv().await else {
            break audit.finish();
        };
        let (entries, hashes) = next?;
        let mut bad = None;
        for (e, h) in entries.iter().zip(hashes) {
            let view = EntryView {
                index: e.index,
                leaf: &e.leaf,
                leaf_hash: &e.leaf_hash,
                payload: e.payload.as_deref(),
                redacted: e.tombstone.is_some(),
            };
            if let Err(p) = audit.feed_hashed(view, h) {
                bad = Some(p);
                break;
            }
        }
        if let Some(p) = bad {
            break Err(p);
        }
        if let Some(progress) = &options.progress {
            progress(audit.entries(), total.max(audit.entries()));
        }
    };
    reader.abort();
    let result = match (result, audit.nodes) {
        (Ok(()), Some(want)) => check_nodes(store.as_ref(), page, want).await?,
        (other, _) => other,
    };
    report.entries = audit.entries();
    report.redacted = audit.redacted;
    report.checkpoints = audit.checked;
    report.root = hex::encode(audit.root());
    match result {
        Ok(()) => {
            report.valid = true;
            report.trusted_checkpoint_size = audit.trusted.as_ref().map(|t| t.size);
        }
        Err(p) => report.problem = Some(p),
    }
    Ok(report)
}

impl Audit {
    /// Fills a report from this audit's counters.
    pub(crate) fn report(&self, keys: String, result: Result<(), Problem>) -> VerifyReport {
        let valid = result.is_ok();
        VerifyReport {
            valid,
            entries: self.expected,
            partial: !self.tree,
            redacted: self.redacted,
            checkpoints: self.checked,
            root: if self.tree {
                hex::encode(self.frontier.root())
            } else {
                String::new()
            },
            trusted_checkpoint_size: if valid {
                self.trusted.as_ref().map(|t| t.size)
            } else {
                None
            },
            keys,
            problem: result.err(),
            trusted_key_ring: false,
            recorded_at_index: None,
        }
    }
}
