//! Damaged and unsupported images: each refusal names what is wrong and where.
//!
//! Not random damage; `fuzz.rs` does that.

use std::ffi::OsStr;
use std::fs;
use std::sync::Arc;

use super::tools::run;
use crate::disk::ext4::inode::{FLAG_ENCRYPTED, I_BLOCK_OFFSET};
use crate::disk::ext4::{Ext4, Ext4Error};
use crate::read_at::ReadAt;

/// A small image of a file with an extent, a directory and a symlink, as bytes.
fn small_image(mkfs_args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    fs::create_dir_all(source.join("d")).unwrap();
    fs::write(source.join("f"), super::tree::pseudo_random(5000, 5)).unwrap();
    fs::write(source.join("d/inner"), b"inner").unwrap();
    std::os::unix::fs::symlink("f", source.join("link")).unwrap();
    let image = dir.path().join("image");
    let mut args: Vec<&OsStr> = ["-q", "-F", "-t", "ext4", "-b", "1024"].iter().map(OsStr::new).collect();
    args.extend(mkfs_args.iter().map(OsStr::new));
    args.extend([OsStr::new("-d"), source.as_os_str(), image.as_os_str(), OsStr::new("2M")]);
    run("mke2fs", args);
    fs::read(&image).unwrap()
}

fn open(bytes: Vec<u8>) -> Result<Ext4, Ext4Error> {
    let source: Arc<dyn ReadAt> = Arc::new(bytes);
    Ext4::open(source)
}

/// The byte offset of `path`'s inode record in the image.
fn inode_offset(bytes: &[u8], path: &str) -> usize {
    open(bytes.to_vec()).unwrap().lookup(path).unwrap().offset as usize
}

fn message(result: Result<impl std::fmt::Debug, Ext4Error>) -> String {
    result.unwrap_err().to_string()
}

const INCOMPAT: usize = 1024 + 0x60;

#[test]
fn refuses_what_is_not_ext4() {
    assert!(matches!(open(vec![0u8; 65536]), Err(Ext4Error::NotExt4 { found: 0 })));
    assert!(matches!(open(vec![0u8; 100]), Err(Ext4Error::Io { offset: 1024, .. })));
}

#[test]
fn refuses_features_it_cannot_read_faithfully() {
    let clean = small_image(&["-O", "^metadata_csum"]);
    for (flag, word) in [(0x4u32, "needs_recovery"), (0x8, "journal_dev"), (0x1, "compression"), (1 << 31, "unknown")] {
        let mut bytes = clean.clone();
        let incompat = u32::from_le_bytes(bytes[INCOMPAT..INCOMPAT + 4].try_into().unwrap()) | flag;
        bytes[INCOMPAT..INCOMPAT + 4].copy_from_slice(&incompat.to_le_bytes());
        let error = open(bytes).unwrap_err();
        assert!(matches!(&error, Ext4Error::UnsupportedFeature(m) if m.contains(word)), "{error}");
    }

    let mut bytes = clean.clone();
    let at = inode_offset(&bytes, "/f") + 0x20;
    bytes[at + 1] |= (FLAG_ENCRYPTED >> 8) as u8;
    let fs = open(bytes).unwrap();
    let file = fs.lookup("/f").unwrap();
    assert!(message(fs.extents(&file)).contains(&format!("inode {}: encrypted content", file.ino)));
}

#[test]
fn detects_checksum_mismatches() {
    let clean = small_image(&[]);
    let mut bytes = clean.clone();
    bytes[1024 + 0x78] ^= 1; // the volume name
    assert!(message(open(bytes)).contains("checksum mismatch in the superblock"));

    let mut bytes = clean.clone();
    let ino = open(clean.clone()).unwrap().lookup("/f").unwrap().ino;
    bytes[inode_offset(&clean, "/f") + 0x2] ^= 1; // the uid
    let fs = open(bytes).unwrap();
    assert!(message(fs.lookup("/f")).contains(&format!("checksum mismatch in inode {ino}")));
    assert!(fs.lookup("/d/inner").is_ok(), "other inodes stay readable");
}

#[test]
fn rejects_an_impossible_extent_tree() {
    let mut bytes = small_image(&["-O", "^metadata_csum"]);
    let at = inode_offset(&bytes, "/f") + I_BLOCK_OFFSET;
    bytes[at + 6] = 9;
    let fs = open(bytes.clone()).unwrap();
    let file = fs.lookup("/f").unwrap();
    assert_eq!(
        message(fs.extents(&file)),
        format!("corrupt ext4 metadata: inode {}: extent tree depth 9 exceeds 5", file.ino)
    );
    bytes[at + 6] = 0;
    bytes[at + 2] = 5; // more entries than the root's four slots
    let fs = open(bytes).unwrap();
    let file = fs.lookup("/f").unwrap();
    assert!(message(fs.open_file(&file)).contains("claims 5 of 4 entries"));
}

#[test]
fn truncated_images_fail_cleanly() {
    let bytes = small_image(&["-O", "^metadata_csum"]);
    let fs = open(bytes.clone()).unwrap();
    let file = fs.lookup("/f").unwrap();
    let end = fs.extents(&file).unwrap()[0].physical as usize;
    let fs = open(bytes[..end + 100].to_vec()).unwrap();
    let error = fs.read_file(&file, 1 << 20).unwrap_err();
    assert!(error.to_string().contains("past the end"), "{error}");
}

#[test]
fn refuses_free_and_out_of_range_inodes() {
    let fs = open(small_image(&[])).unwrap();
    assert!(matches!(fs.inode(1), Err(Ext4Error::UnusedInode(1))));
    assert!(matches!(fs.inode(200), Err(Ext4Error::UnusedInode(200))));
    assert!(matches!(fs.inode(0), Err(Ext4Error::Corrupt(_))));
    assert!(matches!(fs.inode(u32::MAX), Err(Ext4Error::Corrupt(_))));
    let file = fs.lookup("/f").unwrap();
    assert!(matches!(fs.read_dir(&file), Err(Ext4Error::NotADirectory(_))));
}
