//! The `Ledger` handle: a single writer task doing group commit, checkpoints, proofs.
//!
//! Callers send entries over a channel; the writer takes everything queued (up to
//! `max_batch`) into one batch, appends it in one transaction, and only then answers
//! each caller. A checkpoint is signed inside the batch's transaction every
//! `checkpoint_every_entries` entries, by a timer every `checkpoint_interval_ms` when
//! entries arrived since the last one, and at shutdown.

use std::sync::Arc;
use std::time::Duration;

use lexecon_core::{Clock, Timestamp};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::entry::{Entry, EntryKind, Tombstone, payload_hash};
use crate::error::LedgerError;
use crate::merkle::{
    Frontier, Hash, ProofPlan, consistency_ranges, fold_range, inclusion_ranges, range_nodes,
};
use crate::note::{CheckpointSigner, NoteVerifier, SignedCheckpoint};
use crate::side::SideRow;
use crate::store::{BatchPlan, LedgerStore, NewEntry, TreeState, load_state};

/// The meta key holding every verifier key the log was signed with, one per line.
pub const VKEYS_META: &str = "vkeys";

/// When checkpoints are signed and how large a batch may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Sign a checkpoint once this many entries were appended since the last one.
    pub checkpoint_every_entries: u64,
    /// Sign a checkpoint after this many milliseconds when entries arrived since the last.
    pub checkpoint_interval_ms: u64,
    /// The most entries in one transaction.
    pub max_batch: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            checkpoint_every_entries: 10_000,
            checkpoint_interval_ms: 1_000,
            max_batch: 4_096,
        }
    }
}

/// Proof that an entry was appended and is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's index.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: Hash,
    /// The timestamp in its leaf.
    pub timestamp: Timestamp,
}

/// An inclusion proof with what it proves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InclusionProof {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The leaf hash.
    #[serde(with = "hex_hash")]
    pub leaf_hash: Hash,
    /// The tree root at `size`.
    #[serde(with = "hex_hash")]
    pub root: Hash,
    /// The audit path, leaf first.
    #[serde(with = "hex_hashes")]
    pub proof: Vec<Hash>,
}

/// A consistency proof with what it proves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsistencyProof {
    /// The older size.
    pub size1: u64,
    /// The newer size.
    pub size2: u64,
    /// The root at `size1`.
    #[serde(with = "hex_hash")]
    pub root1: Hash,
    /// The root at `size2`.
    #[serde(with = "hex_hash")]
    pub root2: Hash,
    /// The proof hashes.
    #[serde(with = "hex_hashes")]
    pub proof: Vec<Hash>,
}

mod hex_hash {
    pub(super) fn serialize<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
}

mod hex_hashes {
    use serde::ser::SerializeSeq as _;
    pub(super) fn serialize<S: serde::Serializer>(
        hs: &[[u8; 32]],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hs.len()))?;
        for h in hs {
            seq.serialize_element(&hex::encode(h))?;
        }
        seq.end()
    }
}

type Reply<T> = oneshot::Sender<Result<T, Arc<LedgerError>>>;

enum Cmd {
    Append(NewEntry, Reply<Receipt>),
    /// Entries committed together, in one batch, at consecutive indexes.
    AppendGroup(Vec<NewEntry>, Reply<Vec<Receipt>>),
    Checkpoint(Reply<SignedCheckpoint>),
    Shutdown(Reply<Option<SignedCheckpoint>>),
}

/// Called after every durable batch commit with the batch's entry count and how long
/// the commit took (for metrics).
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

/// The observer slot shared by the handles and the writer.
#[derive(Clone, Default)]
struct ObserverSlot(Arc<std::sync::RwLock<Option<CommitObserver>>>);

impl std::fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserverSlot")
    }
}

impl ObserverSlot {
    fn notify(&self, entries: usize, took: Duration) {
        let observer = self.0.read().ok().and_then(|g| g.clone());
        if let Some(observer) = observer {
            observer(entries, took);
        }
    }
}

/// Makes side rows for every appended entry from its kind and payload (see
/// [`Ledger::set_side_hook`]).
pub type SideHook = Arc<dyn Fn(EntryKind, &[u8]) -> Vec<SideRow> + Send + Sync>;

/// The side hook slot shared by the handles.
#[derive(Clone, Default)]
struct HookSlot(Arc<std::sync::RwLock<Option<SideHook>>>);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSlot")
    }
}

impl HookSlot {
    fn get(&self) -> Option<SideHook> {
        self.0.read().ok().and_then(|g| g.clone())
    }
}

/// A handle on the ledger; clone it freely, every clone feeds the same writer.
#[derive(Debug, Clone)]
pub struct Ledger {
    observer: ObserverSlot,
    hook: HookSlot,
    head: Arc<watch::Sender<u64>>,
    tx: mpsc::Sender<Cmd>,
    store: Arc<dyn LedgerStore>,
    verifier: NoteVerifier,
    clock: Arc<dyn Clock>,
    writer: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Append(..) => "Append",
            Cmd::AppendGroup(..) => "AppendGroup",
            Cmd::Checkpoint(_) => "Checkpoint",
            Cmd::Shutdown(_) => "Shutdown",
        })
    }
}

fn shared<T>(r: Result<T, Arc<LedgerError>>) -> Result<T, LedgerError> {
    r.map_err(LedgerError::Shared)
}

impl Ledger {
    /// Opens the ledger on a migrated store and starts its writer.
    ///
    /// Resumes from the stored head in O(log n) reads. Records the signer's verifier key
    /// in the store (beside any earlier keys) so offline verification can find it.
    pub async fn open(
        store: Arc<dyn LedgerStore>,
        signer: CheckpointSigner,
        config: LedgerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Ledger, LedgerError> {
        let state = load_state(store.as_ref()).await?;
        let verifier = signer.verifier();
        let vkey = verifier.vkey();
        let known = store.meta(VKEYS_META).await?.unwrap_or_default();
        if !known.lines().any(|l| l == vkey) {
            let mut all = known.clone();
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(&vkey);
            all.push('\n');
            store.set_meta(VKEYS_META, &all).await?;
        }
        let last_checkpoint = store.latest_checkpoint().await?.map_or(0, |c| c.size);
        let (tx, rx) = mpsc::channel(65_536);
        let observer = ObserverSlot::default();
        let head = Arc::new(watch::Sender::new(state.size()));
        let writer = Writer {
            observer: observer.clone(),
            head: head.clone(),
            rx,
            store: store.clone(),
            signer,
            config,
            clock: clock.clone(),
            state,
            last_checkpoint,
            maintenance: None,
        };
        let handle = tokio::spawn(writer.run());
        Ok(Ledger {
            observer,
            hook: HookSlot::default(),
            head,
            tx,
            store,
            verifier,
            clock,
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Registers `observer`, called after every durable batch commit with the number
    /// of entries and the commit's duration (replacing any earlier observer).
    pub fn on_commit(&self, observer: impl Fn(usize, Duration) + Send + Sync + 'static) {
        if let Ok(mut slot) = self.observer.0.write() {
            *slot = Some(Arc::new(observer));
        }
    }

    /// A receiver of the local head: the tree size after each batch this process
    /// committed (entries other writers appended to a shared store show up only with
    /// this process's next commit). Starts at the size when the ledger was opened.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Registers `hook` (replacing any earlier one): for every entry appended through
    /// any handle from now on, it is called on the caller's task with the entry's kind
    /// and payload, and the rows it returns are written with the entry, after the
    /// caller's own rows. A hook row that does not fit its table refuses the append as
    /// a caller's row would.
    pub fn set_side_hook(&self, hook: SideHook) {
        if let Ok(mut slot) = self.hook.0.write() {
            *slot = Some(hook);
        }
    }

    /// Appends an entry; resolves once its batch is durably committed.
    pub async fn append(
        &self,
        kind: EntryKind,
        payload: serde_json::Value,
    ) -> Result<Receipt, LedgerError> {
        let payload = serde_json::to_vec(&payload)?;
        self.append_bytes(kind, payload).await
    }

    /// Appends an entry whose payload is already serialized JSON.
    pub async fn append_bytes(
        &self,
        kind: EntryKind,
        payload: Vec<u8>,
    ) -> Result<Receipt, LedgerError> {
        self.append_entry(kind, payload, Vec::new()).await
    }

    /// Appends an entry (serialized JSON) with rows for side tables, written in the
    /// entry's transaction with its index as `idx`. A row that does not fit its table is
    /// refused here, before anything is queued; a row the database refuses fails the
    /// whole batch, and no entry of it is written.
    pub async fn append_entry(
        &self,
        kind: EntryKind,
        payload: Vec<u8>,
        side: Vec<SideRow>,
    ) -> Result<Receipt, LedgerError> {
        let entry = new_entry(self.hook.get().as_ref(), kind, payload, side)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Append(entry, reply))
            .await
            .map_err(|_| LedgerError::Closed)?;
        shared(rx.await.map_err(|_| LedgerError::Closed)?)
    }

    /// Appends entries (serialized JSON, each with its side rows) in one transaction at
    /// consecutive indexes: a group is never split across batches. Any row that does not
    /// fit its table refuses the whole group before anything is queued.
    pub async fn append_group(
        &self,
        entries: Vec<(EntryKind, Vec<u8>, Vec<SideRow>)>,
    ) -> Result<Vec<Receipt>, LedgerError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let hook = self.hook.get();
        let entries = entries
            .into_iter()
            .map(|(kind, payload, side)| new_entry(hook.as_ref(), kind, payload, side))
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::AppendGroup(entries, reply))
            .await
            .map_err(|_| LedgerError::Closed)?;
        shared(rx.await.map_err(|_| LedgerError::Closed)?)
    }

    /// Signs and stores a checkpoint of everything committed so far.
    pub async fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Checkpoint(reply))
            .await
            .map_err(|_| LedgerError::Closed)?;
        shared(rx.await.map_err(|_| LedgerError::Closed)?)
    }

    /// Commits what is queued, signs a final checkpoint when entries arrived since the
    /// last one, and stops the writer. Later appends fail with a "shut down" error.
    pub async fn shutdown(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(reply)).await.is_err() {
            return Ok(None);
        }
        let result = rx.await.map_err(|_| LedgerError::Closed)?;
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = handle.await;
        }
        shared(result)
    }

    /// The latest stored checkpoint, verified against this ledger's key.
    pub async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let Some(stored) = self.store.latest_checkpoint().await? else {
            return Ok(None);
        };
        let checkpoint = self.verifier.verify(&stored.note)?;
        Ok(Some(SignedCheckpoint {
            checkpoint,
            note: stored.note,
        }))
    }

    /// The verifier of this ledger's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn LedgerStore> {
        &self.store
    }

    /// The number of committed entries.
    pub async fn tree_size(&self) -> Result<u64, LedgerError> {
        Ok(self.store.head().await?.size)
    }

    /// Up to `limit` entries from `from`. Indexes are the caller's: one past any entry a
    /// ledger can hold (2^63 and above) is simply not there, never a store error.
    pub async fn entries(&self, from: u64, limit: u64) -> Result<Vec<Entry>, LedgerError> {
        if i64::try_from(from).is_err() {
            return Ok(Vec::new());
        }
        let limit = limit.min(i64::MAX.unsigned_abs() - from);
        self.store.entries(from, limit).await
    }

    /// One entry, if it exists.
    pub async fn entry(&self, index: u64) -> Result<Option<Entry>, LedgerError> {
        if i64::try_from(index).is_err() {
            return Ok(None);
        }
        Ok(self
            .store
            .entries(index, 1)
            .await?
            .into_iter()
            .find(|e| e.index == index))
    }

    /// The root hash of the tree at `size`.
    pub async fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        root_at(self.store.as_ref(), size).await
    }

    /// The inclusion proof of entry `index` in the tree of `size` (the current size
    /// when `None`).
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, LedgerError> {
        inclusion_proof(self.store.as_ref(), index, size).await
    }

    /// The inclusion proofs of entries `indexes` in the tree of `size`, in the order
    /// asked, reading the union of their nodes once (callers with very many indexes send
    /// them in pages of a few thousand).
    pub async fn inclusion_proofs(
        &self,
        indexes: &[u64],
        size: u64,
    ) -> Result<Vec<InclusionProof>, LedgerError> {
        inclusion_proofs(self.store.as_ref(), indexes, size).await
    }

    /// The entries at `indexes`, in index order, without duplicates.
    pub async fn entries_at(&self, indexes: &[u64]) -> Result<Vec<Entry>, LedgerError> {
        if indexes.iter().any(|i| i64::try_from(*i).is_err()) {
            let held: Vec<u64> = indexes
                .iter()
                .copied()
                .filter(|i| i64::try_from(*i).is_ok())
                .collect();
            return self.store.entries_at(&held).await;
        }
        self.store.entries_at(indexes).await
    }

    /// The consistency proof between the trees of `size1` and `size2`.
    pub async fn consistency_proof(
        &self,
        size1: u64,
        size2: u64,
    ) -> Result<ConsistencyProof, LedgerError> {
        consistency_proof(self.store.as_ref(), size1, size2).await
    }

    /// Erases entry `index`'s payload, recording who and why; its leaf and every proof
    /// stay valid.
    pub async fn redact(&self, index: u64, by: &str, reason: &str) -> Result<(), LedgerError> {
        let tombstone = Tombstone {
            by: by.to_owned(),
            reason: reason.to_owned(),
            at: self.clock.now(),
        };
        self.store.redact(index, &tombstone).await
    }

    /// Erases entry `index`'s payload like [`Ledger::redact`], but only if `plan`'s
    /// checks, read in the same transaction, allow it, and erases `plan`'s copies of the
    /// entry's fields in that transaction: all of it commits, or none. Returns the names
    /// of the erasures that changed rows.
    pub async fn redact_guarded(
        &self,
        index: u64,
        by: &str,
        reason: &str,
        plan: &crate::RedactPlan,
    ) -> Result<Vec<&'static str>, LedgerError> {
        let tombstone = Tombstone {
            by: by.to_owned(),
            reason: reason.to_owned(),
            at: self.clock.now(),
        };
        self.store.redact_guarded(index, &tombstone, plan).await
    }
}

/// Adds the hook's rows, checks the side rows and hashes the payload, on the caller's
/// task, so a bad row is refused alone and the single writer does less.
fn new_entry(
    hook: Option<&SideHook>,
    kind: EntryKind,
    payload: Vec<u8>,
    mut side: Vec<SideRow>,
) -> Result<NewEntry, LedgerError> {
    if let Some(hook) = hook {
        side.extend(hook(kind, &payload));
    }
    for row in &side {
        row.check()?;
    }
    Ok(NewEntry {
        kind,
        payload_hash: payload_hash(&payload),
        payload,
        side,
    })
}

/// Who waits for the entries of a batch: one caller per entry, or one per group.
enum Waiter {
    One(Reply<Receipt>),
    Group(usize, Reply<Vec<Receipt>>),
}

/// The entries of the next batch and who waits for them, in order.
#[derive(Default)]
struct Batch {
    entries: Vec<NewEntry>,
    waiters: Vec<Waiter>,
}

impl Batch {
    /// Takes an append; hands back any other command.
    fn take(&mut self, cmd: Cmd) -> Option<Cmd> {
        match cmd {
            Cmd::Append(e, r) => {
                self.entries.push(e);
                self.waiters.push(Waiter::One(r));
                None
            }
            Cmd::AppendGroup(es, r) => {
                self.waiters.push(Waiter::Group(es.len(), r));
                self.entries.extend(es);
                None
            }
            other => Some(other),
        }
    }
}

async fn check_size(
    store: &dyn LedgerStore,
    what: &'static str,
    value: u64,
) -> Result<u64, LedgerError> {
    let size = store.head().await?.size;
    if value > size {
        return Err(LedgerError::OutOfRange { what, value, size });
    }
    Ok(size)
}

/// The nodes `ids` of a tree of `size`; a missing node is "out of range" when `size` is
/// beyond the head, and corruption otherwise.
async fn nodes_within(
    store: &dyn LedgerStore,
    ids: &[crate::merkle::NodeId],
    size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    match store.nodes(ids).await {
        Ok(hashes) => Ok(hashes),
        Err(e) => {
            check_size(store, "tree size", size).await?;
            Err(e)
        }
    }
}

/// The root of the stored tree at `size` (O(log n) reads).
pub async fn root_at(store: &dyn LedgerStore, size: u64) -> Result<Hash, LedgerError> {
    check_size(store, "tree size", size).await?;
    let ids = range_nodes(0, size);
    Ok(fold_range(&store.nodes(&ids).await?))
}

/// The inclusion proof of `index` at `size` (current size when `None`), O(log n) reads.
pub async fn inclusion_proof(
    store: &dyn LedgerStore,
    index: u64,
    size: Option<u64>,
) -> Result<InclusionProof, LedgerError> {
    // With an explicit size, skip the head query: a size beyond the log shows up as
    // missing nodes, and only then is the head read to say so.
    let size = match size {
        Some(size) => size,
        None => store.head().await?.size,
    };
    let ranges = inclusion_ranges(index, size).ok_or(LedgerError::OutOfRange {
        what: "index",
        value: index,
        size,
    })?;
    let plan = ProofPlan::new(&ranges);
    let root_ids = range_nodes(0, size);
    let leaf_id = crate::merkle::NodeId { level: 0, index };
    let mut ids = plan.node_ids();
    ids.extend_from_slice(&root_ids);
    ids.push(leaf_id);
    ids.sort_unstable();
    ids.dedup();
    let hashes = nodes_within(store, &ids, size).await?;
    let map: std::collections::HashMap<_, _> = ids.into_iter().zip(hashes).collect();
    let proof = plan
        .assemble(|id| map.get(&id).copied())
        .ok_or_else(|| LedgerError::Corrupt("a proof node is missing".into()))?;
    let root_hashes = root_ids
        .iter()
        .map(|id| map.get(id).copied())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| LedgerError::Corrupt("a root node is missing".into()))?;
    Ok(InclusionProof {
        index,
        size,
        leaf_hash: map
            .get(&leaf_id)
            .copied()
            .ok_or_else(|| LedgerError::Corrupt("the leaf hash is missing".into()))?,
        root: fold_range(&root_hashes),
        proof,
    })
}

/// The inclusion proofs of `indexes` at `size`, in the order asked; the nodes of all of
/// them are read in one call.
pub async fn inclusion_proofs(
    store: &dyn LedgerStore,
    indexes: &[u64],
    size: u64,
) -> Result<Vec<InclusionProof>, LedgerError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let root_ids = range_nodes(0, size);
    let mut plans = Vec::with_capacity(indexes.len());
    let mut ids = root_ids.clone();
    for &index in indexes {
        let ranges = inclusion_ranges(index, size).ok_or(LedgerError::OutOfRange {
            what: "index",
            value: index,
            size,
        })?;
        let plan = ProofPlan::new(&ranges);
        ids.extend(plan.node_ids());
        ids.push(crate::merkle::NodeId { level: 0, index });
        plans.push((index, plan));
    }
    ids.sort_unstable();
    ids.dedup();
    let hashes = nodes_within(store, &ids, size).await?;
    let map: std::collections::HashMap<_, _> = ids.into_iter().zip(hashes).collect();
    let root_hashes = root_ids
        .iter()
        .map(|id| map.get(id).copied())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| LedgerError::Corrupt("a root node is missing".into()))?;
    let root = fold_range(&root_hashes);
    plans
        .into_iter()
        .map(|(index, plan)| {
            Ok(InclusionProof {
                index,
                size,
                leaf_hash: map
                    .get(&crate::merkle::NodeId { level: 0, index })
                    .copied()
                    .ok_or_else(|| LedgerError::Corrupt("the leaf hash is missing".into()))?,
                root,
                proof: plan
                    .assemble(|id| map.get(&id).copied())
                    .ok_or_else(|| LedgerError::Corrupt("a proof node is missing".into()))?,
            })
        })
        .collect()
}

/// The consistency proof between `size1` and `size2`, O(log n) reads.
pub async fn consistency_proof(
    store: &dyn LedgerStore,
    size1: u64,
    size2: u64,
) -> Result<ConsistencyProof, LedgerError> {
    let ranges = consistency_ranges(size1, size2)
        .ok_or(crate::merkle::ProofError::BadSizes { size1, size2 })?;
    let plan = ProofPlan::new(&ranges);
    let r1 = range_nodes(0, size1);
    let r2 = range_nodes(0, size2);
    let mut ids = plan.node_ids();
    ids.extend_from_slice(&r1);
    ids.extend_from_slice(&r2);
    ids.sort_unstable();
    ids.dedup();
    let hashes = nodes_within(store, &ids, size2).await?;
    let map: std::collections::HashMap<_, _> = ids.into_iter().zip(hashes).collect();
    let get = |nodes: &[crate::merkle::NodeId]| {
        nodes
            .iter()
            .map(|id| map.get(id).copied())
            .collect::<Option<Vec<_>>>()
            .map(|h| fold_range(&h))
            .ok_or_else(|| LedgerError::Corrupt("a root node is missing".into()))
    };
    Ok(ConsistencyProof {
        size1,
        size2,
        root1: get(&r1)?,
        root2: get(&r2)?,
        proof: plan
            .assemble(|id| map.get(&id).copied())
            .ok_or_else(|| LedgerError::Corrupt("a proof node is missing".into()))?,
    })
}

struct Writer {
    observer: ObserverSlot,
    head: Arc<watch::Sender<u64>>,
    rx: mpsc::Receiver<Cmd>,
    store: Arc<dyn LedgerStore>,
    signer: CheckpointSigner,
    config: LedgerConfig,
    clock: Arc<dyn Clock>,
    state: TreeState,
    last_checkpoint: u64,
    /// The running store maintenance, if any.
    maintenance: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    async fn run(mut self) {
        let interval = Duration::from_millis(self.config.checkpoint_interval_ms.max(1));
        let mut deadline = Instant::now() + interval;
        let mut batch = Batch::default();
        loop {
            let cmd = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(cmd)) => cmd,
                Ok(None) => {
                    // Every handle is gone: close the log with a checkpoint.
                    let _ = self.final_checkpoint().await;
                    return;
                }
                Err(_) => {
                    deadline = self.timed_work(interval).await;
                    continue;
                }
            };
            // A group counts whole against `max_batch` and is never split.
            let mut control = batch.take(cmd);
            while control.is_none() && batch.entries.len() < self.config.max_batch.max(1) {
                match self.rx.try_recv() {
                    Ok(cmd) => control = batch.take(cmd),
                    Err(_) => break,
                }
            }
            if !batch.waiters.is_empty() {
                self.commit(&mut batch).await;
            }
            // Under steady load `recv` always has a command ready and the timeout above
            // never fires: the timed work must not starve.
            if Instant::now() >= deadline {
                deadline = self.timed_work(interval).await;
            }
            match control {
                None => {}
                Some(Cmd::Checkpoint(reply)) => {
                    let _ = reply.send(self.sign_and_store().await.map_err(Arc::new));
                }
                Some(Cmd::Shutdown(reply)) => {
                    let result = self.final_checkpoint().await.map_err(Arc::new);
                    self.rx.close();
                    // Answer anything that raced in before the close.
                    while let Ok(cmd) = self.rx.try_recv() {
                        refuse(cmd);
                    }
                    let _ = reply.send(result);
                    return;
                }
                Some(Cmd::Append(..) | Cmd::AppendGroup(..)) => {}
            }
        }
    }

    /// The periodic work: a checkpoint when entries came since the last one, and store
    /// maintenance (SQLite: WAL checkpoints) off the commit path, one run at a time.
    /// Returns the next deadline.
    async fn timed_work(&mut self, interval: Duration) -> Instant {
        if self.state.size() > self.last_checkpoint
            && let Err(e) = self.sign_and_store().await
        {
            tracing::warn!(error = %e, "timed ledger checkpoint failed");
        }
        if self.maintenance.as_ref().is_none_or(|m| m.is_finished()) {
            let store = self.store.clone();
            self.maintenance = Some(tokio::spawn(async move {
                if let Err(e) = store.maintain().await {
                    tracing::warn!(error = %e, "ledger store maintenance failed");
                }
            }));
        }
        Instant::now() + interval
    }

    async fn commit(&mut self, batch: &mut Batch) {
        let Batch { entries, waiters } = std::mem::take(batch);
        let timestamp = self.clock.now();
        let every = self.config.checkpoint_every_entries.max(1);
        let last = self.last_checkpoint;
        let signer = &self.signer;
        let hook = move |f: &Frontier| {
            if f.size().saturating_sub(last) >= every {
                Ok(Some(signer.sign(f.size(), f.root())?))
            } else {
                Ok(None)
            }
        };
        let plan = BatchPlan {
            entries: &entries,
            timestamp,
            checkpoint: &hook,
        };
        let started = std::time::Instant::now();
        match self.store.append_batch(&mut self.state, plan).await {
            Ok(done) => {
                self.observer.notify(entries.len(), started.elapsed());
                self.head.send_replace(self.state.size());
                if let Some(cp) = &done.checkpoint {
                    self.last_checkpoint = cp.checkpoint.size;
                }
                let mut receipts =
                    done.leaf_hashes
                        .into_iter()
                        .enumerate()
                        .map(|(i, leaf_hash)| Receipt {
                            index: done.first_index + i as u64,
                            leaf_hash,
                            timestamp,
                        });
                for waiter in waiters {
                    match waiter {
                        Waiter::One(reply) => {
                            let r = receipts.next().ok_or_else(missing_receipt);
                            let _ = reply.send(r);
                        }
                        Waiter::Group(n, reply) => {
                            let group: Vec<Receipt> = receipts.by_ref().take(n).collect();
                            let r = if group.len() == n {
                                Ok(group)
                            } else {
                                Err(missing_receipt())
                            };
                            let _ = reply.send(r);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = entries.len(), "ledger batch failed");
                let e = Arc::new(e);
                for waiter in waiters {
                    match waiter {
                        Waiter::One(reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Waiter::Group(_, reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }

    async fn sign_and_store(&mut self) -> Result<SignedCheckpoint, LedgerError> {
        let f = &self.state.frontier;
        let cp = self.signer.sign(f.size(), f.root())?;
        self.store.put_checkpoint(&cp).await?;
        self.last_checkpoint = self.last_checkpoint.max(cp.checkpoint.size);
        Ok(cp)
    }

    async fn final_checkpoint(&mut self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        if self.state.size() > self.last_checkpoint {
            Ok(Some(self.sign_and_store().await?))
        } else {
            Ok(None)
        }
    }
}

fn missing_receipt() -> Arc<LedgerError> {
    Arc::new(LedgerError::Corrupt(
        "the store returned fewer leaf hashes than entries".into(),
    ))
}

fn refuse(cmd: Cmd) {
    let closed = || Arc::new(LedgerError::Closed);
    match cmd {
        Cmd::Append(_, r) => {
            let _ = r.send(Err(closed()));
        }
        Cmd::AppendGroup(_, r) => {
            let _ = r.send(Err(closed()));
        }
        Cmd::Checkpoint(r) => {
            let _ = r.send(Err(closed()));
        }
        Cmd::Shutdown(r) => {
            let _ = r.send(Ok(None));
        }
    }
}
