//! JSON ⇄ protobuf by descriptor: the request check-and-rewrite walk, the response
//! writer, and the enum name rules.

use std::fmt::Write as _;

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, ReflectMessage as _, SerializeOptions, Value as PValue,
};
use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::JsonError;

/// How deeply request messages may nest inside each other. Our messages nest at most a
/// few levels; serde_json refuses more than 128 levels of JSON nesting before this.
pub(crate) const MAX_DEPTH: usize = 32;

/// Well-known types (`google.protobuf.Timestamp`) have their own JSON forms, which
/// prost-reflect reads and writes.
pub(crate) fn is_well_known(desc: &MessageDescriptor) -> bool {
    desc.full_name().starts_with("google.protobuf.")
}

// ---------------------------------------------------------------- enum names

/// `PolicyMode` → `POLICY_MODE`: the prefix every value of the enum carries (followed by
/// `_`), by the protobuf style guide.
pub(crate) fn screaming_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars.get(i - 1).copied().unwrap_or('_');
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The short lowercase name of an enum value: `OUTCOME_APPROVED` → `approved`. A value
/// without the enum's prefix (none in lexecon.v1; a test checks) is just lowercased.
pub(crate) fn short_name(enum_desc: &EnumDescriptor, value_name: &str) -> String {
    let prefix = screaming_snake(enum_desc.name());
    value_name
        .strip_prefix(prefix.as_str())
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(value_name)
        .to_ascii_lowercase()
}

/// The number of the value `given` names: a short name or a full name, in any case.
pub(crate) fn resolve_enum(enum_desc: &EnumDescriptor, given: &str) -> Option<i32> {
    let upper = given.to_ascii_uppercase();
    if let Some(value) = enum_desc.get_value_by_name(&upper) {
        return Some(value.number());
    }
    let full = format!("{}_{upper}", screaming_snake(enum_desc.name()));
    enum_desc.get_value_by_name(&full).map(|v| v.number())
}

/// `permissive, strict, paranoid` (the values a caller would send; `unspecified` last).
pub(crate) fn short_names(enum_desc: &EnumDescriptor) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut zero = None;
    for value in enum_desc.values() {
        let short = short_name(enum_desc, value.name());
        if value.number() == 0 {
            zero = Some(short);
        } else {
            names.push(short);
        }
    }
    names.extend(zero);
    names
}

// ---------------------------------------------------------------- requests

/// A JSON body to the message's protobuf encoding (empty body: the empty message).
pub(crate) fn decode_body(desc: &MessageDescriptor, json: &[u8]) -> Result<Vec<u8>, JsonError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(json).map_err(|e| JsonError {
        field: None,
        message: format!(
            "the body is not valid JSON ({e}); send one JSON object with the fields of {}",
            desc.name()
        ),
    })?;
    encode_value(desc, value)
}

/// A JSON value to the message's protobuf encoding, with every rule of the JSON API.
pub(crate) fn encode_value(
    desc: &MessageDescriptor,
    mut value: Value,
) -> Result<Vec<u8>, JsonError> {
    let Value::Object(obj) = &mut value else {
        return Err(JsonError {
            field: None,
            message: format!(
                "the body must be a JSON object with the fields of {}, not {}",
                desc.name(),
                describe(&value)
            ),
        });
    };
    let mut path = String::new();
    check_message(desc, obj, &mut path, 0)?;
    // The walk above has checked every type, so conversion rarely fails: convert
    // without path tracking, and only on failure again with it, for the field path.
    let options = DeserializeOptions::new();
    let message = match DynamicMessage::deserialize_with_options(desc.clone(), &value, &options) {
        Ok(message) => message,
        Err(_) => {
            let mut track = serde_path_to_error::Track::new();
            let de = serde_path_to_error::Deserializer::new(&value, &mut track);
            let e = match DynamicMessage::deserialize_with_options(desc.clone(), de, &options) {
                Ok(message) => return Ok(message.encode_to_vec()),
                Err(e) => e,
            };
            let path = track.path().to_string();
            return Err(if path.is_empty() || path == "." {
                JsonError {
                    field: None,
                    message: format!("the body is not a valid {}: {e}", desc.name()),
                }
            } else {
                JsonError {
                    message: format!("{path}: {e}"),
                    field: Some(path),
                }
            });
        }
    };
    Ok(message.encode_to_vec())
}

fn at(path: &str, message: String) -> JsonError {
    JsonError {
        field: Some(path.to_owned()),
        message,
    }
}

/// `"high"`, `an object`, ...: what the caller sent, for error messages (bounded).
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("{shown:?}")
        }
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// The field names of `desc`, for "known fields: ..." messages.
pub(crate) fn field_list(desc: &MessageDescriptor) -> String {
    let mut out = String::new();
    for field in desc.fields() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(field.name());
    }
    if out.is_empty() {
        out.push_str("none: send {}");
    }
    out
}

/// Checks every field of `obj` against `desc` (unknown fields, JSON types, enum names)
/// and rewrites enum names to numbers, so that prost-reflect only converts.
fn check_message(
    desc: &MessageDescriptor,
    obj: &mut Map<String, Value>,
    path: &mut String,
    depth: usize,
) -> Result<(), JsonError> {
    if depth > MAX_DEPTH {
        return Err(at(
            path,
            format!("{path}: messages nest deeper than {MAX_DEPTH} levels; send a flatter body"),
        ));
    }
    for (key, value) in obj.iter_mut() {
        let len = path.len();
        push_key(path, key);
        let Some(field) = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key))
        else {
            return Err(at(
                path,
                format!(
                    "{path} is not a field of {}; known fields: {}",
                    desc.name(),
                    field_list(desc)
                ),
            ));
        };
        if !value.is_null() {
            check_field(&field, value, path, depth)?;
        }
        path.truncate(len);
    }
    Ok(())
}

fn check_field(
    field: &FieldDescriptor,
    value: &mut Value,
    path: &mut String,
    depth: usize,
) -> Result<(), JsonError> {
    let kind = field.kind();
    if field.is_map() {
        let Value::Object(map) = value else {
            return Err(at(
                path,
                format!(
                    "{path}: expected an object (a map of keys to values), got {}",
                    describe(value)
                ),
            ));
        };
        let Some(entry) = kind.as_message() else {
            return Ok(());
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        for (key, item) in map.iter_mut() {
            let len = path.len();
            push_key(path, key);
            let key_ok = match key_kind {
                Kind::String => true,
                Kind::Bool => key == "true" || key == "false",
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => key.parse::<i32>().is_ok(),
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => key.parse::<i64>().is_ok(),
                Kind::Uint32 | Kind::Fixed32 => key.parse::<u32>().is_ok(),
                Kind::Uint64 | Kind::Fixed64 => key.parse::<u64>().is_ok(),
                _ => false,
            };
            if !key_ok {
                return Err(at(
                    path,
                    format!("{path}: the key {key:?} is not a valid {key_kind:?} key"),
                ));
            }
            if item.is_null() {
                return Err(at(path, format!("{path}: map values may not be null")));
            }
            check_kind(&value_kind, item, path, depth)?;
            path.truncate(len);
        }
        return Ok(());
    }
    if field.is_list() {
        let Value::Array(items) = value else {
            return Err(at(
                path,
                format!("{path}: expected an array, got {}", describe(value)),
            ));
        };
        for (i, item) in items.iter_mut().enumerate() {
            let len = path.len();
            let _ = write!(path, "[{i}]");
            if item.is_null() {
                return Err(at(path, format!("{path}: array elements may not be null")));
            }
            check_kind(&kind, item, path, depth)?;
            path.truncate(len);
        }
        return Ok(());
    }
    check_kind(&kind, value, path, depth)
}

fn check_kind(
    kind: &Kind,
    value: &mut Value,
    path: &mut String,
    depth: usize,
) -> Result<(), JsonError> {
    match kind {
        Kind::Message(desc) => {
            if is_well_known(desc) {
                if desc.full_name() == "google.protobuf.Timestamp" && !value.is_string() {
                    return Err(at(
                        path,
                        format!(
                            "{path}: expected an RFC 3339 timestamp string such as \"2026-01-31T12:00:00Z\", got {}",
                            describe(value)
                        ),
                    ));
                }
                return Ok(());
            }
            match value {
                Value::Object(obj) => check_message(desc, obj, path, depth + 1),
                other => Err(at(
                    path,
                    format!(
                        "{path}: expected an object ({}), got {}",
                        desc.name(),
                        describe(other)
                    ),
                )),
            }
        }
        Kind::Enum(enum_desc) => check_enum(enum_desc, value, path),
        Kind::Bool => match value {
            Value::Bool(_) => Ok(()),
            other => Err(at(
                path,
                format!("{path}: expected true or false, got {}", describe(other)),
            )),
        },
        Kind::String => match value {
            Value::String(_) => Ok(()),
            other => Err(at(
                path,
                format!("{path}: expected a string, got {}", describe(other)),
            )),
        },
        Kind::Bytes => match value {
            Value::String(_) => Ok(()),
            other => Err(at(
                path,
                format!("{path}: expected a base64 string, got {}", describe(other)),
            )),
        },
        Kind::Double | Kind::Float => match value {
            Value::Number(_) => Ok(()),
            Value::String(s)
                if s.parse::<f64>().is_ok()
                    || matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") =>
            {
                Ok(())
            }
            other => Err(at(
                path,
                format!("{path}: expected a number, got {}", describe(other)),
            )),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => check_int(
            value,
            path,
            i128::from(i32::MIN),
            i128::from(i32::MAX),
            "a signed 32-bit integer",
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => check_int(
            value,
            path,
            i128::from(i64::MIN),
            i128::from(i64::MAX),
            "a signed 64-bit integer (a number or a string of digits)",
        ),
        Kind::Uint32 | Kind::Fixed32 => check_int(
            value,
            path,
            0,
            i128::from(u32::MAX),
            "an unsigned integer (0 to 4294967295)",
        ),
        Kind::Uint64 | Kind::Fixed64 => check_int(
            value,
            path,
            0,
            i128::from(u64::MAX),
            "an unsigned integer (0 to 18446744073709551615, a number or a string of digits)",
        ),
    }
}

/// The integer a JSON number or string holds, when it holds one exactly.
fn integer_of(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else {
                let f = n.as_f64()?;
                // Integral floats within ±2^63 convert exactly enough to range-check.
                (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i128)
            }
        }
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            s.parse::<i128>().ok()
        }
        _ => None,
    }
}

fn check_int(value: &Value, path: &str, min: i128, max: i128, what: &str) -> Result<(), JsonError> {
    match integer_of(value) {
        Some(i) if i >= min && i <= max => Ok(()),
        _ => Err(at(
            path,
            format!("{path}: expected {what}, got {}", describe(value)),
        )),
    }
}

fn check_enum(enum_desc: &EnumDescriptor, value: &mut Value, path: &str) -> Result<(), JsonError> {
    let resolved = match value {
        Value::String(s) => resolve_enum(enum_desc, s),
        Value::Number(_) => integer_of(value).and_then(|i| i32::try_from(i).ok()),
        _ => None,
    };
    match resolved {
        Some(number) => {
            *value = Value::from(number);
            Ok(())
        }
        None => {
            let example = enum_desc
                .values()
                .find(|v| v.number() != 0)
                .map(|v| v.name().to_owned())
                .unwrap_or_default();
            Err(at(
                path,
                format!(
                    "{path}: {} is not a {}; send one of {} (or a full name such as {example}, or its number)",
                    describe(value),
                    enum_desc.name(),
                    short_names(enum_desc).join(", ")
                ),
            ))
        }
    }
}

// ---------------------------------------------------------------- responses

/// The options for well-known types, which prost-reflect writes itself.
fn wkt_options() -> SerializeOptions {
    SerializeOptions::new()
        .skip_default_fields(false)
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true)
}

/// A message's protobuf encoding to compact JSON.
pub(crate) fn encode_json(
    desc: &MessageDescriptor,
    protobuf: &[u8],
    what: &str,
) -> Result<Vec<u8>, JsonError> {
    let message = DynamicMessage::decode(desc.clone(), protobuf).map_err(|e| JsonError {
        field: None,
        message: format!("the {what} is not a valid {} message: {e}", desc.name()),
    })?;
    let mut out = Vec::with_capacity(protobuf.len() * 2 + 64);
    serde_json::to_writer(&mut out, &OutMessage(&message)).map_err(|e| JsonError {
        field: None,
        message: format!("the {what} could not be written as JSON: {e}"),
    })?;
    Ok(out)
}

/// Writes a message as the JSON API does: proto field names, every field without
/// presence even at its default, 64-bit integers as strings, enums by short name, map
/// keys in order.
struct OutMessage<'a>(&'a DynamicMessage);

impl Serialize for OutMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let desc = self.0.descriptor();
        if is_well_known(&desc) {
            return self.0.serialize_with_options(serializer, &wkt_options());
        }
        let mut map = serializer.serialize_map(Some(desc.fields().len()))?;
        for field in desc.fields() {
            if field.supports_presence() && !self.0.has_field(&field) {
                continue;
            }
            let value = self.0.get_field(&field);
            let kind = field.kind();
            if field.is_map() {
                let value_kind = kind
                    .as_message()
                    .map(|entry| entry.map_entry_value_field().kind())
                    .unwrap_or(Kind::String);
                map.serialize_entry(
                    field.name(),
                    &OutValue {
                        kind: &value_kind,
                        value: &value,
                    },
                )?;
            } else {
                map.serialize_entry(
                    field.name(),
                    &OutValue {
                        kind: &kind,
                        value: &value,
                    },
                )?;
            }
        }
        map.end()
    }
}

/// One value; for lists and maps, `kind` is the kind of the elements.
struct OutValue<'a> {
    kind: &'a Kind,
    value: &'a PValue,
}

fn map_key_string(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(i) => i.to_string(),
        MapKey::I64(i) => i.to_string(),
        MapKey::U32(u) => u.to_string(),
        MapKey::U64(u) => u.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn serialize_float<S: Serializer>(serializer: S, value: f64) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(value)
    } else if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value > 0.0 {
        serializer.serialize_str("Infinity")
    } else {
        serializer.serialize_str("-Infinity")
    }
}

impl Serialize for OutValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            PValue::Bool(b) => serializer.serialize_bool(*b),
            PValue::I32(i) => serializer.serialize_i32(*i),
            PValue::U32(u) => serializer.serialize_u32(*u),
            PValue::I64(i) => serializer.collect_str(i),
            PValue::U64(u) => serializer.collect_str(u),
            PValue::F32(f) => {
                if f.is_finite() {
                    serializer.serialize_f32(*f)
                } else {
                    serialize_float(serializer, f64::from(*f))
                }
            }
            PValue::F64(f) => serialize_float(serializer, *f),
            PValue::String(s) => serializer.serialize_str(s),
            PValue::Bytes(b) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            PValue::EnumNumber(n) => match self.kind {
                Kind::Enum(enum_desc) => match enum_desc.get_value(*n) {
                    Some(v) => serializer.serialize_str(&short_name(enum_desc, v.name())),
                    None => serializer.serialize_i32(*n),
                },
                _ => serializer.serialize_i32(*n),
            },
            PValue::Message(m) => OutMessage(m).serialize(serializer),
            PValue::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&OutValue {
                        kind: self.kind,
                        value: item,
                    })?;
                }
                seq.end()
            }
            PValue::Map(entries) => {
                let mut sorted: Vec<(&MapKey, &PValue)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                let mut map = serializer.serialize_map(Some(sorted.len()))?;
                for (key, value) in sorted {
                    map.serialize_entry(
                        &map_key_string(key),
                        &OutValue {
                            kind: self.kind,
                            value,
                        },
                    )?;
                }
                map.end()
            }
        }
    }
}
