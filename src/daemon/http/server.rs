//! The HTTP server's I/O: the listening socket (optionally bound to one interface), one task per
//! connection running hyper's HTTP/1.1 with keep-alive, and the limits that keep a misbehaving
//! client from hurting the others: connections overall (more wait in the listen queue) and per
//! client address (more are closed), the idle/header timeout (slowloris), and the send timeout
//! (a client that stops reading). What each request gets is `handler.rs`'s business.

use super::generate::Generate;
use super::handler::{self, Site};
use crate::daemon::config::HttpConfig;
use crate::daemon::current::Current;
use crate::daemon::holder::Transport;
use crate::daemon::net::{cannot_listen, name_the_holder};
use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;
use tracing::{debug, info, warn};

/// How long responses in progress may run on after shutdown is asked for; then they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pending connections the kernel keeps while every slot is taken.
const LISTEN_BACKLOG: i32 = 1024;
/// Warnings about limits and accept errors come at most this often.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// What the server serves and how.
#[derive(Clone)]
pub struct ServerConfig {
    /// The served tree (the lab); names resolve inside it only.
    pub root: PathBuf,
    pub http: HttpConfig,
    /// Bind the socket to this network interface (SO_BINDTODEVICE): only requests that
    /// arrive on it are seen, whatever `http.bind` says.
    pub interface: Option<String>,
    /// Asked before the filesystem for every GET and HEAD.
    pub generator: Option<Arc<dyn Generate>>,
}

/// A bound HTTP server, not yet serving.
pub struct HttpServer {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    site: Arc<Current<Site>>,
    config: HttpConfig,
    interface: Option<String>,
}

impl HttpServer {
    /// Check the root and bind the listening socket. No runtime is needed until [`run`].
    ///
    /// [`run`]: HttpServer::run
    pub fn bind(config: ServerConfig) -> Result<HttpServer> {
        let root = config.root.canonicalize().with_context(|| format!("cannot serve {}", config.root.display()))?;
        anyhow::ensure!(root.is_dir(), "cannot serve {}: not a folder", root.display());
        let addr = config.http.bind;
        let device = config.interface.as_deref();
        let listener = listen(addr, device).map_err(|e| cannot_listen(e, "HTTP", addr, device))?;
        let local_addr = listener.local_addr().context("the listening socket has no address")?;
        let site = Arc::new(Current::new(Site { root, generator: config.generator }));
        Ok(HttpServer { listener, local_addr, site, config: config.http, interface: config.interface })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that gives the running server a new lab folder.
    pub fn reloader(&self) -> HttpReload {
        HttpReload { site: self.site.clone(), config: self.config.clone(), interface: self.interface.clone() }
    }

    /// Serve until `shutdown` completes; then stop accepting, let responses in progress finish
    /// for a few seconds, and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let listener = TcpListener::from_std(self.listener).context("cannot register the HTTP socket")?;
        let config = self.config;
        let site = self.site.get();
        info!(
            bind = %self.local_addr,
            root = %site.root.display(),
            interface = self.interface.as_deref().unwrap_or("-"),
            max_connections = config.max_connections,
            generated = site.generator.is_some(),
            "http: serving"
        );
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let per_client = Arc::new(Mutex::new(HashMap::new()));
        let (stop, stopping) = watch::channel(());
        let mut connections = JoinSet::new();
        let mut last_warning: Option<Instant> = None;
        let mut warn_now = |what: &str, detail: String| {
            let now = Instant::now();
            if last_warning.is_none_or(|t| now - t >= WARN_EVERY) {
                last_warning = Some(now);
                warn!(detail, "http: {what}");
            }
        };
        tokio::pin!(shutdown);
        loop {
            if slots.available_permits() == 0 {
                warn_now("connection limit reached; new connections wait", format!("{}", config.max_connections));
            }
            let slot = tokio::select! {
                _ = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors or memory: wait a moment rather than spin.
                        warn_now("accept failed", e.to_string());
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        }
                    }
                },
            };
            let Some(client) = ClientSlot::take(&per_client, peer.ip(), config.max_per_client) else {
                warn_now("per-client connection limit reached; connection closed", peer.to_string());
                continue;
            };
            // A connection keeps the lab it was accepted with, across a reload.
            let (site, config, stopping) = (self.site.get(), config.clone(), stopping.clone());
            connections.spawn(async move {
                let _slots = (slot, client);
                serve_connection(site, &config, stream, peer, stopping).await;
            });
            while let Some(ended) = connections.try_join_next() {
                if let Err(e) = ended {
                    warn!(error = %e, "http: a connection task failed");
                }
            }
        }
        drop(listener);
        let _ = stop.send(());
        let open = connections.len();
        if tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            warn!(open, left = connections.len(), "http: responses still running at shutdown were cut");
            connections.shutdown().await;
        }
        info!("http: stopped");
        Ok(())
    }
}

/// The listening socket, created with socket2 so it can be bound to a device.
/// Gives a running server a new lab folder (SIGHUP); connections open keep theirs.
pub struct HttpReload {
    site: Arc<Current<Site>>,
    config: HttpConfig,
    interface: Option<String>,
}

impl HttpReload {
    /// Serve `config`'s folder from now on. The `[http]` table and the interface need a
    /// restart; each that differs is named in the result.
    pub fn apply(&self, config: ServerConfig) -> Result<Vec<String>> {
        let root = config.root.canonicalize().with_context(|| format!("cannot serve {}", config.root.display()))?;
        anyhow::ensure!(root.is_dir(), "cannot serve {}: not a folder", root.display());
        let mut restart = Vec::new();
        if format!("{:?}", self.config) != format!("{:?}", config.http) || self.interface != config.interface {
            restart.push("http: the [http] settings or the interface changed; they apply at the next restart".into());
        }
        self.site.set(Site { root, generator: config.generator });
        Ok(restart)
    }
}

fn listen(addr: SocketAddr, interface: Option<&str>) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    // A restarted daemon must not wait out TIME_WAIT connections of the last one.
    socket.set_reuse_address(true)?;
    if let Some(interface) = interface {
        socket.bind_device(Some(interface.as_bytes()))?;
    }
    socket.set_nonblocking(true)?;
    // SO_REUSEADDR still refuses a second listener on the address (one on another interface
    // binds beside it): EADDRINUSE, worded to say who holds it.
    socket.bind(&addr.into()).map_err(|e| name_the_holder(e, Transport::Tcp, addr, interface))?;
    socket.listen(LISTEN_BACKLOG).map_err(|e| name_the_holder(e, Transport::Tcp, addr, interface))?;
    Ok(socket.into())
}

/// One connection: HTTP/1.1 with keep-alive until the client leaves, a timeout fires, or the
/// server stops (then the request in progress finishes and the connection closes).
async fn serve_connection(
    site: Arc<Site>,
    config: &HttpConfig,
    stream: TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<()>,
) {
    let Ok(local) = stream.local_addr() else { return };
    // Small answers (HEAD, scripts, errors) should not wait for Nagle's delayed ACK dance.
    let _ = stream.set_nodelay(true);
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(config.send_timeout()));
    let io = TokioIo::new(Box::pin(stream));
    let service = service_fn(move |request| {
        let site = site.clone();
        async move { Ok::<_, Infallible>(handler::handle(&site, request, peer, local).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper starts this clock whenever the connection is ready for a request's head: it is
        // both the keep-alive idle timeout and the bound on how slowly headers may arrive.
        .header_read_timeout(config.idle_timeout())
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        debug!(%peer, error = %e, "http: connection ended");
    }
}

/// A place among one client address's connections, freed when dropped.
struct ClientSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut map = counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = map.entry(ip).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(ClientSlot { counts: counts.clone(), ip })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_slots_count_per_address() {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = ClientSlot::take(&counts, a, 2).unwrap();
        let second = ClientSlot::take(&counts, a, 2).unwrap();
        assert!(ClientSlot::take(&counts, a, 2).is_none());
        let other = ClientSlot::take(&counts, b, 2).unwrap();
        drop(first);
        let third = ClientSlot::take(&counts, a, 2).unwrap();
        drop((second, third, other));
        assert!(counts.lock().unwrap().is_empty());
    }
}
