//! How large a FAT32 volume must be to hold a tree: clusters for every file and folder as
//! [`super::fat::fat32_volume_tree`] lays them out, the caller's headroom, FAT32's minimum
//! cluster count, and the FATs themselves, rounded up to whole MiB.
//!
//! Pure arithmetic over the tree's metadata; reads no file contents. Not a layout planner:
//! where the volume goes on a disk is the caller's choice.

use super::fat::{MIN_FAT32_CLUSTERS, fat_items};
use crate::tree::Tree;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

const SECTOR: u64 = 512;
const DIR_ENTRY: u64 = 32;
/// Sizes are rounded to this, the alignment partitions get anyway.
const ROUND_TO: u64 = 1 << 20;
/// Any FAT32 formatter reserves at most this many sectors (dosfstools 32, fatfs 8).
const MAX_RESERVED_SECTORS: u64 = 32;
const FATS: u64 = 2;
/// Long-name entries hold 13 UTF-16 units each (FAT specification §7).
const LFN_UNITS_PER_ENTRY: u64 = 13;
/// FAT32's largest cluster count (28-bit entries, minus reserved values).
const MAX_FAT32_CLUSTERS: u64 = 0x0FFF_FFF4;

/// The size in bytes of a FAT32 volume with `bytes_per_cluster` clusters that holds `tree`
/// with at least `headroom` bytes free, a multiple of 1 MiB. Errors are those
/// `fat32_volume_tree` would give for the tree (a symlink, a bad name), named by path.
pub fn fat32_size_for(tree: &Tree, bytes_per_cluster: u32, headroom: u64) -> Result<u64> {
    if !bytes_per_cluster.is_power_of_two() || !(512..=32768).contains(&bytes_per_cluster) {
        bail!("FAT32 cluster size must be a power of two from 512 to 32768 bytes, not {bytes_per_cluster}");
    }
    let cluster = u64::from(bytes_per_cluster);
    // Times do not change the size; the latest FAT date keeps every node's time valid.
    let items = fat_items(tree, i64::MAX)?;
    let mut clusters: u64 = 0;
    // Directory entries per folder: the root starts with the volume label; every other
    // folder with `.` and `..` as fatfs writes them before repair (each with a long-name
    // entry), which is what it allocates clusters for.
    let mut entries: BTreeMap<&Path, u64> = BTreeMap::new();
    entries.insert(Path::new(""), 1);
    for item in &items {
        // fatfs writes a long-name entry for every name, even one that fits 8.3.
        let units = item.name.encode_utf16().count() as u64;
        *entries.entry(item.parent).or_insert(4) += units.div_ceil(LFN_UNITS_PER_ENTRY) + 1;
        match item.content {
            Some(content) => clusters += content.len().div_ceil(cluster),
            None => {
                entries.entry(item.path).or_insert(4);
            }
        }
    }
    // One spare entry per folder: an end marker fatfs may want before it grows a folder.
    clusters += entries.values().map(|&n| ((n + 1) * DIR_ENTRY).div_ceil(cluster)).sum::<u64>();
    clusters += headroom.div_ceil(cluster);
    let clusters = clusters.max(MIN_FAT32_CLUSTERS);
    if clusters > MAX_FAT32_CLUSTERS {
        bail!("{clusters} clusters of {bytes_per_cluster} bytes is more than FAT32 can address; use larger clusters");
    }
    size_for_clusters(clusters, cluster / SECTOR)
}

/// Clusters a volume of `sectors` surely has: what is left after the most any formatter
/// reserves and two FATs sized as if every sector were a cluster (an upper bound on any FAT).
fn clusters_at_least(sectors: u64, sectors_per_cluster: u64) -> u64 {
    let fat_sectors = ((sectors / sectors_per_cluster + 2) * 4).div_ceil(SECTOR);
    sectors.saturating_sub(MAX_RESERVED_SECTORS + FATS * fat_sectors) / sectors_per_cluster
}

fn size_for_clusters(clusters: u64, sectors_per_cluster: u64) -> Result<u64> {
    let mut sectors = MAX_RESERVED_SECTORS + clusters * sectors_per_cluster;
    // Each step adds at least the missing clusters' sectors, so a few steps settle it.
    for _ in 0..64 {
        sectors = sectors.div_ceil(ROUND_TO / SECTOR) * (ROUND_TO / SECTOR);
        let have = clusters_at_least(sectors, sectors_per_cluster);
        if have >= clusters {
            let bytes = sectors * SECTOR;
            u32::try_from(sectors).context("the FAT32 volume would exceed 2 TiB")?;
            return Ok(bytes);
        }
        sectors += (clusters - have) * sectors_per_cluster;
    }
    bail!("no FAT32 size found for {clusters} clusters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fat::{Fat32Spec, fat32_volume_tree};
    use crate::tree::{Content, Kind, Node};

    fn tree_with(files: &[(&str, usize)]) -> Tree {
        let mut t = Tree::new();
        let dir = Node::new(Kind::Dir, 0o755);
        t.insert("", dir.clone());
        for (path, len) in files {
            let node = Node::new(Kind::File(Content::bytes(vec![0x5A; *len])), 0o644);
            t.insert_with_parents(*path, node, &dir);
        }
        t
    }

    #[test]
    fn small_trees_get_the_fat32_minimum() {
        let t = tree_with(&[("a.txt", 10)]);
        let size = fat32_size_for(&t, 512, 0).unwrap();
        assert_eq!(size % ROUND_TO, 0);
        assert!(size >= MIN_FAT32_CLUSTERS * 512);
        assert!(size < 34 << 20, "{size}");
        let spec = Fat32Spec {
            label: "X".into(),
            volume_id: 1,
            size_bytes: size,
            bytes_per_cluster: 512,
            hidden_sectors: 0,
            timestamp: 1_700_000_000,
        };
        fat32_volume_tree(&spec, &t).unwrap();
    }

    #[test]
    fn the_size_fits_exactly_filled_trees() {
        // Files filling whole clusters, a folder needing several clusters of entries, no
        // headroom: the volume must still take everything.
        let mut files: Vec<(String, usize)> =
            (0..400).map(|i| (format!("overlays/a-rather-long-overlay-name-{i:03}.dtbo"), 2048 * (i % 7))).collect();
        files.push(("big.bin".into(), 50 << 20));
        let refs: Vec<(&str, usize)> = files.iter().map(|(p, l)| (p.as_str(), *l)).collect();
        let t = tree_with(&refs);
        for cluster in [512u32, 2048, 4096] {
            let size = fat32_size_for(&t, cluster, 0).unwrap();
            let spec = Fat32Spec {
                label: "X".into(),
                volume_id: 1,
                size_bytes: size,
                bytes_per_cluster: cluster,
                hidden_sectors: 0,
                timestamp: 1_700_000_000,
            };
            fat32_volume_tree(&spec, &t).unwrap_or_else(|e| panic!("{cluster}: {e:#}"));
            // And the estimate is not wasteful: within the minimum or 2% + 2 MiB of the data.
            let data: u64 =
                refs.iter().map(|(_, l)| (*l as u64).div_ceil(u64::from(cluster)) * u64::from(cluster)).sum();
            assert!(
                size <= (MIN_FAT32_CLUSTERS * u64::from(cluster) + (4 << 20)).max(data * 102 / 100 + (2 << 20)),
                "{size}"
            );
        }
    }

    #[test]
    fn headroom_is_free_space() {
        let t = tree_with(&[("k", 40 << 20)]);
        let size = fat32_size_for(&t, 4096, 100 << 20).unwrap();
        let spec = Fat32Spec {
            label: "X".into(),
            volume_id: 1,
            size_bytes: size,
            bytes_per_cluster: 4096,
            hidden_sectors: 0,
            timestamp: 1_700_000_000,
        };
        let volume = fat32_volume_tree(&spec, &t).unwrap();
        let fs = fatfs::FileSystem::new(std::io::Cursor::new(volume), fatfs::FsOptions::new()).unwrap();
        let free = u64::from(fs.stats().unwrap().free_clusters()) * 4096;
        assert!(free >= 100 << 20, "{free}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let t = tree_with(&[("a", 1)]);
        assert!(fat32_size_for(&t, 1000, 0).is_err());
        assert!(fat32_size_for(&t, 65536, 0).is_err());
        let mut link = t.clone();
        link.insert("l", Node::new(Kind::Symlink("a".into()), 0o777));
        let err = fat32_size_for(&link, 512, 0).unwrap_err().to_string();
        assert!(err.contains("l: a symbolic link"), "{err}");
    }
}
