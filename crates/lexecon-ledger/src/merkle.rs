//! RFC 6962 / RFC 9162 Merkle tree hashing, the compact "complete subtree" layout, proof
//! generation from stored subtree hashes, and the proof verifiers.
//!
//! Every interior node we store is the root of a *complete* subtree: `NodeId { level,
//! index }` covers leaves `[index << level, (index + 1) << level)`. Any RFC 6962 subtree
//! `MTH(D[a:b])` that appears in a proof decomposes into at most 64 such complete
//! subtrees (one per set bit of `b - a`), so a proof needs O(log n) stored hashes and
//! never O(n) work.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The RFC 6962 leaf hash `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// The RFC 6962 interior node hash `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A complete, aligned subtree: leaves `[index << level, (index + 1) << level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 is a leaf).
    pub level: u8,
    /// Position among the subtrees of this level.
    pub index: u64,
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    let below = n.saturating_sub(1);
    if below == 0 {
        return 0;
    }
    1u64 << (63 - below.leading_zeros())
}

/// The complete subtrees whose fold is `MTH(D[start:start + len])`, largest first.
///
/// Valid for the ranges an RFC 6962 proof or root uses: `start` is a multiple of the
/// largest power of two not above `len`, which every recursion step of RFC 9162 keeps.
pub fn range_nodes(start: u64, len: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut at = start;
    let mut bit = 64u32;
    while bit > 0 {
        bit -= 1;
        let size = 1u64 << bit;
        if len & size != 0 {
            out.push(NodeId {
                level: bit as u8,
                index: at >> bit,
            });
            at += size;
        }
    }
    out
}

/// Folds the hashes of [`range_nodes`] (same order) into the range's RFC 6962 hash.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// A leaf range `[start, start + len)` whose RFC 6962 hash is one proof element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofRange {
    /// First leaf.
    pub start: u64,
    /// Number of leaves.
    pub len: u64,
}

/// The ranges of the inclusion proof `PATH(m, D[n])` (RFC 9162 §2.1.3.1), leaf first.
///
/// Returns `None` when `index >= size`.
pub fn inclusion_ranges(index: u64, size: u64) -> Option<Vec<ProofRange>> {
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    path(index, 0, size, &mut out);
    Some(out)
}

fn path(m: u64, start: u64, n: u64, out: &mut Vec<ProofRange>) {
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, start, k, out);
        out.push(ProofRange {
            start: start + k,
            len: n - k,
        });
    } else {
        path(m - k, start + k, n - k, out);
        out.push(ProofRange { start, len: k });
    }
}

/// The ranges of the consistency proof `PROOF(m, D[n])` (RFC 9162 §2.1.4.1).
///
/// Returns `None` unless `0 < size1 <= size2`; equal sizes give an empty proof.
pub fn consistency_ranges(size1: u64, size2: u64) -> Option<Vec<ProofRange>> {
    if size1 == 0 || size1 > size2 {
        return None;
    }
    let mut out = Vec::new();
    if size1 < size2 {
        subproof(size1, 0, size2, true, &mut out);
    }
    Some(out)
}

fn subproof(m: u64, start: u64, n: u64, whole: bool, out: &mut Vec<ProofRange>) {
    if m == n {
        if !whole {
            out.push(ProofRange { start, len: m });
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, start, k, whole, out);
        out.push(ProofRange {
            start: start + k,
            len: n - k,
        });
    } else {
        subproof(m - k, start + k, n - k, false, out);
        out.push(ProofRange { start, len: k });
    }
}

/// The stored nodes a list of proof ranges needs, and how to assemble them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    /// For each proof element, the complete subtrees to fold (largest first).
    pub elements: Vec<Vec<NodeId>>,
}

impl ProofPlan {
    /// The plan for these ranges.
    pub fn new(ranges: &[ProofRange]) -> Self {
        ProofPlan {
            elements: ranges.iter().map(|r| range_nodes(r.start, r.len)).collect(),
        }
    }

    /// Every node id the plan reads, deduplicated and sorted.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.elements.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The proof hashes, given a lookup for the nodes of [`ProofPlan::node_ids`].
    pub fn assemble(&self, lookup: impl Fn(NodeId) -> Option<Hash>) -> Option<Vec<Hash>> {
        self.elements
            .iter()
            .map(|nodes| {
                let hashes = nodes
                    .iter()
                    .map(|id| lookup(*id))
                    .collect::<Option<Vec<_>>>()?;
                Some(fold_range(&hashes))
            })
            .collect()
    }
}

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index is not inside the tree.
    #[error("index {index} is outside a tree of size {size}: give an index below the size")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes cannot be compared.
    #[error(
        "sizes {size1} and {size2} cannot be proven consistent: size1 must be at least 1 and at most size2"
    )]
    BadSizes {
        /// The older size.
        size1: u64,
        /// The newer size.
        size2: u64,
    },
    /// The proof has the wrong number of hashes.
    #[error("proof has {got} hashes where {want} are needed for these sizes")]
    WrongLength {
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        want: usize,
    },
    /// A hash is not 32 bytes.
    #[error("a hash is {len} bytes long: hashes are 32-byte SHA-256 values")]
    BadHashLength {
        /// Its length.
        len: usize,
    },
    /// The recomputed root differs.
    #[error("the proof does not lead to the given root: the leaf or tree differs")]
    RootMismatch,
}

fn as_hash(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes
        .try_into()
        .map_err(|_| ProofError::BadHashLength { len: bytes.len() })
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let root = as_hash(root)?;
    let mut r = as_hash(leaf_hash)?;
    let mut fnode = index;
    let mut snode = size - 1;
    for p in proof {
        let p = as_hash(p.as_ref())?;
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: inclusion_len(index, size),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(&p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, &p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inclusion_len(index, size),
        });
    }
    if r == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

fn inclusion_len(index: u64, size: u64) -> usize {
    inclusion_ranges(index, size).map_or(0, |r| r.len())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2).
///
/// A proof from size 0 is rejected (it proves nothing). Equal sizes need an empty proof
/// and byte-equal roots.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[impl AsRef<[u8]>],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::BadSizes { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let root1 = as_hash(root1)?;
    let root2 = as_hash(root2)?;
    let mut path = proof
        .iter()
        .map(|p| as_hash(p.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let want = consistency_ranges(size1, size2).map_or(0, |r| r.len());
    if path.len() != want {
        return Err(ProofError::WrongLength {
            got: path.len(),
            want,
        });
    }
    // Step 1: when size1 is a power of two, the old root starts the path.
    if size1.is_power_of_two() {
        path.insert(0, root1);
    }
    let mut fnode = size1 - 1;
    let mut snode = size2 - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut iter = path.iter();
    let Some(first) = iter.next() else {
        return Err(ProofError::WrongLength { got: 0, want });
    };
    let mut fr = *first;
    let mut sr = *first;
    for c in iter {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    if fr == root1 && sr == root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of a tree: the complete subtrees of its size's binary decomposition.
///
/// Enough to compute the root and to append leaves while emitting every new complete
/// subtree, which is what the store keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Hashes of the complete subtrees, largest first.
    stack: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// The node ids a frontier of `size` consists of, largest first.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        range_nodes(0, size)
    }

    /// A frontier from the hashes of [`Frontier::node_ids`] (same order).
    pub fn from_hashes(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier {
            size,
            stack: hashes,
        })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        fold_range(&self.stack)
    }

    /// Appends a leaf hash; calls `emit` for every complete subtree this closes,
    /// including the leaf itself (level 0).
    pub fn push(&mut self, leaf: Hash, mut emit: impl FnMut(NodeId, &Hash)) {
        let mut cur = leaf;
        let mut index = self.size;
        let mut level = 0u8;
        emit(NodeId { level, index }, &cur);
        while index & 1 == 1 {
            let Some(left) = self.stack.pop() else {
                break;
            };
            cur = node_hash(&left, &cur);
            level += 1;
            index >>= 1;
            emit(NodeId { level, index }, &cur);
        }
        self.stack.push(cur);
        self.size += 1;
    }
}
