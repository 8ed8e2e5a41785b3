//! The stdio relay: newline-delimited JSON-RPC between the host (our stdin/stdout) and
//! the upstream server (the child's stdin/stdout), both ways, in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::decider::Decider;
use crate::gateway::{Gateway, Session, Step};
use crate::jsonrpc::{self, INVALID_REQUEST};

/// The largest message accepted from the client, in bytes. A longer line is answered
/// with a JSON-RPC error (id `null`: it is not read) and skipped; nothing of it reaches
/// the upstream, and the relay keeps running.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 16 << 20;
/// The largest message relayed from the upstream, in bytes; a longer line is dropped
/// (and logged).
pub const MAX_UPSTREAM_MESSAGE_BYTES: usize = 64 << 20;

/// How many messages may wait for a slow reader before the relay waits for it.
const QUEUE: usize = 1024;

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line, without its newline.
    Text(Vec<u8>),
    /// A line longer than the limit (its length in bytes); it was skipped.
    TooLong(usize),
}

/// Reads newline-delimited messages with a size limit, without ever holding more than
/// the limit in memory.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    skipped: Option<usize>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader of lines of at most `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            buf: Vec::new(),
            skipped: None,
        }
    }

    /// The next line; `None` at the end of the input.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if let Some(len) = self.skipped.take() {
                    return Ok(Some(Line::TooLong(len)));
                }
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Line::Text(std::mem::take(&mut self.buf))));
            }
            let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (available.get(..at).unwrap_or_default(), Some(at + 1)),
                None => (available, None),
            };
            let taken = chunk.len();
            if let Some(len) = self.skipped.as_mut() {
                *len += taken;
            } else if self.buf.len() + taken > self.max {
                self.skipped = Some(self.buf.len() + taken);
                self.buf = Vec::new();
            } else {
                self.buf.extend_from_slice(chunk);
            }
            let consumed = done.unwrap_or(taken);
            self.inner.consume(consumed);
            if done.is_some() {
                if let Some(len) = self.skipped.take() {
                    return Ok(Some(Line::TooLong(len)));
                }
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(Line::Text(line)));
            }
        }
    }
}

/// Which side ended the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client closed its input; the upstream's input was closed in turn.
    ClientClosed,
    /// The upstream closed its output (it exited or was killed).
    UpstreamClosed,
}

/// Writes queued messages, one per line, flushing when the queue runs dry.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut out: W,
    mut rx: mpsc::Receiver<String>,
) -> std::io::Result<()> {
    while let Some(first) = rx.recv().await {
        out.write_all(first.as_bytes()).await?;
        out.write_all(b"\n").await?;
        while let Ok(next) = rx.try_recv() {
            out.write_all(next.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
    }
    out.shutdown().await
}

/// Relays between a client and an upstream until one side closes. After the client
/// closes, calls being decided are finished and forwarded, the upstream's input is
/// closed, and its answers are relayed for up to `grace`; whatever is still
/// unanswered then gets a JSON-RPC error.
pub async fn relay<D, CR, CW, UR, UW>(
    gateway: Arc<Gateway<D>>,
    session: Arc<Session>,
    client_in: CR,
    client_out: CW,
    upstream_out: UR,
    upstream_in: UW,
    grace: Duration,
) -> End
where
    D: Decider + ?Sized,
    CR: AsyncBufRead + Unpin + Send + 'static,
    CW: AsyncWrite + Unpin + Send + 'static,
    UR: AsyncBufRead + Unpin + Send + 'static,
    UW: AsyncWrite + Unpin + Send + 'static,
{
    let (to_client, client_rx) = mpsc::channel::<String>(QUEUE);
    let (to_upstream, upstream_rx) = mpsc::channel::<String>(QUEUE);
    let client_writer = tokio::spawn(async move {
        if let Err(e) = write_lines(client_out, client_rx).await {
            tracing::debug!(error = %e, "the client's output closed");
        }
    });
    // Forwarded messages that cannot be written (the upstream is gone) are answered
    // with an error when they were requests.
    let upstream_writer = {
        let to_client = to_client.clone();
        let session = Arc::clone(&session);
        let server = gateway.server().to_owned();
        tokio::spawn(async move {
            let mut rx = upstream_rx;
            let mut out = upstream_in;
            let mut broken = false;
            while let Some(message) = rx.recv().await {
                if !broken {
                    let written = async {
                        out.write_all(message.as_bytes()).await?;
                        out.write_all(b"\n").await?;
                        out.flush().await
                    }
                    .await;
                    broken = written.is_err();
                    if !broken {
                        continue;
                    }
                }
                let why = format!("the upstream MCP server {server:?} is not running");
                if let Some(error) = session.unreachable(&message, &why) {
                    let _ = to_client.send(error).await;
                }
            }
            let _ = out.shutdown().await;
        })
    };
    let mut upstream_reader = {
        let to_client = to_client.clone();
        let gateway = Arc::clone(&gateway);
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            let mut lines = LineReader::new(upstream_out, MAX_UPSTREAM_MESSAGE_BYTES);
            loop {
                match lines.next_line().await {
                    Ok(Some(Line::Text(line))) => {
                        if let Some(out) = gateway.from_upstream(&session, &line).await
                            && to_client.send(out).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(Some(Line::TooLong(len))) => tracing::warn!(
                        len,
                        limit = MAX_UPSTREAM_MESSAGE_BYTES,
                        "dropped a message from the upstream that exceeds the limit"
                    ),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the upstream's output failed");
                        break;
                    }
                }
            }
        })
    };

    let mut deciding = JoinSet::new();
    let mut client = LineReader::new(client_in, MAX_CLIENT_MESSAGE_BYTES);
    let end = loop {
        tokio::select! {
            _ = &mut upstream_reader => break End::UpstreamClosed,
            Some(_) = deciding.join_next(), if !deciding.is_empty() => {}
            line = client.next_line() => {
                let line = match line {
                    Ok(Some(Line::Text(line))) => line,
                    Ok(Some(Line::TooLong(len))) => {
                        let message = format!(
                            "invalid request: the message is {len} bytes, more than the {MAX_CLIENT_MESSAGE_BYTES} bytes the gateway accepts; it was not forwarded"
                        );
                        let _ = to_client.send(jsonrpc::error_response(None, INVALID_REQUEST, &message)).await;
                        continue;
                    }
                    Ok(None) => break End::ClientClosed,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the client's input failed");
                        break End::ClientClosed;
                    }
                };
                for step in gateway.from_client(&session, &line) {
                    match step {
                        Step::Forward(bytes) => {
                            let _ = to_upstream.send(bytes).await;
                        }
                        Step::Reply(bytes) => {
                            let _ = to_client.send(bytes).await;
                        }
                        Step::Decide { call, raw } => {
                            let gateway = Arc::clone(&gateway);
                            let session = Arc::clone(&session);
                            let to_client = to_client.clone();
                            let to_upstream = to_upstream.clone();
                            deciding.spawn(async move {
                                match gateway.decide(&session, call, raw).await {
                                    Step::Forward(bytes) => {
                                        let _ = to_upstream.send(bytes).await;
                                    }
                                    Step::Reply(bytes) => {
                                        let _ = to_client.send(bytes).await;
                                    }
                                    Step::Decide { .. } => {}
                                }
                            });
                        }
                    }
                }
            }
        }
    };
    match end {
        End::ClientClosed => {
            // Finish what was asked, then close the upstream's input and relay its
            // last answers.
            while deciding.join_next().await.is_some() {}
            drop(to_upstream);
            let _ = upstream_writer.await;
            if tokio::time::timeout(grace, &mut upstream_reader)
                .await
                .is_err()
            {
                upstream_reader.abort();
                let _ = upstream_reader.await;
            }
        }
        End::UpstreamClosed => {
            // Nothing more can be forwarded: refuse what is being decided.
            deciding.abort_all();
            while deciding.join_next().await.is_some() {}
            drop(to_upstream);
            upstream_writer.abort();
            let _ = upstream_writer.await;
        }
    }
    for error in gateway
        .upstream_closed(&session)
        .into_iter()
        .chain(session.abandon_deciding(gateway.server()))
    {
        let _ = to_client.send(error).await;
    }
    drop(to_client);
    let _ = client_writer.await;
    end
}
