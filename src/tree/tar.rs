//! A tree as a POSIX (pax) tar archive, byte-reproducible: entries in tree order, numeric
//! owners without names, modification times clamped to SOURCE_DATE_EPOCH when given, extended
//! attributes as `SCHILY.xattr.*` records (what GNU tar `--xattrs` and libarchive read, and
//! `mke2fs -d` accepts), hard links as link entries, device nodes with their numbers. Paths are
//! written `./`-relative, as `tar -C root -c .` writes them.

use super::{Kind, Node, Tree};
use std::io::{self, Read, Write};
use std::path::Path;

/// Largest value the ustar header's 7-digit octal fields hold (uid, gid, device numbers).
const USTAR_ID_MAX: u64 = 0o7_777_777;
/// Largest value of the 11-digit size and mtime fields.
const USTAR_BIG_MAX: u64 = 0o77_777_777_777;

#[derive(Clone, Copy, Debug, Default)]
pub struct TarOptions {
    /// Clamp every modification time to this (SOURCE_DATE_EPOCH).
    pub mtime_limit: Option<i64>,
}

/// One pax record: `"<len> key=value\n"`, where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn archive_path(path: &Path, dir: bool) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = b"./".to_vec();
    out.extend_from_slice(path.as_os_str().as_bytes());
    if dir && !path.as_os_str().is_empty() {
        out.push(b'/');
    }
    out
}

/// Store `name` in the ustar name and prefix fields byte for byte; false if it does not fit.
/// (The tar crate's `set_path` would normalise `./x` to `x`, unlike `tar -C root -c .`.)
fn put_name(header: &mut tar::Header, name: &[u8]) -> bool {
    let ustar = header.as_ustar_mut().expect("ustar header");
    let (prefix, rest) = if name.len() <= ustar.name.len() {
        (&name[..0], name)
    } else {
        // Split at a slash so that the prefix fits 155 bytes and the rest 100.
        let Some(cut) = (0..name.len())
            .rev()
            .find(|&i| name[i] == b'/' && i <= ustar.prefix.len() && name.len() - i - 1 <= ustar.name.len() && i > 0)
        else {
            return false;
        };
        (&name[..cut], &name[cut + 1..])
    };
    if rest.is_empty() {
        return false;
    }
    ustar.name = [0; 100];
    ustar.prefix = [0; 155];
    ustar.name[..rest.len()].copy_from_slice(rest);
    ustar.prefix[..prefix.len()].copy_from_slice(prefix);
    true
}

fn bytes_of(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// Counts what a reader yields, so a short content source cannot corrupt the archive silently.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Write `tree` to `out` as a tar archive.
pub fn write_tar<W: Write>(tree: &Tree, out: W, options: TarOptions) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for (path, node) in tree.iter() {
        append(&mut builder, path, node, options)?;
    }
    builder.into_inner()
}

fn append<W: Write>(builder: &mut tar::Builder<W>, path: &Path, node: &Node, options: TarOptions) -> io::Result<()> {
    let is_dir = matches!(node.kind, Kind::Dir);
    let name = archive_path(path, is_dir);
    let mtime = node.mtime.clamp(options.mtime_limit);
    let mut header = tar::Header::new_ustar();
    let mut pax = Vec::new();
    let (entry_type, size, link) = match &node.kind {
        Kind::File(c) => (tar::EntryType::Regular, c.len(), None),
        Kind::Dir => (tar::EntryType::Directory, 0, None),
        Kind::Symlink(t) => (tar::EntryType::Symlink, 0, Some(bytes_of(t))),
        Kind::HardLink(t) => (tar::EntryType::Link, 0, Some(archive_path(t, false))),
        Kind::CharDevice { .. } => (tar::EntryType::Char, 0, None),
        Kind::BlockDevice { .. } => (tar::EntryType::Block, 0, None),
        Kind::Fifo => (tar::EntryType::Fifo, 0, None),
        Kind::Socket => {
            // tar has no socket type; sockets are made by the programs that listen on them.
            return Ok(());
        }
    };
    header.set_entry_type(entry_type);
    header.set_mode(node.mode & 0o7777);
    if !name.is_ascii() || !put_name(&mut header, &name) {
        pax_record(&mut pax, "path", &name);
        put_name(&mut header, b"././@PaxPath");
    }
    if let Some(link) = &link {
        let field = &mut header.as_ustar_mut().expect("ustar header").linkname;
        if link.len() <= field.len() && link.is_ascii() {
            field[..link.len()].copy_from_slice(link);
        } else {
            pax_record(&mut pax, "linkpath", link);
            field[..12].copy_from_slice(b"././@PaxLink");
        }
    }
    for (field, value) in [("uid", u64::from(node.uid)), ("gid", u64::from(node.gid))] {
        if value > USTAR_ID_MAX {
            pax_record(&mut pax, field, value.to_string().as_bytes());
        }
    }
    header.set_uid(u64::from(node.uid).min(USTAR_ID_MAX));
    header.set_gid(u64::from(node.gid).min(USTAR_ID_MAX));
    if size > USTAR_BIG_MAX {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    header.set_size(size.min(USTAR_BIG_MAX));
    if mtime.secs < 0 || mtime.secs as u64 > USTAR_BIG_MAX || mtime.nanos != 0 {
        let value =
            if mtime.nanos != 0 { format!("{}.{:09}", mtime.secs, mtime.nanos) } else { mtime.secs.to_string() };
        pax_record(&mut pax, "mtime", value.as_bytes());
    }
    header.set_mtime(mtime.secs.clamp(0, USTAR_BIG_MAX as i64) as u64);
    if let Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } = node.kind {
        if u64::from(major) > USTAR_ID_MAX || u64::from(minor) > USTAR_ID_MAX {
            return Err(io::Error::other(format!(
                "{}: device number {major}:{minor} does not fit a tar header",
                path.display()
            )));
        }
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
    }
    for (key, value) in &node.xattrs {
        pax_record(&mut pax, &format!("SCHILY.xattr.{key}"), value);
    }
    if !pax.is_empty() {
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        let base = path.file_name().map(|n| bytes_of(Path::new(n))).unwrap_or_else(|| b".".to_vec());
        let x_name = [b"./PaxHeaders/".as_slice(), &base].concat();
        if !x_name.is_ascii() || !put_name(&mut x, &x_name) {
            put_name(&mut x, b"./PaxHeaders/@LongName");
        }
        x.set_mode(0o644);
        x.set_mtime(header.mtime().unwrap_or(0));
        x.set_size(pax.len() as u64);
        x.set_cksum();
        builder.append(&x, pax.as_slice())?;
    }
    header.set_cksum();
    match &node.kind {
        Kind::File(content) => {
            let mut reader = Counted { inner: content.open()?, n: 0 };
            builder.append(&header, (&mut reader).take(size))?;
            if reader.n != size {
                return Err(io::Error::other(format!(
                    "{}: content gave {} bytes instead of {size}; the archive is unusable",
                    path.display(),
                    reader.n
                )));
            }
        }
        _ => builder.append(&header, io::empty())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Content, Kind, Node, Timestamp, Tree};
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", b"abc");
        assert_eq!(out, b"12 path=abc\n");
        // A record whose length field pushes it from 99 to 100+ bytes.
        let mut out = Vec::new();
        pax_record(&mut out, "k", &[b'v'; 95]);
        let text = String::from_utf8(out.clone()).unwrap();
        let len: usize = text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, out.len());
    }

    fn sample() -> Tree {
        let mut t = Tree::new();
        let mut root = Node::new(Kind::Dir, 0o755);
        root.mtime = Timestamp::from_secs(5000);
        t.insert("", root);
        let mut f = Node::new(Kind::File(Content::bytes(b"hello".to_vec())), 0o4755);
        f.uid = 1000;
        f.gid = 3_000_000;
        f.mtime = Timestamp { secs: 9000, nanos: 250 };
        f.xattrs.insert("security.capability".into(), vec![1, 0, 0, 2, 0]);
        t.insert("bin", Node::new(Kind::Dir, 0o755));
        t.insert("bin/ping", f);
        t.insert("bin/ping2", Node::new(Kind::HardLink("bin/ping".into()), 0o4755));
        t.insert("bin/sh", Node::new(Kind::Symlink("dash".into()), 0o777));
        t.insert("dev", Node::new(Kind::Dir, 0o755));
        t.insert("dev/null", Node::new(Kind::CharDevice { major: 1, minor: 3 }, 0o666));
        t.insert("x".repeat(150), Node::new(Kind::File(Content::bytes(vec![])), 0o644));
        t
    }

    #[test]
    fn same_tree_same_bytes_and_clamping_changes_times_only() {
        let a = write_tar(&sample(), Vec::new(), TarOptions::default()).unwrap();
        let b = write_tar(&sample(), Vec::new(), TarOptions::default()).unwrap();
        assert!(a == b);
        assert_eq!(a.len() % 512, 0);
        let clamped = write_tar(&sample(), Vec::new(), TarOptions { mtime_limit: Some(6000) }).unwrap();
        assert!(clamped != a);
        let mut archive = tar::Archive::new(clamped.as_slice());
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert!(e.header().mtime().unwrap() <= 6000);
        }
    }

    #[test]
    fn entries_carry_everything() {
        let bytes = write_tar(&sample(), Vec::new(), TarOptions::default()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            if path == "./bin/ping" {
                assert_eq!(e.header().mode().unwrap(), 0o4755);
                assert_eq!(e.header().uid().unwrap(), 1000);
                let exts: Vec<(String, Vec<u8>)> = e
                    .pax_extensions()
                    .unwrap()
                    .unwrap()
                    .map(|x| {
                        let x = x.unwrap();
                        (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                    })
                    .collect();
                assert!(exts.contains(&("gid".into(), b"3000000".to_vec())), "{exts:?}");
                assert!(exts.contains(&("SCHILY.xattr.security.capability".into(), vec![1, 0, 0, 2, 0])));
                assert!(exts.contains(&("mtime".into(), b"9000.000000250".to_vec())));
                let mut body = String::new();
                e.read_to_string(&mut body).unwrap();
                assert_eq!(body, "hello");
            }
            if path == "./bin/ping2" {
                assert_eq!(e.header().entry_type(), tar::EntryType::Link);
                assert_eq!(e.link_name().unwrap().unwrap().display().to_string(), "./bin/ping");
            }
            if path == "./dev/null" {
                assert_eq!(
                    (e.header().device_major().unwrap(), e.header().device_minor().unwrap()),
                    (Some(1), Some(3))
                );
            }
            seen.push(path);
        }
        assert_eq!(seen[0], "./");
        for name in ["./bin/ping", "./bin/ping2", "./dev/null"] {
            assert!(seen.iter().any(|s| s == name), "{name} not in {seen:?}");
        }
        assert!(seen.contains(&format!("./{}", "x".repeat(150))));
        assert_eq!(seen.len(), 8);
    }
}
