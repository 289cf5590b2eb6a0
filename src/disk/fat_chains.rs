//! The cluster layout of a FAT12/16/32 volume, for checking what fatfs takes on trust: that a
//! file's or folder's cluster chain ends (fatfs follows a looping chain for as long as it is
//! asked to, so a looping file reads back wrong and a looping folder never ends), and which
//! cluster each directory entry starts at (fatfs keeps that private), so the reader can refuse
//! a folder that contains itself or an ancestor.
//!
//! Pure: it reads the boot sector, the FAT and folder bytes it is given. Field offsets and
//! values from Microsoft's "FAT32 File System Specification" 1.03, §3 (BPB), §4 (FAT entries,
//! end-of-chain and bad-cluster marks) and §6 (directory entries).

/// What a directory slot is, by its first byte and attribute (spec §6).
const SLOT: usize = 32;
const FREE_SLOT: u8 = 0xE5;
const END_SLOT: u8 = 0x00;
const ATTR_LONG_NAME: u8 = 0x0F;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

/// Where things are on the volume, in bytes from its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub kind: FatKind,
    pub cluster_bytes: u64,
    /// The first FAT.
    pub fat_offset: u64,
    pub fat_bytes: u64,
    /// Cluster 2's first byte.
    pub data_offset: u64,
    /// Highest valid cluster number (clusters are numbered from 2).
    pub max_cluster: u32,
    pub root: Root,
}

/// FAT12/16 keep the root folder in a fixed region; FAT32 in a cluster chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Root {
    Fixed { offset: u64, bytes: u64 },
    Chain(u32),
}

/// What is wrong, for the caller to name the path it was following.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("the boot sector is not a FAT BPB ({0})")]
    Bpb(&'static str),
    #[error("its cluster chain loops back to cluster {0}")]
    Loops(u32),
    #[error("its cluster chain runs into cluster {cluster}, which is {what}")]
    Broken { cluster: u32, what: &'static str },
}

fn le16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

impl Layout {
    /// From the boot sector (at least 512 bytes); FAT type by cluster count, as spec §3.5.
    pub fn parse(boot: &[u8]) -> Result<Layout, ChainError> {
        if boot.len() < 512 {
            return Err(ChainError::Bpb("shorter than a sector"));
        }
        let sector = le16(boot, 11);
        let per_cluster = u64::from(boot[13]);
        let reserved = le16(boot, 14);
        let fats = u64::from(boot[16]);
        let root_entries = le16(boot, 17);
        let total = if le16(boot, 19) != 0 { le16(boot, 19) } else { le32(boot, 32) };
        let fat_sectors = if le16(boot, 22) != 0 { le16(boot, 22) } else { le32(boot, 36) };
        if !matches!(sector, 512 | 1024 | 2048 | 4096) || !per_cluster.is_power_of_two() || fats == 0 {
            return Err(ChainError::Bpb("sector size, cluster size or FAT count out of range"));
        }
        let root_sectors = (root_entries * SLOT as u64).div_ceil(sector);
        let first_data = reserved + fats * fat_sectors + root_sectors;
        let clusters = total.checked_sub(first_data).ok_or(ChainError::Bpb("no room for data"))? / per_cluster;
        let kind = match clusters {
            0..4085 => FatKind::Fat12,
            4085..65525 => FatKind::Fat16,
            _ => FatKind::Fat32,
        };
        let root = match kind {
            FatKind::Fat32 => Root::Chain(le32(boot, 44) as u32),
            _ => Root::Fixed { offset: (reserved + fats * fat_sectors) * sector, bytes: root_sectors * sector },
        };
        Ok(Layout {
            kind,
            cluster_bytes: per_cluster * sector,
            fat_offset: reserved * sector,
            fat_bytes: fat_sectors * sector,
            data_offset: first_data * sector,
            max_cluster: u32::try_from(clusters + 1).map_err(|_| ChainError::Bpb("too many clusters"))?,
            root,
        })
    }

    /// Where cluster `n` (2..=max_cluster) starts.
    pub fn cluster_offset(&self, n: u32) -> u64 {
        self.data_offset + u64::from(n - 2) * self.cluster_bytes
    }

    /// The FAT's entry for cluster `n`, `None` past the end of the FAT bytes given.
    fn entry(&self, fat: &[u8], n: u32) -> Option<u32> {
        let n = n as usize;
        match self.kind {
            FatKind::Fat12 => {
                let at = n + n / 2;
                let pair = u16::from_le_bytes([*fat.get(at)?, *fat.get(at + 1)?]);
                Some(u32::from(if n % 2 == 0 { pair & 0xFFF } else { pair >> 4 }))
            }
            FatKind::Fat16 => Some(u32::from(u16::from_le_bytes([*fat.get(2 * n)?, *fat.get(2 * n + 1)?]))),
            FatKind::Fat32 => {
                let b = fat.get(4 * n..4 * n + 4)?;
                Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x0FFF_FFFF)
            }
        }
    }

    /// The first value that means end of chain, and the bad-cluster mark.
    fn marks(&self) -> (u32, u32) {
        match self.kind {
            FatKind::Fat12 => (0xFF8, 0xFF7),
            FatKind::Fat16 => (0xFFF8, 0xFFF7),
            FatKind::Fat32 => (0x0FFF_FFF8, 0x0FFF_FFF7),
        }
    }

    /// Every cluster of the chain starting at `first`, checked to end without looping or
    /// running into a free, bad or out-of-range cluster. Cluster 0 is an empty chain.
    pub fn chain(&self, fat: &[u8], first: u32) -> Result<Vec<u32>, ChainError> {
        let mut out = Vec::new();
        if first == 0 {
            return Ok(out);
        }
        let (end, bad) = self.marks();
        // One bit per cluster; a chain can hold each at most once.
        let mut seen = vec![0u64; (self.max_cluster as usize / 64) + 1];
        let mut n = first;
        loop {
            if n < 2 || n > self.max_cluster {
                let what = if n == 0 { "free" } else { "outside the volume" };
                return Err(ChainError::Broken { cluster: n, what });
            }
            let (word, bit) = (n as usize / 64, 1u64 << (n % 64));
            if seen[word] & bit != 0 {
                return Err(ChainError::Loops(n));
            }
            seen[word] |= bit;
            out.push(n);
            let next = self.entry(fat, n).ok_or(ChainError::Broken { cluster: n, what: "beyond the FAT" })?;
            if next >= end {
                return Ok(out);
            }
            if next == bad {
                return Err(ChainError::Broken { cluster: next, what: "marked bad" });
            }
            n = next;
        }
    }
}

/// A short directory entry as fatfs lists it (not free, not a long-name part, not the volume
/// label), in slot order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub name: [u8; 11],
    pub is_dir: bool,
    pub first_cluster: u32,
    pub size: u32,
}

impl RawEntry {
    /// `.` or `..`, whose clusters name the folder itself and its parent.
    pub fn is_dot(&self) -> bool {
        &self.name == b".          " || &self.name == b"..         "
    }

    /// The 8.3 name as fatfs renders it (`NAME.EXT`, padding dropped), for matching.
    pub fn short_name(&self) -> Vec<u8> {
        let mut base: Vec<u8> = self.name[..8].to_vec();
        if base[0] == 0x05 {
            base[0] = FREE_SLOT;
        }
        while base.last() == Some(&b' ') {
            base.pop();
        }
        let ext: Vec<u8> = self.name[8..].iter().copied().take_while(|&b| b != b' ').collect();
        if !ext.is_empty() {
            base.push(b'.');
            base.extend(ext);
        }
        base
    }
}

/// The entries in a folder's bytes, up to the end mark. `kind` decides whether the high half
/// of the cluster number counts (FAT32 only).
pub fn entries(bytes: &[u8], kind: FatKind) -> Vec<RawEntry> {
    let mut out = Vec::new();
    for slot in bytes.chunks_exact(SLOT) {
        match slot[0] {
            END_SLOT => break,
            FREE_SLOT => continue,
            _ => {}
        }
        let attr = slot[11];
        if attr & ATTR_LONG_NAME == ATTR_LONG_NAME || attr & ATTR_VOLUME_ID != 0 {
            continue;
        }
        let high = if kind == FatKind::Fat32 { le16(slot, 20) as u32 } else { 0 };
        out.push(RawEntry {
            name: slot[..11].try_into().expect("11 bytes"),
            is_dir: attr & ATTR_DIRECTORY != 0,
            first_cluster: (high << 16) | le16(slot, 26) as u32,
            size: le32(slot, 28) as u32,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FAT16-sized layout with a FAT in memory.
    fn layout(kind: FatKind) -> Layout {
        Layout {
            kind,
            cluster_bytes: 512,
            fat_offset: 512,
            fat_bytes: 4096,
            data_offset: 8192,
            max_cluster: 1000,
            root: Root::Chain(2),
        }
    }

    fn fat32(links: &[(u32, u32)]) -> Vec<u8> {
        let mut fat = vec![0u8; 4 * 1002];
        for &(n, next) in links {
            fat[4 * n as usize..4 * n as usize + 4].copy_from_slice(&next.to_le_bytes());
        }
        fat
    }

    #[test]
    fn chains_end_or_say_why_not() {
        let l = layout(FatKind::Fat32);
        let fat = fat32(&[(5, 6), (6, 9), (9, 0x0FFF_FFFF), (20, 21), (21, 20), (30, 31), (40, 0x0FFF_FFF7)]);
        assert_eq!(l.chain(&fat, 5), Ok(vec![5, 6, 9]));
        assert_eq!(l.chain(&fat, 0), Ok(vec![]));
        assert_eq!(l.chain(&fat, 20), Err(ChainError::Loops(20)));
        assert_eq!(l.chain(&fat, 30), Err(ChainError::Broken { cluster: 0, what: "free" }));
        assert_eq!(l.chain(&fat, 40), Err(ChainError::Broken { cluster: 0x0FFF_FFF7, what: "marked bad" }));
        assert_eq!(l.chain(&fat, 5000), Err(ChainError::Broken { cluster: 5000, what: "outside the volume" }));
    }

    #[test]
    fn fat12_entries_are_packed_in_threes() {
        let l = layout(FatKind::Fat12);
        // Clusters 2 -> 3 -> end: entries 2 and 3 share bytes 3..6.
        let mut fat = vec![0u8; 1600];
        fat[3] = 0x03;
        fat[4] = 0xF0;
        fat[5] = 0xFF;
        assert_eq!(l.chain(&fat, 2), Ok(vec![2, 3]));
    }

    #[test]
    fn folder_slots_are_listed_as_fatfs_lists_them() {
        let mut bytes = vec![0u8; 32 * 6];
        let mut slot = |i: usize, name: &[u8; 11], attr: u8, cluster: u32| {
            let s = &mut bytes[32 * i..32 * i + 32];
            s[..11].copy_from_slice(name);
            s[11] = attr;
            s[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
            s[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
        };
        slot(0, b".          ", ATTR_DIRECTORY, 0x1_0007);
        slot(1, b"LABEL      ", ATTR_VOLUME_ID, 0);
        slot(2, b"\xE5OLD    TXT", 0x20, 9);
        slot(3, b"Ab\x00c\x00d\x00e\x00f\x00", ATTR_LONG_NAME, 0);
        slot(4, b"CONFIG  TXT", 0x20, 12);
        let got = entries(&bytes, FatKind::Fat32);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_dot() && got[0].is_dir && got[0].first_cluster == 0x1_0007);
        assert_eq!((got[1].short_name(), got[1].first_cluster), (b"CONFIG.TXT".to_vec(), 12));
        assert_eq!(entries(&bytes, FatKind::Fat16)[0].first_cluster, 7);
    }
}
