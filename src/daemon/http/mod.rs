//! HTTP/1.1 file serving for the boot clients that fetch over HTTP: UEFI HTTP boot (EDK2 asks
//! HEAD, then GET, and needs `Content-Length`), iPXE scripts and images, and the Pi's HTTP
//! boot (`boot.sig`, `boot.img`; it follows no redirects). Read-only, GET and HEAD only, single
//! byte ranges, never a redirect, never a directory listing, never chunked for files.
//!
//! Pure: `target` (the request path made safe), `range` (the Range header), `representation`
//! (length, type, validators), `plan` (status, headers and bytes for a request). I/O: `handler`
//! (one request: generator, filesystem, streamed body), `file_body` (a file range read ahead in chunks), `request_log` (the line per request),
//! `server` (socket, connections, limits, timeouts). `generate` is the hook for content made per
//! request. Names resolve through `daemon::names` and `daemon::files`, as for TFTP.

mod file_body;
pub mod generate;
mod handler;
pub mod plan;
pub mod range;
pub mod representation;
mod request_log;
pub mod server;
pub mod target;

pub use generate::{Generate, GenerateRequest, Generated};
pub use server::{HttpServer, ServerConfig};
