//! The source tree the test images are made from: every kind of inode, owner, mode, name and
//! attribute a root filesystem can hold.
//!
//! Not for checking anything; `oracle.rs` compares images with this tree and with the tools.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt, chown, lchown, symlink};
use std::os::unix::net::UnixListener;
use std::path::Path;

use super::tools::run;

pub const SLOW_TARGET: &str =
    "/usr/lib/some/rather/deeply/nested/directory/structure/that/needs/more/than/sixty/bytes/target";
pub const TWENTY_MIB: usize = 20 << 20;
/// Past 64 MiB so that with 1 KiB blocks the last piece needs a triple-indirect block.
pub const SPARSE_SIZE: u64 = 80 << 20;
/// Where the sparse file has data; everything else is a hole.
pub const SPARSE_PIECES: [(u64, &[u8]); 4] =
    [(0, b"head"), (10 << 20, b"ten mebibytes in"), (40 << 20, b"forty"), (SPARSE_SIZE - 3, b"end")];
pub const MANY: usize = 500;
pub const PREALLOC_SIZE: u64 = 256 << 10;
pub const PREALLOC_HEAD: &[u8] = b"first block";
pub const PREALLOC_TAIL: &[u8] = b"last block";
pub const PRE_EPOCH: i64 = -315_619_200; // 1960-01-01
pub const NON_UTF8: &[u8] = b"caf\xe9 \xff\xfe";
pub const CAPABILITY: &[u8] = &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Deterministic bytes that do not compress to holes.
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn file(root: &Path, rel: &str, content: &[u8], owner: (u32, u32), mode: u32) {
    let path = root.join(rel);
    fs::write(&path, content).unwrap();
    own(&path, owner, mode);
}

fn dir(root: &Path, rel: &str, owner: (u32, u32), mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(&path).unwrap();
    own(&path, owner, mode);
}

/// chown first: it clears setuid and setgid, which chmod then sets.
fn own(path: &Path, (uid, gid): (u32, u32), mode: u32) {
    chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds the tree under `root` (which must exist and be empty).
pub fn build(root: &Path) {
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    dir(root, "bin", (0, 0), 0o755);
    file(root, "bin/su", b"#!/bin/sh\necho setuid\n", (0, 0), 0o4755);
    file(root, "bin/wall", b"setgid tty\n", (0, 5), 0o2755);
    file(root, "bin/ping", b"needs raw sockets\n", (0, 0), 0o755);
    dir(root, "tmp", (0, 0), 0o1777);
    dir(root, "home/alice", (1000, 1000), 0o750);
    file(root, "home/alice/.profile", b"export PS1='$ '\n", (1000, 1000), 0o644);
    file(root, "home/alice/secret", b"hunter2", (1000, 1000), 0o600);
    file(root, "nobody", b"owned by nobody\n", (65534, 65534), 0o644);
    file(root, "big-ids", b"ids above 65535 need the high halves\n", (100_000, 200_000), 0o640);

    dir(root, "attrs", (0, 0), 0o755);
    file(root, "attrs/user", b"x", (0, 0), 0o644);
    let user = root.join("attrs/user");
    run(
        "setfattr",
        [OsStr::new("-n"), OsStr::new("user.comment"), OsStr::new("-v"), OsStr::new("hello"), user.as_os_str()],
    );
    run("setfattr", [OsStr::new("-n"), OsStr::new("user.empty"), user.as_os_str()]);
    run(
        "setfattr",
        [OsStr::new("-n"), OsStr::new("trusted.overlay.opaque"), OsStr::new("-v"), OsStr::new("y"), user.as_os_str()],
    );
    run(
        "setfattr",
        [OsStr::new("-n"), OsStr::new("security.bramble"), OsStr::new("-v"), OsStr::new("0x00ff10"), user.as_os_str()],
    );
    // Too big for the spare space of a 256-byte inode: lands in the external xattr block.
    let long_value = format!("0x{}", "ab".repeat(700));
    run(
        "setfattr",
        [OsStr::new("-n"), OsStr::new("user.long"), OsStr::new("-v"), OsStr::new(&long_value), user.as_os_str()],
    );
    dir(root, "attrs/acl", (0, 0), 0o775);
    let acl = root.join("attrs/acl");
    run("setfacl", [OsStr::new("-m"), OsStr::new("u:1000:rwx,g:100:r-x"), acl.as_os_str()]);
    run("setfacl", [OsStr::new("-d"), OsStr::new("-m"), OsStr::new("u:1000:rwx"), acl.as_os_str()]);

    dir(root, "links", (0, 0), 0o755);
    symlink("../bin/su", root.join("links/fast")).unwrap();
    symlink(SLOW_TARGET, root.join("links/slow")).unwrap();
    lchown(root.join("links/slow"), Some(1000), Some(1000)).unwrap();
    file(root, "links/hard1", b"one inode, two names\n", (0, 0), 0o644);
    fs::hard_link(root.join("links/hard1"), root.join("links/hard2")).unwrap();

    dir(root, "dev", (0, 0), 0o755);
    for (name, kind, major, minor) in [
        ("null", "c", "1", "3"),
        ("big-minor", "c", "1", "300000"),
        ("sda1", "b", "8", "1"),
        ("nvme", "b", "259", "70000"),
    ] {
        run("mknod", [root.join("dev").join(name).as_os_str(), OsStr::new(kind), OsStr::new(major), OsStr::new(minor)]);
    }
    run("mkfifo", [root.join("dev/fifo")]);
    drop(UnixListener::bind(root.join("dev/socket")).unwrap());

    dir(root, "data", (0, 0), 0o755);
    file(root, "data/empty", b"", (0, 0), 0o644);
    file(root, "data/small", &pseudo_random(40, 1), (0, 0), 0o644);
    file(root, "data/medium", &pseudo_random(100, 2), (0, 0), 0o644);
    file(root, "data/block", &pseudo_random(5000, 3), (0, 0), 0o644);
    file(root, "data/twenty", &pseudo_random(TWENTY_MIB, 4), (0, 0), 0o644);
    let sparse = fs::File::create(root.join("data/sparse")).unwrap();
    sparse.set_len(SPARSE_SIZE).unwrap();
    for (at, bytes) in SPARSE_PIECES {
        sparse.write_all_at(bytes, at).unwrap();
    }
    // Mostly holes, which debugfs' fallocate turns into uninitialized extents. It ends in data:
    // mke2fs 1.47.2 -d with inline_data cuts a trailing hole off a file's size.
    let prealloc = fs::File::create(root.join("data/prealloc")).unwrap();
    prealloc.write_all_at(PREALLOC_HEAD, 0).unwrap();
    prealloc.write_all_at(PREALLOC_TAIL, PREALLOC_SIZE - PREALLOC_TAIL.len() as u64).unwrap();

    dir(root, "names", (0, 0), 0o755);
    file(root, "names/with space", b"space", (0, 0), 0o644);
    fs::write(root.join("names").join(OsStr::from_bytes(NON_UTF8)), b"latin-1").unwrap();
    fs::write(root.join("names").join("n".repeat(255)), b"longest name").unwrap();

    dir(root, "many", (0, 0), 0o755);
    for i in 0..MANY {
        fs::write(root.join(format!("many/entry-number-{i:04}")), i.to_string()).unwrap();
    }

    dir(root, "times", (0, 0), 0o755);
    file(root, "times/pre-epoch", b"", (0, 0), 0o644);
    file(root, "times/future", b"", (0, 0), 0o644);
    file(root, "times/nanos", b"", (0, 0), 0o644);
    run("touch", [OsStr::new("-d"), OsStr::new(&format!("@{PRE_EPOCH}")), root.join("times/pre-epoch").as_os_str()]);

    // Last: chown above would have cleared the capability.
    run("setcap", [OsStr::new("cap_net_raw+ep"), root.join("bin/ping").as_os_str()]);
}
