//! The DHCP server's I/O: sockets on the DHCP port and the PXE boot-server port, bound to the
//! lab interface only (SO_BINDTODEVICE, and every datagram's IP_PKTINFO interface checked);
//! each datagram parsed, decided by [`decide`] under one lock, answered, and logged in one line;
//! a reply whose decision changed a lease (an ACK) sent only once the lease journal has it on
//! disk (`lease_file`'s group commit), by a task of its own so that the next datagrams are not
//! held up. Also the start-up resolution of daemon.toml's
//! `[dhcp]` into [`Settings`] (the interface's address and subnet, the pool).

use super::boot::{BootFiles, Placeholders};
use super::known::KnownClients;
use super::lease_file::{self, Pending, Store};
use super::leases::{Change, Leases, Pool};
use super::reply::{Arrival, CLIENT_PORT, Destination, Mode, Settings, State, decide};
use super::wire::{MessageType, Request};
use crate::daemon::config::DhcpConfig;
use crate::daemon::current::Current;
use crate::daemon::net::{Datagram, Listener, cannot_listen, interface_index, interface_ipv4};
use crate::recipe::Ipv4Net;
use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Everything the server needs, resolved.
#[derive(Clone, Debug)]
pub struct DhcpServerConfig {
    pub interface: String,
    pub port: u16,
    /// 0: no boot-server port.
    pub pxe_port: u16,
    pub settings: Settings,
    /// Server mode: the pool and the lab's fixed addresses.
    pub pool: Option<(Pool, HashSet<Ipv4Addr>)>,
    pub lease_file: Option<PathBuf>,
}

impl DhcpServerConfig {
    /// Resolve `[dhcp]` against the interface as it is now: our address (unless `address`
    /// says), the subnet, the pool, the fixed addresses.
    pub fn resolve(
        interface: &str,
        address: Option<Ipv4Addr>,
        dhcp: &DhcpConfig,
        boot: &BootFiles,
        http_port: u16,
        clients: KnownClients,
    ) -> Result<DhcpServerConfig> {
        interface_index(interface)?;
        let on_interface =
            interface_ipv4(interface).with_context(|| format!("cannot read the addresses of interface {interface}"))?;
        let server = match (address, on_interface) {
            (Some(a), _) => a,
            (None, Some((a, _))) => a,
            (None, None) => bail!(
                "interface {interface} has no IPv4 address; give it one, or set `address` (the address clients are told)"
            ),
        };
        let subnet = match (dhcp.subnet, on_interface) {
            (Some(s), _) => Some(s),
            (None, Some((a, prefix))) if (1..=30).contains(&prefix) => Some(Ipv4Net { addr: a, prefix }),
            _ => None,
        };
        let pool = if dhcp.mode == Mode::Server {
            let range = dhcp.range.context("[dhcp] mode = \"server\" needs a `range` of addresses to lease")?;
            let subnet = subnet.with_context(|| {
                format!("interface {interface} has no usable IPv4 subnet; set [dhcp] subnet, e.g. \"10.42.0.0/24\"")
            })?;
            if !subnet.is_host(range.first) || !subnet.is_host(range.last) {
                bail!("[dhcp] range {range} is not inside the subnet {subnet}");
            }
            let mut reserved = HashSet::new();
            for c in clients.iter() {
                if let Some(a) = c.address {
                    if !subnet.is_host(a) || a == server {
                        bail!("client {}: address {a} is not a usable address of the subnet {subnet}", c.name);
                    }
                    reserved.insert(a);
                }
            }
            Some((
                Pool {
                    range,
                    subnet,
                    server,
                    lease_secs: dhcp.lease_secs.max(60),
                    boot_hold_secs: dhcp.boot_hold_secs.max(1),
                },
                reserved,
            ))
        } else {
            None
        };
        let settings = Settings {
            mode: dhcp.mode,
            answer: dhcp.answer,
            server,
            subnet_mask: pool.as_ref().map(|(p, _)| p.subnet.netmask()),
            subnet,
            router: dhcp.router,
            dns: dhcp.dns.clone(),
            domain: dhcp.domain.clone(),
            boot: boot.clone(),
            placeholders: Placeholders::new(server, http_port),
            clients,
        };
        let lease_file = pool.as_ref().map(|_| dhcp.lease_file.clone());
        Ok(DhcpServerConfig {
            interface: interface.to_string(),
            port: dhcp.port,
            pxe_port: dhcp.pxe_port,
            settings,
            pool,
            lease_file,
        })
    }
}

/// A bound DHCP server.
pub struct DhcpServer {
    dhcp: Arc<Listener>,
    boot_server: Option<Arc<Listener>>,
    ifindex: u32,
    store: Option<Store>,
    shared: Arc<Shared>,
}

/// What a reload reaches.
struct Shared {
    settings: Current<Settings>,
    state: Arc<Mutex<State>>,
    /// While running: where changed leases go to be made durable.
    journal: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    /// The pool and fixed addresses the leases were made for.
    pool: Mutex<Option<(Pool, HashSet<Ipv4Addr>)>>,
    lease_file: Option<PathBuf>,
    interface: String,
    port: u16,
    pxe_port: u16,
}

impl DhcpServer {
    /// Bind the sockets, read the lease file and its journal, and fold them into a new snapshot.
    pub fn bind(config: DhcpServerConfig) -> Result<DhcpServer> {
        let ifindex = interface_index(&config.interface)?;
        let bind = |port: u16, service: &str| {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            Listener::bind_on(addr, Some(&config.interface))
                .map_err(|e| cannot_listen(e, service, addr, Some(&config.interface)))
        };
        let dhcp = bind(config.port, "DHCP")?;
        let boot_server = if config.pxe_port == 0 { None } else { Some(bind(config.pxe_port, "the PXE boot server")?) };
        let mut state = State::default();
        let mut store = None;
        if let Some((pool, reserved)) = config.pool.clone() {
            let mut leases = Leases::new(pool, reserved);
            if let Some(path) = &config.lease_file {
                let (number, saved) = lease_file::load(path)?;
                let count = saved.len();
                for dropped in leases.restore(saved) {
                    warn!(mac = %dropped.mac, ip = %dropped.ip, "dhcp: saved lease no longer fits the pool; dropped");
                }
                info!(file = %path.display(), leases = count, "dhcp: leases read");
                store = Some(Store::create(path, number, &leases.snapshot())?);
            }
            state.leases = Some(leases);
        }
        let shared = Arc::new(Shared {
            settings: Current::new(config.settings),
            state: Arc::new(Mutex::new(state)),
            journal: Mutex::new(None),
            pool: Mutex::new(config.pool),
            lease_file: config.lease_file,
            interface: config.interface,
            port: config.port,
            pxe_port: config.pxe_port,
        });
        Ok(DhcpServer { dhcp: Arc::new(dhcp), boot_server: boot_server.map(Arc::new), ifindex, store, shared })
    }

    /// A handle that gives the running server a new lab.
    pub fn reloader(&self) -> DhcpReload {
        DhcpReload { shared: self.shared.clone() }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.dhcp.local_addr()
    }

    /// Serve until `shutdown` completes; the leases are saved once more on the way out.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let s = self.shared.settings.get();
        info!(
            interface = %self.shared.interface,
            bind = %self.local_addr(),
            boot_server = self.boot_server.as_ref().map_or(0, |l| l.local_addr().port()),
            mode = ?s.mode,
            answer = ?s.answer,
            server = %s.server,
            clients = s.clients.len(),
            "dhcp: serving"
        );
        let writer = self.store.take().map(|store| {
            let (queue, pending) = mpsc::unbounded_channel();
            *self.shared.journal.lock().expect("dhcp journal lock") = Some(queue);
            tokio::spawn(lease_file::run_writer(store, self.shared.state.clone(), pending))
        });
        let mut malformed = LogLimit::default();
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; 4096];
        let mut boot_buf = vec![0u8; 4096];
        loop {
            let (received, arrival) = tokio::select! {
                _ = &mut shutdown => break,
                r = self.dhcp.recv(&mut buf) => (r, Arrival::Dhcp),
                r = recv_or_wait(self.boot_server.as_deref(), &mut boot_buf) => (r, Arrival::BootServer),
            };
            let d = match received {
                Ok(d) => d,
                Err(e) => {
                    warn!(error = %e, "dhcp: receive failed");
                    continue;
                }
            };
            let bytes = if arrival == Arrival::Dhcp { &buf[..d.len] } else { &boot_buf[..d.len] };
            self.on_datagram(bytes, d, arrival, &mut malformed).await;
        }
        // The writer commits what is queued, folds the journal into the snapshot and ends.
        self.shared.journal.lock().expect("dhcp journal lock").take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        info!("dhcp: stopped");
        Ok(())
    }

    async fn on_datagram(&self, bytes: &[u8], d: Datagram, arrival: Arrival, malformed: &mut LogLimit) {
        if d.ifindex.is_some_and(|i| i != self.ifindex) {
            debug!(peer = %d.peer, ifindex = ?d.ifindex, "dhcp: arrived on another interface; ignored");
            return;
        }
        let SocketAddr::V4(peer) = d.peer else { return };
        let req = match Request::parse(bytes) {
            Ok(r) => r,
            Err(e) => {
                if malformed.allow() {
                    info!(peer = %peer, bytes = bytes.len(), error = %e, "dhcp: malformed packet ignored");
                }
                return;
            }
        };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |t| t.as_secs());
        let (decision, committed) = {
            let settings = self.shared.settings.get();
            let mut state = self.shared.state.lock().expect("dhcp state lock");
            let decision = decide(&settings, &mut state, &req, arrival, peer, now);
            // Queued under the lock, so the journal has the changes in the order they were made.
            let changes = state.leases.as_mut().map(Leases::take_changes).unwrap_or_default();
            let committed = if changes.is_empty() { None } else { self.shared.journal(changes, true) };
            (decision, committed)
        };
        let client = decision.client.as_deref().unwrap_or("-");
        let Some((reply, destination)) = decision.reply else {
            if decision.warning {
                warn!(mac = %req.mac, kind = ?req.message_type, client, outcome = %decision.outcome, "dhcp");
                return;
            }
            debug!(mac = %req.mac, xid = format_args!("{:#010x}", req.xid), kind = ?req.message_type, class = %decision.class, client, outcome = %decision.outcome, "dhcp");
            return;
        };
        let out = reply.emit(req.max_message_size);
        let to = match destination {
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Destination::Unicast(a) => a,
        };
        let socket = match (arrival, &self.boot_server) {
            (Arrival::BootServer, Some(l)) => l.clone(),
            _ => self.dhcp.clone(),
        };
        let outgoing = Outgoing {
            bytes: out,
            to,
            mac: req.mac.to_string(),
            xid: req.xid,
            kind: req.message_type,
            class: decision.class,
            client: client.to_string(),
            outcome: decision.outcome,
            file: reply.file.as_deref().map_or_else(|| "-".into(), |f| String::from_utf8_lossy(f).into_owned()),
        };
        match committed {
            None => outgoing.send(&socket).await,
            // Not before its lease is durable: an ACK a crash could forget gives the address twice.
            Some(committed) => {
                tokio::spawn(async move {
                    match committed.await {
                        Ok(()) => outgoing.send(&socket).await,
                        Err(_) => {
                            warn!(mac = %outgoing.mac, outcome = %outgoing.outcome, "dhcp: reply not sent: its lease could not be saved")
                        }
                    }
                });
            }
        }
    }
}

impl Shared {
    /// Queue `changes` for the journal; with `wait`, the receiver is told once they are durable.
    /// `None` when no journal runs (no lease file) or nobody is to be told.
    fn journal(&self, changes: Vec<Change>, wait: bool) -> Option<oneshot::Receiver<()>> {
        let journal = self.journal.lock().expect("dhcp journal lock");
        let queue = journal.as_ref()?;
        let (done, committed) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let _ = queue.send(Pending { changes, done });
        committed
    }
}

/// Gives a running server a new lab (SIGHUP): its clients, boot files and options. The leases
/// stay: unchanged when the pool is the same, else carried into the new pool where they fit.
pub struct DhcpReload {
    shared: Arc<Shared>,
}

impl DhcpReload {
    /// Answer with `config`'s settings from now on. The interface, ports, mode and lease file
    /// need a restart; each that differs is named in the result.
    pub fn apply(&self, config: DhcpServerConfig) -> Vec<String> {
        let s = &self.shared;
        let mut restart = Vec::new();
        let running = s.settings.get();
        if s.interface != config.interface || s.port != config.port || s.pxe_port != config.pxe_port {
            restart.push("dhcp: the interface or ports changed; they apply at the next restart".to_string());
        }
        if running.mode != config.settings.mode || s.lease_file != config.lease_file {
            restart.push("dhcp: the mode or lease file changed; they apply at the next restart".to_string());
            return restart;
        }
        let mut pool = s.pool.lock().expect("dhcp pool lock");
        if *pool != config.pool
            && let Some((new_pool, reserved)) = config.pool.clone()
        {
            let mut state = s.state.lock().expect("dhcp state lock");
            let mut leases = Leases::new(new_pool, reserved);
            let mut freed = Vec::new();
            if let Some(old) = state.leases.as_ref() {
                for dropped in leases.restore(old.snapshot()) {
                    warn!(mac = %dropped.mac, ip = %dropped.ip, "dhcp: lease no longer fits the new pool; dropped");
                    freed.push(Change::Free(dropped.ip));
                }
            }
            state.leases = Some(leases);
            // Still under the state lock: the journal sees the drops in order with every other change.
            if !freed.is_empty() {
                s.journal(freed, false);
            }
            *pool = config.pool;
        }
        s.settings.set(config.settings);
        restart
    }
}

/// A reply ready to go, and what its log line says.
struct Outgoing {
    bytes: Vec<u8>,
    to: SocketAddrV4,
    mac: String,
    xid: u32,
    kind: MessageType,
    class: String,
    client: String,
    outcome: String,
    file: String,
}

impl Outgoing {
    async fn send(self, socket: &Listener) {
        let (mac, kind, to) = (&self.mac, self.kind, self.to);
        let sent = socket.send_to(&self.bytes, SocketAddr::V4(to)).await;
        let xid = format_args!("{:#010x}", self.xid);
        match sent {
            Ok(_) => {
                info!(mac = %mac, xid, kind = ?kind, class = %self.class, client = self.client.as_str(), outcome = %self.outcome, file = self.file.as_str(), to = %to, "dhcp")
            }
            Err(e) => {
                warn!(mac = %mac, xid, kind = ?kind, outcome = %self.outcome, to = %to, error = %e, "dhcp: reply not sent")
            }
        }
    }
}

/// Waits forever when there is no such socket.
async fn recv_or_wait(listener: Option<&Listener>, buf: &mut [u8]) -> std::io::Result<Datagram> {
    match listener {
        Some(l) => l.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// At most 20 log lines a second about bad packets, however many arrive.
#[derive(Default)]
struct LogLimit {
    window: Option<Instant>,
    count: u32,
}

impl LogLimit {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self.window.is_none_or(|w| now - w > Duration::from_secs(1)) {
            self.window = Some(now);
            self.count = 0;
        }
        self.count += 1;
        self.count <= 20
    }
}
