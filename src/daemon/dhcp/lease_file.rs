//! Server-mode leases on disk: a TOML snapshot, read at start-up and rewritten whole (temporary
//! file, fsync, rename: `crate::output`) by a background task when leases changed, at most
//! every [`DEBOUNCE`], and once more at shutdown. Never on the path of a reply: dnsmasq's
//! synchronous rewrite caps it at about 160 exchanges a second (pxe.md §1.1).

use super::leases::Lease;
use super::reply::State;
use crate::recipe::MacAddr;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Changes within this long of each other are written together.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFile {
    #[serde(default, rename = "lease")]
    leases: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    mac: String,
    ip: Ipv4Addr,
    /// Unix seconds.
    expires: u64,
}

/// The snapshot's text.
pub fn encode(leases: &[Lease]) -> String {
    let file = LeaseFile {
        leases: leases.iter().map(|l| Record { mac: l.mac.to_string(), ip: l.ip, expires: l.expires }).collect(),
    };
    let body = toml::to_string(&file).unwrap_or_default();
    format!("# Bramble's DHCP leases, rewritten by `bramble serve` (expires: Unix seconds).\n\n{body}")
}

/// The most a lease file may hold: some 70 bytes a lease, so room for far more leases than the
/// largest pool (a /16) has addresses.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Read a snapshot; a missing file is no leases.
pub fn load(path: &Path) -> Result<Vec<Lease>> {
    let Some(text) = read_bounded(path)? else { return Ok(Vec::new()) };
    let file: LeaseFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the lease file {} is damaged ({}); move it away to start with no leases",
            path.display(),
            clip(&e.to_string())
        )
    })?;
    file.leases
        .into_iter()
        .enumerate()
        .map(|(n, r)| {
            let mac: MacAddr = r.mac.parse().map_err(|_: String| {
                anyhow::anyhow!(
                    "the lease file {}: lease {}: `{}` is not a MAC address; move the file away to start with no leases",
                    path.display(),
                    n + 1,
                    clip(&r.mac)
                )
            })?;
            Ok(Lease { mac, ip: r.ip, expires: r.expires, bound: true })
        })
        .collect()
}

/// The text of `path` if it exists: a regular file (opened without blocking, so a FIFO put in
/// its place cannot hang start-up, and checked after opening, so a symlink to a device is seen
/// for what it is) of at most [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("the lease file {}", path.display());
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", what())),
    };
    let meta = file.metadata().with_context(|| format!("cannot read {}", what()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{} is not a regular file (it is {}); point lease_file (--lease-file) at a file, or remove what is there",
            what(),
            kind_of(&meta.file_type())
        );
    }
    if meta.len() > MAX_FILE_BYTES {
        anyhow::bail!(
            "{} is {} bytes, more than any lease file can be ({MAX_FILE_BYTES}); move it away",
            what(),
            meta.len()
        );
    }
    let mut bytes = Vec::new();
    (&mut file).take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", what()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        anyhow::bail!("{} grew past {MAX_FILE_BYTES} bytes while being read; move it away", what());
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        anyhow::anyhow!("{} is not UTF-8 text (byte {}); move it away", what(), e.utf8_error().valid_up_to())
    })
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// At most [`CLIP`] characters of `text`, each line at most 100: a parser's message quotes the
/// offending line, which can be megabytes long.
fn clip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if !out.is_empty() {
            out.push(' ');
        }
        let line = line.trim();
        out.extend(line.chars().take(100));
        if line.chars().nth(100).is_some() {
            out.push('…');
        }
        if out.chars().count() > CLIP {
            return out.chars().take(CLIP).collect::<String>() + "…";
        }
    }
    out
}

const CLIP: usize = 400;

/// Write a snapshot atomically.
pub fn save(path: &Path, leases: &[Lease]) -> Result<()> {
    crate::output::write_file(path, encode(leases).as_bytes())
}

/// The background writer: wakes on `changed`, waits [`DEBOUNCE`] for more, writes the
/// snapshot if the leases' generation moved; after `shutdown`, writes once more and returns.
pub async fn run_writer(
    path: PathBuf,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    shutdown: impl Future<Output = ()>,
) {
    let mut written = generation(&state);
    tokio::pin!(shutdown);
    loop {
        let stopping = tokio::select! {
            _ = &mut shutdown => true,
            _ = changed.notified() => false,
        };
        if !stopping {
            tokio::time::sleep(DEBOUNCE).await;
        }
        let (now, snapshot) = {
            let st = state.lock().expect("dhcp state lock");
            match st.leases.as_ref() {
                Some(l) if l.generation() != written => (l.generation(), l.snapshot()),
                _ => (written, Vec::new()),
            }
        };
        if now != written {
            let target = path.clone();
            let count = snapshot.len();
            match tokio::task::spawn_blocking(move || save(&target, &snapshot)).await {
                Ok(Ok(())) => {
                    written = now;
                    debug!(file = %path.display(), leases = count, "dhcp: leases saved");
                }
                Ok(Err(e)) => {
                    warn!(error = format!("{e:#}"), "dhcp: cannot save leases; will retry on the next change")
                }
                Err(e) => warn!(error = %e, "dhcp: lease writer failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

fn generation(state: &Mutex<State>) -> u64 {
    state.lock().expect("dhcp state lock").leases.as_ref().map_or(0, |l| l.generation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.toml");
        assert!(load(&path).unwrap().is_empty());
        let leases = vec![
            Lease {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ip: Ipv4Addr::new(10, 0, 0, 5),
                expires: 1_800_000_000,
                bound: true,
            },
            Lease { mac: MacAddr([2, 0, 0, 0, 0, 2]), ip: Ipv4Addr::new(10, 0, 0, 6), expires: 5, bound: true },
        ];
        save(&path, &leases).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("mac = \"02:00:00:00:00:01\""), "{text}");
        assert_eq!(load(&path).unwrap(), leases);
        std::fs::write(&path, "[[lease]]\nmac = \"zz\"\nip = \"10.0.0.1\"\nexpires = 1\n").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("not a MAC address"));
        std::fs::write(&path, "[[lease]\n").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("is damaged ("));
    }

    #[test]
    fn only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.toml");
        let err = |path: &Path| format!("{:#}", load(path).unwrap_err());
        // A FIFO: refused at once, not waited on.
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = err(&path);
        assert!(e.contains("is not a regular file (it is a FIFO)") && e.contains(path.to_str().unwrap()), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(err(&path).contains("(it is a character device)"), "{}", err(&path));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(err(&path).contains("(it is a directory)"));
        std::fs::remove_dir(&path).unwrap();
        // A huge MAC, a huge unparsable line: the message names the file and stays short.
        let huge = "a".repeat(5 << 20);
        std::fs::write(&path, format!("[[lease]]\nmac = \"{huge}\"\nip = \"10.0.0.1\"\nexpires = 1\n")).unwrap();
        let e = err(&path);
        assert!(e.contains("lease 1: `aaaa") && e.contains("is not a MAC address") && e.len() < 1000, "{}", e.len());
        std::fs::write(&path, format!("[[lease]]\nmac = {huge}\n")).unwrap();
        let e = err(&path);
        assert!(e.contains("is damaged") && e.contains("line 2") && e.len() < 1000, "{}: {}", e.len(), &e[..200]);
        // Too big to be a lease file.
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(err(&path).contains("more than any lease file can be"));
    }
}
