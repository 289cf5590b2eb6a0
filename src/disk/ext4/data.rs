//! Where an inode's content is: byte extents into the source, whatever the storage (extent
//! tree, block map, inline data, fast symlink).
//!
//! Not for reading the bytes; `reader.rs` streams them and the caller may read them itself.

use super::error::{Ext4Error, corrupt, unsupported};
use super::extent::MAGIC as EXTENT_MAGIC;
use super::inode::{
    FLAG_COMPRESSED, FLAG_ENCRYPTED, FLAG_EXTENTS, FLAG_INLINE_DATA, I_BLOCK_OFFSET, I_BLOCK_SIZE, Inode, InodeKind,
};
use super::runs::Runs;
use super::{Ext4, bytes::le16};

/// `len` bytes of content from byte `logical` of the file are at byte `physical` of the source.
///
/// Extents are in logical order and do not overlap; gaps between them (and after the last one,
/// up to the file size) are holes that read as zeros. `len` never reaches past the file size.
/// Extents of inline content and fast symlinks point into the inode record and need not be
/// block-aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    /// Allocated but never written: reads as zeros whatever the blocks hold.
    pub uninit: bool,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.logical + self.len
    }
}

impl Ext4 {
    /// The content of `file` (a regular file, directory or symlink; devices, fifos and sockets
    /// have none) as byte extents, each checked to lie inside the source.
    pub fn extents(&self, file: &Inode) -> Result<Vec<Extent>, Ext4Error> {
        let ino = file.ino;
        if file.has_flag(FLAG_ENCRYPTED) {
            return Err(unsupported(ino, "encrypted content"));
        }
        if file.has_flag(FLAG_COMPRESSED) {
            return Err(unsupported(ino, "compressed content"));
        }
        let extents = match file.kind {
            InodeKind::File | InodeKind::Dir | InodeKind::Symlink { .. } => self.content_extents(file)?,
            _ => Vec::new(),
        };
        for extent in &extents {
            if extent.physical.checked_add(extent.len).is_none_or(|end| end > self.source.len()) {
                return Err(corrupt(
                    ino,
                    format!(
                        "{} bytes at {} lie past the end of the {}-byte image",
                        extent.len,
                        extent.physical,
                        self.source.len()
                    ),
                ));
            }
        }
        Ok(extents)
    }

    fn content_extents(&self, file: &Inode) -> Result<Vec<Extent>, Ext4Error> {
        let in_inode = file.offset + I_BLOCK_OFFSET as u64;
        if file.has_flag(FLAG_INLINE_DATA) {
            return self.inline_extents(file);
        }
        if is_fast_symlink(file) {
            return Ok(vec![Extent { logical: 0, physical: in_inode, len: file.size, uninit: false }]);
        }
        let block_size = self.sb.block_size;
        let mut runs = Runs::new(file.size.div_ceil(block_size));
        if file.has_flag(FLAG_EXTENTS) {
            self.map_extents(file, &mut runs)?;
        } else {
            self.map_blocks(file, &mut runs)?;
        }
        let mut extents = Vec::with_capacity(runs.runs.len());
        for run in runs.runs {
            // Logical blocks stay below 2^32 and blocks are at most 64 KiB, so only the
            // physical side (up to 2^48 blocks) can overflow.
            let logical = run.logical * block_size;
            let physical = run
                .physical
                .checked_mul(block_size)
                .ok_or_else(|| corrupt(file.ino, format!("block {} is beyond any byte offset", run.physical)))?;
            let len = (run.len * block_size).min(file.size - logical);
            extents.push(Extent { logical, physical, len, uninit: run.uninit });
        }
        Ok(extents)
    }

    /// Inline content: the first 60 bytes in `i_block`, the rest in the `system.data` value.
    fn inline_extents(&self, file: &Inode) -> Result<Vec<Extent>, Ext4Error> {
        let head = file.size.min(I_BLOCK_SIZE as u64);
        let mut extents = Vec::new();
        if head > 0 {
            let physical = file.offset + I_BLOCK_OFFSET as u64;
            extents.push(Extent { logical: 0, physical, len: head, uninit: false });
        }
        let rest = file.size - head;
        if rest > 0 {
            let (physical, available) = file.inline_tail.unwrap_or((0, 0));
            if rest > u64::from(available) {
                return Err(corrupt(
                    file.ino,
                    format!("inline data of {} bytes but only {} stored", file.size, head + u64::from(available)),
                ));
            }
            extents.push(Extent { logical: head, physical, len: rest, uninit: false });
        }
        Ok(extents)
    }
}

/// A symlink whose target sits in `i_block`. The kernel writes targets under 60 bytes there and
/// clears the extents flag; a short target that does have an extent tree is a slow one.
pub(crate) fn is_fast_symlink(file: &Inode) -> bool {
    matches!(file.kind, InodeKind::Symlink { .. })
        && !file.has_flag(FLAG_INLINE_DATA)
        && file.size < I_BLOCK_SIZE as u64
        && !(file.has_flag(FLAG_EXTENTS) && le16(&file.i_block, 0) == EXTENT_MAGIC)
}
