//! Whole-disk images with an MBR partition table (the `mbrman` crate). Every Pi model's boot
//! ROM reads MBR, and the disk id is the caller's, so the same input gives the same bytes.

use anyhow::{Context, Result, bail};
use std::io::Cursor;

pub const SECTOR: u64 = 512;

/// One primary partition and its content.
pub struct MbrPartition<'a> {
    pub start_lba: u32,
    /// The MBR type byte, e.g. 0x0c for FAT32 (LBA), 0x83 for Linux.
    pub kind: u8,
    pub bootable: bool,
    /// The partition's bytes; its size is the partition's size (a multiple of 512).
    pub content: &'a [u8],
}

/// A disk image holding `partitions` in order, ending where the last one ends.
pub fn mbr_disk(disk_id: u32, partitions: &[MbrPartition]) -> Result<Vec<u8>> {
    if partitions.is_empty() || partitions.len() > 4 {
        bail!("an MBR disk holds 1 to 4 primary partitions, not {}", partitions.len());
    }
    let mut end = SECTOR;
    for p in partitions {
        let start = u64::from(p.start_lba) * SECTOR;
        if p.content.is_empty() || p.content.len() as u64 % SECTOR != 0 {
            bail!("partition content must be a non-empty multiple of {SECTOR} bytes");
        }
        if start < end {
            bail!("partition at LBA {} overlaps the table or the previous partition", p.start_lba);
        }
        end = start + p.content.len() as u64;
    }
    let mut disk = vec![0u8; end as usize];
    for p in partitions {
        let start = (u64::from(p.start_lba) * SECTOR) as usize;
        disk[start..start + p.content.len()].copy_from_slice(p.content);
    }
    let mut cursor = Cursor::new(disk);
    let mut mbr = mbrman::MBR::new_from(&mut cursor, SECTOR as u32, disk_id.to_le_bytes())
        .context("creating the MBR partition table")?;
    for (i, p) in partitions.iter().enumerate() {
        let sectors = u32::try_from(p.content.len() as u64 / SECTOR).context("partition too large for MBR")?;
        mbr[i + 1] = mbrman::MBRPartitionEntry {
            boot: if p.bootable { mbrman::BOOT_ACTIVE } else { mbrman::BOOT_INACTIVE },
            first_chs: mbrman::CHS::empty(),
            sys: p.kind,
            last_chs: mbrman::CHS::empty(),
            starting_lba: p.start_lba,
            sectors,
        };
    }
    mbr.write_into(&mut cursor).context("writing the MBR partition table")?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_bytes_follow_the_mbr_layout() {
        let content = vec![0xAB; 4096];
        let disk =
            mbr_disk(0x0a7b_5ac5, &[MbrPartition { start_lba: 2048, kind: 0x0c, bootable: false, content: &content }])
                .unwrap();
        assert_eq!(disk.len(), 2048 * 512 + 4096);
        assert_eq!(&disk[440..444], &0x0a7b_5ac5u32.to_le_bytes());
        assert_eq!(&disk[510..512], &[0x55, 0xAA]);
        let entry = &disk[446..462];
        assert_eq!(entry[4], 0x0c);
        assert_eq!(u32::from_le_bytes(entry[8..12].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(entry[12..16].try_into().unwrap()), 8);
        assert!(disk[2048 * 512..].iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn overlaps_and_ragged_sizes_are_refused() {
        let c = vec![0u8; 1024];
        fn p(start_lba: u32, content: &[u8]) -> MbrPartition<'_> {
            MbrPartition { start_lba, kind: 0x83, bootable: false, content }
        }
        assert!(mbr_disk(1, &[p(0, &c)]).is_err());
        assert!(mbr_disk(1, &[p(2048, &c), p(2049, &c)]).is_err());
        assert!(mbr_disk(1, &[p(2048, &c[..100])]).is_err());
        assert!(mbr_disk(1, &[]).is_err());
    }
}
