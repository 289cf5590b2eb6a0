//! The download cache: files stored under their sha256, written to a temporary name and renamed
//! only after the hash matched, and hashed again whenever they are used, so a corrupted entry is
//! found and fetched again instead of poisoning a build. It remembers which lock files used it,
//! so `bramble cache gc` can tell what is still needed.
//!
//! Layout: `sha256/<hex>` (verified files), `partial/<hex>.part` (resumable downloads),
//! `locks` (one lock-file path per line).

use super::lock::Lock;
use crate::digest::hex;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The cache root: `--cache`, else `BRAMBLE_CACHE`, else `$XDG_CACHE_HOME/bramble`, else
/// `~/.cache/bramble`.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRAMBLE_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("bramble");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache"));
    home.join(".cache/bramble")
}

/// One cached file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub sha256: String,
    pub size: u64,
    pub path: PathBuf,
}

pub struct Cache {
    root: PathBuf,
}

/// sha256 of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

impl Cache {
    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["sha256", "partial"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the cache folder {}", dir.display()))?;
        }
        Ok(Cache { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the verified file for `sha256` lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256)
    }

    /// Where a download of `sha256` in progress lives.
    pub fn partial_path(&self, sha256: &str) -> PathBuf {
        self.root.join("partial").join(format!("{sha256}.part"))
    }

    /// The file for `sha256` if it is cached and still hashes to it. A file that does not is
    /// removed, so the caller fetches it again.
    pub fn verified(&self, sha256: &str) -> Result<Option<PathBuf>> {
        let path = self.path_of(sha256);
        if !path.exists() {
            return Ok(None);
        }
        let (actual, _) = hash_file(&path).with_context(|| format!("cannot read cached file {}", path.display()))?;
        if actual == sha256 {
            return Ok(Some(path));
        }
        tracing::warn!(
            "cache entry {} is corrupted (its sha256 is now {actual}); it will be fetched again",
            path.display()
        );
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        Ok(None)
    }

    /// Move a completed, verified download into place.
    pub fn commit(&self, partial: &Path, sha256: &str) -> Result<PathBuf> {
        let target = self.path_of(sha256);
        File::open(partial)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {} to disk", partial.display()))?;
        std::fs::rename(partial, &target)
            .with_context(|| format!("cannot move {} into the cache", partial.display()))?;
        Ok(target)
    }

    /// Every verified entry (not re-hashed).
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let dir = self.root.join("sha256");
        for item in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let item = item.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                let size = item.metadata().with_context(|| format!("cannot read {}", item.path().display()))?.len();
                out.push(Entry { sha256: name, size, path: item.path() });
            }
        }
        out.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(out)
    }

    fn registry(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Lock files that have used this cache and still exist.
    pub fn registered_locks(&self) -> Vec<PathBuf> {
        let text = std::fs::read_to_string(self.registry()).unwrap_or_default();
        let set: BTreeSet<PathBuf> = text.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect();
        set.into_iter().filter(|p| p.exists()).collect()
    }

    /// Remember that `lock` uses this cache.
    pub fn register_lock(&self, lock: &Path) -> Result<()> {
        let lock = lock.canonicalize().unwrap_or_else(|_| lock.to_path_buf());
        let mut locks = self.registered_locks();
        if !locks.contains(&lock) {
            locks.push(lock);
            locks.sort();
            let text: String = locks.iter().map(|p| format!("{}\n", p.display())).collect();
            crate::output::write_file(&self.registry(), text.as_bytes())?;
        }
        Ok(())
    }

    /// For each cached sha256, the lock entries naming it: `(lock path, input name)`.
    pub fn references(&self) -> BTreeMap<String, Vec<(PathBuf, String)>> {
        let mut refs: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
        for path in self.registered_locks() {
            // A lock that no longer parses names nothing; gc then treats its files as unused.
            if let Ok(Some(lock)) = Lock::load(&path) {
                for input in lock.inputs {
                    refs.entry(input.sha256).or_default().push((path.clone(), input.name));
                }
            }
        }
        refs
    }

    /// Remove what no registered lock names, and every abandoned partial download of such a
    /// file. Returns what was (or, with `dry_run`, would be) removed.
    pub fn gc(&self, dry_run: bool) -> Result<Vec<Entry>> {
        let refs = self.references();
        let mut removed = Vec::new();
        for entry in self.entries()? {
            if !refs.contains_key(&entry.sha256) {
                if !dry_run {
                    std::fs::remove_file(&entry.path)
                        .with_context(|| format!("cannot remove {}", entry.path.display()))?;
                }
                removed.push(entry);
            }
        }
        let partials = self.root.join("partial");
        for item in std::fs::read_dir(&partials).with_context(|| format!("cannot list {}", partials.display()))? {
            let item = item.with_context(|| format!("cannot list {}", partials.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let sha = name.trim_end_matches(".part");
            if !refs.contains_key(sha) {
                // Size first: once removed there is nothing left to stat.
                let size = item.metadata().with_context(|| format!("cannot read {}", item.path().display()))?.len();
                if !dry_run {
                    std::fs::remove_file(item.path())
                        .with_context(|| format!("cannot remove {}", item.path().display()))?;
                }
                removed.push(Entry { sha256: sha.to_string(), size, path: item.path() });
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn entries_are_verified_on_use_and_corruption_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let good = sha(b"hello");
        let part = cache.partial_path(&good);
        std::fs::write(&part, b"hello").unwrap();
        let path = cache.commit(&part, &good).unwrap();
        assert_eq!(cache.verified(&good).unwrap(), Some(path.clone()));
        std::fs::write(&path, b"hellp").unwrap();
        assert_eq!(cache.verified(&good).unwrap(), None);
        assert!(!path.exists());
        assert_eq!(cache.verified(&"0".repeat(64)).unwrap(), None);
    }

    #[test]
    fn gc_keeps_what_a_registered_lock_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let (a, b) = (sha(b"a"), sha(b"b"));
        for (s, bytes) in [(&a, b"a"), (&b, b"b")] {
            let part = cache.partial_path(s);
            std::fs::write(&part, bytes).unwrap();
            cache.commit(&part, s).unwrap();
        }
        std::fs::write(cache.partial_path(&"f".repeat(64)), b"half").unwrap();
        let lock_path = dir.path().join("lab.lock");
        let lock = Lock {
            version: 1,
            recipe: None,
            inputs: vec![super::super::lock::LockedInput {
                name: "os".into(),
                from: "x".into(),
                url: "u".into(),
                sha256: a.clone(),
                size: 1,
                release_date: None,
                extract_sha256: None,
                extract_size: None,
                version: None,
            }],
            eeprom: Vec::new(),
        };
        std::fs::write(&lock_path, lock.to_text()).unwrap();
        cache.register_lock(&lock_path).unwrap();
        cache.register_lock(&lock_path).unwrap();
        assert_eq!(cache.registered_locks().len(), 1);
        let would = cache.gc(true).unwrap();
        assert_eq!(would.len(), 2);
        assert!(cache.path_of(&b).exists());
        let removed = cache.gc(false).unwrap();
        assert_eq!(removed.iter().map(|e| e.sha256.clone()).collect::<Vec<_>>(), [b.clone(), "f".repeat(64)]);
        assert!(cache.path_of(&a).exists() && !cache.path_of(&b).exists());
        assert_eq!(cache.references()[&a], [(lock_path.canonicalize().unwrap(), "os".to_string())]);
        // A lock that is gone protects nothing.
        std::fs::remove_file(&lock_path).unwrap();
        assert_eq!(cache.gc(false).unwrap().len(), 1);
    }
}
