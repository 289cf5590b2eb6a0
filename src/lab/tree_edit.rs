//! Small edits to a root tree in the words a conversion uses (`write("etc/fstab", …)`): paths as
//! text relative to the root, missing folders made as root-owned 0755, every new entry stamped
//! with the build's time, and symlinks followed inside the tree when reading.

use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Result, anyhow, bail};
use std::path::{Component, Path, PathBuf};

/// Follow symlinks inside `tree` to the entry `path` names (absolute targets are from the tree's
/// root). `None` if it is missing, leaves the tree or loops.
pub fn resolve(tree: &Tree, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<Component> = path.components().rev().collect();
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c {
            Component::RootDir => at.clear(),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => {
                let next = at.join(name);
                match &tree.get(&next)?.kind {
                    Kind::Symlink(target) => {
                        hops += 1;
                        if hops > 40 {
                            return None;
                        }
                        let target: Vec<Component> = target.components().collect();
                        for t in target.into_iter().rev() {
                            pending.push(t);
                        }
                    }
                    _ => at = next,
                }
            }
        }
    }
    Some(at)
}

/// A file's bytes, following symlinks.
pub fn read_bytes(tree: &Tree, path: &Path) -> Result<Vec<u8>> {
    let real = resolve(tree, path).ok_or_else(|| anyhow!("/{} is not in the root", path.display()))?;
    match tree.get(&real).map(|n| &n.kind) {
        Some(Kind::File(c)) => Ok(c.read_all()?),
        Some(Kind::HardLink(first)) => match tree.get(first).map(|n| &n.kind) {
            Some(Kind::File(c)) => Ok(c.read_all()?),
            _ => bail!("/{}: broken hard link", path.display()),
        },
        _ => bail!("/{} is not a file", path.display()),
    }
}

pub fn read_text(tree: &Tree, path: &Path) -> Result<String> {
    String::from_utf8(read_bytes(tree, path)?).map_err(|_| anyhow!("/{} is not text", path.display()))
}

/// Edits to one tree.
pub struct Editor<'a> {
    tree: &'a mut Tree,
    dir: Node,
    mtime: Timestamp,
}

impl<'a> Editor<'a> {
    pub fn new(tree: &'a mut Tree, mtime: Timestamp) -> Editor<'a> {
        let mut dir = Node::new(Kind::Dir, 0o755);
        dir.mtime = mtime;
        Editor { tree, dir, mtime }
    }

    pub fn finish(self) -> &'a mut Tree {
        self.tree
    }

    pub fn exists(&self, path: &str) -> bool {
        self.tree.get(Path::new(path)).is_some()
    }

    pub fn text(&self, path: &str) -> Result<String> {
        read_text(self.tree, Path::new(path))
    }

    pub fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        read_bytes(self.tree, Path::new(path))
    }

    pub fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.tree.get_mut(Path::new(path))
    }

    fn stamp(&self, kind: Kind, mode: u32) -> Node {
        let mut n = Node::new(kind, mode);
        n.mtime = self.mtime;
        n
    }

    /// A folder (and its parents); an existing folder keeps its metadata.
    pub fn mkdir(&mut self, path: &str, mode: u32) {
        let p = Path::new(path);
        if matches!(self.tree.get(p).map(|n| &n.kind), Some(Kind::Dir)) {
            return;
        }
        let node = self.stamp(Kind::Dir, mode);
        self.tree.remove(p);
        self.tree.insert_with_parents(p, node, &self.dir);
    }

    /// A file, replacing whatever was there; an existing file keeps its owner.
    pub fn write(&mut self, path: &str, bytes: &[u8], mode: u32) {
        let p = Path::new(path);
        let (uid, gid) = match self.tree.get(p) {
            Some(n) if matches!(n.kind, Kind::File(_)) => (n.uid, n.gid),
            _ => (0, 0),
        };
        let mut node = self.stamp(Kind::File(Content::bytes(bytes.to_vec())), mode);
        node.uid = uid;
        node.gid = gid;
        self.tree.remove(p);
        self.tree.insert_with_parents(p, node, &self.dir);
    }

    /// `node` at `path`, replacing what was there (parents made).
    pub fn insert_node(&mut self, path: &str, node: Node) {
        let p = Path::new(path);
        self.tree.remove(p);
        self.tree.insert_with_parents(p, node, &self.dir);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let node = self.stamp(Kind::Symlink(PathBuf::from(target)), 0o777);
        let p = Path::new(path);
        self.tree.remove(p);
        self.tree.insert_with_parents(p, node, &self.dir);
    }

    pub fn remove(&mut self, path: &str) -> bool {
        self.tree.remove(Path::new(path)).is_some()
    }

    /// Remove the entries directly inside `dir` whose names match; returns how many.
    pub fn remove_matching(&mut self, dir: &str, matches: impl Fn(&str) -> bool) -> usize {
        let names: Vec<PathBuf> = self
            .tree
            .children(Path::new(dir))
            .filter(|(p, _)| p.file_name().and_then(|n| n.to_str()).is_some_and(&matches))
            .map(|(p, _)| p.clone())
            .collect();
        for p in &names {
            self.tree.remove(p);
        }
        names.len()
    }

    pub fn paths_under(&self, dir: &str) -> Vec<PathBuf> {
        self.tree.paths_under(Path::new(dir)).cloned().collect()
    }

    /// `to` becomes a copy of the entry at `from` (content shared, metadata copied).
    pub fn copy(&mut self, from: &Path, to: &Path) {
        if let Some(node) = self.tree.get(from).cloned() {
            self.tree.remove(to);
            self.tree.insert_with_parents(to, node, &self.dir);
        }
    }

    pub fn chown_tree(&mut self, dir: &str, uid: u32, gid: u32) {
        let mut paths = self.paths_under(dir);
        paths.push(PathBuf::from(dir));
        for p in paths {
            if let Some(n) = self.tree.get_mut(&p) {
                n.uid = uid;
                n.gid = gid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let mut t = Tree::new();
        let mut e = Editor::new(&mut t, Timestamp::from_secs(1));
        e.write("usr/lib/os-release", b"ID=debian\n", 0o644);
        e.symlink("etc/os-release", "../usr/lib/os-release");
        e.symlink("lib", "usr/lib");
        e.symlink("loop", "loop");
        assert_eq!(e.text("etc/os-release").unwrap(), "ID=debian\n");
        assert_eq!(e.text("lib/os-release").unwrap(), "ID=debian\n");
        assert!(e.text("loop").is_err());
        assert!(e.text("etc/missing").is_err());
    }

    #[test]
    fn writes_make_parents_and_replace_symlinks() {
        let mut t = Tree::new();
        let mut e = Editor::new(&mut t, Timestamp::from_secs(7));
        e.symlink("etc/resolv.conf", "/run/x");
        e.write("etc/resolv.conf", b"nameserver 1.1.1.1\n", 0o644);
        assert_eq!(e.text("etc/resolv.conf").unwrap(), "nameserver 1.1.1.1\n");
        let etc = t.get(Path::new("etc")).unwrap();
        assert!(matches!(etc.kind, Kind::Dir));
        assert_eq!(etc.mtime, Timestamp::from_secs(7));
    }
}
