//! `bramble build`: from a validated recipe and its fetched inputs to the lab — the shared
//! client root converted for NFS, each OS's boot files, each client's overrides, the PC boot
//! folder, the bootloader updates, and the daemon's configuration (DESIGN.md, "The lab on
//! disk"). Deciding is pure (trees in, trees out); `emit` is the only writer.
//!
//! Not for reading inputs (`source`, `fetch`) or for serving the lab (`daemon`).

pub mod daemon_toml;
pub mod eeprom;
pub mod emit;
pub mod emit_image;
pub mod ids;
pub mod menu;
pub mod nfsroot;
pub mod overlay;
pub mod pc;
pub mod pi_boot;
pub mod plan;
pub mod server_image;
pub mod server_root;
pub mod tree_edit;
