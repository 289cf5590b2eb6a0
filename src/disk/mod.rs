//! Disk images: partition tables and filesystems, built in memory from plain descriptions.
//!
//! Knows nothing about Raspberry Pis; callers decide sizes, labels and ids.

pub mod ext4;
pub mod fat;
pub mod fat_reader;
pub mod fat_repair;
pub mod fat_size;
pub mod mbr;
pub mod partition;
pub mod xz;
