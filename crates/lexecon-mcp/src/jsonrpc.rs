//! The message classifier: reads a JSON-RPC message only as far as the gateway needs
//! (`method`, `id`, `params.name`, `params.arguments`, `params._meta`, and whether it
//! is a response) and keeps the original bytes, so whatever it does not govern is
//! relayed exactly as it arrived, including messages of newer protocol versions.
//!
//! A message is refused (never relayed) when the gateway cannot be sure what the
//! upstream would make of it: JSON that does not parse, an object with a member twice
//! (`{"method":"ping","method":"tools/call"}`), a `method` that is not a string, an id
//! that is neither a string nor a number.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// JSON-RPC: invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC (implementation range): the gateway or its upstream could not answer.
pub const GATEWAY_ERROR: i64 = -32000;

/// The key under which a host may send the user's intent in `params._meta` of a
/// `tools/call`; the gateway copies it into the decision's `user_intent`.
pub const INTENT_META_KEY: &str = "lexecon/intent";

/// A JSON-RPC id: its text as sent (echoed back verbatim) and a canonical key that
/// matches the same id however it was spelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    raw: String,
    key: String,
}

impl Id {
    /// The id of a string or number, or `None` for anything else (null included).
    pub fn from_raw(raw: &RawValue) -> Option<Id> {
        let value: Value = serde_json::from_str(raw.get()).ok()?;
        match value {
            Value::String(_) | Value::Number(_) => Some(Id {
                raw: raw.get().to_owned(),
                key: crate::canonical::to_string(&value),
            }),
            _ => None,
        }
    }

    /// The id's JSON text as the peer sent it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The id as canonical JSON: `1`, `1.0` and `1e0` are one key, `"1"` another.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A well-formed `tools/call` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The request id.
    pub id: Id,
    /// `params.name`.
    pub name: String,
    /// `params.arguments` (an empty object when absent or null).
    pub arguments: serde_json::Map<String, Value>,
    /// `params._meta["lexecon/intent"]`, when it is a string.
    pub intent: Option<String>,
}

/// What one JSON-RPC message is, as far as the gateway cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A `tools/call` request with a name and object arguments: decided before it
    /// may reach the upstream.
    ToolCall(ToolCall),
    /// A `tools/list` request: its response may be filtered.
    ToolsList {
        /// The request id.
        id: Id,
    },
    /// Any other request: relayed; its response is awaited.
    Request {
        /// The request id.
        id: Id,
    },
    /// A notification (no id): relayed.
    Notification,
    /// A response (`result` or `error`, no `method`): relayed to whoever asked.
    Response {
        /// The id it answers; `None` for `null`.
        id: Option<Id>,
    },
    /// Not relayable. The answer is a JSON-RPC error with `code` and `message`, sent
    /// with `id` (or `null`) when the message was a request; nothing is forwarded.
    Refused {
        /// The request's id, when it could be read.
        id: Option<Id>,
        /// The JSON-RPC error code.
        code: i64,
        /// What is wrong, naming the field.
        message: String,
        /// Whether the peer expects an answer (a request, or an unreadable message).
        answer: bool,
    },
}

/// One classified message and the exact bytes it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// The message's bytes as received.
    pub raw: &'a str,
    /// What it is.
    pub kind: Kind,
}

/// A line as the classifier sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified<'a> {
    /// One message.
    Single(Message<'a>),
    /// A JSON-RPC batch (a non-empty array), element by element.
    Batch(Vec<Message<'a>>),
    /// Nothing to do (an empty or blank line).
    Blank,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<&'a RawValue>,
}

fn refused(id: Option<Id>, code: i64, message: impl Into<String>, answer: bool) -> Kind {
    Kind::Refused {
        id,
        code,
        message: message.into(),
        answer,
    }
}

/// Classifies one line (one newline-delimited message, or one HTTP body).
pub fn classify(line: &[u8]) -> Classified<'_> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Classified::Single(Message {
            raw: "",
            kind: refused(
                None,
                PARSE_ERROR,
                "parse error: the message is not UTF-8",
                true,
            ),
        });
    };
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Classified::Blank;
    }
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Vec<&RawValue>>(trimmed) {
            Ok(items) if items.is_empty() => Classified::Single(Message {
                raw: trimmed,
                kind: refused(None, INVALID_REQUEST, "invalid request: empty batch", true),
            }),
            Ok(items) => Classified::Batch(
                items
                    .into_iter()
                    .map(|item| Message {
                        raw: item.get(),
                        kind: classify_object(item.get()),
                    })
                    .collect(),
            ),
            Err(e) => Classified::Single(Message {
                raw: trimmed,
                kind: parse_or_invalid(trimmed, &e),
            }),
        };
    }
    Classified::Single(Message {
        raw: trimmed,
        kind: classify_object(trimmed),
    })
}

fn parse_or_invalid(text: &str, e: &serde_json::Error) -> Kind {
    if serde_json::from_str::<&RawValue>(text).is_err() {
        refused(None, PARSE_ERROR, format!("parse error: {e}"), true)
    } else {
        refused(None, INVALID_REQUEST, format!("invalid request: {e}"), true)
    }
}

/// Classifies one message (not a batch).
fn classify_object(text: &str) -> Kind {
    if !text.starts_with('{') {
        return match serde_json::from_str::<&RawValue>(text) {
            Err(e) => refused(None, PARSE_ERROR, format!("parse error: {e}"), true),
            Ok(_) => refused(
                None,
                INVALID_REQUEST,
                "invalid request: a JSON-RPC message is an object",
                true,
            ),
        };
    }
    let env: Envelope<'_> = match serde_json::from_str(text) {
        Ok(env) => env,
        Err(e) => return parse_or_invalid(text, &e),
    };
    let id = env.id.map(|raw| (raw, Id::from_raw(raw)));
    let Some(method) = env.method else {
        if env.result.is_some() || env.error.is_some() {
            return Kind::Response {
                id: id.and_then(|(_, id)| id),
            };
        }
        return refused(
            id.and_then(|(_, id)| id),
            INVALID_REQUEST,
            "invalid request: the message has neither method nor result nor error",
            true,
        );
    };
    let id = match id {
        None => {
            if method == "tools/call" {
                // A tools/call the upstream might run but that could not be answered:
                // never forwarded.
                return refused(
                    None,
                    INVALID_REQUEST,
                    "invalid request: tools/call must be a request with an id",
                    false,
                );
            }
            return Kind::Notification;
        }
        Some((_, Some(id))) => id,
        Some((_, None)) => {
            return refused(
                None,
                INVALID_REQUEST,
                "invalid request: id must be a string or a number",
                true,
            );
        }
    };
    match method.as_ref() {
        "tools/call" => tool_call(id, env.params),
        "tools/list" => Kind::ToolsList { id },
        _ => Kind::Request { id },
    }
}

fn tool_call(id: Id, params: Option<&RawValue>) -> Kind {
    let invalid = |id: Id, message: String| refused(Some(id), INVALID_PARAMS, message, true);
    let Some(params) = params else {
        return invalid(
            id,
            "invalid params: tools/call needs params.name".to_owned(),
        );
    };
    let params: CallParams<'_> = match serde_json::from_str(params.get()) {
        Ok(p) => p,
        Err(e) => {
            return invalid(
                id,
                format!("invalid params: params must be an object with name and arguments ({e})"),
            );
        }
    };
    let name = match params.name.map(|n| serde_json::from_str::<Value>(n.get())) {
        Some(Ok(Value::String(name))) if !name.is_empty() => name,
        Some(Ok(Value::String(_))) => {
            return invalid(id, "invalid params: params.name is empty".to_owned());
        }
        None | Some(Ok(Value::Null)) => {
            return invalid(
                id,
                "invalid params: tools/call needs params.name".to_owned(),
            );
        }
        Some(_) => {
            return invalid(
                id,
                "invalid params: params.name must be a string".to_owned(),
            );
        }
    };
    let arguments = match params
        .arguments
        .map(|a| serde_json::from_str::<Value>(a.get()))
    {
        None | Some(Ok(Value::Null)) => serde_json::Map::new(),
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(_)) => {
            return invalid(
                id,
                "invalid params: params.arguments must be an object".to_owned(),
            );
        }
        Some(Err(e)) => return invalid(id, format!("invalid params: params.arguments: {e}")),
    };
    let intent = match params.meta.map(|m| serde_json::from_str::<Value>(m.get())) {
        None | Some(Ok(Value::Null)) => None,
        Some(Ok(Value::Object(meta))) => match meta.get(INTENT_META_KEY) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        Some(_) => {
            return invalid(
                id,
                "invalid params: params._meta must be an object".to_owned(),
            );
        }
    };
    Kind::ToolCall(ToolCall {
        id,
        name,
        arguments,
        intent,
    })
}

/// A JSON-RPC error response.
pub fn error_response(id: Option<&Id>, code: i64, message: &str) -> String {
    let id = id.map_or("null", Id::raw);
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".to_owned());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

/// A successful `tools/call` response whose result is an error the model can read:
/// `{"content":[{"type":"text","text":...}],"isError":true}`.
pub fn tool_error_result(id: &Id, text: &str) -> String {
    let result = serde_json::json!({
        "content": [{"type": "text", "text": text}],
        "isError": true,
    });
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.raw(),
        result
    )
}

/// Splits a response into its members, each kept as raw JSON, so that one of them can
/// be changed and the rest written back unchanged. `None` when it is not an object.
pub fn members(text: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    let raw: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).ok()?;
    Some(raw.into_iter().collect())
}

/// Writes members back as one JSON object.
pub fn join_members(members: &[(String, Box<RawValue>)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(line: &str) -> Kind {
        match classify(line.as_bytes()) {
            Classified::Single(m) => {
                assert_eq!(m.raw, line.trim());
                m.kind
            }
            other => panic!("not a single message: {other:?}"),
        }
    }

    fn id(text: &str) -> Id {
        let raw: &RawValue = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        Id::from_raw(raw).unwrap_or_else(|| panic!("not an id: {text}"))
    }

    #[test]
    fn tool_calls_are_read_completely() {
        let kind = single(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/a"},"_meta":{"lexecon/intent":"look","progressToken":1}}}"#,
        );
        let Kind::ToolCall(call) = kind else {
            panic!("not a call: {kind:?}")
        };
        assert_eq!(call.id, id("7"));
        assert_eq!(call.name, "read_file");
        assert_eq!(call.arguments.get("path"), Some(&Value::from("/tmp/a")));
        assert_eq!(call.intent.as_deref(), Some("look"));
    }

    #[test]
    fn arguments_may_be_absent_or_null() {
        for line in [
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"now"}}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"now","arguments":null}}"#,
        ] {
            let Kind::ToolCall(call) = single(line) else {
                panic!("not a call: {line}")
            };
            assert!(call.arguments.is_empty());
            assert_eq!(call.id.raw(), "\"a\"");
        }
    }

    #[test]
    fn bad_tool_calls_are_invalid_params_naming_the_field() {
        for (line, field) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
                "params.name",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                "params.name",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
                "params.name",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
                "params.arguments",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":"{}"}}"#,
                "params.arguments",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","name":"y"}}"#,
                "params",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#,
                "params",
            ),
        ] {
            match single(line) {
                Kind::Refused {
                    id: Some(got),
                    code,
                    message,
                    answer: true,
                } => {
                    assert_eq!(got, id("1"), "{line}");
                    assert_eq!(code, INVALID_PARAMS, "{line}");
                    assert!(message.contains(field), "{line}: {message}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_messages_are_relayed_by_kind() {
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"x"}}"#),
            Kind::ToolsList { id: id("1") }
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}"#),
            Kind::Request { id: id("2") }
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":3,"method":"some/future_method","params":{"x":[1]}}"#),
            Kind::Request { id: id("3") }
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Kind::Notification
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":4,"result":{"roots":[]}}"#),
            Kind::Response { id: Some(id("4")) }
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#),
            Kind::Response { id: None }
        );
        // A method name is matched exactly as the upstream would read it, escapes included.
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":5,"method":"tools\/call","params":{"name":"a"}}"#),
            Kind::ToolCall(_)
        ));
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":6,"method":"Tools/call"}"#),
            Kind::Request { id: id("6") }
        );
    }

    #[test]
    fn ids_match_however_they_are_spelled() {
        assert_eq!(id("1").key(), id("1.0").key());
        assert_eq!(id("1").key(), id("1e0").key());
        assert_ne!(id("1").key(), id("\"1\"").key());
        assert_eq!(id("\"\\u0061\"").key(), id("\"a\"").key());
        assert_eq!(id("1.0").raw(), "1.0");
    }

    #[test]
    fn unreadable_messages_are_refused() {
        for (line, code, answer) in [
            ("{not json", PARSE_ERROR, true),
            ("{\"id\":1,\"method\":\"ping\"", PARSE_ERROR, true),
            ("42", INVALID_REQUEST, true),
            ("\"tools/call\"", INVALID_REQUEST, true),
            ("[]", INVALID_REQUEST, true),
            (r#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST, true),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                INVALID_REQUEST,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
                INVALID_REQUEST,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"tools/call"}"#,
                INVALID_REQUEST,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
                INVALID_REQUEST,
                true,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
                INVALID_REQUEST,
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"x"}}"#,
                INVALID_REQUEST,
                false,
            ),
        ] {
            match single(line) {
                Kind::Refused {
                    code: got,
                    answer: got_answer,
                    ..
                } => {
                    assert_eq!(got, code, "{line}");
                    assert_eq!(got_answer, answer, "{line}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        match classify(b"{\"id\":1,\"method\":\"\xff\"}") {
            Classified::Single(Message {
                kind: Kind::Refused { code, .. },
                ..
            }) => assert_eq!(code, PARSE_ERROR),
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(b"  \r"), Classified::Blank);
    }

    #[test]
    fn batches_are_classified_element_by_element_keeping_their_bytes() {
        let line = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}, {"jsonrpc":"2.0","method":"notifications/x"},{"id":2,"result":{}}, 5]"#;
        let Classified::Batch(items) = classify(line.as_bytes()) else {
            panic!("not a batch")
        };
        assert_eq!(items.len(), 4);
        assert!(matches!(&items[0].kind, Kind::ToolCall(c) if c.name == "a"));
        assert_eq!(
            items[1].raw,
            r#"{"jsonrpc":"2.0","method":"notifications/x"}"#
        );
        assert_eq!(items[1].kind, Kind::Notification);
        assert_eq!(items[2].kind, Kind::Response { id: Some(id("2")) });
        assert!(matches!(
            items[3].kind,
            Kind::Refused {
                code: INVALID_REQUEST,
                ..
            }
        ));
    }

    #[test]
    fn answers_are_well_formed() {
        let v: Value =
            serde_json::from_str(&error_response(Some(&id("\"x\"")), PARSE_ERROR, "a \"b\""))
                .unwrap_or_default();
        assert_eq!(v["id"], "x");
        assert_eq!(v["error"]["code"], PARSE_ERROR);
        assert_eq!(v["error"]["message"], "a \"b\"");
        let v: Value =
            serde_json::from_str(&error_response(None, INVALID_REQUEST, "m")).unwrap_or_default();
        assert_eq!(v["id"], Value::Null);
        let v: Value =
            serde_json::from_str(&tool_error_result(&id("3"), "denied")).unwrap_or_default();
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(v["result"]["content"][0]["text"], "denied");
        assert_eq!(v["id"], 3);
    }

    #[test]
    fn members_round_trip() {
        let m = members(r#"{"b": [1, 2], "a": {"x": 1}}"#).unwrap_or_default();
        assert_eq!(join_members(&m), r#"{"a":{"x": 1},"b":[1, 2]}"#);
        assert!(members("[1]").is_none());
    }
}
