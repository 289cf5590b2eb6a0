//! DHCP and proxyDHCP for every Pi and PC boot client (RFC 2131/2132, PXE 2.1, RFC 4578).
//!
//! Pure: `wire` (parse requests, emit replies on dhcproto), `pxe` (option 43/60/175 bytes),
//! `classify` (Pi, PC firmware, iPXE, HTTP boot), `known` (the lab's clients), `boot` (which
//! file each PC class boots), `leases` (the pool state machine), `offers` (recent boot offers,
//! for the Pi 4's REQUEST without option 60) and `reply` (the decision). I/O: `lease_file`
//! (the snapshot and its journal, synced before an ACK leaves, group-committed) and `server`
//! (sockets bound to the lab interface).

pub mod boot;
pub mod classify;
pub mod known;
pub mod lease_file;
pub mod leases;
pub mod offers;
pub mod pxe;
pub mod reply;
pub mod server;
pub mod wire;

pub use reply::{Answer, Mode};
pub use server::{DhcpServer, DhcpServerConfig};
