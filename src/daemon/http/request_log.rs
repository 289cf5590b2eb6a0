//! One log line per request, written when its response body is finished or dropped (sent in
//! full, cut short by the client, or abandoned when the connection closes), so `bytes` and
//! `ms` describe the whole transfer rather than the moment the headers left.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tracing::{debug, info, warn};

/// What the log line says about one request.
#[derive(Debug)]
pub struct RequestLog {
    pub peer: SocketAddr,
    pub method: String,
    /// As requested, still percent-encoded (so it cannot smuggle control characters into
    /// the log).
    pub path: String,
    pub status: u16,
    /// Body bytes the response declares; the transfer is complete when all of them went out.
    pub expected: u64,
    pub bytes: u64,
    /// Where the bytes came from: `generated`, the resolved file, or nothing for a refusal.
    pub source: Option<String>,
    pub started: Instant,
    /// Why the request was refused, or what went wrong while answering it; the outcome then.
    pub error: Option<String>,
}

impl RequestLog {
    pub fn new(peer: SocketAddr, method: &str, path: &str) -> RequestLog {
        RequestLog {
            peer,
            method: method.to_string(),
            path: path.to_string(),
            status: 0,
            expected: 0,
            bytes: 0,
            source: None,
            started: Instant::now(),
            error: None,
        }
    }

    fn outcome(&self) -> &str {
        match &self.error {
            Some(e) => e,
            None if self.bytes >= self.expected => "complete",
            None => "incomplete: the connection closed first",
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let source = self.source.as_deref().unwrap_or("-");
        let outcome = self.outcome();
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    peer = %self.peer,
                    method = %self.method,
                    path = %self.path,
                    status = self.status,
                    bytes = self.bytes,
                    ms,
                    source,
                    outcome,
                    "http request"
                )
            };
        }
        // HEAD is how EDK2 and download tools probe before each GET: noise at the default level.
        if self.status >= 500 {
            line!(warn)
        } else if self.method == "HEAD" {
            line!(debug)
        } else {
            line!(info)
        }
    }
}

/// A response body that counts what it sends into its [`RequestLog`].
pub struct LoggedBody {
    inner: UnsyncBoxBody<Bytes, io::Error>,
    log: RequestLog,
}

impl LoggedBody {
    pub fn new(inner: UnsyncBoxBody<Bytes, io::Error>, log: RequestLog) -> LoggedBody {
        LoggedBody { inner, log }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => this.log.bytes += frame.data_ref().map_or(0, |d| d.len() as u64),
            Some(Err(e)) => this.log.error = Some(format!("read error: {e}")),
            None if this.log.bytes < this.log.expected => {
                this.log.error = Some("the file ended early: it changed while being sent".into())
            }
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
