//! Server-streaming RPCs over HTTP: `application/x-ndjson`, one JSON message per line,
//! written as the messages arrive, until `max_events` lines were written, `wait_ms`
//! passed, or the stream ended. An error before the first message is an ordinary JSON
//! error; an error later is a last line `{"error": {...}}`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::{Body, Frame};
use lexecon_json::Method;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::http::error::ApiError;
use crate::http::grpc::{self, GrpcStack};

/// `wait_ms` when the request does not say.
pub const DEFAULT_WAIT_MS: u64 = 30_000;
/// The longest `wait_ms` accepted: five minutes.
pub const MAX_WAIT_MS: u64 = 300_000;

/// The bounds of one streaming response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// End after this many messages; `None`: only time and the stream's end bound it.
    pub max_events: Option<u64>,
    /// End this long after the request arrived.
    pub wait: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_events: None,
            wait: Duration::from_millis(DEFAULT_WAIT_MS),
        }
    }
}

impl Bounds {
    /// Takes `max_events` and `wait_ms` out of query parameters; whether `name` was one.
    pub fn take(&mut self, name: &str, values: &[String]) -> Result<bool, ApiError> {
        let parse = |max: u64| -> Result<u64, ApiError> {
            let [value] = values else {
                return Err(ApiError::invalid(
                    Some(name.to_owned()),
                    format!("{name} is given {} times; give it once", values.len()),
                ));
            };
            match value.trim().parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(ApiError::invalid(
                    Some(name.to_owned()),
                    format!("{name} is {value:?}; give a whole number from 0 to {max}"),
                )),
            }
        };
        match name {
            "max_events" => {
                let n = parse(u64::MAX)?;
                if n == 0 {
                    return Err(ApiError::invalid(
                        Some(name.to_owned()),
                        "max_events is 0; give at least 1, or leave it out to be bounded by wait_ms only",
                    ));
                }
                self.max_events = Some(n);
                Ok(true)
            }
            "wait_ms" => {
                self.wait = Duration::from_millis(parse(MAX_WAIT_MS)?);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// What the stream produced next.
#[derive(Debug)]
enum Event {
    /// One NDJSON line, newline included.
    Line(Bytes),
    /// The stream failed.
    Error(ApiError),
    /// The stream ended, or a bound was reached.
    End,
}

/// The NDJSON body over the gRPC answer's body. Dropping it drops the answer, which
/// ends the server's stream.
struct Ndjson {
    inner: Option<tonic::body::Body>,
    method: &'static Method,
    /// Received bytes not yet a complete message.
    buf: Vec<u8>,
    /// Messages still allowed.
    left: Option<u64>,
    deadline: Pin<Box<Sleep>>,
    /// The line read before the response began.
    first: Option<Bytes>,
    done: bool,
}

impl std::fmt::Debug for Ndjson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ndjson")
            .field("method", &self.method.name())
            .field("buffered", &self.buf.len())
            .field("left", &self.left)
            .field("done", &self.done)
            .finish()
    }
}

impl Ndjson {
    fn finish(&mut self) {
        self.done = true;
        self.inner = None;
    }

    fn fail(&mut self, error: ApiError) -> Poll<Event> {
        self.finish();
        Poll::Ready(Event::Error(error))
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        loop {
            if self.done {
                return Poll::Ready(Event::End);
            }
            match grpc::split_message(&self.buf) {
                Err(e) => return self.fail(ApiError::internal(&e.to_string())),
                Ok(Some((message, used))) => {
                    let line = match self.method.encode_response(message) {
                        Ok(mut json) => {
                            json.push(b'\n');
                            Bytes::from(json)
                        }
                        Err(e) => return self.fail(ApiError::internal(&e.to_string())),
                    };
                    self.buf.drain(..used);
                    if let Some(left) = &mut self.left {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            self.finish();
                        }
                    }
                    return Poll::Ready(Event::Line(line));
                }
                Ok(None) => {}
            }
            if self.deadline.as_mut().poll(cx).is_ready() {
                self.finish();
                return Poll::Ready(Event::End);
            }
            let Some(inner) = self.inner.as_mut() else {
                self.finish();
                return Poll::Ready(Event::End);
            };
            match ready!(Pin::new(inner).poll_frame(cx)) {
                None => {
                    return self.fail(ApiError::internal("the stream ended without a grpc-status"));
                }
                Some(Err(status)) => {
                    return self.fail(ApiError::from_status(&status, Some(self.method)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        let Ok(trailers) = frame.into_trailers() else {
                            continue;
                        };
                        if let Some(error) = grpc::status_error(&trailers, self.method) {
                            return self.fail(error);
                        }
                        if !self.buf.is_empty() {
                            return self.fail(ApiError::internal(
                                &grpc::FrameError::Truncated.to_string(),
                            ));
                        }
                        self.finish();
                        return Poll::Ready(Event::End);
                    }
                },
            }
        }
    }
}

impl Body for Ndjson {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Poll::Ready(match ready!(this.poll_event(cx)) {
            Event::Line(line) => Some(Ok(Frame::data(line))),
            Event::Error(error) => {
                let mut line = error.to_json();
                line.push(b'\n');
                Some(Ok(Frame::data(Bytes::from(line))))
            }
            Event::End => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.done
    }
}

fn ndjson_response(body: axum::body::Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies that buffer (nginx) would hold lines back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Calls the server-streaming `method` and answers with its messages as NDJSON.
pub async fn respond(
    stack: GrpcStack,
    method: &'static Method,
    authorization: Option<HeaderValue>,
    message: &[u8],
    bounds: Bounds,
) -> Response {
    let deadline = Instant::now() + bounds.wait;
    let request = match grpc::request(method, authorization, message) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Ok(response) = stack.oneshot(request).await;
    let (parts, body) = response.into_parts();
    if let Some(error) = grpc::status_error(&parts.headers, method) {
        return error.into_response();
    }
    if parts.headers.contains_key("grpc-status") {
        // Trailers-only and OK: the stream ended without a message.
        return ndjson_response(axum::body::Body::empty());
    }
    let mut stream = Ndjson {
        inner: Some(body),
        method,
        buf: Vec::new(),
        left: bounds.max_events,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
        first: None,
        done: false,
    };
    match std::future::poll_fn(|cx| stream.poll_event(cx)).await {
        Event::Line(line) => {
            stream.first = Some(line);
            ndjson_response(axum::body::Body::new(stream))
        }
        Event::Error(error) => error.into_response(),
        Event::End => ndjson_response(axum::body::Body::empty()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use axum::http::HeaderMap;
    use http_body_util::BodyExt;

    use super::*;

    fn watch() -> &'static Method {
        lexecon_json::Api::lexecon()
            .method("OversightService", "WatchEvents")
            .unwrap()
    }

    fn trailers(code: &'static str, message: &'static str) -> Frame<Bytes> {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static(code));
        if !message.is_empty() {
            t.insert("grpc-message", HeaderValue::from_static(message));
        }
        Frame::trailers(t)
    }

    /// The NDJSON body over `frames` (then, if `hang`, a body that never ends).
    fn ndjson(frames: Vec<Frame<Bytes>>, hang: bool, bounds: Bounds) -> Ndjson {
        let frames = tokio_stream::iter(frames.into_iter().map(Ok::<_, tonic::Status>));
        let inner = if hang {
            let pending = tokio_stream::pending::<Result<Frame<Bytes>, tonic::Status>>();
            tonic::body::Body::new(http_body_util::StreamBody::new(
                tokio_stream::StreamExt::chain(frames, pending),
            ))
        } else {
            tonic::body::Body::new(http_body_util::StreamBody::new(frames))
        };
        Ndjson {
            inner: Some(inner),
            method: watch(),
            buf: Vec::new(),
            left: bounds.max_events,
            deadline: Box::pin(tokio::time::sleep(bounds.wait)),
            first: None,
            done: false,
        }
    }

    async fn lines(body: Ndjson) -> Vec<String> {
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// An empty `WatchEventsResponse`, framed, cut in two data frames.
    fn message_in_two_frames() -> Vec<Frame<Bytes>> {
        let framed = grpc::frame(b"").unwrap();
        vec![
            Frame::data(framed.slice(..2)),
            Frame::data(framed.slice(2..)),
        ]
    }

    #[tokio::test]
    async fn messages_become_lines_and_a_late_error_is_a_last_error_line() {
        let mut frames = message_in_two_frames();
        frames.extend(message_in_two_frames());
        frames.push(trailers("14", "the%20ledger%20is%20closing"));
        let lines = lines(ndjson(frames, false, Bounds::default())).await;
        assert_eq!(lines.len(), 3, "{lines:?}");
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert!(first.is_object(), "{first}");
        assert_eq!(lines[0], lines[1]);
        let error: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(error["error"]["code"], "unavailable");
        assert_eq!(error["error"]["message"], "the ledger is closing");
    }

    #[tokio::test]
    async fn the_stream_ends_at_max_events_at_wait_ms_or_at_its_ok_end() {
        let two = || {
            let mut frames = message_in_two_frames();
            frames.extend(message_in_two_frames());
            frames
        };
        let one = Bounds {
            max_events: Some(1),
            ..Bounds::default()
        };
        let body = ndjson(two(), true, one);
        assert_eq!(lines(body).await.len(), 1);

        let short = Bounds {
            max_events: None,
            wait: Duration::from_millis(20),
        };
        let started = std::time::Instant::now();
        assert_eq!(lines(ndjson(two(), true, short)).await.len(), 2);
        assert!(started.elapsed() < Duration::from_secs(5));

        let mut frames = two();
        frames.push(trailers("0", ""));
        assert_eq!(
            lines(ndjson(frames, false, Bounds::default())).await.len(),
            2
        );
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_message_or_without_status_is_an_error_line() {
        let mut frames = message_in_two_frames();
        frames.truncate(1);
        frames.push(trailers("0", ""));
        let lines_cut = lines(ndjson(frames, false, Bounds::default())).await;
        assert_eq!(lines_cut.len(), 1);
        assert!(lines_cut[0].contains("\"internal\""), "{lines_cut:?}");
        let lines_bare = lines(ndjson(message_in_two_frames(), false, Bounds::default())).await;
        assert_eq!(lines_bare.len(), 2);
        assert!(lines_bare[1].contains("\"internal\""), "{lines_bare:?}");
    }
}
