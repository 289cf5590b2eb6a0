//! The lab's bootloader updates (`eeprom/`): for each Pi 4/5 chip, the update files a netbooted
//! Pi takes over TFTP (pieeprom.upd + pieeprom.sig under its prefix) and an SD card image for
//! the first switch to network boot; per client when a client has its own `[client.eeprom]`.

use crate::disk::{fat, mbr};
use crate::eeprom::card::{self, UpdateFile};
use crate::eeprom::{Chip, EepromImage};
use crate::recipe::{Client, Recipe};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The card's bytes: MBR, one FAT32 partition holding the update files. Disk and volume ids
/// come from the content, so the same inputs give the same card.
pub fn card_image(files: &[UpdateFile], ts: u32) -> Result<Vec<u8>> {
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.name.as_bytes());
        hash.update(Sha256::digest(&f.bytes));
    }
    let digest = hash.finalize();
    let disk_id = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1);
    let volume_id = u32::from_le_bytes([digest[4], digest[5], digest[6], digest[7]]);
    let spec = fat::Fat32Spec {
        label: card::CARD_LABEL.into(),
        volume_id,
        size_bytes: card::CARD_PARTITION_BYTES,
        bytes_per_cluster: card::CARD_BYTES_PER_CLUSTER,
        hidden_sectors: card::CARD_START_LBA,
        timestamp: i64::from(ts),
    };
    let named: Vec<(&str, &[u8])> = files.iter().map(|f| (f.name, f.bytes.as_slice())).collect();
    let volume = fat::fat32_volume(&spec, &named)?;
    mbr::mbr_disk(
        disk_id,
        &[mbr::MbrPartition {
            start_lba: card::CARD_START_LBA,
            kind: card::CARD_PARTITION_TYPE,
            bootable: false,
            content: &volume,
        }],
    )
}

/// One chip's bootloader release, as fetched.
pub struct Release {
    pub chip: Chip,
    pub image: Vec<u8>,
    pub recovery: Vec<u8>,
}

/// A set of update files for some clients of one chip.
pub struct Update {
    pub chip: Chip,
    /// `None`: the lab-wide settings (`eeprom/<chip>/`); `Some(name)`: that client's own.
    pub client: Option<String>,
    pub config: String,
    pub files: Vec<UpdateFile>,
    /// The update timestamp its image and `.sig` carry.
    pub ts: u32,
}

/// The update timestamp of one chip's bootloader updates, pinned (in the lock) to what the
/// updates hold. A Pi installs a network update only if its `ts:` is newer than the last one it
/// installed (research/pi-netboot.md §3.8), so the timestamp must grow whenever an image
/// changes and stay put while none does (the same recipe and lock give the same bytes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    /// The chip: 2711 or 2712.
    pub chip: u32,
    /// sha256 over the chip's update images as configured, before the timestamp is set, each
    /// with the clients it is for.
    pub sha256: String,
    pub ts: u32,
}

/// How the updates' timestamp is chosen.
#[derive(Clone, Copy, Debug)]
pub enum Timestamps<'a> {
    /// A chip whose updates are as `pins` says keeps its pinned timestamp; one whose updates
    /// changed gets `base`, or one second after its pinned timestamp if that is not older.
    Pinned { base: u32, pins: &'a [Stamp] },
    /// This timestamp for every update (`--eeprom-timestamp`).
    Fixed(u32),
}

/// The timestamp for `chip`'s updates, whose content hash is `sha256`.
pub fn stamp(chip: Chip, sha256: String, how: Timestamps) -> Stamp {
    let chip = chip.number();
    let ts = match how {
        Timestamps::Fixed(ts) => ts,
        Timestamps::Pinned { base, pins } => match pins.iter().find(|p| p.chip == chip) {
            Some(p) if p.sha256 == sha256 => p.ts,
            Some(p) => base.max(p.ts.saturating_add(1)),
            None => base,
        },
    };
    Stamp { chip, sha256, ts }
}

/// The settings one client's bootloader gets: the image's own config with the lab's
/// `[eeprom]` and then the client's `[client.eeprom]` applied.
fn config_for(image: &EepromImage, recipe: &Recipe, client: Option<&Client>) -> Result<String> {
    let current = std::str::from_utf8(image.bootconf()?).context("the bootloader's bootconf.txt is not text")?;
    let mut edits = recipe.eeprom.clone();
    if let Some(c) = client {
        edits.extend(c.eeprom.iter().cloned());
    }
    let config = card::edited_config(current, None, &edits);
    crate::eeprom::bootconf::check_len(&config).map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// Every update the lab needs: one per chip, plus one per client with its own settings; and
/// the timestamp each chip's updates carry.
pub fn updates(recipe: &Recipe, releases: &[Release], how: Timestamps) -> Result<(Vec<Update>, Vec<Stamp>)> {
    let mut out = Vec::new();
    let mut stamps = Vec::new();
    for r in releases {
        let image = EepromImage::parse(&r.image).with_context(|| format!("the pinned bootloader for {}", r.chip))?;
        let mut configs = vec![(None, config_for(&image, recipe, None)?)];
        for c in recipe.clients.iter().filter(|c| c.model.eeprom_chip() == Some(r.chip) && !c.eeprom.is_empty()) {
            configs.push((Some(c.name.clone()), config_for(&image, recipe, Some(c))?));
        }
        // Everything that decides the images but the timestamp: the configured image of each
        // update and whom it is for (a Pi moving to another update must see a newer one).
        let mut hash = Sha256::new();
        for (client, config) in &configs {
            hash.update(client.as_deref().unwrap_or("").as_bytes());
            hash.update([0]);
            hash.update(Sha256::digest(image.with_bootconf(config.as_bytes())?));
        }
        let stamp = stamp(r.chip, crate::digest::hex(&hash.finalize()), how);
        for (client, config) in configs {
            let files = card::update_files(&image, config.as_bytes(), stamp.ts, r.recovery.clone())?;
            out.push(Update { chip: r.chip, client, config, files, ts: stamp.ts });
        }
        stamps.push(stamp);
    }
    Ok((out, stamps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chip_keeps_its_timestamp_until_its_updates_change() {
        let sha = |c: char| c.to_string().repeat(64);
        let pins = [Stamp { chip: 2711, sha256: sha('a'), ts: 2_000 }];
        let pinned = |base| Timestamps::Pinned { base, pins: &pins };
        // Unchanged: the pinned time, even if the build's epoch moved either way.
        assert_eq!(stamp(Chip::Bcm2711, sha('a'), pinned(1_000)).ts, 2_000);
        assert_eq!(stamp(Chip::Bcm2711, sha('a'), pinned(9_000)).ts, 2_000);
        // Changed: newer than the pin, and not older than the build's epoch.
        assert_eq!(stamp(Chip::Bcm2711, sha('b'), pinned(1_000)).ts, 2_001);
        assert_eq!(stamp(Chip::Bcm2711, sha('b'), pinned(9_000)).ts, 9_000);
        // Not pinned yet: the epoch.
        assert_eq!(stamp(Chip::Bcm2712, sha('a'), pinned(1_000)), Stamp { chip: 2712, sha256: sha('a'), ts: 1_000 });
        assert_eq!(stamp(Chip::Bcm2711, sha('a'), Timestamps::Fixed(5)).ts, 5);
    }

    use crate::eeprom::bootconf;
    use crate::eeprom::test_fixtures::FIXTURES;

    /// The pinned release of `chip`, as the build fetches it for a lab with that chip only.
    fn releases(chip: Chip) -> Vec<Release> {
        FIXTURES
            .iter()
            .filter(|fx| fx.chip == chip)
            .map(|fx| Release { chip: fx.chip, image: fx.image(), recovery: b"rec".to_vec() })
            .collect()
    }

    /// A recipe whose one setting makes `chip`'s bootconf.txt `len` bytes.
    fn recipe_of(model: &str, chip: Chip, len: usize) -> String {
        let edits = [("BOOT_ORDER".to_string(), "0xf21".to_string()), ("X".to_string(), String::new())];
        let empty = bootconf::edited_len(chip, &edits).0;
        let value = "v".repeat(len - empty);
        format!(
            "[lab]\nname = \"t\"\n[eeprom]\nX = \"{value}\"\n[[client]]\nname = \"n\"\nmodel = \"{model}\"\nserial = \"d9780558\"\n"
        )
    }

    #[test]
    fn validate_and_build_agree_on_the_bootloaders_size_limit() {
        for (model, chip) in [("pi4", Chip::Bcm2711), ("pi5", Chip::Bcm2712)] {
            let fits = crate::recipe::parse(&recipe_of(model, chip, bootconf::MAX_LEN));
            let recipe = fits.recipe.unwrap_or_else(|| panic!("{model}: {:?}", fits.diagnostics));
            let (built, _) = updates(&recipe, &releases(chip), Timestamps::Fixed(1_787_152_470)).unwrap();
            assert!(built.iter().any(|u| u.chip == chip && u.config.len() == bootconf::MAX_LEN));
            let over = crate::recipe::parse(&recipe_of(model, chip, bootconf::MAX_LEN + 1));
            assert!(over.recipe.is_none());
            let expected = format!("bootconf.txt would be {} bytes", bootconf::MAX_LEN + 1);
            assert!(
                over.diagnostics.iter().any(|d| d.is_error() && d.message.contains(&expected)),
                "{:?}",
                over.diagnostics
            );
            // The same recipe, one byte longer past validation: the build refuses it the same way.
            let mut longer = recipe.clone();
            longer.eeprom.iter_mut().find(|(k, _)| k == "X").unwrap().1.push('v');
            let err = updates(&longer, &releases(chip), Timestamps::Fixed(1_787_152_470)).err().unwrap();
            assert!(format!("{err:#}").contains(&expected), "{err:#}");
        }
    }
}
