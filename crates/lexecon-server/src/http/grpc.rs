//! The gRPC side of the adapter: a message framed as a gRPC request, sent through the
//! same stack as every gRPC call ([`GrpcStack`]: the auth layer over the services), and
//! the answer's frames and status read back.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Request, Uri, Version, header};
use http_body_util::BodyExt;
use lexecon_json::Method;
use tower::ServiceExt;

use crate::auth::AuthMiddleware;
use crate::http::error::ApiError;

/// The gRPC stack both doors go through: authentication, the overload limits, then the
/// services.
pub type GrpcStack = AuthMiddleware<crate::limits::LimitMiddleware<tonic::service::Routes>>;

/// The length prefix of a gRPC message: a compression flag and a big-endian `u32`.
const PREFIX: usize = 5;

/// Why a gRPC body could not be split into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message was compressed; the adapter never asks for compression.
    #[error("a message of the answer is compressed")]
    Compressed,
    /// The body ended inside a message.
    #[error("the answer ended inside a message")]
    Truncated,
}

/// `message` with its gRPC length prefix.
pub fn frame(message: &[u8]) -> Result<Bytes, ApiError> {
    let len = u32::try_from(message.len())
        .map_err(|_| ApiError::too_large(u32::MAX as usize, "a gRPC message"))?;
    let mut framed = Vec::with_capacity(PREFIX + message.len());
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    Ok(Bytes::from(framed))
}

/// The first complete message of `buf` and the bytes it takes with its prefix;
/// `Ok(None)` while `buf` holds less than one message.
pub fn split_message(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<PREFIX>() else {
        return Ok(None);
    };
    let [flag, a, b, c, d] = *prefix;
    if flag != 0 {
        return Err(FrameError::Compressed);
    }
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    Ok(rest.get(..len).map(|message| (message, PREFIX + len)))
}

/// The single message of a complete unary answer body.
pub fn single_message(body: &[u8]) -> Result<&[u8], FrameError> {
    match split_message(body)? {
        Some((message, used)) if used == body.len() => Ok(message),
        _ => Err(FrameError::Truncated),
    }
}

/// The gRPC request for `method` carrying `message` and the caller's `authorization`
/// header: nothing else the HTTP caller sent reaches the stack.
pub fn request(
    method: &Method,
    authorization: Option<HeaderValue>,
    message: &[u8],
) -> Result<Request<tonic::body::Body>, ApiError> {
    let uri = Uri::try_from(method.grpc_path())
        .map_err(|e| ApiError::internal(&format!("grpc path {}: {e}", method.grpc_path())))?;
    let body = http_body_util::Full::new(frame(message)?);
    let mut request = Request::new(tonic::body::Body::new(body));
    *request.method_mut() = axum::http::Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(authorization) = authorization {
        headers.insert(header::AUTHORIZATION, authorization);
    }
    Ok(request)
}

/// The error a `grpc-status` in `headers` reports; `None` when there is none or it is OK.
pub fn status_error(headers: &HeaderMap, method: &Method) -> Option<ApiError> {
    let value = headers.get("grpc-status")?;
    if value.as_bytes() == b"0" {
        return None;
    }
    let status = tonic::Status::from_header_map(headers)?;
    Some(ApiError::from_grpc(
        status.code(),
        status.message().to_owned(),
        headers,
        Some(method),
    ))
}

/// Calls a unary `method` with `message` through `stack`; the answer's protobuf bytes.
pub async fn unary(
    stack: GrpcStack,
    method: &Method,
    authorization: Option<HeaderValue>,
    message: &[u8],
) -> Result<Bytes, ApiError> {
    let request = request(method, authorization, message)?;
    let Ok(response) = stack.oneshot(request).await;
    let (parts, body) = response.into_parts();
    // A trailers-only answer (every refusal before the handler ran) has its status here.
    if let Some(error) = status_error(&parts.headers, method) {
        return Err(error);
    }
    let collected = body
        .collect()
        .await
        .map_err(|status| ApiError::from_status(&status, Some(method)))?;
    let ok_in_headers = parts.headers.contains_key("grpc-status");
    match collected.trailers() {
        Some(trailers) => {
            if let Some(error) = status_error(trailers, method) {
                return Err(error);
            }
            if !trailers.contains_key("grpc-status") && !ok_in_headers {
                return Err(ApiError::internal("the answer carried no grpc-status"));
            }
        }
        None if !ok_in_headers => {
            return Err(ApiError::internal("the answer carried no grpc-status"));
        }
        None => {}
    }
    let data = collected.to_bytes();
    let message = single_message(&data).map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(data.slice_ref(message))
}

/// Whether a request is gRPC (by its content type), for the stack rather than the
/// JSON routes.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}
