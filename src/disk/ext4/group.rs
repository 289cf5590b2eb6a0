//! Block group descriptors: where each group's inode table is and whether it is initialised.
//!
//! Not for bitmaps or free-space accounting, which a reader has no use for.

use super::bytes::{crc16, crc32c, join, le16, le32};
use super::error::Ext4Error;
use super::superblock::{COMPAT_SPARSE_SUPER2, INCOMPAT_64BIT, INCOMPAT_META_BG, RO_COMPAT_SPARSE_SUPER, Superblock};
use crate::read_at::ReadAt;

/// The group's inode table has never been written: every inode in it is free.
pub(crate) const INODE_UNINIT: u16 = 0x1;
const CHECKSUM_OFFSET: usize = 0x1E;

/// What the reader needs from one group descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupDesc {
    pub inode_table: u64,
    pub flags: u16,
    /// Inodes at the end of the table that were never used (valid only with group checksums).
    pub itable_unused: u32,
}

/// All group descriptors, checked against their checksums when the volume has them.
pub(crate) fn read_groups(source: &dyn ReadAt, sb: &Superblock) -> Result<Vec<GroupDesc>, Ext4Error> {
    let desc_size = u64::from(sb.desc_size);
    let per_block = sb.block_size / desc_size;
    let table_bytes = u64::from(sb.group_count) * desc_size;
    // Descriptors are read from the source, so their count is bounded by its length; checking
    // first keeps a forged group count from reserving memory the image cannot back.
    if table_bytes > source.len() {
        return Err(Ext4Error::Corrupt(format!(
            "{} block groups need {table_bytes} bytes of descriptors, more than the {}-byte image",
            sb.group_count,
            source.len()
        )));
    }
    let mut groups = Vec::with_capacity(sb.group_count as usize);
    let mut block = vec![0u8; sb.block_size as usize];
    let desc_blocks = u64::from(sb.group_count).div_ceil(per_block);
    for index in 0..desc_blocks {
        let location = descriptor_block(sb, index);
        let offset = location.checked_mul(sb.block_size).filter(|_| location < sb.blocks_count);
        let offset = offset.ok_or_else(|| {
            Ext4Error::Corrupt(format!("group descriptor block {location} lies outside the filesystem"))
        })?;
        source.read_exact_at(&mut block, offset).map_err(|source| Ext4Error::Io {
            offset,
            len: sb.block_size,
            source,
        })?;
        for slot in 0..per_block {
            let group = index * per_block + slot;
            if group >= u64::from(sb.group_count) {
                break;
            }
            let start = (slot * desc_size) as usize;
            let raw = &block[start..start + desc_size as usize];
            verify(sb, group as u32, raw)?;
            groups.push(parse(sb, raw));
        }
    }
    Ok(groups)
}

fn parse(sb: &Superblock, raw: &[u8]) -> GroupDesc {
    let wide = sb.has_incompat(INCOMPAT_64BIT);
    let hi = |at: usize| if wide { le32(raw, at) } else { 0 };
    let hi16 = |at: usize| if wide { u32::from(le16(raw, at)) } else { 0 };
    GroupDesc {
        inode_table: join(le32(raw, 0x8), hi(0x28)),
        flags: le16(raw, 0x12),
        itable_unused: u32::from(le16(raw, 0x1C)) | (hi16(0x32) << 16),
    }
}

/// Where the `index`th block of descriptors lives: right after the superblock, or with
/// meta_bg, at the start of the meta-group it describes (after that group's backup superblock).
fn descriptor_block(sb: &Superblock, index: u64) -> u64 {
    let first = u64::from(sb.first_data_block);
    if !sb.has_incompat(INCOMPAT_META_BG) || index < u64::from(sb.first_meta_bg) {
        return first + 1 + index;
    }
    let group = index * (sb.block_size / u64::from(sb.desc_size));
    let group_start = first + group * u64::from(sb.blocks_per_group);
    group_start + u64::from(has_superblock_backup(sb, group))
}

fn has_superblock_backup(sb: &Superblock, group: u64) -> bool {
    if group == 0 {
        return true;
    }
    if sb.feature_compat & COMPAT_SPARSE_SUPER2 != 0 {
        return sb.backup_bgs.iter().any(|&g| u64::from(g) == group);
    }
    if group <= 1 || !sb.has_ro_compat(RO_COMPAT_SPARSE_SUPER) {
        return true;
    }
    [3u64, 5, 7].iter().any(|&base| is_power_of(group, base))
}

fn is_power_of(mut n: u64, base: u64) -> bool {
    while n % base == 0 {
        n /= base;
    }
    n == 1
}

fn verify(sb: &Superblock, group: u32, raw: &[u8]) -> Result<(), Ext4Error> {
    let stored = le16(raw, CHECKSUM_OFFSET);
    let computed = if sb.metadata_csum() {
        let mut zeroed = raw.to_vec();
        zeroed[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].fill(0);
        let crc = crc32c(crc32c(sb.csum_seed, &group.to_le_bytes()), &zeroed);
        (crc & 0xFFFF) as u16
    } else if sb.group_csum() {
        let mut crc = crc16(crc16(!0, &sb.uuid), &group.to_le_bytes());
        crc = crc16(crc, &raw[..CHECKSUM_OFFSET]);
        crc16(crc, &raw[CHECKSUM_OFFSET + 2..])
    } else {
        return Ok(());
    };
    if stored != computed {
        return Err(Ext4Error::Checksum {
            what: format!("group descriptor {group}"),
            stored: stored.into(),
            computed: computed.into(),
        });
    }
    Ok(())
}
