//! A read-only ext2/3/4 reader over any `ReadAt`: enough to reproduce a root filesystem exactly
//! as a tar archive (ownership, modes, times with nanoseconds, device numbers, symlinks, hard
//! links by inode number, extended attributes) and to read content lazily by reference.
//!
//! Not a writer, not a journal replayer (volumes that need recovery are refused), not a
//! checker: it verifies the checksums it meets on the way and refuses what it cannot read
//! faithfully (encryption, compression, external journals), but it does not scan the volume.
//! Every number from the image is checked before use; no input makes it panic, loop forever or
//! allocate much beyond what the image itself holds.

mod blockmap;
mod bytes;
mod data;
mod dir;
mod error;
mod extent;
mod group;
mod inode;
mod reader;
mod runs;
mod superblock;
#[cfg(test)]
mod tests;
mod xattr;

use std::fmt;
use std::io::Read;
use std::sync::Arc;

pub use data::Extent;
pub use dir::DirEntry;
pub use error::Ext4Error;
pub use inode::{Inode, InodeKind, Timestamp};
pub use reader::FileReader;

use crate::read_at::ReadAt;
use error::corrupt;
use group::{GroupDesc, INODE_UNINIT};
use inode::{FLAG_ENCRYPTED, FileType, RawInode, verify_checksum};
use superblock::{SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock};

pub const ROOT_INO: u32 = 2;
/// Limit on all extended attribute values of one inode together; real ones are far smaller,
/// and it bounds what EA inodes can make the reader allocate.
pub const MAX_XATTR_BYTES: usize = 4 << 20;

/// An opened volume. Cheap to share across threads; every call reads through the source.
pub struct Ext4 {
    source: Arc<dyn ReadAt>,
    sb: Superblock,
    groups: Vec<GroupDesc>,
}

impl fmt::Debug for Ext4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ext4")
            .field("label", &self.label())
            .field("block_size", &self.sb.block_size)
            .field("blocks", &self.sb.blocks_count)
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl Ext4 {
    /// Reads and checks the superblock and group descriptors; fails on anything that is not
    /// an ext2/3/4 volume this reader can read faithfully.
    pub fn open(source: Arc<dyn ReadAt>) -> Result<Ext4, Ext4Error> {
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        source.read_exact_at(&mut raw, SUPERBLOCK_OFFSET).map_err(|e| Ext4Error::Io {
            offset: SUPERBLOCK_OFFSET,
            len: SUPERBLOCK_SIZE as u64,
            source: e,
        })?;
        let sb = Superblock::parse(&raw)?;
        let groups = group::read_groups(source.as_ref(), &sb)?;
        Ok(Ext4 { source, sb, groups })
    }

    /// The volume name, up to its first NUL, with invalid UTF-8 replaced.
    pub fn label(&self) -> String {
        let name = &self.sb.volume_name;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        String::from_utf8_lossy(&name[..end]).into_owned()
    }

    pub fn uuid(&self) -> [u8; 16] {
        self.sb.uuid
    }

    pub fn block_size(&self) -> u64 {
        self.sb.block_size
    }

    /// blocks_count × block size, saturating on a forged count.
    pub fn size_bytes(&self) -> u64 {
        self.sb.blocks_count.saturating_mul(self.sb.block_size)
    }

    /// Free blocks as the superblock counts them, in bytes (reserved blocks included).
    pub fn free_bytes(&self) -> u64 {
        self.sb.free_blocks_count.saturating_mul(self.sb.block_size)
    }

    pub fn root(&self) -> Result<Inode, Ext4Error> {
        self.inode(ROOT_INO)
    }

    /// Inode `ino` with its type, symlink target and extended attributes; an error if it is
    /// out of range, free, corrupt or fails its checksum.
    pub fn inode(&self, ino: u32) -> Result<Inode, Ext4Error> {
        self.inode_inner(ino, true)
    }

    pub(crate) fn inode_inner(&self, ino: u32, follow_ea_inodes: bool) -> Result<Inode, Ext4Error> {
        let sb = &self.sb;
        if ino == 0 || ino > sb.inodes_count {
            return Err(Ext4Error::Corrupt(format!("inode number {ino} is outside 1..={}", sb.inodes_count)));
        }
        let group = (ino - 1) / sb.inodes_per_group;
        let index = (ino - 1) % sb.inodes_per_group;
        let desc = self.groups.get(group as usize).ok_or_else(|| corrupt(ino, "its group has no descriptor"))?;
        let never_used =
            desc.flags & INODE_UNINIT != 0 || index >= sb.inodes_per_group.saturating_sub(desc.itable_unused);
        if sb.group_csum() && never_used {
            return Err(Ext4Error::UnusedInode(ino));
        }
        let inode_size = u64::from(sb.inode_size);
        let offset = desc
            .inode_table
            .checked_mul(sb.block_size)
            .and_then(|table| table.checked_add(u64::from(index) * inode_size))
            .ok_or_else(|| corrupt(ino, format!("inode table at block {} is beyond any offset", desc.inode_table)))?;
        let mut raw = vec![0u8; usize::from(sb.inode_size)];
        self.read_exact(&mut raw, offset)?;
        verify_checksum(sb, ino, &raw)?;
        let fields = RawInode::parse(ino, &raw)?;
        if fields.mode == 0 || fields.links == 0 {
            return Err(Ext4Error::UnusedInode(ino));
        }
        let file_type = fields.file_type(ino)?;
        let xattrs = self.read_xattrs(ino, &raw, offset, fields.extra_end, fields.file_acl, follow_ea_inodes)?;
        let (major, minor) = fields.device();
        let kind = match file_type {
            FileType::File => InodeKind::File,
            FileType::Dir => InodeKind::Dir,
            FileType::Symlink => InodeKind::Symlink { target: Vec::new() },
            FileType::CharDevice => InodeKind::CharDevice { major, minor },
            FileType::BlockDevice => InodeKind::BlockDevice { major, minor },
            FileType::Fifo => InodeKind::Fifo,
            FileType::Socket => InodeKind::Socket,
        };
        let mut inode = Inode {
            ino,
            mode: fields.mode,
            uid: fields.uid,
            gid: fields.gid,
            size: fields.size,
            links: fields.links,
            atime: fields.atime,
            mtime: fields.mtime,
            ctime: fields.ctime,
            crtime: fields.crtime,
            flags: fields.flags,
            generation: fields.generation,
            kind,
            xattrs: xattrs.named,
            offset,
            i_block: fields.i_block,
            file_acl: fields.file_acl,
            inline_tail: xattrs.inline_tail,
        };
        if let InodeKind::Symlink { .. } = inode.kind {
            inode.kind = InodeKind::Symlink { target: self.symlink_target(&inode)? };
        }
        Ok(inode)
    }

    fn symlink_target(&self, link: &Inode) -> Result<Vec<u8>, Ext4Error> {
        if link.has_flag(FLAG_ENCRYPTED) {
            return Err(error::unsupported(link.ino, "encrypted symlink"));
        }
        // The kernel refuses targets longer than a block (and PATH_MAX).
        let target = self.read_file(link, self.sb.block_size)?;
        if target.is_empty() || target.contains(&0) {
            return Err(corrupt(link.ino, "symlink target is empty or holds NUL"));
        }
        Ok(target)
    }

    /// The inode at `path`, resolved from the root: empty and "." components are skipped,
    /// ".." goes up lexically, a relative path counts from the root too. Symlinks are never
    /// followed: one as the last component is returned itself (like `lstat`), one before it
    /// is `NotADirectory`.
    pub fn lookup(&self, path: &str) -> Result<Inode, Ext4Error> {
        self.lookup_bytes(path.as_bytes())
    }

    /// `lookup` for names that are not UTF-8.
    pub fn lookup_bytes(&self, path: &[u8]) -> Result<Inode, Ext4Error> {
        let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let mut stack = vec![self.root()?];
        let mut start = 0;
        for component in path.split(|&b| b == b'/') {
            let end = start + component.len();
            let parent = &path[..start.saturating_sub(1)];
            start = end + 1;
            match component {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let Some(dir) = stack.last() else {
                return Err(Ext4Error::NotFound(lossy(&path[..end])));
            };
            if !dir.is_dir() {
                return Err(Ext4Error::NotADirectory(lossy(parent)));
            }
            let entries = self.read_dir(dir)?;
            let found = entries.binary_search_by(|e| e.name.as_slice().cmp(component));
            let entry =
                found.ok().and_then(|i| entries.get(i)).ok_or_else(|| Ext4Error::NotFound(lossy(&path[..end])))?;
            stack.push(self.inode(entry.ino)?);
        }
        stack.pop().ok_or_else(|| Ext4Error::NotFound(String::from_utf8_lossy(path).into_owned()))
    }

    /// A reader yielding exactly `file.size` bytes: zeros for holes and uninitialized extents.
    pub fn open_file(&self, file: &Inode) -> Result<FileReader, Ext4Error> {
        Ok(FileReader::new(self.source.clone(), self.extents(file)?, file.size))
    }

    /// The whole content of `file`, refused with `TooLarge` if its size exceeds `limit` bytes
    /// (the caller decides how much memory one file may take).
    pub fn read_file(&self, file: &Inode, limit: u64) -> Result<Vec<u8>, Ext4Error> {
        if file.size > limit {
            return Err(Ext4Error::TooLarge { ino: file.ino, size: file.size, limit });
        }
        let mut reader = self.open_file(file)?;
        let mut content = Vec::with_capacity(usize::try_from(file.size).unwrap_or(0));
        reader.read_to_end(&mut content).map_err(|source| Ext4Error::Content { ino: file.ino, source })?;
        Ok(content)
    }

    fn read_exact(&self, buf: &mut [u8], offset: u64) -> Result<(), Ext4Error> {
        self.source.read_exact_at(buf, offset).map_err(|source| Ext4Error::Io { offset, len: buf.len() as u64, source })
    }

    /// One metadata block of inode `ino`, refusing block numbers outside the volume.
    pub(crate) fn read_block(&self, ino: u32, block: u64, what: &str) -> Result<Vec<u8>, Ext4Error> {
        if block == 0 || block >= self.sb.blocks_count {
            return Err(corrupt(ino, format!("{what} at block {block} lies outside the volume")));
        }
        let offset = block
            .checked_mul(self.sb.block_size)
            .ok_or_else(|| corrupt(ino, format!("{what} at block {block} is beyond any byte offset")))?;
        let mut buf = vec![0u8; self.sb.block_size as usize];
        self.read_exact(&mut buf, offset)?;
        Ok(buf)
    }
}
