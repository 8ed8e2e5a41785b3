//! The `LedgerStore` trait and the sequencing logic every store shares.
//!
//! A store keeps four things: leaves (index, the exact leaf bytes, the leaf hash),
//! payloads in a table of their own (so redaction can erase one and keep its leaf),
//! the hashes of complete subtrees of level 1 and above (level 0 is the leaf hash), and
//! signed checkpoints. Appending happens in [`LedgerStore::append_batch`]: one
//! transaction that locks the head, re-reads it, assigns indexes, and writes the whole
//! batch with one multi-row statement per table.

use std::future::Future;
use std::pin::Pin;

use lexecon_core::Timestamp;

use crate::entry::{Entry, EntryKind, Leaf, Tombstone};
use crate::error::LedgerError;
use crate::merkle::{Frontier, Hash, NodeId, leaf_hash};
use crate::note::SignedCheckpoint;
use crate::side::SideRow;

/// A boxed, sendable future (the store trait is used as `dyn LedgerStore`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An entry waiting to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Its kind.
    pub kind: EntryKind,
    /// The payload bytes (compact JSON).
    pub payload: Vec<u8>,
    /// SHA-256 of `payload` (computed by the caller, off the writer's thread).
    pub payload_hash: Hash,
    /// Rows written with the entry, in the same transaction, keyed by its index.
    pub side: Vec<SideRow>,
}

/// What a writer knows of the log's right edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeState {
    /// The complete subtrees of the current size.
    pub frontier: Frontier,
    /// The last entry's leaf hash (zeros for an empty log).
    pub last_leaf_hash: Hash,
}

impl TreeState {
    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }
}

/// The head of the stored log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// The last entry's leaf hash (zeros when empty).
    pub last_leaf_hash: Hash,
}

/// Decides, after a batch is sequenced, whether to sign a checkpoint in the same
/// transaction.
pub type CheckpointHook<'a> =
    &'a (dyn Fn(&Frontier) -> Result<Option<SignedCheckpoint>, LedgerError> + Send + Sync);

/// One batch to append.
pub struct BatchPlan<'a> {
    /// The entries, in order.
    pub entries: &'a [NewEntry],
    /// The timestamp of every entry of the batch.
    pub timestamp: Timestamp,
    /// Called with the new right edge; a returned checkpoint is stored with the batch.
    pub checkpoint: CheckpointHook<'a>,
}

impl std::fmt::Debug for BatchPlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPlan")
            .field("entries", &self.entries.len())
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// What a committed batch became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCommitted {
    /// The index of the batch's first entry.
    pub first_index: u64,
    /// The leaf hash of each entry, in order.
    pub leaf_hashes: Vec<Hash>,
    /// The checkpoint signed with the batch, if one was due.
    pub checkpoint: Option<SignedCheckpoint>,
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Its tree size.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// Where ledger data lives. Implementations: [`crate::SqliteLedgerStore`],
/// [`crate::PgLedgerStore`].
pub trait LedgerStore: Send + Sync + std::fmt::Debug {
    /// The stored head (size and last leaf hash).
    fn head(&self) -> BoxFuture<'_, Result<Head, LedgerError>>;

    /// The hashes of complete subtrees, in the order asked; an error if one is missing.
    fn nodes<'a>(&'a self, ids: &'a [NodeId]) -> BoxFuture<'a, Result<Vec<Hash>, LedgerError>>;

    /// Appends a batch in one durable transaction, sequenced after the stored head
    /// (`state` is refreshed from the store first when another writer moved the head).
    /// `state` is updated only when the transaction committed.
    fn append_batch<'a>(
        &'a self,
        state: &'a mut TreeState,
        plan: BatchPlan<'a>,
    ) -> BoxFuture<'a, Result<BatchCommitted, LedgerError>>;

    /// Stores a checkpoint (a checkpoint of the same size already stored wins).
    fn put_checkpoint<'a>(
        &'a self,
        checkpoint: &'a SignedCheckpoint,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// Up to `limit` entries from index `from`, in index order.
    fn entries(&self, from: u64, limit: u64) -> BoxFuture<'_, Result<Vec<Entry>, LedgerError>>;

    /// The entries at `indexes` (any order, duplicates allowed), in index order, without
    /// duplicates; an index beyond the log is left out.
    fn entries_at<'a>(
        &'a self,
        indexes: &'a [u64],
    ) -> BoxFuture<'a, Result<Vec<Entry>, LedgerError>>;

    /// Every checkpoint with a size in `from..=to`, by size.
    fn checkpoints(
        &self,
        from: u64,
        to: u64,
    ) -> BoxFuture<'_, Result<Vec<StoredCheckpoint>, LedgerError>>;

    /// The checkpoint with the largest size.
    fn latest_checkpoint(&self) -> BoxFuture<'_, Result<Option<StoredCheckpoint>, LedgerError>>;

    /// Erases an entry's payload and records the tombstone; the leaf stays.
    fn redact<'a>(
        &'a self,
        index: u64,
        tombstone: &'a Tombstone,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// Erases an entry's payload (not redacted yet) and records the tombstone, in one
    /// transaction with `plan`'s checks (any refusal: [`LedgerError::Refused`], nothing
    /// changes) and erasures (any failure rolls the tombstone back). Returns the names of
    /// the erasures that changed rows.
    fn redact_guarded<'a>(
        &'a self,
        index: u64,
        tombstone: &'a Tombstone,
        plan: &'a crate::RedactPlan,
    ) -> BoxFuture<'a, Result<Vec<&'static str>, LedgerError>>;

    /// A stored setting (the log's verifier key, ...).
    fn meta<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, LedgerError>>;

    /// Stores a setting.
    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// Up to `limit` stored subtree hashes of level >= 1 after `after`, ordered by
    /// (level, index): the proof index, for verification.
    fn node_page(
        &self,
        after: Option<NodeId>,
        limit: u64,
    ) -> BoxFuture<'_, Result<Vec<(NodeId, Hash)>, LedgerError>>;

    /// Housekeeping off the commit path (SQLite: a passive WAL checkpoint).
    fn maintain(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A sequenced batch, ready to be written.
#[derive(Debug, Default)]
pub(crate) struct Sequenced {
    pub(crate) indexes: Vec<i64>,
    pub(crate) leaves: Vec<Vec<u8>>,
    pub(crate) leaf_hashes: Vec<Hash>,
    pub(crate) node_levels: Vec<i32>,
    pub(crate) node_indexes: Vec<i64>,
    pub(crate) node_hashes: Vec<Vec<u8>>,
    pub(crate) checkpoint: Option<SignedCheckpoint>,
}

pub(crate) fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::Corrupt(format!("index {v} exceeds 2^63")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, LedgerError> {
    u64::try_from(v).map_err(|_| LedgerError::Corrupt(format!("negative index {v}")))
}

pub(crate) fn to_hash(v: &[u8]) -> Result<Hash, LedgerError> {
    v.try_into()
        .map_err(|_| LedgerError::Corrupt(format!("a stored hash is {} bytes, not 32", v.len())))
}

/// Assigns indexes after `state`, builds leaves and new subtree hashes, and advances
/// `state` (the caller keeps a copy to roll back).
pub(crate) fn sequence(
    state: &mut TreeState,
    plan: &BatchPlan<'_>,
) -> Result<Sequenced, LedgerError> {
    let mut out = Sequenced::default();
    let n = plan.entries.len();
    out.indexes.reserve(n);
    out.leaves.reserve(n);
    out.leaf_hashes.reserve(n);
    for e in plan.entries {
        let index = state.size();
        let leaf = Leaf {
            index,
            timestamp: plan.timestamp,
            kind: e.kind,
            prev_leaf_hash: state.last_leaf_hash,
            payload_hash: e.payload_hash,
        }
        .encode();
        let h = leaf_hash(&leaf);
        out.indexes.push(to_i64(index)?);
        out.leaves.push(leaf.to_vec());
        out.leaf_hashes.push(h);
        let mut bad = None;
        state.frontier.push(h, |id, hash| {
            if id.level > 0 {
                match to_i64(id.index) {
                    Ok(i) => {
                        out.node_levels.push(i32::from(id.level));
                        out.node_indexes.push(i);
                        out.node_hashes.push(hash.to_vec());
                    }
                    Err(e) => bad = Some(e),
                }
            }
        });
        if let Some(e) = bad {
            return Err(e);
        }
        state.last_leaf_hash = h;
    }
    out.checkpoint = (plan.checkpoint)(&state.frontier)?;
    Ok(out)
}

/// Loads the right edge of a log of `head` through `nodes`.
pub(crate) fn frontier_ids(head: &Head) -> Vec<NodeId> {
    Frontier::node_ids(head.size)
}

/// Builds a [`TreeState`] from a head and its frontier hashes.
pub(crate) fn state_from(head: &Head, hashes: Vec<Hash>) -> Result<TreeState, LedgerError> {
    let frontier = Frontier::from_hashes(head.size, hashes)
        .ok_or_else(|| LedgerError::Corrupt("the stored tree frontier is incomplete".into()))?;
    Ok(TreeState {
        frontier,
        last_leaf_hash: head.last_leaf_hash,
    })
}

/// Loads the current state of a store (O(log n) reads).
pub async fn load_state(store: &dyn LedgerStore) -> Result<TreeState, LedgerError> {
    let head = store.head().await?;
    let ids = frontier_ids(&head);
    let hashes = store.nodes(&ids).await?;
    state_from(&head, hashes)
}
