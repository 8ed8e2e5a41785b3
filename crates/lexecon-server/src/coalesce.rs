//! Fewer, larger writes on a connection: [`CoalescingStream`].
//!
//! HTTP/2 flushes its connection each time the connection task runs, and tokio runs a
//! task it has just woken next. When a group commit answers twenty calls at once, each
//! answer wakes the connection task and is flushed alone: one `writev` per response,
//! each a full trip through the kernel's TCP stack (about a third of the server's CPU
//! over loopback, measured). This stream accepts writes into a buffer and, on a flush,
//! first lets every task that is ready on this worker run, through tokio's deferred wake
//! (the one [`tokio::task::yield_now`] uses), then writes what all of them produced in
//! one call. The delay is bounded: deferred tasks are woken as soon as the worker runs
//! out of ready tasks, and at least every 61 polls when it does not.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this many buffered bytes a write goes to the socket without waiting for a flush.
const MAX_BUFFERED: usize = 256 * 1024;
/// What an idle connection keeps of a buffer that grew past [`MAX_BUFFERED`].
const KEPT_CAPACITY: usize = 16 * 1024;

/// A byte stream whose flushes wait until the worker has no other ready task, so that
/// what several tasks write in the meantime reaches the socket in one call.
#[derive(Debug)]
pub struct CoalescingStream<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    written: usize,
    /// The deferred wake a pending flush waits for.
    flush_turn: Option<Arc<Turn>>,
}

/// Set once the scheduler gets to a deferred wake; wakes the task that waits for it.
#[derive(Debug)]
struct Turn {
    reached: AtomicBool,
    task: Waker,
}

impl Wake for Turn {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.reached.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl<T> CoalescingStream<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        CoalescingStream {
            inner,
            buf: Vec::new(),
            written: 0,
            flush_turn: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> CoalescingStream<T> {
    /// Writes the whole buffer to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let rest = self.buf.get(self.written..).unwrap_or_default();
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        if self.buf.capacity() > MAX_BUFFERED {
            // A burst (a large export, say) need not pin its buffer for the connection's life.
            self.buf.shrink_to(KEPT_CAPACITY);
        }
        self.written = 0;
        self.flush_turn = None;
        Poll::Ready(Ok(()))
    }

    /// Whether this flush may go to the socket now: after one deferred wake.
    fn turn_reached(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(turn) = &self.flush_turn {
            return turn.reached.load(Ordering::Acquire);
        }
        let turn = Arc::new(Turn {
            reached: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(Arc::clone(&turn));
        // Polled once, `yield_now` hands our waker to the scheduler's deferred list (or,
        // outside a runtime, wakes it at once) and returns Pending; dropping it then
        // keeps the deferral.
        let yielded = std::pin::pin!(tokio::task::yield_now());
        let _ = yielded.poll(&mut Context::from_waker(&waker));
        let reached = turn.reached.load(Ordering::Acquire);
        self.flush_turn = Some(turn);
        reached
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescingStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescingStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() >= MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() >= MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            self.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        if !self.turn_reached(cx) {
            return Poll::Pending;
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for CoalescingStream<tokio::net::TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Records each write that reaches the "socket".
    #[derive(Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Recorder {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_flush_waits_for_the_other_ready_tasks_and_sends_their_bytes_in_one_write() {
        let socket = Recorder::default();
        let mut stream = CoalescingStream::new(socket.clone());
        stream.write_all(b"first ").await.unwrap();
        // The first flush attempt yields to the scheduler instead of writing...
        let attempt = poll_fn(|cx| Poll::Ready(Pin::new(&mut stream).poll_flush(cx))).await;
        assert!(attempt.is_pending());
        assert!(
            socket.writes().is_empty(),
            "nothing may reach the socket yet"
        );
        // ...so what is written before its turn comes goes out with it.
        stream.write_all(b"second").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stream.flush())
            .await
            .expect("the deferred flush must complete on its own")
            .unwrap();
        assert_eq!(socket.writes(), vec![b"first second".to_vec()]);
        // An empty buffer flushes at once.
        stream.flush().await.unwrap();
        assert_eq!(socket.writes().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_arrive_whole_and_in_order_on_a_real_pipe_and_shutdown_flushes() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut stream = CoalescingStream::new(a);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut expected = Vec::new();
        for i in 0..2_000u32 {
            let chunk = format!("chunk {i};");
            expected.extend_from_slice(chunk.as_bytes());
            stream.write_all(chunk.as_bytes()).await.unwrap();
            if i % 7 == 0 {
                stream.flush().await.unwrap();
            }
        }
        // The last chunks are only buffered: shutdown must send them.
        stream.shutdown().await.unwrap();
        drop(stream);
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_large_buffer_goes_to_the_socket_without_waiting_for_a_flush() {
        let socket = Recorder::default();
        let mut stream = CoalescingStream::new(socket.clone());
        let block = vec![7u8; MAX_BUFFERED];
        stream.write_all(&block).await.unwrap();
        assert!(socket.writes().is_empty());
        stream.write_all(b"more").await.unwrap();
        assert_eq!(socket.writes(), vec![block.clone()]);
        // Once drained, the connection does not keep the burst's memory.
        stream.write_all(&block).await.unwrap();
        stream.write_all(&block).await.unwrap();
        stream.flush().await.unwrap();
        assert!(
            stream.buf.capacity() <= MAX_BUFFERED,
            "{}",
            stream.buf.capacity()
        );
    }
}
