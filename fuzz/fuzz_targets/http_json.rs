//! The HTTP adapter's JSON transcoding (crates/lexecon-json) on arbitrary bytes: the
//! first byte picks an RPC, the rest is its JSON body. Nothing panics or overflows the
//! stack; a body that is accepted encodes to protobuf that writes back as JSON which is
//! accepted again and means the same (a fixed point after one round); arbitrary
//! protobuf bytes either fail cleanly or write as JSON; query parameters built from the
//! same bytes are typed or refused, never accepted as something else.
#![no_main]

use std::collections::BTreeMap;

use lexecon_json::{Api, Method};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn round_trip(method: &Method, body: &[u8]) {
    let Ok(bytes) = method.decode_request(body) else {
        return;
    };
    let once = method
        .request_to_json(&bytes)
        .expect("an accepted request writes as JSON");
    let parsed: Value = serde_json::from_slice(&once).expect("written JSON parses");
    assert!(parsed.is_object());
    let bytes_again = method
        .decode_request(&once)
        .expect("written JSON is accepted again");
    let twice = method
        .request_to_json(&bytes_again)
        .expect("the second request writes as JSON");
    assert_eq!(
        String::from_utf8_lossy(&once),
        String::from_utf8_lossy(&twice),
        "JSON → protobuf → JSON is not a fixed point"
    );
    // The same value through request_from_value agrees with decode_request.
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let from_value = method
            .request_from_value(value)
            .expect("a body decode_request accepted is accepted as a value");
        let json = method.request_to_json(&from_value).expect("writes as JSON");
        assert_eq!(json, once);
    }
}

fn params(method: &Method, data: &[u8]) {
    // name=value pairs separated by '&', as a query string would hold them.
    let text = String::from_utf8_lossy(data);
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in text.split('&').take(16) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(name.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    if let Ok(value) = method.params_to_value(&params, &[("from", "from_index")]) {
        let object = value.as_object().expect("parameters make an object");
        assert!(object.len() <= params.len());
        // Typed parameters either encode or fail with a field; never panic.
        if let Err(e) = method.request_from_value(value) {
            assert!(!e.message.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let api = Api::lexecon();
    let methods: Vec<&Method> = api.methods().collect();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some(method) = methods.get(usize::from(selector) % methods.len().max(1)) else {
        return;
    };
    round_trip(method, rest);
    // Arbitrary protobuf as a response: an error or JSON, never a panic.
    if let Ok(json) = method.encode_response(rest) {
        let parsed: Value = serde_json::from_slice(&json).expect("response JSON parses");
        assert!(parsed.is_object());
    }
    if selector & 1 == 1 {
        params(method, rest);
    }
    let _ = method.field_of_message(&String::from_utf8_lossy(rest));
});
