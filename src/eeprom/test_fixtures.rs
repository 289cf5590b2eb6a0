//! The real images and Raspberry Pi's reference outputs (`fetch::eeprom_fixtures` finds them), for
//! unit tests.

use super::Chip;
use std::path::PathBuf;

pub struct Fixture {
    pub name: &'static str,
    pub dir: &'static str,
    pub chip: Chip,
    pub bootconf_offset: usize,
    pub build_timestamp: u64,
    /// Content offsets of the 8 update-timestamp bytes, as measured with rpi-eeprom-config (§3.5).
    pub updatetime_at: &'static [usize],
}

pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "pieeprom-2026-05-17",
        dir: "firmware-2711/default",
        chip: Chip::Bcm2711,
        bootconf_offset: 0x72E00,
        build_timestamp: 1_779_045_198,
        updatetime_at: &[524_280],
    },
    Fixture {
        name: "pieeprom-2026-05-26",
        dir: "firmware-2712/default",
        chip: Chip::Bcm2712,
        bootconf_offset: 0xA3000,
        build_timestamp: 1_779_807_685,
        updatetime_at: &[26_552, 662_824],
    },
];

/// `BRAMBLE_FIXTURES`, the shared folder beside the repository, or a fetched copy.
pub fn root() -> PathBuf {
    crate::fetch::eeprom_fixtures::dir()
}

impl Fixture {
    fn read(&self, suffix: &str) -> Vec<u8> {
        let path = root().join(self.dir).join(format!("{}{suffix}", self.name));
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }
    pub fn image(&self) -> Vec<u8> {
        self.read(".bin")
    }
    pub fn bootconf(&self) -> Vec<u8> {
        self.read(".bootconf.txt")
    }
    pub fn f21_bootconf(&self) -> Vec<u8> {
        self.read(".f21.bootconf.txt")
    }
    pub fn f21_image(&self) -> Vec<u8> {
        self.read(".f21.bin")
    }
    pub fn f21_sig(&self) -> Vec<u8> {
        self.read(".f21.sig")
    }
}
