//! FAT32 volumes built in memory with the `fatfs` crate, byte-reproducible: the volume id, the
//! label and every file timestamp come from the caller, files are written in name order.
//!
//! Only files in the root directory for now: fatfs 0.3.6 writes `.`/`..` entries in
//! subdirectories that `fsck.fat` rejects (research notes), which the image builder must fix
//! when it needs them.

use anyhow::{Context, Result, bail};
use fatfs::{Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};
use std::io::{Cursor, Write};
use time::OffsetDateTime;

/// What the volume looks like; everything that would otherwise be random or "now" is here.
#[derive(Clone, Debug)]
pub struct Fat32Spec {
    /// At most 11 characters, upper-case ASCII.
    pub label: String,
    pub volume_id: u32,
    pub size_bytes: u64,
    pub bytes_per_cluster: u32,
    /// Sectors before the volume on its disk (the partition's start LBA); 0 for a bare volume.
    pub hidden_sectors: u32,
    /// Unix seconds for every created/modified/accessed field.
    pub timestamp: i64,
}

/// FAT32 needs at least this many clusters; fewer makes a volume that tools read as FAT16.
const MIN_FAT32_CLUSTERS: u64 = 65_525;
/// FAT dates start in 1980 and end in 2107.
const FAT_EPOCH: i64 = 315_532_800;
const FAT_END: i64 = 4_354_819_199;

#[derive(Debug)]
struct FixedTime(DateTime);

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

fn fat_datetime(unix: i64) -> Result<DateTime> {
    if !(FAT_EPOCH..=FAT_END).contains(&unix) {
        bail!("timestamp {unix} is outside what FAT can store (1980-01-01 to 2107-12-31)");
    }
    let t = OffsetDateTime::from_unix_timestamp(unix)?;
    Ok(DateTime {
        date: Date { year: t.year() as u16, month: u8::from(t.month()) as u16, day: t.day() as u16 },
        time: Time { hour: t.hour() as u16, min: t.minute() as u16, sec: t.second() as u16, millis: 0 },
    })
}

fn label_bytes(label: &str) -> Result<[u8; 11]> {
    if label.len() > 11 || !label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_ ".contains(&b)) {
        bail!("FAT label `{label}` must be at most 11 upper-case letters, digits, '-' or '_'");
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// A formatted FAT32 volume of `spec.size_bytes` holding `files` in its root directory.
pub fn fat32_volume(spec: &Fat32Spec, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let clusters = spec.size_bytes / u64::from(spec.bytes_per_cluster);
    if clusters < MIN_FAT32_CLUSTERS + 1024 {
        bail!(
            "a FAT32 volume of {} bytes with {}-byte clusters has too few clusters (FAT32 needs {MIN_FAT32_CLUSTERS})",
            spec.size_bytes,
            spec.bytes_per_cluster
        );
    }
    let sectors = u32::try_from(spec.size_bytes / 512).context("FAT32 volume too large")?;
    // fatfs wants a 'static clock; one small leak per volume built is the price.
    let clock: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_datetime(spec.timestamp)?)));
    let mut disk = Cursor::new(vec![0u8; spec.size_bytes as usize]);
    let options = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .bytes_per_cluster(spec.bytes_per_cluster)
        .total_sectors(sectors)
        .volume_id(spec.volume_id)
        .volume_label(label_bytes(&spec.label)?);
    fatfs::format_volume(&mut disk, options).context("formatting the FAT32 volume")?;
    disk.set_position(0);
    {
        let fs = FileSystem::new(&mut disk, FsOptions::new().time_provider(clock).update_accessed_date(false))
            .context("opening the new FAT32 volume")?;
        let mut sorted = files.to_vec();
        sorted.sort_by_key(|(name, _)| *name);
        for (name, bytes) in sorted {
            let mut file =
                fs.root_dir().create_file(name).with_context(|| format!("creating {name} on the FAT volume"))?;
            file.truncate()?;
            file.write_all(bytes).with_context(|| format!("writing {name} to the FAT volume (is it full?)"))?;
        }
        // Counting now makes unmount record the free-cluster total, which fsck.fat checks.
        fs.stats().context("counting free clusters")?;
        fs.unmount().context("closing the FAT32 volume")?;
    }
    let mut volume = disk.into_inner();
    set_hidden_sectors(&mut volume, spec.hidden_sectors);
    Ok(volume)
}

/// fatfs always writes 0 hidden sectors; firmware that locates the volume through the BPB
/// needs the partition offset, in the boot sector and in its FAT32 backup copy.
fn set_hidden_sectors(volume: &mut [u8], hidden: u32) {
    const HIDDEN_SECTORS: usize = 0x1C;
    const BACKUP_BOOT_SECTOR: usize = 0x32;
    let backup = u16::from_le_bytes([volume[BACKUP_BOOT_SECTOR], volume[BACKUP_BOOT_SECTOR + 1]]) as usize;
    for sector in [0, backup] {
        let at = sector * 512 + HIDDEN_SECTORS;
        volume[at..at + 4].copy_from_slice(&hidden.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Fat32Spec {
        Fat32Spec {
            label: "TEST".into(),
            volume_id: 0x1234_5678,
            size_bytes: 40 << 20,
            bytes_per_cluster: 512,
            hidden_sectors: 2048,
            timestamp: 1_700_000_000,
        }
    }

    #[test]
    fn same_input_same_bytes() {
        let a = fat32_volume(&spec(), &[("b.txt", b"2"), ("a.txt", b"1")]).unwrap();
        let b = fat32_volume(&spec(), &[("a.txt", b"1"), ("b.txt", b"2")]).unwrap();
        assert!(a == b);
    }

    #[test]
    fn volume_reads_back_with_fatfs() {
        let image = fat32_volume(&spec(), &[("hello.txt", b"hi")]).unwrap();
        let fs = FileSystem::new(Cursor::new(image), FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        assert!(fs.stats().unwrap().free_clusters() > 0);
        assert_eq!(fs.volume_id(), 0x1234_5678);
        let entry = fs.root_dir().iter().map(|e| e.unwrap()).find(|e| e.file_name() == "hello.txt").unwrap();
        assert_eq!(entry.len(), 2);
        let m = entry.modified();
        assert_eq!((m.date.year, m.date.month, m.date.day, m.time.hour, m.time.min), (2023, 11, 14, 22, 13));
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(fat32_volume(&Fat32Spec { size_bytes: 8 << 20, ..spec() }, &[]).is_err());
        assert!(fat32_volume(&Fat32Spec { label: "lower".into(), ..spec() }, &[]).is_err());
        assert!(fat32_volume(&Fat32Spec { timestamp: 0, ..spec() }, &[]).is_err());
        let full = vec![0u8; 41 << 20];
        assert!(fat32_volume(&spec(), &[("big.bin", &full)]).is_err());
    }
}
