//! Tests against the real tools: images made by mke2fs from a tree built here, read back and
//! compared with the source tree, the kernel (a read-only loop mount) and debugfs.
//!
//! Not unit tests of single decoders; those sit next to the code they test.

mod corruption;
mod fuzz;
mod images;
mod oracle;
mod tools;
mod tree;
