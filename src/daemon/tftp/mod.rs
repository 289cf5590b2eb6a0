//! TFTP (RFC 1350, 2347, 2348, 2349, 7440) for every Pi and PC boot client.
//!
//! Pure: `wire` (packets), `options` (negotiation), `transfer` (one transfer's state machine),
//! `lookup` (names and client prefixes). I/O: `files` (the filesystem walk), `cache` (shared file
//! contents), `server` (sockets and tasks).

pub mod cache;
pub mod files;
pub mod lookup;
pub mod options;
pub mod server;
pub mod transfer;
pub mod wire;

pub use server::{ServerConfig, TftpServer};
