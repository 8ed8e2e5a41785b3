//! Case-insensitive, full-match glob patterns for model names: `*` is any run of
//! characters (including none), `?` exactly one, everything else itself.
//!
//! A pattern without wildcards matches only the identical name (ignoring case): `gpt-4`
//! never matches `gpt-4o`. That is the point: no prefix or substring match by accident.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    chars: Vec<char>,
    literal: bool,
}

impl Glob {
    /// Compiles `pattern`; the text is kept for messages.
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
        let literal = !chars.iter().any(|c| matches!(c, '*' | '?'));
        Glob {
            source: pattern.to_owned(),
            chars,
            literal,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// The number of non-wildcard characters: how specific the pattern is.
    pub fn specificity(&self) -> usize {
        self.chars
            .iter()
            .filter(|c| !matches!(c, '*' | '?'))
            .count()
    }

    /// True when the whole of `name` (already lowercased) matches.
    pub fn matches_lowercase(&self, name: &[char]) -> bool {
        let p = &self.chars;
        let (mut pi, mut ni) = (0usize, 0usize);
        // Where the last `*` was and which name position it is currently absorbing up to.
        let mut star: Option<(usize, usize)> = None;
        while ni < name.len() {
            match (p.get(pi), name.get(ni)) {
                (Some('*'), _) => {
                    star = Some((pi, ni));
                    pi += 1;
                }
                (Some('?'), Some(_)) => {
                    pi += 1;
                    ni += 1;
                }
                (Some(pc), Some(nc)) if pc == nc => {
                    pi += 1;
                    ni += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        pi = sp + 1;
                        ni = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
    }

    /// True when the whole of `name` matches, ignoring case.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_lowercase(&lower_chars(name))
    }
}

/// `name` lowercased, as characters, for repeated matching.
pub(crate) fn lower_chars(name: &str) -> Vec<char> {
    name.chars().flat_map(char::to_lowercase).collect()
}
