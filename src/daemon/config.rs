//! `daemon.toml`, the daemon's configuration (format documented in docs/daemon.md): where the
//! lab tree is, how each service listens and what it allows, and the lab's clients. `bramble
//! build` generates it from a recipe; people may write it by hand.

use super::tftp::lookup::{ClientRoute, Routes};
use super::tftp::options::Limits;
use crate::diagnostic::{Diagnostic, render};
use crate::recipe::{MacAddr, Serial};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The lab tree (`clients/`, `os/`, `eeprom/`); relative to this file's folder.
    pub lab: PathBuf,
    #[serde(default)]
    pub tftp: TftpConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TftpConfig {
    pub bind: SocketAddr,
    /// Transfers at once, all clients together; requests beyond it are dropped, so the client
    /// retries them.
    pub max_transfers: usize,
    /// Transfers at once from one client address.
    pub max_per_client: usize,
    /// Memory for cached file contents.
    pub cache_mib: u64,
    /// Cap on the block size; default: the receiving interface's MTU − 32.
    pub max_blksize: Option<u16>,
    pub max_windowsize: u16,
    /// First retransmission timeout (doubling up to 5 s) unless the client sets one.
    pub timeout_ms: u64,
    pub retries: u32,
    /// Folders (inside the lab) for names without a client prefix: the Pi 3 ROM's
    /// `bootcode.bin`, PC boot loaders.
    pub root_dirs: Vec<PathBuf>,
}

impl Default for TftpConfig {
    fn default() -> Self {
        let limits = Limits::default();
        TftpConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 69)),
            max_transfers: 512,
            max_per_client: 32,
            cache_mib: 256,
            max_blksize: None,
            max_windowsize: limits.max_windowsize,
            timeout_ms: limits.timeout.as_millis() as u64,
            retries: limits.retries,
            root_dirs: Vec::new(),
        }
    }
}

impl TftpConfig {
    /// The negotiation limits, with the block-size cap for an interface of `mtu`.
    pub fn limits(&self, mtu: Option<u32>) -> Limits {
        let by_mtu = mtu.map(|m| m.saturating_sub(32).min(u32::from(u16::MAX)) as u16);
        let defaults = Limits::default();
        Limits {
            max_blksize: self.max_blksize.or(by_mtu).unwrap_or(defaults.max_blksize),
            max_windowsize: self.max_windowsize.max(1),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            max_timeout: defaults.max_timeout,
            retries: self.retries,
        }
    }
}

/// `[http]`: the HTTP server for UEFI HTTP boot, iPXE and the Pi's HTTP boot (docs/daemon.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Connections at once, all clients together; more wait in the listen queue.
    pub max_connections: usize,
    /// Connections at once from one client address; more are closed at once.
    pub max_per_client: usize,
    /// How long a connection may wait for a request: between keep-alive requests, and for a
    /// request's headers to arrive in full (so a client that trickles them, slowloris-style,
    /// holds its place no longer than this).
    pub idle_timeout_ms: u64,
    /// How long a client may take no data while a response is being sent before it is dropped.
    pub send_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 80)),
            max_connections: 256,
            max_per_client: 32,
            idle_timeout_ms: 15_000,
            send_timeout_ms: 30_000,
        }
    }
}

impl HttpConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms.max(1))
    }
}

/// One client of the lab, as the TFTP server sees it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub name: String,
    /// 8 hex digits (TFTP_PREFIX=0).
    pub serial: Option<String>,
    /// Its MAC; the prefix is the dashed form (TFTP_PREFIX=2).
    pub mac: Option<String>,
    /// TFTP_PREFIX_STR (TFTP_PREFIX=1).
    pub prefix: Option<String>,
    /// Its OS: boot files from `os/<os>/boot/` after `clients/<name>/`.
    pub os: Option<String>,
    /// Instead of the two folders `os` implies: folders inside the lab, searched in order.
    pub dirs: Option<Vec<PathBuf>>,
}

/// A folder inside the lab: relative, without `..`.
fn check_inside(dir: &Path, what: &str) -> Result<()> {
    if dir.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        bail!("{what} `{}` must be a relative path inside the lab, without `..`", dir.display());
    }
    Ok(())
}

impl DaemonConfig {
    /// Read and check `path`; relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<DaemonConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        if config.lab.is_relative() {
            config.lab = path.parent().unwrap_or(Path::new(".")).join(&config.lab);
        }
        Ok(config)
    }

    /// Parse config text; errors come rendered against the text.
    pub fn parse(text: &str, name: &str) -> Result<DaemonConfig> {
        let config: DaemonConfig = toml::from_str(text).map_err(|e| {
            let d = Diagnostic::error(e.span(), e.message().to_string()).help("see docs/daemon.md for the format");
            anyhow::anyhow!("{}invalid daemon configuration", render(&[d], text, name, false))
        })?;
        config.routes()?;
        Ok(config)
    }

    /// The TFTP routes for the lab's clients.
    pub fn routes(&self) -> Result<Routes> {
        let mut routes = Routes { clients: Vec::new(), root_dirs: self.tftp.root_dirs.clone() };
        for dir in &self.tftp.root_dirs {
            check_inside(dir, "tftp.root_dirs entry")?;
        }
        for c in &self.clients {
            let name = &c.name;
            if name.is_empty() || name.contains('/') || routes.clients.iter().any(|r: &ClientRoute| &r.name == name) {
                bail!("client name `{name}` is empty, has a '/', or is used twice");
            }
            let mut prefixes = Vec::new();
            if let Some(s) = &c.serial {
                let serial: Serial = s.parse().map_err(|e| anyhow::anyhow!("client {name}: {e}"))?;
                prefixes.push(vec![serial.to_string()]);
            }
            if let Some(m) = &c.mac {
                let mac: MacAddr = m.parse().map_err(|e| anyhow::anyhow!("client {name}: {e}"))?;
                prefixes.push(vec![mac.dashed()]);
            }
            if let Some(p) = &c.prefix {
                let parts: Vec<String> = p.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
                if parts.is_empty() || parts.iter().any(|s| s == "..") {
                    bail!("client {name}: prefix `{p}` must name a folder, without `..`");
                }
                prefixes.push(parts);
            }
            if prefixes.is_empty() {
                bail!("client {name} has no serial, mac or prefix: the server could not tell its requests apart");
            }
            let dirs = match (&c.dirs, &c.os) {
                (Some(dirs), _) => dirs.clone(),
                (None, Some(os)) => {
                    vec![PathBuf::from("clients").join(name), PathBuf::from("os").join(os).join("boot")]
                }
                (None, None) => bail!("client {name} needs `os` or `dirs`"),
            };
            for dir in &dirs {
                check_inside(dir, &format!("client {name}: folder"))?;
            }
            routes.clients.push(ClientRoute { name: name.clone(), prefixes, dirs });
        }
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
lab = "lab"

[tftp]
bind = "127.0.0.1:6969"
root_dirs = ["os/pios/boot"]

[http]
bind = "127.0.0.1:8080"
max_connections = 64

[[client]]
name = "node1"
serial = "10000000d9780558"
mac = "DC:A6:32:01:36:C2"
os = "pios"

[[client]]
name = "node2"
prefix = "lab/node2/"
dirs = ["clients/node2", "shared"]
"#;

    #[test]
    fn example_routes() {
        let config = DaemonConfig::parse(EXAMPLE, "daemon.toml").unwrap();
        assert_eq!(config.tftp.bind, "127.0.0.1:6969".parse().unwrap());
        assert_eq!(config.tftp.max_transfers, 512);
        assert_eq!(config.http.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((config.http.max_connections, config.http.max_per_client), (64, 32));
        let defaults = DaemonConfig::parse("lab = \"x\"\n", "d.toml").unwrap().http;
        assert_eq!(defaults.bind, "0.0.0.0:80".parse().unwrap());
        assert_eq!(defaults.idle_timeout(), Duration::from_secs(15));
        let routes = config.routes().unwrap();
        assert_eq!(
            routes.clients[0].prefixes,
            vec![vec!["d9780558".to_string()], vec!["dc-a6-32-01-36-c2".to_string()]]
        );
        assert_eq!(routes.clients[0].dirs, vec![PathBuf::from("clients/node1"), PathBuf::from("os/pios/boot")]);
        assert_eq!(routes.clients[1].prefixes, vec![vec!["lab".to_string(), "node2".to_string()]]);
    }

    #[test]
    fn limits_follow_the_mtu_unless_capped() {
        let mut t = TftpConfig::default();
        assert_eq!(t.limits(Some(1500)).max_blksize, 1468);
        assert_eq!(t.limits(Some(9000)).max_blksize, 8968);
        assert_eq!(t.limits(None).max_blksize, 1468);
        t.max_blksize = Some(1024);
        assert_eq!(t.limits(Some(9000)).max_blksize, 1024);
    }

    #[test]
    fn mistakes_are_explained() {
        let err = |text: &str| format!("{:#}", DaemonConfig::parse(text, "d.toml").unwrap_err());
        assert!(err("lab = \"x\"\n[tftp]\nbnd = \"1.2.3.4:69\"\n").contains("d.toml:3:1"));
        assert!(err("lab = \"x\"\n[http]\nmax_conections = 5\n").contains("d.toml:3:1"));
        assert!(err("lab = \"x\"\n[http]\nbind = \"localhost\"\n").contains("d.toml:3:8"));
        assert!(err("lab = \"x\"\n[[client]]\nname = \"a\"\nos = \"p\"\n").contains("no serial, mac or prefix"));
        assert!(
            err("lab = \"x\"\n[[client]]\nname = \"a\"\nserial = \"zz\"\nos = \"p\"\n").contains("not a serial number")
        );
        assert!(
            err("lab = \"x\"\n[[client]]\nname = \"a\"\nserial = \"00000001\"\ndirs = [\"../etc\"]\n")
                .contains("without `..`")
        );
        assert!(err("lab = \"x\"\n[tftp]\nroot_dirs = [\"/etc\"]\n").contains("relative path"));
        assert!(err("lab = \"x\"\n[[client]]\nname = \"a\"\nserial = \"00000001\"\n").contains("needs `os` or `dirs`"));
    }
}
