//! The bootloader EEPROM releases Bramble uses for each chip: pinned files from Raspberry Pi's
//! rpi-eeprom repository (the `default` channel, which Raspberry Pi OS installs), each with the
//! recovery.bin that flashes it. Pinned by commit and sha256, so a lab rebuilt later gets the
//! same bootloader; a newer Bramble moves the pins deliberately.

use crate::eeprom::Chip;

/// One pinned file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedFile {
    pub url: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// A bootloader image and its recovery.bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EepromRelease {
    pub chip: Chip,
    pub image: PinnedFile,
    pub recovery: PinnedFile,
}

/// Where the pinned files come from (rpi-eeprom at the commits that last touched each file, as
/// the fixtures' SOURCES.md records); a `--mirror` for this prefix serves them locally.
pub const RPI_EEPROM: &str = "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom";

pub const RELEASES: &[EepromRelease] = &[
    EepromRelease {
        chip: Chip::Bcm2711,
        image: PinnedFile {
            url: "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom/d83d30ceccb218901a59e5c831cd3cd8df7c8c46/firmware-2711/default/pieeprom-2026-05-17.bin",
            sha256: "f1da1bda48c8f19d6eccd94f160a2c8da48fd0acdbfa47f0ac58353208d188c3",
            size: 524_288,
        },
        recovery: PinnedFile {
            url: "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom/d83d30ceccb218901a59e5c831cd3cd8df7c8c46/firmware-2711/default/recovery.bin",
            sha256: "9ec8816886f3938d962a837347d65ccc1d03e811a84bf1ad4b608906b288d995",
            size: 100_140,
        },
    },
    EepromRelease {
        chip: Chip::Bcm2712,
        image: PinnedFile {
            url: "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom/05d94be4554ce44a057bfce8d0dd37d951703dab/firmware-2712/default/pieeprom-2026-05-26.bin",
            sha256: "fee8bee6a738a1a61004f0770f15534de7a48a2a199dc4c7af7ed73ab04f18dd",
            size: 2_097_152,
        },
        recovery: PinnedFile {
            url: "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom/8cf437f4c2c3f1fd7d950fe02f19c5a209d4ff1b/firmware-2712/default/recovery.bin",
            sha256: "73dab9a01c139b7d995ac9a4055ee0d15551d7f8dbf1c2605bae584ef7126e0c",
            size: 105_396,
        },
    },
];

/// The pinned release for `chip`.
pub fn release(chip: Chip) -> &'static EepromRelease {
    RELEASES.iter().find(|r| r.chip == chip).expect("every chip has a pinned release")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_point_into_rpi_eeprom_at_a_commit() {
        for r in RELEASES {
            for f in [r.image, r.recovery] {
                assert!(f.url.starts_with(RPI_EEPROM), "{}", f.url);
                assert!(f.url.contains(&format!("/firmware-{}/default/", r.chip.number())));
                assert_eq!(f.sha256.len(), 64);
            }
        }
        assert_eq!(release(Chip::Bcm2712).image.size, 2_097_152);
    }

    #[test]
    fn pins_match_the_shared_fixtures() {
        // The fixtures are byte copies of the same files; their hashes must agree with the pins.
        let root = crate::fetch::eeprom_fixtures::dir();
        for r in RELEASES {
            let dir = root.join(format!("firmware-{}/default", r.chip.number()));
            let image = r.image.url.rsplit('/').next().unwrap();
            for (name, pin) in [(image, r.image), ("recovery.bin", r.recovery)] {
                let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(crate::eeprom::sig::sha256_hex(&bytes), pin.sha256, "{name}");
                assert_eq!(bytes.len() as u64, pin.size);
            }
        }
    }
}
