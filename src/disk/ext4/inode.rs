//! Inodes: decoding the on-disk record into ownership, mode, times, type and device numbers.
//!
//! Not for file content, directory entries or extended attribute parsing; those live in their
//! own files and are attached to the inode by `Ext4::inode`.

use super::bytes::{crc32c, join, le16, le32};
use super::error::{Ext4Error, corrupt};
use super::superblock::Superblock;

pub(crate) const GOOD_OLD_INODE_SIZE: usize = 128;
/// Where `i_block` (extent root, block map, inline data, fast symlink or device) starts.
pub(crate) const I_BLOCK_OFFSET: usize = 0x28;
pub(crate) const I_BLOCK_SIZE: usize = 60;

pub(crate) const FLAG_COMPRESSED: u32 = 0x4;
pub(crate) const FLAG_ENCRYPTED: u32 = 0x800;
pub(crate) const FLAG_EXTENTS: u32 = 0x8_0000;
pub(crate) const FLAG_EA_INODE: u32 = 0x20_0000;
pub(crate) const FLAG_INLINE_DATA: u32 = 0x1000_0000;

const S_IFMT: u16 = 0xF000;

/// A point in time as ext4 stores it: seconds from the Unix epoch (negative before 1970,
/// beyond 2038 through the epoch bits) and nanoseconds, 0 when the inode has no room for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: i64,
    /// Always below 1,000,000,000: larger on-disk values, which the kernel never writes, are clamped.
    pub nanos: u32,
}

/// What an inode is, with what only that kind has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InodeKind {
    File,
    Dir,
    /// The target exactly as stored: any bytes but NUL, not necessarily UTF-8.
    Symlink {
        target: Vec<u8>,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One in-use inode with everything a tar entry needs except content, which is read through
/// `Ext4::extents` or `Ext4::open_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub ino: u32,
    /// The full `i_mode`: type bits, setuid/setgid/sticky and permissions.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Creation time, when the inode is large enough to hold one.
    pub crtime: Option<Timestamp>,
    /// `i_flags` (EXT4_*_FL): immutable, append-only, extents, inline data and so on.
    pub flags: u32,
    pub generation: u32,
    pub kind: InodeKind,
    /// Full names ("security.capability") with values as `getxattr` returns them (POSIX ACLs
    /// converted to their xattr form), sorted by name. The internal `system.data` is left out.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Where the record starts in the source, so inline content can be referred to in place.
    pub(crate) offset: u64,
    pub(crate) i_block: [u8; I_BLOCK_SIZE],
    pub(crate) file_acl: u64,
    /// The `system.data` value holding inline content past `i_block`: source offset and length.
    pub(crate) inline_tail: Option<(u64, u32)>,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, InodeKind::Dir)
    }

    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Permission bits with setuid, setgid and sticky, without the type.
    pub fn permissions(&self) -> u16 {
        self.mode & !S_IFMT
    }
}

/// The fields decoded from the raw record; kind-specific content comes later.
pub(crate) struct RawInode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Option<Timestamp>,
    pub flags: u32,
    pub generation: u32,
    pub i_block: [u8; I_BLOCK_SIZE],
    pub file_acl: u64,
    /// Where in-inode extended attributes start within the record (128 + i_extra_isize).
    pub extra_end: usize,
}

pub(crate) enum FileType {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl RawInode {
    pub(crate) fn parse(ino: u32, raw: &[u8]) -> Result<RawInode, Ext4Error> {
        if raw.len() < GOOD_OLD_INODE_SIZE {
            return Err(corrupt(ino, format!("record of {} bytes is shorter than 128", raw.len())));
        }
        let extra_isize = if raw.len() > GOOD_OLD_INODE_SIZE { usize::from(le16(raw, 0x80)) } else { 0 };
        let extra_end = GOOD_OLD_INODE_SIZE + extra_isize;
        if extra_end > raw.len() || extra_isize % 4 != 0 {
            return Err(corrupt(ino, format!("i_extra_isize {extra_isize} does not fit a {}-byte inode", raw.len())));
        }
        // An extra field exists only if i_extra_isize covers it entirely.
        let extra = |at: usize| if at + 4 <= extra_end { Some(le32(raw, at)) } else { None };
        let time = |base: usize, extra_at: usize| decode_time(le32(raw, base), extra(extra_at).unwrap_or(0));
        let mut i_block = [0u8; I_BLOCK_SIZE];
        i_block.copy_from_slice(&raw[I_BLOCK_OFFSET..I_BLOCK_OFFSET + I_BLOCK_SIZE]);
        Ok(RawInode {
            mode: le16(raw, 0x0),
            uid: u32::from(le16(raw, 0x2)) | (u32::from(le16(raw, 0x78)) << 16),
            gid: u32::from(le16(raw, 0x18)) | (u32::from(le16(raw, 0x7A)) << 16),
            size: join(le32(raw, 0x4), le32(raw, 0x6C)),
            links: le16(raw, 0x1A),
            ctime: time(0xC, 0x84),
            mtime: time(0x10, 0x88),
            atime: time(0x8, 0x8C),
            crtime: extra(0x90).map(|secs| decode_time(secs, extra(0x94).unwrap_or(0))),
            flags: le32(raw, 0x20),
            generation: le32(raw, 0x64),
            i_block,
            file_acl: join(le32(raw, 0x68), u32::from(le16(raw, 0x76))),
            extra_end,
        })
    }

    pub(crate) fn file_type(&self, ino: u32) -> Result<FileType, Ext4Error> {
        Ok(match self.mode & S_IFMT {
            0x1000 => FileType::Fifo,
            0x2000 => FileType::CharDevice,
            0x4000 => FileType::Dir,
            0x6000 => FileType::BlockDevice,
            0x8000 => FileType::File,
            0xA000 => FileType::Symlink,
            0xC000 => FileType::Socket,
            other => return Err(corrupt(ino, format!("unknown file type {other:#o} in mode {:#o}", self.mode))),
        })
    }

    /// Device numbers: the old 8:8 encoding in i_block[0] when it is set, else the new one in
    /// i_block[1] (the kernel's `old_decode_dev`/`new_decode_dev`).
    pub(crate) fn device(&self) -> (u32, u32) {
        let old = le32(&self.i_block, 0);
        if old != 0 {
            return ((old >> 8) & 0xff, old & 0xff);
        }
        let new = le32(&self.i_block, 4);
        ((new >> 8) & 0xfff, (new & 0xff) | ((new >> 12) & 0xfff00))
    }
}

/// Seconds are signed 32-bit, extended by the two epoch bits of the extra field, as the kernel's
/// `ext4_decode_extra_time` does; nanoseconds sit in the extra field's upper 30 bits.
fn decode_time(base: u32, extra: u32) -> Timestamp {
    let secs = i64::from(base as i32) + (i64::from(extra & 3) << 32);
    Timestamp { secs, nanos: (extra >> 2).min(999_999_999) }
}

/// Checks the metadata_csum inode checksum. An all-zero record passes: mke2fs leaves inode
/// tables zeroed without checksums, and e2fsprogs accepts those the same way.
pub(crate) fn verify_checksum(sb: &Superblock, ino: u32, raw: &[u8]) -> Result<(), Ext4Error> {
    if !sb.metadata_csum() || raw.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let extra_isize = if raw.len() > GOOD_OLD_INODE_SIZE { le16(raw, 0x80) } else { 0 };
    let has_hi = raw.len() > GOOD_OLD_INODE_SIZE && extra_isize >= 4;
    let mut zeroed = raw.to_vec();
    zeroed[0x7C..0x7E].fill(0);
    if has_hi {
        zeroed[0x82..0x84].fill(0);
    }
    let crc = crc32c(inode_seed(sb, ino, le32(raw, 0x64)), &zeroed);
    let lo = u32::from(le16(raw, 0x7C));
    let (stored, computed) = if has_hi { (lo | (u32::from(le16(raw, 0x82)) << 16), crc) } else { (lo, crc & 0xFFFF) };
    if stored != computed {
        return Err(Ext4Error::Checksum { what: format!("inode {ino}"), stored, computed });
    }
    Ok(())
}

/// The per-inode seed that inode, extent block and directory block checksums start from.
pub(crate) fn inode_seed(sb: &Superblock, ino: u32, generation: u32) -> u32 {
    crc32c(crc32c(sb.csum_seed, &ino.to_le_bytes()), &generation.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_extend_past_2038_and_before_1970() {
        assert_eq!(decode_time(0x8000_0000, 0), Timestamp { secs: -(1 << 31), nanos: 0 });
        // 2100-01-01 as the kernel and debugfs' set_inode_field encode it.
        assert_eq!(decode_time(0xF486_5700, 1), Timestamp { secs: 4_102_444_800, nanos: 0 });
        assert_eq!(decode_time(5, (123 << 2) | 2), Timestamp { secs: 5 + (2 << 32), nanos: 123 });
        assert_eq!(decode_time(0, u32::MAX).nanos, 999_999_999);
    }
}
