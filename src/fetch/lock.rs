//! `bramble.lock`: every input of a lab with its URL, sha256 and size, so a rebuild months later
//! uses the same bytes, offline if the cache has them. Written by `bramble fetch`, read by every
//! later step; meant to be committed beside the recipe.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const LOCK_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// The recipe file this lock was written for (its file name), if it came from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    #[serde(default, rename = "input")]
    pub inputs: Vec<LockedInput>,
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

const HEADER: &str = "# bramble.lock: every input of this lab, pinned by sha256.\n\
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
        }
    }

    #[test]
    fn round_trips_through_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bramble.lock");
        let text = sample().to_text();
        assert!(text.starts_with("# bramble.lock"));
        assert!(text.contains("[[input]]\nname = \"os\""), "{text}");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), Some(sample()));
        assert_eq!(Lock::load(&dir.path().join("none")).unwrap(), None);
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
