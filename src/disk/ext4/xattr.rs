//! Extended attributes: entries in the inode's spare space and in the external xattr block,
//! names rebuilt from their index prefixes, POSIX ACLs converted to the form `getxattr` returns.
//!
//! Not for writing, nor for the hash fields (only needed to share blocks when writing).

use super::bytes::{crc32c, le16, le32};
use super::error::{Ext4Error, corrupt};
use super::inode::{FLAG_EA_INODE, Inode};
use super::superblock::INCOMPAT_EA_INODE;
use super::{Ext4, MAX_XATTR_BYTES};

const MAGIC: u32 = 0xEA02_0000;
const ENTRY_HEADER: usize = 16;
const BLOCK_HEADER: usize = 32;
const BLOCK_CHECKSUM_OFFSET: usize = 0x10;
/// The VFS limit on one value (XATTR_SIZE_MAX); values kept in their own inode obey it too.
const MAX_VALUE: u32 = 65_536;

const INDEX_SYSTEM: u8 = 7;
const INDEX_ENCRYPTION: u8 = 9;

/// One entry as stored: name without prefix, and where its value is.
struct Entry {
    index: u8,
    name: Vec<u8>,
    value: Value,
}

enum Value {
    /// A byte range of the region the entry was found in.
    Local { start: usize, len: usize },
    /// The content of an EA inode (the ea_inode feature).
    Inode { ino: u32, len: u32 },
}

/// In-inode and block attributes of one inode, plus the source location of `system.data`.
pub(crate) struct Xattrs {
    pub named: Vec<(String, Vec<u8>)>,
    pub inline_tail: Option<(u64, u32)>,
}

impl Ext4 {
    /// Reads the attributes of inode `ino` from its raw record (at `offset` in the source) and
    /// its xattr block. `follow_ea_inodes` is false when reading an EA inode itself, so a forged
    /// chain of EA inodes cannot recurse.
    pub(crate) fn read_xattrs(
        &self,
        ino: u32,
        raw: &[u8],
        offset: u64,
        extra_end: usize,
        file_acl: u64,
        follow_ea_inodes: bool,
    ) -> Result<Xattrs, Ext4Error> {
        let mut out = Xattrs { named: Vec::new(), inline_tail: None };
        let mut total = 0usize;
        if raw.len() >= extra_end + 4 && le32(raw, extra_end) == MAGIC {
            let region = &raw[extra_end..];
            for entry in parse_entries(ino, region, 4, 4)? {
                if let (INDEX_SYSTEM, b"data", Value::Local { start, len }) =
                    (entry.index, &entry.name[..], &entry.value)
                {
                    let at = offset + (extra_end + start) as u64;
                    out.inline_tail = Some((at, *len as u32));
                    continue;
                }
                self.push_entry(ino, entry, region, follow_ea_inodes, &mut total, &mut out.named)?;
            }
        }
        if file_acl != 0 {
            let block = self.read_block(ino, file_acl, "xattr block")?;
            if le32(&block, 0) != MAGIC || le32(&block, 8) != 1 {
                return Err(corrupt(ino, format!("xattr block {file_acl} has a bad header")));
            }
            self.verify_xattr_block(ino, file_acl, &block)?;
            for entry in parse_entries(ino, &block, BLOCK_HEADER, 0)? {
                self.push_entry(ino, entry, &block, follow_ea_inodes, &mut total, &mut out.named)?;
            }
        }
        out.named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn push_entry(
        &self,
        ino: u32,
        entry: Entry,
        region: &[u8],
        follow_ea_inodes: bool,
        total: &mut usize,
        named: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), Ext4Error> {
        // The encryption context is internal to fscrypt and never listed by the kernel;
        // encrypted content itself is refused where it is read.
        if entry.index == INDEX_ENCRYPTION {
            return Ok(());
        }
        let Some(prefix) = prefix(entry.index) else {
            return Err(corrupt(ino, format!("xattr with unknown name index {}", entry.index)));
        };
        let suffix = String::from_utf8(entry.name)
            .map_err(|_| corrupt(ino, format!("xattr name after `{prefix}` is not UTF-8")))?;
        let value = match entry.value {
            Value::Local { start, len } => region[start..start + len].to_vec(),
            Value::Inode { ino: value_ino, len } => {
                if !follow_ea_inodes || !self.sb.has_incompat(INCOMPAT_EA_INODE) {
                    return Err(corrupt(ino, format!("xattr {prefix}{suffix} refers to EA inode {value_ino}")));
                }
                self.ea_inode_value(ino, value_ino, len)?
            }
        };
        *total += value.len();
        if *total > MAX_XATTR_BYTES {
            return Err(corrupt(ino, format!("extended attributes exceed {MAX_XATTR_BYTES} bytes")));
        }
        let value = match entry.index {
            2 | 3 => acl_to_xattr(ino, &value)?,
            _ => value,
        };
        named.push((format!("{prefix}{suffix}"), value));
        Ok(())
    }

    fn ea_inode_value(&self, ino: u32, value_ino: u32, len: u32) -> Result<Vec<u8>, Ext4Error> {
        if len > MAX_VALUE {
            return Err(corrupt(ino, format!("xattr value of {len} bytes exceeds {MAX_VALUE}")));
        }
        let holder: Inode = self.inode_inner(value_ino, false)?;
        if !holder.has_flag(FLAG_EA_INODE) || holder.size != u64::from(len) {
            return Err(corrupt(ino, format!("inode {value_ino} does not hold a {len}-byte xattr value")));
        }
        self.read_file(&holder, u64::from(MAX_VALUE))
    }

    fn verify_xattr_block(&self, ino: u32, block_nr: u64, block: &[u8]) -> Result<(), Ext4Error> {
        if !self.sb.metadata_csum() {
            return Ok(());
        }
        let stored = le32(block, BLOCK_CHECKSUM_OFFSET);
        let mut zeroed = block.to_vec();
        zeroed[BLOCK_CHECKSUM_OFFSET..BLOCK_CHECKSUM_OFFSET + 4].fill(0);
        let computed = crc32c(crc32c(self.sb.csum_seed, &block_nr.to_le_bytes()), &zeroed);
        if stored != computed {
            return Err(Ext4Error::Checksum { what: format!("inode {ino}: xattr block {block_nr}"), stored, computed });
        }
        Ok(())
    }
}

/// Entries from `first` up to the 4-zero-byte terminator; value offsets count from `value_base`.
fn parse_entries(ino: u32, region: &[u8], first: usize, value_base: usize) -> Result<Vec<Entry>, Ext4Error> {
    let mut entries = Vec::new();
    let mut at = first;
    loop {
        if at + 4 > region.len() {
            return Err(corrupt(ino, "xattr entries run past their region"));
        }
        if le32(region, at) == 0 {
            return Ok(entries);
        }
        let name_len = usize::from(region[at]);
        let next = at + ((ENTRY_HEADER + name_len + 3) & !3);
        if next > region.len() {
            return Err(corrupt(ino, "xattr entry runs past its region"));
        }
        let name = region[at + ENTRY_HEADER..at + ENTRY_HEADER + name_len].to_vec();
        let value_offs = usize::from(le16(region, at + 2));
        let value_inum = le32(region, at + 4);
        let value_size = le32(region, at + 8);
        let value = if value_inum != 0 {
            Value::Inode { ino: value_inum, len: value_size }
        } else {
            let start = value_base + value_offs;
            let len = value_size as usize;
            if start.checked_add(len).is_none_or(|end| end > region.len()) {
                return Err(corrupt(ino, format!("xattr value of {len} bytes at {start} runs past its region")));
            }
            Value::Local { start, len }
        };
        entries.push(Entry { index: region[at + 1], name, value });
        at = next;
    }
}

fn prefix(index: u8) -> Option<&'static str> {
    Some(match index {
        1 => "user.",
        2 => "system.posix_acl_access",
        3 => "system.posix_acl_default",
        4 => "trusted.",
        6 => "security.",
        7 => "system.",
        8 => "system.richacl",
        10 => "gnu.",
        _ => return None,
    })
}

const ACL_DISK_VERSION: u32 = 1;
const ACL_XATTR_VERSION: u32 = 2;
const ACL_UNDEFINED_ID: u32 = u32::MAX;
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;

/// ext4 stores ACLs compactly (version 1, 4-byte entries for tags without an id); `getxattr`
/// and tar archives carry the POSIX xattr form (version 2, 8-byte entries), so convert.
fn acl_to_xattr(ino: u32, disk: &[u8]) -> Result<Vec<u8>, Ext4Error> {
    if disk.len() < 4 || le32(disk, 0) != ACL_DISK_VERSION {
        return Err(corrupt(ino, "POSIX ACL does not start with ext4's version 1 header"));
    }
    let mut out = ACL_XATTR_VERSION.to_le_bytes().to_vec();
    let mut at = 4;
    while at < disk.len() {
        let tag = le16(disk, at);
        let (id, width) =
            if tag == ACL_USER || tag == ACL_GROUP { (le32(disk, at + 4), 8) } else { (ACL_UNDEFINED_ID, 4) };
        if at + width > disk.len() {
            return Err(corrupt(ino, "POSIX ACL ends inside an entry"));
        }
        out.extend_from_slice(&disk[at..at + 4]);
        out.extend_from_slice(&id.to_le_bytes());
        at += width;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_convert_to_the_xattr_form() {
        // u::rwx, u:1000:rwx, g::r-x, m::rwx, o::r-x as ext4 stores them and as getfattr shows.
        let disk = [1, 0, 0, 0, 1, 0, 7, 0, 2, 0, 7, 0, 0xe8, 3, 0, 0, 4, 0, 5, 0, 0x10, 0, 7, 0, 0x20, 0, 5, 0];
        let xattr = [
            2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 2, 0, 7, 0, 0xe8, 3, 0, 0, 4, 0, 5, 0, 255, 255, 255, 255,
            0x10, 0, 7, 0, 255, 255, 255, 255, 0x20, 0, 5, 0, 255, 255, 255, 255,
        ];
        assert_eq!(acl_to_xattr(1, &disk).unwrap(), xattr);
        assert!(acl_to_xattr(1, &disk[..10]).is_err());
        assert!(acl_to_xattr(1, &[2, 0, 0, 0]).is_err());
    }
}
