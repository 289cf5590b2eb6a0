//! One test per kind of volume: each builds the source tree, makes an image with mke2fs, and
//! checks the reader against the tree, the kernel and debugfs, plus exact expectations.
//!
//! Not for damaged images; `corruption.rs` and `fuzz.rs` cover those.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::oracle::{Entry, compare_with_debugfs, compare_with_kernel, compare_with_source, walk};
use super::tools::{Mount, debugfs_batch, e2fsck, run};
use super::tree::{
    self, CAPABILITY, MANY, NON_UTF8, PRE_EPOCH, PREALLOC_HEAD, PREALLOC_SIZE, PREALLOC_TAIL, SLOW_TARGET,
    SPARSE_PIECES, SPARSE_SIZE,
};
use crate::disk::ext4::inode::{FLAG_EA_INODE, FLAG_EXTENTS, FLAG_INLINE_DATA};
use crate::disk::ext4::{Ext4, Ext4Error, InodeKind, Timestamp};
use crate::read_at::{FileSource, ReadAt};

pub const UUID: &str = "6f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8";
const UUID_BYTES: [u8; 16] =
    [0x6f, 0x1c, 0x2a, 0x3b, 0x4d, 0x5e, 0x4f, 0x60, 0x81, 0x72, 0x93, 0xa4, 0xb5, 0xc6, 0xd7, 0xe8];
const LABEL: &str = "bramble-test";
/// 2100-01-01T00:00:00Z, needing epoch bit 1 on top of the 32-bit base.
const FUTURE: Timestamp = Timestamp { secs: 4_102_444_800, nanos: 123_456_789 };
/// Paths whose times debugfs changes after mke2fs.
const RETIMED: [&str; 2] = ["/times/future", "/times/nanos"];

pub struct Built {
    _dir: tempfile::TempDir,
    pub image: PathBuf,
    pub source: PathBuf,
}

/// The source tree made into an image by `mke2fs -t fs_type mkfs_args`, directories indexed
/// by `e2fsck -D` (mke2fs -d writes them linearly), then retouched by debugfs where the
/// volume can hold it: times past 2038 with nanoseconds, uninitialized extents.
pub fn build(fs_type: &str, mkfs_args: &[&str], size: &str) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    tree::build(&source);
    let image = dir.path().join("image");
    let mut args = vec!["-q", "-F", "-t", fs_type, "-L", LABEL, "-U", UUID];
    args.extend_from_slice(mkfs_args);
    let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    args.extend([OsStr::new("-d"), source.as_os_str(), image.as_os_str(), OsStr::new(size)]);
    run("mke2fs", args);
    e2fsck(&["-fyD"], &image);
    let fs = open(&image);
    let extra = fs.lookup("/times/future").unwrap().crtime.is_some();
    let mut commands = vec!["sif /times/future mtime 0xF4865700".to_string()];
    if extra {
        commands.push(format!("sif /times/future mtime_extra {:#x}", (FUTURE.nanos << 2) | 1));
        commands.push(format!("sif /times/nanos mtime_extra {:#x}", 999_999_999u32 << 2));
        commands.push("sif /times/nanos atime_extra 0x3".into());
    }
    if fs.lookup("/data/prealloc").unwrap().has_flag(FLAG_EXTENTS) {
        commands.push("fallocate /data/prealloc 0 255".into());
    }
    debugfs_batch(&image, &commands, true);
    e2fsck(&["-fn"], &image);
    Built { _dir: dir, image, source }
}

pub fn open(image: &Path) -> Ext4 {
    let source: Arc<dyn ReadAt> = Arc::new(FileSource::new(std::fs::File::open(image).unwrap()).unwrap());
    Ext4::open(source).unwrap()
}

fn find<'a>(entries: &'a [Entry], path: &str) -> &'a Entry {
    entries.iter().find(|e| e.path == path.as_bytes()).unwrap_or_else(|| panic!("{path} missing from the image"))
}

/// Expectations written down rather than read from a tool, so a shared misreading by the
/// reader and the tools' parsers cannot pass unnoticed.
fn check_exact(fs: &Ext4, entries: &[Entry], image: &Path) {
    assert_eq!(fs.label(), LABEL);
    assert_eq!(fs.uuid(), UUID_BYTES);
    assert_eq!(fs.size_bytes(), std::fs::metadata(image).unwrap().len());
    let dumpe2fs = String::from_utf8(run("dumpe2fs", [OsStr::new("-h"), image.as_os_str()]).stdout).unwrap();
    let free_blocks: u64 =
        dumpe2fs.lines().find_map(|l| l.strip_prefix("Free blocks:")).unwrap().trim().parse().unwrap();
    assert_eq!(fs.free_bytes(), free_blocks * fs.block_size());

    let inode = |path: &str| &find(entries, path).inode;
    assert_eq!(inode("/bin/su").mode, 0o104755);
    assert_eq!((inode("/bin/wall").mode, inode("/bin/wall").gid), (0o102755, 5));
    assert_eq!(inode("/tmp").mode, 0o41777);
    assert_eq!(inode("/home/alice/secret").mode, 0o100600);
    assert_eq!((inode("/big-ids").uid, inode("/big-ids").gid), (100_000, 200_000));
    assert_eq!((inode("/nobody").uid, inode("/nobody").gid), (65534, 65534));
    assert_eq!(inode("/bin/ping").xattrs, [("security.capability".to_string(), CAPABILITY.to_vec())]);
    let user_attrs: Vec<&str> = inode("/attrs/user").xattrs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(user_attrs, ["security.bramble", "trusted.overlay.opaque", "user.comment", "user.empty", "user.long"]);
    let acl_names: Vec<&str> = inode("/attrs/acl").xattrs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(acl_names, ["system.posix_acl_access", "system.posix_acl_default"]);

    assert_eq!(inode("/links/hard1").ino, inode("/links/hard2").ino);
    assert_eq!(inode("/links/hard1").links, 2);
    assert_eq!(inode("/links/fast").kind, InodeKind::Symlink { target: b"../bin/su".to_vec() });
    assert_eq!(inode("/links/slow").kind, InodeKind::Symlink { target: SLOW_TARGET.as_bytes().to_vec() });
    assert_eq!(inode("/dev/null").kind, InodeKind::CharDevice { major: 1, minor: 3 });
    assert_eq!(inode("/dev/big-minor").kind, InodeKind::CharDevice { major: 1, minor: 300_000 });
    assert_eq!(inode("/dev/sda1").kind, InodeKind::BlockDevice { major: 8, minor: 1 });
    assert_eq!(inode("/dev/nvme").kind, InodeKind::BlockDevice { major: 259, minor: 70_000 });
    assert_eq!(inode("/dev/fifo").kind, InodeKind::Fifo);
    assert_eq!(inode("/dev/socket").kind, InodeKind::Socket);

    let many = fs.read_dir(inode("/many")).unwrap();
    assert_eq!(many.len(), MANY);
    assert!(many.windows(2).all(|w| w[0].name < w[1].name));
    assert_eq!(many[7].name, b"entry-number-0007");

    let sparse = inode("/data/sparse");
    assert_eq!(sparse.size, SPARSE_SIZE);
    let extents = fs.extents(sparse).unwrap();
    let stored: u64 = extents.iter().map(|e| e.len).sum();
    assert!(stored <= 4 * 65536, "holes are not stored: {extents:?}");
    let content = fs.read_file(sparse, SPARSE_SIZE).unwrap();
    let mut expected = vec![0u8; SPARSE_SIZE as usize];
    for (at, bytes) in SPARSE_PIECES {
        expected[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }
    assert!(content == expected, "sparse content");

    let prealloc = inode("/data/prealloc");
    let prealloc_extents = fs.extents(prealloc).unwrap();
    if prealloc.has_flag(FLAG_EXTENTS) {
        assert!(prealloc_extents.iter().any(|e| e.uninit), "fallocate left no uninit extent: {prealloc_extents:?}");
    }
    let mut expected = vec![0u8; PREALLOC_SIZE as usize];
    expected[..PREALLOC_HEAD.len()].copy_from_slice(PREALLOC_HEAD);
    expected[PREALLOC_SIZE as usize - PREALLOC_TAIL.len()..].copy_from_slice(PREALLOC_TAIL);
    assert!(fs.read_file(prealloc, 1 << 20).unwrap() == expected, "uninit extents read as zeros");

    assert_eq!(inode("/times/pre-epoch").mtime, Timestamp { secs: PRE_EPOCH, nanos: 0 });
    if inode("/times/future").crtime.is_some() {
        assert_eq!(inode("/times/future").mtime, FUTURE);
        assert_eq!(inode("/times/nanos").mtime.nanos, 999_999_999);
        assert_eq!(inode("/times/nanos").atime.secs >> 32, 3);
    } else {
        // Without extra fields the base alone is a signed 32-bit count: 0xF4865700 is 1963.
        assert_eq!(inode("/times/future").mtime, Timestamp { secs: 0xF486_5700u32 as i32 as i64, nanos: 0 });
    }

    let names = fs.read_dir(inode("/names")).unwrap();
    let listed: Vec<&[u8]> = names.iter().map(|e| e.name.as_slice()).collect();
    let long = "n".repeat(255);
    let mut expected: Vec<&[u8]> = vec![NON_UTF8, long.as_bytes(), b"with space"];
    expected.sort();
    assert_eq!(listed, expected);
    let mut path = b"/names/".to_vec();
    path.extend_from_slice(NON_UTF8);
    assert_eq!(fs.read_file(&fs.lookup_bytes(&path).unwrap(), 100).unwrap(), b"latin-1");
    assert_eq!(fs.lookup("/home/../names/with space").unwrap().ino, inode("/names/with space").ino);
    assert_eq!(fs.lookup("links/slow").unwrap().kind, inode("/links/slow").kind);
    assert!(matches!(fs.lookup("/links/fast/x"), Err(Ext4Error::NotADirectory(p)) if p == "/links/fast"));
    assert!(matches!(fs.lookup("/bin/nope"), Err(Ext4Error::NotFound(p)) if p == "/bin/nope"));
    assert!(matches!(fs.read_file(inode("/data/twenty"), 1000), Err(Ext4Error::TooLarge { .. })));
}

/// The full set of checks for an image the kernel can mount.
fn check_everything(fs_type: &str, mkfs_args: &[&str], size: &str) -> (Built, Ext4) {
    let built = build(fs_type, mkfs_args, size);
    let fs = open(&built.image);
    let entries = walk(&fs);
    check_exact(&fs, &entries, &built.image);
    compare_with_source(&fs, &entries, &built.source, &RETIMED);
    compare_with_kernel(&fs, &entries, &built.image);
    compare_with_debugfs(&fs, &entries, &built.image);
    (built, fs)
}

#[test]
fn ext4_defaults() {
    let (_built, fs) = check_everything("ext4", &["-b", "4096"], "160M");
    let twenty = fs.lookup("/data/twenty").unwrap();
    assert!(twenty.has_flag(FLAG_EXTENTS) && twenty.crtime.is_some());
}

#[test]
fn ext4_inline_data() {
    let (built, fs) = check_everything("ext4", &["-b", "4096", "-O", "inline_data"], "160M");
    for path in ["/data/small", "/data/medium", "/links/slow", "/home", "/times"] {
        assert!(fs.lookup(path).unwrap().has_flag(FLAG_INLINE_DATA), "{path} is stored inline");
    }
    let medium = fs.lookup("/data/medium").unwrap();
    let extents = fs.extents(&medium).unwrap();
    assert_eq!(extents.len(), 2, "i_block plus the system.data value: {extents:?}");
    assert_eq!(fs.read_file(&medium, 1000).unwrap(), tree::pseudo_random(100, 2));
    drop(fs);

    // mke2fs moves a directory out of the inode once i_block is full; the kernel first
    // spills it into the system.data value, so let the kernel grow one.
    let names: Vec<String> = (0..5).map(|i| format!("spilled-{i}")).collect();
    {
        let mount = Mount::with_options(&built.image, "loop");
        std::fs::create_dir(mount.path().join("grow")).unwrap();
        for name in &names {
            std::fs::write(mount.path().join("grow").join(name), name).unwrap();
        }
    }
    e2fsck(&["-fn"], &built.image);
    let fs = open(&built.image);
    let grow = fs.lookup("/grow").unwrap();
    assert!(grow.has_flag(FLAG_INLINE_DATA) && grow.size > 60, "{grow:?}");
    let listed: Vec<Vec<u8>> = fs.read_dir(&grow).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(listed, names.iter().map(|n| n.as_bytes().to_vec()).collect::<Vec<_>>());
    let entries = walk(&fs);
    compare_with_kernel(&fs, &entries, &built.image);
    compare_with_debugfs(&fs, &entries, &built.image);
}

#[test]
fn ext4_gdt_csum_without_metadata_csum() {
    check_everything("ext4", &["-b", "4096", "-O", "^metadata_csum,uninit_bg"], "160M");
}

#[test]
fn ext4_1k_blocks() {
    check_everything("ext4", &["-b", "1024"], "160M");
}

#[test]
fn ext4_128_byte_inodes() {
    let (_built, fs) = check_everything("ext4", &["-b", "4096", "-I", "128"], "160M");
    assert_eq!(fs.lookup("/data/small").unwrap().crtime, None);
}

#[test]
fn ext4_32bit_descriptors() {
    check_everything("ext4", &["-b", "4096", "-O", "^64bit"], "160M");
}

#[test]
fn ext4_meta_bg() {
    // 1 KiB blocks make 20 groups, so two descriptor blocks: the second in its meta-group.
    check_everything("ext4", &["-b", "1024", "-O", "meta_bg,^resize_inode"], "160M");
}

#[test]
fn ext4_bigalloc() {
    check_everything("ext4", &["-b", "4096", "-O", "bigalloc", "-C", "65536"], "160M");
}

#[test]
fn ext3_block_maps() {
    let (_built, fs) = check_everything("ext3", &["-b", "4096"], "160M");
    assert!(!fs.lookup("/data/twenty").unwrap().has_flag(FLAG_EXTENTS));
}

#[test]
fn ext2_1k_blocks_triple_indirect() {
    // 80 MiB in 1 KiB blocks reaches past 12 + 256 + 256² blocks into the triple-indirect map.
    let (_built, fs) = check_everything("ext2", &["-b", "1024"], "200M");
    let sparse = fs.lookup("/data/sparse").unwrap();
    assert!(!sparse.has_flag(FLAG_EXTENTS));
    assert!(fs.extents(&sparse).unwrap().last().unwrap().logical > (12 + 256 + 65536) * 1024);
}

#[test]
fn ext4_64k_blocks_against_debugfs_and_source() {
    // The kernel cannot mount blocks larger than its 4 KiB pages ("bad block size 65536"),
    // so only the source tree and debugfs are compared here.
    let built = build("ext4", &["-b", "65536"], "256M");
    let fs = open(&built.image);
    assert_eq!(fs.block_size(), 65536);
    let entries = walk(&fs);
    check_exact(&fs, &entries, &built.image);
    compare_with_source(&fs, &entries, &built.source, &RETIMED);
    compare_with_debugfs(&fs, &entries, &built.image);
}

/// Many 1 KiB files, every other one deleted, then a large file written by debugfs into the
/// holes: hundreds of extents, so an extent tree two levels deep.
#[test]
fn deep_extent_tree() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(source.join("fill")).unwrap();
    for i in 0..2400 {
        std::fs::write(source.join(format!("fill/{i:05}")), tree::pseudo_random(1024, i + 1)).unwrap();
    }
    let image = dir.path().join("image");
    let args = ["-q", "-F", "-t", "ext4", "-b", "1024", "-N", "4096", "-O", "^resize_inode", "-L", LABEL];
    let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    args.extend([OsStr::new("-d"), source.as_os_str(), image.as_os_str(), OsStr::new("8M")]);
    run("mke2fs", args);
    let big = dir.path().join("big");
    let content = tree::pseudo_random(1100 << 10, 99);
    std::fs::write(&big, &content).unwrap();
    let mut commands: Vec<String> = (0..2400).step_by(2).map(|i| format!("rm /fill/{i:05}")).collect();
    commands.push(format!("write {} /big", big.display()));
    debugfs_batch(&image, &commands, true);
    e2fsck(&["-fn"], &image);

    let tree = String::from_utf8(debugfs_batch(&image, &["ex /big".into()], false).remove(0)).unwrap();
    let depth: u32 = tree.lines().nth(1).unwrap().replace('/', " ").split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(depth >= 2, "expected a deep tree:\n{tree}");

    let fs = open(&image);
    let inode = fs.lookup("/big").unwrap();
    let extents = fs.extents(&inode).unwrap();
    assert!(extents.len() > 300, "{} extents", extents.len());
    assert_eq!(extents, super::oracle::extents_from_debugfs(&tree, inode.size, 1024));
    assert!(fs.read_file(&inode, 2 << 20).unwrap() == content);
    let entries = walk(&fs);
    compare_with_kernel(&fs, &entries, &image);
    compare_with_debugfs(&fs, &entries, &image);
}

/// A value too large for any xattr block lives in its own inode (the ea_inode feature).
#[test]
fn ea_inode_values() {
    let built = build("ext4", &["-b", "4096", "-O", "ea_inode"], "160M");
    let value = dir_value();
    let value_file = built.image.with_file_name("value");
    std::fs::write(&value_file, &value).unwrap();
    debugfs_batch(&built.image, &[format!("ea_set -f {} /attrs/user user.huge", value_file.display())], true);
    // debugfs 1.47.2 leaves the holder's i_blocks short after ea_set; e2fsck repairs that.
    e2fsck(&["-fy"], &built.image);
    e2fsck(&["-fn"], &built.image);
    let fs = open(&built.image);
    let inode = fs.lookup("/attrs/user").unwrap();
    let huge = inode.xattrs.iter().find(|(n, _)| n == "user.huge").unwrap();
    // debugfs 1.47.2's `ea_set -f` stores only the first 4096 bytes of the file; that is still
    // more than an xattr block of 4 KiB can hold, so it must be in an EA inode.
    assert_eq!(huge.1, value[..4096]);
    let holders = (12..=2048).filter_map(|ino| fs.inode(ino).ok()).filter(|i| i.has_flag(FLAG_EA_INODE)).count();
    assert_eq!(holders, 1, "one EA inode holds the value");
    let entries = walk(&fs);
    compare_with_kernel(&fs, &entries, &built.image);
    compare_with_debugfs(&fs, &entries, &built.image);
}

fn dir_value() -> Vec<u8> {
    tree::pseudo_random(20_000, 7)
}
