//! Puts right what fatfs 0.3.6 writes wrongly in the folders of a FAT32 volume, walking every
//! folder from the root cluster against the plan the builder wrote them from.
//!
//! - **`.` and `..`**: fatfs creates them through its ordinary entry writer, which puts a
//!   long-name (LFN) entry before each, and gives `..` of a first-level folder the root's
//!   first cluster. The FAT specification (Microsoft, "FAT32 File System Specification" 1.03,
//!   §6, "Directory Structure") wants them as the first two entries, short names only, with
//!   `..` naming cluster 0 when the parent is the root. Each folder's entries are rewritten
//!   that way: the two LFN entries dropped, everything after them moved up two slots, the two
//!   freed slots at the end zeroed, `..` fixed.
//! - **Folder times**: fatfs stamps a folder's own entry with "now" whenever an entry is added
//!   inside it, so a folder ends up with its last child's time. Each folder's entry (and its
//!   `.` and `..`) gets the time the plan gives it.
//! - **Collisions**: fatfs opens, rather than creates, an entry whose name matches an existing
//!   long or 8.3 name. The walk checks every folder holds exactly the planned entries, files
//!   and folders in planned order, so a lost entry is an error, not a silently merged file.
//!
//! Pure: bytes changed in place. Not a general FAT checker: it trusts the layout our builder
//! just wrote, and refuses (rather than guesses) when a folder does not start the way fatfs
//! 0.3.6 or a correct writer starts it, so a fatfs upgrade that changes its output is noticed.

use std::collections::HashSet;

/// One directory entry's size.
const SLOT: usize = 32;
/// Attribute byte values (spec §6, "DIR_Attr").
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_LONG_NAME: u8 = 0x0F;
/// First name byte of a free entry, and of the end of a directory.
const DELETED: u8 = 0xE5;
const END: u8 = 0x00;
/// FAT32 entries use 28 bits; values from here on end a chain (spec §4, "FAT Entry Values").
const FAT32_MASK: u32 = 0x0FFF_FFFF;
const END_OF_CHAIN: u32 = 0x0FFF_FFF8;

const DOT_NAME: [u8; 11] = *b".          ";
const DOTDOT_NAME: [u8; 11] = *b"..         ";

/// A time as a directory entry stores it (spec §6, "Date and Time Formats").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FatStamp {
    /// Bits 15–9 years since 1980, 8–5 month, 4–0 day.
    pub date: u16,
    /// Bits 15–11 hours, 10–5 minutes, 4–0 two-second units.
    pub time: u16,
    /// Creation time's hundredths (0–199): the odd second and below.
    pub hundredths: u8,
}

/// One folder as the builder wrote it; folder 0 is the root.
#[derive(Clone, Debug)]
pub struct FolderPlan {
    /// The folder's time (unused for the root, which has no entry).
    pub stamp: FatStamp,
    /// What it holds, in write order: `Some(folder index)` for a folder, `None` for a file.
    pub entries: Vec<Option<usize>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepairError {
    #[error("the FAT32 boot sector is not one this repair understands: {0}")]
    BootSector(&'static str),
    #[error("cluster chain from cluster {start} is broken at cluster {at} (FAT value {value:#x})")]
    BrokenChain { start: u32, at: u32, value: u32 },
    #[error(
        "the folder at cluster {cluster} does not start with `.` and `..` as fatfs 0.3.6 writes them; \
         fatfs may have changed: update disk::fat_repair"
    )]
    UnexpectedLayout { cluster: u32 },
    /// The folder's entries are not the planned ones: names collided, or fatfs changed.
    #[error("folder {folder} holds {found} entries where {planned} were written (names collide on FAT)")]
    Entries { folder: usize, planned: usize, found: String },
}

/// What the boot sector says about where things are.
struct Geometry {
    bytes_per_cluster: usize,
    fat_offset: usize,
    data_offset: usize,
    clusters: u32,
    root_cluster: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Geometry {
    /// The FAT32 BPB fields (spec §3.1 and §3.3).
    fn read(volume: &[u8]) -> Result<Geometry, RepairError> {
        if volume.len() < 512 {
            return Err(RepairError::BootSector("shorter than one sector"));
        }
        let bytes_per_sector = usize::from(u16_at(volume, 0x0B));
        let sectors_per_cluster = usize::from(volume[0x0D]);
        let reserved = usize::from(u16_at(volume, 0x0E));
        let fats = usize::from(volume[0x10]);
        let fat16_size = u16_at(volume, 0x16);
        let total = u32_at(volume, 0x20) as usize;
        let fat_size = u32_at(volume, 0x24) as usize;
        let root_cluster = u32_at(volume, 0x2C);
        if !bytes_per_sector.is_power_of_two() || !(512..=4096).contains(&bytes_per_sector) {
            return Err(RepairError::BootSector("bytes per sector"));
        }
        if sectors_per_cluster == 0 || !sectors_per_cluster.is_power_of_two() {
            return Err(RepairError::BootSector("sectors per cluster"));
        }
        if fat16_size != 0 || fat_size == 0 || fats == 0 {
            return Err(RepairError::BootSector("not FAT32"));
        }
        let data_sector = reserved + fats * fat_size;
        if total * bytes_per_sector > volume.len() || data_sector >= total {
            return Err(RepairError::BootSector("sizes do not fit the volume"));
        }
        let clusters = ((total - data_sector) / sectors_per_cluster) as u32;
        if fat_size * bytes_per_sector < (clusters as usize + 2) * 4 {
            return Err(RepairError::BootSector("the FAT is too small for the clusters"));
        }
        if root_cluster < 2 || root_cluster >= clusters + 2 {
            return Err(RepairError::BootSector("root cluster"));
        }
        Ok(Geometry {
            bytes_per_cluster: bytes_per_sector * sectors_per_cluster,
            fat_offset: reserved * bytes_per_sector,
            data_offset: data_sector * bytes_per_sector,
            clusters,
            root_cluster,
        })
    }

    fn cluster_range(&self, cluster: u32) -> std::ops::Range<usize> {
        let start = self.data_offset + (cluster as usize - 2) * self.bytes_per_cluster;
        start..start + self.bytes_per_cluster
    }

    /// The clusters of the chain starting at `start`, in order.
    fn chain(&self, volume: &[u8], start: u32) -> Result<Vec<u32>, RepairError> {
        let mut out = Vec::new();
        let mut at = start;
        // A chain visits each cluster at most once; more steps than clusters means a loop.
        for _ in 0..=self.clusters {
            if at < 2 || at >= self.clusters + 2 {
                return Err(RepairError::BrokenChain { start, at, value: at });
            }
            out.push(at);
            let value = u32_at(volume, self.fat_offset + at as usize * 4) & FAT32_MASK;
            if value >= END_OF_CHAIN {
                return Ok(out);
            }
            if value < 2 || value >= self.clusters + 2 {
                return Err(RepairError::BrokenChain { start, at, value });
            }
            at = value;
        }
        Err(RepairError::BrokenChain { start, at, value: at })
    }
}

/// An entry's first cluster (spec §6: DIR_FstClusHI at 20, DIR_FstClusLO at 26).
fn first_cluster(entry: &[u8]) -> u32 {
    (u32::from(u16_at(entry, 20)) << 16) | u32::from(u16_at(entry, 26))
}

fn set_first_cluster(entry: &mut [u8], cluster: u32) {
    entry[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    entry[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
}

/// Creation (13–17), access (18) and write (22–25) times, all set to `stamp`.
fn set_times(entry: &mut [u8], stamp: FatStamp) {
    entry[13] = stamp.hundredths;
    entry[14..16].copy_from_slice(&stamp.time.to_le_bytes());
    entry[16..18].copy_from_slice(&stamp.date.to_le_bytes());
    entry[18..20].copy_from_slice(&stamp.date.to_le_bytes());
    entry[22..24].copy_from_slice(&stamp.time.to_le_bytes());
    entry[24..26].copy_from_slice(&stamp.date.to_le_bytes());
}

/// The checksum an LFN entry carries of its short name (spec §7).
fn lfn_checksum(name: &[u8; 11]) -> u8 {
    name.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

fn is_long_name(entry: &[u8]) -> bool {
    entry[11] & ATTR_LONG_NAME == ATTR_LONG_NAME
}

fn is_folder_named(entry: &[u8], name: &[u8; 11]) -> bool {
    entry[..11] == name[..] && !is_long_name(entry) && entry[11] & ATTR_DIRECTORY != 0
}

/// A single LFN entry (sequence 1, last) naming the short entry `name`.
fn is_lone_lfn_for(entry: &[u8], name: &[u8; 11]) -> bool {
    entry[11] == ATTR_LONG_NAME && entry[0] == 0x41 && entry[13] == lfn_checksum(name)
}

/// Repair the FAT32 `volume` that was written from `folders` (see the module comment).
/// Returns how many folders' `.`/`..` entries it changed. Idempotent.
pub fn repair_folders(volume: &mut [u8], folders: &[FolderPlan]) -> Result<usize, RepairError> {
    let geometry = Geometry::read(volume)?;
    let mut changed = 0;
    let mut seen = HashSet::new();
    // (folder cluster, plan index, the cluster its `..` must name); the root has no `..`.
    let mut pending = vec![(geometry.root_cluster, 0usize, None)];
    while let Some((cluster, index, parent)) = pending.pop() {
        let plan =
            folders.get(index).ok_or(RepairError::Entries { folder: index, planned: 0, found: "some".into() })?;
        if !seen.insert(cluster) {
            return Err(RepairError::UnexpectedLayout { cluster });
        }
        let chain = geometry.chain(volume, cluster)?;
        let mut slots: Vec<u8> = Vec::with_capacity(chain.len() * geometry.bytes_per_cluster);
        for &c in &chain {
            slots.extend_from_slice(&volume[geometry.cluster_range(c)]);
        }
        if let Some(parent) = parent {
            changed += usize::from(fix_dot_entries(&mut slots, cluster, parent)?);
            set_times(&mut slots[..SLOT], plan.stamp);
            set_times(&mut slots[SLOT..2 * SLOT], plan.stamp);
        }
        // `..` of a folder in the root names cluster 0 (spec §6), not the root's cluster.
        let children_parent = if cluster == geometry.root_cluster { 0 } else { cluster };
        let mut found = 0usize;
        let mismatch = |found: String| RepairError::Entries { folder: index, planned: plan.entries.len(), found };
        for entry in slots.chunks_exact_mut(SLOT) {
            match entry[0] {
                END => break,
                DELETED => continue,
                _ => {}
            }
            if is_long_name(entry)
                || entry[11] & ATTR_VOLUME_ID != 0
                || entry[..11] == DOT_NAME
                || entry[..11] == DOTDOT_NAME
            {
                continue;
            }
            let is_folder = entry[11] & ATTR_DIRECTORY != 0;
            match plan.entries.get(found) {
                Some(Some(child)) if is_folder => {
                    let stamp = folders.get(*child).ok_or(mismatch("a folder not in the plan".into()))?.stamp;
                    set_times(entry, stamp);
                    pending.push((first_cluster(entry), *child, Some(children_parent)));
                }
                Some(None) if !is_folder => {}
                Some(_) => {
                    return Err(mismatch(format!("a {} as entry {found}", if is_folder { "folder" } else { "file" })));
                }
                None => return Err(mismatch(format!("more than {found}"))),
            }
            found += 1;
        }
        if found != plan.entries.len() {
            return Err(mismatch(found.to_string()));
        }
        for (i, &c) in chain.iter().enumerate() {
            let part = &slots[i * geometry.bytes_per_cluster..(i + 1) * geometry.bytes_per_cluster];
            volume[geometry.cluster_range(c)].copy_from_slice(part);
        }
    }
    Ok(changed)
}

/// Put one folder's entries (all its clusters' bytes, in chain order) in shape. Returns
/// whether anything changed.
fn fix_dot_entries(slots: &mut [u8], cluster: u32, parent: u32) -> Result<bool, RepairError> {
    let unexpected = RepairError::UnexpectedLayout { cluster };
    if slots.len() < 4 * SLOT {
        return Err(unexpected);
    }
    let slot = |i: usize| i * SLOT..(i + 1) * SLOT;
    let fatfs_layout = is_lone_lfn_for(&slots[slot(0)], &DOT_NAME)
        && is_folder_named(&slots[slot(1)], &DOT_NAME)
        && is_lone_lfn_for(&slots[slot(2)], &DOTDOT_NAME)
        && is_folder_named(&slots[slot(3)], &DOTDOT_NAME);
    let mut changed = false;
    if fatfs_layout {
        // Keep the two short entries, drop the two LFN entries, close the gap.
        let dot: Vec<u8> = slots[slot(1)].to_vec();
        let dotdot: Vec<u8> = slots[slot(3)].to_vec();
        slots.copy_within(4 * SLOT.., 2 * SLOT);
        slots[slot(0)].copy_from_slice(&dot);
        slots[slot(1)].copy_from_slice(&dotdot);
        let len = slots.len();
        slots[len - 2 * SLOT..].fill(0);
        changed = true;
    } else if !(is_folder_named(&slots[slot(0)], &DOT_NAME) && is_folder_named(&slots[slot(1)], &DOTDOT_NAME)) {
        return Err(unexpected);
    }
    if first_cluster(&slots[slot(0)]) != cluster {
        return Err(unexpected);
    }
    if first_cluster(&slots[slot(1)]) != parent {
        set_first_cluster(&mut slots[slot(1)], parent);
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfn_checksums_match_the_specification() {
        // What fatfs writes (pinned in fat.rs' tests) and the spec's algorithm agree.
        assert_eq!(lfn_checksum(&DOT_NAME), 0x77);
        assert_eq!(lfn_checksum(&DOTDOT_NAME), 0xC2);
    }

    fn short(name: &[u8; 11], cluster: u32) -> [u8; SLOT] {
        let mut e = [0u8; SLOT];
        e[..11].copy_from_slice(name);
        e[11] = ATTR_DIRECTORY;
        set_first_cluster(&mut e, cluster);
        e
    }

    fn lfn(name: &[u8; 11]) -> [u8; SLOT] {
        let mut e = [0xFFu8; SLOT];
        e[0] = 0x41;
        e[11] = ATTR_LONG_NAME;
        e[12] = 0;
        e[13] = lfn_checksum(name);
        e
    }

    #[test]
    fn fatfs_layout_is_compacted_and_dotdot_fixed() {
        let child = short(b"CHILD      ", 9);
        let mut slots =
            [lfn(&DOT_NAME), short(&DOT_NAME, 5), lfn(&DOTDOT_NAME), short(&DOTDOT_NAME, 2), child, [0; SLOT]].concat();
        assert_eq!(fix_dot_entries(&mut slots, 5, 0), Ok(true));
        assert_eq!(&slots[..SLOT], &short(&DOT_NAME, 5));
        assert_eq!(&slots[SLOT..2 * SLOT], &short(&DOTDOT_NAME, 0));
        assert_eq!(&slots[2 * SLOT..3 * SLOT], &child);
        assert!(slots[3 * SLOT..].iter().all(|&b| b == 0));
        // Running again changes nothing.
        assert_eq!(fix_dot_entries(&mut slots, 5, 0), Ok(false));
    }

    #[test]
    fn other_layouts_are_refused() {
        let mut no_dots = [short(b"CHILD      ", 9), [0; SLOT], [0; SLOT], [0; SLOT]].concat();
        assert!(fix_dot_entries(&mut no_dots, 5, 0).is_err());
        let mut wrong_self = [short(&DOT_NAME, 6), short(&DOTDOT_NAME, 0), [0; SLOT], [0; SLOT]].concat();
        assert!(fix_dot_entries(&mut wrong_self, 5, 0).is_err());
        let mut short_dir = [short(&DOT_NAME, 5)].concat();
        assert!(fix_dot_entries(&mut short_dir, 5, 0).is_err());
    }

    #[test]
    fn garbage_volumes_are_errors_not_panics() {
        let stamp = FatStamp { date: 0x21, time: 0, hundredths: 0 };
        let plans: Vec<FolderPlan> = (0..4).map(|i| FolderPlan { stamp, entries: vec![Some(i + 1), None] }).collect();
        assert!(repair_folders(&mut [], &plans).is_err());
        assert!(repair_folders(&mut [0u8; 4096], &plans).is_err());
        let mut bytes: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for seed in 0..64u8 {
            bytes[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
            bytes[0x0D] = 1 << (seed % 4);
            bytes[0x0E..0x10].copy_from_slice(&1u16.to_le_bytes());
            bytes[0x10] = 1;
            bytes[0x16..0x18].copy_from_slice(&0u16.to_le_bytes());
            bytes[0x20..0x24].copy_from_slice(&128u32.to_le_bytes());
            bytes[0x24..0x28].copy_from_slice(&1u32.to_le_bytes());
            bytes[0x2C..0x30].copy_from_slice(&u32::from(2 + seed % 8).to_le_bytes());
            let _ = repair_folders(&mut bytes, &plans);
            bytes.rotate_left(seed as usize * 7 + 1);
        }
    }
}
