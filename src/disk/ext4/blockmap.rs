//! Block maps of ext2/ext3-style inodes: 12 direct pointers, then single, double and triple
//! indirect blocks.
//!
//! Not for extent-mapped inodes; this only yields runs of blocks, holes being zero pointers.

use super::Ext4;
use super::bytes::le32;
use super::error::{Ext4Error, corrupt};
use super::inode::Inode;
use super::runs::{Run, Runs};

const DIRECT: u64 = 12;

struct Walk<'a> {
    fs: &'a Ext4,
    ino: u32,
    per_block: u64,
    /// Indirect blocks still allowed to be read; a real map needs fewer than the image holds.
    budget: u64,
    runs: &'a mut Runs,
}

impl Ext4 {
    /// The runs of a block-mapped inode, up to `runs.limit`.
    pub(crate) fn map_blocks(&self, inode: &Inode, runs: &mut Runs) -> Result<(), Ext4Error> {
        let per_block = self.sb.block_size / 4;
        let budget = (self.source.len() / self.sb.block_size).saturating_add(4);
        let mut walk = Walk { fs: self, ino: inode.ino, per_block, budget, runs };
        for i in 0..DIRECT {
            walk.data(i, le32(&inode.i_block, (i * 4) as usize))?;
        }
        let mut start = DIRECT;
        for level in 1..=3u32 {
            let pointer = le32(&inode.i_block, (4 * (DIRECT as u32 - 1 + level)) as usize);
            walk.indirect(pointer, level, start)?;
            start += per_block.pow(level);
        }
        Ok(())
    }
}

impl Walk<'_> {
    fn data(&mut self, logical: u64, pointer: u32) -> Result<(), Ext4Error> {
        if pointer == 0 || logical >= self.runs.limit {
            return Ok(());
        }
        let physical = u64::from(pointer);
        if physical >= self.fs.sb.blocks_count {
            return Err(corrupt(self.ino, format!("block map points at block {physical}, past the volume")));
        }
        self.runs.push(Run { logical, physical, len: 1, uninit: false });
        Ok(())
    }

    /// An indirect block of `level` (1 = pointers to data) mapping file blocks from `start`.
    fn indirect(&mut self, pointer: u32, level: u32, start: u64) -> Result<(), Ext4Error> {
        if pointer == 0 || start >= self.runs.limit {
            return Ok(());
        }
        if self.budget == 0 {
            return Err(corrupt(self.ino, "block map has more indirect blocks than the image"));
        }
        self.budget -= 1;
        let block = self.fs.read_block(self.ino, u64::from(pointer), "indirect block")?;
        let span = self.per_block.pow(level - 1);
        for i in 0..self.per_block {
            let child_start = start + i * span;
            if child_start >= self.runs.limit {
                break;
            }
            let child = le32(&block, (i * 4) as usize);
            if level == 1 {
                self.data(child_start, child)?;
            } else {
                self.indirect(child, level - 1, child_start)?;
            }
        }
        Ok(())
    }
}
