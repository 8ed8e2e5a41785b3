//! Canonical bytes for hashing and signing.
//!
//! One encoding, used wherever bytes are hashed or signed (policy version hashes,
//! ledger leaves, capability token payloads), so that equal values always give equal
//! bytes and no two different values give the same bytes:
//!
//! - integers are fixed-width big-endian (`u8`, `u32`, `u64`, `i64` as two's complement);
//! - byte strings and UTF-8 strings are a `u32` big-endian length followed by the bytes;
//! - optional values are a `0x00` byte, or `0x01` followed by the value;
//! - a sequence is its `u32` length followed by its items.
//!
//! Each encoding starts with a domain tag (a length-prefixed string such as
//! `lexecon/policy/v1`) so bytes meant for one purpose cannot be replayed as another.

/// Bytes ended before a value, a length ran past the end, or text was not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("input ends at byte {at} inside a value")]
    Truncated {
        /// Where the value started.
        at: usize,
    },
    /// A string value is not UTF-8.
    #[error("string at byte {at} is not UTF-8")]
    NotUtf8 {
        /// Where the string started.
        at: usize,
    },
    /// A tag or flag byte had a value the format does not define.
    #[error("unexpected value at byte {at}: {what}")]
    Unexpected {
        /// Where.
        at: usize,
        /// What was expected.
        what: &'static str,
    },
    /// Bytes remain after the last value.
    #[error("{extra} unexpected bytes after the end")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// Writes values in the canonical encoding.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

fn len32(len: usize) -> u32 {
    // Every value we encode is far below 4 GiB; saturate rather than wrap so an
    // absurd value can never alias a shorter one.
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Writer {
    /// A writer whose output starts with the domain tag `domain`.
    pub fn new(domain: &str) -> Self {
        let mut w = Writer {
            buf: Vec::with_capacity(256),
        };
        w.str(domain);
        w
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a `u32`, big-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u64`, big-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends an `i64`, big-endian two's complement.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(len32(v.len()));
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Appends an optional string: `0x00`, or `0x01` and the string.
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(s) => self.u8(1).str(s),
        }
    }

    /// Appends a sequence length; the caller writes the items after it.
    pub fn seq(&mut self, len: usize) -> &mut Self {
        self.u32(len32(len))
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Reads values written by [`Writer`], rejecting anything malformed.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader that first checks the domain tag is `domain`.
    pub fn new(buf: &'a [u8], domain: &str) -> Result<Self, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        if r.str()? != domain {
            return Err(DecodeError::Unexpected {
                at: 0,
                what: "domain tag",
            });
        }
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let end = at.checked_add(n).ok_or(DecodeError::Truncated { at })?;
        let out = self.buf.get(at..end).ok_or(DecodeError::Truncated { at })?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let at = self.pos;
        self.take(N)?
            .try_into()
            .map_err(|_| DecodeError::Truncated { at })
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::NotUtf8 { at })
    }

    /// Reads an optional string.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(DecodeError::Unexpected {
                at,
                what: "0 or 1 for an optional value",
            }),
        }
    }

    /// Reads a sequence length.
    pub fn seq(&mut self) -> Result<usize, DecodeError> {
        Ok(self.u32()? as usize)
    }

    /// Succeeds only when every byte has been read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos.min(self.buf.len()) {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_as_documented() {
        let mut w = Writer::new("d");
        w.u8(7)
            .u32(1)
            .u64(2)
            .i64(-1)
            .str("hé")
            .opt_str(None)
            .opt_str(Some(""))
            .seq(3);
        let expected: Vec<u8> = [
            &[0, 0, 0, 1, b'd'][..],
            &[7],
            &[0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 2],
            &[0xff; 8],
            &[0, 0, 0, 3, b'h', 0xc3, 0xa9],
            &[0],
            &[1, 0, 0, 0, 0],
            &[0, 0, 0, 3],
        ]
        .concat();
        assert_eq!(w.finish(), expected);
    }

    #[test]
    fn round_trips_and_rejects_wrong_domain_and_trailing_bytes() {
        let mut w = Writer::new("lexecon/test/v1");
        w.str("a").opt_str(Some("b")).u64(9);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, "lexecon/test/v1").unwrap();
        assert_eq!(r.str().unwrap(), "a");
        assert_eq!(r.opt_str().unwrap(), Some("b"));
        assert_eq!(r.u64().unwrap(), 9);
        r.finish().unwrap();
        assert!(Reader::new(&bytes, "lexecon/other/v1").is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = Reader::new(&longer, "lexecon/test/v1").unwrap();
        r.str().unwrap();
        r.opt_str().unwrap();
        r.u64().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn concatenations_do_not_collide() {
        let enc = |a: &str, b: &str| {
            let mut w = Writer::new("t");
            w.str(a).str(b);
            w.finish()
        };
        assert_ne!(enc("ab", "c"), enc("a", "bc"));
    }

    proptest::proptest! {
        #[test]
        fn reader_never_panics_on_garbage(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(mut r) = Reader::new(&bytes, "t") {
                let _ = r.str();
                let _ = r.opt_str();
                let _ = r.u64();
                let _ = r.finish();
            }
        }
    }
}
