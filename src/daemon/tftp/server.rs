//! The TFTP server's I/O: requests arrive on the listening port; each read request gets its own
//! task and its own ephemeral port (its transfer ID), runs the [`Transfer`] state machine, and
//! leaves one log line. Limits: transfers overall and per client address; ERROR replies per
//! source address. A new request from the same address and port replaces the transfer in
//! progress, unless it repeats the request of a transfer the client has not answered yet.

use super::cache::{Content, FileCache};
use super::lookup::Routes;
use super::netascii::Encoder;
use super::options::{Mode, negotiate};
use super::ratelimit::ErrorLimiter;
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
use tokio::sync::Notify;
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// What it was started for, and on which of our addresses.
    request: Request,
    local: IpAddr,
    /// Set by the task once the client has answered the first packet.
    progressed: Arc<AtomicBool>,
    /// Set, with `wake`, when the client repeats the request: the task answers it.
    repeated: Arc<AtomicBool>,
    wake: Arc<Notify>,
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
    errors: Mutex<ErrorLimiter>,
}

impl Shared {
    /// Whether `peer` may be sent one more ERROR now (issue 12: unlimited ERRORs reflect).
    fn may_send_error(&self, peer: SocketAddr) -> bool {
        let allowed = self.errors.lock().expect("limiter lock").allow(peer.ip(), Instant::now());
        if !allowed {
            debug!(peer = %peer, "tftp: ERROR not sent: over the rate for this address");
        }
        allowed
    }

    /// Send ERROR from `socket` if the peer's rate allows.
    async fn send_error(&self, socket: &UdpSocket, code: ErrorCode, message: &str, peer: SocketAddr) {
        if self.may_send_error(peer) {
            let _ = socket.send_to(&Packet::error(code, message).to_bytes(), peer).await;
        }
    }

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
            errors: Mutex::new(ErrorLimiter::default()),
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
                request_transfer(&self.shared, request, d);
            }
            Ok(Packet::Wrq(r)) => {
                info!(peer = %d.peer, file = %String::from_utf8_lossy(r.filename), outcome = "write refused", "tftp transfer");
                self.send_error(ErrorCode::AccessViolation, "read-only server", d.peer).await;
            }
            Ok(other) => debug!(peer = %d.peer, packet = %other, "tftp: ignored on the request port"),
            Err(e) => {
                debug!(peer = %d.peer, error = %e, "tftp: malformed request");
                // Short and fixed: the details are in the log, not sent to whoever forged it.
                self.send_error(ErrorCode::IllegalOperation, "malformed packet", d.peer).await;
            }
        }
    }

    async fn send_error(&self, code: ErrorCode, message: &str, peer: SocketAddr) {
        if self.shared.may_send_error(peer) {
            let _ = self.listener.send_to(&Packet::error(code, message).to_bytes(), peer).await;
        }
    }
}

/// A read request arrived on the listening port.
fn request_transfer(shared: &Arc<Shared>, request: Request, d: Datagram) {
    {
        let reg = shared.registry.lock().expect("registry lock");
        if let Some(running) = reg.by_peer.get(&d.peer)
            && running.request == request
            && running.local == d.local
            && !running.progressed.load(Ordering::Acquire)
        {
            // The client repeated its request because our first reply was slow or lost, and it
            // may already have latched on to that reply's port (pxelinux does): a new transfer
            // from a new port would strand it. The running one sends its first packet again.
            // dnsmasq (src/tftp.c, tftp_request) never strands it either: in its default mode
            // each RRQ gets a transfer of its own on a new port and the first one goes on; only
            // with --tftp-single-port does a repeated RRQ from the same address and port
            // replace the transfer, which there keeps the same port.
            debug!(peer = %d.peer, "tftp: a repeated request; the transfer in progress answers it");
            running.repeated.store(true, Ordering::Release);
            running.wake.notify_one();
            return;
        }
    }
    start(shared, request, d);
}

fn start(shared: &Arc<Shared>, request: Request, d: Datagram) {
    let mut reg = shared.registry.lock().expect("registry lock");
    // A different request from the same address and port (a Pi after "Early terminate"),
    // or the same one after the transfer progressed (a client that restarted), means the
    // old transfer is over.
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
    let signals = Signals {
        id,
        replaced: Arc::new(AtomicBool::new(false)),
        progressed: Arc::new(AtomicBool::new(false)),
        repeated: Arc::new(AtomicBool::new(false)),
        wake: Arc::new(Notify::new()),
    };
    let (replaced, progressed, repeated, wake) =
        (signals.replaced.clone(), signals.progressed.clone(), signals.repeated.clone(), signals.wake.clone());
    let task_shared = shared.clone();
    let task_request = request.clone();
    // The registry lock is held until the task is registered, so its Slot cannot run first.
    let task = tokio::spawn(async move {
        let _slot = slot;
        serve(task_shared, task_request, d, signals).await;
    });
    let running =
        Running { id, abort: task.abort_handle(), replaced, request, local: d.local, progressed, repeated, wake };
    reg.by_peer.insert(d.peer, running);
}

/// How the registry and a transfer's task signal each other (the fields of its [`Running`]).
struct Signals {
    id: u64,
    replaced: Arc<AtomicBool>,
    progressed: Arc<AtomicBool>,
    repeated: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Signals {
    /// The transfer is over: take it out of the registry, so a request from its port is a new
    /// one from now on. Returns whether the client repeated its request before that, in which
    /// case the request is still to be answered.
    fn retire(&self, shared: &Shared, peer: SocketAddr) -> bool {
        let mut reg = shared.registry.lock().expect("registry lock");
        if reg.by_peer.get(&peer).is_some_and(|r| r.id == self.id) {
            reg.by_peer.remove(&peer);
        }
        self.repeated.swap(false, Ordering::AcqRel)
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
async fn serve(shared: Arc<Shared>, request: Request, d: Datagram, signals: Signals) {
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
        replaced: signals.replaced.clone(),
    };
    let socket = match UdpSocket::bind(SocketAddr::new(d.local, 0)).await {
        Ok(s) => s,
        Err(e) => {
            log.outcome = Some(format!("no transfer port: {e}"));
            return;
        }
    };
    let outcome = match prepare(&shared, &request, &d, &mut log).await {
        Ok((content, mode)) => run(&shared, &socket, &request, d, content, mode, &signals, &mut log).await,
        Err((code, message)) => {
            shared.send_error(&socket, code, &message, d.peer).await;
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
    // Fixed texts: a reply never grows with what the request carried.
    let mode = Mode::parse(&request.mode).ok_or((ErrorCode::IllegalOperation, "unsupported mode".to_string()))?;
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
    Ok((content, mode))
}

/// What a transfer sends: the content as it is, or converted to netascii as the blocks go out
/// (never whole: issue 12 measured three times the file per netascii request).
enum Body {
    Octet(Content),
    Netascii(NetasciiBlocks),
}

/// Netascii blocks made one after the other, the last kept for its retransmission.
struct NetasciiBlocks {
    content: Content,
    encoder: Encoder,
    /// Offset (in the converted stream) and bytes of the last block made.
    last: Option<(u64, Vec<u8>)>,
}

impl NetasciiBlocks {
    /// The converted block at `offset`: the last one again, or the next (up to `len` bytes).
    async fn block(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        let next = self.last.as_ref().map_or(0, |(at, bytes)| at + bytes.len() as u64);
        let again = self.last.as_ref().is_some_and(|(at, _)| *at == offset);
        if !again {
            if offset != next {
                return Err(std::io::Error::other(format!(
                    "netascii block at {offset} asked for out of order (next is {next})"
                )));
            }
            // Each source byte makes one or two bytes on the wire: `len` of them fill a block.
            let from = self.encoder.source_offset();
            let take = (len as u64).min(self.content.len() - from) as usize;
            let source = read_chunk(&self.content, from, take).await?;
            let mut bytes = self.last.take().map(|(_, b)| b).unwrap_or_default();
            bytes.clear();
            self.encoder.encode(&source, len, &mut bytes);
            self.last = Some((offset, bytes));
        }
        Ok(self.last.as_ref().map(|(_, b)| b.as_slice()).unwrap_or_default())
    }
}

/// Drive the state machine over the transfer's own socket.
#[allow(clippy::too_many_arguments)]
async fn run(
    shared: &Arc<Shared>,
    socket: &UdpSocket,
    request: &Request,
    d: Datagram,
    content: Content,
    mode: Mode,
    signals: &Signals,
    log: &mut TransferLog,
) -> String {
    let limits = shared.config.limits(shared.mtu(d.ifindex));
    let options: Vec<(&str, &str)> = request.options.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // tsize is declined in netascii (as dnsmasq does), so its converted length is never needed
    // in advance: the transfer learns it from the short last block.
    let negotiated = negotiate(&options, mode, content.len(), &limits);
    log.blksize = negotiated.blksize;
    log.windowsize = negotiated.windowsize;
    let now = Instant::now();
    let (mut transfer, first) = match mode {
        Mode::Octet => Transfer::start(content.len(), &negotiated, &limits, now),
        Mode::Netascii => Transfer::start_unsized(&negotiated, &limits, now),
    };
    let mut body = match mode {
        Mode::Octet => Body::Octet(content),
        Mode::Netascii => Body::Netascii(NetasciiBlocks { content, encoder: Encoder::default(), last: None }),
    };
    let mut out = Vec::with_capacity(usize::from(negotiated.blksize) + 4);
    // Clients send ACKs and ERRORs; anything longer than this is not for us anyway.
    let mut buf = vec![0u8; 2048];
    if let Err(e) = send(socket, d.peer, &mut body, &mut transfer, first, &mut out).await {
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
                match from_client(shared, socket, &mut transfer, &buf[..n], from, d.peer).await {
                    Some(actions) => actions,
                    None => continue,
                }
            }
            _ = signals.wake.notified() => {
                if !signals.repeated.swap(false, Ordering::AcqRel) {
                    continue;
                }
                // What the client sent before repeating itself (an ERROR ending a probe, an ACK)
                // is already queued on this socket: take it into account first.
                let mut actions = Vec::new();
                while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
                    if let Some(more) = from_client(shared, socket, &mut transfer, &buf[..n], from, d.peer).await {
                        actions.extend(more);
                    }
                }
                if transfer.outcome().is_some() {
                    // It had ended (the Pi's "Early terminate" comes just before its request
                    // again): the request is a new one, answered once this task is retired.
                    signals.repeated.store(true, Ordering::Release);
                    break;
                }
                // Progress found queued means the client answered our first packet after all
                // and sent its repeat before that answer (pxelinux under load): the transfer
                // it latched on to goes on. A client that really restarted asks again.
                actions.extend(transfer.on_repeated_request());
                actions
            }
            _ = &mut timer => transfer.on_timeout(Instant::now()),
        };
        if transfer.progressed() {
            signals.progressed.store(true, Ordering::Release);
        }
        if log.replaced.load(Ordering::Acquire) {
            break;
        }
        if let Err(e) = send(socket, d.peer, &mut body, &mut transfer, actions, &mut out).await {
            return format!("send failed: {e}");
        }
    }
    // A repeat that came too late for this transfer (it had ended, or the client had moved
    // on) is a new request.
    if signals.retire(shared, d.peer) && !log.replaced.load(Ordering::Acquire) {
        debug!(peer = %d.peer, "tftp: the repeated request starts a new transfer");
        start(shared, request.clone(), d);
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

/// A datagram on the transfer's port: the client's packet for the state machine (`None`: not
/// the client's, or not a packet).
async fn from_client(
    shared: &Shared,
    socket: &UdpSocket,
    transfer: &mut Transfer,
    bytes: &[u8],
    from: SocketAddr,
    peer: SocketAddr,
) -> Option<Vec<Action>> {
    if from != peer {
        // RFC 1350 §4: another port's packet gets ERROR 5; this transfer goes on.
        shared.send_error(socket, ErrorCode::UnknownTid, "unknown transfer ID", from).await;
        return None;
    }
    Packet::parse(bytes).ok().map(|packet| transfer.on_packet(&packet, Instant::now()))
}

/// `len` bytes of `content` from `offset` (from disk off the async threads).
async fn read_chunk(content: &Content, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(len);
    match content {
        Content::Memory(_) => content.read_into(offset, len, &mut chunk)?,
        Content::Disk { .. } => {
            let source = content.clone();
            chunk = tokio::task::spawn_blocking(move || source.read_into(offset, len, &mut chunk).map(|_| chunk))
                .await
                .map_err(std::io::Error::other)??;
        }
    }
    Ok(chunk)
}

async fn send(
    socket: &UdpSocket,
    peer: SocketAddr,
    body: &mut Body,
    transfer: &mut Transfer,
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
                match body {
                    Body::Octet(content @ Content::Memory(_)) => content.read_into(offset, len, out)?,
                    Body::Octet(content) => out.extend_from_slice(&read_chunk(content, offset, len).await?),
                    Body::Netascii(blocks) => {
                        let bytes = blocks.block(offset, len).await?;
                        out.extend_from_slice(bytes);
                        if bytes.len() < len {
                            transfer.ends_at(offset + bytes.len() as u64);
                        }
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
