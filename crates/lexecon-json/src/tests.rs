#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::collections::BTreeMap;

use prost::Message as _;
use serde_json::{Value, json};

use crate::{Api, Method, Verb};
use lexecon_proto::v1;

fn method(service: &str, rpc: &str) -> &'static Method {
    Api::lexecon()
        .method(service, rpc)
        .unwrap_or_else(|| panic!("{service}/{rpc} is missing"))
}

fn decide() -> &'static Method {
    method("DecisionService", "Decide")
}

const SEED: &str = r#"{"actor": "agent:support-bot", "proposed_action": "read:customer_data",
  "tool": "crm", "user_intent": "answer the customer's billing question",
  "data_classes": ["pii", "financial"], "risk_level": 2, "policy_mode": "strict"}"#;

#[test]
fn the_seed_body_decodes() {
    let bytes = decide().decode_request(SEED.as_bytes()).unwrap();
    let req = v1::DecideRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(req.actor, "agent:support-bot");
    assert_eq!(req.proposed_action, "read:customer_data");
    assert_eq!(req.tool, "crm");
    assert_eq!(req.data_classes, ["pii", "financial"]);
    assert_eq!(req.risk_level, 2);
    assert_eq!(req.policy_mode, v1::PolicyMode::Strict as i32);
}

#[test]
fn enums_are_read_as_short_names_full_names_or_numbers() {
    for mode in [
        json!("strict"),
        json!("STRICT"),
        json!("Strict"),
        json!("POLICY_MODE_STRICT"),
        json!("policy_mode_strict"),
        json!(2),
    ] {
        let bytes = decide()
            .request_from_value(json!({"actor": "a", "policy_mode": mode}))
            .unwrap();
        let req = v1::DecideRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.policy_mode, v1::PolicyMode::Strict as i32, "{mode}");
    }
    let bytes = decide()
        .request_from_value(json!({"policy_mode": "permissive"}))
        .unwrap();
    let req = v1::DecideRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(req.policy_mode, v1::PolicyMode::Permissive as i32);

    let err = decide()
        .request_from_value(json!({"policy_mode": "lenient"}))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("policy_mode"));
    assert!(
        err.message.starts_with(
            "policy_mode: \"lenient\" is not a PolicyMode; send one of permissive, strict, paranoid"
        ),
        "{}",
        err.message
    );
    let err = decide()
        .request_from_value(json!({"policy_mode": true}))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("policy_mode"));
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    let err = decide()
        .decode_request(br#"{"actor": "a", "llm": {"foo": 1}}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("llm.foo"));
    assert_eq!(
        err.message,
        "llm.foo is not a field of LlmUsage; known fields: model, user_id, roles, \
         estimated_input_tokens, max_output_tokens"
    );
    let err = decide().decode_request(br#"{"acter": "a"}"#).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("acter"));
    assert!(
        err.message.starts_with(
            "acter is not a field of DecideRequest; known fields: actor, proposed_action"
        ),
        "{}",
        err.message
    );
    let err = method("DecisionService", "CheckTools")
        .decode_request(br#"{"tools": [{"tool": "x"}, {"tol": "y"}]}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("tools[1].tol"));
}

#[test]
fn wrong_types_are_named_with_their_path() {
    let err = decide()
        .decode_request(br#"{"llm": {"user_id": 5}}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("llm.user_id"));
    assert_eq!(err.message, "llm.user_id: expected a string, got 5");
    let err = decide()
        .decode_request(br#"{"risk_level": "high"}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("risk_level"));
    assert!(
        err.message
            .starts_with("risk_level: expected an unsigned integer"),
        "{}",
        err.message
    );
    assert!(err.message.ends_with("got \"high\""), "{}", err.message);
    let err = decide()
        .decode_request(br#"{"risk_level": -1}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("risk_level"));
    let err = decide()
        .decode_request(br#"{"risk_level": 4294967296}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("risk_level"));
    let err = decide()
        .decode_request(br#"{"data_classes": ["pii", 3]}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("data_classes[1]"));
    let err = decide()
        .decode_request(br#"{"data_classes": "pii"}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("data_classes"));
    let err = decide()
        .decode_request(br#"{"context": {"region": 1}}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("context.region"));
    let err = decide().decode_request(br#"{"llm": "gpt"}"#).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("llm"));
    let err = method("AuditService", "ExportAudit")
        .decode_request(br#"{"since": "yesterday"}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("since"));
    assert!(err.message.starts_with("since: "), "{}", err.message);
    let err = method("DecisionService", "RecordCompletion")
        .decode_request(br#"{"result_sha256": "not base64!"}"#)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("result_sha256"));
}

#[test]
fn bodies_that_are_not_json_objects_are_refused_whole() {
    for body in [&b"{"[..], b"[]", b"3", b"\"x\"", b"{\"actor\": }", b"nul"] {
        let err = decide().decode_request(body).unwrap_err();
        assert_eq!(err.field, None, "{}", String::from_utf8_lossy(body));
        assert!(err.message.contains("DecideRequest"), "{}", err.message);
    }
    let err = decide().decode_request(b"{\"actor\": }").unwrap_err();
    assert!(err.message.contains("line 1 column"), "{}", err.message);
}

#[test]
fn empty_bodies_and_nulls_are_the_empty_message() {
    assert_eq!(decide().decode_request(b"").unwrap(), Vec::<u8>::new());
    assert_eq!(decide().decode_request(b" \n").unwrap(), Vec::<u8>::new());
    assert_eq!(decide().decode_request(b"{}").unwrap(), Vec::<u8>::new());
    assert_eq!(
        decide()
            .decode_request(br#"{"actor": null, "llm": null, "data_classes": null}"#)
            .unwrap(),
        Vec::<u8>::new()
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = decide().decode_request(deep.as_bytes()).unwrap_err();
    assert_eq!(err.field, None);
    let deep = format!(
        "{{\"llm\":{}1{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    assert!(decide().decode_request(deep.as_bytes()).is_err());
}

#[test]
fn camel_case_names_are_accepted() {
    let bytes = decide()
        .decode_request(
            br#"{"proposedAction": "read:x", "llm": {"userId": "u", "maxOutputTokens": "7"}}"#,
        )
        .unwrap();
    let req = v1::DecideRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(req.proposed_action, "read:x");
    let llm = req.llm.unwrap();
    assert_eq!(llm.user_id, "u");
    assert_eq!(llm.max_output_tokens, 7);
}

#[test]
fn sixty_four_bit_integers_are_read_from_strings_and_numbers() {
    for v in [
        json!("18446744073709551615"),
        json!(18_446_744_073_709_551_615_u64),
    ] {
        let bytes = decide()
            .request_from_value(json!({"llm": {"estimated_input_tokens": v}}))
            .unwrap();
        let req = v1::DecideRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(req.llm.unwrap().estimated_input_tokens, u64::MAX);
    }
    let err = decide()
        .request_from_value(json!({"llm": {"estimated_input_tokens": "18446744073709551616"}}))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("llm.estimated_input_tokens"));
    let err = decide()
        .request_from_value(json!({"llm": {"estimated_input_tokens": 1.5}}))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("llm.estimated_input_tokens"));
}

fn response_json(method: &Method, message: &impl prost::Message) -> Value {
    let out = method.encode_response(&message.encode_to_vec()).unwrap();
    assert!(!out.contains(&b'\n'));
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn responses_use_short_enum_names_defaults_and_string_u64() {
    let resp = v1::DecideResponse {
        decision_id: "dec_01".into(),
        outcome: v1::Outcome::Approved as i32,
        risk_level: v1::RiskLevel::Medium as i32,
        ledger_index: 42,
        ledger_leaf_hash: vec![0xff, 0x00],
        token_expires_at: Some(lexecon_proto::prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        }),
        ..Default::default()
    };
    let out = decide().encode_response(&resp.encode_to_vec()).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""outcome":"approved""#), "{text}");
    assert!(text.contains(r#""risk_level":"medium""#), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ledger_index"], json!("42"));
    assert_eq!(v["ledger_leaf_hash"], json!("/wA="));
    assert_eq!(v["token_expires_at"], json!("2026-01-01T00:00:00Z"));
    // Defaults are written; unset messages are not.
    assert_eq!(v["reasoning"], json!(""));
    assert_eq!(v["risk_score"], json!(0));
    assert_eq!(v["reasons"], json!([]));
    assert_eq!(v["effective_mode"], json!("unspecified"));
    assert_eq!(v["escalation_state"], json!("unspecified"));
    assert!(v.get("decided_at").is_none());
    assert!(v.get("risk_dimensions").is_none());
    // Field order is the .proto's.
    assert!(
        text.starts_with(r#"{"decision_id":"dec_01","request_id":"","outcome":"approved""#),
        "{text}"
    );
}

#[test]
fn unknown_enum_numbers_stay_numbers_and_repeated_enums_are_short() {
    let resp = v1::DecideResponse {
        outcome: 99,
        ..Default::default()
    };
    let v = response_json(decide(), &resp);
    assert_eq!(v["outcome"], json!(99));

    let resp = v1::GetComplianceStatusResponse {
        controls: vec![v1::ControlResult {
            status: v1::ControlStatus::Satisfied as i32,
            ..Default::default()
        }],
        ..Default::default()
    };
    let v = response_json(method("ComplianceService", "GetComplianceStatus"), &resp);
    assert_eq!(v["controls"][0]["status"], json!("satisfied"));
}

#[test]
fn maps_are_written_in_key_order() {
    let mut req = v1::DecideRequest::default();
    for k in ["zeta", "alpha", "mid"] {
        req.context.insert(k.into(), k.to_uppercase());
    }
    let out = decide().request_to_json(&req.encode_to_vec()).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(r#""context":{"alpha":"ALPHA","mid":"MID","zeta":"ZETA"}"#),
        "{text}"
    );
}

#[test]
fn responses_round_trip_through_requests() {
    let bytes = decide().decode_request(SEED.as_bytes()).unwrap();
    let json1 = decide().request_to_json(&bytes).unwrap();
    let bytes2 = decide().decode_request(&json1).unwrap();
    assert_eq!(
        v1::DecideRequest::decode(bytes.as_slice()).unwrap(),
        v1::DecideRequest::decode(bytes2.as_slice()).unwrap()
    );
    let v: Value = serde_json::from_slice(&json1).unwrap();
    assert_eq!(v["policy_mode"], json!("strict"));
}

#[test]
fn garbage_protobuf_is_an_error() {
    let err = decide().encode_response(&[0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(err.field, None);
}

#[test]
fn every_enum_value_has_the_enum_prefix() {
    let api = Api::lexecon();
    let mut count = 0;
    for e in api.pool.all_enums() {
        if !e.full_name().starts_with("lexecon.") {
            continue;
        }
        let prefix = format!("{}_", crate::transcode::screaming_snake(e.name()));
        for v in e.values() {
            assert!(v.name().starts_with(&prefix), "{} lacks {prefix}", v.name());
            let short = crate::transcode::short_name(&e, v.name());
            assert_eq!(short, v.name()[prefix.len()..].to_ascii_lowercase());
            assert_eq!(crate::transcode::resolve_enum(&e, &short), Some(v.number()));
            count += 1;
        }
    }
    assert!(count > 20, "{count}");
    assert_eq!(
        crate::transcode::screaming_snake("PolicyMode"),
        "POLICY_MODE"
    );
    assert_eq!(
        crate::transcode::screaming_snake("HTTPStatus2Code"),
        "HTTP_STATUS2_CODE"
    );
}

#[test]
fn every_method_resolves_by_short_and_full_service_name() {
    let api = Api::lexecon();
    let methods: Vec<&Method> = api.methods().collect();
    assert!(methods.len() > 50, "{}", methods.len());
    for m in &methods {
        let (service, rpc) = m.name().split_once('/').unwrap();
        assert_eq!(api.method(service, rpc).unwrap().name(), m.name());
        let full = format!("lexecon.v1.{service}");
        assert_eq!(api.method(&full, rpc).unwrap().grpc_path(), m.grpc_path());
        assert_eq!(m.grpc_path(), format!("/lexecon.v1.{service}/{rpc}"));
        // Every method takes the empty body.
        assert_eq!(m.decode_request(b"{}").unwrap(), Vec::<u8>::new());
        // And writes an empty response.
        assert!(m.encode_response(&[]).is_ok());
    }
    assert!(api.method("DecisionService", "Nope").is_none());
    assert!(api.method("Nope", "Decide").is_none());
    assert!(api.method("lexecon.v2.DecisionService", "Decide").is_none());
    let streaming: Vec<&str> = methods
        .iter()
        .filter(|m| m.server_streaming())
        .map(|m| m.name())
        .collect();
    assert_eq!(
        streaming,
        ["AuditService/ExportAudit", "OversightService/WatchEvents"]
    );
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        out.entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }
    out
}

#[test]
fn params_are_typed_by_their_fields() {
    let m = method("LedgerService", "GetEntries");
    let v = m
        .params_to_value(
            &params(&[("from", "10"), ("limit", "5"), ("kind", "decision")]),
            &[],
        )
        .unwrap();
    assert_eq!(v, json!({"from": 10, "limit": 5, "kind": "decision"}));
    let req = v1::GetEntriesRequest::decode(m.request_from_value(v).unwrap().as_slice()).unwrap();
    assert_eq!(
        (req.from, req.limit, req.kind.as_str()),
        (10, 5, "decision")
    );

    let err = m
        .params_to_value(&params(&[("from", "ten")]), &[])
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("from"));
    assert_eq!(
        err.message,
        "from: expected an unsigned integer, got \"ten\""
    );
    let err = m
        .params_to_value(&params(&[("size", "1")]), &[])
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("size"));
    assert!(
        err.message
            .contains("accepted parameters: from, limit, kind"),
        "{}",
        err.message
    );
    let err = m
        .params_to_value(&params(&[("limit", "1"), ("limit", "2")]), &[])
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("limit"));

    // Aliases, enums and repeated fields.
    let m = method("OversightService", "ListEscalations");
    let v = m
        .params_to_value(
            &params(&[("status", "pending"), ("page_size", "3")]),
            &[("status", "state")],
        )
        .unwrap();
    assert_eq!(v, json!({"state": "pending", "page_size": 3}));
    let req =
        v1::ListEscalationsRequest::decode(m.request_from_value(v).unwrap().as_slice()).unwrap();
    assert_eq!(req.state, v1::EscalationState::Pending as i32);
    let err = m
        .params_to_value(&params(&[("state", "x")]), &[("status", "state")])
        .unwrap_err();
    assert!(
        err.message
            .contains("accepted parameters: status, page_size"),
        "{}",
        err.message
    );

    let m = method("OversightService", "WatchEvents");
    let v = m
        .params_to_value(
            &params(&[
                ("kinds", "a"),
                ("kinds", "b"),
                ("from_index", "18446744073709551615"),
            ]),
            &[],
        )
        .unwrap();
    assert_eq!(v, json!({"kinds": ["a", "b"], "from_index": u64::MAX}));
    let req = v1::WatchEventsRequest::decode(m.request_from_value(v).unwrap().as_slice()).unwrap();
    assert_eq!(req.from_index, Some(u64::MAX));

    // Booleans; a map field is not a parameter.
    let m = method("DecisionService", "RecordCompletion");
    assert_eq!(
        m.params_to_value(&params(&[("is_error", "true")]), &[])
            .unwrap(),
        json!({"is_error": true})
    );
    assert!(
        m.params_to_value(&params(&[("is_error", "yes")]), &[])
            .is_err()
    );
    let err = decide()
        .params_to_value(&params(&[("context", "x")]), &[])
        .unwrap_err();
    assert!(
        err.message.contains("POST /v1/DecisionService/Decide"),
        "{}",
        err.message
    );
}

#[test]
fn field_of_message_finds_request_fields() {
    let m = decide();
    let f = |s: &str| m.field_of_message(s);
    assert_eq!(
        f("llm.user_id must not be empty").as_deref(),
        Some("llm.user_id")
    );
    assert_eq!(f("actor contains ' ' at byte 3").as_deref(), Some("actor"));
    assert_eq!(f("actor: bad").as_deref(), Some("actor"));
    assert_eq!(
        f("data_classes[3] is too long").as_deref(),
        Some("data_classes[3]")
    );
    assert_eq!(
        f("context.region must be short").as_deref(),
        Some("context.region")
    );
    assert_eq!(f("proposed_action.").as_deref(), Some("proposed_action"));
    assert_eq!(f("llm.nope is wrong"), None);
    assert_eq!(f("actor.x is wrong"), None);
    assert_eq!(f("actor[1] is wrong"), None);
    assert_eq!(f("the actor is wrong"), None);
    assert_eq!(f("Decide failed"), None);
    assert_eq!(f(""), None);
    assert_eq!(f(" actor"), None);
    let m = method("DecisionService", "CheckTools");
    assert_eq!(
        m.field_of_message("tools[2].tool is empty").as_deref(),
        Some("tools[2].tool")
    );
    assert_eq!(m.field_of_message("tools[x].tool is empty"), None);
}

#[test]
fn routes_resolve_to_methods_and_fields() {
    let api = Api::lexecon();
    assert!(api.routes().len() >= 8);
    for route in api.routes() {
        let (service, rpc) = route.rpc.split_once('/').unwrap();
        let m = api
            .method(service, rpc)
            .unwrap_or_else(|| panic!("{}", route.rpc));
        assert!(!m.server_streaming());
        for (param, field) in route.aliases {
            assert!(
                m.input().get_field_by_name(field).is_some(),
                "{param} → {field}"
            );
        }
        // Path parameters name fields (directly or through an alias).
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let field = route
                    .aliases
                    .iter()
                    .find(|(p, _)| *p == name)
                    .map_or(name, |(_, f)| *f);
                assert!(
                    m.input().get_field_by_name(field).is_some(),
                    "{}",
                    route.path
                );
            }
        }
        if route.verb == Verb::Get {
            for field in m.input().fields() {
                assert!(
                    crate::params::takes_param(&field),
                    "{} {}",
                    route.path,
                    field.name()
                );
            }
        }
    }
    let find = |path: &str| api.routes().iter().find(|r| r.path == path).unwrap();
    assert_eq!(find("/v1/decide").rpc, "DecisionService/Decide");
    assert_eq!(find("/decide").verb, Verb::Post);
    assert_eq!(find("/v1/ledger/entries").rpc, "LedgerService/GetEntries");
    assert_eq!(
        find("/v1/compliance/{framework}/gaps").rpc,
        "ComplianceService/GetGaps"
    );
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                if k == "$ref" {
                    out.push(v.as_str().unwrap());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[test]
fn the_openapi_document_is_consistent() {
    let api = Api::lexecon();
    let text = api.openapi();
    assert!(text.ends_with("}\n"));
    assert_eq!(text, api.openapi());
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Same bytes from a fresh Api (no hidden nondeterminism such as hash order).
    let fresh = Api::from_descriptor_set(lexecon_proto::FILE_DESCRIPTOR_SET).unwrap();
    assert_eq!(fresh.openapi(), text);

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100);
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "unresolved {r}");
    }
    // Every schema is used or is a message/enum of the API.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "DecideRequest",
        "DecideResponse",
        "LlmUsage",
        "PolicyMode",
        "PolicyModeInput",
        "Outcome",
        "Error",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    assert_eq!(
        schemas["Outcome"]["enum"],
        json!(["unspecified", "approved", "denied", "escalated"])
    );
    assert_eq!(
        schemas["DecideRequest"]["additionalProperties"],
        json!(false)
    );
    assert_eq!(
        schemas["DecideRequest"]["properties"]["policy_mode"]["$ref"],
        "#/components/schemas/PolicyModeInput"
    );
    assert_eq!(
        schemas["DecideResponse"]["properties"]["ledger_index"]["type"],
        "string"
    );
    assert_eq!(
        schemas["DecideResponse"]["properties"]["token_expires_at"]["format"],
        "date-time"
    );
    assert_eq!(
        schemas["DecideResponse"]["properties"]["ledger_leaf_hash"]["contentEncoding"],
        "base64"
    );
    let required = schemas["DecideResponse"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("outcome")) && !required.contains(&json!("decided_at")));
    assert!(
        schemas["DecideRequest"]["properties"]["actor"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Who proposes the action")
    );
    assert!(schemas["LlmUsage"]["properties"]["max_output_tokens"]["anyOf"].is_array());
    assert_eq!(schemas["LlmUsage"]["additionalProperties"], json!(false));
    assert_eq!(
        schemas["DecideRequest"]["properties"]["context"]["additionalProperties"]["type"],
        "string"
    );

    let mut ids = std::collections::BTreeSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (verb, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(verb == "get" || verb == "post", "{path} {verb}");
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{path}");
            assert!(responses.contains_key("503"), "{path}");
            let public = path == "/healthz" || path == "/readyz";
            assert_eq!(op["security"] == json!([]), public, "{path}");
            if !public {
                for status in [
                    "400", "401", "403", "404", "409", "412", "413", "429", "500", "503", "504",
                ] {
                    assert!(responses.contains_key(status), "{path} lacks {status}");
                }
            }
            // Path parameters are declared, and declared ones are in the path.
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let templated: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            assert_eq!(declared, templated, "{path}");
        }
    }
    assert_eq!(operations, api.methods().count() + api.routes().len() + 2);
    for m in api.methods() {
        let op = &doc["paths"][format!("/v1/{}", m.name())]["post"];
        assert_eq!(op["operationId"], m.name().replace('/', "_"));
        if m.server_streaming() {
            assert!(op["responses"]["200"]["content"]["application/x-ndjson"].is_object());
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["max_events", "wait_ms"]);
        }
    }
    let retry = resolve(&doc, "#/components/responses/TooManyRequests").unwrap();
    assert!(retry["headers"]["Retry-After"].is_object());
    // The seed example is the Decide example, and it decodes.
    let example = &doc["paths"]["/v1/decide"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    assert_eq!(example["policy_mode"], "strict");
    decide().request_from_value(example.clone()).unwrap();
    let entries = &doc["paths"]["/v1/ledger/entries"]["get"]["parameters"];
    let names: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from", "limit", "kind"]);
}

#[test]
fn the_docs_page_is_self_contained_and_lists_every_operation() {
    let api = Api::lexecon();
    let html = api.docs_html();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.ends_with("</html>\n"));
    let doc: Value = serde_json::from_str(&api.openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(html.contains(&format!("id=\"op-{id}\"")), "{id}");
            assert!(
                html.contains(&format!("<code>{}</code>", crate::docs::escape(path))),
                "{path}"
            );
        }
    }
    // Nothing is loaded from elsewhere: no script, no src, no external stylesheet,
    // no http(s) URL in an attribute or CSS url().
    let lower = html.to_ascii_lowercase();
    for forbidden in [
        "<script",
        " src=",
        "href=\"http",
        "href='http",
        "url(http",
        "@import",
        "<iframe",
        "<img",
    ] {
        assert!(!lower.contains(forbidden), "{forbidden}");
    }
    assert!(lower.contains("<link rel=\"icon\" href=\"data:image/svg+xml,"));
    assert_eq!(lower.matches("<link").count(), 1);
    // Examples: the seed body and a bearer token on authenticated calls.
    assert!(html.contains("-H &quot;Authorization: Bearer $LEXECON_TOKEN&quot;"));
    assert!(html.contains("read:customer_data"));
    assert!(html.contains("id=\"errors\""));
    // Every id is unique, and every in-page link has a target.
    let ids: Vec<&str> = html
        .split(" id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len());
    for link in html
        .split("href=\"#")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
    {
        assert!(unique.contains(link), "dangling #{link}");
    }
}

#[test]
fn docs_text_is_escaped() {
    assert_eq!(
        crate::docs::escape("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}

#[test]
fn timestamps_are_read_as_rfc3339_and_written_in_utc() {
    let m = method("AuditService", "ExportAudit");
    let bytes = m
        .decode_request(br#"{"since": "2026-01-01T00:00:00+01:00", "until": "2026-12-31T23:59:59.5Z", "format": 0}"#)
        .unwrap();
    let req = v1::ExportAuditRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(req.since.unwrap().seconds, 1_767_222_000);
    assert_eq!(req.until.unwrap().nanos, 500_000_000);
    let v: Value = serde_json::from_slice(&m.request_to_json(&bytes).unwrap()).unwrap();
    assert_eq!(v["since"], "2025-12-31T23:00:00Z");
    assert_eq!(v["until"], "2026-12-31T23:59:59.500Z");
    let err = m.decode_request(br#"{"since": 5}"#).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("since"));
    assert!(err.message.contains("RFC 3339"), "{}", err.message);
}
