//! Reading a FAT12/16/32 filesystem through `fatfs`, without mounting: the volume's label, id
//! and size, every entry with its size and time, and any file's bytes. FAT keeps local time with
//! no zone; Raspberry Pi OS writes UTC, so times are read as UTC.

use crate::read_at::{Cursor, ReadAt};
use fatfs::{FileSystem, FsOptions};
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

/// Every entry, parents before children, siblings by name.
pub fn walk(src: &Arc<dyn ReadAt>) -> io::Result<Vec<FatEntry>> {
    let fs = open(src)?;
    let mut out = Vec::new();
    // Each folder is opened from its entry, not by path from the root: a damaged volume's folder
    // may contain itself, and its path then grows without end.
    let mut pending = vec![(PathBuf::new(), fs.root_dir())];
    // FAT directories can loop when damaged; a bound on entries stops a corrupt volume.
    const MAX_ENTRIES: usize = 1_000_000;
    /// Far deeper than any boot partition; deeper means a folder contains itself.
    const MAX_DEPTH: usize = 64;
    while let Some((dir_path, dir)) = pending.pop() {
        if dir_path.components().count() > MAX_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "folders nested more than {MAX_DEPTH} deep: a folder contains itself, the FAT volume is damaged"
                ),
            ));
        }
        let mut here = Vec::new();
        for entry in entries(&dir, &dir_path)? {
            let name = entry.file_name();
            if name == "." || name == ".." || entry.attributes().contains(fatfs::FileAttributes::VOLUME_ID) {
                continue;
            }
            let path = dir_path.join(&name);
            if entry.is_dir() {
                pending.push((path.clone(), entry.to_dir()));
            }
            here.push(FatEntry {
                path,
                is_dir: entry.is_dir(),
                size: entry.len(),
                modified: unix_time(entry.modified()),
                read_only: entry.attributes().contains(fatfs::FileAttributes::READ_ONLY),
            });
        }
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
