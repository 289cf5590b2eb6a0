//! The superblock: geometry, feature flags and identity of a volume, checked before use.
//!
//! Not for group descriptors or anything per-inode; this only decides whether the rest of the
//! image can be read and how it is laid out.

use super::bytes::{crc32c, join, le16, le32};
use super::error::Ext4Error;

pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;
const MAGIC: u16 = 0xEF53;

pub(crate) const COMPAT_SPARSE_SUPER2: u32 = 0x200;

const INCOMPAT_COMPRESSION: u32 = 0x1;
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
pub(crate) const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
pub(crate) const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
pub(crate) const INCOMPAT_EA_INODE: u32 = 0x400;
const INCOMPAT_DIRDATA: u32 = 0x1000;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const INCOMPAT_LARGEDIR: u32 = 0x4000;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
const INCOMPAT_ENCRYPT: u32 = 0x10000;
const INCOMPAT_CASEFOLD: u32 = 0x20000;

/// Everything else only changes how the volume is written or checked, not how it is read:
/// casefold keeps names as created (lookups here are exact), encryption is refused per inode.
const INCOMPAT_READABLE: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD;

pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(crate) const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
pub(crate) const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// The largest block size ext4 defines (log 6 above 1 KiB).
const MAX_LOG_BLOCK_SIZE: u32 = 6;

/// The parsed superblock; every number here has been checked against the others.
#[derive(Clone, Debug)]
pub(crate) struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub free_blocks_count: u64,
    pub first_data_block: u32,
    pub block_size: u64,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inode_size: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub desc_size: u16,
    pub first_meta_bg: u32,
    pub backup_bgs: [u32; 2],
    /// Seed for every metadata_csum checksum (crc32c of the UUID unless csum_seed stores one).
    pub csum_seed: u32,
    pub group_count: u32,
}

impl Superblock {
    pub(crate) fn parse(raw: &[u8; SUPERBLOCK_SIZE]) -> Result<Superblock, Ext4Error> {
        let magic = le16(raw, 0x38);
        if magic != MAGIC {
            return Err(Ext4Error::NotExt4 { found: magic });
        }
        let feature_compat = le32(raw, 0x5C);
        let feature_incompat = le32(raw, 0x60);
        let feature_ro_compat = le32(raw, 0x64);
        if feature_ro_compat & RO_COMPAT_METADATA_CSUM != 0 {
            if raw[0x175] != 1 {
                return Err(bad(format!("metadata_csum with unknown checksum type {}", raw[0x175])));
            }
            let stored = le32(raw, 0x3FC);
            let computed = crc32c(!0, &raw[..0x3FC]);
            if stored != computed {
                return Err(Ext4Error::Checksum { what: "the superblock".into(), stored, computed });
            }
        }
        check_incompat(feature_incompat)?;

        let log_block_size = le32(raw, 0x18);
        if log_block_size > MAX_LOG_BLOCK_SIZE {
            return Err(bad(format!("block size 1024 << {log_block_size} is larger than 64 KiB")));
        }
        let block_size = 1024u64 << log_block_size;
        let rev_level = le32(raw, 0x4C);
        let inode_size = if rev_level == 0 { 128 } else { le16(raw, 0x58) };
        if inode_size < 128 || !inode_size.is_power_of_two() || u64::from(inode_size) > block_size {
            return Err(bad(format!("inode size {inode_size} is not a power of two from 128 to the block size")));
        }
        let is_64bit = feature_incompat & INCOMPAT_64BIT != 0;
        let desc_size = if is_64bit { le16(raw, 0xFE) } else { 32 };
        if !(32..=1024).contains(&desc_size) || !desc_size.is_power_of_two() || (is_64bit && desc_size < 64) {
            return Err(bad(format!("group descriptor size {desc_size} is invalid")));
        }
        let blocks_count = join(le32(raw, 0x4), if is_64bit { le32(raw, 0x150) } else { 0 });
        let free_blocks_count = join(le32(raw, 0xC), if is_64bit { le32(raw, 0x158) } else { 0 });
        let first_data_block = le32(raw, 0x14);
        let blocks_per_group = le32(raw, 0x20);
        let inodes_per_group = le32(raw, 0x28);
        let inodes_count = le32(raw, 0x0);
        // With bigalloc, bitmaps count clusters, so a group spans that many more blocks.
        let log_cluster_size =
            if feature_ro_compat & RO_COMPAT_BIGALLOC != 0 { le32(raw, 0x1C) } else { log_block_size };
        if !(log_block_size..=log_block_size + 16).contains(&log_cluster_size) {
            return Err(bad(format!("cluster size 1024 << {log_cluster_size} with {block_size}-byte blocks")));
        }
        let max_blocks_per_group = (block_size * 8) << (log_cluster_size - log_block_size);
        if blocks_per_group == 0 || u64::from(blocks_per_group) > max_blocks_per_group {
            return Err(bad(format!("{blocks_per_group} blocks per group with {block_size}-byte blocks")));
        }
        if inodes_per_group == 0 || u64::from(inodes_per_group) > block_size * 8 {
            return Err(bad(format!("{inodes_per_group} inodes per group with {block_size}-byte blocks")));
        }
        if u64::from(first_data_block) >= blocks_count {
            return Err(bad(format!("first data block {first_data_block} is past the {blocks_count} blocks")));
        }
        let group_count = (blocks_count - u64::from(first_data_block)).div_ceil(u64::from(blocks_per_group));
        let group_count = u32::try_from(group_count).map_err(|_| bad(format!("{group_count} block groups")))?;
        if u64::from(inodes_count) > u64::from(group_count) * u64::from(inodes_per_group) {
            return Err(bad(format!("{inodes_count} inodes do not fit in {group_count} groups of {inodes_per_group}")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&raw[0x68..0x78]);
        let mut volume_name = [0u8; 16];
        volume_name.copy_from_slice(&raw[0x78..0x88]);
        let csum_seed = if feature_incompat & INCOMPAT_CSUM_SEED != 0 { le32(raw, 0x270) } else { crc32c(!0, &uuid) };
        Ok(Superblock {
            inodes_count,
            blocks_count,
            free_blocks_count,
            first_data_block,
            block_size,
            blocks_per_group,
            inodes_per_group,
            inode_size,
            feature_compat,
            feature_incompat,
            feature_ro_compat,
            uuid,
            volume_name,
            desc_size,
            first_meta_bg: le32(raw, 0x104),
            backup_bgs: [le32(raw, 0x24C), le32(raw, 0x250)],
            csum_seed,
            group_count,
        })
    }

    pub(crate) fn has_incompat(&self, flag: u32) -> bool {
        self.feature_incompat & flag != 0
    }

    pub(crate) fn has_ro_compat(&self, flag: u32) -> bool {
        self.feature_ro_compat & flag != 0
    }

    pub(crate) fn metadata_csum(&self) -> bool {
        self.has_ro_compat(RO_COMPAT_METADATA_CSUM)
    }

    /// Whether group descriptors carry checksums, which is what makes their UNINIT flags and
    /// unused-inode counts trustworthy.
    pub(crate) fn group_csum(&self) -> bool {
        self.has_ro_compat(RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)
    }
}

fn check_incompat(incompat: u32) -> Result<(), Ext4Error> {
    let refused = [
        (INCOMPAT_COMPRESSION, "compression"),
        (INCOMPAT_JOURNAL_DEV, "journal_dev (this is an external journal, not a filesystem)"),
        (INCOMPAT_DIRDATA, "dirdata"),
        (
            INCOMPAT_RECOVER,
            "needs_recovery (the journal holds changes not yet written back; run e2fsck on a copy first)",
        ),
    ];
    for (flag, name) in refused {
        if incompat & flag != 0 {
            return Err(Ext4Error::UnsupportedFeature(name.into()));
        }
    }
    let unknown = incompat & !INCOMPAT_READABLE;
    if unknown != 0 {
        return Err(Ext4Error::UnsupportedFeature(format!("unknown incompatible features {unknown:#x}")));
    }
    Ok(())
}

fn bad(what: String) -> Ext4Error {
    Ext4Error::Corrupt(format!("superblock: {what}"))
}
