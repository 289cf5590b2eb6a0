//! A Raspberry Pi OS image as Bramble reads it: an `.img`, or an `.img.xz` read in place (the
//! xz block index gives random access, so no decompressed copy is written), its partition table,
//! and each partition's filesystem (FAT or ext4) as a [`Tree`] whose file contents refer back
//! into the image. Needs no root and no loop device.

use crate::disk::ext4::{Ext4, InodeKind};
use crate::disk::fat_reader;
use crate::disk::partition::{self, Filesystem, Partition, PartitionTable};
use crate::disk::xz::{XzOptions, XzReader};
use crate::fetch::progress::Progress;
use crate::read_at::{FileSource, ReadAt, Slice};
use crate::tree::{Content, ContentSource, Kind, Node, Piece, Pieces, Timestamp, Tree};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0];
/// Folders nested deeper than this mean a damaged filesystem, not a real root.
const MAX_DEPTH: usize = 256;

/// How the image is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    Raw,
    Xz { blocks: usize, largest_block: u64 },
}

pub struct OsImage {
    pub path: PathBuf,
    pub storage: Storage,
    /// The uncompressed disk image.
    pub disk: Arc<dyn ReadAt>,
    pub table: PartitionTable,
    /// The decoder, when `storage` is xz: it reads whole images faster than `disk` would.
    xz: Option<Arc<XzReader>>,
}

/// What a partition holds.
#[derive(Clone, Debug)]
pub struct Volume {
    pub partition: Partition,
    pub filesystem: Filesystem,
    pub label: Option<String>,
    /// UUID (ext4) or volume id `XXXX-XXXX` (FAT).
    pub id: Option<String>,
    pub size: Option<u64>,
    pub free: Option<u64>,
    /// Why the filesystem could not be read, if it could not.
    pub error: Option<String>,
}

fn uuid_string(u: [u8; 16]) -> String {
    let h = crate::digest::hex(&u);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

impl OsImage {
    pub fn open(path: &Path) -> Result<OsImage> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let raw: Arc<dyn ReadAt> = Arc::new(FileSource::new(file)?);
        let mut magic = [0u8; 6];
        let is_xz = raw.len() >= 6 && raw.read_exact_at(&mut magic, 0).is_ok() && magic == XZ_MAGIC;
        let (disk, storage, xz): (Arc<dyn ReadAt>, Storage, _) = if is_xz {
            let xz = XzReader::open(raw, XzOptions::default())
                .with_context(|| format!("{} is not a usable .xz", path.display()))?;
            let storage = Storage::Xz { blocks: xz.block_count(), largest_block: xz.largest_block() };
            let xz = Arc::new(xz);
            (xz.clone() as Arc<dyn ReadAt>, storage, Some(xz))
        } else {
            (raw, Storage::Raw, None)
        };
        let table = partition::read_table(&disk).with_context(|| format!("{} is not a disk image", path.display()))?;
        Ok(OsImage { path: path.to_path_buf(), storage, disk, table, xz })
    }

    /// The sha256 and length of the whole uncompressed image (what `xz -dc IMG | sha256sum`
    /// prints, and what Raspberry Pi's OS list calls `extract_sha256`). xz blocks are decoded
    /// in parallel and each block's own check is verified on the way.
    pub fn sha256(&self, progress: &mut Progress) -> Result<(String, u64)> {
        let mut sink = HashSink { hasher: Sha256::new(), progress, len: 0 };
        match &self.xz {
            Some(xz) => {
                xz.copy_to(&mut sink).with_context(|| format!("reading {}", self.path.display()))?;
            }
            None => {
                let mut buf = vec![0u8; 4 << 20];
                let mut at = 0;
                while at < self.disk.len() {
                    let n = buf.len().min((self.disk.len() - at) as usize);
                    self.disk
                        .read_exact_at(&mut buf[..n], at)
                        .with_context(|| format!("reading {}", self.path.display()))?;
                    sink.write_all(&buf[..n])?;
                    at += n as u64;
                }
            }
        }
        Ok((crate::digest::hex(&sink.hasher.finalize()), sink.len))
    }

    /// The bytes of one partition.
    pub fn source(&self, p: &Partition) -> Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(Slice::new(self.disk.clone(), p.start, p.len)?))
    }

    pub fn volumes(&self) -> Vec<Volume> {
        self.table.partitions.iter().map(|p| self.volume(p)).collect()
    }

    fn volume(&self, p: &Partition) -> Volume {
        let mut v = Volume {
            partition: p.clone(),
            filesystem: Filesystem::Unknown,
            label: None,
            id: None,
            size: None,
            free: None,
            error: None,
        };
        let src = match self.source(p) {
            Ok(s) => s,
            Err(e) => {
                v.error = Some(format!("{e:#}"));
                return v;
            }
        };
        v.filesystem = partition::probe(src.as_ref());
        match v.filesystem {
            Filesystem::Fat => match fat_reader::info(&src) {
                Ok(i) => {
                    v.label = Some(i.label).filter(|l| !l.trim().is_empty() && l.trim() != "NO NAME");
                    v.id = Some(format!("{:04X}-{:04X}", i.volume_id >> 16, i.volume_id & 0xffff));
                    v.size = Some(i.size_bytes);
                    v.free = Some(i.free_bytes);
                }
                Err(e) => v.error = Some(e.to_string()),
            },
            Filesystem::Ext4 => match Ext4::open(src) {
                Ok(fs) => {
                    v.label = Some(fs.label()).filter(|l| !l.is_empty());
                    v.id = Some(uuid_string(fs.uuid()));
                    v.size = Some(fs.size_bytes());
                    v.free = Some(fs.free_bytes());
                }
                Err(e) => v.error = Some(e.to_string()),
            },
            Filesystem::Unknown => {}
        }
        v
    }

    /// A partition by number (`2`) or filesystem label (`rootfs`).
    pub fn find(&self, spec: &str) -> Result<Volume> {
        let volumes = self.volumes();
        let found = match spec.parse::<u32>() {
            Ok(n) => volumes.into_iter().find(|v| v.partition.number == n),
            Err(_) => volumes.into_iter().find(|v| v.label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(spec))),
        };
        let known = self.volumes().iter().map(describe).collect::<Vec<_>>().join(", ");
        found.with_context(|| format!("{} has no partition `{spec}`; it has {known}", self.path.display()))
    }

    /// The filesystem of `volume` as a tree.
    pub fn tree(&self, volume: &Volume) -> Result<Tree> {
        let src = self.source(&volume.partition)?;
        let name = describe(volume);
        match volume.filesystem {
            Filesystem::Fat => fat_tree(src).with_context(|| format!("reading the FAT filesystem of {name}")),
            Filesystem::Ext4 => ext4_tree(src).with_context(|| format!("reading the ext4 filesystem of {name}")),
            Filesystem::Unknown => bail!("partition {name} holds no filesystem Bramble can read (FAT or ext4)"),
        }
    }
}

struct HashSink<'a> {
    hasher: Sha256,
    progress: &'a mut Progress,
    len: u64,
}

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.progress.advance(buf.len() as u64);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn describe(v: &Volume) -> String {
    match &v.label {
        Some(l) => format!("{} ({l})", v.partition.number),
        None => v.partition.number.to_string(),
    }
}

/// A FAT file's bytes, read when asked for (boot partitions hold small files).
struct FatFile {
    volume: Arc<dyn ReadAt>,
    path: PathBuf,
    len: u64,
}

impl ContentSource for FatFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        let bytes = fat_reader::read_file(&self.volume, &self.path)?;
        if bytes.len() as u64 != self.len {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: size changed", self.path.display())));
        }
        Ok(Box::new(io::Cursor::new(bytes)))
    }
}

/// FAT has no owners or Unix modes: everything is root's, folders 0755 and files 0644, as
/// Raspberry Pi OS mounts its boot partition.
fn fat_tree(src: Arc<dyn ReadAt>) -> Result<Tree> {
    let mut tree = Tree::new();
    tree.insert("", Node::new(Kind::Dir, 0o755));
    for e in fat_reader::walk(&src)? {
        let kind = if e.is_dir {
            Kind::Dir
        } else {
            Kind::File(Content::new(Arc::new(FatFile { volume: src.clone(), path: e.path.clone(), len: e.size })))
        };
        let mut node = Node::new(kind, if e.is_dir { 0o755 } else { 0o644 });
        node.mtime = Timestamp::from_secs(e.modified);
        tree.insert(e.path, node);
    }
    Ok(tree)
}

fn ext4_tree(src: Arc<dyn ReadAt>) -> Result<Tree> {
    let fs = Ext4::open(src.clone())?;
    // Walk first, then build in tree order: the first path of a hard-linked file in that order
    // carries the content, because archives and the folder writer create it before the links.
    let mut inodes = std::collections::BTreeMap::new();
    let root = fs.root()?;
    let mut stack = vec![(PathBuf::new(), root.clone(), 0usize)];
    let mut seen_dirs = std::collections::HashSet::new();
    inodes.insert(PathBuf::new(), root);
    while let Some((dir_path, dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH || !seen_dirs.insert(dir.ino) {
            bail!("{}: folders nest too deep or loop; the filesystem is damaged", dir_path.display());
        }
        for entry in fs.read_dir(&dir)? {
            let path = dir_path.join(OsString::from_vec(entry.name.clone()));
            let inode = fs.inode(entry.ino)?;
            if matches!(inode.kind, InodeKind::Dir) {
                stack.push((path.clone(), inode.clone(), depth + 1));
            }
            inodes.insert(path, inode);
        }
    }
    let mut tree = Tree::new();
    let mut first_path: HashMap<u32, PathBuf> = HashMap::new();
    for (path, inode) in inodes {
        if inode.links > 1 && !matches!(inode.kind, InodeKind::Dir) {
            if let Some(first) = first_path.get(&inode.ino) {
                let mut node = Node::new(Kind::HardLink(first.clone()), u32::from(inode.mode));
                node.uid = inode.uid;
                node.gid = inode.gid;
                node.mtime = Timestamp { secs: inode.mtime.secs, nanos: inode.mtime.nanos };
                tree.insert(path, node);
                continue;
            }
            first_path.insert(inode.ino, path.clone());
        }
        tree.insert(path, node_of(&fs, &src, &inode)?);
    }
    Ok(tree)
}

fn node_of(fs: &Ext4, src: &Arc<dyn ReadAt>, inode: &crate::disk::ext4::Inode) -> Result<Node> {
    let kind = match &inode.kind {
        InodeKind::Dir => Kind::Dir,
        InodeKind::File => {
            // Extents cover inline data too (they point into the inode record); uninitialised
            // ones read as zeros, like holes.
            let pieces = fs
                .extents(inode)?
                .iter()
                .filter(|e| !e.uninit)
                .map(|e| Piece { file_offset: e.logical, source_offset: e.physical, len: e.len })
                .collect();
            Kind::File(Content::new(Arc::new(Pieces { source: src.clone(), pieces, len: inode.size })))
        }
        InodeKind::Symlink { target } => Kind::Symlink(PathBuf::from(OsString::from_vec(target.clone()))),
        InodeKind::CharDevice { major, minor } => Kind::CharDevice { major: *major, minor: *minor },
        InodeKind::BlockDevice { major, minor } => Kind::BlockDevice { major: *major, minor: *minor },
        InodeKind::Fifo => Kind::Fifo,
        InodeKind::Socket => Kind::Socket,
    };
    let mut node = Node::new(kind, u32::from(inode.mode));
    node.uid = inode.uid;
    node.gid = inode.gid;
    node.mtime = Timestamp { secs: inode.mtime.secs, nanos: inode.mtime.nanos };
    // system.data holds inline file data, an ext4 internal, not an attribute of the file.
    node.xattrs = inode.xattrs.iter().filter(|(k, _)| k != "system.data").cloned().collect();
    Ok(node)
}
