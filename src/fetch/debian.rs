//! A Debian archive's indexes, fetched and checked for one run: the suite's `InRelease` (or
//! `Release` with `Release.gpg`), its signature checked by gpgv against the archive's keyring,
//! then each component's `Packages` index for an architecture, whose sha256 and size must be
//! the ones the signed Release lists. Each Release and index is fetched at most once per run,
//! and only when asked for (that is, when some input is not pinned yet). Indexes go through the
//! content-addressed cache, so a second run with the same Release does not download them again.
//!
//! What the files say is `source::debian`'s; this only moves and checks them.

use super::cache::Cache;
use super::download::{DownloadError, Downloader};
use super::gpgv;
use crate::recipe::DebianArchive;
use crate::source::debian::clearsign;
use crate::source::debian::{Index, IndexEntry, Release};
use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::path::PathBuf;

/// A decompressed index larger than this is refused (Debian's biggest is under 100 MiB).
const MAX_INDEX: u64 = 2 << 30;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReleaseKey {
    mirror: String,
    suite: String,
    keyring: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct IndexKey {
    release: ReleaseKey,
    components: Vec<String>,
    arch: String,
}

/// The Release files and package indexes fetched so far in this run.
#[derive(Default)]
pub struct ArchiveIndexes {
    releases: HashMap<ReleaseKey, Release>,
    indexes: HashMap<IndexKey, Index>,
}

fn is_not_found(e: &DownloadError) -> bool {
    matches!(e, DownloadError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
}

impl ArchiveIndexes {
    pub fn new() -> ArchiveIndexes {
        ArchiveIndexes::default()
    }

    /// The verified Release file of `archive`'s suite.
    pub async fn release(&mut self, dl: &Downloader, archive: &DebianArchive) -> Result<&Release> {
        let key = ReleaseKey {
            mirror: archive.mirror.clone(),
            suite: archive.suite.clone(),
            keyring: archive.keyring.clone(),
        };
        if !self.releases.contains_key(&key) {
            let release = fetch_release(dl, archive).await?;
            self.releases.insert(key.clone(), release);
        }
        Ok(&self.releases[&key])
    }

    /// Every package of `archive`'s components installable on `arch` (its own and `all`).
    pub async fn index(
        &mut self,
        dl: &Downloader,
        cache: &Cache,
        archive: &DebianArchive,
        arch: &str,
    ) -> Result<&Index> {
        let key = IndexKey {
            release: ReleaseKey {
                mirror: archive.mirror.clone(),
                suite: archive.suite.clone(),
                keyring: archive.keyring.clone(),
            },
            components: archive.components.clone(),
            arch: arch.to_string(),
        };
        if !self.indexes.contains_key(&key) {
            let release = self.release(dl, archive).await?.clone();
            let index = fetch_index(dl, cache, archive, &release, arch).await?;
            self.indexes.insert(key.clone(), index);
        }
        Ok(&self.indexes[&key])
    }
}

/// The version of `package` to pin for `arch`, or an error naming the archive and, for a
/// virtual package or a near miss, what to write instead.
pub fn pick<'a>(index: &'a Index, archive: &DebianArchive, package: &str, arch: &str) -> Result<&'a IndexEntry> {
    if let Some(entry) = index.pick(package, arch) {
        return Ok(entry);
    }
    let place = format!("{} {} ({})", archive.mirror, archive.suite, archive.components.join(", "));
    let mut providers: Vec<&str> = index.providing(package).map(|(e, _)| e.package.name.as_str()).collect();
    providers.sort();
    providers.dedup();
    if !providers.is_empty() {
        bail!("`{package}` is a virtual package in {place}, provided by {}; name one of them", providers.join(", "));
    }
    let nearest = index
        .entries()
        .iter()
        .map(|e| (strsim::jaro_winkler(package, &e.package.name), e.package.name.as_str()))
        .filter(|(score, _)| *score > 0.9)
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(a.1)));
    let hint = nearest.map(|(_, n)| format!("; did you mean `{n}`?")).unwrap_or_default();
    bail!("`{package}` is not in {place} for {arch}{hint}")
}

fn suite_url(archive: &DebianArchive) -> String {
    format!("{}/dists/{}", archive.mirror, archive.suite)
}

async fn verify_clearsigned(signed: Vec<u8>, archive: &DebianArchive, url: &str) -> Result<Vec<u8>> {
    let (keyring, owned_url) = (archive.keyring.clone(), url.to_string());
    let copy = signed.clone();
    let verified = tokio::task::spawn_blocking(move || gpgv::verify_clearsigned(&copy, &keyring, &owned_url))
        .await
        .context("the signature check stopped")??;
    // What gpgv checked must be all the file says: nothing before, after or beside it.
    let split = clearsign::split(&String::from_utf8_lossy(&signed))
        .map_err(|e| anyhow::anyhow!("{url} is not a well-formed signed file: {e}"))?;
    if split.text.as_bytes() != verified.as_slice() {
        bail!("{url}: the text gpgv checked is not the text of the file; refusing it");
    }
    Ok(verified)
}

async fn fetch_release(dl: &Downloader, archive: &DebianArchive) -> Result<Release> {
    let base = suite_url(archive);
    let inrelease = format!("{base}/InRelease");
    let (url, text) = match dl.get(&inrelease).await {
        Ok(signed) => (inrelease.clone(), verify_clearsigned(signed, archive, &inrelease).await?),
        Err(e) if is_not_found(&e) => {
            // Older archives and some mirrors have only the detached form.
            let url = format!("{base}/Release");
            let data = dl.get(&url).await.with_context(|| {
                format!("the archive has no {inrelease} and no {url}: check [debian] mirror and suite")
            })?;
            let signature = dl
                .get(&format!("{url}.gpg"))
                .await
                .with_context(|| format!("{url} has no signature ({url}.gpg); Bramble only uses signed archives"))?;
            let (keyring, owned_url, copy) = (archive.keyring.clone(), url.clone(), data.clone());
            tokio::task::spawn_blocking(move || gpgv::verify_detached(&copy, &signature, &keyring, &owned_url))
                .await
                .context("the signature check stopped")??;
            (url, data)
        }
        Err(e) => return Err(e).context("fetching the archive's Release file"),
    };
    let release = Release::parse(&text).with_context(|| format!("{url} is not a usable Release file"))?;
    if !release.is_suite(&archive.suite) {
        bail!(
            "{url} describes suite `{}` (codename `{}`), not `{}`; the mirror serves another suite under that name",
            release.suite.as_deref().unwrap_or("?"),
            release.codename.as_deref().unwrap_or("?"),
            archive.suite
        );
    }
    if let Some(until) = release.valid_until.as_deref()
        && let Some(epoch) = crate::source::debian::release::parse_date(until)
        && epoch < std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    {
        // apt refuses these by default; an archive snapshot is the honest reason to see one, and
        // the lock pins every file by sha256 anyway.
        tracing::warn!("{url} expired on {until} (Valid-Until); it may be a stale mirror or a snapshot");
    }
    Ok(release)
}

/// Download (or take from the cache) one index listed in the Release, by its sha256.
async fn fetch_packages_file(
    dl: &Downloader,
    cache: &Cache,
    base: &str,
    release: &Release,
    component: &str,
    arch: &str,
) -> Result<Option<Vec<u8>>> {
    let candidates = release.packages_indexes(component, arch);
    let mut tried = Vec::new();
    for (path, compression, file) in &candidates {
        let url = format!("{base}/{path}");
        let cached = match cache.verified(&file.sha256)? {
            Some(p) => p,
            None => match dl.fetch(cache, path, &url, &file.sha256, Some(file.size)).await {
                Ok(p) => p,
                // Debian lists the uncompressed index in Release without serving it.
                Err(e) if is_not_found(&e) => {
                    tried.push(url);
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("{url} does not match the signed Release file"));
                }
            },
        };
        let packed = std::fs::read(&cached).with_context(|| format!("cannot read {}", cached.display()))?;
        let bytes = compression.decompress(&packed, MAX_INDEX).with_context(|| format!("{url} does not decompress"))?;
        return Ok(Some(bytes));
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    bail!("the archive serves none of the indexes its Release lists: {}", tried.join(", "))
}

async fn fetch_index(
    dl: &Downloader,
    cache: &Cache,
    archive: &DebianArchive,
    release: &Release,
    arch: &str,
) -> Result<Index> {
    let base = suite_url(archive);
    if arch == "all" {
        bail!("name the machine's architecture (arm64, amd64, …), not `all`: `all` packages are found through it");
    }
    if !release.architectures.is_empty() && !release.architectures.iter().any(|a| a == arch) {
        bail!(
            "{base} has no packages for `{arch}` (it has: {})",
            release.architectures.iter().filter(|a| *a != "all").cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut index = Index::default();
    for component in &archive.components {
        if !release.components.is_empty() && !release.components.iter().any(|c| c == component) {
            bail!(
                "{base} has no component `{component}` (it has: {}); check [debian] components",
                release.components.join(", ")
            );
        }
        for index_arch in release.index_arches(arch) {
            match fetch_packages_file(dl, cache, &base, release, component, &index_arch).await? {
                Some(bytes) => index
                    .add(&bytes)
                    .with_context(|| format!("{base}/{component}/binary-{index_arch}/Packages is damaged"))?,
                // A separate `all` index is optional; the architecture's own is not.
                None if index_arch == "all" => {}
                None => bail!("the Release file of {base} lists no Packages index for {component}/binary-{index_arch}"),
            }
        }
    }
    tracing::debug!("{base}: {} packages for {arch} in {}", index.len(), archive.components.join(", "));
    Ok(index)
}
