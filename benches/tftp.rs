//! TFTP benchmark: bramble against dnsmasq, tftpd-hpa and atftpd, measured in the same run on
//! loopback with atftp as the client. This machine's timing noise is large (runs of the same
//! command vary by 2×), so the servers run side by side and the scenarios take turns between
//! them, and medians are reported.
//!
//! (a) one client, blksize 1468, no window: the Pi's way; the server's turnaround per ACK counts.
//! (b) windowsize 16 through a relay that delays every packet 0.5 ms each way (a LAN's round
//!     trip; `tc netem` is not available here); servers without windowsize fall back to lock-step.
//! (c) 200 clients at once, 10 MiB each: wall time until all finish, and the server's peak RSS
//!     (a fresh process per run, so the peak is this scenario's).
//!
//! Run with `just bench` (it unpacks the peers into target/bench-peers; dnsmasq's TFTP port is
//! fixed at 69, so it needs root). Prints a Markdown table for docs/benchmarks.md.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIG: usize = 32 << 20;
const TEN: usize = 10 << 20;
const CLIENTS: usize = 200;
const RELAY_DELAY: Duration = Duration::from_micros(500);
const ROUNDS_A: usize = 15;
const ROUNDS_C: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Bramble,
    Dnsmasq,
    /// dnsmasq with its transfer cap (default 50) raised for scenario (c).
    DnsmasqTuned,
    TftpdHpa,
    Atftpd,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Bramble => "bramble",
            Server::Dnsmasq => "dnsmasq 2.90",
            Server::DnsmasqTuned => "dnsmasq 2.90 --tftp-max 1000",
            Server::TftpdHpa => "tftpd-hpa 5.2",
            Server::Atftpd => "atftpd 0.8.0",
        }
    }

    fn port(self) -> u16 {
        match self {
            Server::Bramble => 6969,
            Server::Dnsmasq | Server::DnsmasqTuned => 69,
            Server::TftpdHpa => 6970,
            Server::Atftpd => 6971,
        }
    }

    fn start(self, root: &Path, work: &Path) -> Child {
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-peers/usr/sbin");
        let (root, port) = (root.to_str().unwrap(), self.port());
        let mut cmd = match self {
            Server::Bramble => {
                // Every client comes from 127.0.0.1 here; a real lab's come from many addresses.
                let config = work.join("daemon.toml");
                std::fs::write(
                    &config,
                    format!("lab = {root:?}\n[tftp]\nbind = \"127.0.0.1:{port}\"\nroot_dirs = [\".\"]\nmax_per_client = 1000\n"),
                )
                .unwrap();
                let mut c = Command::new(env!("CARGO_BIN_EXE_bramble"));
                c.args(["-q", "serve", "--config", config.to_str().unwrap()]);
                c
            }
            Server::Dnsmasq | Server::DnsmasqTuned => {
                let mut c = Command::new(peers.join("dnsmasq"));
                c.args(["-k", "--conf-file=/dev/null", "--port=0", "--listen-address=127.0.0.1", "--bind-interfaces"]);
                c.args(["--enable-tftp", &format!("--tftp-root={root}"), "--user=root", "--group=root"]);
                c.arg(format!("--pid-file={}", work.join("dnsmasq.pid").display()));
                if self == Server::DnsmasqTuned {
                    c.arg("--tftp-max=1000");
                }
                c
            }
            Server::TftpdHpa => {
                let mut c = Command::new(peers.join("in.tftpd"));
                c.args(["--foreground", "--listen", "--address", &format!("127.0.0.1:{port}"), "--user", "root"]);
                c.args(["--secure", root]);
                c
            }
            Server::Atftpd => {
                let mut c = Command::new(peers.join("atftpd"));
                c.args(["--daemon", "--no-fork", "--port", &port.to_string(), "--bind-address", "127.0.0.1"]);
                c.args(["--maxthread", "1000", "--user", "root.root", "--logfile", "/dev/null", root]);
                c
            }
        };
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {} ({e}); `just bench` unpacks the peers into target/bench-peers", self.name())
        });
        std::thread::sleep(Duration::from_millis(700));
        child
    }
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn atftp(options: &[&str], file: &str, out: &Path, port: u16) -> Command {
    let mut c = Command::new("atftp");
    for o in options {
        c.args(["--option", o]);
    }
    c.args(["-g", "-r", file, "-l", out.to_str().unwrap(), "127.0.0.1", &port.to_string()]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).ok() == std::fs::read(b).ok()
}

/// Time one download; panics if the bytes are wrong.
fn timed_download(options: &[&str], root: &Path, file: &str, out: &Path, port: u16) -> f64 {
    let start = Instant::now();
    let status = atftp(options, file, out, port).status().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success() && same(out, &root.join(file)), "download of {file} from port {port} failed");
    secs
}

/// A UDP relay on a local port that forwards to `server` and back, delaying every packet by
/// `delay`. Replies come from the relay's one port; the relay follows the server's transfer
/// port for what the client sends after the first reply.
fn start_relay(server: SocketAddr, delay: Duration) -> u16 {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = front.local_addr().unwrap().port();
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let target = Arc::new(Mutex::new(server));
    let (to_server, to_server_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let (to_client, to_client_rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    // Receivers stamp each packet with its send time; one sender per direction waits for it.
    let (f, c) = (front.try_clone().unwrap(), client.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70000];
        while let Ok((n, from)) = f.recv_from(&mut buf) {
            *c.lock().unwrap() = Some(from);
            let _ = to_server.send((Instant::now() + delay, buf[..n].to_vec()));
        }
    });
    let (b, t) = (back.try_clone().unwrap(), target.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70000];
        while let Ok((n, from)) = b.recv_from(&mut buf) {
            *t.lock().unwrap() = from;
            let _ = to_client.send((Instant::now() + delay, buf[..n].to_vec()));
        }
    });
    std::thread::spawn(move || {
        forward(to_server_rx, move |p| {
            let _ = back.send_to(p, *target.lock().unwrap());
        })
    });
    std::thread::spawn(move || {
        forward(to_client_rx, move |p| {
            if let Some(c) = *client.lock().unwrap() {
                let _ = front.send_to(p, c);
            }
        })
    });
    port
}

fn forward(rx: mpsc::Receiver<(Instant, Vec<u8>)>, send: impl Fn(&[u8])) {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(item) => queue.push_back(item),
                Err(_) => return,
            }
        }
        while let Ok(item) = rx.try_recv() {
            queue.push_back(item);
        }
        let due = queue.front().unwrap().0;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        let (_, packet) = queue.pop_front().unwrap();
        send(&packet);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// 200 clients at once against a fresh server; (wall seconds, complete transfers, peak RSS).
fn many(server: Server, root: &Path, work: &Path, outs: &Path) -> (f64, usize, f64) {
    let mut child = server.start(root, work);
    let paths: Vec<PathBuf> = (0..CLIENTS).map(|i| outs.join(format!("many-{i}"))).collect();
    let start = Instant::now();
    let clients: Vec<Child> =
        paths.iter().map(|o| atftp(&["blksize 1468"], "ten.bin", o, server.port()).spawn().unwrap()).collect();
    let mut ok = 0;
    for (mut c, o) in clients.into_iter().zip(&paths) {
        if c.wait().unwrap().success() && same(o, &root.join("ten.bin")) {
            ok += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let rss = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
    std::thread::sleep(Duration::from_millis(500));
    (wall, ok, rss)
}

fn main() {
    // `cargo test --all-targets` runs this binary too, without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Clients write to tmpfs when there is one, so their disk writes do not drown the servers.
    let outs = tempfile::tempdir_in(if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" }).unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    std::fs::write(root.join("big.bin"), bytes(BIG)).unwrap();
    std::fs::write(root.join("ten.bin"), bytes(TEN)).unwrap();
    let out = outs.path().join("big.out");

    // (a) and (b): the four servers side by side, taking turns.
    let servers = [Server::Bramble, Server::Dnsmasq, Server::TftpdHpa, Server::Atftpd];
    let mut running: Vec<Child> = servers.iter().map(|s| s.start(&root, work.path())).collect();
    let mut a: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    for (i, s) in servers.iter().enumerate() {
        timed_download(&["blksize 1468"], &root, "big.bin", &out, s.port()); // warm-up
        a[i].clear();
    }
    // Each round starts with a different server, so none always runs first or last.
    for round in 0..ROUNDS_A {
        eprintln!("(a) round {}/{ROUNDS_A}", round + 1);
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            a[i].push(timed_download(&["blksize 1468"], &root, "big.bin", &out, servers[i].port()));
        }
    }
    let mut b = Vec::new();
    for s in servers {
        eprintln!("(b) {}", s.name());
        let relay = start_relay(SocketAddr::from(([127, 0, 0, 1], s.port())), RELAY_DELAY);
        b.push(timed_download(&["blksize 1468", "windowsize 16"], &root, "big.bin", &out, relay));
    }
    for c in &mut running {
        let _ = c.kill();
        let _ = c.wait();
    }
    std::thread::sleep(Duration::from_millis(500));

    // (c): one server at a time, fresh each run, in turns.
    let many_servers = [Server::Bramble, Server::Dnsmasq, Server::DnsmasqTuned, Server::TftpdHpa, Server::Atftpd];
    let mut c: Vec<Vec<(f64, usize, f64)>> = vec![Vec::new(); many_servers.len()];
    for round in 0..ROUNDS_C {
        for k in 0..many_servers.len() {
            let i = (round * 2 + k) % many_servers.len();
            eprintln!("(c) round {}/{ROUNDS_C}: {}", round + 1, many_servers[i].name());
            c[i].push(many(many_servers[i], &root, work.path(), outs.path()));
        }
    }

    let a_med: Vec<f64> = a.iter().map(|v| median(v)).collect();
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{lo:.2}–{hi:.2}")
    };
    let c_wall: Vec<f64> = c.iter().map(|runs| median(&runs.iter().map(|r| r.0).collect::<Vec<_>>())).collect();
    let c_ok: Vec<usize> = c.iter().map(|runs| runs.iter().map(|r| r.1).min().unwrap()).collect();
    let c_rss: Vec<f64> = c.iter().map(|runs| runs.iter().map(|r| r.2).fold(0.0, f64::max)).collect();
    println!("| scenario | {} |", servers.map(|s| s.name()).join(" | "));
    println!("|---|---|---|---|---|");
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" | ");
    println!("| (a) 32 MiB, blksize 1468, lock-step: median of {ROUNDS_A} (s) | {} |", fmt(&a_med));
    println!("| (a) range (s) | {} |", a.iter().map(|v| spread(v)).collect::<Vec<_>>().join(" | "));
    println!("| (b) 32 MiB, windowsize 16, 0.5 ms each way (s) | {} |", fmt(&b));
    println!();
    println!("| (c) 200 × 10 MiB at once | {} |", many_servers.map(|s| s.name()).join(" | "));
    println!("|---|---|---|---|---|---|");
    println!("| wall, median of {ROUNDS_C} (s) | {} |", fmt(&c_wall));
    println!(
        "| wall, range (s) | {} |",
        c.iter().map(|runs| spread(&runs.iter().map(|r| r.0).collect::<Vec<_>>())).collect::<Vec<_>>().join(" | ")
    );
    println!(
        "| transfers complete (worst run) | {} |",
        c_ok.iter().map(|n| format!("{n}/{CLIENTS}")).collect::<Vec<_>>().join(" | ")
    );
    println!("| server peak RSS (MiB) | {} |", fmt(&c_rss));
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let best_peer = a_med[1..].iter().copied().fold(f64::MAX, f64::min);
    println!(
        "- (a) bramble {:.2} s, best peer {:.2} s: {:.2}× the best peer's speed (target ≥ 1): {}",
        a_med[0],
        best_peer,
        best_peer / a_med[0],
        verdict(a_med[0] <= best_peer)
    );
    println!("- (b) {:.1}× dnsmasq's speed (target ≥ 3): {}", b[1] / b[0], verdict(b[1] / b[0] >= 3.0));
    for (i, label) in [(1, "dnsmasq (defaults)"), (2, "dnsmasq --tftp-max 1000")] {
        println!(
            "- (c) {:.2}× the wall time of {label} (target ≤ 0.5), {}/{CLIENTS} complete, {:.1} MiB peak RSS (target < 64): {}",
            c_wall[0] / c_wall[i],
            c_ok[0],
            c_rss[0],
            verdict(c_wall[0] / c_wall[i] <= 0.5 && c_ok[0] == CLIENTS && c_rss[0] < 64.0)
        );
    }
}
