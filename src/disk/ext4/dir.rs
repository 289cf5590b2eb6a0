//! Directories: entries read linearly from every directory block or from inline data.
//!
//! A linear read is complete for htree (dir_index) directories too: interior blocks look like
//! one empty entry spanning the block, and the root's index hides inside the ".." entry.
//! Not for hashed lookups; `lookup` searches the sorted listing instead.

use super::Ext4;
use super::bytes::{crc32c, le16, le32};
use super::error::{Ext4Error, corrupt, unsupported};
use super::inode::{FLAG_ENCRYPTED, FLAG_INLINE_DATA, I_BLOCK_SIZE, Inode, inode_seed};
use super::superblock::INCOMPAT_FILETYPE;

const ENTRY_HEADER: usize = 8;
const MIN_REC_LEN: usize = 12;
/// The metadata_csum tail: an entry with inode 0, rec_len 12, no name and this file type.
const CSUM_TAIL_TYPE: u8 = 0xDE;
/// Inline directories start with the parent's inode number instead of "." and "..".
const INLINE_PARENT: usize = 4;

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirEntry {
    /// Raw bytes: never empty, never "." or "..", never containing '/' or NUL.
    pub name: Vec<u8>,
    pub ino: u32,
    /// The raw dirent type (1 file, 2 dir, 3 char, 4 block, 5 fifo, 6 socket, 7 symlink), 0
    /// without the filetype feature. The inode's own mode is authoritative.
    pub file_type: u8,
}

impl Ext4 {
    /// The entries of `dir` without "." and "..", sorted by name bytes.
    ///
    /// Entries may name any inode, including an ancestor of `dir` on a corrupt image: callers
    /// walking a tree should track the directories they have visited.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>, Ext4Error> {
        let ino = dir.ino;
        if !dir.is_dir() {
            return Err(Ext4Error::NotADirectory(format!("inode {ino}")));
        }
        if dir.has_flag(FLAG_ENCRYPTED) {
            return Err(unsupported(ino, "encrypted directory"));
        }
        // Directory blocks are distinct blocks of the image, so a listing larger than the image
        // can only come from a forged size or a tree mapping one block many times.
        if dir.size > self.source.len() {
            return Err(corrupt(ino, format!("directory of {} bytes is larger than the image", dir.size)));
        }
        let mut entries = Vec::new();
        let parser = Parser {
            ino,
            filetype: self.sb.has_incompat(INCOMPAT_FILETYPE),
            max_ino: self.sb.inodes_count,
            big_rec_len: false,
        };
        if dir.has_flag(FLAG_INLINE_DATA) {
            self.read_inline_dir(dir, &parser, &mut entries)?;
        } else {
            self.read_block_dir(dir, &Parser { big_rec_len: self.sb.block_size >= 65_536, ..parser }, &mut entries)?;
        }
        entries.sort_unstable();
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(corrupt(ino, format!("directory lists `{}` twice", String::from_utf8_lossy(&pair[0].name))));
        }
        Ok(entries)
    }

    fn read_block_dir(&self, dir: &Inode, parser: &Parser, out: &mut Vec<DirEntry>) -> Result<(), Ext4Error> {
        let block_size = self.sb.block_size;
        let seed = inode_seed(&self.sb, dir.ino, dir.generation);
        let mut block = vec![0u8; block_size as usize];
        for extent in self.extents(dir)? {
            // Preallocated directory blocks hold no entries yet.
            if extent.uninit {
                continue;
            }
            let mut at = 0;
            while at < extent.len {
                if extent.len - at < block_size {
                    return Err(corrupt(dir.ino, format!("directory size {} is not whole blocks", dir.size)));
                }
                self.read_exact(&mut block, extent.physical + at)?;
                if self.sb.metadata_csum() {
                    verify_block(dir.ino, seed, extent.logical + at, &block)?;
                }
                parser.region(&block, out)?;
                at += block_size;
            }
        }
        Ok(())
    }

    fn read_inline_dir(&self, dir: &Inode, parser: &Parser, out: &mut Vec<DirEntry>) -> Result<(), Ext4Error> {
        parser.region(&dir.i_block[INLINE_PARENT..I_BLOCK_SIZE], out)?;
        if let Some((offset, len)) = dir.inline_tail.filter(|&(_, len)| len > 0) {
            let mut tail = vec![0u8; len as usize];
            self.read_exact(&mut tail, offset)?;
            parser.region(&tail, out)?;
        }
        Ok(())
    }
}

struct Parser {
    ino: u32,
    filetype: bool,
    max_ino: u32,
    /// 64 KiB blocks need rec_len values that do not fit 16 bits (ext2fs_get_rec_len).
    big_rec_len: bool,
}

impl Parser {
    /// The entries of one directory block or inline region, which entries must tile exactly.
    fn region(&self, region: &[u8], out: &mut Vec<DirEntry>) -> Result<(), Ext4Error> {
        let mut at = 0;
        while at < region.len() {
            let left = region.len() - at;
            if left < ENTRY_HEADER {
                return Err(corrupt(self.ino, format!("directory entry at {at} runs past its block")));
            }
            let entry_ino = le32(region, at);
            let rec_len = self.rec_len(le16(region, at + 4), region.len());
            let name_len = usize::from(region[at + 6]);
            if rec_len < MIN_REC_LEN.min(left)
                || rec_len % 4 != 0
                || rec_len > left
                || ENTRY_HEADER + name_len > rec_len
            {
                return Err(corrupt(
                    self.ino,
                    format!("directory entry at {at} has record length {rec_len} for a {name_len}-byte name"),
                ));
            }
            if entry_ino != 0 {
                let name = &region[at + ENTRY_HEADER..at + ENTRY_HEADER + name_len];
                if name != b"." && name != b".." {
                    self.push(entry_ino, name, region[at + 7], out)?;
                }
            }
            at += rec_len;
        }
        Ok(())
    }

    fn rec_len(&self, raw: u16, region_len: usize) -> usize {
        let raw = usize::from(raw);
        if !self.big_rec_len {
            return raw;
        }
        if raw == 65_535 || raw == 0 { region_len } else { (raw & 65_532) | ((raw & 3) << 16) }
    }

    fn push(&self, entry_ino: u32, name: &[u8], file_type: u8, out: &mut Vec<DirEntry>) -> Result<(), Ext4Error> {
        let shown = String::from_utf8_lossy(name);
        if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
            return Err(corrupt(self.ino, format!("directory entry name `{shown}` is empty or holds '/' or NUL")));
        }
        if entry_ino > self.max_ino {
            return Err(corrupt(self.ino, format!("entry `{shown}` names inode {entry_ino}, past the last")));
        }
        let file_type = if self.filetype { file_type } else { 0 };
        out.push(DirEntry { name: name.to_vec(), ino: entry_ino, file_type });
        Ok(())
    }
}

/// Checks a leaf block's checksum tail; blocks without one (htree interior nodes, whose
/// checksum sits in the index's own tail) are left alone.
fn verify_block(ino: u32, seed: u32, logical: u64, block: &[u8]) -> Result<(), Ext4Error> {
    let Some(tail_at) = block.len().checked_sub(MIN_REC_LEN) else {
        return Ok(());
    };
    let tail = &block[tail_at..];
    let is_tail =
        le32(tail, 0) == 0 && le16(tail, 4) == MIN_REC_LEN as u16 && tail[6] == 0 && tail[7] == CSUM_TAIL_TYPE;
    if !is_tail {
        return Ok(());
    }
    let stored = le32(tail, 8);
    let computed = crc32c(seed, &block[..tail_at]);
    if stored != computed {
        return Err(Ext4Error::Checksum {
            what: format!("inode {ino}: directory block at byte {logical}"),
            stored,
            computed,
        });
    }
    Ok(())
}
