//! HTTP downloads into the cache (reqwest): a partial file resumes with a Range request,
//! transient failures (connection errors, timeouts, 5xx, 429) are retried with backoff, and the
//! sha256 is computed while the bytes arrive; only a file that matches is moved into the cache.
//! Errors name the URL and say what to do. HTTP(S)_PROXY and NO_PROXY are honoured.

use super::cache::Cache;
use super::progress::Progress;
use crate::digest::hex;
use futures_util::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// A base-URL rewrite: `from` prefixes are replaced by `to` (a lab's local mirror).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub from: String,
    pub to: String,
}

impl std::str::FromStr for Mirror {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (from, to) = s.split_once('=').ok_or_else(|| {
            format!("`{s}` is not FROM=TO (e.g. https://downloads.raspberrypi.com=http://mirror.lab)")
        })?;
        if from.is_empty() || to.is_empty() {
            return Err(format!("`{s}` needs a URL on both sides of `=`"));
        }
        Ok(Mirror { from: from.to_string(), to: to.to_string() })
    }
}

/// `url` with the first matching mirror applied.
pub fn apply_mirrors(url: &str, mirrors: &[Mirror]) -> String {
    for m in mirrors {
        if let Some(rest) = url.strip_prefix(&m.from) {
            return format!("{}{rest}", m.to);
        }
    }
    url.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: the server says {status}; check the URL (or the --mirror that rewrote it)")]
    Status { url: String, status: StatusCode },
    #[error("{url}: cannot resolve the host name (DNS): {detail}; check the network, or the proxy settings")]
    Dns { url: String, detail: String },
    #[error("{url}: TLS failed: {detail}")]
    Tls { url: String, detail: String },
    #[error("{url}: {detail} (gave up after {attempts} attempts)")]
    Network { url: String, detail: String, attempts: u32 },
    #[error(
        "{url}: the download's sha256 is {actual}, but {expected} was expected; nothing was cached (the file changed on the server, or the lock is wrong)"
    )]
    HashMismatch { url: String, expected: String, actual: String },
    #[error("{url}: got {actual} bytes, but {expected} were expected; nothing was cached")]
    SizeMismatch { url: String, expected: u64, actual: u64 },
    #[error("{0}")]
    Io(String),
}

/// Describe a reqwest error by its cause: DNS and TLS problems need different fixes.
fn classify(url: &str, e: &reqwest::Error, attempts: u32) -> DownloadError {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    let lower = detail.to_ascii_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        DownloadError::Dns { url: url.into(), detail }
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        DownloadError::Tls { url: url.into(), detail }
    } else {
        DownloadError::Network { url: url.into(), detail, attempts }
    }
}

fn io(context: &str, e: impl std::fmt::Display) -> DownloadError {
    DownloadError::Io(format!("{context}: {e}"))
}

pub struct Downloader {
    client: reqwest::Client,
    mirrors: Vec<Mirror>,
    attempts: u32,
    backoff: Duration,
    quiet: bool,
}

impl Downloader {
    pub fn new(mirrors: Vec<Mirror>, quiet: bool) -> Result<Downloader, DownloadError> {
        // rustls with ring: one provider for the process, installed once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("bramble/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| io("cannot set up the HTTP client", e))?;
        Ok(Downloader { client, mirrors, attempts: 5, backoff: Duration::from_secs(1), quiet })
    }

    /// A small document (an OS list, a `.sha256` file), in memory.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, DownloadError> {
        let real = apply_mirrors(url, &self.mirrors);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.client.get(&real).send().await {
                Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                    Ok(b) => return Ok(b.to_vec()),
                    Err(e) => classify(&real, &e, attempt),
                },
                Ok(resp) => DownloadError::Status { url: real.clone(), status: resp.status() },
                Err(e) => classify(&real, &e, attempt),
            };
            if !retryable(&failure) || attempt >= self.attempts {
                return Err(failure);
            }
            tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
        }
    }

    /// Download `url` into `cache` as `sha256`, resuming a partial download; returns the cached
    /// path. The caller has checked that it is not cached already.
    pub async fn fetch(
        &self,
        cache: &Cache,
        name: &str,
        url: &str,
        sha256: &str,
        size: Option<u64>,
    ) -> Result<PathBuf, DownloadError> {
        let real = apply_mirrors(url, &self.mirrors);
        let part = cache.partial_path(sha256);
        let mut hasher = Sha256::new();
        let mut have = resume_hash(&part, &mut hasher)?;
        let mut progress = Progress::start(name, size, have, self.quiet);
        let mut attempt = 0;
        let complete = loop {
            attempt += 1;
            if size.is_some_and(|s| have == s) {
                break true;
            }
            let mut request = self.client.get(&real);
            if have > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
            }
            let failure = match request.send().await {
                Err(e) => classify(&real, &e, attempt),
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::RANGE_NOT_SATISFIABLE || (status == StatusCode::OK && have > 0) {
                        // The partial file is no use to this server: start again from zero.
                        tracing::debug!(%status, "restarting {name} from the beginning");
                        have = 0;
                        hasher = Sha256::new();
                        progress.reset(0);
                        std::fs::write(&part, b"").map_err(|e| io(&format!("cannot write {}", part.display()), e))?;
                        if status == StatusCode::RANGE_NOT_SATISFIABLE {
                            continue;
                        }
                    }
                    if !status.is_success() {
                        DownloadError::Status { url: real.clone(), status }
                    } else {
                        match self.stream(resp, &part, &mut hasher, &mut have, &mut progress).await {
                            Ok(()) => break true,
                            Err(e) => e,
                        }
                    }
                }
            };
            if !retryable(&failure) || attempt >= self.attempts {
                progress.finish();
                return Err(match failure {
                    DownloadError::Network { url, detail, .. } => {
                        DownloadError::Network { url, detail, attempts: attempt }
                    }
                    other => other,
                });
            }
            tracing::warn!("{name}: {failure}; retrying (attempt {} of {})", attempt + 1, self.attempts);
            tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
        };
        progress.finish();
        debug_assert!(complete);
        if let Some(expected) = size.filter(|&s| s != have) {
            let _ = std::fs::remove_file(&part);
            return Err(DownloadError::SizeMismatch { url: real, expected, actual: have });
        }
        let actual = hex(&hasher.finalize());
        if actual != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(DownloadError::HashMismatch { url: real, expected: sha256.into(), actual });
        }
        cache.commit(&part, sha256).map_err(|e| io("cannot store the download", format!("{e:#}")))
    }

    async fn stream(
        &self,
        resp: reqwest::Response,
        part: &PathBuf,
        hasher: &mut Sha256,
        have: &mut u64,
        progress: &mut Progress,
    ) -> Result<(), DownloadError> {
        let url = resp.url().to_string();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .map_err(|e| io(&format!("cannot write {}", part.display()), e))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| classify(&url, &e, 1))?;
            file.write_all(&chunk).map_err(|e| io(&format!("cannot write {}", part.display()), e))?;
            hasher.update(&chunk);
            *have += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
        file.flush().map_err(|e| io(&format!("cannot write {}", part.display()), e))?;
        Ok(())
    }
}

/// Worth another attempt: the network failed, or the server is overloaded or failing.
fn retryable(e: &DownloadError) -> bool {
    match e {
        DownloadError::Network { .. } => true,
        DownloadError::Status { status, .. } => {
            status.is_server_error()
                || *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::REQUEST_TIMEOUT
        }
        _ => false,
    }
}

/// Hash what a previous attempt left, so the download can continue where it stopped.
fn resume_hash(part: &PathBuf, hasher: &mut Sha256) -> Result<u64, DownloadError> {
    let mut file = match std::fs::File::open(part) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(&format!("cannot read {}", part.display()), e)),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf).map_err(|e| io(&format!("cannot read {}", part.display()), e))?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_rewrite_prefixes() {
        let m: Mirror = "https://downloads.raspberrypi.com=http://10.0.0.1/rpi".parse().unwrap();
        assert_eq!(
            apply_mirrors("https://downloads.raspberrypi.com/a/b.img.xz", std::slice::from_ref(&m)),
            "http://10.0.0.1/rpi/a/b.img.xz"
        );
        assert_eq!(apply_mirrors("https://example.org/x", &[m]), "https://example.org/x");
        assert!("no-equals".parse::<Mirror>().is_err());
        assert!("=x".parse::<Mirror>().is_err());
    }
}
