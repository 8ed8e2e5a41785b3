//! The MCP gateway's message classifier (crates/lexecon-mcp/src/jsonrpc.rs) on
//! arbitrary bytes: it never panics, and what it says about a message agrees with a
//! full parse of the same bytes, so the gateway can never let a `tools/call` through
//! as something else, nor decide on a name or arguments other than the upstream sees.
#![no_main]

use lexecon_mcp::jsonrpc::{self, Classified, Kind, Message};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(message: &Message<'_>) {
    let full: Option<Value> = serde_json::from_str(message.raw).ok();
    match &message.kind {
        Kind::ToolCall(call) => {
            let full = full.expect("a tools/call the classifier accepted must parse");
            assert_eq!(full["method"], "tools/call");
            assert_eq!(full["params"]["name"].as_str(), Some(call.name.as_str()));
            let args = match &full["params"]["arguments"] {
                Value::Null => serde_json::Map::new(),
                Value::Object(map) => map.clone(),
                other => panic!("arguments {other} accepted"),
            };
            assert_eq!(args, call.arguments);
            assert_eq!(
                lexecon_mcp::canonical::to_string(&full["id"]),
                call.id.key()
            );
        }
        Kind::ToolsList { .. } | Kind::Request { .. } | Kind::Notification => {
            // Relayed as is: it must not be a tools/call in the upstream's eyes.
            let full = full.expect("a relayed request must parse");
            assert_ne!(
                full["method"], "tools/call",
                "a tools/call relayed undecided"
            );
        }
        Kind::Response { .. } => {
            let full = full.expect("a relayed response must parse");
            assert!(full.get("method").is_none());
        }
        Kind::Refused { code, .. } => {
            assert!([-32700, -32600, -32602].contains(code));
        }
    }
    // Canonical JSON is a fixed point.
    if let Ok(v) = serde_json::from_str::<Value>(message.raw) {
        let once = lexecon_mcp::canonical::to_string(&v);
        let again: Value = serde_json::from_str(&once).expect("canonical JSON parses");
        assert_eq!(lexecon_mcp::canonical::to_string(&again), once);
    }
}

fuzz_target!(|data: &[u8]| {
    match jsonrpc::classify(data) {
        Classified::Blank => {}
        Classified::Single(m) => check(&m),
        Classified::Batch(items) => items.iter().for_each(check),
    }
});
