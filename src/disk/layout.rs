//! Where everything goes on a partitioned disk: the table (MBR or GPT) and each partition's
//! contents, checked and turned into a list of byte regions for the image writer
//! ([`super::image_file`]).
//!
//! Pure: decides and validates, reads nothing (a partition whose contents are a file is only
//! named here; its length is checked when it is written). Not for: choosing sizes or ids,
//! which are the caller's (the lab plan derives them from the recipe).

use super::gpt::{self, GptPartition, GptSpec};
use super::mbr::{self, MbrEntry};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Logical sector size: LBAs count these.
pub const SECTOR: u64 = 512;

/// The partition table scheme and its disk-wide id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Table {
    /// `disk_id` is the 32-bit signature at byte 440 (`PARTUUID=<id>-NN`).
    Mbr {
        disk_id: u32,
    },
    Gpt {
        disk_guid: Uuid,
    },
}

/// A partition's entry in the table; its kind must match the [`Table`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableEntry {
    /// `kind` is the MBR type byte: 0x0c FAT32 (LBA), 0x83 Linux.
    Mbr { kind: u8, bootable: bool },
    /// `type_guid`: e.g. [`gpt::EFI_SYSTEM`], [`gpt::MICROSOFT_BASIC_DATA`],
    /// [`gpt::LINUX_FILESYSTEM`]; `guid` is the `PARTUUID`, `name` the `PARTLABEL`.
    Gpt { type_guid: Uuid, guid: Uuid, name: String },
}

/// Where a partition's bytes come from. Shorter contents leave the rest of the partition zero.
#[derive(Clone, Debug)]
pub enum PartitionData {
    /// Bytes in memory (a FAT volume from `fat32_volume_tree`), moved in: only the pages a
    /// volume's writer touched are resident, and a clone would make all of them so.
    Bytes(Vec<u8>),
    /// A file on disk, read as it is written (the ext4 image `mke2fs` made); holes in it are
    /// skipped, not read.
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct DiskPartition {
    pub start_lba: u64,
    /// The partition's size in the table, a multiple of 512.
    pub size_bytes: u64,
    pub data: PartitionData,
    pub entry: TableEntry,
}

/// A whole disk: table, partitions in table order (numbered 1, 2, …), and size.
#[derive(Clone, Debug)]
pub struct DiskLayout {
    pub table: Table,
    pub partitions: Vec<DiskPartition>,
    /// `None`: the smallest that holds the partitions (and, for GPT, the backup table after
    /// them). Otherwise a multiple of 512 at least that large.
    pub size_bytes: Option<u64>,
}

/// What a region's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionSource<'a> {
    Bytes(&'a [u8]),
    /// At most the region's `len` bytes of the file, from its start.
    File(&'a Path),
}

/// Bytes to place at `offset`: at most `len` of them (the rest of `len` is zeros).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region<'a> {
    pub offset: u64,
    pub len: u64,
    pub source: RegionSource<'a>,
    /// For messages: "the partition table", "partition 2".
    pub what: String,
}

/// A checked layout: the disk's size and its non-overlapping regions in disk order.
#[derive(Clone, Debug)]
pub struct DiskPlan<'a> {
    pub size: u64,
    pub regions: Vec<Region<'a>>,
    /// The table's bytes, owned here; `regions` refer to them.
    tables: Vec<(u64, Vec<u8>)>,
}

impl<'a> DiskPlan<'a> {
    /// Every region, the table pieces included, in disk order.
    pub fn all_regions(&self) -> Vec<Region<'_>> {
        let mut out: Vec<Region<'_>> = self
            .tables
            .iter()
            .map(|(offset, bytes)| Region {
                offset: *offset,
                len: bytes.len() as u64,
                source: RegionSource::Bytes(bytes),
                what: "the partition table".into(),
            })
            .chain(self.regions.iter().cloned())
            .collect();
        out.sort_by_key(|r| r.offset);
        out
    }
}

/// Check `layout` and place its table and partitions.
pub fn plan(layout: &DiskLayout) -> Result<DiskPlan<'_>> {
    if layout.partitions.is_empty() {
        bail!("a disk needs at least one partition");
    }
    let mut regions = Vec::new();
    let mut end = 0u64;
    for (i, p) in layout.partitions.iter().enumerate() {
        let what = format!("partition {}", i + 1);
        if p.size_bytes == 0 || p.size_bytes % SECTOR != 0 {
            bail!("{what}: its size must be a positive multiple of {SECTOR} bytes, not {}", p.size_bytes);
        }
        let start = p.start_lba.checked_mul(SECTOR).context("partition start overflows")?;
        end = end.max(start.checked_add(p.size_bytes).context("partition end overflows")?);
        let source = match &p.data {
            PartitionData::Bytes(bytes) => {
                if bytes.len() as u64 > p.size_bytes {
                    bail!("{what}: {} bytes of contents do not fit its {} bytes", bytes.len(), p.size_bytes);
                }
                RegionSource::Bytes(bytes)
            }
            PartitionData::File(path) => RegionSource::File(path),
        };
        regions.push(Region { offset: start, len: p.size_bytes, source, what });
    }
    let (size, tables) = match &layout.table {
        Table::Mbr { disk_id } => {
            let size = layout.size_bytes.unwrap_or(end);
            let entries = layout
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| match p.entry {
                    TableEntry::Mbr { kind, bootable } => Ok(MbrEntry {
                        start_lba: u32::try_from(p.start_lba).context("an MBR partition must start below 2 TiB")?,
                        sectors: u32::try_from(p.size_bytes / SECTOR).context("an MBR partition is at most 2 TiB")?,
                        kind,
                        bootable,
                    }),
                    TableEntry::Gpt { .. } => bail!("partition {} has a GPT entry on an MBR disk", i + 1),
                })
                .collect::<Result<Vec<_>>>()?;
            (size, vec![(0, mbr::mbr_sector(*disk_id, &entries)?.to_vec())])
        }
        Table::Gpt { disk_guid } => {
            let size = layout.size_bytes.unwrap_or(end + gpt::BACKUP_SECTORS * SECTOR);
            let partitions = layout
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| match &p.entry {
                    TableEntry::Gpt { type_guid, guid, name } => Ok(GptPartition {
                        first_lba: p.start_lba,
                        sectors: p.size_bytes / SECTOR,
                        type_guid: *type_guid,
                        guid: *guid,
                        name: name.clone(),
                        attributes: 0,
                    }),
                    TableEntry::Mbr { .. } => bail!("partition {} has an MBR entry on a GPT disk", i + 1),
                })
                .collect::<Result<Vec<_>>>()?;
            let spec = GptSpec { disk_guid: *disk_guid, partitions };
            let pieces = gpt::gpt_tables(&spec, size)?;
            (size, pieces.into_iter().map(|p| (p.offset, p.bytes)).collect())
        }
    };
    if size % SECTOR != 0 {
        bail!("the disk's size must be a multiple of {SECTOR} bytes, not {size}");
    }
    if end > size {
        bail!("the partitions end at byte {end}, past the disk's {size} bytes");
    }
    // Tables checked their own entries; what is left is contents against each other.
    regions.sort_by_key(|r| r.offset);
    for pair in regions.windows(2) {
        if pair[1].offset < pair[0].offset + pair[0].len {
            bail!("{} and {} overlap", pair[0].what, pair[1].what);
        }
    }
    for (offset, bytes) in &tables {
        if let Some(r) = regions.iter().find(|r| r.offset < offset + bytes.len() as u64 && *offset < r.offset + r.len) {
            bail!("{} overlaps the partition table (bytes {offset}..{})", r.what, offset + bytes.len() as u64);
        }
    }
    Ok(DiskPlan { size, regions, tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr_layout() -> DiskLayout {
        DiskLayout {
            table: Table::Mbr { disk_id: 0x1b2c_3d4e },
            partitions: vec![
                DiskPartition {
                    start_lba: 2048,
                    size_bytes: 1 << 20,
                    data: PartitionData::Bytes(vec![1; 4096]),
                    entry: TableEntry::Mbr { kind: 0x0c, bootable: false },
                },
                DiskPartition {
                    start_lba: 4096,
                    size_bytes: 2 << 20,
                    data: PartitionData::File("/nonexistent/root.ext4".into()),
                    entry: TableEntry::Mbr { kind: 0x83, bootable: false },
                },
            ],
            size_bytes: None,
        }
    }

    #[test]
    fn mbr_disks_end_with_their_last_partition() {
        let layout = mbr_layout();
        let plan = plan(&layout).unwrap();
        assert_eq!(plan.size, 4096 * 512 + (2 << 20));
        let all = plan.all_regions();
        assert_eq!(
            all.iter().map(|r| (r.offset, r.len)).collect::<Vec<_>>(),
            [(0, 512), (1 << 20, 1 << 20), (2 << 20, 2 << 20)]
        );
        let RegionSource::Bytes(table) = all[0].source else { panic!() };
        assert_eq!(&table[440..444], &0x1b2c_3d4eu32.to_le_bytes());
        assert_eq!(table[446 + 16 + 4], 0x83);
    }

    #[test]
    fn gpt_disks_leave_room_for_the_backup() {
        let mut layout = mbr_layout();
        layout.table = Table::Gpt { disk_guid: Uuid::from_u128(1) };
        for (i, p) in layout.partitions.iter_mut().enumerate() {
            p.entry = TableEntry::Gpt {
                type_guid: gpt::LINUX_FILESYSTEM,
                guid: Uuid::from_u128(10 + i as u128),
                name: "p".into(),
            };
        }
        let plan = plan(&layout).unwrap();
        assert_eq!(plan.size, 4096 * 512 + (2 << 20) + 33 * 512);
        let all = plan.all_regions();
        assert_eq!(all.last().unwrap().offset + all.last().unwrap().len, plan.size);
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn bad_layouts_are_refused_with_the_reason() {
        type Edit = Box<dyn Fn(&mut DiskLayout)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|l| l.partitions[1].start_lba = 3000), "overlap"),
            (Box::new(|l| l.partitions[0].start_lba = 0), "LBA 0"),
            (Box::new(|l| l.partitions[0].size_bytes = 1000), "multiple of 512"),
            (Box::new(|l| l.partitions[0].data = PartitionData::Bytes(vec![0; 2 << 20])), "do not fit"),
            (Box::new(|l| l.size_bytes = Some(1 << 20)), "past the disk"),
            (Box::new(|l| l.size_bytes = Some((8 << 20) + 1)), "multiple of 512"),
            (
                Box::new(|l| {
                    l.partitions[0].entry =
                        TableEntry::Gpt { type_guid: gpt::EFI_SYSTEM, guid: Uuid::from_u128(5), name: String::new() }
                }),
                "GPT entry on an MBR disk",
            ),
            (Box::new(|l| l.partitions.clear()), "at least one partition"),
        ];
        for (edit, message) in cases {
            let mut layout = mbr_layout();
            edit(&mut layout);
            let err = format!("{:#}", plan(&layout).unwrap_err());
            assert!(err.contains(message), "{message}: {err}");
        }
    }
}
