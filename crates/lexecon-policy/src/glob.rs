//! Full-match glob patterns (`*` and `?`), compiled once and matched without allocating.

use std::fmt;

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// This exact character.
    Char(char),
    /// Exactly one character (`?`).
    One,
    /// Any run of characters, including none (`*`).
    Star,
}

/// A compiled full-match glob.
///
/// `*` matches any run of characters (including none, including `:`), `?` exactly one
/// character, and every other character itself, case-sensitively. The pattern must match
/// the *whole* value: `ai_agent:support` does not match `ai_agent:support_bot`, and
/// `support` does not match `ai_agent:support`.
///
/// ```
/// use lexecon_policy::Glob;
///
/// let g = Glob::new("ai_agent:customer_*").unwrap();
/// assert!(g.matches("ai_agent:customer_service"));
/// assert!(!g.matches("ai_agent:customer"));
/// assert!(!g.matches("xai_agent:customer_service"));
/// assert!(Glob::new("read:?").unwrap().matches("read:x"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: Box<str>,
    toks: Box<[Tok]>,
}

/// A pattern that cannot be compiled; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// The pattern is empty; it could match nothing.
    #[error("pattern is empty; write the value to match, or `*` for any value")]
    Empty,
    /// The pattern holds a character no value of its field can contain.
    #[error(
        "pattern contains {ch:?}, which no {field} can contain (patterns support only `*` and `?` as wildcards; allowed are {allowed})"
    )]
    BadChar {
        /// The offending character.
        ch: char,
        /// The field the pattern is matched against.
        field: &'static str,
        /// The alphabet of that field, in words.
        allowed: &'static str,
    },
}

/// Which values a pattern is matched against, so impossible patterns are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alphabet {
    /// Actor, action, tool and data class names (see `lexecon_core` names).
    Name(&'static str),
    /// Context values: anything but control characters.
    Text(&'static str),
}

const NAME_CHARS: &str = "ASCII letters, digits and . _ - : / @ + =";

impl Alphabet {
    fn check(self, c: char) -> Result<(), GlobError> {
        let ok = match self {
            Alphabet::Name(_) => {
                c.is_ascii_alphanumeric()
                    || matches!(c, '.' | '_' | '-' | ':' | '/' | '@' | '+' | '=')
            }
            Alphabet::Text(_) => !c.is_control(),
        };
        if ok {
            return Ok(());
        }
        let (field, allowed) = match self {
            Alphabet::Name(field) => (field, NAME_CHARS),
            Alphabet::Text(field) => (field, "any character but control characters"),
        };
        Err(GlobError::BadChar {
            ch: c,
            field,
            allowed,
        })
    }
}

impl Glob {
    /// Compiles `pattern`, accepting any non-empty pattern without control characters.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        Glob::for_field(pattern, Alphabet::Text("value"))
    }

    /// Compiles `pattern`, refusing characters that no value of the field can contain.
    pub(crate) fn for_field(pattern: &str, alphabet: Alphabet) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut toks = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let tok = match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                c => {
                    alphabet.check(c)?;
                    Tok::Char(c)
                }
            };
            // `**` means the same as `*`; keeping one keeps matching linear-ish.
            if tok == Tok::Star && toks.last() == Some(&Tok::Star) {
                continue;
            }
            toks.push(tok);
        }
        Ok(Glob {
            source: pattern.into(),
            toks: toks.into_boxed_slice(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard, so it matches exactly one value: itself.
    pub fn is_literal(&self) -> bool {
        self.toks.iter().all(|t| matches!(t, Tok::Char(_)))
    }

    /// The literal text before the first wildcard.
    pub(crate) fn literal_prefix(&self) -> &str {
        let end = self.source.find(['*', '?']).unwrap_or(self.source.len());
        self.source.get(..end).unwrap_or("")
    }

    /// The literal text after the last wildcard.
    pub(crate) fn literal_suffix(&self) -> &str {
        let start = self.source.rfind(['*', '?']).map_or(0, |i| i + 1);
        self.source.get(start..).unwrap_or("")
    }

    /// Whether the pattern matches the whole of `value`.
    pub fn matches(&self, value: &str) -> bool {
        // The classic two-pointer wildcard match: on a mismatch, retry from the last
        // `*` with it swallowing one more character. No recursion, no allocation.
        let toks = &self.toks;
        let (mut p, mut v) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        loop {
            let ch = value.get(v..).and_then(|rest| rest.chars().next());
            match (toks.get(p), ch) {
                (Some(Tok::Star), _) => {
                    p += 1;
                    star = Some((p, v));
                    continue;
                }
                (Some(Tok::One), Some(c)) => {
                    p += 1;
                    v += c.len_utf8();
                    continue;
                }
                (Some(Tok::Char(pc)), Some(c)) if *pc == c => {
                    p += 1;
                    v += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            match star {
                Some((sp, sv)) => {
                    let Some(c) = value.get(sv..).and_then(|rest| rest.chars().next()) else {
                        return false;
                    };
                    let nv = sv + c.len_utf8();
                    star = Some((sp, nv));
                    p = sp;
                    v = nv;
                }
                None => return false,
            }
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
