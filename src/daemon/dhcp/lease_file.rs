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

/// Read a snapshot; a missing file is no leases.
pub fn load(path: &Path) -> Result<Vec<Lease>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read the lease file {}", path.display())),
    };
    let file: LeaseFile = toml::from_str(&text).with_context(|| {
        format!("the lease file {} is damaged; move it away to start with no leases", path.display())
    })?;
    file.leases
        .into_iter()
        .map(|r| {
            let mac: MacAddr = r.mac.parse().map_err(|e: String| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(Lease { mac, ip: r.ip, expires: r.expires, bound: true })
        })
        .collect()
}

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
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("is damaged; move it away"));
    }
}
