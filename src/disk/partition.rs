//! Reading a disk image's partition table: MBR (mbrman), or GPT (gpt) behind a protective MBR,
//! and a first look at what each partition holds (FAT or ext4, by their signatures). Never
//! assumes offsets: a partition is where its table entry says, and must lie inside the image.

use crate::read_at::{Cursor, ReadAt};
use std::sync::Arc;

pub const SECTOR: u64 = 512;

/// The GPT protective MBR's partition type.
const MBR_TYPE_GPT: u8 = 0xEE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// With the 32-bit disk id (the `PARTUUID=<id>-NN` prefix Raspberry Pi OS uses).
    Mbr {
        disk_id: u32,
    },
    Gpt {
        disk_guid: String,
    },
    /// No table: the image is one filesystem (a `rootfs.img`, a FAT boot image), partition 0.
    Whole,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionType {
    Mbr(u8),
    Whole,
    Gpt { type_guid: String, name: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as Linux names it (`sda1`).
    pub number: u32,
    pub start: u64,
    pub len: u64,
    pub kind: PartitionType,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTable {
    pub scheme: Scheme,
    pub partitions: Vec<Partition>,
}

/// What a partition's first bytes say it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filesystem {
    Fat,
    Ext4,
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("no partition table (no MBR signature 55 AA at byte 510) and no FAT or ext4 filesystem")]
    NoTable,
    #[error("the partition table cannot be read: {0}")]
    Unreadable(String),
    #[error(
        "partition {number} ({start}+{len} bytes) runs past the end of the {size}-byte image; the image is truncated"
    )]
    OutOfImage { number: u32, start: u64, len: u64, size: u64 },
}

/// Read the table of the image in `disk`.
pub fn read_table(disk: &Arc<dyn ReadAt>) -> Result<PartitionTable, PartitionError> {
    // Checked first: a FAT boot sector also ends in 55 AA, and its bytes are no MBR.
    if probe(disk.as_ref()) != Filesystem::Unknown {
        let whole = Partition { number: 0, start: 0, len: disk.len(), kind: PartitionType::Whole };
        return Ok(PartitionTable { scheme: Scheme::Whole, partitions: vec![whole] });
    }
    let mut sector = [0u8; 512];
    disk.read_exact_at(&mut sector, 0).map_err(|e| PartitionError::Unreadable(e.to_string()))?;
    if sector[510..512] != [0x55, 0xAA] {
        return Err(PartitionError::NoTable);
    }
    // An entry in use that starts at sector 0 lies over the table itself; mbrman 0.6.1 panics on
    // a table whose every entry does (its alignment guess divides by none), so it is refused here.
    for (i, entry) in sector[446..510].chunks_exact(16).enumerate() {
        let start = u32::from_le_bytes([entry[8], entry[9], entry[10], entry[11]]);
        if entry[4] != 0 && start == 0 {
            return Err(PartitionError::Unreadable(format!(
                "MBR partition {} (type {:#04x}) starts at sector 0, over the partition table",
                i + 1,
                entry[4]
            )));
        }
    }
    let mbr = mbrman::MBR::read_from(&mut Cursor::new(disk.clone()), SECTOR as u32)
        .map_err(|e| PartitionError::Unreadable(e.to_string()))?;
    let table = if mbr.iter().any(|(_, p)| p.is_used() && p.sys == MBR_TYPE_GPT) {
        read_gpt(disk)?
    } else {
        let partitions = mbr
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(i, p)| Partition {
                number: i as u32,
                start: u64::from(p.starting_lba) * SECTOR,
                len: u64::from(p.sectors) * SECTOR,
                kind: PartitionType::Mbr(p.sys),
            })
            .collect();
        PartitionTable { scheme: Scheme::Mbr { disk_id: u32::from_le_bytes(mbr.header.disk_signature) }, partitions }
    };
    for p in &table.partitions {
        if p.start.checked_add(p.len).is_none_or(|end| end > disk.len()) {
            return Err(PartitionError::OutOfImage { number: p.number, start: p.start, len: p.len, size: disk.len() });
        }
    }
    Ok(table)
}

fn read_gpt(disk: &Arc<dyn ReadAt>) -> Result<PartitionTable, PartitionError> {
    let gpt = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open_from_device(Cursor::new(disk.clone()))
        .map_err(|e| PartitionError::Unreadable(format!("GPT: {e}")))?;
    let partitions = gpt
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(n, p)| Partition {
            number: *n,
            start: p.first_lba * SECTOR,
            len: (p.last_lba + 1 - p.first_lba) * SECTOR,
            kind: PartitionType::Gpt { type_guid: p.part_type_guid.guid.to_string(), name: p.name.clone() },
        })
        .collect();
    Ok(PartitionTable { scheme: Scheme::Gpt { disk_guid: gpt.guid().to_string() }, partitions })
}

/// Which filesystem `part` holds, by its signature.
pub fn probe(part: &dyn ReadAt) -> Filesystem {
    let mut head = [0u8; 2048];
    if part.len() < head.len() as u64 || part.read_exact_at(&mut head, 0).is_err() {
        return Filesystem::Unknown;
    }
    // ext2/3/4 superblock at 1024, magic at offset 56.
    if head[1024 + 56..1024 + 58] == [0x53, 0xEF] {
        return Filesystem::Ext4;
    }
    // A FAT boot sector: the 55 AA signature, a jump instruction and a sane sector size.
    let bytes_per_sector = u16::from_le_bytes([head[11], head[12]]);
    if head[510..512] == [0x55, 0xAA]
        && matches!(head[0], 0xEB | 0xE9)
        && matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
    {
        return Filesystem::Fat;
    }
    Filesystem::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fat::{Fat32Spec, fat32_volume};
    use crate::disk::mbr::{MbrPartition, mbr_disk};

    #[test]
    fn mbr_partitions_and_filesystems() {
        let spec = Fat32Spec {
            label: "BOOT".into(),
            volume_id: 7,
            size_bytes: 40 << 20,
            bytes_per_cluster: 512,
            hidden_sectors: 2048,
            timestamp: 1_700_000_000,
        };
        let fat = fat32_volume(&spec, &[]).unwrap();
        let other = vec![0u8; 1 << 20];
        let disk = mbr_disk(
            0xd9c8_6127,
            &[
                MbrPartition { start_lba: 2048, kind: 0x0c, bootable: false, content: &fat },
                MbrPartition { start_lba: 2048 + (40 << 11), kind: 0x83, bootable: false, content: &other },
            ],
        )
        .unwrap();
        let disk: Arc<dyn ReadAt> = Arc::new(disk);
        let table = read_table(&disk).unwrap();
        assert_eq!(table.scheme, Scheme::Mbr { disk_id: 0xd9c8_6127 });
        assert_eq!(table.partitions.len(), 2);
        assert_eq!((table.partitions[0].start, table.partitions[0].len), (1 << 20, 40 << 20));
        assert_eq!(table.partitions[1].kind, PartitionType::Mbr(0x83));
        let p1 = crate::read_at::Slice::new(disk.clone(), 1 << 20, 40 << 20).unwrap();
        assert_eq!(probe(&p1), Filesystem::Fat);
        let p2 = crate::read_at::Slice::new(disk.clone(), table.partitions[1].start, 1 << 20).unwrap();
        assert_eq!(probe(&p2), Filesystem::Unknown);
    }

    #[test]
    fn an_entry_over_the_table_itself_is_refused() {
        // The fuzzer's find (tests/corpus/regressions/partition-table): mbrman panicked on it.
        let mut disk = vec![0u8; 1 << 20];
        disk[446 + 4] = 0xee;
        disk[446 + 12..446 + 16].copy_from_slice(&100u32.to_le_bytes());
        disk[510..512].copy_from_slice(&[0x55, 0xaa]);
        let disk: Arc<dyn ReadAt> = Arc::new(disk);
        let err = read_table(&disk).unwrap_err().to_string();
        assert!(err.contains("MBR partition 1 (type 0xee) starts at sector 0"), "{err}");
    }

    #[test]
    fn truncated_and_tableless_images_are_refused() {
        let no_table: Arc<dyn ReadAt> = Arc::new(vec![0u8; 4096]);
        assert!(matches!(read_table(&no_table), Err(PartitionError::NoTable)));
        let spec = Fat32Spec {
            label: "BOOT".into(),
            volume_id: 7,
            size_bytes: 40 << 20,
            bytes_per_cluster: 512,
            hidden_sectors: 0,
            timestamp: 1_700_000_000,
        };
        let bare: Arc<dyn ReadAt> = Arc::new(fat32_volume(&spec, &[]).unwrap());
        let table = read_table(&bare).unwrap();
        assert_eq!(table.scheme, Scheme::Whole);
        assert_eq!((table.partitions[0].number, table.partitions[0].len), (0, 40 << 20));
        let content = vec![0u8; 1 << 20];
        let mut disk =
            mbr_disk(1, &[MbrPartition { start_lba: 2048, kind: 0x83, bootable: false, content: &content }]).unwrap();
        disk.truncate(disk.len() - 4096);
        let disk: Arc<dyn ReadAt> = Arc::new(disk);
        assert!(matches!(read_table(&disk), Err(PartitionError::OutOfImage { number: 1, .. })));
    }
}
