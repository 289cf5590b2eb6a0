//! A byte range of a file as a response body: read in fixed-size chunks with positional reads on
//! the blocking pool, one chunk ahead of the one being sent, so the disk and the socket work at
//! the same time while memory stays at two chunks per response whatever the file's size.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

/// Bytes read from disk at a time: larger chunks mean fewer trips to the blocking pool (256 KiB
/// beat 64 KiB in our loopback runs); two of them in flight bound a response's memory.
pub const CHUNK: u64 = 256 * 1024;

/// `len` bytes of a file from `offset`. Ends early, without error, if the file turns out
/// shorter (it changed while being sent); the caller's `Content-Length` then makes hyper close
/// the connection, so the client notices.
pub struct FileBody {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    /// The next chunk, being read.
    next: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    /// Must be called inside a tokio runtime: the first read starts at once.
    pub fn new(file: File, offset: u64, len: u64) -> FileBody {
        let mut body = FileBody { file: Arc::new(file), offset, remaining: len, next: None };
        body.read_ahead();
        body
    }

    /// Start reading the chunk after the ones already read, if any is left.
    fn read_ahead(&mut self) {
        if self.remaining == 0 {
            return;
        }
        let (file, offset, len) = (self.file.clone(), self.offset, self.remaining.min(CHUNK));
        self.next = Some(tokio::task::spawn_blocking(move || read_chunk(&file, offset, len as usize)));
    }
}

/// Up to `len` bytes at `offset`; fewer only at the end of the file.
fn read_chunk(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Some(next) = self.next.as_mut() else { return Poll::Ready(None) };
        let read = match Pin::new(next).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(joined) => joined.map_err(io::Error::other).and_then(|read| read),
        };
        self.next = None;
        match read {
            Ok(chunk) if chunk.is_empty() => {
                self.remaining = 0;
                Poll::Ready(None)
            }
            Ok(chunk) => {
                let n = chunk.len() as u64;
                self.offset += n;
                // A short read means the file ended; nothing more to read ahead.
                self.remaining = if n < self.remaining.min(CHUNK) { 0 } else { self.remaining - n };
                self.read_ahead();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Err(e) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // At most what is left (the chunk being read included); less if the file shrank.
        let mut hint = SizeHint::new();
        hint.set_upper(self.remaining);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        (file, bytes)
    }

    /// The frames `body` yields, and whether it ended with an error.
    async fn frames(mut body: FileBody) -> (Vec<Bytes>, bool) {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => out.push(frame.into_data().unwrap()),
                Err(_) => return (out, true),
            }
        }
        assert!(body.is_end_stream());
        (out, false)
    }

    #[tokio::test]
    async fn ranges_arrive_whole_in_chunks() {
        let len = 2 * CHUNK as usize + 12_345;
        let (file, bytes) = file_of(len);
        for (offset, n) in [(0, len), (1, len - 1), (CHUNK as usize, CHUNK as usize), (len - 1, 1), (100, 5)] {
            let body = FileBody::new(File::open(file.path()).unwrap(), offset as u64, n as u64);
            assert_eq!(body.size_hint().upper(), Some(n as u64));
            let (chunks, failed) = frames(body).await;
            assert!(!failed);
            assert!(chunks.iter().all(|c| c.len() as u64 <= CHUNK && !c.is_empty()));
            assert_eq!(chunks.concat(), &bytes[offset..offset + n], "{offset}+{n}");
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_ends_early_without_error() {
        let (file, bytes) = file_of(CHUNK as usize + 10);
        let body = FileBody::new(File::open(file.path()).unwrap(), 5, 10 * CHUNK);
        let (chunks, failed) = frames(body).await;
        assert!(!failed);
        assert_eq!(chunks.concat(), &bytes[5..]);
        let body = FileBody::new(File::open(file.path()).unwrap(), 10 * CHUNK, 1);
        assert_eq!(frames(body).await, (vec![], false));
    }

    #[tokio::test]
    async fn read_errors_end_the_body_with_an_error() {
        // A directory opens but cannot be read.
        let dir = tempfile::tempdir().unwrap();
        let body = FileBody::new(File::open(dir.path()).unwrap(), 0, 10);
        assert_eq!(frames(body).await, (vec![], true));
    }
}
