//! Whole files in memory, shared by every transfer that reads them: a hundred Pis fetching
//! start4.elf cost one read from disk. Concurrent first requests wait for the same load; the
//! least recently used files leave when the size bound is passed; a changed file (size, mtime or
//! inode) is a new entry. Files larger than the whole bound are read from disk as they are sent.
//!
//! The bound covers every file's bytes in memory, also those transfers still hold: a file being
//! sent is not evicted (that would let requests for alternating files each load their own copy
//! and hold it while unanswered), and when no room can be made the new file is read from disk
//! as it is sent instead.

use crate::daemon::files::Found;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// The bytes a transfer sends.
#[derive(Clone, Debug)]
pub enum Content {
    Memory(Arc<[u8]>),
    /// Too large to cache: read block by block.
    Disk {
        file: Arc<File>,
        len: u64,
    },
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Content::Memory(bytes) => bytes.len() as u64,
            Content::Disk { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy `len` bytes from `offset` into `out` (blocking for disk content).
    pub fn read_into(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Content::Memory(bytes) => {
                let start = offset as usize;
                out.extend_from_slice(&bytes[start..start + len]);
                Ok(())
            }
            Content::Disk { file, .. } => {
                let at = out.len();
                out.resize(at + len, 0);
                file.read_exact_at(&mut out[at..], offset)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

struct Slot {
    cell: Arc<OnceCell<Arc<[u8]>>>,
    size: u64,
    last_used: u64,
}

impl Slot {
    /// Loading, or held by a transfer as well as by the cache.
    fn in_use(&self) -> bool {
        self.cell.get().is_none_or(|bytes| Arc::strong_count(bytes) > 1)
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Slot>,
    used: u64,
    clock: u64,
    loads: u64,
}

/// A size-bounded, shared cache of file contents.
pub struct FileCache {
    budget: u64,
    state: Mutex<State>,
}

impl FileCache {
    pub fn new(budget_bytes: u64) -> Self {
        FileCache { budget: budget_bytes, state: Mutex::new(State::default()) }
    }

    /// How many times a file was read from disk into the cache.
    pub fn loads(&self) -> u64 {
        self.state.lock().expect("cache lock").loads
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.state.lock().expect("cache lock").used
    }

    /// The content of a found file, from memory when possible.
    pub async fn get(&self, found: Found) -> io::Result<Content> {
        let m = &found.metadata;
        if m.len() > self.budget {
            return Ok(Content::Disk { file: Arc::new(found.file), len: m.len() });
        }
        let key = Key { dev: m.dev(), ino: m.ino(), len: m.len(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() };
        let Some(cell) = self.slot(key) else {
            tracing::debug!(path = %found.path.display(), "tftp: the cache is full of files being sent; read from disk");
            return Ok(Content::Disk { file: Arc::new(found.file), len: m.len() });
        };
        let path = found.path;
        let mut file = Some(found.file);
        let result = cell
            .get_or_try_init(|| async {
                let file = file.take().expect("initialiser runs once");
                let bytes =
                    tokio::task::spawn_blocking(move || read_all(file, key.len)).await.map_err(io::Error::other)??;
                self.state.lock().expect("cache lock").loads += 1;
                tracing::debug!(path = %path.display(), bytes = bytes.len(), "tftp: read into the cache");
                Ok::<_, io::Error>(bytes)
            })
            .await;
        match result {
            Ok(bytes) => Ok(Content::Memory(bytes.clone())),
            Err(e) => {
                self.forget(key);
                Err(e)
            }
        }
    }

    /// The slot for `key`, created (and room made for it) if new; `None` if there is no room.
    fn slot(&self, key: Key) -> Option<Arc<OnceCell<Arc<[u8]>>>> {
        let mut state = self.state.lock().expect("cache lock");
        state.clock += 1;
        let now = state.clock;
        if let Some(slot) = state.entries.get_mut(&key) {
            slot.last_used = now;
            return Some(slot.cell.clone());
        }
        // Evict the least recently used of the files nobody is sending until the new one fits.
        while state.used + key.len > self.budget {
            let oldest = state.entries.iter().filter(|(_, s)| !s.in_use()).min_by_key(|(_, s)| s.last_used);
            // None: every cached file is being sent.
            let oldest = oldest.map(|(k, _)| *k)?;
            if let Some(slot) = state.entries.remove(&oldest) {
                state.used -= slot.size;
            }
        }
        let cell = Arc::new(OnceCell::new());
        state.entries.insert(key, Slot { cell: cell.clone(), size: key.len, last_used: now });
        state.used += key.len;
        Some(cell)
    }

    fn forget(&self, key: Key) {
        let mut state = self.state.lock().expect("cache lock");
        if let Some(slot) = state.entries.remove(&key) {
            state.used -= slot.size;
        }
    }
}

fn read_all(mut file: File, len: u64) -> io::Result<Arc<[u8]>> {
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(path: &std::path::Path) -> Found {
        let file = File::open(path).unwrap();
        let metadata = file.metadata().unwrap();
        Found { path: path.to_path_buf(), file, metadata }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_read_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("start4.elf");
        std::fs::write(&path, vec![7u8; 2 << 20]).unwrap();
        let cache = Arc::new(FileCache::new(64 << 20));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (cache, path) = (cache.clone(), path.clone());
            tasks.push(tokio::spawn(async move { cache.get(found(&path)).await.unwrap().len() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 2 << 20);
        }
        assert_eq!(cache.loads(), 1);
        assert_eq!(cache.used(), 2 << 20);
    }

    #[tokio::test]
    async fn bound_evicts_least_recently_used_and_changes_reload() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(3000);
        let paths: Vec<_> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
        for p in &paths {
            std::fs::write(p, vec![1u8; 1000]).unwrap();
        }
        for p in &paths {
            cache.get(found(p)).await.unwrap();
        }
        cache.get(found(&paths[0])).await.unwrap();
        assert_eq!(cache.loads(), 3);
        let fourth = dir.path().join("f3");
        std::fs::write(&fourth, vec![2u8; 1500]).unwrap();
        cache.get(found(&fourth)).await.unwrap();
        assert!(cache.used() <= 3000);
        // f1 was least recently used and is gone; f0 stayed.
        cache.get(found(&paths[0])).await.unwrap();
        assert_eq!(cache.loads(), 4);
        cache.get(found(&paths[1])).await.unwrap();
        assert_eq!(cache.loads(), 5);
        // A rewritten file is read again.
        std::fs::write(&paths[0], vec![3u8; 999]).unwrap();
        let Content::Memory(bytes) = cache.get(found(&paths[0])).await.unwrap() else { panic!() };
        assert_eq!(bytes.len(), 999);
    }

    #[tokio::test]
    async fn files_being_sent_stay_and_count_so_the_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(3000);
        let paths: Vec<_> = (0..4).map(|i| dir.path().join(format!("f{i}"))).collect();
        for p in &paths {
            std::fs::write(p, vec![1u8; 1000]).unwrap();
        }
        // Three transfers hold the three files: a fourth file cannot push them out, and is
        // read from disk instead of taking memory past the bound.
        let held: Vec<Content> = hold_all(&cache, &paths[..3]).await;
        assert!(held.iter().all(|c| matches!(c, Content::Memory(_))));
        let fourth = cache.get(found(&paths[3])).await.unwrap();
        assert!(matches!(fourth, Content::Disk { len: 1000, .. }));
        assert_eq!((cache.used(), cache.loads()), (3000, 3));
        // A held file is still shared, not loaded again.
        assert!(matches!(cache.get(found(&paths[0])).await.unwrap(), Content::Memory(_)));
        assert_eq!(cache.loads(), 3);
        // Once one transfer ends, its file may make room.
        drop(held);
        assert!(matches!(cache.get(found(&paths[3])).await.unwrap(), Content::Memory(_)));
        assert_eq!((cache.used(), cache.loads()), (3000, 4));
    }

    async fn hold_all(cache: &FileCache, paths: &[std::path::PathBuf]) -> Vec<Content> {
        let mut out = Vec::new();
        for p in paths {
            out.push(cache.get(found(p)).await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn files_over_the_bound_stream_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, (0..5000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
        let cache = FileCache::new(1000);
        let content = cache.get(found(&path)).await.unwrap();
        assert!(matches!(content, Content::Disk { len: 5000, .. }));
        let mut out = Vec::new();
        content.read_into(4000, 10, &mut out).unwrap();
        assert_eq!(out, (4000..4010u32).map(|i| i as u8).collect::<Vec<_>>());
        assert_eq!(cache.loads(), 0);
    }
}
