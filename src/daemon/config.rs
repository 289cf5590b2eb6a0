//! `daemon.toml`, the daemon's configuration (format documented in docs/daemon.md): where the
//! lab tree is, the lab interface, how each service listens and what it allows, what PCs boot,
//! and the lab's clients. `bramble build` generates it from a recipe; people may write it by
//! hand.

use super::dhcp::boot::BootFiles;
use super::dhcp::known::{ClientKind, KnownClient, KnownClients};
use super::dhcp::{Answer, Mode};
use super::tftp::lookup::{ClientRoute, Routes};
use super::tftp::options::Limits;
use crate::diagnostic::{Diagnostic, render};
use crate::recipe::{Ipv4Net, Ipv4Range, MacAddr, Model, Serial};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The lab tree (`clients/`, `os/`, `eeprom/`); relative to this file's folder.
    pub lab: PathBuf,
    /// The lab interface: DHCP binds to it; TFTP too when it is set.
    pub interface: Option<String>,
    /// The address clients are told (siaddr, options 54 and 66, URLs); default: the
    /// interface's first IPv4 address at start-up.
    pub address: Option<Ipv4Addr>,
    #[serde(default)]
    pub tftp: TftpConfig,
    /// No `[dhcp]` table: DHCP is off.
    pub dhcp: Option<DhcpConfig>,
    #[serde(default)]
    pub boot: BootFiles,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientConfig>,
}

/// Parse a string field with the type's own `FromStr`, so its message reaches the user.
fn parsed<'de, D: Deserializer<'de>, T: FromStr<Err = String>>(d: D) -> Result<Option<T>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
}

/// `[dhcp]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhcpConfig {
    pub mode: Mode,
    pub answer: Answer,
    /// Where DHCP listens; replies go to the client port 68 (or a relay's 67).
    pub port: u16,
    /// The PXE boot-server port; 0 = off.
    pub pxe_port: u16,
    /// Server mode: the pool.
    #[serde(deserialize_with = "parsed")]
    pub range: Option<Ipv4Range>,
    /// Server mode; default: the interface's address and prefix.
    #[serde(deserialize_with = "parsed")]
    pub subnet: Option<Ipv4Net>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_secs: u32,
    /// Server mode: how long a booting Pi's offer holds its address before Linux on it
    /// REQUESTs it (the Pi 3 ROM never does).
    pub boot_hold_secs: u64,
    /// Relative to daemon.toml's folder.
    pub lease_file: PathBuf,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            mode: Mode::Proxy,
            answer: Answer::Known,
            port: 67,
            pxe_port: 4011,
            range: None,
            subnet: None,
            router: None,
            dns: Vec::new(),
            domain: None,
            lease_secs: 3600,
            boot_hold_secs: crate::daemon::dhcp::leases::BOOT_HOLD_SECS,
            lease_file: PathBuf::from("leases.toml"),
        }
    }
}

/// `model` of a `[[client]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientModel {
    Pi3,
    Pi4,
    Pi5,
    Pc,
}

impl ClientModel {
    pub fn kind(self) -> ClientKind {
        match self {
            ClientModel::Pi3 => ClientKind::Pi(Model::Pi3),
            ClientModel::Pi4 => ClientKind::Pi(Model::Pi4),
            ClientModel::Pi5 => ClientKind::Pi(Model::Pi5),
            ClientModel::Pc => ClientKind::Pc,
        }
    }
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
    /// pi3 | pi4 | pi5 | pc: how DHCP answers it (default: from what it sends).
    pub model: Option<ClientModel>,
    /// A fixed address (DHCP server mode).
    pub address: Option<Ipv4Addr>,
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
        let folder = path.parent().unwrap_or(Path::new("."));
        if config.lab.is_relative() {
            config.lab = folder.join(&config.lab);
        }
        if let Some(dhcp) = config.dhcp.as_mut()
            && dhcp.lease_file.is_relative()
        {
            dhcp.lease_file = folder.join(&dhcp.lease_file);
        }
        Ok(config)
    }

    /// Parse config text; errors come rendered against the text.
    pub fn parse(text: &str, name: &str) -> Result<DaemonConfig> {
        let config: DaemonConfig = toml::from_str(text).map_err(|e| {
            let d = Diagnostic::error(e.span(), e.message().to_string()).help("see docs/daemon.md for the format");
            anyhow::anyhow!("{}invalid daemon configuration", render(&[d], text, name, false))
        })?;
        // Shared MACs and serials first: they say more than the prefix they also share.
        config.known_clients()?;
        config.routes()?;
        config.boot.check().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if let Some(dhcp) = &config.dhcp
            && dhcp.mode == Mode::Server
            && dhcp.range.is_none()
        {
            bail!(
                "{name}: [dhcp] mode = \"server\" needs a `range` of addresses to lease, e.g. range = \"10.42.0.100-10.42.0.199\""
            );
        }
        if let Some(dhcp) = &config.dhcp
            && dhcp.pxe_port == dhcp.port
        {
            bail!(
                "{name}: [dhcp] port and pxe_port are both {}; the boot-server port must differ (0 turns it off)",
                dhcp.port
            );
        }
        if let Some(domain) = config.dhcp.as_ref().and_then(|d| d.domain.as_ref())
            && (domain.is_empty() || domain.len() > 253)
        {
            bail!("{name}: [dhcp] domain `{domain}` must be 1 to 253 characters");
        }
        Ok(config)
    }

    /// The lab's clients as DHCP knows them; a MAC, serial or fixed address used twice is an
    /// error.
    pub fn known_clients(&self) -> Result<KnownClients> {
        let mut list = Vec::new();
        let mut seen: HashMap<String, &str> = HashMap::new();
        for c in &self.clients {
            let serial: Option<Serial> = c
                .serial
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: String| anyhow::anyhow!("client {}: {e}", c.name))?;
            let mac: Option<MacAddr> = c
                .mac
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: String| anyhow::anyhow!("client {}: {e}", c.name))?;
            let keys = [
                serial.map(|s| format!("serial {s}")),
                mac.map(|m| format!("MAC {m}")),
                c.address.map(|a| format!("address {a}")),
            ];
            for key in keys.into_iter().flatten() {
                if let Some(other) = seen.insert(key.clone(), &c.name) {
                    bail!("clients {other} and {} both have {key}", c.name);
                }
            }
            list.push(KnownClient {
                name: c.name.clone(),
                mac,
                serial,
                kind: c.model.map(ClientModel::kind),
                address: c.address,
            });
        }
        Ok(KnownClients::new(list))
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
            for prefix in &prefixes {
                let folder = prefix.join("/").to_ascii_lowercase();
                if let Some(other) =
                    routes.clients.iter().find(|r| r.prefixes.iter().any(|p| p.join("/").eq_ignore_ascii_case(&folder)))
                {
                    bail!(
                        "clients {} and {name} both ask for their files under `{folder}/`: the server could not tell their requests apart; give each its own serial, mac or prefix",
                        other.name
                    );
                }
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
        assert!(err("lab = \"x\"\n[dhcp]\nmode = \"server\"\n").contains("needs a `range`"));
        assert!(err("lab = \"x\"\n[dhcp]\nport = 4011\n").contains("must differ"));
        assert!(err("lab = \"x\"\n[dhcp]\nmode = \"relay\"\n").contains("d.toml:3:8"));
        assert!(err("lab = \"x\"\n[dhcp]\nrange = \"10.0.0.9-10.0.0.1\"\n").contains("runs backwards"));
        assert!(err("lab = \"x\"\n[dhcp]\nsubnet = \"10.0.0.0\"\n").contains("no prefix length"));
        assert!(err("lab = \"x\"\n[boot]\nipxe = \"{http}/{name}\"\n").contains("unknown placeholder `{name}`"));
        let twice = "lab = \"x\"\n[[client]]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"\nos = \"p\"\n[[client]]\nname = \"b\"\nmac = \"02-00-00-00-00-01\"\nos = \"p\"\n";
        assert!(err(twice).contains("clients a and b both have MAC 02:00:00:00:00:01"));
        let shared = "lab = \"x\"\n[[client]]\nname = \"a\"\nprefix = \"lab/\"\nos = \"p\"\n[[client]]\nname = \"b\"\nprefix = \"LAB\"\nos = \"p\"\n";
        assert!(err(shared).contains("clients a and b both ask for their files under `lab/`"), "{}", err(shared));
        let serial = "lab = \"x\"\n[[client]]\nname = \"a\"\nserial = \"0000000a\"\nos = \"p\"\n[[client]]\nname = \"b\"\nprefix = \"0000000A/\"\nos = \"p\"\n";
        assert!(err(serial).contains("clients a and b both ask for their files under `0000000a/`"), "{}", err(serial));
        assert!(
            err("lab = \"x\"\n[[client]]\nname = \"a\"\nmodel = \"pi6\"\nserial = \"00000001\"\nos = \"p\"\n")
                .contains("d.toml:4:9")
        );
    }

    #[test]
    fn dhcp_keys_and_defaults() {
        let text = r#"
lab = "lab"
interface = "eth0"
address = "10.42.0.1"
[dhcp]
mode = "server"
answer = "pis"
range = "10.42.0.100-10.42.0.199"
subnet = "10.42.0.0/24"
router = "10.42.0.254"
dns = ["10.42.0.254", "9.9.9.9"]
domain = "lab.example"
lease_secs = 600
[boot]
bios = "undionly.kpxe"
[http]
bind = "0.0.0.0:8080"
[[client]]
name = "node1"
serial = "d9780558"
model = "pi4"
address = "10.42.0.11"
os = "pios"
"#;
        let c = DaemonConfig::parse(text, "daemon.toml").unwrap();
        let d = c.dhcp.as_ref().unwrap();
        assert_eq!((d.mode, d.answer, d.port, d.pxe_port, d.lease_secs), (Mode::Server, Answer::Pis, 67, 4011, 600));
        assert_eq!(d.range.unwrap().to_string(), "10.42.0.100-10.42.0.199");
        assert_eq!(d.subnet.unwrap().prefix, 24);
        assert_eq!(d.dns.len(), 2);
        assert_eq!(c.boot.bios, "undionly.kpxe");
        assert_eq!(c.boot.uefi_x64, "ipxe.efi");
        assert_eq!(c.http.bind.port(), 8080);
        let known = c.known_clients().unwrap();
        let node = known.find(MacAddr([0; 6]), &[Serial(0xd978_0558)]).unwrap();
        assert_eq!((node.kind, node.address), (Some(ClientKind::Pi(Model::Pi4)), Some(Ipv4Addr::new(10, 42, 0, 11))));
        // No [dhcp] table: off; an empty one: proxy, answer known.
        assert!(DaemonConfig::parse("lab = \"x\"\n", "d").unwrap().dhcp.is_none());
        let d = DaemonConfig::parse("lab = \"x\"\n[dhcp]\n", "d").unwrap().dhcp.unwrap();
        assert_eq!((d.mode, d.answer, d.lease_file), (Mode::Proxy, Answer::Known, PathBuf::from("leases.toml")));
    }
}
