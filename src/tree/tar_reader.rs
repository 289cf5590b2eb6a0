//! Reading an uncompressed tar archive (what mmdebstrap writes, what `bramble extract --tar`
//! writes) into a [`Tree`] whose file contents point back into the archive, so a root of
//! hundreds of MiB is described, not copied. Owners, modes, times, pax extended attributes
//! (`SCHILY.xattr.*`), links and device numbers are kept.

use super::{Content, Kind, Node, Piece, Pieces, Timestamp, Tree};
use crate::read_at::{FileSource, ReadAt};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// An archive path as a tree path: `./etc/x` and `etc/x` are `etc/x`; `.` is the root.
fn tree_path(raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::CurDir | Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => bail!("`{}` leaves the archive's root", raw.display()),
        }
    }
    Ok(out)
}

/// Read `path` (a plain .tar) into a tree.
pub fn read_tar_file(path: &Path) -> Result<Tree> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let source: Arc<dyn ReadAt> = Arc::new(FileSource::new(file.try_clone()?)?);
    let mut archive = tar::Archive::new(file);
    let mut tree = Tree::new();
    let mut root = Node::new(Kind::Dir, 0o755);
    root.mtime = Timestamp::default();
    tree.insert("", root);
    let entries = archive.entries_with_seek().with_context(|| format!("{} is not a tar archive", path.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{}: damaged tar entry", path.display()))?;
        let raw_path = entry.path()?.into_owned();
        let p = tree_path(&raw_path).with_context(|| path.display().to_string())?;
        let header = entry.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Some(ext) = entry.pax_extensions()? {
            for e in ext {
                let e = e?;
                if let Some(name) = e.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.insert(name.to_string(), e.value_bytes().to_vec());
                }
            }
        }
        let link = || -> Result<PathBuf> {
            entry.link_name()?.map(|l| l.into_owned()).context("a link entry without a target")
        };
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let len = entry.size();
                let pieces = vec![Piece { file_offset: 0, source_offset: entry.raw_file_position(), len }];
                Kind::File(Content::new(Arc::new(Pieces { source: source.clone(), pieces, len })))
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => Kind::HardLink(tree_path(&link()?)?),
            tar::EntryType::Char => Kind::CharDevice {
                major: header.device_major()?.unwrap_or(0),
                minor: header.device_minor()?.unwrap_or(0),
            },
            tar::EntryType::Block => Kind::BlockDevice {
                major: header.device_major()?.unwrap_or(0),
                minor: header.device_minor()?.unwrap_or(0),
            },
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::GNUSparse => {
                bail!("{}: {} is a sparse entry, which Bramble does not read", path.display(), p.display())
            }
            other => {
                bail!("{}: {} has tar entry type {other:?}, which Bramble does not read", path.display(), p.display())
            }
        };
        let mut node = Node::new(kind, header.mode()?);
        node.uid = header.uid()? as u32;
        node.gid = header.gid()? as u32;
        node.mtime = Timestamp::from_secs(header.mtime()? as i64);
        node.xattrs = xattrs;
        tree.insert(p, node);
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tar::{TarOptions, write_tar};

    #[test]
    fn what_we_write_reads_back() {
        let mut t = Tree::new();
        let mut dir = Node::new(Kind::Dir, 0o755);
        dir.mtime = Timestamp::from_secs(100);
        t.insert("", dir.clone());
        t.insert("etc", dir.clone());
        let mut f = Node::new(Kind::File(Content::bytes(b"hello\n".to_vec())), 0o4755);
        f.uid = 7;
        f.gid = 8;
        f.mtime = Timestamp::from_secs(200);
        f.xattrs.insert("security.capability".into(), vec![1, 0, 0, 2]);
        t.insert("etc/f", f);
        t.insert("etc/l", Node::new(Kind::Symlink("f".into()), 0o777));
        t.insert("etc/h", Node::new(Kind::HardLink("etc/f".into()), 0o4755));
        t.insert("etc/null", Node::new(Kind::CharDevice { major: 1, minor: 3 }, 0o666));
        let dir_path = tempfile::tempdir().unwrap();
        let tar_path = dir_path.path().join("t.tar");
        write_tar(&t, std::fs::File::create(&tar_path).unwrap(), TarOptions::default()).unwrap();
        let back = read_tar_file(&tar_path).unwrap();
        let f = back.get(Path::new("etc/f")).unwrap();
        assert_eq!((f.mode, f.uid, f.gid, f.mtime.secs), (0o4755, 7, 8, 200));
        assert_eq!(f.xattrs.get("security.capability").unwrap(), &vec![1, 0, 0, 2]);
        match &f.kind {
            Kind::File(c) => assert_eq!(c.read_all().unwrap(), b"hello\n"),
            k => panic!("{k:?}"),
        }
        assert!(matches!(&back.get(Path::new("etc/l")).unwrap().kind, Kind::Symlink(p) if p == Path::new("f")));
        assert!(matches!(&back.get(Path::new("etc/h")).unwrap().kind, Kind::HardLink(p) if p == Path::new("etc/f")));
        assert!(matches!(back.get(Path::new("etc/null")).unwrap().kind, Kind::CharDevice { major: 1, minor: 3 }));
    }
}
