//! What updates a Pi's bootloader: `pieeprom.upd` (the image with its new config and a fresh
//! update timestamp), `pieeprom.sig` and `recovery.bin`, as `rpi-eeprom-update` prepares them
//! (research/pi-netboot.md §3.8). On an SD card, the boot ROM runs recovery.bin, which flashes
//! pieeprom.upd and renames itself to recovery.000; over TFTP, the bootloader's self-update
//! takes pieeprom.upd/.sig from the client's boot directory.
//!
//! The card's disk layout is described here as data; `disk` builds the bytes.

use super::{EepromImage, ImageError, bootconf, sig};

/// The card: an MBR with one FAT32 partition (type 0x0c) at 1 MiB, as Raspberry Pi's own
/// bootloader card has, but 64 MiB instead of 256: enough clusters of 512 bytes for FAT32, and a
/// quarter of the bytes to flash.
pub const CARD_START_LBA: u32 = 2048;
pub const CARD_PARTITION_BYTES: u64 = 64 << 20;
pub const CARD_BYTES_PER_CLUSTER: u32 = 512;
pub const CARD_PARTITION_TYPE: u8 = 0x0c;
pub const CARD_LABEL: &str = "RPI-EEPROM";

/// One file of the update, by its name on the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// The configuration to write: `replacement` (a whole file) or the image's own, then each
/// `KEY=VALUE` edit in order.
pub fn edited_config(current: &str, replacement: Option<&str>, edits: &[(String, String)]) -> String {
    let mut text = replacement.unwrap_or(current).to_string();
    for (key, value) in edits {
        text = bootconf::set(&text, key, value);
    }
    text
}

/// The update files for `image` with `config` as its bootconf.txt, stamped with `ts`, in the
/// order they are written.
pub fn update_files(
    image: &EepromImage,
    config: &[u8],
    ts: u32,
    recovery: Vec<u8>,
) -> Result<Vec<UpdateFile>, ImageError> {
    let configured = image.with_bootconf(config)?;
    let upd = EepromImage::parse(&configured)?.with_update_timestamp(ts)?;
    let signature = sig::digest_file(&upd, u64::from(ts), image.chip());
    Ok(vec![
        UpdateFile { name: "pieeprom.sig", bytes: signature.into_bytes() },
        UpdateFile { name: "pieeprom.upd", bytes: upd },
        UpdateFile { name: "recovery.bin", bytes: recovery },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eeprom::test_fixtures::FIXTURES;

    #[test]
    fn update_is_the_configured_image_with_a_timestamp_and_a_matching_sig() {
        for fx in FIXTURES {
            let bytes = fx.image();
            let image = EepromImage::parse(&bytes).unwrap();
            let current = std::str::from_utf8(image.bootconf().unwrap()).unwrap();
            let config = edited_config(current, None, &[("BOOT_ORDER".into(), "0xf21".into())]);
            assert_eq!(config.as_bytes(), fx.f21_bootconf().as_slice());
            let files = update_files(&image, config.as_bytes(), 1_787_152_470, b"rec".to_vec()).unwrap();
            let upd = &files[1].bytes;
            let f21 = fx.f21_image();
            let differ: Vec<usize> = (0..upd.len()).filter(|&i| upd[i] != f21[i]).collect();
            assert!(differ.iter().all(|&i| fx.updatetime_at.iter().any(|&at| (at..at + 8).contains(&i))));
            let sig = String::from_utf8(files[0].bytes.clone()).unwrap();
            assert!(sig.starts_with(&sig::sha256_hex(upd)));
            assert!(sig.contains("ts: 1787152470\n"));
        }
    }
}
