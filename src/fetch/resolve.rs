//! From a recipe's inputs to a lock and cached files: reuse what the lock already pins, resolve
//! the rest (catalog names through the OS list, Debian packages through their archive's signed
//! indexes), then make sure every pinned file is in the cache, downloading what is missing. `--locked` forbids changing the lock; `--offline` forbids
//! the network and lists exactly what is missing.

use super::cache::Cache;
use super::debian::ArchiveIndexes;
use super::download::Downloader;
use super::lock::{LOCK_VERSION, Lock, LockedInput};
use crate::source::catalog;
use crate::source::inputs::{Input, Spec};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Options {
    /// Refuse to change the lock.
    pub locked: bool,
    /// Use the cache alone.
    pub offline: bool,
    /// Re-resolve catalog names even if the lock pins them.
    pub update: bool,
    /// Where the OS list is.
    pub os_list: String,
}

/// Whether an input had to be downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Cached,
    Downloaded,
}

#[derive(Debug)]
pub struct Fetched {
    pub input: LockedInput,
    pub path: PathBuf,
    pub status: Status,
}

#[derive(Debug)]
pub struct Outcome {
    pub lock: Lock,
    /// The lock differs from the one passed in (or there was none).
    pub changed: bool,
    pub files: Vec<Fetched>,
}

/// Lists fetched at most once per run: the OS list and the lists it nests.
#[derive(Default)]
struct OsLists(Option<Vec<Vec<u8>>>);

impl OsLists {
    async fn get(&mut self, dl: &Downloader, url: &str) -> Result<&[Vec<u8>]> {
        if self.0.is_none() {
            let main = dl.get(url).await.context("fetching Raspberry Pi's OS list")?;
            let mut lists = vec![main];
            for nested in catalog::nested_lists(&lists[0])? {
                // A nested list that cannot be fetched only matters if the image is in it.
                match dl.get(&nested).await {
                    Ok(bytes) => lists.push(bytes),
                    Err(e) => tracing::debug!("skipping nested OS list: {e}"),
                }
            }
            self.0 = Some(lists);
        }
        Ok(self.0.as_deref().unwrap_or_default())
    }
}

/// What resolution fetches at most once per run.
#[derive(Default)]
struct Indexes {
    os_lists: OsLists,
    debian: ArchiveIndexes,
}

async fn resolve(
    input: &Input,
    dl: &Downloader,
    cache: &Cache,
    idx: &mut Indexes,
    opts: &Options,
) -> Result<LockedInput> {
    let base = |url: String, sha256: String, size: u64| LockedInput {
        name: input.name.clone(),
        from: input.from.clone(),
        url,
        sha256,
        size,
        release_date: None,
        extract_sha256: None,
        extract_size: None,
        version: None,
    };
    match &input.spec {
        Spec::Pinned { url, sha256, size } => Ok(base(url.clone(), sha256.clone(), size.unwrap_or(0))),
        Spec::Catalog(name) => {
            let all = idx.os_lists.get(dl, &opts.os_list).await?;
            let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
            let release = catalog::find(&refs, name)?;
            let sha256 = match release.download_sha256 {
                Some(s) => s,
                None => {
                    let sidecar = format!("{}.sha256", release.url);
                    let text = dl.get(&sidecar).await.with_context(|| format!("fetching the checksum of {name}"))?;
                    catalog::parse_sha256_file(&String::from_utf8_lossy(&text))
                        .with_context(|| format!("{sidecar} does not hold a sha256"))?
                }
            };
            let mut locked = base(release.url, sha256, release.download_size.unwrap_or(0));
            locked.release_date = release.release_date;
            locked.extract_sha256 = release.extract_sha256;
            locked.extract_size = release.extract_size;
            Ok(locked)
        }
        Spec::Deb { archive, package, arch } => {
            let index = idx.debian.index(dl, cache, archive, arch).await?;
            let entry = super::debian::pick(index, archive, package, arch)?;
            let mut locked = base(format!("{}/{}", archive.mirror, entry.filename), entry.sha256.clone(), entry.size);
            locked.version = Some(entry.package.version.to_string());
            Ok(locked)
        }
    }
}

/// Pin every input and make sure each is in the cache.
pub async fn fetch_all(
    inputs: &[Input],
    existing: Option<&Lock>,
    recipe: Option<String>,
    cache: &Cache,
    dl: &Downloader,
    opts: &Options,
) -> Result<Outcome> {
    let mut indexes = Indexes::default();
    let mut pinned = Vec::new();
    for input in inputs {
        let reuse = existing.and_then(|l| l.get(&input.name)).filter(|l| l.from == input.from && !opts.update);
        match reuse {
            Some(l) => pinned.push(l.clone()),
            None if opts.locked => bail!(
                "`{}` ({}) is not pinned in the lock as the recipe asks; run without --locked to update the lock",
                input.name,
                input.from
            ),
            None if opts.offline => bail!(
                "cannot resolve `{}` ({}) offline: the lock does not pin it; run `bramble fetch` online once",
                input.name,
                input.from
            ),
            None => pinned.push(resolve(input, dl, cache, &mut indexes, opts).await?),
        }
    }
    if opts.locked
        && let Some(lock) = existing
    {
        let extra: Vec<&str> =
            lock.inputs.iter().filter(|l| !inputs.iter().any(|i| i.name == l.name)).map(|l| l.name.as_str()).collect();
        if !extra.is_empty() {
            bail!(
                "the lock pins inputs the recipe no longer needs ({}); run without --locked to update it",
                extra.join(", ")
            );
        }
    }
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for mut input in pinned {
        if let Some(path) = cache.verified(&input.sha256)? {
            input.size = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?.len();
            files.push(Fetched { input, path, status: Status::Cached });
        } else if opts.offline {
            missing.push(format!("  {} ({}), sha256 {}", input.name, input.url, input.sha256));
        } else {
            let size = (input.size > 0).then_some(input.size);
            let path = dl.fetch(cache, &input.name, &input.url, &input.sha256, size).await?;
            input.size = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?.len();
            files.push(Fetched { input, path, status: Status::Downloaded });
        }
    }
    if !missing.is_empty() {
        bail!(
            "offline, and {} input(s) are not in the cache {}:\n{}\nrun `bramble fetch` with network access, or copy the files into the cache",
            missing.len(),
            cache.root().display(),
            missing.join("\n")
        );
    }
    let lock = Lock {
        version: LOCK_VERSION,
        recipe,
        inputs: files.iter().map(|f| f.input.clone()).collect(),
        // Only a build knows the bootloader updates; what it pinned stays.
        eeprom: existing.map(|e| e.eeprom.clone()).unwrap_or_default(),
    };
    let changed = existing.is_none_or(|e| e.inputs != lock.inputs);
    if changed && opts.locked {
        bail!("the lock would change; run without --locked to update it");
    }
    Ok(Outcome { lock, changed, files })
}
