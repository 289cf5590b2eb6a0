//! Bramble builds and network-boots Raspberry Pi labs. ARCHITECTURE.md maps the modules.

pub mod cli;
pub mod daemon;
pub mod deploy;
pub mod diagnostic;
pub mod digest;
pub mod disk;
pub mod eeprom;
pub mod fetch;
pub mod lab;
pub mod leftovers;
pub mod output;
pub mod read_at;
pub mod recipe;
pub mod source;
pub mod tree;
