//! Full-match globs for tool patterns: `*` is any run of characters, `?` one.
//!
//! A pattern matches the whole name or nothing (no substring or prefix matching by
//! accident); names compare ASCII case-insensitively, patterns are stored lowercase.

/// A pattern sorted by shape, so the common ones (`db`, `db_*`, `*_db`) cost one
/// comparison instead of a wildcard walk.
#[derive(Debug)]
pub(crate) enum Glob {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    General(Box<[u8]>),
}

fn literal(bytes: &[u8]) -> bool {
    !bytes.iter().any(|&b| b == b'*' || b == b'?')
}

impl Glob {
    /// Compiles a lowercase pattern.
    pub(crate) fn new(pattern: &str) -> Self {
        let p = pattern.as_bytes();
        if literal(p) {
            return Glob::Exact(p.into());
        }
        if let Some(head) = p.strip_suffix(b"*").filter(|h| literal(h)) {
            return Glob::Prefix(head.into());
        }
        if let Some(tail) = p.strip_prefix(b"*").filter(|t| literal(t)) {
            return Glob::Suffix(tail.into());
        }
        Glob::General(p.into())
    }

    /// A byte every matching name starts with (lowercased), if the pattern fixes one.
    pub(crate) fn first_byte(&self) -> Option<u8> {
        match self {
            Glob::Exact(lit) | Glob::Prefix(lit) => lit.first().copied(),
            Glob::Suffix(_) | Glob::General(_) => None,
        }
    }

    /// A byte every matching name ends with (lowercased), if the pattern fixes one.
    pub(crate) fn last_byte(&self) -> Option<u8> {
        match self {
            Glob::Suffix(lit) => lit.last().copied(),
            Glob::Exact(_) | Glob::Prefix(_) | Glob::General(_) => None,
        }
    }

    /// Whether the pattern matches all of `name`, ASCII case-insensitively.
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        match self {
            Glob::Exact(lit) => name.eq_ignore_ascii_case(lit),
            Glob::Prefix(lit) => name
                .get(..lit.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(lit)),
            Glob::Suffix(lit) => name
                .len()
                .checked_sub(lit.len())
                .and_then(|start| name.get(start..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(lit)),
            Glob::General(pattern) => matches(pattern, name),
        }
    }
}

/// Whether `pattern` (lowercase) matches all of `name`.
pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // The classic linear-time wildcard match: on a mismatch, resume just after the
    // last `*`, letting it swallow one more byte of `name`.
    let (mut p, mut n) = (0usize, 0usize);
    let mut resume: Option<(usize, usize)> = None;
    while n < name.len() {
        match (pattern.get(p), name.get(n)) {
            (Some(b'*'), _) => {
                resume = Some((p, n));
                p += 1;
            }
            (Some(&pc), Some(&nc)) if pc == b'?' || pc == nc.to_ascii_lowercase() => {
                p += 1;
                n += 1;
            }
            _ => match resume {
                Some((star, from)) => {
                    p = star + 1;
                    n = from + 1;
                    resume = Some((star, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::{Glob, matches};

    #[test]
    fn full_match_only() {
        let cases = [
            ("shell", "shell", true),
            ("shell", "SHELL", true),
            ("shell", "shells", false),
            ("shell", "myshell", false),
            ("*_shell", "my_shell", true),
            ("*_shell", "_shell", true),
            ("*_shell", "shell", false),
            ("db_*", "db_", true),
            ("db_*", "db", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*b*c", "abcbc", true),
            ("?", "", false),
            ("?", "x", true),
            ("*", "", true),
            ("**", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("s?ell", "shell", true),
            ("db_*", "DB_MAIN", true),
            ("*_db", "MY_DB", true),
            ("*_db", "_d", false),
            ("db_*", "d", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), name.as_bytes()),
                want,
                "{pattern:?} vs {name:?}"
            );
            let glob = Glob::new(pattern);
            assert_eq!(glob.matches(name.as_bytes()), want, "{glob:?} vs {name:?}");
        }
    }
}
