//! How a `tools/call` becomes a decision request: the `[[mcp.tools]]` rows, the
//! request id, the arguments' digest and the context arguments (contract §11).

use std::collections::BTreeMap;

use lexecon_core::Glob;
use lexecon_engine::config::{McpConfig, McpToolRule};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::decider::{DecisionRequest, Probe};
use crate::jsonrpc::{Id, ToolCall};

/// Context key: the upstream's name.
pub const CONTEXT_SERVER: &str = "mcp.server";
/// Context key: hex SHA-256 of the canonical JSON arguments.
pub const CONTEXT_ARGS_SHA256: &str = "mcp.args_sha256";
/// A context argument longer than this (in bytes, as text) is sent as its digest.
pub const MAX_CONTEXT_ARG_BYTES: usize = 256;

/// The gateway's settings: the `[mcp]` table, with its rows compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Leave always-denied tools out of `tools/list`.
    pub hide_denied: bool,
    /// How long an escalated call waits for people, in seconds.
    pub escalation_wait_secs: u64,
    /// Record arguments and results in completion entries.
    pub record_payloads: bool,
    rows: Vec<(Glob, McpToolRule)>,
}

impl Settings {
    /// Compiles the `[mcp]` table; a bad row is an error naming it.
    pub fn new(config: &McpConfig) -> Result<Settings, String> {
        if config.escalation_wait_secs > 3_600 {
            return Err(format!(
                "mcp.escalation_wait_secs must be at most 3600 seconds, got {}",
                config.escalation_wait_secs
            ));
        }
        let mut rows = Vec::with_capacity(config.tools.len());
        for (i, row) in config.tools.iter().enumerate() {
            let glob = Glob::new(&row.pattern)
                .map_err(|e| format!("mcp.tools[{i}].match {:?}: {e}", row.pattern))?;
            if let Some(level) = row.risk_level.filter(|l| !(1..=5).contains(l)) {
                return Err(format!(
                    "mcp.tools[{i}].risk_level must be 1..5, got {level}"
                ));
            }
            if let Some(mode) = row
                .mode
                .as_deref()
                .filter(|m| !["permissive", "strict", "paranoid"].contains(m))
            {
                return Err(format!(
                    "mcp.tools[{i}].mode must be permissive, strict or paranoid, got {mode:?}"
                ));
            }
            rows.push((glob, row.clone()));
        }
        Ok(Settings {
            hide_denied: config.hide_denied,
            escalation_wait_secs: config.escalation_wait_secs,
            record_payloads: config.record_payloads,
            rows,
        })
    }

    /// The first row whose `match` fits `NAME/TOOL`.
    pub fn row(&self, tool: &str) -> Option<&McpToolRule> {
        self.rows
            .iter()
            .find(|(glob, _)| glob.matches(tool))
            .map(|(_, row)| row)
    }

    /// The decision request for `call` through upstream `server` in `session`.
    pub fn request(
        &self,
        server: &str,
        actor: &str,
        session: Option<&[u8]>,
        call: &ToolCall,
    ) -> DecisionRequest {
        let tool = format!("{server}/{}", call.name);
        let row = self.row(&tool);
        let arguments = Value::Object(call.arguments.clone());
        let mut context = BTreeMap::new();
        for name in row.map(|r| r.context_args.as_slice()).unwrap_or_default() {
            if let Some(value) = call.arguments.get(name) {
                context.insert(name.clone(), context_value(value));
            }
        }
        // The gateway's own keys win over an argument of the same name.
        context.insert(CONTEXT_SERVER.to_owned(), server.to_owned());
        context.insert(
            CONTEXT_ARGS_SHA256.to_owned(),
            crate::canonical::sha256_hex(&arguments),
        );
        DecisionRequest {
            actor: actor.to_owned(),
            action: action(row, &call.name),
            tool,
            user_intent: call.intent.clone().unwrap_or_default(),
            data_classes: row.map(|r| r.data_classes.clone()).unwrap_or_default(),
            risk_level: row.and_then(|r| r.risk_level).map_or(0, u32::from),
            mode: row.and_then(|r| r.mode.clone()),
            context,
            request_id: session.map(|s| request_id(s, &call.id)).unwrap_or_default(),
        }
    }

    /// The `tools/list` probe for tool `name` of upstream `server`.
    pub fn probe(&self, server: &str, name: &str) -> Probe {
        let tool = format!("{server}/{name}");
        let row = self.row(&tool);
        Probe {
            action: action(row, name),
            data_classes: row.map(|r| r.data_classes.clone()).unwrap_or_default(),
            risk_level: row.and_then(|r| r.risk_level).map_or(0, u32::from),
            mode: row.and_then(|r| r.mode.clone()),
            context: BTreeMap::from([(CONTEXT_SERVER.to_owned(), server.to_owned())]),
            tool,
        }
    }
}

fn action(row: Option<&McpToolRule>, name: &str) -> String {
    row.and_then(|r| r.action.clone())
        .unwrap_or_else(|| format!("call:{name}"))
}

/// `request_id` = hex SHA-256 of the session bytes followed by the id's canonical JSON.
pub fn request_id(session: &[u8], id: &Id) -> String {
    let mut hasher = Sha256::new();
    hasher.update(session);
    hasher.update(id.key().as_bytes());
    hex::encode(hasher.finalize())
}

/// A context argument: a JSON scalar as text (a string without its quotes), or the
/// hex SHA-256 of its canonical JSON when it is an object, an array, longer than
/// [`MAX_CONTEXT_ARG_BYTES`], or a string with control characters (which context
/// values cannot hold).
pub fn context_value(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null | Value::Bool(_) | Value::Number(_) => crate::canonical::to_string(value),
        Value::Array(_) | Value::Object(_) => return crate::canonical::sha256_hex(value),
    };
    if text.len() > MAX_CONTEXT_ARG_BYTES || text.chars().any(char::is_control) {
        crate::canonical::sha256_hex(value)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(pattern: &str) -> McpToolRule {
        McpToolRule {
            pattern: pattern.to_owned(),
            action: None,
            data_classes: Vec::new(),
            context_args: Vec::new(),
            risk_level: None,
            mode: None,
        }
    }

    fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_str(id).unwrap_or_else(|e| panic!("{e}"));
        ToolCall {
            id: Id::from_raw(&raw).unwrap_or_else(|| panic!("bad id")),
            name: name.to_owned(),
            arguments: arguments.as_object().cloned().unwrap_or_default(),
            intent: None,
        }
    }

    fn settings(rows: Vec<McpToolRule>) -> Settings {
        Settings::new(&McpConfig {
            tools: rows,
            ..McpConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn request_id_is_the_digest_of_session_and_canonical_id() {
        let c1 = call("1", "x", json!({}));
        let c1f = call("1.0", "x", json!({}));
        let cs = call("\"1\"", "x", json!({}));
        assert_eq!(request_id(b"s", &c1.id), request_id(b"s", &c1f.id));
        assert_ne!(request_id(b"s", &c1.id), request_id(b"s", &cs.id));
        assert_ne!(request_id(b"s", &c1.id), request_id(b"t", &c1.id));
        let want = hex::encode(Sha256::digest(b"session\"7\""));
        assert_eq!(
            request_id(b"session", &call("\"7\"", "x", json!({})).id),
            want
        );
    }

    #[test]
    fn unmatched_tools_are_call_tool_with_the_server_and_args_digest() {
        let s = settings(vec![]);
        let c = call("3", "get_time", json!({"timezone": "UTC"}));
        let r = s.request("time", "agent:a", Some(b"sess"), &c);
        assert_eq!(r.tool, "time/get_time");
        assert_eq!(r.action, "call:get_time");
        assert_eq!(r.actor, "agent:a");
        assert!(r.data_classes.is_empty());
        assert_eq!(r.risk_level, 0);
        assert_eq!(r.mode, None);
        assert_eq!(r.context.len(), 2);
        assert_eq!(r.context[CONTEXT_SERVER], "time");
        assert_eq!(
            r.context[CONTEXT_ARGS_SHA256],
            hex::encode(Sha256::digest(br#"{"timezone":"UTC"}"#))
        );
        assert_eq!(r.request_id, request_id(b"sess", &c.id));
        assert_eq!(s.request("time", "a", None, &c).request_id, "");
    }

    #[test]
    fn the_first_matching_row_applies() {
        let mut write = rule("files/write_*");
        write.action = Some("write:files".to_owned());
        write.data_classes = vec!["internal".to_owned()];
        write.context_args = vec![
            "path".to_owned(),
            "content".to_owned(),
            "opts".to_owned(),
            "n".to_owned(),
            "missing".to_owned(),
            "mcp.server".to_owned(),
        ];
        write.risk_level = Some(3);
        write.mode = Some("strict".to_owned());
        let mut any = rule("files/*");
        any.action = Some("read:files".to_owned());
        let s = settings(vec![write, any]);
        let long = "x".repeat(300);
        let c = call(
            "1",
            "write_file",
            json!({"path": "/srv/a.txt", "content": long, "opts": {"b": 1, "a": [true]}, "n": 2.50, "mcp.server": "forged"}),
        );
        let r = s.request("files", "agent:a", Some(b"s"), &c);
        assert_eq!(r.action, "write:files");
        assert_eq!(r.data_classes, vec!["internal"]);
        assert_eq!(r.risk_level, 3);
        assert_eq!(r.mode.as_deref(), Some("strict"));
        assert_eq!(r.context["path"], "/srv/a.txt");
        assert_eq!(
            r.context["content"],
            hex::encode(Sha256::digest(format!("\"{long}\"").as_bytes()))
        );
        assert_eq!(
            r.context["opts"],
            hex::encode(Sha256::digest(br#"{"a":[true],"b":1}"#))
        );
        assert_eq!(r.context["n"], "2.5");
        assert!(!r.context.contains_key("missing"));
        assert_eq!(r.context[CONTEXT_SERVER], "files");
        let read = s.request(
            "files",
            "agent:a",
            Some(b"s"),
            &call("2", "read_file", json!({})),
        );
        assert_eq!(read.action, "read:files");
        assert!(read.data_classes.is_empty());
        let other = s.request(
            "time",
            "agent:a",
            Some(b"s"),
            &call("2", "write_x", json!({})),
        );
        assert_eq!(other.action, "call:write_x");
    }

    #[test]
    fn context_values() {
        assert_eq!(context_value(&json!("a b")), "a b");
        assert_eq!(context_value(&json!(true)), "true");
        assert_eq!(context_value(&json!(null)), "null");
        assert_eq!(context_value(&json!(12)), "12");
        assert_eq!(context_value(&json!("x".repeat(256))), "x".repeat(256));
        assert_eq!(context_value(&json!("x".repeat(257))).len(), 64);
        assert_eq!(
            context_value(&json!("a\nb")),
            hex::encode(Sha256::digest(br#""a\nb""#))
        );
        assert_eq!(
            context_value(&json!([1])),
            hex::encode(Sha256::digest(b"[1]"))
        );
    }

    #[test]
    fn intent_is_copied_and_probes_carry_only_the_server() {
        let s = settings(vec![rule("*")]);
        let mut c = call("1", "t", json!({"a": 1}));
        c.intent = Some("summarise the file".to_owned());
        assert_eq!(
            s.request("n", "a", Some(b"s"), &c).user_intent,
            "summarise the file"
        );
        let p = s.probe("files", "write_file");
        assert_eq!(p.tool, "files/write_file");
        assert_eq!(p.action, "call:write_file");
        assert_eq!(
            p.context,
            BTreeMap::from([(CONTEXT_SERVER.to_owned(), "files".to_owned())])
        );
    }

    #[test]
    fn bad_rows_are_refused_naming_them() {
        let mut bad = rule("x");
        bad.risk_level = Some(9);
        let err = Settings::new(&McpConfig {
            tools: vec![rule("a"), bad],
            ..McpConfig::default()
        })
        .err()
        .unwrap_or_default();
        assert!(err.contains("mcp.tools[1].risk_level"), "{err}");
        let mut bad = rule("x");
        bad.mode = Some("lax".to_owned());
        let err = Settings::new(&McpConfig {
            tools: vec![bad],
            ..McpConfig::default()
        })
        .err()
        .unwrap_or_default();
        assert!(err.contains("mcp.tools[0].mode"), "{err}");
    }
}
