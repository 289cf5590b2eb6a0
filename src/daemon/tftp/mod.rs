//! TFTP (RFC 1350, 2347, 2348, 2349, 7440) for every Pi and PC boot client.
//!
//! Pure: `wire` (packets), `options` (negotiation), `transfer` (one transfer's state machine),
//! `netascii` (conversion block by block), `lookup` (client prefixes), `ratelimit` (ERROR
//! replies per source). I/O: `cache` (shared file contents), `server` (sockets and
//! tasks). Names are made safe by `daemon::names` and found on disk by `daemon::files`, which
//! the HTTP server shares.

pub mod cache;
pub mod lookup;
pub mod netascii;
pub mod options;
pub mod placeholder;
pub mod ratelimit;
pub mod server;
pub mod transfer;
pub mod wire;

pub use server::{ServerConfig, TftpServer};
