//! The `.sig` file that accompanies `pieeprom.upd`/`pieeprom.bin` (rpi-eeprom-digest's format,
//! research/pi-netboot.md §2 and §3.7): the file's sha256 in lower-case hex, `ts: <unix seconds>`
//! and `target-soc: <2711|2712>`, one per line.
//!
//! The bootloader's self-update only applies an image whose `ts` is newer than the timestamp
//! already in its EEPROM, so real deployments want a fresh `ts`.

use super::Chip;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The signature file for `image`, byte for byte what `rpi-eeprom-digest -c <chip>` writes.
pub fn digest_file(image: &[u8], ts: u64, chip: Chip) -> String {
    format!("{}\nts: {ts}\ntarget-soc: {}\n", sha256_hex(image), chip.number())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eeprom::test_fixtures::FIXTURES;

    #[test]
    fn fixture_signatures_are_reproduced() {
        for fx in FIXTURES {
            let sig = digest_file(&fx.f21_image(), 1_787_152_470, fx.chip);
            assert_eq!(sig.as_bytes(), fx.f21_sig().as_slice(), "{}", fx.name);
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
