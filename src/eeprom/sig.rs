//! The `.sig` file that accompanies `pieeprom.upd`/`pieeprom.bin` (rpi-eeprom-digest's format,
//! research/pi-netboot.md §2 and §3.7): the file's sha256 in lower-case hex, `ts: <unix seconds>`
//! and `target-soc: <2711|2712>`, one per line.
//!
//! The bootloader's self-update only applies an image whose `ts` is newer than the timestamp
//! already in its EEPROM, so real deployments want a fresh `ts`.

use super::Chip;
pub use crate::digest::sha256_hex;

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
}
