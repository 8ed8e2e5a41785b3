//! Finding the terms a value matches without trying every pattern: literal patterns in
//! a hash map, globs bucketed by their literal prefix (or suffix), the rest in a list.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use lexecon_core::Glob;

/// FNV-1a: keys are short strings chosen by the policy author, not by callers, so a
/// fast non-keyed hash is safe here and several times cheaper than SipHash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Term numbers by pattern, for one request attribute.
#[derive(Debug, Default)]
pub(crate) struct PatternIndex {
    exact: FastMap<Box<str>, Vec<u32>>,
    by_prefix: FastMap<Box<str>, Vec<(Glob, u32)>>,
    /// Distinct lengths of the prefixes in `by_prefix`, ascending: a value is looked up
    /// once per length, so the cost depends on how many lengths there are, not on how
    /// many patterns.
    prefix_lens: Vec<usize>,
    by_suffix: FastMap<Box<str>, Vec<(Glob, u32)>>,
    suffix_lens: Vec<usize>,
    /// Globs with neither a literal prefix nor suffix (`*`, `*x*`, `?`): tried on every value.
    rest: Vec<(Glob, u32)>,
}

impl PatternIndex {
    pub(crate) fn insert(&mut self, glob: Glob, term: u32) {
        if glob.is_literal() {
            self.exact
                .entry(glob.as_str().into())
                .or_default()
                .push(term);
            return;
        }
        let prefix = glob.literal_prefix();
        let suffix = glob.literal_suffix();
        if !prefix.is_empty() {
            if !self.prefix_lens.contains(&prefix.len()) {
                self.prefix_lens.push(prefix.len());
                self.prefix_lens.sort_unstable();
            }
            let key: Box<str> = prefix.into();
            self.by_prefix.entry(key).or_default().push((glob, term));
        } else if !suffix.is_empty() {
            if !self.suffix_lens.contains(&suffix.len()) {
                self.suffix_lens.push(suffix.len());
                self.suffix_lens.sort_unstable();
            }
            let key: Box<str> = suffix.into();
            self.by_suffix.entry(key).or_default().push((glob, term));
        } else {
            self.rest.push((glob, term));
        }
    }

    /// Appends to `out` every term whose pattern matches the whole of `value`.
    pub(crate) fn lookup(&self, value: &str, out: &mut Vec<u32>) {
        if let Some(terms) = self.exact.get(value) {
            out.extend_from_slice(terms);
        }
        for &len in &self.prefix_lens {
            if len > value.len() {
                break;
            }
            if let Some(bucket) = value.get(..len).and_then(|p| self.by_prefix.get(p)) {
                out.extend(
                    bucket
                        .iter()
                        .filter(|(g, _)| g.matches(value))
                        .map(|&(_, t)| t),
                );
            }
        }
        for &len in &self.suffix_lens {
            if len > value.len() {
                break;
            }
            let start = value.len() - len;
            if let Some(bucket) = value.get(start..).and_then(|s| self.by_suffix.get(s)) {
                out.extend(
                    bucket
                        .iter()
                        .filter(|(g, _)| g.matches(value))
                        .map(|&(_, t)| t),
                );
            }
        }
        out.extend(
            self.rest
                .iter()
                .filter(|(g, _)| g.matches(value))
                .map(|&(_, t)| t),
        );
    }
}
