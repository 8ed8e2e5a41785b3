//! The policy version hash: SHA-256 over a canonical encoding of the parsed policy.
//!
//! The encoding uses [`lexecon_core::canonical::Writer`] (big-endian fixed-width
//! integers, `u32`-length-prefixed strings, `u32`-count-prefixed sequences) and is,
//! field by field:
//!
//! 1. the domain tag `lexecon/policy/v1`;
//! 2. `name`, `version` (strings), `mode` (`u8`: permissive 1, strict 2, paranoid 3);
//! 3. the terms, **sorted by id**: count, then for each `id` (string), `kind` (`u8`:
//!    actor 1, action 2, tool 3, data_class 4, resource 5, context 6), `match`
//!    (string), `description` (optional string);
//! 4. the relations, **sorted by id**: count, then for each `id`, `kind` (`u8`: permits
//!    1, forbids 2, requires 3, implies 4, conflicts 5), `from`, `to` (strings), then
//!    its `when`: `tools` (`0x00` if absent, else `0x01` and the sorted, de-duplicated
//!    list of patterns), `max_risk_level` (`u8`, 0 if absent), `data_classes_within`
//!    (as `tools`), `context` (count, then key and pattern for each key in byte order).
//!
//! So comments, whitespace, key order, the order in which terms and relations are
//! declared, and the order or repetition of patterns in a `when` list do not change the
//! hash; any change to what the policy decides, or to a name, version or description, does.

use lexecon_core::PolicyMode;
use lexecon_core::canonical::Writer;
use sha2::{Digest, Sha256};

use crate::model::{Policy, When};

/// The domain tag of the policy encoding.
pub const POLICY_HASH_DOMAIN: &str = "lexecon/policy/v1";

fn mode_code(mode: PolicyMode) -> u8 {
    match mode {
        PolicyMode::Permissive => 1,
        PolicyMode::Strict => 2,
        PolicyMode::Paranoid => 3,
    }
}

fn set(w: &mut Writer, list: Option<&[String]>) {
    match list {
        None => {
            w.u8(0);
        }
        Some(list) => {
            let mut sorted: Vec<&str> = list.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            sorted.dedup();
            w.u8(1).seq(sorted.len());
            for s in sorted {
                w.str(s);
            }
        }
    }
}

fn when(w: &mut Writer, when: &When) {
    set(w, when.tools.as_deref());
    w.u8(when.max_risk_level.unwrap_or(0));
    set(w, when.data_classes_within.as_deref());
    w.seq(when.context.len());
    for (k, v) in &when.context {
        w.str(k).str(v);
    }
}

/// The canonical bytes the version hash is taken over.
pub(crate) fn canonical_bytes(policy: &Policy) -> Vec<u8> {
    let mut w = Writer::new(POLICY_HASH_DOMAIN);
    w.str(&policy.name)
        .str(&policy.version)
        .u8(mode_code(policy.mode));
    let mut terms: Vec<_> = policy.terms.iter().collect();
    terms.sort_by(|a, b| a.id.cmp(&b.id));
    w.seq(terms.len());
    for t in terms {
        w.str(&t.id)
            .u8(t.kind.code())
            .str(&t.pattern)
            .opt_str(t.description.as_deref());
    }
    let mut relations: Vec<_> = policy.relations.iter().collect();
    relations.sort_by(|a, b| a.id.cmp(&b.id));
    w.seq(relations.len());
    for r in relations {
        w.str(&r.id).u8(r.kind.code()).str(&r.from).str(&r.to);
        when(&mut w, &r.when);
    }
    w.finish()
}

/// SHA-256 of [`canonical_bytes`].
pub(crate) fn policy_hash(policy: &Policy) -> [u8; 32] {
    Sha256::digest(canonical_bytes(policy)).into()
}
