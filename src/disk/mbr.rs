//! MBR partition tables (the `mbrman` crate): the table sector for any disk, and small
//! whole-disk images in memory. Every Pi model's boot ROM reads MBR, and the disk id is the
//! caller's, so the same input gives the same bytes.

use anyhow::{Context, Result, bail};
use std::io::Cursor;

pub const SECTOR: u64 = 512;

/// One primary partition's table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbrEntry {
    pub start_lba: u32,
    pub sectors: u32,
    /// The MBR type byte, e.g. 0x0c for FAT32 (LBA), 0x83 for Linux.
    pub kind: u8,
    pub bootable: bool,
}

/// One primary partition and its content.
pub struct MbrPartition<'a> {
    pub start_lba: u32,
    /// The MBR type byte, e.g. 0x0c for FAT32 (LBA), 0x83 for Linux.
    pub kind: u8,
    pub bootable: bool,
    /// The partition's bytes; its size is the partition's size (a multiple of 512).
    pub content: &'a [u8],
}

/// The MBR sector (LBA 0) holding `entries` in order as partitions 1 to 4, with the caller's
/// disk id at byte 440 (the `PARTUUID=<id>-NN` prefix). Entries must be non-empty, start after
/// the MBR and not overlap. CHS fields are left empty: every reader since the 1990s uses LBA.
pub fn mbr_sector(disk_id: u32, entries: &[MbrEntry]) -> Result<[u8; 512]> {
    if entries.is_empty() || entries.len() > 4 {
        bail!("an MBR disk holds 1 to 4 primary partitions, not {}", entries.len());
    }
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.sectors == 0 {
            bail!("MBR partition {} is empty", i + 1);
        }
        if e.start_lba == 0 {
            bail!("MBR partition {} overlaps the table at LBA 0", i + 1);
        }
        spans.push((u64::from(e.start_lba), u64::from(e.start_lba) + u64::from(e.sectors), i + 1));
    }
    spans.sort();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            bail!("MBR partitions {} and {} overlap", pair[0].2, pair[1].2);
        }
    }
    // mbrman only asks the device for its size, which the entries already say.
    let mut sector = Cursor::new(vec![0u8; SECTOR as usize]);
    let mut mbr = mbrman::MBR::new_from(&mut sector, SECTOR as u32, disk_id.to_le_bytes())
        .context("creating the MBR partition table")?;
    for (i, e) in entries.iter().enumerate() {
        mbr[i + 1] = mbrman::MBRPartitionEntry {
            boot: if e.bootable { mbrman::BOOT_ACTIVE } else { mbrman::BOOT_INACTIVE },
            first_chs: mbrman::CHS::empty(),
            sys: e.kind,
            last_chs: mbrman::CHS::empty(),
            starting_lba: e.start_lba,
            sectors: e.sectors,
        };
    }
    mbr.write_into(&mut sector).context("writing the MBR partition table")?;
    let mut out = [0u8; SECTOR as usize];
    out.copy_from_slice(&sector.get_ref()[..SECTOR as usize]);
    Ok(out)
}

/// A disk image in memory holding `partitions` in order, ending where the last one ends (for
/// small disks such as the EEPROM update card; large ones go through `layout`).
pub fn mbr_disk(disk_id: u32, partitions: &[MbrPartition]) -> Result<Vec<u8>> {
    let mut entries = Vec::with_capacity(partitions.len());
    for p in partitions {
        if p.content.is_empty() || p.content.len() as u64 % SECTOR != 0 {
            bail!("partition content must be a non-empty multiple of {SECTOR} bytes");
        }
        let sectors = u32::try_from(p.content.len() as u64 / SECTOR).context("partition too large for MBR")?;
        entries.push(MbrEntry { start_lba: p.start_lba, sectors, kind: p.kind, bootable: p.bootable });
    }
    let table = mbr_sector(disk_id, &entries)?;
    let end =
        partitions.iter().map(|p| u64::from(p.start_lba) * SECTOR + p.content.len() as u64).max().unwrap_or(SECTOR);
    let mut disk = vec![0u8; usize::try_from(end).context("disk too large for memory")?];
    disk[..SECTOR as usize].copy_from_slice(&table);
    for p in partitions {
        let start = (u64::from(p.start_lba) * SECTOR) as usize;
        disk[start..start + p.content.len()].copy_from_slice(p.content);
    }
    Ok(disk)
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
        assert!(mbr_disk(1, &[p(2050, &c), p(2048, &c)]).is_ok(), "order in the table is the caller's");
        assert!(mbr_disk(1, &[p(2048, &c[..100])]).is_err());
        assert!(mbr_disk(1, &[]).is_err());
    }
}
