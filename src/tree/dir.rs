//! A tree written out as a folder: files, folders, symlinks, hard links, fifos and (as root)
//! device nodes, then ownership (as root), modes, extended attributes and modification times.
//! Without root, owners and devices cannot be applied: that is reported, not hidden, and the
//! tar emitter is the rootless way to keep them.

use super::{Kind, Tree};
use anyhow::{Context, Result, bail};
use nix::sys::stat::{Mode, SFlag};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default)]
pub struct DirOptions {
    /// Clamp every modification time to this (SOURCE_DATE_EPOCH).
    pub mtime_limit: Option<i64>,
}

/// What could not be reproduced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DirReport {
    pub written: usize,
    /// Paths whose owner could not be set (not root).
    pub owners_skipped: usize,
    /// Device nodes not created (not root).
    pub devices_skipped: Vec<PathBuf>,
    /// Extended attributes that could not be set (e.g. security.* without root).
    pub xattrs_skipped: usize,
    pub sockets_skipped: usize,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Write `tree` under `dest`, which must not exist or be empty.
pub fn write_dir(tree: &Tree, dest: &Path, options: DirOptions) -> Result<DirReport> {
    let listing = |d: &Path| std::fs::read_dir(d).with_context(|| format!("cannot list {}", d.display()));
    if dest.exists() && listing(dest)?.next().is_some() {
        bail!("{} is not empty; write to a new folder", dest.display());
    }
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let root = is_root();
    let mut report = DirReport::default();
    for (path, node) in tree.iter() {
        let target = dest.join(path);
        let made = match &node.kind {
            Kind::Dir => {
                if !path.as_os_str().is_empty() {
                    std::fs::create_dir(&target).with_context(|| format!("cannot create {}", target.display()))?;
                }
                true
            }
            Kind::File(content) => {
                let mut out =
                    std::fs::File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
                let mut from =
                    content.open().with_context(|| format!("cannot read the source of {}", path.display()))?;
                let n = io::copy(&mut from, &mut out).with_context(|| format!("writing {}", target.display()))?;
                if n != content.len() {
                    bail!("{}: got {n} bytes of {}", path.display(), content.len());
                }
                true
            }
            Kind::Symlink(to) => {
                symlink(to, &target).with_context(|| format!("cannot make the symlink {}", target.display()))?;
                true
            }
            Kind::HardLink(to) => {
                std::fs::hard_link(dest.join(to), &target)
                    .with_context(|| format!("cannot make the hard link {}", target.display()))?;
                // A hard link shares the first path's inode: its attributes are set there.
                report.written += 1;
                continue;
            }
            Kind::Fifo => {
                nix::unistd::mkfifo(&target, Mode::from_bits_truncate(0o600))
                    .with_context(|| format!("cannot make the FIFO {}", target.display()))?;
                true
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                let kind = if matches!(node.kind, Kind::CharDevice { .. }) { SFlag::S_IFCHR } else { SFlag::S_IFBLK };
                if root {
                    let dev = nix::sys::stat::makedev(u64::from(*major), u64::from(*minor));
                    nix::sys::stat::mknod(&target, kind, Mode::from_bits_truncate(0o600), dev)
                        .with_context(|| format!("cannot make the device node {}", target.display()))?;
                    true
                } else {
                    report.devices_skipped.push(path.clone());
                    false
                }
            }
            Kind::Socket => {
                report.sockets_skipped += 1;
                false
            }
        };
        if !made {
            continue;
        }
        report.written += 1;
        let is_link = matches!(node.kind, Kind::Symlink(_));
        if root {
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &target,
                Some(nix::unistd::Uid::from_raw(node.uid)),
                Some(nix::unistd::Gid::from_raw(node.gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("cannot set the owner of {}", target.display()))?;
        } else {
            report.owners_skipped += 1;
        }
        for (name, value) in &node.xattrs {
            // Set after chown: changing the owner clears security.capability.
            if xattr::set(&target, name, value).is_err() {
                report.xattrs_skipped += 1;
            }
        }
        // Folders get their mode at the end: a read-only folder must still take its children.
        if !is_link && !matches!(node.kind, Kind::Dir) {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(node.mode & 0o7777))
                .with_context(|| format!("cannot set the mode of {}", target.display()))?;
        }
    }
    // Folder modes and all times last, deepest first, so writing a child does not touch its
    // folder's time again.
    let mut paths: Vec<_> = tree.iter().collect();
    paths.reverse();
    for (path, node) in paths {
        if matches!(node.kind, Kind::HardLink(_) | Kind::Socket) {
            continue;
        }
        let target = dest.join(path);
        if target.symlink_metadata().is_err() {
            continue;
        }
        if matches!(node.kind, Kind::Dir) {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(node.mode & 0o7777))
                .with_context(|| format!("cannot set the mode of {}", target.display()))?;
        }
        let t = node.mtime.clamp(options.mtime_limit);
        let time = filetime::FileTime::from_unix_time(t.secs, t.nanos);
        filetime::set_symlink_file_times(&target, time, time)
            .with_context(|| format!("cannot set the time of {}", target.display()))?;
    }
    if !root && (report.owners_skipped > 0 || !report.devices_skipped.is_empty()) {
        tracing::warn!(
            "not root: {} path(s) keep your ownership and {} device node(s) were not created; write a tar to keep them",
            report.owners_skipped,
            report.devices_skipped.len()
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::{Content, Kind, Node, Timestamp, Tree};
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_files_links_modes_and_times() {
        let mut t = Tree::new();
        t.insert("", Node::new(Kind::Dir, 0o755));
        let mut f = Node::new(Kind::File(Content::bytes(b"data".to_vec())), 0o640);
        f.mtime = Timestamp { secs: 1_700_000_000, nanos: 5 };
        f.uid = 4242;
        t.insert("d", Node::new(Kind::Dir, 0o700));
        t.insert("d/f", f);
        t.insert("d/g", Node::new(Kind::HardLink("d/f".into()), 0o640));
        t.insert("l", Node::new(Kind::Symlink("d/f".into()), 0o777));
        t.insert("p", Node::new(Kind::Fifo, 0o600));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let report = write_dir(&t, &dest, DirOptions::default()).unwrap();
        assert_eq!(report.written, 6);
        assert_eq!(std::fs::read(dest.join("d/g")).unwrap(), b"data");
        let m = std::fs::metadata(dest.join("d/f")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(m.nlink(), 2);
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 5));
        assert_eq!(std::fs::read_link(dest.join("l")).unwrap(), PathBuf::from("d/f"));
        assert_eq!(std::fs::metadata(dest.join("d")).unwrap().mode() & 0o7777, 0o700);
        if is_root() {
            assert_eq!(m.uid(), 4242);
        }
        assert!(write_dir(&t, &dest, DirOptions::default()).is_err(), "refuses a non-empty folder");
    }
}
