//! The file-tree model every build step works on: paths in order, each with its type, mode,
//! owner, group, modification time, extended attributes, symlink or hard-link target, device
//! numbers, and file content by reference (bytes in memory, a host file, or ranges of an image),
//! so a 2 GiB root is described without being copied. Emitting a tree is `tar` (a reproducible
//! archive) or `dir` (a folder on disk).
//!
//! Knows nothing about disks, partitions or filesystems: readers build trees, emitters write them.

pub mod dir;
pub mod tar;
pub mod tar_reader;

use crate::read_at::ReadAt;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Seconds and nanoseconds since the Unix epoch (negative before 1970).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn from_secs(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    /// No later than `limit` (SOURCE_DATE_EPOCH clamping).
    pub fn clamp(self, limit: Option<i64>) -> Timestamp {
        match limit {
            Some(l) if self.secs >= l => Timestamp { secs: l, nanos: 0 },
            _ => self,
        }
    }
}

/// Where a file's bytes are.
pub trait ContentSource: Send + Sync {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A reader over exactly `len()` bytes.
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>>;
}

/// A file's content: cheap to clone, read when needed.
#[derive(Clone)]
pub struct Content(Arc<dyn ContentSource>);

impl Content {
    pub fn new(source: Arc<dyn ContentSource>) -> Content {
        Content(source)
    }

    pub fn bytes(bytes: impl Into<Arc<[u8]>>) -> Content {
        Content(Arc::new(Bytes(bytes.into())))
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        self.0.open()
    }

    /// Whether both are the very same bytes (one source, shared by cloned trees): equal
    /// content without reading it.
    pub fn same_source(&self, other: &Content) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// All of it, in memory (for small files: configs, scripts).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Content({} bytes)", self.len())
    }
}

struct Bytes(Arc<[u8]>);

impl ContentSource for Bytes {
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(&self.0[..]))
    }
}

/// One piece of a file stored in a byte source: `len` bytes at `source_offset` hold the file's
/// bytes from `file_offset`. Gaps between pieces read as zeros (holes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub file_offset: u64,
    pub source_offset: u64,
    pub len: u64,
}

/// A file made of pieces of a byte source (a file in a filesystem image).
pub struct Pieces {
    pub source: Arc<dyn ReadAt>,
    pub pieces: Vec<Piece>,
    pub len: u64,
}

impl ContentSource for Pieces {
    fn len(&self) -> u64 {
        self.len
    }
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(PiecesReader { pieces: self, pos: 0, next: 0 }))
    }
}

struct PiecesReader<'a> {
    pieces: &'a Pieces,
    pos: u64,
    /// Index of the first piece that may still cover `pos` (pieces are in file order).
    next: usize,
}

impl Read for PiecesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let total = self.pieces.len;
        if self.pos >= total || buf.is_empty() {
            return Ok(0);
        }
        let list = &self.pieces.pieces;
        while self.next < list.len() && list[self.next].file_offset + list[self.next].len <= self.pos {
            self.next += 1;
        }
        let want = (buf.len() as u64).min(total - self.pos);
        let n = match list.get(self.next) {
            Some(p) if p.file_offset <= self.pos => {
                let within = self.pos - p.file_offset;
                let n = want.min(p.len - within) as usize;
                self.pieces.source.read_exact_at(&mut buf[..n], p.source_offset + within)?;
                n
            }
            // A hole: zeros up to the next piece.
            Some(p) => {
                let n = want.min(p.file_offset - self.pos) as usize;
                buf[..n].fill(0);
                n
            }
            None => {
                buf[..want as usize].fill(0);
                want as usize
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// A file on the build machine.
pub struct HostFile {
    pub path: PathBuf,
    pub len: u64,
}

impl ContentSource for HostFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(std::fs::File::open(&self.path)?.take(self.len)))
    }
}

#[derive(Clone, Debug)]
pub enum Kind {
    File(Content),
    Dir,
    Symlink(PathBuf),
    /// Another path of the same file (the first, in tree order, carries the content).
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
    Socket,
}

/// One path's metadata.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits, with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    /// Extended attributes by full name (`security.capability`), raw values.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Node {
    pub fn new(kind: Kind, mode: u32) -> Node {
        Node { kind, mode: mode & 0o7777, uid: 0, gid: 0, mtime: Timestamp::default(), xattrs: BTreeMap::new() }
    }

    /// `ls -l`'s first column: type letter then permissions.
    pub fn mode_string(&self) -> String {
        let kind = match self.kind {
            Kind::File(_) | Kind::HardLink(_) => '-',
            Kind::Dir => 'd',
            Kind::Symlink(_) => 'l',
            Kind::CharDevice { .. } => 'c',
            Kind::BlockDevice { .. } => 'b',
            Kind::Fifo => 'p',
            Kind::Socket => 's',
        };
        let m = self.mode;
        let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
        let exec = |x: u32, special: u32, set: char, unset: char| match (m & x != 0, m & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
        [
            kind,
            bit(0o400, 'r'),
            bit(0o200, 'w'),
            exec(0o100, 0o4000, 's', 'S'),
            bit(0o040, 'r'),
            bit(0o020, 'w'),
            exec(0o010, 0o2000, 's', 'S'),
            bit(0o004, 'r'),
            bit(0o002, 'w'),
            exec(0o001, 0o1000, 't', 'T'),
        ]
        .iter()
        .collect()
    }
}

/// Paths relative to the tree's root (`""` is the root itself), in the order a sorted
/// depth-first walk visits them, which is also the order archives list them.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Add or replace `path`. Missing parent folders are an error for the emitters, so callers
    /// add them first (readers walk top down).
    pub fn insert(&mut self, path: impl Into<PathBuf>, node: Node) {
        self.nodes.insert(path.into(), node);
    }

    pub fn get(&self, path: &Path) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn get_mut(&mut self, path: &Path) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }

    /// Remove `path` and, if it is a folder, everything under it; returns what `path` was.
    pub fn remove(&mut self, path: &Path) -> Option<Node> {
        let removed = self.nodes.remove(path);
        if matches!(removed.as_ref().map(|n| &n.kind), Some(Kind::Dir)) {
            let under: Vec<PathBuf> = self
                .nodes
                .range(path.to_path_buf()..)
                .map(|(p, _)| p)
                .take_while(|p| p.starts_with(path))
                .cloned()
                .collect();
            for p in under {
                self.nodes.remove(&p);
            }
        }
        removed
    }

    /// Add the folders leading to `path` that are missing, each made like `template` (owner,
    /// mode, time); existing ones are left as they are.
    pub fn ensure_parents(&mut self, path: &Path, template: &Node) {
        let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
        dirs.reverse();
        for dir in dirs {
            if !self.nodes.contains_key(dir) {
                let mut node = template.clone();
                node.kind = Kind::Dir;
                self.nodes.insert(dir.to_path_buf(), node);
            }
        }
    }

    /// Insert `path`, adding missing parent folders like `dir_template`.
    pub fn insert_with_parents(&mut self, path: impl Into<PathBuf>, node: Node, dir_template: &Node) {
        let path = path.into();
        self.ensure_parents(&path, dir_template);
        self.nodes.insert(path, node);
    }

    /// Paths under `dir` (not `dir` itself), in order.
    pub fn paths_under<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        self.nodes
            .range(dir.to_path_buf()..)
            .map(|(p, _)| p)
            .skip_while(move |p| p.as_path() == dir)
            .take_while(move |p| p.starts_with(dir))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PathBuf, &Node)> {
        self.nodes.iter()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The entries directly inside `dir`, in order.
    pub fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = (&'a PathBuf, &'a Node)> + 'a {
        self.nodes.iter().filter(move |(p, _)| p.parent() == Some(dir) && p.as_os_str() != dir.as_os_str())
    }

    /// The subtree under `dir`, re-rooted there.
    pub fn subtree(&self, dir: &Path) -> Tree {
        let mut out = Tree::new();
        for (p, n) in &self.nodes {
            if let Ok(rest) = p.strip_prefix(dir) {
                let mut node = n.clone();
                // Hard links point at tree paths; re-root them too (links leaving the subtree
                // become plain files would be wrong, so keep them only when their target is inside).
                if let Kind::HardLink(t) = &n.kind {
                    match t.strip_prefix(dir) {
                        Ok(inside) => node.kind = Kind::HardLink(inside.to_path_buf()),
                        Err(_) => continue,
                    }
                }
                out.insert(rest.to_path_buf(), node);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_depth_first_by_component() {
        let mut t = Tree::new();
        for p in ["a-b", "a/b", "a", "", "a/b/c", "b"] {
            t.insert(p, Node::new(Kind::Dir, 0o755));
        }
        let order: Vec<String> = t.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(order, ["", "a", "a/b", "a/b/c", "a-b", "b"]);
        let kids: Vec<String> = t.children(Path::new("a")).map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(kids, ["a/b"]);
        let root_kids: Vec<String> = t.children(Path::new("")).map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(root_kids, ["a", "a-b", "b"]);
    }

    #[test]
    fn pieces_read_with_holes() {
        let source: Arc<dyn ReadAt> = Arc::new((0u8..=99).collect::<Vec<u8>>());
        let pieces = Pieces {
            source,
            pieces: vec![
                Piece { file_offset: 2, source_offset: 10, len: 3 },
                Piece { file_offset: 8, source_offset: 50, len: 2 },
            ],
            len: 12,
        };
        let content = Content::new(Arc::new(pieces));
        assert_eq!(content.read_all().unwrap(), [0, 0, 10, 11, 12, 0, 0, 0, 50, 51, 0, 0]);
    }

    #[test]
    fn mode_strings_match_ls() {
        let mut n = Node::new(Kind::File(Content::bytes(vec![])), 0o4755);
        assert_eq!(n.mode_string(), "-rwsr-xr-x");
        n.mode = 0o2644;
        assert_eq!(n.mode_string(), "-rw-r-Sr--");
        let d = Node::new(Kind::Dir, 0o1777);
        assert_eq!(d.mode_string(), "drwxrwxrwt");
        let c = Node::new(Kind::CharDevice { major: 1, minor: 3 }, 0o666);
        assert_eq!(c.mode_string(), "crw-rw-rw-");
    }

    #[test]
    fn remove_takes_the_subtree_and_parents_are_made() {
        let mut t = Tree::new();
        let dir = Node::new(Kind::Dir, 0o755);
        for p in ["", "a", "a/b", "a/b/c", "a-b"] {
            t.insert(p, dir.clone());
        }
        t.remove(Path::new("a"));
        let left: Vec<String> = t.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(left, ["", "a-b"]);
        t.insert_with_parents("x/y/z", Node::new(Kind::File(Content::bytes(vec![1])), 0o644), &dir);
        let all: Vec<String> = t.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(all, ["", "a-b", "x", "x/y", "x/y/z"]);
        let under: Vec<String> = t.paths_under(Path::new("x")).map(|p| p.display().to_string()).collect();
        assert_eq!(under, ["x/y", "x/y/z"]);
    }

    #[test]
    fn clamping() {
        let t = Timestamp { secs: 2000, nanos: 5 };
        assert_eq!(t.clamp(Some(1000)), Timestamp { secs: 1000, nanos: 0 });
        assert_eq!(t.clamp(Some(3000)), t);
        assert_eq!(t.clamp(None), t);
    }
}
