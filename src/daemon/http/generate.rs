//! Content made per request rather than read from the lab tree: the hook through which another
//! part of the daemon serves, say, the iPXE script for one client (`/ipxe/<mac>.ipxe`). The
//! server asks the generator first and falls back to the filesystem when it declines. Not for
//! large bodies: a generated body is held in memory whole.

use bytes::Bytes;
use std::net::SocketAddr;

/// A request as a generator sees it.
#[derive(Clone, Copy, Debug)]
pub struct GenerateRequest<'a> {
    /// The path made safe: percent-decoded, split on `/` and `\`, with empty and `.`
    /// components dropped and joined again with `/`, without a leading `/`
    /// (`ipxe/dc-a6-32-01-36-c2.ipxe`). A path that climbs out (`..`) or holds control
    /// characters never reaches a generator.
    pub path: &'a str,
    /// The query string as sent, still percent-encoded, without the `?`.
    pub query: Option<&'a str>,
    /// The client's address and port.
    pub peer: SocketAddr,
    /// The server address the client connected to: the one to write into URLs the client
    /// will follow (a multi-homed server has several).
    pub local: SocketAddr,
}

/// A generated response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub body: Bytes,
    /// Its media type, e.g. `text/plain; charset=utf-8`.
    pub content_type: &'static str,
}

impl Generated {
    pub fn new(body: impl Into<Bytes>, content_type: &'static str) -> Generated {
        Generated { body: body.into(), content_type }
    }
}

/// Makes content for some paths. GET and HEAD of a generated body behave as for a file:
/// `Content-Length`, byte ranges, HEAD without a body; it is sent with `Cache-Control:
/// no-store` and no validators, since it may differ on every request.
///
/// `generate` runs on the server's async worker threads for every GET and HEAD, so it must be
/// quick and must not block (no file or network I/O; look things up in memory).
pub trait Generate: Send + Sync {
    /// The content for `request`, or `None` to let the server look for a file.
    fn generate(&self, request: &GenerateRequest<'_>) -> Option<Generated>;
}
