//! Extent trees: walking index and leaf nodes from the root in `i_block` down to leaves.
//!
//! Not for block maps (`blockmap.rs`) or inline data; this only yields runs of blocks.

use super::Ext4;
use super::bytes::{crc32c, join, le16, le32};
use super::error::{Ext4Error, corrupt};
use super::inode::{Inode, inode_seed};
use super::runs::{Run, Runs};

pub(crate) const MAGIC: u16 = 0xF30A;
const HEADER: usize = 12;
const ENTRY: usize = 12;
/// The kernel's EXT4_MAX_EXTENT_DEPTH.
const MAX_DEPTH: u16 = 5;
/// Lengths above this mark an uninitialized (preallocated, reads-as-zero) extent.
const MAX_INIT_LEN: u16 = 32_768;
/// Logical block numbers are 32-bit, so every range ends by 2^32.
const LOGICAL_END: u64 = 1 << 32;

struct Walk<'a> {
    fs: &'a Ext4,
    ino: u32,
    seed: u32,
    /// Node blocks still allowed to be read: a forged tree can fan out enormously, but a real
    /// one has fewer nodes than the file or the image has blocks.
    budget: u64,
    /// Where the last extent ended; every later entry must start at or after it.
    next: u64,
    runs: &'a mut Runs,
}

impl Ext4 {
    /// The runs of an extent-mapped inode, up to `runs.limit`.
    pub(crate) fn map_extents(&self, inode: &Inode, runs: &mut Runs) -> Result<(), Ext4Error> {
        let image_blocks = self.source.len() / self.sb.block_size;
        let budget = runs.limit.min(image_blocks).saturating_mul(2).saturating_add(64);
        let seed = inode_seed(&self.sb, inode.ino, inode.generation);
        let mut walk = Walk { fs: self, ino: inode.ino, seed, budget, next: 0, runs };
        walk.node(&inode.i_block, None, 0, LOGICAL_END)
    }
}

impl Walk<'_> {
    /// Reads one node whose extents must lie in `start..end`; `depth` is what the parent
    /// implies (None for the root).
    fn node(&mut self, node: &[u8], depth: Option<u16>, start: u64, end: u64) -> Result<(), Ext4Error> {
        let ino = self.ino;
        if le16(node, 0) != MAGIC {
            return Err(corrupt(ino, format!("extent node has magic {:#06x}, expected 0xf30a", le16(node, 0))));
        }
        let entries = usize::from(le16(node, 2));
        let max = usize::from(le16(node, 4));
        let node_depth = le16(node, 6);
        if node_depth > MAX_DEPTH {
            return Err(corrupt(ino, format!("extent tree depth {node_depth} exceeds {MAX_DEPTH}")));
        }
        if depth.is_some_and(|d| d != node_depth) {
            return Err(corrupt(ino, format!("extent node has depth {node_depth} under a parent expecting {depth:?}")));
        }
        if entries > max || HEADER + max * ENTRY > node.len() {
            return Err(corrupt(ino, format!("extent node claims {entries} of {max} entries in {} bytes", node.len())));
        }
        for i in 0..entries {
            let entry = &node[HEADER + i * ENTRY..HEADER + (i + 1) * ENTRY];
            let first = u64::from(le32(entry, 0));
            if first < start || first < self.next {
                return Err(corrupt(ino, format!("extent entry for block {first} is out of order")));
            }
            if first >= self.runs.limit {
                return Ok(());
            }
            if node_depth == 0 {
                self.leaf(entry, first, end)?;
                continue;
            }
            let child_end = match node.get(HEADER + (i + 1) * ENTRY..).filter(|_| i + 1 < entries) {
                Some(next) => u64::from(le32(next, 0)),
                None => end,
            };
            if child_end <= first {
                return Err(corrupt(ino, format!("extent index entries at block {first} are not increasing")));
            }
            if self.budget == 0 {
                return Err(corrupt(ino, "extent tree has more nodes than the file or image has blocks"));
            }
            self.budget -= 1;
            let child = join(le32(entry, 4), u32::from(le16(entry, 8)));
            let block = self.fs.read_block(ino, child, "extent tree node")?;
            self.verify(child, &block)?;
            self.node(&block, Some(node_depth - 1), first, child_end)?;
        }
        Ok(())
    }

    fn leaf(&mut self, entry: &[u8], first: u64, end: u64) -> Result<(), Ext4Error> {
        let ino = self.ino;
        let raw_len = le16(entry, 4);
        let (len, uninit) = if raw_len > MAX_INIT_LEN { (raw_len - MAX_INIT_LEN, true) } else { (raw_len, false) };
        let len = u64::from(len);
        let physical = join(le32(entry, 8), u32::from(le16(entry, 6)));
        if len == 0 || first + len > end {
            return Err(corrupt(ino, format!("extent of {len} blocks at block {first} leaves its range")));
        }
        let blocks = self.fs.sb.blocks_count;
        if physical == 0 || physical.checked_add(len).is_none_or(|stop| stop > blocks) {
            return Err(corrupt(ino, format!("extent maps blocks {physical}+{len} outside the {blocks}-block volume")));
        }
        self.next = first + len;
        self.runs.push(Run { logical: first, physical, len, uninit });
        Ok(())
    }

    fn verify(&self, block_nr: u64, block: &[u8]) -> Result<(), Ext4Error> {
        if !self.fs.sb.metadata_csum() {
            return Ok(());
        }
        let tail = HEADER + usize::from(le16(block, 4)) * ENTRY;
        if tail + 4 > block.len() {
            return Err(corrupt(self.ino, format!("extent block {block_nr} has no room for its checksum")));
        }
        let stored = le32(block, tail);
        let computed = crc32c(self.seed, &block[..tail]);
        if stored != computed {
            return Err(Ext4Error::Checksum {
                what: format!("inode {}: extent block {block_nr}", self.ino),
                stored,
                computed,
            });
        }
        Ok(())
    }
}
