//! The lock (`<recipe>.lock` beside the recipe): every input of a lab with its URL, sha256 and
//! size, so a rebuild months later uses the same bytes, offline if the cache has them. Written
//! by `bramble fetch`, read by every later step; meant to be committed beside the recipe.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const LOCK_VERSION: u32 = 1;

/// The one lock every recipe of a folder shared before each got its own; still the lock of the
/// built-in recipe (lab `bramble`), in the current folder.
pub const SHARED_NAME: &str = "bramble.lock";

/// Where a recipe's lock is: `<stem>.lock` beside the recipe file (`recipes/debian.toml` →
/// `recipes/debian.lock`), so recipes sharing a folder keep their own pins; `./bramble.lock`
/// for the built-in recipe.
pub fn path_for(recipe: Option<&Path>) -> PathBuf {
    match recipe {
        Some(p) => {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "recipe".into());
            p.with_file_name(format!("{stem}.lock"))
        }
        None => PathBuf::from(SHARED_NAME),
    }
}

/// What became of a folder's shared `bramble.lock` when a recipe there looked for its own lock.
#[derive(Debug, PartialEq, Eq)]
pub enum SharedLock {
    /// None there, or the recipe's own lock already exists (or is that file).
    Absent,
    /// It was this recipe's: renamed to the recipe's own lock.
    Adopted { from: PathBuf, to: PathBuf },
    /// It belongs to another recipe (named, if the lock says), and was left alone.
    Other { path: PathBuf, recipe: Option<String> },
}

/// Before recipes had their own locks, `recipe_file`'s pins may be in the folder's
/// `bramble.lock`. If `lock` does not exist yet and that file was written for `recipe_file`,
/// rename it to `lock`; a `bramble.lock` of another recipe stays where it is.
pub fn adopt_shared(lock: &Path, recipe_file: &str) -> Result<SharedLock> {
    let shared = lock.with_file_name(SHARED_NAME);
    if shared == lock || lock.exists() {
        return Ok(SharedLock::Absent);
    }
    let Some(old) = Lock::load(&shared)? else { return Ok(SharedLock::Absent) };
    if old.recipe.as_deref() != Some(recipe_file) {
        return Ok(SharedLock::Other { path: shared, recipe: old.recipe });
    }
    std::fs::rename(&shared, lock).with_context(|| format!("renaming {} to {}", shared.display(), lock.display()))?;
    Ok(SharedLock::Adopted { from: shared, to: lock.to_path_buf() })
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// The recipe file this lock was written for (its file name), if it came from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    #[serde(default, rename = "input")]
    pub inputs: Vec<LockedInput>,
    /// The bootloader updates' timestamp of each chip, pinned by what the updates hold
    /// (written by `bramble build`; `bramble fetch` keeps them).
    #[serde(default, rename = "eeprom", skip_serializing_if = "Vec::is_empty")]
    pub eeprom: Vec<crate::lab::eeprom::Stamp>,
}

/// One pinned input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedInput {
    pub name: String,
    /// What the recipe asked for when this was resolved (`catalog:…`, `url:…`, `eeprom:…`, `deb:…`).
    pub from: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// sha256 and size of the decompressed image, when the publisher gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_size: Option<u64>,
    /// The package version, for an input that is a Debian package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

const HEADER: &str = "# The lock of this recipe: every input of this lab, pinned by sha256.\n\
# Written by `bramble fetch`; commit it with the recipe. `bramble fetch --update` re-resolves.\n\n";

impl Lock {
    /// Read a lock file; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<Lock>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let lock: Lock = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid lock file: {}; delete it and run `bramble fetch` again",
                path.display(),
                e.message()
            )
        })?;
        if lock.version != LOCK_VERSION {
            bail!("{} has lock version {}; this bramble writes version {LOCK_VERSION}", path.display(), lock.version);
        }
        Ok(Some(lock))
    }

    /// The lock as written to disk.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("a lock always serialises");
        format!("{HEADER}{body}")
    }

    pub fn get(&self, name: &str) -> Option<&LockedInput> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            version: LOCK_VERSION,
            recipe: Some("lab.toml".into()),
            inputs: vec![LockedInput {
                name: "os".into(),
                from: "catalog:raspios-lite-arm64".into(),
                url: "https://downloads.raspberrypi.com/x.img.xz".into(),
                sha256: "ab".repeat(32),
                size: 123,
                release_date: Some("2026-05-13".into()),
                extract_sha256: None,
                extract_size: Some(456),
                version: None,
            }],
            eeprom: vec![crate::lab::eeprom::Stamp { chip: 2711, sha256: "cd".repeat(32), ts: 1_779_045_198 }],
        }
    }

    #[test]
    fn round_trips_through_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bramble.lock");
        let text = sample().to_text();
        assert!(text.starts_with("# The lock of this recipe"));
        assert!(text.contains("[[input]]\nname = \"os\""), "{text}");
        assert!(text.contains("[[eeprom]]\nchip = 2711\n"), "{text}");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), Some(sample()));
        assert_eq!(Lock::load(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn each_recipe_has_its_own_lock_and_adopts_only_its_own_shared_one() {
        assert_eq!(path_for(Some(Path::new("recipes/debian.toml"))), Path::new("recipes/debian.lock"));
        assert_eq!(path_for(Some(Path::new("lab.toml"))), Path::new("lab.lock"));
        assert_eq!(path_for(None), Path::new("bramble.lock"));
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join(SHARED_NAME);
        let own = dir.path().join("lab.lock");
        assert_eq!(adopt_shared(&own, "lab.toml").unwrap(), SharedLock::Absent);
        std::fs::write(&shared, sample().to_text()).unwrap();
        let other = dir.path().join("debian.lock");
        assert_eq!(
            adopt_shared(&other, "debian.toml").unwrap(),
            SharedLock::Other { path: shared.clone(), recipe: Some("lab.toml".into()) }
        );
        assert!(shared.exists() && !other.exists());
        assert_eq!(
            adopt_shared(&own, "lab.toml").unwrap(),
            SharedLock::Adopted { from: shared.clone(), to: own.clone() }
        );
        assert!(!shared.exists());
        assert_eq!(Lock::load(&own).unwrap(), Some(sample()));
    }

    #[test]
    fn damaged_or_future_locks_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bramble.lock");
        std::fs::write(&path, "version = 1\n[[input]]\nname = 3\n").unwrap();
        assert!(format!("{:#}", Lock::load(&path).unwrap_err()).contains("delete it and run `bramble fetch` again"));
        std::fs::write(&path, "version = 9\n").unwrap();
        assert!(format!("{:#}", Lock::load(&path).unwrap_err()).contains("lock version 9"));
    }
}
