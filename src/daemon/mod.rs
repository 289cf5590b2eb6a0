//! `bramble serve`: the daemon that boots the lab. Each protocol has a pure core (wire codec and
//! state machines, no sockets) and a thin tokio layer; `net` holds the socket plumbing and
//! `config` the daemon's configuration file.

pub mod config;
pub mod dhcp;
pub mod net;
pub mod tftp;
