//! Bramble's HTTP server run in-process on 127.0.0.1 (its own runtime on its own thread, stopped
//! and joined on drop), a lab-like tree to serve, and curl with its answer taken apart.
#![allow(dead_code)]

use bramble::daemon::config::HttpConfig;
use bramble::daemon::http::{HttpServer, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running server; dropping it asks it to stop and waits for it.
pub struct HttpDaemon {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl HttpDaemon {
    /// Serve `root` with the default configuration changed by `tweak`.
    pub fn start(root: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> HttpDaemon {
        let mut config = ServerConfig {
            root: root.to_path_buf(),
            http: HttpConfig { bind: "127.0.0.1:0".parse().unwrap(), ..HttpConfig::default() },
            interface: None,
            generator: None,
        };
        tweak(&mut config);
        let server = HttpServer::bind(config).expect("bind the HTTP server");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(server.run(async {
                let _ = stopped.await;
            }))
        });
        HttpDaemon { addr, stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Ask the server to stop and wait for `run` to return; how long that took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread").expect("server run");
        }
        started.elapsed()
    }
}

impl Drop for HttpDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Deterministic noise (xorshift).
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Sizes of the served files at the root of [`lab_tree`].
pub const SIZES: &[(&str, usize)] =
    &[("empty.bin", 0), ("one.bin", 1), ("odd.bin", 100_003), ("big.img", 32 * 1024 * 1024 + 17)];

/// A served folder `lab/` inside a temporary folder that also holds `secret` (outside it).
/// Besides [`SIZES`]: `os/Pios/Boot/Start4.elf`, `a b/été.txt`, `link.bin` (a symlink to
/// `one.bin`), `escape` (a symlink to `../secret`) and the folder `os/`.
pub fn lab_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lab");
    for (i, &(name, size)) in SIZES.iter().enumerate() {
        write(&root.join(name), &noise(size, 0x9e37_79b9_7f4a_7c15 + i as u64));
    }
    write(&root.join("os/Pios/Boot/Start4.elf"), b"firmware");
    write(&root.join("a b/\u{e9}t\u{e9}.txt"), b"summer\n");
    write(&dir.path().join("secret"), b"TOP SECRET\n");
    std::os::unix::fs::symlink("one.bin", root.join("link.bin")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
    (dir, root)
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// What curl got.
#[derive(Debug)]
pub struct Fetched {
    /// curl's exit code (0: the transfer worked at the HTTP level, whatever the status).
    pub exit: i32,
    /// The last response's status (0 if none came).
    pub status: u16,
    /// Body bytes curl received (`%{size_download}`; 0 for a HEAD that got no body).
    pub size_download: u64,
    /// Every response header line of every response, in order, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl Fetched {
    /// The value of header `name` in the last response.
    pub fn header(&self, name: &str) -> Option<&str> {
        let last_start = self.headers.iter().rposition(|(n, _)| n == ":status").unwrap_or(0);
        self.headers[last_start..].iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Run curl with `args` (silent, failing on nothing, bounded in time). The body is kept unless
/// `args` has its own `-o`; with `-I` it holds the headers, as curl writes them there.
pub fn curl(args: &[&str]) -> Fetched {
    let out = tempfile::tempdir().unwrap();
    let (body, heads) = (out.path().join("body"), out.path().join("headers"));
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "60", "-D", heads.to_str().unwrap(), "-w", "%{http_code} %{size_download}"]);
    if !args.contains(&"-o") {
        command.args(["-o", body.to_str().unwrap()]);
    }
    let output = command.args(args).output().expect("run curl (`just setup` installs it)");
    let mut headers = Vec::new();
    for line in std::fs::read_to_string(&heads).unwrap_or_default().lines() {
        if line.starts_with("HTTP/") {
            headers.push((":status".to_string(), line.to_string()));
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let written = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut written = written.split_whitespace().map(|n| n.parse().unwrap_or(0));
    Fetched {
        exit: output.status.code().unwrap_or(-1),
        status: written.next().unwrap_or(0) as u16,
        size_download: written.next().unwrap_or(0),
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Wait (bounded) until `condition` holds.
pub fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
