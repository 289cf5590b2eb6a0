//! A Debian binary package (`.deb`, deb(5)) read in place: the `ar` members `debian-binary`,
//! `control.tar[.gz|.xz|.zst]` and `data.tar[.gz|.xz|.zst|.lzma]`, decompressed as a stream.
//! Gives the control fields, every entry of the data archive with its metadata (streamed, for
//! a caller that builds something from them), named files with symlinks inside the package
//! followed, and the whole payload as a [`Tree`].
//!
//! Not for installing packages (no maintainer scripts run, no dpkg database): the server
//! image installs them with dpkg at first boot.

use super::ar::{self, ArError, Member};
use super::compression::Compression;
use super::debian::deb822;
use super::debian::packages::{BinaryPackage, FieldError};
use crate::read_at::{Cursor, FileSource, ReadAt, Slice};
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Linux's MAXSYMLINKS: more links than this in one lookup is a loop.
const MAX_SYMLINKS: usize = 40;
/// Files larger than this are not read into memory (no file of a boot loader or firmware
/// package comes near it; a damaged header can claim anything).
const MAX_IN_MEMORY: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{file}: {message}")]
    Format { file: String, message: String },
    #[error("{file}: `{path}` is not in the package{}", via.as_ref().map(|v| format!(" (looking up {v})")).unwrap_or_default())]
    Missing { file: String, path: String, via: Option<String> },
    #[error("{file}: cannot read it: {source}")]
    Io { file: String, source: io::Error },
}

/// What a data-archive entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// The target as written (relative to the link's folder, or absolute from the package root).
    Symlink(PathBuf),
    /// Another path of the package, normalised like entry paths, that holds the content.
    HardLink(PathBuf),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One entry of the data archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataEntry {
    /// Relative to the package root, without `./` (`usr/lib/PXELINUX/pxelinux.0`); the root
    /// itself is the empty path.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    /// Content length (files only).
    pub size: u64,
}

/// A file taken out of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedFile {
    /// The path asked for.
    pub path: PathBuf,
    /// The path that holds the bytes, after following symlinks and hard links.
    pub resolved: PathBuf,
    pub mode: u32,
    pub bytes: Vec<u8>,
}

struct Part {
    member: Member,
    compression: Compression,
}

/// An opened `.deb`.
pub struct DebFile {
    source: Arc<dyn ReadAt>,
    label: String,
    control: Part,
    data: Part,
}

impl DebFile {
    /// Open a `.deb` file.
    pub fn open(path: &Path) -> Result<DebFile, DebError> {
        let label = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| DebError::Io { file: label.clone(), source })?;
        let source = FileSource::new(file).map_err(|source| DebError::Io { file: label.clone(), source })?;
        DebFile::from_source(Arc::new(source), &label)
    }

    /// Read a `.deb` from any byte source; `label` names it in messages.
    pub fn from_source(source: Arc<dyn ReadAt>, label: &str) -> Result<DebFile, DebError> {
        let fail = |message: String| DebError::Format { file: label.to_string(), message };
        let members = ar::members(source.as_ref()).map_err(|e| match e {
            ArError::Io(source) => DebError::Io { file: label.to_string(), source },
            other => fail(format!("{other}")),
        })?;
        let mut it = members.into_iter();
        let first = it.next().filter(|m| m.name == "debian-binary");
        let first =
            first.ok_or_else(|| fail("it is not a Debian package: its first member is not `debian-binary`".into()))?;
        let mut version = vec![0u8; first.size.min(64) as usize];
        source
            .read_exact_at(&mut version, first.offset)
            .map_err(|source| DebError::Io { file: label.into(), source })?;
        let version = String::from_utf8_lossy(&version);
        let major = version.trim_end().split('.').next().unwrap_or("");
        if major != "2" {
            return Err(fail(format!("package format `{}` is not 2.x (deb(5))", version.trim_end())));
        }
        // deb(5): control.tar then data.tar; members starting with `_` may sit before either and
        // are ignored, and anything after data.tar is ignored.
        let mut next_part = |stem: &str| -> Result<Part, DebError> {
            for m in it.by_ref() {
                if m.name.starts_with('_') {
                    continue;
                }
                return match Compression::from_name(&m.name, stem) {
                    Some(compression) => Ok(Part { member: m, compression }),
                    None if m.name.starts_with(stem) => Err(fail(format!(
                        "member `{}` is compressed in a way Bramble does not read (gz, xz, zst, lzma or none)",
                        m.name
                    ))),
                    None => Err(fail(format!("member `{}` where `{stem}` was expected", m.name))),
                };
            }
            Err(fail(format!("it has no `{stem}` member")))
        };
        let control = next_part("control.tar")?;
        let data = next_part("data.tar")?;
        Ok(DebFile { source, label: label.to_string(), control, data })
    }

    fn io(&self, source: io::Error) -> DebError {
        DebError::Io { file: self.label.clone(), source }
    }

    fn format(&self, message: impl Into<String>) -> DebError {
        DebError::Format { file: self.label.clone(), message: message.into() }
    }

    /// Visit every entry of one tar member with a reader of its content.
    fn walk(
        &self,
        part: &Part,
        visit: &mut dyn FnMut(&DataEntry, &mut dyn Read) -> Result<(), DebError>,
    ) -> Result<(), DebError> {
        let window = Slice::new(self.source.clone(), part.member.offset, part.member.size).map_err(|e| self.io(e))?;
        let stream = BufReader::with_capacity(1 << 16, Cursor::new(Arc::new(window)));
        let decoded = part.compression.decoder(stream).map_err(|e| self.io(e))?;
        let mut archive = tar::Archive::new(decoded);
        let name = &part.member.name;
        let damaged = |e: io::Error| self.format(format!("{name} is damaged: {e}"));
        for entry in archive.entries().map_err(damaged)? {
            let mut entry = entry.map_err(damaged)?;
            let meta = data_entry(&mut entry).map_err(|e| self.format(format!("{name}: {e}")))?;
            visit(&meta, &mut entry)?;
        }
        Ok(())
    }

    /// The bytes of a file of the control archive (`control`, `md5sums`, `postinst`, …).
    pub fn control_file(&self, name: &str) -> Result<Option<Vec<u8>>, DebError> {
        let mut found = None;
        self.walk(&self.control, &mut |entry, content| {
            if entry.path == Path::new(name) && entry.kind == EntryKind::File {
                found = Some(read_content(entry, content).map_err(|e| self.io(e))?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The package's control fields.
    pub fn control(&self) -> Result<BinaryPackage, DebError> {
        let text =
            self.control_file("control")?.ok_or_else(|| self.format("its control archive has no `control` file"))?;
        let paragraphs = deb822::parse(&text).map_err(|e| self.format(format!("its control file: {e}")))?;
        let [p] = <[_; 1]>::try_from(paragraphs)
            .map_err(|ps| self.format(format!("its control file holds {} paragraphs, not one", ps.len())))?;
        BinaryPackage::from_paragraph(&p).map_err(|e: FieldError| self.format(format!("its control file: {e}")))
    }

    /// Visit every entry of the payload in archive order, with a reader of each file's content.
    pub fn for_each_entry(
        &self,
        mut visit: impl FnMut(&DataEntry, &mut dyn Read) -> Result<(), DebError>,
    ) -> Result<(), DebError> {
        self.walk(&self.data, &mut visit)
    }

    /// Every entry of the payload, without contents.
    pub fn entries(&self) -> Result<Vec<DataEntry>, DebError> {
        let mut out = Vec::new();
        self.for_each_entry(|e, _| {
            out.push(e.clone());
            Ok(())
        })?;
        Ok(out)
    }

    /// The named files (paths from the package root, with or without a leading `/`), in the
    /// order asked, following symlinks and hard links inside the package. A path that is
    /// missing, a folder, or a link leading out of the package is an error naming it.
    pub fn extract(&self, paths: &[&str]) -> Result<Vec<ExtractedFile>, DebError> {
        let entries: HashMap<PathBuf, DataEntry> = self.entries()?.into_iter().map(|e| (e.path.clone(), e)).collect();
        let mut resolved = Vec::new();
        for &path in paths {
            let target = resolve(&entries, Path::new(path)).map_err(|problem| match problem {
                Unresolved::Missing(at) => DebError::Missing {
                    file: self.label.clone(),
                    path: path.to_string(),
                    via: (at != normalise_request(path)).then(|| at.display().to_string()),
                },
                Unresolved::Other(message) => self.format(format!("`{path}`: {message}")),
            })?;
            resolved.push((PathBuf::from(path), target));
        }
        let wanted: BTreeSet<&PathBuf> = resolved.iter().map(|(_, t)| t).collect();
        let mut contents: BTreeMap<PathBuf, (u32, Vec<u8>)> = BTreeMap::new();
        self.for_each_entry(|e, content| {
            if e.kind == EntryKind::File && wanted.contains(&e.path) {
                contents.insert(e.path.clone(), (e.mode, read_content(e, content).map_err(|err| self.io(err))?));
            }
            Ok(())
        })?;
        resolved
            .into_iter()
            .map(|(path, target)| {
                let (mode, bytes) = contents
                    .get(&target)
                    .cloned()
                    .ok_or_else(|| self.format(format!("`{}` vanished", target.display())))?;
                Ok(ExtractedFile { path, resolved: target, mode, bytes })
            })
            .collect()
    }

    /// The payload as a tree, file contents in memory. Folders the archive leaves out are added
    /// (mode 0755, root's); of a set of hard links the first in tree order carries the content,
    /// as the tree model wants.
    pub fn tree(&self) -> Result<Tree, DebError> {
        let mut tree = Tree::new();
        let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
        self.for_each_entry(|e, content| {
            let mut parent = e.path.parent();
            let mut missing = Vec::new();
            while let Some(p) = parent {
                if tree.get(p).is_some() {
                    break;
                }
                missing.push(p.to_path_buf());
                parent = p.parent();
            }
            for p in missing.into_iter().rev() {
                let mut dir = Node::new(Kind::Dir, 0o755);
                dir.mtime = e.mtime;
                tree.insert(p, dir);
            }
            let kind = match &e.kind {
                EntryKind::File => Kind::File(Content::bytes(read_content(e, content).map_err(|err| self.io(err))?)),
                EntryKind::Dir => Kind::Dir,
                EntryKind::Symlink(t) => Kind::Symlink(t.clone()),
                EntryKind::HardLink(t) => {
                    links.push((e.path.clone(), t.clone()));
                    Kind::HardLink(t.clone())
                }
                EntryKind::CharDevice { major, minor } => Kind::CharDevice { major: *major, minor: *minor },
                EntryKind::BlockDevice { major, minor } => Kind::BlockDevice { major: *major, minor: *minor },
                EntryKind::Fifo => Kind::Fifo,
            };
            let mut node = Node::new(kind, e.mode);
            (node.uid, node.gid, node.mtime) = (e.uid, e.gid, e.mtime);
            tree.insert(e.path.clone(), node);
            Ok(())
        })?;
        if tree.get(Path::new("")).is_none() {
            tree.insert("", Node::new(Kind::Dir, 0o755));
        }
        // Group the links by the path holding the content, then give it to the first in order.
        let mut groups: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for (link, target) in links {
            if matches!(tree.get(&link).map(|n| &n.kind), Some(Kind::HardLink(t)) if *t == target) {
                groups.entry(target).or_default().push(link);
            }
        }
        for (target, mut members) in groups {
            let Some(holder) = tree.get(&target).filter(|n| matches!(n.kind, Kind::File(_))).cloned() else {
                return Err(
                    self.format(format!("hard link to `{}`, which is not a file of the package", target.display()))
                );
            };
            members.push(target);
            members.sort();
            let first = members[0].clone();
            for m in &members {
                if let Some(node) = tree.get_mut(m) {
                    node.kind = if *m == first { holder.kind.clone() } else { Kind::HardLink(first.clone()) };
                }
            }
        }
        Ok(tree)
    }
}

/// Read one file's content, refusing what cannot sensibly be held in memory.
fn read_content(entry: &DataEntry, content: &mut dyn Read) -> io::Result<Vec<u8>> {
    if entry.size > MAX_IN_MEMORY {
        return Err(io::Error::other(format!("`{}` is {} bytes, too big to read", entry.path.display(), entry.size)));
    }
    let mut bytes = Vec::with_capacity(entry.size.min(1 << 20) as usize);
    content.take(entry.size).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `./usr/bin/x`, `/usr/bin/x/` and `usr/bin/x` all name `usr/bin/x`; `..` is refused.
fn normalise(raw: &[u8]) -> Result<PathBuf, String> {
    let path = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("entry `{}` leads out of the package", String::from_utf8_lossy(raw)));
            }
        }
    }
    Ok(out)
}

fn normalise_request(path: &str) -> PathBuf {
    Path::new(path).components().filter(|c| matches!(c, Component::Normal(_))).collect()
}

fn data_entry<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<DataEntry, String> {
    let path = normalise(&entry.path_bytes())?;
    let header = entry.header();
    let bad = |what: &str, e: io::Error| format!("entry `{}`: its {what} is damaged ({e})", path.display());
    let mode = header.mode().map_err(|e| bad("mode", e))? & 0o7777;
    let uid = header.uid().map_err(|e| bad("owner", e))?;
    let gid = header.gid().map_err(|e| bad("group", e))?;
    let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
        (Ok(u), Ok(g)) => (u, g),
        _ => return Err(format!("entry `{}`: owner {uid}:{gid} is out of range", path.display())),
    };
    let secs = header.mtime().map_err(|e| bad("time", e))?;
    let mut mtime = Timestamp::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    let size = header.size().map_err(|e| bad("size", e))?;
    let entry_type = header.entry_type();
    let link = entry.link_name_bytes().map(|l| l.into_owned());
    let device = |entry: &tar::Entry<'_, R>| -> Result<(u32, u32), String> {
        let h = entry.header();
        let major = h.device_major().map_err(|e| bad("device number", e))?.unwrap_or(0);
        let minor = h.device_minor().map_err(|e| bad("device number", e))?.unwrap_or(0);
        Ok((major, minor))
    };
    use tar::EntryType as T;
    let kind = match entry_type {
        T::Regular | T::Continuous | T::GNUSparse => EntryKind::File,
        T::Directory => EntryKind::Dir,
        T::Symlink => EntryKind::Symlink(PathBuf::from(OsString::from_vec(
            link.ok_or_else(|| format!("symlink `{}` has no target", path.display()))?,
        ))),
        T::Link => EntryKind::HardLink(normalise(
            &link.ok_or_else(|| format!("hard link `{}` has no target", path.display()))?,
        )?),
        T::Char => {
            let (major, minor) = device(entry)?;
            EntryKind::CharDevice { major, minor }
        }
        T::Block => {
            let (major, minor) = device(entry)?;
            EntryKind::BlockDevice { major, minor }
        }
        T::Fifo => EntryKind::Fifo,
        other => {
            return Err(format!("entry `{}` has tar type {:?}, which a package cannot hold", path.display(), other));
        }
    };
    // A pax `mtime` keeps the sub-second part.
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            if ext.key() == Ok("mtime")
                && let Ok(value) = ext.value()
                && let Some(t) = parse_pax_time(value)
            {
                mtime = t;
            }
        }
    }
    let size = if kind == EntryKind::File { size } else { 0 };
    Ok(DataEntry { path, kind, mode, uid, gid, mtime, size })
}

/// `1700000000.123456789` as pax writes times.
fn parse_pax_time(value: &str) -> Option<Timestamp> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    Some(Timestamp { secs, nanos })
}

enum Unresolved {
    /// The path (after links so far) that does not exist.
    Missing(PathBuf),
    Other(String),
}

/// Follow `path` through the package's symlinks and hard links to the file holding its bytes.
fn resolve(entries: &HashMap<PathBuf, DataEntry>, path: &Path) -> Result<PathBuf, Unresolved> {
    let mut queue: VecDeque<PathBuf> = VecDeque::new();
    let push_front = |queue: &mut VecDeque<PathBuf>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => queue.push_front(PathBuf::from(n)),
                Component::ParentDir => queue.push_front(PathBuf::from("..")),
                _ => {}
            }
        }
    };
    push_front(&mut queue, path);
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        if part == Path::new("..") {
            at.pop();
            continue;
        }
        at.push(&part);
        let Some(entry) = entries.get(&at) else { return Err(Unresolved::Missing(at)) };
        match &entry.kind {
            EntryKind::Symlink(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(Unresolved::Other("too many levels of symbolic links".into()));
                }
                at.pop();
                if target.is_absolute() {
                    at = PathBuf::new();
                }
                push_front(&mut queue, target);
            }
            EntryKind::HardLink(target) => at = target.clone(),
            EntryKind::Dir => {}
            EntryKind::File if queue.is_empty() => {}
            EntryKind::File => return Err(Unresolved::Other(format!("`{}` is a file, not a folder", at.display()))),
            _ => return Err(Unresolved::Other(format!("`{}` is a device or fifo", at.display()))),
        }
    }
    match entries.get(&at).map(|e| &e.kind) {
        Some(EntryKind::File) => Ok(at),
        Some(EntryKind::Dir) => Err(Unresolved::Other("it is a folder".into())),
        _ => Err(Unresolved::Missing(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar with a root, a folder, a file, an executable, a hard link, symlinks (relative,
    /// absolute, through a symlinked folder, dangling, looping) and a device.
    fn data_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, mode: u32, link: Option<&str>, body: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(if path.ends_with("games") { 60 } else { 0 });
            h.set_mtime(1_700_000_000);
            h.set_size(body.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            if kind == tar::EntryType::Char {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
            }
            b.append_data(&mut h, path, body).unwrap();
        };
        use tar::EntryType as T;
        add("./", T::Directory, 0o755, None, b"");
        add("./usr/", T::Directory, 0o755, None, b"");
        add("./usr/lib/", T::Directory, 0o755, None, b"");
        add("./usr/lib/ipxe/", T::Directory, 0o755, None, b"");
        add("./usr/lib/ipxe/ipxe.efi", T::Regular, 0o644, None, b"EFI image");
        add("./usr/lib/ipxe/run", T::Regular, 0o4755, None, b"#!/bin/sh\n");
        add("./usr/lib/ipxe/zz-hard", T::Link, 0o644, Some("./usr/lib/ipxe/ipxe.efi"), b"");
        add("./usr/lib/ipxe/aa-hard", T::Link, 0o644, Some("./usr/lib/ipxe/ipxe.efi"), b"");
        add("./usr/lib/ipxe/rel", T::Symlink, 0o777, Some("ipxe.efi"), b"");
        add("./usr/lib/alias", T::Symlink, 0o777, Some("ipxe"), b"");
        add("./boot/", T::Directory, 0o755, None, b"");
        add("./boot/ipxe.efi", T::Symlink, 0o777, Some("/usr/lib/alias/rel"), b"");
        add("./boot/up", T::Symlink, 0o777, Some("../usr/lib/ipxe/run"), b"");
        add("./boot/dangling", T::Symlink, 0o777, Some("/usr/lib/grub/none.efi"), b"");
        add("./boot/loop", T::Symlink, 0o777, Some("loop"), b"");
        add("./usr/games", T::Directory, 0o2775, None, b"");
        add("./dev-null", T::Char, 0o666, None, b"");
        b.into_inner().unwrap()
    }

    fn control_tar(control: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(control.len() as u64);
        b.append_data(&mut h, "./control", control.as_bytes()).unwrap();
        b.into_inner().unwrap()
    }

    const CONTROL: &str = "Package: ipxe\nVersion: 1.21.1+git-20220113.fbbdc3926-0.1\nArchitecture: all\nMulti-Arch: foreign\nDepends: a (>= 1)\n";

    fn deb(compression: Compression) -> Vec<u8> {
        let data = data_tar();
        let (name, packed) = match compression {
            Compression::None => ("data.tar", data),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&data).unwrap();
                ("data.tar.gz", e.finish().unwrap())
            }
            Compression::Xz | Compression::Lzma => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(&data).unwrap();
                ("data.tar.xz", e.finish().unwrap())
            }
            Compression::Zstd => ("data.tar.zst", zstd::encode_all(&data[..], 3).unwrap()),
        };
        ar::build(&[
            ("debian-binary", b"2.0\n"),
            ("_extra", b"ignored"),
            ("control.tar", &control_tar(CONTROL)),
            (name, &packed),
            ("trailing", b"ignored too"),
        ])
    }

    fn open(bytes: Vec<u8>) -> Result<DebFile, DebError> {
        DebFile::from_source(Arc::new(bytes), "test.deb")
    }

    #[test]
    fn control_fields_and_entries_for_every_compression() {
        for c in [Compression::None, Compression::Gzip, Compression::Xz, Compression::Zstd] {
            let d = open(deb(c)).unwrap();
            let control = d.control().unwrap();
            assert_eq!((control.name.as_str(), control.architecture.as_str()), ("ipxe", "all"));
            assert_eq!(control.depends.len(), 1);
            let entries = d.entries().unwrap();
            assert_eq!(entries.len(), 17, "{c:?}");
            assert_eq!(entries[0].path, Path::new(""));
            let run = entries.iter().find(|e| e.path == Path::new("usr/lib/ipxe/run")).unwrap();
            assert_eq!((run.mode, run.size, run.mtime.secs), (0o4755, 10, 1_700_000_000));
            let games = entries.iter().find(|e| e.path == Path::new("usr/games")).unwrap();
            assert_eq!((games.kind.clone(), games.mode, games.gid), (EntryKind::Dir, 0o2775, 60));
            let hard = entries.iter().find(|e| e.path == Path::new("usr/lib/ipxe/zz-hard")).unwrap();
            assert_eq!(hard.kind, EntryKind::HardLink("usr/lib/ipxe/ipxe.efi".into()));
            let dev = entries.iter().find(|e| e.path == Path::new("dev-null")).unwrap();
            assert_eq!(dev.kind, EntryKind::CharDevice { major: 1, minor: 3 });
        }
    }

    #[test]
    fn extraction_follows_links_inside_the_package() {
        let d = open(deb(Compression::Xz)).unwrap();
        let got = d.extract(&["/boot/ipxe.efi", "usr/lib/ipxe/aa-hard", "boot/up", "./usr/lib/ipxe/ipxe.efi"]).unwrap();
        assert_eq!(got[0].resolved, Path::new("usr/lib/ipxe/ipxe.efi"));
        assert_eq!(got[0].bytes, b"EFI image");
        assert_eq!(got[1].bytes, b"EFI image");
        assert_eq!((got[2].resolved.to_str().unwrap(), got[2].mode), ("usr/lib/ipxe/run", 0o4755));
        assert_eq!(got[3].path, Path::new("./usr/lib/ipxe/ipxe.efi"));
        let err = d.extract(&["boot/dangling"]).unwrap_err().to_string();
        assert_eq!(err, "test.deb: `boot/dangling` is not in the package (looking up usr/lib/grub)");
        let err = d.extract(&["usr/lib/nothing"]).unwrap_err().to_string();
        assert_eq!(err, "test.deb: `usr/lib/nothing` is not in the package");
        assert!(d.extract(&["boot/loop"]).unwrap_err().to_string().contains("too many levels"));
        assert!(d.extract(&["usr/lib"]).unwrap_err().to_string().contains("it is a folder"));
        assert!(d.extract(&["usr/lib/ipxe/run/x"]).unwrap_err().to_string().contains("is a file, not a folder"));
        assert!(d.extract(&["dev-null"]).unwrap_err().to_string().contains("device"));
    }

    #[test]
    fn the_tree_has_everything_and_hard_links_in_tree_order() {
        let tree = open(deb(Compression::Gzip)).unwrap().tree().unwrap();
        assert_eq!(tree.len(), 17);
        let aa = tree.get(Path::new("usr/lib/ipxe/aa-hard")).unwrap();
        let Kind::File(content) = &aa.kind else { panic!("{aa:?}") };
        assert_eq!(content.read_all().unwrap(), b"EFI image");
        for other in ["usr/lib/ipxe/ipxe.efi", "usr/lib/ipxe/zz-hard"] {
            let n = tree.get(Path::new(other)).unwrap();
            assert!(matches!(&n.kind, Kind::HardLink(t) if t == Path::new("usr/lib/ipxe/aa-hard")), "{other}: {n:?}");
        }
        let link = tree.get(Path::new("boot/ipxe.efi")).unwrap();
        assert!(matches!(&link.kind, Kind::Symlink(t) if t == Path::new("/usr/lib/alias/rel")));
        assert_eq!(tree.get(Path::new("usr/lib/ipxe/run")).unwrap().mode, 0o4755);
    }

    #[test]
    fn missing_parent_folders_are_added() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(1);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(5);
        b.append_data(&mut h, "usr/share/doc/x", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let bytes =
            ar::build(&[("debian-binary", b"2.0\n"), ("control.tar", &control_tar(CONTROL)), ("data.tar", &data)]);
        let tree = open(bytes).unwrap().tree().unwrap();
        let order: Vec<String> = tree.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(order, ["", "usr", "usr/share", "usr/share/doc", "usr/share/doc/x"]);
        assert_eq!(tree.get(Path::new("usr/share")).unwrap().mtime.secs, 5);
    }

    #[test]
    fn damaged_packages_say_what_is_wrong() {
        let msg = |bytes: Vec<u8>| open(bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg(b"not a deb".to_vec()).contains("not an ar archive"));
        assert!(msg(ar::build(&[("control.tar", b"")])).contains("first member is not `debian-binary`"));
        assert!(msg(ar::build(&[("debian-binary", b"3.0\n")])).contains("format `3.0` is not 2.x"));
        assert!(msg(ar::build(&[("debian-binary", b"2.0\n")])).contains("no `control.tar` member"));
        let bz = ar::build(&[("debian-binary", b"2.0\n"), ("control.tar", b""), ("data.tar.bz2", b"")]);
        assert!(msg(bz).contains("`data.tar.bz2` is compressed in a way Bramble does not read"));
        let odd = ar::build(&[("debian-binary", b"2.0\n"), ("other", b""), ("data.tar", b"")]);
        assert!(msg(odd).contains("member `other` where `control.tar` was expected"));
        // A damaged payload is found when read, with the member named.
        let mut bytes = deb(Compression::Xz);
        let data = ar::members(&bytes).unwrap().into_iter().find(|m| m.name == "data.tar.xz").unwrap();
        bytes[(data.offset + data.size / 2) as usize] ^= 0xff;
        let d = open(bytes).unwrap();
        let err = d.entries().unwrap_err().to_string();
        assert!(err.starts_with("test.deb: data.tar.xz is damaged") || err.contains("cannot read"), "{err}");
        // `..` in an entry is refused.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let bytes = ar::build(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control_tar(CONTROL)),
            ("data.tar", &b.into_inner().unwrap()),
        ]);
        assert!(open(bytes).unwrap().entries().unwrap_err().to_string().contains("leads out of the package"));
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("1700000000.5"), Some(Timestamp { secs: 1_700_000_000, nanos: 500_000_000 }));
        assert_eq!(parse_pax_time("12"), Some(Timestamp { secs: 12, nanos: 0 }));
        assert_eq!(parse_pax_time("-3.000000001"), Some(Timestamp { secs: -3, nanos: 1 }));
        assert_eq!(parse_pax_time("1.1234567890"), None);
        assert_eq!(parse_pax_time("x"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn damaged_packages_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
                let mut bytes = deb(Compression::Gzip);
                for (at, value) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                if let Ok(d) = open(bytes) {
                    let _ = d.control();
                    let _ = d.tree();
                    let _ = d.extract(&["boot/ipxe.efi"]);
                }
            }
        }
    }
}
