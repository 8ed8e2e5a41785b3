//! Query and path parameters to a JSON request object.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind};
use serde_json::{Map, Value};

use crate::{JsonError, Method};

/// The parameter name a field is filled from: its alias when it has one, else its name.
fn param_name<'a>(field: &'a FieldDescriptor, aliases: &'a [(&'a str, &'a str)]) -> &'a str {
    aliases
        .iter()
        .find(|(_, target)| *target == field.name())
        .map_or(field.name(), |(param, _)| *param)
}

/// Whether a field can come from a query or path parameter (scalars, enums,
/// timestamps, and lists of those; not maps or nested messages).
pub(crate) fn takes_param(field: &FieldDescriptor) -> bool {
    if field.is_map() {
        return false;
    }
    match field.kind() {
        Kind::Message(desc) => desc.full_name() == "google.protobuf.Timestamp",
        _ => true,
    }
}

/// The accepted parameter names of `method` with `aliases`, in field order.
pub(crate) fn accepted(method: &Method, aliases: &[(&str, &str)]) -> Vec<String> {
    method
        .input()
        .fields()
        .filter(takes_param)
        .map(|f| param_name(&f, aliases).to_owned())
        .collect()
}

pub(crate) fn to_value(
    method: &Method,
    params: &BTreeMap<String, Vec<String>>,
    aliases: &[(&str, &str)],
) -> Result<Value, JsonError> {
    let input = method.input();
    let mut obj = Map::new();
    for (name, values) in params {
        let target = aliases
            .iter()
            .find(|(param, _)| param == name)
            .map_or(name.as_str(), |(_, field)| *field);
        let field = input
            .get_field_by_name(target)
            .or_else(|| input.get_field_by_json_name(target))
            .filter(takes_param)
            // A field with an alias is filled from the alias only.
            .filter(|f| target != name.as_str() || !aliases.iter().any(|(_, t)| *t == f.name()));
        let Some(field) = field else {
            let accepted = accepted(method, aliases);
            return Err(JsonError {
                field: Some(name.clone()),
                message: format!(
                    "{name} is not a parameter of {}; accepted parameters: {}{}",
                    method.name(),
                    if accepted.is_empty() {
                        "none".to_owned()
                    } else {
                        accepted.join(", ")
                    },
                    if input.fields().any(|f| !takes_param(&f)) {
                        format!(
                            " (send the other fields as a JSON body to POST /v1/{})",
                            method.name()
                        )
                    } else {
                        String::new()
                    }
                ),
            });
        };
        let kind = field.kind();
        let value = if field.is_list() {
            Value::Array(
                values
                    .iter()
                    .map(|v| scalar(&kind, v, name))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            match values.as_slice() {
                [] => continue,
                [one] => scalar(&kind, one, name)?,
                more => {
                    return Err(JsonError {
                        field: Some(name.clone()),
                        message: format!(
                            "{name} is given {} times; give it once (it is not a list)",
                            more.len()
                        ),
                    });
                }
            }
        };
        obj.insert(field.name().to_owned(), value);
    }
    Ok(Value::Object(obj))
}

/// One parameter's text as the JSON value its field's type reads.
fn scalar(kind: &Kind, text: &str, name: &str) -> Result<Value, JsonError> {
    let bad = |what: &str| JsonError {
        field: Some(name.to_owned()),
        message: format!("{name}: expected {what}, got {text:?}"),
    };
    Ok(match kind {
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => Value::from(
            text.parse::<u64>()
                .map_err(|_| bad("an unsigned integer"))?,
        ),
        Kind::Double | Kind::Float => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::from(f),
            _ => Value::String(text.to_owned()),
        },
        Kind::Enum(_) => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(text.to_owned()),
        },
        Kind::String | Kind::Bytes | Kind::Message(_) => Value::String(text.to_owned()),
    })
}
