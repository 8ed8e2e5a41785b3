//! Unit tests: proof vectors, RFC 6962 reference values, proptests, leaf and note formats.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use expect_test::expect;
use lexecon_core::Timestamp;
use proptest::prelude::*;

use crate::entry::{EntryKind, Leaf};
use crate::merkle::{
    Frontier, Hash, NodeId, ProofPlan, consistency_ranges, empty_root, inclusion_ranges, leaf_hash,
    verify_consistency, verify_inclusion,
};
use crate::note::{Checkpoint, CheckpointSigner, NoteVerifier};

/// The RFC 6962 reference tree's leaves (from the Certificate Transparency test data).
const REFERENCE_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Its roots at sizes 0-8.
const REFERENCE_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// An in-memory tree keeping every complete subtree, as a store does.
struct MemTree {
    frontier: Frontier,
    nodes: HashMap<NodeId, Hash>,
    roots: Vec<Hash>,
}

impl MemTree {
    fn new() -> Self {
        MemTree {
            frontier: Frontier::new(),
            nodes: HashMap::new(),
            roots: vec![empty_root()],
        }
    }

    fn push(&mut self, leaf: &[u8]) {
        let nodes = &mut self.nodes;
        self.frontier.push(leaf_hash(leaf), |id, h| {
            nodes.insert(id, *h);
        });
        self.roots.push(self.frontier.root());
    }

    fn with_leaves(n: u64) -> Self {
        let mut t = MemTree::new();
        for i in 0..n {
            t.push(&i.to_be_bytes());
        }
        t
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let plan = ProofPlan::new(&inclusion_ranges(index, size).unwrap());
        plan.assemble(|id| self.nodes.get(&id).copied()).unwrap()
    }

    fn consistency(&self, size1: u64, size2: u64) -> Vec<Hash> {
        let plan = ProofPlan::new(&consistency_ranges(size1, size2).unwrap());
        plan.assemble(|id| self.nodes.get(&id).copied()).unwrap()
    }

    fn leaf(&self, index: u64) -> Hash {
        self.nodes[&NodeId { level: 0, index }]
    }
}

#[test]
fn rfc6962_reference_values() {
    assert_eq!(hex::encode(empty_root()), REFERENCE_ROOTS[0], "empty tree");
    assert_eq!(
        hex::encode(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "empty leaf"
    );
    let mut tree = MemTree::new();
    for leaf in REFERENCE_LEAVES {
        tree.push(&hex::decode(leaf).unwrap());
    }
    for (size, want) in REFERENCE_ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(tree.roots[size]), *want, "root at size {size}");
    }
    // Proofs from stored subtrees verify against the reference roots.
    for size in 1..=8u64 {
        for index in 0..size {
            let proof = tree.inclusion(index, size);
            verify_inclusion(
                &tree.leaf(index),
                index,
                size,
                &proof,
                &tree.roots[size as usize],
            )
            .unwrap();
        }
        for size1 in 1..=size {
            let proof = tree.consistency(size1, size);
            verify_consistency(
                size1,
                size,
                &proof,
                &tree.roots[size1 as usize],
                &tree.roots[size as usize],
            )
            .unwrap();
        }
    }
}

fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/merkle");
    assert!(
        dir.is_dir(),
        "the RFC 6962 proof vectors are missing: expected them at {} (../shared/testdata/merkle beside the repository)",
        dir.display()
    );
    dir
}

fn json_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    v.as_str()
        .map(|s| B64.decode(s).unwrap())
        .unwrap_or_default()
}

fn b64_list(v: &serde_json::Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

#[test]
fn proof_vectors_accept_exactly_the_valid_ones() {
    let dir = vectors_dir();
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    let (mut inclusion, mut consistency, mut valid) = (0, 0, 0);
    for f in &files {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let got = if v.get("leafIdx").is_some() {
            inclusion += 1;
            verify_inclusion(
                &b64(&v["leafHash"]),
                v["leafIdx"].as_u64().unwrap(),
                v["treeSize"].as_u64().unwrap(),
                &b64_list(&v["proof"]),
                &b64(&v["root"]),
            )
        } else {
            consistency += 1;
            verify_consistency(
                v["size1"].as_u64().unwrap(),
                v["size2"].as_u64().unwrap(),
                &b64_list(&v["proof"]),
                &b64(&v["root1"]),
                &b64(&v["root2"]),
            )
        };
        if !want_err {
            valid += 1;
        }
        assert_eq!(got.is_err(), want_err, "{}: {got:?}", f.display());
    }
    assert_eq!(files.len(), 196, "expected the 196 vectors of the README");
    assert!(
        inclusion > 0 && consistency > 0 && valid > 0,
        "{inclusion} {consistency} {valid}"
    );
}

#[test]
fn generated_proofs_match_the_vectors_reference_tree() {
    // The happy-path vectors use the reference tree: our generator must produce the
    // very same proofs from stored subtrees.
    let mut tree = MemTree::new();
    for leaf in REFERENCE_LEAVES {
        tree.push(&hex::decode(leaf).unwrap());
    }
    let mut files = Vec::new();
    json_files(&vectors_dir(), &mut files);
    let mut compared = 0;
    for f in files.iter().filter(|f| f.ends_with("happy-path.json")) {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        if let Some(index) = v["leafIdx"].as_u64() {
            let size = v["treeSize"].as_u64().unwrap();
            if size <= 8 && b64(&v["root"]) == tree.roots[size as usize] {
                let want = b64_list(&v["proof"]);
                let got: Vec<Vec<u8>> = tree
                    .inclusion(index, size)
                    .iter()
                    .map(|h| h.to_vec())
                    .collect();
                assert_eq!(got, want, "{}", f.display());
                compared += 1;
            }
        } else if let Some(size1) = v["size1"].as_u64() {
            let size2 = v["size2"].as_u64().unwrap();
            if size2 <= 8 && size1 > 0 && b64(&v["root2"]) == tree.roots[size2 as usize] {
                let want = b64_list(&v["proof"]);
                let got: Vec<Vec<u8>> = tree
                    .consistency(size1, size2)
                    .iter()
                    .map(|h| h.to_vec())
                    .collect();
                assert_eq!(got, want, "{}", f.display());
                compared += 1;
            }
        }
    }
    assert!(
        compared > 0,
        "no happy-path vector was on the reference tree"
    );
}

/// Trees this large are built to get the real root of a changed size.
const BIG: u64 = 512;

fn flip(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_proofs_round_trip_and_reject_every_bit_flip(size in 1u64..200, pick in any::<u64>(), bit in 0usize..256) {
        let tree = MemTree::with_leaves(size);
        let index = pick % size;
        let root = tree.roots[size as usize];
        let leaf = tree.leaf(index);
        let proof = tree.inclusion(index, size);
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());
        // A flipped bit in any proof element, the root or the leaf is rejected.
        for k in 0..proof.len() {
            let mut bad = proof.clone();
            flip(&mut bad[k], bit);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
        }
        let mut bad_root = root;
        flip(&mut bad_root, bit);
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &bad_root).is_err());
        let mut bad_leaf = leaf;
        flip(&mut bad_leaf, bit);
        prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
        // Every single-bit change of the index is rejected.
        for b in 0..64 {
            let other = index ^ (1 << b);
            prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err(), "index {other}");
        }
        // A changed size comes with that size's root (a checkpoint binds the two): the
        // proof is rejected unless it is exactly the real proof for that size. (With the
        // old root, RFC 9162 accepts sizes whose audit path has the same shape, e.g. 24
        // and 25 for index 4; the signed checkpoint is what pins the size.)
        let big = MemTree::with_leaves(BIG);
        for b in 0..64 {
            let other = size ^ (1 << b);
            if other <= BIG {
                let real = (index < other).then(|| big.inclusion(index, other));
                let ok = verify_inclusion(&leaf, index, other, &proof, &big.roots[other as usize]).is_ok();
                prop_assert_eq!(ok, real.as_ref() == Some(&proof), "size {}", other);
            } else {
                prop_assert!(verify_inclusion(&leaf, index, other, &proof, &root).is_err(), "size {other}");
            }
        }
    }

    #[test]
    fn consistency_proofs_round_trip_and_reject_every_bit_flip(size2 in 1u64..200, pick in any::<u64>(), bit in 0usize..256) {
        let tree = MemTree::with_leaves(size2);
        let size1 = pick % size2 + 1;
        let (r1, r2) = (tree.roots[size1 as usize], tree.roots[size2 as usize]);
        let proof = tree.consistency(size1, size2);
        prop_assert!(verify_consistency(size1, size2, &proof, &r1, &r2).is_ok());
        for k in 0..proof.len() {
            let mut bad = proof.clone();
            flip(&mut bad[k], bit);
            prop_assert!(verify_consistency(size1, size2, &bad, &r1, &r2).is_err());
        }
        let mut bad = r1;
        flip(&mut bad, bit);
        prop_assert!(verify_consistency(size1, size2, &proof, &bad, &r2).is_err());
        let mut bad = r2;
        flip(&mut bad, bit);
        prop_assert!(verify_consistency(size1, size2, &proof, &r1, &bad).is_err());
        // As for inclusion: a changed size is checked with that size's real root.
        let big = MemTree::with_leaves(BIG);
        let real = |s1: u64, s2: u64| (s1 >= 1 && s1 <= s2).then(|| big.consistency(s1, s2));
        for b in 0..64 {
            let other = size1 ^ (1 << b);
            if other <= BIG {
                let ok = verify_consistency(other, size2, &proof, &big.roots[other as usize], &r2).is_ok();
                prop_assert_eq!(ok, real(other, size2).as_ref() == Some(&proof), "size1 {}", other);
            } else {
                prop_assert!(verify_consistency(other, size2, &proof, &r1, &r2).is_err(), "size1 {other}");
            }
            let other = size2 ^ (1 << b);
            if other <= BIG {
                let ok = verify_consistency(size1, other, &proof, &r1, &big.roots[other as usize]).is_ok();
                prop_assert_eq!(ok, real(size1, other).as_ref() == Some(&proof), "size2 {}", other);
            } else {
                prop_assert!(verify_consistency(size1, other, &proof, &r1, &r2).is_err(), "size2 {other}");
            }
        }
    }

    #[test]
    fn frontier_reload_continues_the_same_tree(n in 0u64..300, more in 1u64..50) {
        let full = MemTree::with_leaves(n + more);
        let part = MemTree::with_leaves(n);
        // Resume from the stored frontier nodes, as Ledger::open does.
        let ids = Frontier::node_ids(n);
        let hashes = ids.iter().map(|id| part.nodes[id]).collect();
        let mut f = Frontier::from_hashes(n, hashes).unwrap();
        for i in n..n + more {
            f.push(leaf_hash(&i.to_be_bytes()), |_, _| {});
        }
        prop_assert_eq!(f.root(), full.roots[(n + more) as usize]);
    }
}

#[test]
fn proof_plans_read_logarithmically_many_nodes() {
    let size = 1_000_000u64;
    for index in [0, 1, 499_999, 999_999] {
        let plan = ProofPlan::new(&inclusion_ranges(index, size).unwrap());
        assert!(
            plan.node_ids().len() <= 40,
            "{index}: {}",
            plan.node_ids().len()
        );
    }
    let plan = ProofPlan::new(&consistency_ranges(333_333, size).unwrap());
    assert!(plan.node_ids().len() <= 60);
}

#[test]
fn leaf_encoding_is_byte_exact() {
    let leaf = Leaf {
        index: 258,
        timestamp: Timestamp::from_unix_micros(1_764_000_000_123_456),
        kind: EntryKind::Decision,
        prev_leaf_hash: [0xaa; 32],
        payload_hash: crate::entry::payload_hash(b"{}"),
    };
    let bytes = leaf.encode();
    expect!["010000000000000102000644594164224001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"]
    .assert_eq(&hex::encode(bytes));
    assert_eq!(Leaf::decode(&bytes).unwrap(), leaf);
    assert!(Leaf::decode(&bytes[..81]).is_err());
    let mut bad = bytes;
    bad[17] = 99;
    assert!(Leaf::decode(&bad).is_err());
    for kind in EntryKind::ALL {
        assert_eq!(kind.as_str().parse::<EntryKind>().unwrap(), kind);
        assert_eq!(EntryKind::from_code(kind.code()), Some(kind));
    }
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::new("lexecon.test/log", SigningKey::from_bytes(&[7u8; 32])).unwrap()
}

#[test]
fn checkpoint_notes_follow_c2sp() {
    let s = signer();
    let cp = s.sign(3, [1u8; 32]).unwrap();
    expect![[r#"
        lexecon.test/log
        3
        AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=

        — lexecon.test/log US4r61EaEx2/yWsHg0EjzC7/E8AA1L/+bKn+FNATA7qQrGDEvrKCEgeNR0gXzDuuS18qxQPZJNdoRMJYt8WWbY5lng4=
    "#]]
    .assert_eq(&cp.note);
    let v = s.verifier();
    let vkey = v.vkey();
    // Key id per signed-note: SHA-256(name || 0x0A || 0x01 || public key)[..4].
    let mut id_input = b"lexecon.test/log\n\x01".to_vec();
    id_input.extend_from_slice(
        SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .as_bytes(),
    );
    let id = hex::encode(&crate::entry::payload_hash(&id_input)[..4]);
    let mut key = vec![1u8];
    key.extend_from_slice(
        SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .as_bytes(),
    );
    assert_eq!(vkey, format!("lexecon.test/log+{id}+{}", B64.encode(key)));
    assert!(cp.note.contains(&format!(
        "\u{2014} lexecon.test/log {}",
        &B64.encode([&crate::entry::payload_hash(&id_input)[..4], &[0u8; 0]].concat())[..4]
    )));
    let parsed = NoteVerifier::from_vkey(&vkey).unwrap();
    assert_eq!(parsed, v);
    assert_eq!(
        parsed.verify(&cp.note).unwrap(),
        Checkpoint {
            origin: "lexecon.test/log".into(),
            size: 3,
            root: [1u8; 32]
        }
    );
    // A changed size, a foreign key, and a broken signature are rejected.
    assert!(v.verify(&cp.note.replacen("\n3\n", "\n4\n", 1)).is_err());
    let other =
        CheckpointSigner::new("lexecon.test/log", SigningKey::from_bytes(&[8u8; 32])).unwrap();
    assert!(other.verifier().verify(&cp.note).is_err());
    let (head, sig) = cp.note.rsplit_once(' ').unwrap();
    let mut blob = B64.decode(sig.trim_end()).unwrap();
    *blob.last_mut().unwrap() ^= 1;
    let broken = format!("{head} {}\n", B64.encode(&blob));
    assert!(matches!(
        v.verify(&broken),
        Err(crate::note::NoteError::BadSignature(_))
    ));
    // Signatures by unknown keys are ignored, as signed-note says.
    let extra = format!("{}\u{2014} someone AAAAAAAAAAAA\n", cp.note);
    assert!(v.verify(&extra).is_ok());
}

#[test]
fn rsa_cosignature_verifies_and_binds_the_body() {
    use rand::SeedableRng as _;
    // A small key keeps the test fast; production uses RSA-4096 the same way.
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let key = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let s = signer().with_rsa(key).unwrap();
    let cp = s.sign(10, [2u8; 32]).unwrap();
    assert_eq!(
        cp.note
            .lines()
            .filter(|l| l.starts_with('\u{2014}'))
            .count(),
        2
    );
    s.verifier().verify(&cp.note).unwrap();
    let rsa = s.rsa_verifier().unwrap();
    rsa.verify(&cp.note).unwrap();
    assert!(
        rsa.verify(&cp.note.replacen("\n10\n", "\n11\n", 1))
            .is_err()
    );
    assert!(
        rsa.verify(&signer().sign(10, [2u8; 32]).unwrap().note)
            .is_err()
    );
}

/// Which side-table definitions are accepted: names and conflict clauses become SQL.
#[test]
fn side_table_definitions_are_checked() {
    use crate::side::{SideTable, SideType};
    fn check(name: &'static str, column: &'static str, on_conflict: &'static str) -> bool {
        let columns: &'static [(&'static str, SideType)] =
            Box::leak(Box::new([(column, SideType::Text)]));
        SideTable {
            name,
            columns,
            on_conflict,
        }
        .check()
        .is_ok()
    }
    assert!(check("engine_events", "event", ""));
    assert!(check("_t2", "c_1", "ON CONFLICT DO NOTHING"));
    assert!(check(
        "t",
        "c",
        "ON CONFLICT (escalation_id) DO UPDATE SET state = excluded.state, idx = excluded.idx"
    ));
    assert!(!check("T", "c", ""));
    assert!(!check("2t", "c", ""));
    assert!(!check("", "c", ""));
    assert!(!check("t;", "c", ""));
    assert!(!check("t", "idx", ""));
    assert!(!check("t", "c d", ""));
    assert!(!check(&*"a".repeat(64).leak(), "c", ""));
    assert!(!check("t", "c", "ON CONFLICT DO NOTHING;"));
    assert!(!check("t", "c", "on conflict do nothing"));
    assert!(!check("t", "c", "ON CONFLICT (k) DO UPDATE SET c = 'x'"));
    assert!(!check(
        "t",
        "c",
        "ON CONFLICT (k) DO UPDATE SET c = excluded.c -- x"
    ));
    assert!(!check(
        "t",
        "c",
        "ON CONFLICT (k) DO UPDATE SET c = (select c from u)"
    ));
    assert!(!check(
        "t",
        "c",
        "ON CONFLICT (k) DO UPDATE SET c = excluded.c WHERE 1 = 1"
    ));
    assert!(!check("t", "c", "RETURNING idx"));
    let twice: &'static [(&'static str, SideType)] = &[("c", SideType::Text), ("c", SideType::Int)];
    assert!(
        SideTable {
            name: "t",
            columns: twice,
            on_conflict: ""
        }
        .check()
        .is_err()
    );
}
