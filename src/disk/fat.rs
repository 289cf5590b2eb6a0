//! FAT32 volumes built in memory with the `fatfs` crate, byte-reproducible: the volume id, the
//! label and every timestamp come from the caller, entries are written in tree order (sorted,
//! depth first), and what fatfs writes wrongly in folders is repaired afterwards
//! ([`super::fat_repair`]), so `fsck.fat` finds nothing to fix.
//!
//! The volume is one `Vec` of the full size, but only what is written is touched: the FATs,
//! directories and file data (about 75 MiB for Raspberry Pi OS's 512 MiB boot partition); the
//! rest stays unallocated zero pages, which the sparse disk writer skips.
//!
//! Not for: reading (that is `fat_reader`), FAT12/16, or attributes beyond what a boot
//! partition needs (no read-only, hidden or system bits; owners and modes have no FAT form).

use super::fat_repair::{FatStamp, FolderPlan, RepairError, repair_folders};
use crate::tree::{Content, Kind, Node, Tree};
use anyhow::{Context, Result, bail};
use fatfs::{Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// What the volume looks like; everything that would otherwise be random or "now" is here.
#[derive(Clone, Debug)]
pub struct Fat32Spec {
    /// At most 11 characters, upper-case ASCII.
    pub label: String,
    pub volume_id: u32,
    /// A multiple of 512; [`super::fat_size::fat32_size_for`] picks one that fits a tree.
    pub size_bytes: u64,
    pub bytes_per_cluster: u32,
    /// Sectors before the volume on its disk (the partition's start LBA); 0 for a bare volume.
    pub hidden_sectors: u32,
    /// Unix seconds: the latest time any entry may carry (later ones are clamped to it, as
    /// SOURCE_DATE_EPOCH asks), and the time of every entry [`fat32_volume`] writes.
    pub timestamp: i64,
}

/// FAT32 needs at least this many clusters; fewer makes a volume that tools read as FAT16
/// (Microsoft's FAT specification 1.03, §3.5).
pub const MIN_FAT32_CLUSTERS: u64 = 65_525;
/// FAT dates start in 1980 and end in 2107.
const FAT_EPOCH: i64 = 315_532_800;
const FAT_END: i64 = 4_354_819_199;
/// A FAT file's size is a 32-bit field.
const MAX_FILE_SIZE: u64 = u32::MAX as u64;
/// Long names are at most 255 UTF-16 units (spec §7).
const MAX_NAME_UNITS: usize = 255;

const EPOCH_DATE_TIME: DateTime =
    DateTime { date: Date { year: 1980, month: 1, day: 1 }, time: Time { hour: 0, min: 0, sec: 0, millis: 0 } };

thread_local! {
    /// The time fatfs stamps on the entry being created: set before each create.
    static ENTRY_TIME: Cell<DateTime> = const { Cell::new(EPOCH_DATE_TIME) };
}

/// fatfs asks a `'static` provider for "now" whenever it creates or writes an entry; ours
/// answers with the time of the tree node being written. A volume is built on one thread, so a
/// thread-local carries it without leaking a provider per volume.
#[derive(Debug)]
struct EntryClock;

static ENTRY_CLOCK: EntryClock = EntryClock;

impl TimeProvider for EntryClock {
    fn get_current_date(&self) -> Date {
        ENTRY_TIME.with(|t| t.get()).date
    }
    fn get_current_date_time(&self) -> DateTime {
        ENTRY_TIME.with(|t| t.get())
    }
}

fn check_timestamp(unix: i64) -> Result<()> {
    if !(FAT_EPOCH..=FAT_END).contains(&unix) {
        bail!("timestamp {unix} is outside what FAT can store (1980-01-01 to 2107-12-31)");
    }
    Ok(())
}

/// `unix` as FAT's calendar fields, UTC (FAT has no zone; Raspberry Pi OS writes UTC).
fn fat_datetime(unix: i64) -> Result<DateTime> {
    check_timestamp(unix)?;
    let t = OffsetDateTime::from_unix_timestamp(unix)?;
    Ok(DateTime {
        date: Date { year: t.year() as u16, month: u8::from(t.month()) as u16, day: t.day() as u16 },
        time: Time { hour: t.hour() as u16, min: t.minute() as u16, sec: t.second() as u16, millis: 0 },
    })
}

fn label_bytes(label: &str) -> Result<[u8; 11]> {
    if label.len() > 11 || !label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_ ".contains(&b)) {
        bail!("FAT label `{label}` must be at most 11 upper-case letters, digits, '-' or '_'");
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// One entry to create, checked: a name FAT can hold, a parent that exists, a time in range.
pub(super) struct FatItem<'t> {
    pub path: &'t Path,
    /// The last component, valid as a FAT long name.
    pub name: &'t str,
    pub parent: &'t Path,
    /// `None` for a folder.
    pub content: Option<&'t Content>,
    /// Unix seconds, already clamped into FAT's range and to the spec's timestamp.
    pub mtime: i64,
}

/// Characters a long name may hold besides letters, digits and anything outside ASCII (the
/// spec's §7 list, which is also what fatfs accepts).
const NAME_PUNCTUATION: &str = "$%'-_@~`!(){}^#&+,;=[] .";

fn check_name(path: &Path) -> Result<&str> {
    let name = path.file_name().and_then(|n| n.to_str());
    let Some(name) = name else {
        bail!("{}: FAT names must be UTF-8", path.display());
    };
    if let Some(c) =
        name.chars().find(|&c| !(c.is_ascii_alphanumeric() || !c.is_ascii() || NAME_PUNCTUATION.contains(c)))
    {
        bail!("{}: FAT names cannot hold {c:?}; rename it", path.display());
    }
    if name.chars().any(|c| c > '\u{FFFF}') {
        bail!("{}: FAT long names hold UTF-16 characters up to U+FFFF only; rename it", path.display());
    }
    // Windows and Linux's vfat strip trailing dots and spaces, so such a name would not be
    // found under the name the tree gives it.
    if name.ends_with('.') || name.ends_with(' ') {
        bail!("{}: FAT drops trailing dots and spaces from names; rename it", path.display());
    }
    if name.encode_utf16().count() > MAX_NAME_UNITS {
        bail!("{}: FAT names are at most {MAX_NAME_UNITS} characters", path.display());
    }
    Ok(name)
}

/// The tree's entries as FAT can hold them, in tree order, or an error naming the first path
/// that cannot be: symlinks, devices, FIFOs and sockets have no FAT form; hard links become
/// copies of their target (as `cp` or `mcopy` would make them); names that differ only in case
/// collide on FAT.
pub(super) fn fat_items(tree: &Tree, max_time: i64) -> Result<Vec<FatItem<'_>>> {
    let mut items = Vec::new();
    let mut names_in_dir: BTreeMap<&Path, HashSet<String>> = BTreeMap::new();
    for (path, node) in tree.iter() {
        if path.as_os_str().is_empty() {
            if !matches!(node.kind, Kind::Dir) {
                bail!("the root of a FAT volume's tree must be a folder");
            }
            continue;
        }
        let name = check_name(path)?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if !parent.as_os_str().is_empty() && !matches!(tree.get(parent).map(|n| &n.kind), Some(Kind::Dir)) {
            bail!("{}: its parent folder {} is not in the tree", path.display(), parent.display());
        }
        // Case-insensitive as fatfs compares names (Unicode upper case).
        if !names_in_dir.entry(parent).or_default().insert(name.to_uppercase()) {
            bail!(
                "{}: another name in {} differs only in case, which FAT cannot tell apart",
                path.display(),
                parent.display()
            );
        }
        let content = match &node.kind {
            Kind::Dir => None,
            Kind::File(content) => Some(content),
            Kind::HardLink(target) => match tree.get(target).map(|n| &n.kind) {
                Some(Kind::File(content)) => Some(content),
                _ => bail!("{}: hard link to {}, which is not a file in the tree", path.display(), target.display()),
            },
            other => bail!(
                "{}: a {} cannot be stored on FAT; leave it out of the boot tree",
                path.display(),
                kind_name(other)
            ),
        };
        if let Some(content) = content
            && content.len() > MAX_FILE_SIZE
        {
            bail!("{}: {} bytes is more than a FAT file can hold (4 GiB - 1)", path.display(), content.len());
        }
        items.push(FatItem { path, name, parent, content, mtime: fat_mtime(node, max_time) });
    }
    Ok(items)
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Symlink(_) => "symbolic link",
        Kind::CharDevice { .. } => "character device",
        Kind::BlockDevice { .. } => "block device",
        Kind::Fifo => "FIFO",
        Kind::Socket => "socket",
        Kind::File(_) | Kind::HardLink(_) | Kind::Dir => "file",
    }
}

fn fat_mtime(node: &Node, max_time: i64) -> i64 {
    node.mtime.secs.clamp(FAT_EPOCH, max_time)
}

/// A formatted FAT32 volume of `spec.size_bytes` holding `files` in its root directory, every
/// entry dated `spec.timestamp`.
pub fn fat32_volume(spec: &Fat32Spec, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut tree = Tree::new();
    tree.insert("", Node::new(Kind::Dir, 0o755));
    for (name, bytes) in files {
        let mut node = Node::new(Kind::File(Content::bytes(bytes.to_vec())), 0o644);
        node.mtime.secs = spec.timestamp;
        if tree.get(Path::new(name)).is_some() || name.contains('/') {
            bail!("{name}: root-directory files must have distinct plain names");
        }
        tree.insert(*name, node);
    }
    fat32_volume_tree(spec, &tree)
}

/// A formatted FAT32 volume of `spec.size_bytes` holding `tree`'s folders and files. Each
/// entry carries its node's modification time, clamped to 1980 at the earliest and
/// `spec.timestamp` at the latest; hard links become copies of their target. Refused, with the
/// path named: symlinks, devices, FIFOs and sockets, names FAT cannot hold (non-UTF-8, `:*?"<>|\`
/// and control characters, trailing dots or spaces, over 255 UTF-16 units), names that differ
/// only in case or equal another entry's 8.3 short name, files of 4 GiB or more.
///
/// The same spec and tree give the same bytes. `fsck.fat -n` finds the result clean.
pub fn fat32_volume_tree(spec: &Fat32Spec, tree: &Tree) -> Result<Vec<u8>> {
    let items = fat_items(tree, spec.timestamp)?;
    let mut volume = unrepaired_volume(spec, &items)?;
    let (plans, paths) = folder_plans(&items)?;
    match repair_folders(&mut volume, &plans) {
        Ok(_) => {}
        Err(RepairError::Entries { folder, planned, found }) => bail!(
            "folder {}: {planned} names went in but FAT holds {found}; two names collide on FAT \
             (a long name equal to another entry's 8.3 short name); rename one",
            paths.get(folder).map_or("?".into(), |p| if p.as_os_str().is_empty() {
                "/".into()
            } else {
                p.display().to_string()
            })
        ),
        Err(e) => return Err(e).context("repairing the folders fatfs wrote"),
    }
    set_hidden_sectors(&mut volume, spec.hidden_sectors);
    Ok(volume)
}

/// The folders as [`repair_folders`] checks them, and each folder's path (index 0: the root).
fn folder_plans<'t>(items: &[FatItem<'t>]) -> Result<(Vec<FolderPlan>, Vec<&'t Path>)> {
    let mut index: BTreeMap<&Path, usize> = BTreeMap::new();
    index.insert(Path::new(""), 0);
    let mut plans = vec![FolderPlan { stamp: fat_stamp(FAT_EPOCH)?, entries: Vec::new() }];
    let mut paths = vec![Path::new("")];
    for item in items {
        let entry = match item.content {
            Some(_) => None,
            None => {
                index.insert(item.path, plans.len());
                plans.push(FolderPlan { stamp: fat_stamp(item.mtime)?, entries: Vec::new() });
                paths.push(item.path);
                Some(plans.len() - 1)
            }
        };
        let parent =
            *index.get(item.parent).with_context(|| format!("{}: parent folder missing", item.path.display()))?;
        plans[parent].entries.push(entry);
    }
    Ok((plans, paths))
}

/// `unix` as a directory entry stores it.
fn fat_stamp(unix: i64) -> Result<FatStamp> {
    let t = fat_datetime(unix)?;
    Ok(FatStamp {
        date: ((t.date.year - 1980) << 9) | (t.date.month << 5) | t.date.day,
        time: (t.time.hour << 11) | (t.time.min << 5) | (t.time.sec / 2),
        hundredths: ((t.time.sec % 2) * 100) as u8,
    })
}

/// The volume as fatfs leaves it, before its folders are repaired (the pinned-bytes test looks at it).
fn unrepaired_volume(spec: &Fat32Spec, items: &[FatItem<'_>]) -> Result<Vec<u8>> {
    check_timestamp(spec.timestamp)?;
    if spec.size_bytes % 512 != 0 || spec.size_bytes == 0 {
        bail!("a FAT32 volume's size must be a positive multiple of 512 bytes, not {}", spec.size_bytes);
    }
    if !spec.bytes_per_cluster.is_power_of_two() || !(512..=32768).contains(&spec.bytes_per_cluster) {
        bail!("FAT32 cluster size must be a power of two from 512 to 32768 bytes, not {}", spec.bytes_per_cluster);
    }
    let sectors = u32::try_from(spec.size_bytes / 512).context("a FAT32 volume is at most 2 TiB")?;
    let size = usize::try_from(spec.size_bytes).context("FAT32 volume too large for memory")?;
    let mut disk = Cursor::new(vec![0u8; size]);
    let options = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .bytes_per_cluster(spec.bytes_per_cluster)
        .total_sectors(sectors)
        .volume_id(spec.volume_id)
        .volume_label(label_bytes(&spec.label)?);
    let too_small = || {
        format!(
            "a FAT32 volume of {} bytes with {}-byte clusters has fewer than the {MIN_FAT32_CLUSTERS} clusters FAT32 \
             needs; make it larger (disk::fat_size::fat32_size_for gives a size that fits)",
            spec.size_bytes, spec.bytes_per_cluster
        )
    };
    fatfs::format_volume(&mut disk, options).with_context(too_small)?;
    disk.set_position(0);
    {
        let fs = FileSystem::new(&mut disk, FsOptions::new().time_provider(&ENTRY_CLOCK).update_accessed_date(false))
            .context("opening the new FAT32 volume")?;
        // fatfs 0.3.6 picks FAT16 by itself when the clusters are too few for FAT32.
        if fs.fat_type() != FatType::Fat32 {
            bail!(too_small());
        }
        write_items(&fs, items)?;
        // Counting now makes unmount record the free-cluster total, which fsck.fat checks.
        fs.stats().context("counting free clusters")?;
        fs.unmount().context("closing the FAT32 volume")?;
    }
    Ok(disk.into_inner())
}

type Fs<'d> = FileSystem<&'d mut Cursor<Vec<u8>>>;

fn write_items(fs: &Fs<'_>, items: &[FatItem<'_>]) -> Result<()> {
    let mut dirs = BTreeMap::new();
    dirs.insert(PathBuf::new(), fs.root_dir());
    let mut buf = vec![0u8; 256 * 1024];
    for item in items {
        let full = |what: &str| format!("{what} {} on the FAT volume (is it full?)", item.path.display());
        ENTRY_TIME.with(|t| t.set(fat_datetime(item.mtime).unwrap_or(EPOCH_DATE_TIME)));
        let parent =
            dirs.get(item.parent).with_context(|| format!("{}: parent folder missing", item.path.display()))?;
        match item.content {
            None => {
                let dir = parent.create_dir(item.name).with_context(|| full("creating"))?;
                dirs.insert(item.path.to_path_buf(), dir);
            }
            Some(content) => {
                let mut file = parent.create_file(item.name).with_context(|| full("creating"))?;
                let mut reader =
                    content.open().with_context(|| format!("reading {} from its source", item.path.display()))?;
                let mut left = content.len();
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = reader
                        .read(&mut buf[..want])
                        .with_context(|| format!("reading {} from its source", item.path.display()))?;
                    if n == 0 {
                        bail!("{}: its source ended {left} bytes early", item.path.display());
                    }
                    file.write_all(&buf[..n]).with_context(|| full("writing"))?;
                    left -= n as u64;
                }
                file.flush().with_context(|| full("writing"))?;
            }
        }
    }
    Ok(())
}

/// fatfs always writes 0 hidden sectors; firmware that locates the volume through the BPB
/// needs the partition offset, in the boot sector and in its FAT32 backup copy.
fn set_hidden_sectors(volume: &mut [u8], hidden: u32) {
    const HIDDEN_SECTORS: usize = 0x1C;
    const BACKUP_BOOT_SECTOR: usize = 0x32;
    let backup = u16::from_le_bytes([volume[BACKUP_BOOT_SECTOR], volume[BACKUP_BOOT_SECTOR + 1]]) as usize;
    for sector in [0, backup] {
        let at = sector * 512 + HIDDEN_SECTORS;
        volume[at..at + 4].copy_from_slice(&hidden.to_le_bytes());
    }
}

#[cfg(test)]
mod tests;
