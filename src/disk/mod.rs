//! Disk images: partition tables and filesystems, built in memory from plain descriptions.
//!
//! Knows nothing about Raspberry Pis; callers decide sizes, labels and ids.

pub mod fat;
pub mod mbr;
