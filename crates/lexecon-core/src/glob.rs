//! Full-match glob patterns (`*` and `?`), compiled once and matched without allocating.
//!
//! One matcher for every crate that grants by pattern (policy terms, API-key actor
//! bindings), so a pattern means the same thing wherever it is written.

use std::fmt;

use crate::names::{IDENT_CHARS, is_ident_char};

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
/// use lexecon_core::Glob;
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
///
/// The `&'static str` is the field's name as error messages show it (`actor`, `tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alphabet {
    /// Actor, action, tool and data class names: the alphabet of [`crate::Actor`] and
    /// its siblings.
    Name(&'static str),
    /// Free text such as context values: anything but control characters.
    Text(&'static str),
}

impl Alphabet {
    fn check(self, c: char) -> Result<(), GlobError> {
        let ok = match self {
            Alphabet::Name(_) => u8::try_from(c).is_ok_and(is_ident_char),
            Alphabet::Text(_) => !c.is_control(),
        };
        if ok {
            return Ok(());
        }
        let (field, allowed) = match self {
            Alphabet::Name(field) => (field, IDENT_CHARS),
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

    /// Compiles `pattern`, refusing characters that no value of the field can contain
    /// (a pattern with one could never match, which is almost always a typo).
    pub fn for_field(pattern: &str, alphabet: Alphabet) -> Result<Glob, GlobError> {
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

    /// The literal text before the first wildcard (all of it for a literal pattern).
    pub fn literal_prefix(&self) -> &str {
        let end = self.source.find(['*', '?']).unwrap_or(self.source.len());
        self.source.get(..end).unwrap_or("")
    }

    /// The literal text after the last wildcard (all of it for a literal pattern).
    pub fn literal_suffix(&self) -> &str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_values_only() {
        let cases = [
            ("ai_agent:customer_*", "ai_agent:customer_service", true),
            ("ai_agent:customer_*", "ai_agent:customer_", true),
            ("ai_agent:customer_*", "ai_agent:customer", false),
            ("ai_agent:customer_*", "xai_agent:customer_service", false),
            ("customer", "ai_agent:customer", false),
            ("customer", "customers", false),
            ("customer", "Customer", false),
            ("actor", "actor", true),
            ("*", "", true),
            ("*", "a:b:c", true),
            ("a*b", "a:x:b", true),
            ("a*b", "a:x:bc", false),
            ("a*b*c", "abxbxc", true),
            ("a*b*c", "abxbxcx", false),
            ("*a", "baa", true),
            ("read:?", "read:x", true),
            ("read:?", "read:", false),
            ("read:?", "read:xy", false),
            ("?", "é", true),
            ("??", "é", false),
            ("eu-*", "eu-west", true),
            ("eu-*", "us-eu-west", false),
            ("*-*-*", "a-b", false),
            ("**", "anything", true),
        ];
        for (pattern, value, want) in cases {
            let g = Glob::new(pattern).unwrap();
            assert_eq!(g.matches(value), want, "{pattern:?} vs {value:?}");
        }
    }

    #[test]
    fn alphabets_refuse_patterns_that_could_never_match() {
        let actor = Alphabet::Name("actor");
        assert!(Glob::for_field("ai_agent:support_*", actor).is_ok());
        assert!(Glob::for_field("svc/billing@eu-west-1?+=.", actor).is_ok());
        for (bad, ch) in [("a b", ' '), ("é*", 'é'), ("x\t", '\t')] {
            assert_eq!(
                Glob::for_field(bad, actor).unwrap_err(),
                GlobError::BadChar {
                    ch,
                    field: "actor",
                    allowed: IDENT_CHARS
                },
                "{bad:?}"
            );
        }
        let text = Alphabet::Text("context value");
        assert!(Glob::for_field("a b é", text).is_ok());
        assert!(Glob::new("a b é").is_ok());
        assert!(Glob::for_field("a\u{7}", text).is_err());
        assert_eq!(Glob::new("").unwrap_err(), GlobError::Empty);
        assert_eq!(
            Glob::for_field("a b", actor).unwrap_err().to_string(),
            "pattern contains ' ', which no actor can contain (patterns support only `*` and `?` \
             as wildcards; allowed are ASCII letters, digits and . _ - : / @ + =)"
        );
    }

    #[test]
    fn literal_parts_and_literalness() {
        let check = |p: &str, literal: bool, prefix: &str, suffix: &str| {
            let g = Glob::new(p).unwrap();
            assert_eq!(
                (g.is_literal(), g.literal_prefix(), g.literal_suffix()),
                (literal, prefix, suffix),
                "{p:?}"
            );
            assert_eq!(g.as_str(), p);
            assert_eq!(g.to_string(), p);
        };
        check("ai_agent:bot", true, "ai_agent:bot", "ai_agent:bot");
        check("ai_agent:*", false, "ai_agent:", "");
        check("*:bot", false, "", ":bot");
        check("a?b*c", false, "a", "c");
        check("*", false, "", "");
    }

    /// Full-match glob by plain recursion: `*` any run, `?` one character.
    fn naive(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| naive(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && naive(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && naive(rest, &v[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_naive_matching(pattern in "[ab:é*?]{1,8}", value in "[ab:é]{0,8}") {
            let p: Vec<char> = pattern.chars().collect();
            let v: Vec<char> = value.chars().collect();
            proptest::prop_assert_eq!(Glob::new(&pattern).unwrap().matches(&value), naive(&p, &v));
        }
    }
}
