//! The packages a Raspberry Pi OS server image must add to serve its lab (the kernel NFS
//! server), resolved against the archive of the image's own release and the image's dpkg
//! status, so only what is missing is carried, pinned in the lock under a key naming the image,
//! and fetched into the cache. A rebuild with the lock uses exactly the pinned set, offline.

use super::cache::Cache;
use super::debian::ArchiveIndexes;
use super::download::Downloader;
use super::lock::LockedInput;
use crate::recipe::DebianArchive;
use crate::source::debian::{closure, status};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// What the server needs that Raspberry Pi OS does not install.
pub const SERVER_PACKAGES: &[&str] = &["nfs-kernel-server"];

/// The lock's `from` of every package pinned for an image: its sha256 and release.
pub fn key(os_sha256: &str, suite: &str) -> String {
    format!("server-deb:{}:{suite}", &os_sha256[..os_sha256.len().min(16)])
}

/// One package the image carries, pinned and cached.
pub struct ServerDeb {
    pub input: LockedInput,
    pub path: PathBuf,
}

/// The missing packages: the lock's if it pins them for this image, else resolved now (unless
/// `offline` or `locked`). Each ends up in the cache.
#[allow(clippy::too_many_arguments)]
pub async fn pin(
    pinned: &[LockedInput],
    os_sha256: &str,
    suite: &str,
    dpkg_status: &[u8],
    archive: &DebianArchive,
    cache: &Cache,
    dl: &Downloader,
    offline: bool,
    locked: bool,
) -> Result<Vec<ServerDeb>> {
    let from = key(os_sha256, suite);
    let mut inputs: Vec<LockedInput> = pinned.iter().filter(|i| i.from == from).cloned().collect();
    if inputs.is_empty() {
        if offline || locked {
            bail!(
                "the lock pins no NFS server packages for this OS image; run `bramble build --server-image` online without --locked once"
            );
        }
        let archive = DebianArchive { suite: suite.to_string(), ..archive.clone() };
        let installed = status::parse(dpkg_status).context("reading the image's /var/lib/dpkg/status")?;
        let mut indexes = ArchiveIndexes::new();
        let index = indexes.index(dl, cache, &archive, "arm64").await?;
        let added = closure::closure(index, SERVER_PACKAGES, &installed, "arm64").with_context(|| {
            format!("resolving {} against {} {}", SERVER_PACKAGES.join(", "), archive.mirror, suite)
        })?;
        for a in added {
            let e = a.entry;
            inputs.push(LockedInput {
                name: format!("server-deb:{}", e.package.name),
                from: from.clone(),
                url: format!("{}/{}", archive.mirror, e.filename),
                sha256: e.sha256.clone(),
                size: e.size,
                release_date: None,
                extract_sha256: None,
                extract_size: None,
                version: Some(e.package.version.to_string()),
            });
        }
    }
    let mut out = Vec::new();
    for input in inputs {
        let path = match cache.verified(&input.sha256)? {
            Some(p) => p,
            None if offline => bail!("offline, and {} ({}) is not in the cache", input.name, input.url),
            None => dl.fetch(cache, &input.name, &input.url, &input.sha256, Some(input.size)).await?,
        };
        out.push(ServerDeb { input, path });
    }
    Ok(out)
}
