//! The Raspberry Pi bootloader EEPROM: `pieeprom.bin` images (sections, the embedded
//! `bootconf.txt`, the update timestamp), the bootloader configuration language, `.sig` files,
//! and the set of files that updates a Pi's EEPROM.
//!
//! Pure: bytes in, bytes out. Reading files and writing images belongs to the caller.

pub mod bootconf;
pub mod card;
pub mod image;
pub mod sig;
#[cfg(test)]
pub(crate) mod test_fixtures;

pub use image::{Chip, EepromImage, ImageError};
