//! Merkle inclusion and consistency proofs (crates/lexecon-ledger, merkle.rs) on
//! arbitrary input. The first byte picks a mode:
//! - even: arbitrary indexes, sizes, proof hashes (of any length) and roots go to both
//!   verifiers. Nothing panics and no arbitrary proof verifies against the roots of the
//!   fuzz tree below (finding one would be a SHA-256 collision or a verifier bug).
//! - odd: a tree of up to 300 leaves is built the way the ledger builds it (the
//!   `Frontier`, storing every complete subtree it closes); proofs are made from the
//!   stored nodes as the ledger makes them (`inclusion_ranges`/`consistency_ranges`
//!   and `ProofPlan`); every such proof verifies, and a proof with one bit flipped, one
//!   hash dropped or one added, or checked at another index or size, does not.
#![no_main]

use std::collections::HashMap;

use lexecon_ledger::merkle::{
    Frontier, Hash, NodeId, ProofPlan, consistency_ranges, fold_range, inclusion_ranges, leaf_hash,
    range_nodes, verify_consistency, verify_inclusion,
};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;

struct Tree {
    nodes: HashMap<NodeId, Hash>,
    size: u64,
}

impl Tree {
    fn new(size: u64) -> Tree {
        let mut nodes = HashMap::new();
        let mut frontier = Frontier::new();
        for i in 0..size {
            frontier.push(leaf_hash(&i.to_le_bytes()), |id, h| {
                nodes.insert(id, *h);
            });
        }
        assert_eq!(frontier.size(), size);
        let tree = Tree { nodes, size };
        assert_eq!(
            tree.root(size),
            frontier.root(),
            "stored nodes disagree with the frontier"
        );
        tree
    }

    fn lookup(&self, id: NodeId) -> Option<Hash> {
        self.nodes.get(&id).copied()
    }

    /// The root of the first `size` leaves, from stored nodes.
    fn root(&self, size: u64) -> Hash {
        let hashes: Vec<Hash> = range_nodes(0, size)
            .into_iter()
            .map(|id| {
                self.lookup(id)
                    .expect("a complete subtree of the tree is stored")
            })
            .collect();
        fold_range(&hashes)
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let ranges = inclusion_ranges(index, size).expect("index < size");
        ProofPlan::new(&ranges)
            .assemble(|id| self.lookup(id))
            .expect("every node of a proof is stored")
    }

    fn consistency(&self, size1: u64, size2: u64) -> Vec<Hash> {
        let ranges = consistency_ranges(size1, size2).expect("0 < size1 <= size2");
        ProofPlan::new(&ranges)
            .assemble(|id| self.lookup(id))
            .expect("every node of a proof is stored")
    }
}

fn hash_bytes(u: &mut Unstructured<'_>) -> ArbResult<Vec<u8>> {
    // Mostly 32 bytes; sometimes another length.
    let len = if u.ratio(7, 8)? {
        32
    } else {
        u.int_in_range(0..=40)?
    };
    Ok(u.bytes(len)?.to_vec())
}

fn arbitrary_proofs(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let tree = Tree::new(u.int_in_range(1..=40)?);
    let index: u64 = u.arbitrary()?;
    let size: u64 = u.arbitrary()?;
    let size2: u64 = u.arbitrary()?;
    let n = u.int_in_range(0..=70)?;
    let mut proof = Vec::with_capacity(n);
    for _ in 0..n {
        proof.push(hash_bytes(u)?);
    }
    let leaf = hash_bytes(u)?;
    let root = hash_bytes(u)?;
    let _ = verify_inclusion(&leaf, index, size, &proof, &root);
    let _ = verify_consistency(size, size2, &proof, &leaf, &root);
    // Against the real roots: the proof is arbitrary, so it must not verify unless it
    // is the real one.
    let real_size = tree.size;
    let real_root = tree.root(real_size);
    if let Ok(index) = u.int_in_range(0..=real_size - 1) {
        let real_leaf = leaf_hash(&index.to_le_bytes());
        if verify_inclusion(&real_leaf, index, real_size, &proof, &real_root).is_ok() {
            let real: Vec<Vec<u8>> = tree
                .inclusion(index, real_size)
                .iter()
                .map(|h| h.to_vec())
                .collect();
            assert_eq!(proof, real, "a proof other than the real one verifies");
        }
        let old = index + 1;
        if verify_consistency(old, real_size, &proof, &tree.root(old), &real_root).is_ok() {
            let real: Vec<Vec<u8>> = tree
                .consistency(old, real_size)
                .iter()
                .map(|h| h.to_vec())
                .collect();
            assert_eq!(
                proof, real,
                "a consistency proof other than the real one verifies"
            );
        }
    }
    Ok(())
}

fn mutations(proof: &[Hash], u: &mut Unstructured<'_>) -> ArbResult<Vec<Vec<Hash>>> {
    let mut out = Vec::new();
    if !proof.is_empty() {
        let mut flipped = proof.to_vec();
        let i = u.choose_index(proof.len())?;
        let bit: u8 = u.int_in_range(0..=255)?;
        if let Some(h) = flipped.get_mut(i)
            && let Some(b) = h.get_mut(usize::from(bit / 8))
        {
            *b ^= 1 << (bit % 8);
        }
        out.push(flipped);
        let mut dropped = proof.to_vec();
        dropped.remove(u.choose_index(proof.len())?);
        out.push(dropped);
    }
    let mut added = proof.to_vec();
    let mut extra = [0u8; 32];
    u.fill_buffer(&mut extra)?;
    added.insert(u.int_in_range(0..=proof.len())?, extra);
    out.push(added);
    Ok(out)
}

fn real_proofs(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let tree = Tree::new(u.int_in_range(1..=300)?);
    let size = u.int_in_range(1..=tree.size)?;
    let index = u.int_in_range(0..=size - 1)?;
    let root = tree.root(size);
    let leaf = leaf_hash(&index.to_le_bytes());
    let proof = tree.inclusion(index, size);
    assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));
    for bad in mutations(&proof, u)? {
        assert!(
            verify_inclusion(&leaf, index, size, &bad, &root).is_err(),
            "a mutated inclusion proof of {index} in {size} verifies"
        );
    }
    let other = u.int_in_range(0..=size - 1)?;
    if other != index {
        assert!(
            verify_inclusion(&leaf, other, size, &proof, &root).is_err(),
            "the proof of {index} in {size} verifies at {other}"
        );
    }

    let size1 = u.int_in_range(1..=size)?;
    let root1 = tree.root(size1);
    let proof = tree.consistency(size1, size);
    assert_eq!(
        verify_consistency(size1, size, &proof, &root1, &root),
        Ok(())
    );
    for bad in mutations(&proof, u)? {
        assert!(
            verify_consistency(size1, size, &bad, &root1, &root).is_err(),
            "a mutated consistency proof {size1} -> {size} verifies"
        );
    }
    let other = u.int_in_range(1..=size)?;
    if other != size1 {
        assert!(
            verify_consistency(other, size, &proof, &tree.root(other), &root).is_err(),
            "the consistency proof {size1} -> {size} verifies from {other}"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = if mode & 1 == 0 {
        arbitrary_proofs(&mut u)
    } else {
        real_proofs(&mut u)
    };
});
