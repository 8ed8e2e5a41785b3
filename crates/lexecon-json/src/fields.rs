//! Which request field a server error message is about.

use prost_reflect::{Kind, MessageDescriptor};

/// The field path `message` begins with (`llm.user_id must ...` → `llm.user_id`), when
/// its first segment is a field of `input` and every further segment that can be
/// checked names a field too.
pub(crate) fn field_of_message(input: &MessageDescriptor, message: &str) -> Option<String> {
    let end = message
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']')))
        .unwrap_or(message.len());
    let token = message.get(..end)?.trim_end_matches('.');
    if token.is_empty() {
        return None;
    }
    // What the previous segment leads to: a message to look fields up in, the values of
    // a map (any key is fine), or a scalar (no further segment).
    enum Next {
        Message(MessageDescriptor),
        MapValues(Kind),
        Scalar,
    }
    let mut next = Next::Message(input.clone());
    for segment in token.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (segment.get(..i)?, segment.get(i..)?),
            None => (segment, ""),
        };
        if name.is_empty() || !valid_indexes(indexes) {
            return None;
        }
        let (kind, is_list, is_map) = match &next {
            Next::Message(desc) => {
                let field = desc
                    .get_field_by_name(name)
                    .or_else(|| desc.get_field_by_json_name(name))?;
                (field.kind(), field.is_list(), field.is_map())
            }
            Next::MapValues(kind) => (kind.clone(), false, false),
            Next::Scalar => return None,
        };
        if !indexes.is_empty() && !is_list {
            return None;
        }
        next = if is_map {
            match kind.as_message() {
                Some(entry) => Next::MapValues(entry.map_entry_value_field().kind()),
                None => Next::Scalar,
            }
        } else {
            match kind {
                Kind::Message(desc) if !crate::transcode::is_well_known(&desc) => {
                    Next::Message(desc)
                }
                _ => Next::Scalar,
            }
        };
    }
    Some(token.to_owned())
}

/// `""`, `[1]`, `[1][2]`: list indexes after a field name.
fn valid_indexes(mut rest: &str) -> bool {
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return false;
        };
        let Some(close) = inner.find(']') else {
            return false;
        };
        let digits = inner.get(..close).unwrap_or_default();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        rest = inner.get(close + 1..).unwrap_or_default();
    }
    true
}
