//! Ledger reads as engine operations: pages of entries, one entry, full verification
//! (trusting the node's key ring, and any key the ledger itself records that the ring
//! lacks, so a rotation does not make a valid ledger look invalid; each verification is
//! recorded with its trust basis), checkpoints and Merkle proofs.

use std::sync::Arc;

use lexecon_ledger::{ConsistencyProof, Entry, InclusionProof, NoteVerifier, VerifyOptions};

use super::{Caller, Engine, EngineError, ops};

pub use lexecon_ledger::VerifyReport;

/// The most entries one page holds.
pub const MAX_PAGE: u32 = 1000;

/// A page of entries.
#[derive(Debug, Clone)]
pub struct EntryPage {
    /// The entries of the page (of the asked kind, when one was asked).
    pub entries: Vec<Entry>,
    /// The index to ask for next.
    pub next: u64,
}

/// The latest signed checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The signed note.
    pub note: String,
    /// The tree size it covers.
    pub size: u64,
    /// The root hash.
    pub root: [u8; 32],
    /// The note verifier key of the node's current key.
    pub verifier_key: String,
}

impl Engine {
    /// Up to `limit` entries from `from` (0 means 100), keeping those of `kind` when it
    /// is not empty.
    pub async fn ledger_entries(
        &self,
        caller: &Caller,
        from: u64,
        limit: u32,
        kind: &str,
    ) -> Result<EntryPage, EngineError> {
        self.authorize(caller, ops::GET_ENTRIES)?;
        let limit = match limit {
            0 => 100,
            n if n > MAX_PAGE => {
                return Err(EngineError::InvalidArgument(format!(
                    "limit must be at most {MAX_PAGE}"
                )));
            }
            n => u64::from(n),
        };
        let entries = self.ledger.entries(from, limit).await?;
        let next = entries.last().map_or(from, |e| e.index + 1);
        let entries = entries
            .into_iter()
            .filter(|e| {
                kind.is_empty()
                    || e.decode_leaf()
                        .is_ok_and(|leaf| leaf.kind.to_string() == kind)
            })
            .collect();
        Ok(EntryPage { entries, next })
    }

    /// One entry.
    pub async fn ledger_entry(&self, caller: &Caller, index: u64) -> Result<Entry, EngineError> {
        self.authorize(caller, ops::GET_ENTRY)?;
        self.ledger
            .entry(index)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no ledger entry at index {index}")))
    }

    /// Verifies the whole ledger: every leaf, link and payload hash, the tree, and every
    /// checkpoint's signature under the node's key ring from the data directory (the
    /// active key and `keys/retired/`), plus any key the ledger recorded in the database
    /// that the ring lacks (a key pruned from `keys/retired/`, another node's key). The
    /// report's `trusted_key_ring` is true when the ring alone was trusted (no such
    /// extra key). The result and its trust basis are recorded as a `ledger_verified`
    /// compliance entry naming the caller (`recorded_at_index`).
    pub async fn verify_ledger(&self, caller: &Caller) -> Result<VerifyReport, EngineError> {
        self.authorize(caller, ops::VERIFY_LEDGER)?;
        let store = Arc::clone(self.ledger.store());
        let current = self.ledger.verifier();
        let ring = self.key_ring();
        let mut verifiers = vec![current.clone()];
        for retired in ring.retired() {
            let v = NoteVerifier::new(current.name(), *retired.key.verifying_key())
                .map_err(|e| EngineError::Keys(e.to_string()))?;
            if !verifiers.iter().any(|k| k.key() == v.key()) {
                verifiers.push(v);
            }
        }
        let mut trusted_key_ring = true;
        for v in lexecon_ledger::stored_verifiers(store.as_ref()).await? {
            if !verifiers.iter().any(|k| k.key() == v.key()) {
                trusted_key_ring = false;
                verifiers.push(v);
            }
        }
        let options = VerifyOptions {
            verifiers,
            ..Default::default()
        };
        let mut report = lexecon_ledger::verify(store, &options).await?;
        report.trusted_key_ring = trusted_key_ring;
        report.recorded_at_index = Some(
            self.record_verification(caller, &report, trusted_key_ring)
                .await?,
        );
        Ok(report)
    }

    /// The latest signed checkpoint (one is signed now if there is none yet).
    pub async fn checkpoint(&self, caller: &Caller) -> Result<Checkpoint, EngineError> {
        self.authorize(caller, ops::GET_CHECKPOINT)?;
        let cp = match self.ledger.latest_checkpoint().await? {
            Some(cp) => cp,
            None => self.ledger.checkpoint().await?,
        };
        Ok(Checkpoint {
            size: cp.checkpoint.size,
            root: cp.checkpoint.root,
            note: cp.note,
            verifier_key: self.ledger.verifier().vkey(),
        })
    }

    /// An inclusion proof of entry `index` in the tree of `size` (0: the current size).
    pub async fn inclusion_proof(
        &self,
        caller: &Caller,
        index: u64,
        size: u64,
    ) -> Result<InclusionProof, EngineError> {
        self.authorize(caller, ops::GET_INCLUSION_PROOF)?;
        let size = if size == 0 {
            self.ledger.tree_size().await?
        } else {
            size
        };
        if index >= size {
            return Err(EngineError::InvalidArgument(format!(
                "index {index} is not below tree_size {size}"
            )));
        }
        Ok(self.ledger.inclusion_proof(index, Some(size)).await?)
    }

    /// A consistency proof between the trees of `size1` and `size2` (0: current).
    pub async fn consistency_proof(
        &self,
        caller: &Caller,
        size1: u64,
        size2: u64,
    ) -> Result<ConsistencyProof, EngineError> {
        self.authorize(caller, ops::GET_CONSISTENCY_PROOF)?;
        let size2 = if size2 == 0 {
            self.ledger.tree_size().await?
        } else {
            size2
        };
        if size1 == 0 || size1 > size2 {
            return Err(EngineError::InvalidArgument(format!(
                "size1 must be between 1 and size2 ({size2}), got {size1}"
            )));
        }
        Ok(self.ledger.consistency_proof(size1, size2).await?)
    }

    /// The number of entries in the ledger.
    pub async fn ledger_size(&self) -> Result<u64, EngineError> {
        Ok(self.ledger.tree_size().await?)
    }
}
