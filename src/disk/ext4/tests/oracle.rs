//! Comparing what the reader sees with three independent views of the same volume: the tree
//! mke2fs was given, the kernel's view of a read-only mount, and debugfs.
//!
//! Not for building images; `images.rs` does that and decides which views apply.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::Path;

use super::tools::{Mount, debugfs_batch, run};
use crate::disk::ext4::{Ext4, Extent, Inode, InodeKind, Timestamp};

/// A path in the image ("/" for the root) and its inode.
pub struct Entry {
    pub path: Vec<u8>,
    pub inode: Inode,
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = if dir == b"/" { Vec::new() } else { dir.to_vec() };
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Every inode reachable from the root, each directory once, checking that each entry's
/// raw type agrees with its inode.
pub fn walk(fs: &Ext4) -> Vec<Entry> {
    let mut out = vec![Entry { path: b"/".to_vec(), inode: fs.root().unwrap() }];
    let mut i = 0;
    while i < out.len() {
        if out[i].inode.is_dir() {
            let dir_path = out[i].path.clone();
            for dirent in fs.read_dir(&out[i].inode).unwrap() {
                let path = join(&dir_path, &dirent.name);
                let inode = fs.inode(dirent.ino).unwrap_or_else(|e| panic!("{}: {e}", show(&path)));
                assert_eq!(dirent.file_type, dirent_type(&inode.kind), "{}: dirent type", show(&path));
                out.push(Entry { path, inode });
            }
        }
        i += 1;
    }
    out
}

fn dirent_type(kind: &InodeKind) -> u8 {
    match kind {
        InodeKind::File => 1,
        InodeKind::Dir => 2,
        InodeKind::CharDevice { .. } => 3,
        InodeKind::BlockDevice { .. } => 4,
        InodeKind::Fifo => 5,
        InodeKind::Socket => 6,
        InodeKind::Symlink { .. } => 7,
    }
}

fn host_path(root: &Path, path: &[u8]) -> std::path::PathBuf {
    root.join(OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)))
}

/// All paths under `root` as the host sees them, like `walk` does in the image.
fn host_tree(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut paths = BTreeSet::from([b"/".to_vec()]);
    let mut pending = vec![b"/".to_vec()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(host_path(root, &dir)).unwrap() {
            let entry = entry.unwrap();
            let path = join(&dir, entry.file_name().as_bytes());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path.clone());
            }
            paths.insert(path);
        }
    }
    paths
}

fn device(kind: &InodeKind) -> Option<(u32, u32)> {
    match *kind {
        InodeKind::CharDevice { major, minor } | InodeKind::BlockDevice { major, minor } => Some((major, minor)),
        _ => None,
    }
}

/// glibc's `major()`/`minor()` of an `st_rdev`.
fn split_rdev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Extended attributes as `getfattr` reports them for every path under `root`.
fn getfattr(root: &Path) -> BTreeMap<Vec<u8>, Vec<(String, Vec<u8>)>> {
    let args = [OsStr::new("-R"), OsStr::new("-P"), OsStr::new("-h"), OsStr::new("-d"), OsStr::new("-m")];
    let output = run(
        "getfattr",
        args.into_iter()
            .chain([OsStr::new("-"), OsStr::new("-e"), OsStr::new("hex")])
            .chain([OsStr::new("--absolute-names"), root.as_os_str()]),
    );
    let prefix = root.as_os_str().as_bytes();
    let mut out: BTreeMap<Vec<u8>, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let mut current = Vec::new();
    for line in output.stdout.split(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"# file: ") {
            let full = unescape(name);
            let rel = full.strip_prefix(prefix).unwrap().to_vec();
            current = if rel.is_empty() { b"/".to_vec() } else { rel };
        } else if !line.is_empty() {
            let text = String::from_utf8(line.to_vec()).unwrap();
            let (name, value) = text.split_once('=').unwrap_or((&text, "0x"));
            let hex = value.strip_prefix("0x").unwrap_or_else(|| panic!("getfattr printed {text}"));
            let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            out.entry(current.clone()).or_default().push((name.to_owned(), bytes));
        }
    }
    for attrs in out.values_mut() {
        attrs.sort();
    }
    out
}

/// getfattr writes backslashes and control characters in names as `\ooo`.
fn unescape(quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < quoted.len() {
        let octal =
            quoted.get(i + 1..i + 4).filter(|d| quoted[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(digits) => {
                out.push(digits.iter().fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')));
                i += 4;
            }
            None => {
                out.push(quoted[i]);
                i += 1;
            }
        }
    }
    out
}

/// The tree mke2fs was given: same names, owners, modes, content, targets, devices and
/// attributes. Times are compared only for paths not in `retimed` (changed after mke2fs).
pub fn compare_with_source(fs: &Ext4, entries: &[Entry], source: &Path, retimed: &[&str]) {
    let image_paths: BTreeSet<Vec<u8>> =
        entries.iter().map(|e| e.path.clone()).filter(|p| !p.starts_with(b"/lost+found")).collect();
    assert_eq!(image_paths, host_tree(source), "the image holds exactly the source tree (and lost+found)");
    let xattrs = getfattr(source);
    for entry in entries.iter().filter(|e| image_paths.contains(&e.path)) {
        let (path, inode) = (show(&entry.path), &entry.inode);
        let meta = fs::symlink_metadata(host_path(source, &entry.path)).unwrap();
        assert_eq!(u32::from(inode.mode), meta.mode(), "{path}: mode");
        assert_eq!((inode.uid, inode.gid), (meta.uid(), meta.gid()), "{path}: owner");
        if !inode.is_dir() {
            assert_eq!(u64::from(inode.links), meta.nlink(), "{path}: links");
            assert_eq!(inode.size, meta.size(), "{path}: size");
        }
        if !retimed.contains(&path.as_str()) && entry.path != b"/" {
            assert_eq!(inode.mtime.secs, meta.mtime(), "{path}: mtime");
        }
        match &inode.kind {
            InodeKind::File => {
                let expected = fs::read(host_path(source, &entry.path)).unwrap();
                assert!(fs.read_file(inode, 1 << 30).unwrap() == expected, "{path}: content");
            }
            InodeKind::Symlink { target } => {
                let expected = fs::read_link(host_path(source, &entry.path)).unwrap();
                assert_eq!(target.as_slice(), expected.as_os_str().as_bytes(), "{path}: target");
            }
            kind => assert_eq!(device(kind), device_of(&meta), "{path}: device"),
        }
        let expected = xattrs.get(&entry.path).cloned().unwrap_or_default();
        assert_eq!(inode.xattrs, expected, "{path}: xattrs as getfattr shows them in the source");
    }
}

fn device_of(meta: &fs::Metadata) -> Option<(u32, u32)> {
    let kind = meta.mode() & 0o170000;
    (kind == 0o020000 || kind == 0o060000).then(|| split_rdev(meta.rdev()))
}

fn host_time(secs: i64, nanos: i64) -> Timestamp {
    Timestamp { secs, nanos: nanos as u32 }
}

/// The kernel's view through a read-only loop mount: every attribute `lstat` shows, listings
/// with inode numbers, content, targets and attributes.
pub fn compare_with_kernel(fs: &Ext4, entries: &[Entry], image: &Path) {
    let mount = Mount::new(image);
    let root = mount.path();
    let image_paths: BTreeSet<Vec<u8>> = entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(image_paths, host_tree(&root), "the kernel lists the same paths");
    let xattrs = getfattr(&root);
    for entry in entries {
        let (path, inode) = (show(&entry.path), &entry.inode);
        let host = host_path(&root, &entry.path);
        let meta = fs::symlink_metadata(&host).unwrap();
        assert_eq!(u64::from(inode.ino), meta.ino(), "{path}: inode number");
        assert_eq!(u32::from(inode.mode), meta.mode(), "{path}: mode");
        assert_eq!((inode.uid, inode.gid), (meta.uid(), meta.gid()), "{path}: owner");
        assert_eq!(u64::from(inode.links), meta.nlink(), "{path}: links");
        assert_eq!(inode.size, meta.size(), "{path}: size");
        assert_eq!(inode.mtime, host_time(meta.mtime(), meta.mtime_nsec()), "{path}: mtime");
        assert_eq!(inode.atime, host_time(meta.atime(), meta.atime_nsec()), "{path}: atime");
        assert_eq!(inode.ctime, host_time(meta.ctime(), meta.ctime_nsec()), "{path}: ctime");
        assert_eq!(device(&inode.kind), device_of(&meta), "{path}: device");
        match &inode.kind {
            InodeKind::File => {
                let expected = fs::read(&host).unwrap();
                assert!(fs.read_file(inode, 1 << 30).unwrap() == expected, "{path}: content");
            }
            InodeKind::Symlink { target } => {
                assert_eq!(target.as_slice(), fs::read_link(&host).unwrap().as_os_str().as_bytes(), "{path}: target");
            }
            InodeKind::Dir => {
                let mut listed: Vec<(Vec<u8>, u64)> = fs::read_dir(&host)
                    .unwrap()
                    .map(|e| e.unwrap())
                    .map(|e| (e.file_name().as_bytes().to_vec(), e.ino()))
                    .collect();
                listed.sort();
                let ours: Vec<(Vec<u8>, u64)> =
                    fs.read_dir(inode).unwrap().into_iter().map(|e| (e.name, u64::from(e.ino))).collect();
                assert_eq!(ours, listed, "{path}: listing");
            }
            _ => {}
        }
        let expected = xattrs.get(&entry.path).cloned().unwrap_or_default();
        assert_eq!(inode.xattrs, expected, "{path}: xattrs as the kernel lists them");
    }
}

/// debugfs' view: `stat` fields (raw times included), `ls -p` listings, `ex` extent trees,
/// `ea_list` names and `dump`ed content.
pub fn compare_with_debugfs(fs: &Ext4, entries: &[Entry], image: &Path) {
    let mut unique: BTreeMap<u32, &Entry> = BTreeMap::new();
    for entry in entries {
        unique.entry(entry.inode.ino).or_insert(entry);
    }
    let dumps = tempfile::tempdir().unwrap();
    let mut commands = Vec::new();
    for &ino in unique.keys() {
        let inode = &unique[&ino].inode;
        commands.push(format!("stat <{ino}>"));
        commands.push(format!("ea_list <{ino}>"));
        if inode.is_dir() {
            commands.push(format!("ls -p <{ino}>"));
        }
        if inode.has_flag(crate::disk::ext4::inode::FLAG_EXTENTS) {
            commands.push(format!("ex <{ino}>"));
        }
        if matches!(inode.kind, InodeKind::File) {
            commands.push(format!("dump <{ino}> {}/{ino}", dumps.path().display()));
        }
    }
    let mut answers = debugfs_batch(image, &commands, false).into_iter();
    for &ino in unique.keys() {
        let entry = unique[&ino];
        let (path, inode) = (show(&entry.path), &entry.inode);
        check_stat(&path, inode, &String::from_utf8_lossy(&answers.next().unwrap()));
        check_ea_list(&path, inode, &String::from_utf8_lossy(&answers.next().unwrap()));
        if inode.is_dir() {
            let listing = answers.next().unwrap();
            check_listing(fs, &path, inode, &listing);
        }
        if inode.has_flag(crate::disk::ext4::inode::FLAG_EXTENTS) {
            let tree = String::from_utf8_lossy(&answers.next().unwrap()).into_owned();
            assert_eq!(fs.extents(inode).unwrap(), extents_from_debugfs(&tree, inode.size, fs.block_size()), "{path}");
        }
        if matches!(inode.kind, InodeKind::File) {
            answers.next().unwrap();
            let mut dumped = fs::read(dumps.path().join(ino.to_string())).unwrap();
            // debugfs 1.47.2 dumps all 60 bytes of i_block for inline files shorter than that.
            if inode.has_flag(crate::disk::ext4::inode::FLAG_INLINE_DATA) && dumped.len() as u64 > inode.size {
                assert!(dumped[inode.size as usize..].iter().all(|&b| b == 0), "{path}: inline padding");
                dumped.truncate(inode.size as usize);
            }
            assert!(fs.read_file(inode, 1 << 30).unwrap() == dumped, "{path}: content differs from debugfs dump");
        }
    }
}

/// The value after `key` up to the next run of two spaces or the end of the line.
fn stat_field<'a>(stat: &'a str, key: &str) -> &'a str {
    let start = stat.find(key).unwrap_or_else(|| panic!("debugfs stat has no `{key}`:\n{stat}")) + key.len();
    let rest = stat[start..].trim_start();
    let end = rest.find(['\n']).unwrap_or(rest.len());
    let line = &rest[..end];
    line.find("  ").map_or(line, |i| &line[..i]).trim()
}

fn raw_time(stat: &str, name: &str) -> Timestamp {
    let line = stat.lines().find(|l| l.trim_start().starts_with(&format!("{name}:"))).unwrap();
    let raw = line.split_whitespace().nth(1).unwrap().trim_start_matches("0x");
    let (base, extra) = raw.split_once(':').unwrap_or((raw, "0"));
    let base = u32::from_str_radix(base, 16).unwrap();
    let extra = u32::from_str_radix(extra, 16).unwrap();
    // The kernel's decoding; debugfs' own date text reads the base as unsigned, so it is not used.
    Timestamp { secs: i64::from(base as i32) + (i64::from(extra & 3) << 32), nanos: extra >> 2 }
}

fn check_stat(path: &str, inode: &Inode, stat: &str) {
    let kind = match inode.kind {
        InodeKind::File => "regular",
        InodeKind::Dir => "directory",
        InodeKind::Symlink { .. } => "symlink",
        InodeKind::CharDevice { .. } => "character special",
        InodeKind::BlockDevice { .. } => "block special",
        InodeKind::Fifo => "FIFO",
        InodeKind::Socket => "socket",
    };
    assert_eq!(stat_field(stat, "Type:"), kind, "{path}: type");
    assert_eq!(stat_field(stat, "Mode:"), format!("0{:o}", inode.permissions()), "{path}: mode");
    assert_eq!(stat_field(stat, "Flags:"), format!("{:#x}", inode.flags), "{path}: flags");
    assert_eq!(stat_field(stat, "User:"), inode.uid.to_string(), "{path}: uid");
    assert_eq!(stat_field(stat, "Group:"), inode.gid.to_string(), "{path}: gid");
    assert_eq!(stat_field(stat, "Size:"), inode.size.to_string(), "{path}: size");
    assert_eq!(stat_field(stat, "Links:"), inode.links.to_string(), "{path}: links");
    assert_eq!(raw_time(stat, "mtime"), inode.mtime, "{path}: mtime");
    assert_eq!(raw_time(stat, "atime"), inode.atime, "{path}: atime");
    assert_eq!(raw_time(stat, "ctime"), inode.ctime, "{path}: ctime");
    if let Some((major, minor)) = device(&inode.kind) {
        assert_eq!(
            stat_field(stat, "Device major/minor number:").split_whitespace().next().unwrap(),
            format!("{major:02}:{minor:02}"),
            "{path}: device"
        );
    }
    if let InodeKind::Symlink { target } = &inode.kind {
        if let Some(at) = stat.find("Fast link dest: \"") {
            let dest = &stat[at + 17..];
            assert_eq!(&dest[..dest.rfind('"').unwrap()], String::from_utf8_lossy(target), "{path}: fast target");
        }
    }
}

/// ea_list prints raw values (ACLs in ext4's own format), so names and the values of
/// everything but ACLs are compared.
fn check_ea_list(path: &str, inode: &Inode, listing: &str) {
    let mut names: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim_start().split(" (").next().unwrap())
        .filter(|&n| n != "system.data")
        .collect();
    names.sort();
    let ours: Vec<&str> = inode.xattrs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(ours, names, "{path}: xattr names in debugfs ea_list");
    for (name, value) in &inode.xattrs {
        let line = listing.lines().find(|l| l.trim_start().starts_with(&format!("{name} ("))).unwrap();
        let len: usize = line.split(" (").nth(1).unwrap().split(')').next().unwrap().parse().unwrap();
        if !name.starts_with("system.posix_acl") {
            assert_eq!(len, value.len(), "{path}: length of {name}");
        }
    }
}

fn check_listing(fs: &Ext4, path: &str, dir: &Inode, listing: &[u8]) {
    let mut theirs = Vec::new();
    for line in listing.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // "/ino/mode/uid/gid/name/size/": names cannot hold '/', so fields split cleanly.
        let fields: Vec<&[u8]> = line.split(|&b| b == b'/').collect();
        let name = fields[5].to_vec();
        // Unused records show as inode 0 with an empty name.
        if name != b"." && name != b".." && fields[1] != b"0" {
            let ino: u32 = std::str::from_utf8(fields[1]).unwrap().parse().unwrap();
            let mode = u16::from_str_radix(std::str::from_utf8(fields[2]).unwrap(), 8).unwrap();
            theirs.push((name, ino, mode));
        }
    }
    theirs.sort();
    let ours: Vec<(Vec<u8>, u32, u16)> =
        fs.read_dir(dir).unwrap().into_iter().map(|e| (e.name, e.ino, fs.inode(e.ino).unwrap().mode)).collect();
    assert_eq!(ours, theirs, "{path}: listing in debugfs ls -p");
}

/// Leaf extents from `ex`, merged and clipped the way `Ext4::extents` promises.
pub fn extents_from_debugfs(tree: &str, size: u64, block_size: u64) -> Vec<Extent> {
    let mut runs: Vec<(u64, u64, u64, bool)> = Vec::new();
    for line in tree.lines().skip_while(|l| !l.starts_with("Level")).skip(1) {
        let spaced = line.replace('/', " / ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let (level, depth) = (tokens[0], tokens[2]);
        let rest = &tokens[6..];
        if level != depth {
            continue;
        }
        let number = |i: usize| rest[i].parse::<u64>().unwrap();
        runs.push((number(0), number(3), number(6), rest.get(7) == Some(&"Uninit")));
    }
    runs.sort();
    let mut extents: Vec<Extent> = Vec::new();
    for (logical, physical, len, uninit) in runs {
        let (logical, physical) = (logical * block_size, physical * block_size);
        if logical >= size {
            continue;
        }
        let len = (len * block_size).min(size - logical);
        match extents.last_mut() {
            Some(last) if last.end() == logical && last.physical + last.len == physical && last.uninit == uninit => {
                last.len += len;
            }
            _ => extents.push(Extent { logical, physical, len, uninit }),
        }
    }
    extents
}
