//! What can go wrong reading an ext4 image, each error saying what is wrong and where.
//!
//! Not for errors of the caller's own I/O or of tar writing; those belong to the caller.

use std::io;

/// Why an image, an inode or a path could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    /// The source could not supply bytes the metadata points at (often a truncated image).
    #[error("reading {len} bytes at offset {offset} of the image: {source}")]
    Io { offset: u64, len: u64, source: io::Error },
    /// Reading content the extents point at failed (they were checked to lie inside the image).
    #[error("inode {ino}: reading content: {source}")]
    Content { ino: u32, source: io::Error },
    #[error("not an ext2/3/4 filesystem: magic {found:#06x} at byte 1080, expected 0xef53")]
    NotExt4 { found: u16 },
    /// A feature this reader refuses rather than misread, with the inode when it is per-file.
    #[error("unsupported ext4 feature: {0}")]
    UnsupportedFeature(String),
    /// Metadata that cannot be right, e.g. "inode 1234: extent tree depth 9 exceeds 5".
    #[error("corrupt ext4 metadata: {0}")]
    Corrupt(String),
    #[error("checksum mismatch in {what}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { what: String, stored: u32, computed: u32 },
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// The inode is free (mode 0, no links, or in a group's never-initialised inode table).
    #[error("inode {0} is not in use")]
    UnusedInode(u32),
    #[error("inode {ino}: {size} bytes exceeds the limit of {limit}")]
    TooLarge { ino: u32, size: u64, limit: u64 },
}

pub(crate) fn corrupt(ino: u32, what: impl std::fmt::Display) -> Ext4Error {
    Ext4Error::Corrupt(format!("inode {ino}: {what}"))
}

pub(crate) fn unsupported(ino: u32, what: impl std::fmt::Display) -> Ext4Error {
    Ext4Error::UnsupportedFeature(format!("inode {ino}: {what}"))
}
