//! `bramble serve`: the daemon that boots the lab. Each protocol has a pure core (wire codec and
//! state machines, no sockets) and a thin tokio layer; `net` holds the socket plumbing (and
//! `holder`, pure, tells who holds an address a bind found in use), `config` the daemon's
//! configuration file and `current` what a reload (SIGHUP) swaps. `names` (requested names made
//! safe) and `files` (finding them on disk, inside the lab) are shared by the TFTP and HTTP
//! servers.

pub mod config;
pub mod current;
pub mod dhcp;
pub mod files;
pub mod holder;
pub mod http;
pub mod names;
pub mod net;
pub mod tftp;
