//! JSON errors of the HTTP API (contract §9): the gRPC status of a call mapped to an
//! HTTP status and `{"error": {"code", "message", "field"}}`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lexecon_json::{JsonError, Method};
use tonic::Code;

/// What a client is told to wait before retrying a 429 or 503 when the server gave no hint.
const DEFAULT_RETRY_AFTER: HeaderValue = HeaderValue::from_static("1");

/// An error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code's lowercase snake name (`invalid_argument`).
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// The request field the error is about, when known.
    pub field: Option<String>,
    /// `Retry-After` (seconds) for 429 and 503.
    pub retry_after: Option<HeaderValue>,
}

/// The lowercase snake name of a gRPC code (`INVALID_ARGUMENT` → `invalid_argument`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status of a gRPC code, as contract §9 maps it.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// `400 invalid_argument` about `field`.
    pub fn invalid(field: Option<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field,
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
        }
    }

    /// `500 internal`: the server's answer could not be read; details go to the log.
    pub fn internal(what: &str) -> ApiError {
        tracing::error!(error = what, "http adapter: unreadable grpc answer");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; see its log",
        )
    }

    /// The error of a gRPC answer with `code` and `message`; `metadata` is where the
    /// status was found (headers or trailers), read for a retry hint. The field of an
    /// INVALID_ARGUMENT (and the like) is the one the server's message begins with.
    pub fn from_grpc(
        code: Code,
        message: String,
        metadata: &HeaderMap,
        method: Option<&Method>,
    ) -> ApiError {
        let status = http_status(code);
        let field = match code {
            Code::InvalidArgument | Code::OutOfRange | Code::AlreadyExists => {
                method.and_then(|m| m.field_of_message(&message))
            }
            _ => None,
        };
        let retry_after = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then(|| {
            metadata
                .get(header::RETRY_AFTER)
                .filter(|v| !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit))
                .cloned()
                .unwrap_or(DEFAULT_RETRY_AFTER)
        });
        ApiError {
            status: if status == StatusCode::OK {
                // A grpc-status of OK cannot be an error; if it comes here the answer was
                // missing its message.
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                status
            },
            code: code_name(code),
            message,
            field,
            retry_after,
        }
    }

    /// The error of a [`tonic::Status`] (a body that failed while it was read).
    pub fn from_status(status: &tonic::Status, method: Option<&Method>) -> ApiError {
        ApiError::from_grpc(
            status.code(),
            status.message().to_owned(),
            status.metadata().as_ref(),
            method,
        )
    }

    /// `413`: the body is larger than `limit` bytes.
    pub fn too_large(limit: usize, rpc: &str) -> ApiError {
        ApiError {
            field: None,
            ..ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_argument",
                format!(
                    "the request body is larger than the {limit} bytes {rpc} accepts over HTTP; send a smaller body"
                ),
            )
        }
    }

    /// `413`: the request, encoded, is `len` bytes, more than the `limit` the services
    /// decode; `setting` is the configuration that sets it.
    pub fn message_too_large(len: usize, limit: usize, rpc: &str, setting: &str) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_argument",
            format!(
                "the request to {rpc} is {len} bytes once encoded; the server takes at most {limit} ({setting}); send less, or raise {setting}"
            ),
        )
    }

    /// The JSON body: `{"error": {"code": ..., "message": ..., "field": ...}}`, with
    /// `field` left out when unknown.
    pub fn to_json(&self) -> Vec<u8> {
        let mut error = serde_json::Map::with_capacity(3);
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(field) = &self.field {
            error.insert("field".into(), field.clone().into());
        }
        let mut body = serde_json::Map::with_capacity(1);
        body.insert("error".into(), serde_json::Value::Object(error));
        // Serializing a map of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl From<JsonError> for ApiError {
    fn from(e: JsonError) -> ApiError {
        ApiError::invalid(e.field, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_json();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(retry_after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}
