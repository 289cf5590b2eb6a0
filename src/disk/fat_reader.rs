//! Reading a FAT12/16/32 filesystem through `fatfs`, without mounting: the volume's label, id
//! and size, every entry with its size and time, and any file's bytes. fatfs trusts the FAT;
//! `fat_chains.rs` checks it first, so a damaged volume is an error naming the path, not an
//! endless walk or a file read back wrong. FAT keeps local time with
//! no zone; Raspberry Pi OS writes UTC, so times are read as UTC.

use super::fat_chains::{self, FatKind, Layout, RawEntry, Root};
use crate::read_at::{Cursor, ReadAt};
use fatfs::{FileSystem, FsOptions};
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatInfo {
    pub label: String,
    pub volume_id: u32,
    pub fat_type: String,
    pub size_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatEntry {
    /// Relative to the volume's root, long names.
    pub path: PathBuf,
    pub is_dir: bool,
    pub size: u64,
    /// Unix seconds.
    pub modified: i64,
    pub read_only: bool,
}

type Fs = FileSystem<Cursor>;

fn open(src: &Arc<dyn ReadAt>) -> io::Result<Fs> {
    FileSystem::new(Cursor::new(src.clone()), FsOptions::new().update_accessed_date(false))
}

fn unix_time(t: fatfs::DateTime) -> i64 {
    let month = time::Month::try_from(t.date.month as u8).unwrap_or(time::Month::January);
    time::Date::from_calendar_date(i32::from(t.date.year), month, t.date.day as u8)
        .ok()
        .and_then(|d| d.with_hms(t.time.hour as u8, t.time.min as u8, t.time.sec as u8).ok())
        .map_or(0, |dt| dt.assume_utc().unix_timestamp())
}

/// Most entries a FAT directory can hold: 2 MiB of 32-byte entries (Microsoft's FAT
/// specification, "the maximum size of a directory"). More means its cluster chain loops, and
/// fatfs would read it for ever.
const MAX_DIR_ENTRIES: usize = 65_536;

/// The entries of `dir`, refusing a directory longer than FAT allows.
fn entries<'a>(dir: &fatfs::Dir<'a, Cursor>, path: &Path) -> io::Result<Vec<fatfs::DirEntry<'a, Cursor>>> {
    let mut out = Vec::new();
    for entry in dir.iter() {
        if out.len() == MAX_DIR_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "folder /{} has more than {MAX_DIR_ENTRIES} entries: its cluster chain loops, the FAT volume is damaged",
                    path.display()
                ),
            ));
        }
        out.push(entry?);
    }
    Ok(out)
}

pub fn info(src: &Arc<dyn ReadAt>) -> io::Result<FatInfo> {
    let fs = open(src)?;
    // Before fatfs looks through the root folder for the label: it must end.
    entries(&fs.root_dir(), Path::new(""))?;
    let stats = fs.stats()?;
    let label = fs.read_volume_label_from_root_dir()?.unwrap_or_else(|| fs.volume_label());
    Ok(FatInfo {
        label: label.trim().to_string(),
        volume_id: fs.volume_id(),
        fat_type: format!("{:?}", fs.fat_type()).to_ascii_uppercase(),
        size_bytes: u64::from(stats.total_clusters()) * u64::from(stats.cluster_size()),
        free_bytes: u64::from(stats.free_clusters()) * u64::from(stats.cluster_size()),
    })
}

/// The cluster checks fatfs does not make: the layout and the first FAT, read once.
struct Chains {
    layout: Layout,
    fat: Vec<u8>,
}

fn damaged(path: &Path, what: impl std::fmt::Display) -> io::Error {
    let name = if path.as_os_str().is_empty() { "/".to_string() } else { format!("/{}", path.display()) };
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{name}: {what}; the FAT filesystem is damaged (fsck.fat -n shows what is wrong)"),
    )
}

impl Chains {
    fn load(src: &Arc<dyn ReadAt>) -> io::Result<Chains> {
        let mut boot = [0u8; 512];
        src.read_exact_at(&mut boot, 0)?;
        let layout = Layout::parse(&boot).map_err(|e| damaged(Path::new(""), e))?;
        // Only the entries for clusters that exist (FAT12 packs two in three bytes).
        let entries = u64::from(layout.max_cluster) + 1;
        let needed = match layout.kind {
            FatKind::Fat12 => entries * 3 / 2 + 2,
            FatKind::Fat16 => entries * 2,
            FatKind::Fat32 => entries * 4,
        };
        let mut fat = vec![0u8; needed.min(layout.fat_bytes) as usize];
        src.read_exact_at(&mut fat, layout.fat_offset)?;
        Ok(Chains { layout, fat })
    }

    /// The short entries of the folder at `path`, which starts at `cluster` (0: the root).
    fn folder(&self, src: &Arc<dyn ReadAt>, path: &Path, cluster: u32) -> io::Result<Vec<RawEntry>> {
        let bytes = match (&self.layout.root, cluster) {
            (Root::Fixed { offset, bytes }, 0) => {
                let mut buf = vec![0u8; *bytes as usize];
                src.read_exact_at(&mut buf, *offset)?;
                buf
            }
            (Root::Chain(root), 0) => self.chain_bytes(src, path, *root)?,
            (_, n) => self.chain_bytes(src, path, n)?,
        };
        Ok(fat_chains::entries(&bytes, self.layout.kind))
    }

    fn chain_bytes(&self, src: &Arc<dyn ReadAt>, path: &Path, first: u32) -> io::Result<Vec<u8>> {
        let clusters = self.layout.chain(&self.fat, first).map_err(|e| damaged(path, e))?;
        let size = self.layout.cluster_bytes as usize;
        let mut bytes = vec![0u8; clusters.len() * size];
        for (n, chunk) in clusters.iter().zip(bytes.chunks_exact_mut(size)) {
            src.read_exact_at(chunk, self.layout.cluster_offset(*n))?;
        }
        Ok(bytes)
    }

    /// A file's chain must end without looping and hold at least its size.
    fn check_file(&self, path: &Path, raw: &RawEntry) -> io::Result<()> {
        let clusters = self.layout.chain(&self.fat, raw.first_cluster).map_err(|e| damaged(path, e))?;
        let needed = u64::from(raw.size).div_ceil(self.layout.cluster_bytes);
        if (clusters.len() as u64) < needed {
            return Err(damaged(
                path,
                format!("it holds {} bytes but its cluster chain only {} cluster(s)", raw.size, clusters.len()),
            ));
        }
        Ok(())
    }
}

/// Every entry, parents before children, siblings by name. Every cluster chain is checked on
/// the way, and a folder met twice (one that contains itself or an ancestor) is refused, as
/// the ext4 reader refuses its loops.
pub fn walk(src: &Arc<dyn ReadAt>) -> io::Result<Vec<FatEntry>> {
    let fs = open(src)?;
    let chains = Chains::load(src)?;
    let mut out = Vec::new();
    let root_cluster = match chains.layout.root {
        Root::Chain(n) => n,
        Root::Fixed { .. } => 0,
    };
    let mut entered = HashSet::from([root_cluster, 0]);
    let mut pending = vec![(PathBuf::new(), fs.root_dir(), 0u32)];
    // A bound on entries stops a volume too damaged for the checks below to catch.
    const MAX_ENTRIES: usize = 1_000_000;
    while let Some((dir_path, dir, cluster)) = pending.pop() {
        let mut raw = chains.folder(src, &dir_path, cluster)?.into_iter();
        let mut here = Vec::new();
        let mut folders = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            // fatfs lists the same slots in the same order; anything else is not understood.
            let Some(slot) = raw.next().filter(|r| r.short_name() == entry.short_file_name_as_bytes()) else {
                return Err(damaged(&dir_path, "its entries do not read the same way twice"));
            };
            let name = entry.file_name();
            if name == "." || name == ".." || entry.attributes().contains(fatfs::FileAttributes::VOLUME_ID) {
                continue;
            }
            let path = dir_path.join(&name);
            if entry.is_dir() {
                if !entered.insert(slot.first_cluster) {
                    return Err(damaged(
                        &path,
                        format!("this folder (cluster {}) is itself or contains a folder above it", slot.first_cluster),
                    ));
                }
                folders.push((path.clone(), entry.to_dir(), slot.first_cluster));
            } else {
                chains.check_file(&path, &slot)?;
            }
            here.push(FatEntry {
                path,
                is_dir: entry.is_dir(),
                size: entry.len(),
                modified: unix_time(entry.modified()),
                read_only: entry.attributes().contains(fatfs::FileAttributes::READ_ONLY),
            });
        }
        folders.sort_by(|a, b| b.0.cmp(&a.0));
        pending.extend(folders);
        out.extend(here);
        if out.len() > MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more than a million entries: the FAT volume is damaged",
            ));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn path_str(path: &Path) -> io::Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a FAT name"))
}

/// The bytes of the file at `path`.
pub fn read_file(src: &Arc<dyn ReadAt>, path: &Path) -> io::Result<Vec<u8>> {
    let fs = open(src)?;
    // fatfs looks through each folder on the way for the next name: each must end.
    let mut dir = fs.root_dir();
    entries(&dir, Path::new(""))?;
    let mut so_far = PathBuf::new();
    for part in path.parent().into_iter().flat_map(Path::components) {
        so_far.push(part);
        dir = dir.open_dir(&path_str(Path::new(part.as_os_str()))?)?;
        entries(&dir, &so_far)?;
    }
    let name = path
        .file_name()
        .map(Path::new)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut file = dir.open_file(&path_str(name)?)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fat::{Fat32Spec, fat32_volume};

    #[test]
    fn reads_back_what_the_writer_made() {
        let spec = Fat32Spec {
            label: "BOOTFS".into(),
            volume_id: 0xabcd_1234,
            size_bytes: 40 << 20,
            bytes_per_cluster: 512,
            hidden_sectors: 0,
            timestamp: 1_767_225_600,
        };
        let volume = fat32_volume(&spec, &[("config.txt", b"arm_64bit=1\n"), ("Kernel8.img", &[7u8; 5000])]).unwrap();
        let src: Arc<dyn ReadAt> = Arc::new(volume);
        let i = info(&src).unwrap();
        assert_eq!((i.label.as_str(), i.volume_id, i.fat_type.as_str()), ("BOOTFS", 0xabcd_1234, "FAT32"));
        let entries = walk(&src).unwrap();
        let names: Vec<String> = entries.iter().map(|e| e.path.display().to_string()).collect();
        assert_eq!(names, ["Kernel8.img", "config.txt"]);
        assert_eq!(entries[0].size, 5000);
        assert_eq!(entries[1].modified, 1_767_225_600);
        assert_eq!(read_file(&src, Path::new("config.txt")).unwrap(), b"arm_64bit=1\n");
    }
}
