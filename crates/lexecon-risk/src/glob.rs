//! Full-match globs for tool patterns: `*` is any run of characters, `?` one.
//!
//! A pattern matches the whole name or nothing (no substring or prefix matching by
//! accident); names compare ASCII case-insensitively, patterns are stored lowercase.

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
    use super::matches;

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
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), name.as_bytes()),
                want,
                "{pattern:?} vs {name:?}"
            );
        }
    }
}
