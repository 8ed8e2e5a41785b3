//! Tests of the HTTP adapter's pieces: the status table, gRPC framing, bounds and limits.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use tonic::Code;

use super::error::{ApiError, code_name, http_status};
use super::grpc::{FrameError, frame, single_message, split_message};
use super::stream::{Bounds, DEFAULT_WAIT_MS, MAX_WAIT_MS};
use super::*;

#[test]
fn every_grpc_code_maps_to_the_contract_status_and_name() {
    let table = [
        (Code::InvalidArgument, 400, "invalid_argument"),
        (Code::OutOfRange, 400, "out_of_range"),
        (Code::Unauthenticated, 401, "unauthenticated"),
        (Code::PermissionDenied, 403, "permission_denied"),
        (Code::NotFound, 404, "not_found"),
        (Code::AlreadyExists, 409, "already_exists"),
        (Code::Aborted, 409, "aborted"),
        (Code::FailedPrecondition, 412, "failed_precondition"),
        (Code::ResourceExhausted, 429, "resource_exhausted"),
        (Code::Unavailable, 503, "unavailable"),
        (Code::DeadlineExceeded, 504, "deadline_exceeded"),
        (Code::Cancelled, 500, "cancelled"),
        (Code::Unknown, 500, "unknown"),
        (Code::Unimplemented, 500, "unimplemented"),
        (Code::Internal, 500, "internal"),
        (Code::DataLoss, 500, "data_loss"),
    ];
    for (code, status, name) in table {
        assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        assert_eq!(code_name(code), name, "{code:?}");
    }
}

#[test]
fn only_429_and_503_carry_retry_after_and_the_server_hint_wins() {
    let none = HeaderMap::new();
    for code in [Code::ResourceExhausted, Code::Unavailable] {
        let e = ApiError::from_grpc(code, "busy".into(), &none, None);
        assert_eq!(
            e.retry_after,
            Some(HeaderValue::from_static("1")),
            "{code:?}"
        );
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
    let mut hinted = HeaderMap::new();
    hinted.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
    let e = ApiError::from_grpc(Code::ResourceExhausted, "slow down".into(), &hinted, None);
    assert_eq!(e.retry_after, Some(HeaderValue::from_static("7")));
    // A hint that is not a number of seconds is not passed on.
    hinted.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
    let e = ApiError::from_grpc(Code::Unavailable, "down".into(), &hinted, None);
    assert_eq!(e.retry_after, Some(HeaderValue::from_static("1")));
    let e = ApiError::from_grpc(Code::NotFound, "no such decision".into(), &hinted, None);
    assert_eq!(e.retry_after, None);
    assert!(
        e.into_response()
            .headers()
            .get(header::RETRY_AFTER)
            .is_none()
    );
}

#[test]
fn the_error_body_names_code_message_and_field_and_omits_an_unknown_field() {
    let e = ApiError::invalid(Some("actor".into()), "actor must not be empty");
    let body: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "invalid_argument", "message": "actor must not be empty", "field": "actor"}})
    );
    let e = ApiError::from_grpc(
        Code::Unauthenticated,
        "missing credentials".into(),
        &HeaderMap::new(),
        None,
    );
    let body: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "unauthenticated", "message": "missing credentials"}})
    );
    let response = e.into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
}

#[test]
fn a_json_error_is_a_400_naming_its_field() {
    let e = ApiError::from(lexecon_json::JsonError {
        field: Some("llm.user_id".into()),
        message: "llm.user_id: expected a string".into(),
    });
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.code, "invalid_argument");
    assert_eq!(e.field.as_deref(), Some("llm.user_id"));
}

#[test]
fn frames_round_trip_and_partial_or_compressed_input_is_told_apart() {
    let framed = frame(b"hello").unwrap();
    assert_eq!(&framed[..], b"\0\0\0\0\x05hello");
    assert_eq!(single_message(&framed).unwrap(), b"hello");
    // Two messages back to back, as a stream delivers them.
    let mut two = framed.to_vec();
    two.extend_from_slice(&frame(b"").unwrap());
    let (first, used) = split_message(&two).unwrap().unwrap();
    assert_eq!((first, used), (&b"hello"[..], 10));
    let (second, used) = split_message(&two[10..]).unwrap().unwrap();
    assert_eq!((second, used), (&b""[..], 5));
    // Short input: not yet a message.
    for cut in 0..framed.len() {
        assert_eq!(split_message(&framed[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(single_message(&framed[..7]), Err(FrameError::Truncated));
    assert_eq!(single_message(&two), Err(FrameError::Truncated));
    assert_eq!(
        split_message(b"\x01\0\0\0\x01x"),
        Err(FrameError::Compressed)
    );
}

#[test]
fn the_evidence_limit_is_four_thirds_of_the_artifact_plus_64_kib() {
    assert_eq!(evidence_body_limit(0), 65_536);
    assert_eq!(evidence_body_limit(3), 4 + 65_536);
    assert_eq!(evidence_body_limit(4), 6 + 65_536);
    assert_eq!(evidence_body_limit(10 << 20), 13_981_014 + 65_536);
    assert_eq!(evidence_body_limit(usize::MAX), usize::MAX);
}

#[test]
fn stream_bounds_default_to_30_s_and_refuse_what_cannot_end() {
    let b = Bounds::default();
    assert_eq!(b.max_events, None);
    assert_eq!(b.wait, Duration::from_millis(DEFAULT_WAIT_MS));
    let mut b = Bounds::default();
    assert!(b.take("max_events", &["3".into()]).unwrap());
    assert!(b.take("wait_ms", &["250".into()]).unwrap());
    assert!(!b.take("from_index", &["1".into()]).unwrap());
    assert_eq!(
        b,
        Bounds {
            max_events: Some(3),
            wait: Duration::from_millis(250)
        }
    );
    assert!(b.take("wait_ms", &[MAX_WAIT_MS.to_string()]).is_ok());
    for (name, value) in [
        ("max_events", "0"),
        ("max_events", "-1"),
        ("max_events", "many"),
        ("wait_ms", "300001"),
        ("wait_ms", "1.5"),
    ] {
        let e = b.take(name, &[value.into()]).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{name}={value}");
        assert_eq!(e.field.as_deref(), Some(name), "{name}={value}");
    }
    let e = b.take("wait_ms", &["1".into(), "2".into()]).unwrap_err();
    assert!(e.message.contains("give it once"), "{e:?}");
}

#[test]
fn a_post_body_is_json_or_untyped_and_anything_else_is_415() {
    let with = |v: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
        h
    };
    assert!(check_content_type(&HeaderMap::new()).is_ok());
    assert!(check_content_type(&with("application/json")).is_ok());
    assert!(check_content_type(&with("Application/JSON; charset=utf-8")).is_ok());
    for bad in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let e = check_content_type(&with(bad)).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        assert!(e.message.contains("application/json"), "{e:?}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_streamed() {
    let body = || axum::body::Body::from(vec![b' '; 11]);
    let ok = read_body(body(), &HeaderMap::new(), 11, "X/Y")
        .await
        .unwrap();
    assert_eq!(ok.len(), 11);
    // Streamed without a length.
    let e = read_body(body(), &HeaderMap::new(), 10, "X/Y")
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(e.message.contains("10 bytes"), "{e:?}");
    // Declared: refused before reading.
    let mut declared = HeaderMap::new();
    declared.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_static("1000000000"),
    );
    let e = read_body(axum::body::Body::empty(), &declared, BODY_LIMIT, "X/Y")
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn query_parameters_keep_repeats_in_order_and_decode() {
    let params = query_params(Some("kind=a&from=3&kind=b%20c&empty="));
    assert_eq!(params["kind"], ["a", "b c"]);
    assert_eq!(params["from"], ["3"]);
    assert_eq!(params["empty"], [""]);
    assert!(query_params(None).is_empty());
}

#[test]
fn grpc_requests_are_told_from_json_by_content_type() {
    let with = |v: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
        h
    };
    assert!(grpc::is_grpc(&with("application/grpc")));
    assert!(grpc::is_grpc(&with("application/grpc+proto")));
    assert!(!grpc::is_grpc(&with("application/json")));
    assert!(!grpc::is_grpc(&HeaderMap::new()));
}

#[test]
fn a_grpc_request_carries_the_frame_and_only_the_callers_authorization() {
    let Some(method) = lexecon_json::Api::lexecon().method("DecisionService", "Decide") else {
        panic!("Decide is in the API");
    };
    let request = grpc::request(
        method,
        Some(HeaderValue::from_static("Bearer abc")),
        b"\x0a\x01a",
    )
    .unwrap();
    assert_eq!(request.uri().path(), "/lexecon.v1.DecisionService/Decide");
    assert_eq!(request.method(), axum::http::Method::POST);
    let headers: Vec<_> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        headers,
        [
            ("content-type".to_owned(), "application/grpc".to_owned()),
            ("te".to_owned(), "trailers".to_owned()),
            ("authorization".to_owned(), "Bearer abc".to_owned()),
        ]
    );
}

#[test]
fn status_headers_are_read_percent_decoded_with_the_field_of_the_message() {
    let Some(method) = lexecon_json::Api::lexecon().method("DecisionService", "Decide") else {
        panic!("Decide is in the API");
    };
    let mut ok = HeaderMap::new();
    ok.insert("grpc-status", HeaderValue::from_static("0"));
    assert!(grpc::status_error(&ok, method).is_none());
    assert!(grpc::status_error(&HeaderMap::new(), method).is_none());
    let mut bad = HeaderMap::new();
    bad.insert("grpc-status", HeaderValue::from_static("3"));
    bad.insert(
        "grpc-message",
        HeaderValue::from_static("proposed_action%20contains%20'%20'%20at%20byte%204"),
    );
    let e = grpc::status_error(&bad, method).unwrap();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.message, "proposed_action contains ' ' at byte 4");
    assert_eq!(e.field.as_deref(), Some("proposed_action"));
}

#[test]
fn every_friendly_route_names_an_rpc_and_the_routes_do_not_clash() {
    let api = lexecon_json::Api::lexecon();
    for route in api.routes() {
        let (service, rpc) = route.rpc.split_once('/').unwrap();
        assert!(
            api.method(service, rpc).is_some(),
            "{} → {}",
            route.path,
            route.rpc
        );
    }
    // Axum panics on clashing routes (two handlers for one path and verb, or paths
    // the matcher cannot tell apart): laying the routes out is the check.
    let _routes = json_routes(api);
}

#[test]
fn a_message_over_the_services_limit_is_413_naming_the_setting() {
    let e = ApiError::message_too_large(
        300_000,
        262_144,
        "DecisionService/Decide",
        "server.max_request_bytes",
    );
    assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(e.message.contains("300000 bytes"), "{e:?}");
    assert!(
        e.message
            .contains("at most 262144 (server.max_request_bytes)"),
        "{e:?}"
    );
}
