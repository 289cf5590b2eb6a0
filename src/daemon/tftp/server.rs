//! The TFTP server's I/O: requests arrive on the listening port; each read request gets its own
//! task and its own ephemeral port (its transfer ID), runs the [`Transfer`] state machine, and
//! leaves one log line. Limits: transfers overall and per client address; a repeated request
//! from the same address and port replaces the transfer in progress.

use super::cache::{Content, FileCache};
use super::lookup::Routes;
use super::options::{Mode, negotiate, to_netascii};
use super::transfer::{Action, Outcome, Transfer};
use super::wire::{ErrorCode, Packet};
use crate::daemon::config::TftpConfig;
use crate::daemon::current::Current;
use crate::daemon::files::{self, LookupError};
use crate::daemon::names::{NameError, components};
use crate::daemon::net::{Datagram, Listener, cannot_listen, interface_mtu};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

/// What the server serves and how.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The served tree; names resolve inside it only.
    pub root: PathBuf,
    pub routes: Routes,
    pub tftp: TftpConfig,
    /// The lab interface: listen on it only (SO_BINDTODEVICE).
    pub device: Option<String>,
}

/// A request, owned, for the transfer task.
#[derive(Clone, Debug)]
struct Request {
    filename: Vec<u8>,
    mode: String,
    options: Vec<(String, String)>,
}

struct Running {
    id: u64,
    abort: AbortHandle,
    /// Set before the abort. A task that the abort finds in the middle of a poll runs on until
    /// it next waits, and a packet already queued on its socket would otherwise be answered in
    /// that time: the old transfer checks this before it sends anything.
    replaced: Arc<AtomicBool>,
}

#[derive(Default)]
struct Registry {
    /// The transfer each client address and port has running.
    by_peer: HashMap<SocketAddr, Running>,
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
    last_refusal_log: Option<Instant>,
}

/// What a reload replaces: the lab's folder and its clients' routes.
struct Lab {
    root: PathBuf,
    routes: Routes,
}

struct Shared {
    lab: Current<Lab>,
    config: TftpConfig,
    device: Option<String>,
    cache: FileCache,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    mtus: Mutex<HashMap<u32, Option<u32>>>,
}

impl Shared {
    fn mtu(&self, ifindex: Option<u32>) -> Option<u32> {
        let ifindex = ifindex?;
        *self.mtus.lock().expect("mtu lock").entry(ifindex).or_insert_with(|| interface_mtu(ifindex))
    }
}

/// Frees a transfer's place in the registry when its task ends, however it ends.
struct Slot {
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut reg = self.shared.registry.lock().expect("registry lock");
        if reg.by_peer.get(&self.peer).is_some_and(|r| r.id == self.id) {
            reg.by_peer.remove(&self.peer);
        }
        reg.total -= 1;
        if let Some(n) = reg.per_ip.get_mut(&self.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                reg.per_ip.remove(&self.peer.ip());
            }
        }
    }
}

/// A running TFTP server.
pub struct TftpServer {
    listener: Listener,
    shared: Arc<Shared>,
}

impl TftpServer {
    pub fn bind(config: ServerConfig) -> Result<TftpServer> {
        let root = config.root.canonicalize().with_context(|| format!("cannot serve {}", config.root.display()))?;
        let device = config.device.as_deref();
        let listener = Listener::bind_on(config.tftp.bind, device)
            .map_err(|e| cannot_listen(e, "TFTP", config.tftp.bind, device))?;
        let shared = Arc::new(Shared {
            lab: Current::new(Lab { root, routes: config.routes }),
            device: config.device,
            cache: FileCache::new(config.tftp.cache_mib << 20),
            config: config.tftp,
            registry: Mutex::new(Registry::default()),
            next_id: AtomicU64::new(1),
            mtus: Mutex::new(HashMap::new()),
        });
        Ok(TftpServer { listener, shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// A handle that gives the running server a new lab.
    pub fn reloader(&self) -> TftpReload {
        TftpReload { shared: self.shared.clone() }
    }

    /// Serve until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let lab = self.shared.lab.get();
        info!(
            bind = %self.local_addr(),
            root = %lab.root.display(),
            clients = lab.routes.clients.len(),
            max_transfers = self.shared.config.max_transfers,
            cache_mib = self.shared.config.cache_mib,
            "tftp: serving"
        );
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; 65536];
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                received = self.listener.recv(&mut buf) => match received {
                    Ok(d) => self.on_datagram(&buf[..d.len], d).await,
                    Err(e) => warn!(error = %e, "tftp: receive failed"),
                },
            }
        }
        info!("tftp: stopped");
        Ok(())
    }

    async fn on_datagram(&self, bytes: &[u8], d: Datagram) {
        match Packet::parse(bytes) {
            Ok(Packet::Rrq(r)) => {
                let request = Request {
                    filename: r.filename.to_vec(),
                    mode: r.mode.to_string(),
                    options: r.options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                };
                self.start(request, d);
            }
            Ok(Packet::Wrq(r)) => {
                info!(peer = %d.peer, file = %String::from_utf8_lossy(r.filename), outcome = "write refused", "tftp transfer");
                let reply = Packet::error(ErrorCode::AccessViolation, "bramble serves files read-only");
                let _ = self.listener.send_to(&reply.to_bytes(), d.peer).await;
            }
            Ok(other) => debug!(peer = %d.peer, packet = %other, "tftp: ignored on the request port"),
            Err(e) => {
                debug!(peer = %d.peer, error = %e, "tftp: malformed request");
                let message = format!("malformed request: {e}");
                let _ = self
                    .listener
                    .send_to(&Packet::error(ErrorCode::IllegalOperation, &message).to_bytes(), d.peer)
                    .await;
            }
        }
    }

    fn start(&self, request: Request, d: Datagram) {
        let shared = &self.shared;
        let mut reg = shared.registry.lock().expect("registry lock");
        // The same address and port asking again (a Pi after "Early terminate", a client that
        // lost our first reply) means the old transfer is over.
        if let Some(old) = reg.by_peer.remove(&d.peer) {
            debug!(peer = %d.peer, "tftp: a new request replaces the transfer in progress");
            old.replaced.store(true, Ordering::Release);
            old.abort.abort();
        }
        let from_ip = reg.per_ip.get(&d.peer.ip()).copied().unwrap_or(0);
        if reg.total >= shared.config.max_transfers || from_ip >= shared.config.max_per_client {
            // Dropped, not refused: the client repeats its request, which queues it for free.
            let now = Instant::now();
            if reg.last_refusal_log.is_none_or(|t| now - t > Duration::from_secs(1)) {
                reg.last_refusal_log = Some(now);
                warn!(peer = %d.peer, total = reg.total, from_peer = from_ip, "tftp: transfer limit reached, request dropped");
            }
            return;
        }
        reg.total += 1;
        *reg.per_ip.entry(d.peer.ip()).or_insert(0) += 1;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Slot { shared: shared.clone(), peer: d.peer, id };
        let task_shared = shared.clone();
        let replaced = Arc::new(AtomicBool::new(false));
        let task_replaced = replaced.clone();
        // The registry lock is held until the task is registered, so its Slot cannot run first.
        let task = tokio::spawn(async move {
            let _slot = slot;
            serve(task_shared, request, d, task_replaced).await;
        });
        reg.by_peer.insert(d.peer, Running { id, abort: task.abort_handle(), replaced });
    }
}

/// Gives a running server a new lab (SIGHUP). Transfers in progress keep the bytes they
/// loaded: the cache holds files by inode and a transfer holds its content, so a lab swapped
/// in by rename never changes a file half-sent.
pub struct TftpReload {
    shared: Arc<Shared>,
}

impl TftpReload {
    /// Serve `config`'s lab and routes from now on. Its `[tftp]` table, address and interface
    /// need a restart; each that differs from the running server's is named in the result.
    pub fn apply(&self, config: &ServerConfig) -> Result<Vec<String>> {
        let root = config.root.canonicalize().with_context(|| format!("cannot serve {}", config.root.display()))?;
        let mut restart = Vec::new();
        let running = &self.shared.config;
        if format!("{:?}", running) != format!("{:?}", config.tftp) {
            restart.push("tftp: the [tftp] settings changed; they apply at the next restart".to_string());
        }
        if self.shared.device != config.device {
            restart.push("tftp: the interface changed; it applies at the next restart".to_string());
        }
        self.shared.lab.set(Lab { root, routes: config.routes.clone() });
        Ok(restart)
    }
}

/// One transfer, start to log line.
async fn serve(shared: Arc<Shared>, request: Request, d: Datagram, replaced: Arc<AtomicBool>) {
    let file = String::from_utf8_lossy(&request.filename).into_owned();
    let mut log = TransferLog {
        peer: d.peer,
        file,
        client: None,
        bytes: 0,
        blksize: 0,
        windowsize: 0,
        retransmitted: 0,
        started: Instant::now(),
        outcome: None,
        replaced,
    };
    let socket = match UdpSocket::bind(SocketAddr::new(d.local, 0)).await {
        Ok(s) => s,
        Err(e) => {
            log.outcome = Some(format!("no transfer port: {e}"));
            return;
        }
    };
    let outcome = match prepare(&shared, &request, &d, &mut log).await {
        Ok((content, mode)) => run(&shared, &socket, &request, d, content, mode, &mut log).await,
        Err((code, message)) => {
            let _ = socket.send_to(&Packet::error(code, &message).to_bytes(), d.peer).await;
            message
        }
    };
    log.outcome = Some(outcome);
}

/// Resolve and load the file; on failure, the ERROR to send.
async fn prepare(
    shared: &Arc<Shared>,
    request: &Request,
    d: &Datagram,
    log: &mut TransferLog,
) -> Result<(Content, Mode), (ErrorCode, String)> {
    let mode = Mode::parse(&request.mode)
        .ok_or_else(|| (ErrorCode::IllegalOperation, format!("mode `{}` is not supported; use octet", request.mode)))?;
    let parts = components(&request.filename).map_err(|e| match e {
        NameError::Traversal | NameError::Drive => (ErrorCode::AccessViolation, "access violation".to_string()),
        _ => (ErrorCode::FileNotFound, "file not found".to_string()),
    })?;
    // The lab as it is now; a reload during the transfer changes nothing it has found.
    let lab = shared.lab.get();
    let (client, found) = tokio::task::spawn_blocking(move || {
        let route = lab.routes.route(&parts);
        (route.client.map(str::to_string), files::find(&lab.root, route.dirs, route.rest))
    })
    .await
    .map_err(|e| (ErrorCode::NotDefined, format!("lookup failed: {e}")))?;
    log.client = client;
    let found = found.map_err(|e| match e {
        LookupError::NotFound => (ErrorCode::FileNotFound, "file not found".to_string()),
        LookupError::Denied => (ErrorCode::AccessViolation, "access violation".to_string()),
    })?;
    debug!(peer = %d.peer, path = %found.path.display(), "tftp: resolved");
    // The two files that name the NFS server: a Pi's command line and GRUB's.
    let is_cmdline = found.path.file_name().is_some_and(|n| n == "cmdline.txt" || n == "grub.cfg");
    let content = shared.cache.get(found).await.map_err(|e| (ErrorCode::NotDefined, format!("read error: {e}")))?;
    let content = match &content {
        Content::Memory(bytes) if is_cmdline => match super::placeholder::fill_server(bytes, d.local) {
            Some(filled) => Content::Memory(filled.into()),
            None => content,
        },
        _ => content,
    };
    let content = match mode {
        Mode::Octet => content,
        // Converted whole: tsize is not offered in netascii, and such files are small text.
        Mode::Netascii => {
            let mut raw = Vec::new();
            let source = content.clone();
            let read =
                tokio::task::spawn_blocking(move || source.read_into(0, source.len() as usize, &mut raw).map(|_| raw))
                    .await
                    .map_err(|e| (ErrorCode::NotDefined, e.to_string()))?;
            let raw = read.map_err(|e| (ErrorCode::NotDefined, format!("read error: {e}")))?;
            Content::Memory(to_netascii(&raw).into())
        }
    };
    Ok((content, mode))
}

/// Drive the state machine over the transfer's own socket.
async fn run(
    shared: &Arc<Shared>,
    socket: &UdpSocket,
    request: &Request,
    d: Datagram,
    content: Content,
    mode: Mode,
    log: &mut TransferLog,
) -> String {
    let limits = shared.config.limits(shared.mtu(d.ifindex));
    let options: Vec<(&str, &str)> = request.options.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let negotiated = negotiate(&options, mode, content.len(), &limits);
    log.blksize = negotiated.blksize;
    log.windowsize = negotiated.windowsize;
    let (mut transfer, first) = Transfer::start(content.len(), &negotiated, &limits, Instant::now());
    let mut out = Vec::with_capacity(usize::from(negotiated.blksize) + 4);
    // Clients send ACKs and ERRORs; anything longer than this is not for us anyway.
    let mut buf = vec![0u8; 2048];
    if let Err(e) = send(socket, d.peer, &content, first, &mut out).await {
        return format!("send failed: {e}");
    }
    // The timer is armed lazily: progress moves the deadline later without touching it; when it
    // fires early, the state machine says there is nothing to do and it is re-armed.
    let mut armed = transfer.deadline().unwrap_or_else(Instant::now);
    let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(armed));
    tokio::pin!(timer);
    while let Some(deadline) = transfer.deadline() {
        if deadline < armed || timer.is_elapsed() {
            armed = deadline;
            timer.as_mut().reset(tokio::time::Instant::from_std(armed));
        }
        let actions = tokio::select! {
            biased;
            received = socket.recv_from(&mut buf) => {
                let (n, from) = match received {
                    Ok(r) => r,
                    Err(e) => return format!("receive failed: {e}"),
                };
                if from != d.peer {
                    // RFC 1350 §4: another port's packet gets ERROR 5; this transfer goes on.
                    let _ = socket.send_to(&Packet::error(ErrorCode::UnknownTid, "unknown transfer ID").to_bytes(), from).await;
                    continue;
                }
                match Packet::parse(&buf[..n]) {
                    Ok(packet) => transfer.on_packet(&packet, Instant::now()),
                    Err(_) => continue,
                }
            }
            _ = &mut timer => transfer.on_timeout(Instant::now()),
        };
        if log.replaced.load(Ordering::Acquire) {
            break;
        }
        if let Err(e) = send(socket, d.peer, &content, actions, &mut out).await {
            return format!("send failed: {e}");
        }
    }
    log.bytes = transfer.bytes_acked();
    log.retransmitted = transfer.retransmitted();
    match transfer.outcome() {
        Some(Outcome::Complete) => "complete".into(),
        Some(Outcome::ClientError { code, message }) => format!("ended by client: error {code} {message:?}"),
        Some(Outcome::TimedOut) => "client stopped answering".into(),
        None if log.replaced.load(Ordering::Acquire) => REPLACED.into(),
        None => "unfinished".into(),
    }
}

async fn send(
    socket: &UdpSocket,
    peer: SocketAddr,
    content: &Content,
    actions: Vec<Action>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    for action in actions {
        out.clear();
        match action {
            Action::SendOack(options) => {
                let options: Vec<(&str, &str)> = options.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                Packet::Oack { options }.emit(out);
            }
            Action::SendData { block, offset, len } => {
                Packet::Data { block, payload: &[] }.emit(out);
                match content {
                    Content::Memory(_) => content.read_into(offset, len, out)?,
                    Content::Disk { .. } => {
                        let (source, mut chunk) = (content.clone(), Vec::with_capacity(len));
                        chunk = tokio::task::spawn_blocking(move || {
                            source.read_into(offset, len, &mut chunk).map(|_| chunk)
                        })
                        .await
                        .map_err(std::io::Error::other)??;
                        out.extend_from_slice(&chunk);
                    }
                }
            }
        }
        socket.send_to(out, peer).await?;
    }
    Ok(())
}

/// The one line each transfer logs, written when it ends however it ends.
struct TransferLog {
    peer: SocketAddr,
    file: String,
    client: Option<String>,
    bytes: u64,
    blksize: u16,
    windowsize: u16,
    retransmitted: u64,
    started: Instant,
    /// Unset if the task was cancelled: a new request from the same port replaced it, or the
    /// server is stopping.
    outcome: Option<String>,
    replaced: Arc<AtomicBool>,
}

const REPLACED: &str = "replaced by a new request";

impl Drop for TransferLog {
    fn drop(&mut self) {
        let outcome = match &self.outcome {
            Some(outcome) => outcome.as_str(),
            None if self.replaced.load(Ordering::Acquire) => REPLACED,
            None => "cancelled",
        };
        info!(
            peer = %self.peer,
            client = self.client.as_deref().unwrap_or("-"),
            file = %self.file,
            bytes = self.bytes,
            ms = self.started.elapsed().as_millis() as u64,
            blksize = self.blksize,
            windowsize = self.windowsize,
            retransmitted = self.retransmitted,
            outcome,
            "tftp transfer"
        );
    }
}
