//! Paged answers and their opaque cursors.
//!
//! A cursor is `base64url("v1:<index>")`: the last position an answer returned, so the
//! next page starts strictly after it. Callers treat it as opaque; a malformed one is
//! INVALID_ARGUMENT naming the field.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::EngineError;

/// The page size used when a request gives 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page any list answers.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// The token for the next page; empty on the last page.
    pub next_page_token: String,
}

/// The opaque token for a page that continues after `position`.
pub(crate) fn encode_cursor(position: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{position}"))
}

/// The position a page token continues after; `None` for an empty token (the first page).
pub(crate) fn decode_cursor(token: &str, field: &str) -> Result<Option<u64>, EngineError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        EngineError::InvalidArgument(format!(
            "{field}: not a page token this server issued; pass the next_page_token of the previous answer, or nothing for the first page"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let position = text.strip_prefix("v1:").ok_or_else(bad)?;
    position.parse::<u64>().map(Some).map_err(|_| bad())
}

/// The page size a request asks for: 0 means [`DEFAULT_PAGE_SIZE`]; more than
/// [`MAX_PAGE_SIZE`] is INVALID_ARGUMENT naming the field.
pub(crate) fn page_size(requested: u32, field: &str) -> Result<usize, EngineError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n <= MAX_PAGE_SIZE => Ok(n as usize),
        n => Err(EngineError::InvalidArgument(format!(
            "{field}: {n} is more than {MAX_PAGE_SIZE}; ask for at most {MAX_PAGE_SIZE} and follow next_page_token"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_name_the_field() {
        for n in [0, 1, 42, u64::MAX] {
            assert_eq!(
                decode_cursor(&encode_cursor(n), "page_token").unwrap(),
                Some(n)
            );
        }
        assert_eq!(decode_cursor("", "page_token").unwrap(), None);
        for bad in ["!!", "djE6", "djI6MQ", "djE6LTE"] {
            let err = decode_cursor(bad, "page_token").unwrap_err();
            assert!(err.to_string().starts_with("page_token:"), "{bad}: {err}");
        }
        assert_eq!(page_size(0, "page_size").unwrap(), 100);
        assert_eq!(page_size(1000, "page_size").unwrap(), 1000);
        assert!(
            page_size(1001, "page_size")
                .unwrap_err()
                .to_string()
                .contains("page_size")
        );
    }
}
