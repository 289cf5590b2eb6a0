//! Property test: real images with random damage in their metadata never make the reader
//! panic, hang or allocate without bound; errors are fine.
//!
//! Not for checking what damaged images read as; only that reading them is safe.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::tools::{e2fsck, run};
use crate::disk::ext4::{Ext4, InodeKind};
use crate::read_at::ReadAt;

struct Sample {
    bytes: Vec<u8>,
    /// Metadata: superblock, descriptors, every used inode, directory and xattr blocks.
    hot: Vec<Range<usize>>,
}

const VARIANTS: [&[&str]; 4] = [
    &["-t", "ext4", "-b", "1024", "-O", "^metadata_csum"],
    &["-t", "ext4", "-b", "1024", "-O", "inline_data,^metadata_csum"],
    &["-t", "ext2", "-b", "1024"],
    &["-t", "ext4", "-b", "4096"],
];

fn samples() -> &'static [Sample] {
    static SAMPLES: OnceLock<Vec<Sample>> = OnceLock::new();
    SAMPLES.get_or_init(|| VARIANTS.iter().map(|args| sample(args)).collect())
}

fn sample(mkfs_args: &[&str]) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    fs::create_dir_all(source.join("many")).unwrap();
    for i in 0..60 {
        fs::write(source.join(format!("many/a-rather-long-file-name-{i:03}")), [i as u8; 3]).unwrap();
    }
    fs::write(source.join("small"), b"tiny").unwrap();
    fs::write(source.join("blocks"), super::tree::pseudo_random(40_000, 8)).unwrap();
    let sparse = fs::File::create(source.join("sparse")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"x", 300_000).unwrap();
    std::os::unix::fs::symlink("small", source.join("fast")).unwrap();
    std::os::unix::fs::symlink(super::tree::SLOW_TARGET, source.join("slow")).unwrap();
    run(
        "setfattr",
        [OsStr::new("-n"), OsStr::new("user.a"), OsStr::new("-v"), OsStr::new("b"), source.join("small").as_os_str()],
    );
    let long = format!("0x{}", "cd".repeat(400));
    run(
        "setfattr",
        [
            OsStr::new("-n"),
            OsStr::new("user.long"),
            OsStr::new("-v"),
            OsStr::new(&long),
            source.join("blocks").as_os_str(),
        ],
    );
    run("mknod", [source.join("dev").as_os_str(), OsStr::new("c"), OsStr::new("1"), OsStr::new("300000")]);
    let image = dir.path().join("image");
    let mut args: Vec<&OsStr> = ["-q", "-F", "-N", "128"].iter().chain(mkfs_args).map(OsStr::new).collect();
    args.extend([OsStr::new("-d"), source.as_os_str(), image.as_os_str(), OsStr::new("4M")]);
    run("mke2fs", args);
    e2fsck(&["-fyD"], &image);
    let bytes = fs::read(&image).unwrap();

    let fs = Ext4::open(Arc::new(bytes.clone()) as Arc<dyn ReadAt>).unwrap();
    let block_size = fs.block_size() as usize;
    let descriptors = if block_size == 1024 { 2048 } else { block_size };
    let mut hot = vec![1024..2048, descriptors..descriptors + 64];
    for entry in super::oracle::walk(&fs) {
        let record = entry.inode.offset as usize;
        hot.push(record..record + 256);
        if entry.inode.file_acl != 0 {
            let at = entry.inode.file_acl as usize * block_size;
            hot.push(at..at + block_size);
        }
        if entry.inode.is_dir() {
            for extent in fs.extents(&entry.inode).unwrap() {
                hot.push(extent.physical as usize..(extent.physical + extent.len) as usize);
            }
        }
    }
    hot.retain(|r| r.end <= bytes.len() && !r.is_empty());
    Sample { bytes, hot }
}

/// Everything a caller might do with a volume, bounded so that a damaged one ends quickly.
fn exercise(bytes: Vec<u8>) {
    let Ok(fs) = Ext4::open(Arc::new(bytes) as Arc<dyn ReadAt>) else {
        return;
    };
    let _ = (fs.label(), fs.uuid(), fs.size_bytes(), fs.free_bytes(), format!("{fs:?}"));
    let mut seen = BTreeSet::new();
    let mut pending = vec![2u32];
    while let Some(ino) = pending.pop() {
        if !seen.insert(ino) || seen.len() > 500 {
            continue;
        }
        let Ok(inode) = fs.inode(ino) else { continue };
        let _ = fs.extents(&inode);
        if let Ok(mut reader) = fs.open_file(&inode) {
            let _ = std::io::copy(&mut (&mut reader).take(1 << 20), &mut std::io::sink());
        }
        let _ = fs.read_file(&inode, 1 << 20);
        if matches!(inode.kind, InodeKind::Dir) {
            if let Ok(entries) = fs.read_dir(&inode) {
                pending.extend(entries.iter().map(|e| e.ino));
            }
        }
    }
    for path in ["/small", "/many/a-rather-long-file-name-007", "/slow/x", "/../many/./.."] {
        let _ = fs.lookup(path);
    }
}

/// Values that tend to find edge cases in counts, sizes and offsets.
const INTERESTING: [u32; 8] = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF, 0x8000, 12];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_images_never_panic(
        which in 0..VARIANTS.len(),
        edits in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u8>(), 0..3u8), 1..12),
    ) {
        let sample = &samples()[which];
        let mut bytes = sample.bytes.clone();
        for (region_pick, position, value, how) in edits {
            let region = &sample.hot[region_pick as usize % sample.hot.len()];
            let at = region.start + position as usize % region.len();
            match how {
                0 => bytes[at] = value,
                1 => bytes[at] ^= 1 << (value % 8),
                _ => {
                    let word = INTERESTING[usize::from(value) % INTERESTING.len()].to_le_bytes();
                    let end = (at + 4).min(bytes.len());
                    bytes[at..end].copy_from_slice(&word[..end - at]);
                }
            }
        }
        exercise(bytes);
    }
}

#[test]
fn undamaged_samples_read_completely() {
    for sample in samples() {
        let fs = Ext4::open(Arc::new(sample.bytes.clone()) as Arc<dyn ReadAt>).unwrap();
        assert!(super::oracle::walk(&fs).len() > 60);
        assert!(sample.hot.len() > 3);
    }
}
