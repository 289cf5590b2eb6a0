//! GUID partition tables (UEFI 2.10, §5.3), byte-reproducible: the disk GUID and every
//! partition's GUID, type and name come from the caller. The `gpt` crate lays out and
//! checksums the headers and entry arrays; it writes them into a disk held in memory as only
//! the sectors written to it, so a table for an 8 GiB disk costs a few KiB, and the result is
//! a list of byte runs to place on the disk: the protective MBR, the primary header and
//! entries at the start, the backup entries and header at the end.
//!
//! Not for: reading tables (`partition.rs`), or disks whose sectors are not 512 bytes.

use anyhow::{Context, Result, bail};
use gpt::partition_types::{OperatingSystem, Type};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use uuid::Uuid;

/// Logical sector size: LBAs count these.
pub const SECTOR: u64 = 512;
/// Entries in each array: the UEFI minimum (16 KiB), which every tool expects.
const ENTRIES: u64 = 128;
/// The protective MBR, the header and 32 sectors of entries.
const PRIMARY_SECTORS: u64 = 2 + ENTRIES * 128 / SECTOR;
/// The entries and the backup header, at the end of the disk.
pub const BACKUP_SECTORS: u64 = 1 + ENTRIES * 128 / SECTOR;
/// A partition's name is 36 UTF-16 code units (UEFI §5.3.3, table 5.7).
const NAME_UNITS: usize = 36;

/// Type GUID of an EFI system partition (a FAT where UEFI firmware looks for loaders; UEFI
/// §5.3.3, table 5.8).
pub const EFI_SYSTEM: Uuid = Uuid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
/// Type GUID of a Microsoft basic data partition (a FAT or NTFS that Windows and macOS mount:
/// a boot FAT users edit).
pub const MICROSOFT_BASIC_DATA: Uuid = Uuid::from_u128(0xEBD0A0A2_B9E5_4433_87C0_68B6B72699C7);
/// Type GUID of Linux filesystem data (the ext4 root; the Discoverable Partitions
/// Specification).
pub const LINUX_FILESYSTEM: Uuid = Uuid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4);

/// One partition's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptPartition {
    pub first_lba: u64,
    pub sectors: u64,
    pub type_guid: Uuid,
    /// The unique partition GUID (`PARTUUID=` in fstab and cmdline.txt).
    pub guid: Uuid,
    /// At most 36 UTF-16 code units (`PARTLABEL=`).
    pub name: String,
    /// Attribute bits (UEFI table 5.9): bit 0 required, bit 2 legacy BIOS bootable, 48–63
    /// type-specific. Usually 0.
    pub attributes: u64,
}

/// A table: the disk's GUID and its partitions, numbered 1, 2, … in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptSpec {
    pub disk_guid: Uuid,
    pub partitions: Vec<GptPartition>,
}

/// Bytes to write at a byte offset of the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePiece {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// The first LBA a partition may use, and the last, on a disk of `disk_sectors`.
pub fn usable_lbas(disk_sectors: u64) -> Option<(u64, u64)> {
    let last = disk_sectors.checked_sub(BACKUP_SECTORS + 1)?;
    (last >= PRIMARY_SECTORS).then_some((PRIMARY_SECTORS, last))
}

/// The protective MBR and both copies of the table for a disk of `disk_bytes`, as byte runs in
/// disk order. Partitions must lie in [`usable_lbas`], not overlap, and have distinct non-nil
/// GUIDs and non-nil types.
pub fn gpt_tables(spec: &GptSpec, disk_bytes: u64) -> Result<Vec<TablePiece>> {
    if disk_bytes % SECTOR != 0 {
        bail!("a GPT disk's size must be a multiple of {SECTOR} bytes, not {disk_bytes}");
    }
    let sectors = disk_bytes / SECTOR;
    let (first_usable, last_usable) =
        usable_lbas(sectors).with_context(|| format!("a {disk_bytes}-byte disk is too small for a GPT"))?;
    check(spec, first_usable, last_usable)?;

    let mut disk = SectorMap::new(disk_bytes);
    // The protective MBR covers the whole disk, or as much as 32 bits can say (UEFI §5.2.3).
    let covered = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    gpt::mbr::ProtectiveMBR::with_lb_size(covered).overwrite_lba0(&mut disk).context("writing the protective MBR")?;
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(disk, Some(spec.disk_guid))
        .context("creating the GPT headers")?;
    let partitions: BTreeMap<u32, gpt::partition::Partition> = spec
        .partitions
        .iter()
        .zip(1u32..)
        .map(|(p, number)| {
            let entry = gpt::partition::Partition {
                part_type_guid: Type { guid: p.type_guid, os: OperatingSystem::None },
                part_guid: p.guid,
                first_lba: p.first_lba,
                last_lba: p.first_lba + p.sectors - 1,
                flags: p.attributes,
                name: p.name.clone(),
            };
            (number, entry)
        })
        .collect();
    table.update_partitions(partitions).context("filling the GPT entries")?;
    let disk = table.write().context("writing the GPT")?;
    Ok(disk.pieces())
}

fn check(spec: &GptSpec, first_usable: u64, last_usable: u64) -> Result<()> {
    if spec.disk_guid.is_nil() {
        bail!("the GPT disk GUID must not be all zeros");
    }
    if spec.partitions.len() as u64 > ENTRIES {
        bail!("a GPT holds at most {ENTRIES} partitions");
    }
    let mut guids = HashSet::from([spec.disk_guid]);
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (i, p) in spec.partitions.iter().enumerate() {
        let n = i + 1;
        if p.sectors == 0 {
            bail!("GPT partition {n} is empty");
        }
        let last = p.first_lba.checked_add(p.sectors - 1).context("GPT partition end overflows")?;
        if p.first_lba < first_usable || last > last_usable {
            bail!(
                "GPT partition {n} (LBA {}..={last}) lies outside the usable LBAs {first_usable}..={last_usable}",
                p.first_lba
            );
        }
        if p.type_guid.is_nil() {
            bail!("GPT partition {n} has the nil type GUID, which marks an unused entry");
        }
        if p.guid.is_nil() || !guids.insert(p.guid) {
            bail!("GPT partition {n}'s GUID {} is nil or not unique on this disk", p.guid);
        }
        if p.name.encode_utf16().count() > NAME_UNITS {
            bail!("GPT partition {n}'s name `{}` is longer than {NAME_UNITS} UTF-16 units", p.name);
        }
        spans.push((p.first_lba, last, n));
    }
    spans.sort();
    for pair in spans.windows(2) {
        if pair[1].0 <= pair[0].1 {
            bail!("GPT partitions {} and {} overlap", pair[0].2, pair[1].2);
        }
    }
    Ok(())
}

/// A disk of `len` bytes that stores only the sectors written to it; the rest reads as zeros.
#[derive(Debug)]
struct SectorMap {
    len: u64,
    pos: u64,
    sectors: BTreeMap<u64, [u8; SECTOR as usize]>,
}

impl SectorMap {
    fn new(len: u64) -> SectorMap {
        SectorMap { len, pos: 0, sectors: BTreeMap::new() }
    }

    /// Written sectors, merged into runs.
    fn pieces(&self) -> Vec<TablePiece> {
        let mut out: Vec<TablePiece> = Vec::new();
        for (&lba, bytes) in &self.sectors {
            let offset = lba * SECTOR;
            match out.last_mut() {
                Some(last) if last.offset + last.bytes.len() as u64 == offset => last.bytes.extend_from_slice(bytes),
                _ => out.push(TablePiece { offset, bytes: bytes.to_vec() }),
            }
        }
        out
    }
}

impl Read for SectorMap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        for (i, byte) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            *byte = self.sectors.get(&(at / SECTOR)).map_or(0, |s| s[(at % SECTOR) as usize]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SectorMap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write past the end of the disk"));
        }
        for (i, &byte) in buf.iter().enumerate() {
            let at = self.pos + i as u64;
            self.sectors.entry(at / SECTOR).or_insert([0; SECTOR as usize])[(at % SECTOR) as usize] = byte;
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SectorMap {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISK: u64 = 64 << 20;

    fn spec() -> GptSpec {
        GptSpec {
            disk_guid: Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888),
            partitions: vec![
                GptPartition {
                    first_lba: 2048,
                    sectors: 16384,
                    type_guid: EFI_SYSTEM,
                    guid: Uuid::from_u128(0xAAAA),
                    name: "bootfs".into(),
                    attributes: 0,
                },
                GptPartition {
                    first_lba: 18432,
                    sectors: 32768,
                    type_guid: LINUX_FILESYSTEM,
                    guid: Uuid::from_u128(0xBBBB),
                    name: "rootfs".into(),
                    attributes: 0,
                },
            ],
        }
    }

    #[test]
    fn tables_sit_at_both_ends_and_read_back() {
        let pieces = gpt_tables(&spec(), DISK).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].offset, pieces[0].bytes.len() as u64), (0, PRIMARY_SECTORS * SECTOR));
        assert_eq!(pieces[1].offset + pieces[1].bytes.len() as u64, DISK);
        assert_eq!(pieces[1].bytes.len() as u64, BACKUP_SECTORS * SECTOR);
        assert_eq!(&pieces[0].bytes[512..520], b"EFI PART");
        assert_eq!(&pieces[1].bytes[pieces[1].bytes.len() - 512..][..8], b"EFI PART");
        // Protective MBR: one 0xEE entry from LBA 1 over the rest of the disk.
        let mbr = &pieces[0].bytes[..512];
        assert_eq!(mbr[446 + 4], 0xEE);
        assert_eq!(u32::from_le_bytes(mbr[446 + 8..446 + 12].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(mbr[446 + 12..446 + 16].try_into().unwrap()) as u64, DISK / SECTOR - 1);
        assert_eq!(&mbr[510..], &[0x55, 0xAA]);

        // Our own reader (partition.rs, through the gpt crate's reader) agrees.
        let mut image = vec![0u8; DISK as usize];
        for p in &pieces {
            image[p.offset as usize..p.offset as usize + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        let image: std::sync::Arc<dyn crate::read_at::ReadAt> = std::sync::Arc::new(image);
        let table = crate::disk::partition::read_table(&image).unwrap();
        assert_eq!(
            table.scheme,
            crate::disk::partition::Scheme::Gpt { disk_guid: "11112222-3333-4444-5555-666677778888".into() }
        );
        assert_eq!(table.partitions.len(), 2);
        assert_eq!((table.partitions[1].start, table.partitions[1].len), (18432 * 512, 32768 * 512));
    }

    #[test]
    fn same_spec_same_bytes() {
        assert_eq!(gpt_tables(&spec(), DISK).unwrap(), gpt_tables(&spec(), DISK).unwrap());
    }

    #[test]
    fn bad_tables_are_refused() {
        let mut overlap = spec();
        overlap.partitions[1].first_lba = 18000;
        assert!(format!("{:#}", gpt_tables(&overlap, DISK).unwrap_err()).contains("overlap"));
        let mut early = spec();
        early.partitions[0].first_lba = 33;
        assert!(gpt_tables(&early, DISK).is_err());
        let mut late = spec();
        late.partitions[1].sectors = DISK / SECTOR;
        assert!(gpt_tables(&late, DISK).is_err());
        let mut same = spec();
        same.partitions[1].guid = same.partitions[0].guid;
        assert!(gpt_tables(&same, DISK).is_err());
        let mut long = spec();
        long.partitions[0].name = "x".repeat(37);
        assert!(gpt_tables(&long, DISK).is_err());
        let mut nil = spec();
        nil.partitions[0].type_guid = Uuid::nil();
        assert!(gpt_tables(&nil, DISK).is_err());
        assert!(gpt_tables(&spec(), DISK + 1).is_err());
        assert!(gpt_tables(&spec(), 16 * 1024).is_err());
    }
}
