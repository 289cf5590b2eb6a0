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

/// Every update the lab needs: one per chip, plus one per client with its own settings.
pub fn updates(recipe: &Recipe, releases: &[Release], ts: u32) -> Result<Vec<Update>> {
    let mut out = Vec::new();
    for r in releases {
        let image = EepromImage::parse(&r.image).with_context(|| format!("the pinned bootloader for {}", r.chip))?;
        let config = config_for(&image, recipe, None)?;
        let files = card::update_files(&image, config.as_bytes(), ts, r.recovery.clone())?;
        out.push(Update { chip: r.chip, client: None, config, files });
        for c in recipe.clients.iter().filter(|c| c.model.eeprom_chip() == Some(r.chip) && !c.eeprom.is_empty()) {
            let config = config_for(&image, recipe, Some(c))?;
            let files = card::update_files(&image, config.as_bytes(), ts, r.recovery.clone())?;
            out.push(Update { chip: r.chip, client: Some(c.name.clone()), config, files });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let built = updates(&recipe, &releases(chip), 1_787_152_470).unwrap();
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
            let err = updates(&longer, &releases(chip), 1_787_152_470).err().unwrap();
            assert!(format!("{err:#}").contains(&expected), "{err:#}");
        }
    }
}
