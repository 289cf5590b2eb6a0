//! Disk images: partition tables and filesystems, built in memory from plain descriptions.
//!
//! Knows nothing about Raspberry Pis; callers decide sizes, labels and ids.

pub mod bmap;
pub mod ext4;
pub mod fat;
pub mod fat_chains;
pub mod fat_reader;
pub mod fat_repair;
pub mod fat_size;
pub mod gpt;
pub mod image_file;
pub mod imager;
pub mod layout;
pub mod mbr;
pub mod mke2fs;
pub mod partition;
pub mod xz;
pub mod xz_write;
