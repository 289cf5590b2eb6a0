//! TFTP behaviour no stock client can provoke, from a scripted client that writes and reads the
//! packets byte by byte (RFC 1350 layouts written out here, not borrowed from bramble): the Pi's
//! probe-and-abort, repeated requests, wrap to 0, duplicate ACKs, vanishing clients, UEFI's
//! tsize probe, option echo, safety and limits; and issue 12's attacks: `timeout=255` hogs,
//! ERROR floods, ACK-per-block windows, netascii requests against the daemon's peak RSS.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

fn rrq(name: &[u8], mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(name);
    p.push(0);
    p.extend_from_slice(mode.as_bytes());
    p.push(0);
    for (k, v) in options {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

fn ack(block: u16) -> Vec<u8> {
    let b = block.to_be_bytes();
    vec![0, 4, b[0], b[1]]
}

fn error(code: u16, message: &str) -> Vec<u8> {
    let c = code.to_be_bytes();
    let mut p = vec![0, 5, c[0], c[1]];
    p.extend_from_slice(message.as_bytes());
    p.push(0);
    p
}

fn opcode(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn block(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

fn oack_options(p: &[u8]) -> Vec<(String, String)> {
    assert_eq!(opcode(p), 6, "expected OACK, got {p:?}");
    let fields: Vec<String> =
        p[2..].split(|&b| b == 0).filter(|f| !f.is_empty()).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    fields.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
}

struct Client {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Client {
    fn new(server: SocketAddr) -> Client {
        Client::from_ip(server, "127.0.0.1")
    }

    fn from_ip(server: SocketAddr, ip: &str) -> Client {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        Client { sock, server }
    }

    fn send_request(&self, packet: &[u8]) {
        self.sock.send_to(packet, self.server).unwrap();
    }

    fn send(&self, packet: &[u8], to: SocketAddr) {
        self.sock.send_to(packet, to).unwrap();
    }

    /// The next packet within `wait`, with its source.
    fn recv(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 70000];
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some((buf, from))
    }

    fn expect(&self) -> (Vec<u8>, SocketAddr) {
        self.recv(Duration::from_secs(5)).expect("no reply within 5 s")
    }

    /// Acknowledge DATA until the last (short) block; return the bytes and the block numbers.
    fn download(&self, first: (Vec<u8>, SocketAddr), blksize: usize) -> (Vec<u8>, Vec<u16>) {
        let (mut packet, tid) = first;
        let (mut bytes, mut blocks) = (Vec::new(), Vec::new());
        loop {
            assert_eq!(opcode(&packet), 3, "expected DATA, got {packet:?}");
            blocks.push(block(&packet));
            bytes.extend_from_slice(&packet[4..]);
            self.send(&ack(block(&packet)), tid);
            if packet.len() - 4 < blksize {
                return (bytes, blocks);
            }
            let (next, from) = self.expect();
            assert_eq!(from, tid);
            packet = next;
        }
    }
}

fn tree(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A daemon.toml serving `dir` as it is, with extra [tftp] settings.
fn config(dir: &Path, tftp: &str) -> String {
    let path = dir.join("daemon.toml");
    std::fs::write(&path, format!("lab = \".\"\n[tftp]\nroot_dirs = [\".\"]\n{tftp}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn pi_probe_then_early_terminate_then_the_same_port_asks_again() {
    let files = tree(&[("start4.elf", pattern(5000))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let pi = Client::new(daemon.addr);
    // The Pi 4 probes: tsize + blksize 1024, reads the OACK, aborts.
    pi.send_request(&rrq(b"start4.elf", "octet", &[("tsize", "0"), ("blksize", "1024")]));
    let (oack, tid) = pi.expect();
    assert_eq!(oack_options(&oack), [("tsize".into(), "5000".into()), ("blksize".into(), "1024".into())]);
    pi.send(&error(0, "Early terminate"), tid);
    // Then asks for real from the same port, and gets a new transfer from a new port.
    pi.send_request(&rrq(b"start4.elf", "octet", &[("tsize", "0"), ("blksize", "1024")]));
    let (oack2, tid2) = pi.expect();
    assert_eq!(opcode(&oack2), 6);
    assert_ne!(tid, tid2);
    pi.send(&ack(0), tid2);
    let (bytes, blocks) = pi.download(pi.expect(), 1024);
    assert_eq!(bytes, pattern(5000));
    assert_eq!(blocks, [1, 2, 3, 4, 5]);
    // Nothing more comes: the abort was final.
    assert!(pi.recv(Duration::from_millis(1500)).is_none());
    // The two transfers run in their own tasks, so their log lines come in either order; and
    // the probe's ERROR and the new request reach different sockets, so which one ends the
    // probe first is the scheduler's choice.
    let log = daemon.wait_log("file=start4.elf", 2);
    let ended =
        ["outcome=\"ended by client: error 0 \\\"Early terminate\\\"\"", "outcome=\"replaced by a new request\""];
    assert!(log.iter().any(|l| ended.iter().any(|e| l.contains(e))), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("outcome=\"complete\"")), "{log:#?}");
}

#[test]
fn a_request_repeated_before_any_answer_is_answered_by_the_same_transfer() {
    // pxelinux under load: its first reply was slow, it sent the same RRQ again from the same
    // port, then ACKed the first reply's port. A new transfer from a new port strands it.
    let files = tree(&[("vmlinuz", pattern(5000))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    let request = rrq(b"vmlinuz", "octet", &[("tsize", "0"), ("blksize", "1408")]);
    c.send_request(&request);
    let (oack, tid) = c.expect();
    assert_eq!(oack_options(&oack), [("tsize".into(), "5000".into()), ("blksize".into(), "1408".into())]);
    c.send_request(&request);
    // The same transfer sends its OACK again, from the same port.
    let (again, from) = c.expect();
    assert_eq!((opcode(&again), from), (6, tid), "{:#?}", daemon.log());
    c.send(&ack(0), tid);
    let (bytes, blocks) = c.download(c.expect(), 1408);
    assert_eq!(bytes, pattern(5000));
    assert_eq!(blocks, [1, 2, 3, 4]);
    // Without options: DATA 1 again, and the ACK to the first port completes it.
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"vmlinuz", "octet", &[]));
    let (first, tid) = c.expect();
    assert_eq!((opcode(&first), block(&first)), (3, 1));
    c.send_request(&rrq(b"vmlinuz", "octet", &[]));
    let (again, from) = c.expect();
    assert_eq!((opcode(&again), block(&again), from), (3, 1, tid));
    let (bytes, _) = c.download((first, tid), 512);
    assert_eq!(bytes, pattern(5000));
    assert!(c.recv(Duration::from_millis(1500)).is_none(), "nothing more after the last ACK");
    // One transfer each: one lookup, one log line, both complete.
    let log = daemon.wait_log("file=vmlinuz", 2);
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log.iter().all(|l| l.contains("outcome=\"complete\"")), "{log:#?}");
    assert_eq!(daemon.log().iter().filter(|l| l.contains("tftp: resolved")).count(), 2, "{:#?}", daemon.log());
    assert_eq!(daemon.log().iter().filter(|l| l.contains("a repeated request")).count(), 2);
}

#[test]
fn a_changed_or_restarted_request_replaces_the_running_transfer() {
    let files = tree(&[("kernel8.img", pattern(3000))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    // The same request after the transfer progressed: the client restarted.
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"kernel8.img", "octet", &[]));
    let (first, tid) = c.expect();
    assert_eq!((opcode(&first), block(&first)), (3, 1));
    c.send(&ack(1), tid);
    let (second, _) = c.expect();
    assert_eq!(block(&second), 2);
    c.send_request(&rrq(b"kernel8.img", "octet", &[]));
    let (again, tid2) = c.expect();
    assert_eq!((opcode(&again), block(&again)), (3, 1));
    assert_ne!(tid, tid2);
    let (bytes, _) = c.download((again, tid2), 512);
    assert_eq!(bytes, pattern(3000));
    // The old transfer is gone: its port no longer answers for it.
    c.send(&ack(2), tid);
    let late = c.recv(Duration::from_millis(1500));
    assert!(late.as_ref().is_none_or(|(p, _)| opcode(p) == 5), "{late:?} (old {tid}, new {tid2}) {:#?}", daemon.log());
    // A different request before any answer replaces it too.
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"kernel8.img", "octet", &[]));
    let (_, tid) = c.expect();
    c.send_request(&rrq(b"kernel8.img", "octet", &[("blksize", "1024")]));
    let (oack, tid2) = c.expect();
    assert_eq!(opcode(&oack), 6);
    assert_ne!(tid, tid2);
    c.send(&ack(0), tid2);
    let (bytes, _) = c.download(c.expect(), 1024);
    assert_eq!(bytes, pattern(3000));
    let log = daemon.wait_log("file=kernel8.img", 4);
    assert_eq!(log.iter().filter(|l| l.contains("outcome=\"replaced by a new request\"")).count(), 2, "{log:#?}");
    assert_eq!(log.iter().filter(|l| l.contains("outcome=\"complete\"")).count(), 2, "{log:#?}");
}

#[test]
fn block_numbers_wrap_from_65535_to_0() {
    // blksize 8 makes 65536 blocks out of half a megabyte.
    let size = 65540 * 8 + 3;
    let files = tree(&[("big.img", pattern(size))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"big.img", "octet", &[("blksize", "8")]));
    let (oack, tid) = c.expect();
    assert_eq!(oack_options(&oack), [("blksize".into(), "8".into())]);
    c.send(&ack(0), tid);
    let (bytes, blocks) = c.download(c.expect(), 8);
    assert_eq!(bytes.len(), size);
    assert!(bytes == pattern(size));
    assert_eq!(&blocks[65533..65539], &[65534, 65535, 0, 1, 2, 3]);
}

#[test]
fn duplicate_ack_is_ignored_and_only_the_timer_retransmits() {
    let files = tree(&[("f", pattern(4096))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"f", "octet", &[]));
    let (d1, tid) = c.expect();
    assert_eq!(block(&d1), 1);
    c.send(&ack(1), tid);
    let (d2, _) = c.expect();
    assert_eq!(block(&d2), 2);
    let sent_dup = Instant::now();
    c.send(&ack(1), tid);
    c.send(&ack(1), tid);
    // A server with the Sorcerer's Apprentice bug answers at once with DATA 2 again; the timer
    // (1 s) may resend it, but not before.
    let (again, _) = c.expect();
    assert_eq!(block(&again), 2);
    let waited = sent_dup.elapsed();
    assert!(waited >= Duration::from_millis(800), "DATA 2 resent after {waited:?}: a duplicate ACK triggered it");
    // Exactly one copy came.
    c.send(&ack(2), tid);
    let (d3, _) = c.expect();
    assert_eq!(block(&d3), 3);
}

#[test]
fn a_client_that_vanishes_is_dropped_after_its_retries() {
    let files = tree(&[("f", pattern(4096))]);
    let cfg = config(files.path(), "timeout_ms = 100\nretries = 3");
    let daemon = Daemon::start(&["--config", &cfg]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"f", "octet", &[]));
    let mut copies = 0;
    while let Some((p, _)) = c.recv(Duration::from_secs(3)) {
        assert_eq!((opcode(&p), block(&p)), (3, 1));
        copies += 1;
    }
    assert_eq!(copies, 4, "the first DATA 1 and 3 retransmissions");
    let log = daemon.wait_log("outcome=\"client stopped answering\"", 1);
    assert_eq!(log.len(), 1);
    assert!(log[0].contains("retransmitted=3"), "{}", log[0]);
}

#[test]
fn uefi_tsize_probe_gets_only_tsize_and_may_abort() {
    let files = tree(&[("ipxe.efi", pattern(1_000_001))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"ipxe.efi", "octet", &[("tsize", "0")]));
    let (oack, tid) = c.expect();
    assert_eq!(oack_options(&oack), [("tsize".into(), "1000001".into())]);
    c.send(&error(8, "User aborted the transfer"), tid);
    assert!(c.recv(Duration::from_millis(1500)).is_none());
    let log = daemon.wait_log("file=ipxe.efi", 1);
    assert!(log[0].contains("ended by client: error 8"), "{}", log[0]);
}

#[test]
fn only_requested_options_are_acknowledged() {
    let files = tree(&[("pxelinux.0", pattern(2000))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"pxelinux.0", "octet", &[("BLKSIZE", "1408")]));
    let (oack, tid) = c.expect();
    assert_eq!(oack_options(&oack), [("BLKSIZE".into(), "1408".into())]);
    c.send(&error(0, "done"), tid);
    // Nothing understood: no OACK at all, DATA 1 at once.
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"pxelinux.0", "octet", &[("multicast", ""), ("rollover", "0")]));
    let (first, tid) = c.expect();
    assert_eq!((opcode(&first), block(&first), first.len()), (3, 1, 516));
    let (bytes, _) = c.download((first, tid), 512);
    assert_eq!(bytes, pattern(2000));
}

#[test]
fn nothing_but_one_packet_before_the_client_answers() {
    let files = tree(&[("big", pattern(200_000))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    // Options with a large window: only the OACK until ACK 0 proves the client is real.
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"big", "octet", &[("windowsize", "64"), ("blksize", "1468")]));
    let (oack, tid) = c.expect();
    assert_eq!(opcode(&oack), 6);
    assert!(c.recv(Duration::from_millis(600)).is_none(), "more than the OACK before ACK 0");
    c.send(&ack(0), tid);
    let mut window = 0;
    while let Some((p, _)) = c.recv(Duration::from_millis(300)) {
        if opcode(&p) == 3 && window < 64 {
            window += 1;
        }
        if window == 64 {
            break;
        }
    }
    assert_eq!(window, 64);
    // No options: exactly one DATA until ACK 1.
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"big", "octet", &[]));
    let (d1, _) = c.expect();
    assert_eq!(block(&d1), 1);
    assert!(c.recv(Duration::from_millis(600)).is_none(), "a second packet before any ACK");
}

#[test]
fn writes_are_refused_and_names_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/ok.txt"), "inside").unwrap();
    std::fs::write(dir.path().join("secret"), "outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink("sub/ok.txt", root.join("inner-link")).unwrap();
    let daemon = Daemon::start(&["--tftp-root", path_str(&root)]);
    let c = Client::new(daemon.addr);
    let code_for = |packet: Vec<u8>| -> u16 {
        c.send_request(&packet);
        let (reply, _) = c.expect();
        assert_eq!(opcode(&reply), 5, "expected ERROR for {packet:?}, got {reply:?}");
        block(&reply)
    };
    let mut wrq = rrq(b"upload.bin", "octet", &[]);
    wrq[1] = 2;
    assert_eq!(code_for(wrq), 2);
    assert!(!root.join("upload.bin").exists());
    assert_eq!(code_for(rrq(b"../secret", "octet", &[])), 2);
    assert_eq!(code_for(rrq(b"sub/../../secret", "octet", &[])), 2);
    assert_eq!(code_for(rrq(b"..\\secret", "octet", &[])), 2);
    assert_eq!(code_for(rrq(b"link", "octet", &[])), 2);
    assert_eq!(code_for(rrq(b"/etc/passwd", "octet", &[])), 1);
    assert_eq!(code_for(rrq(b"sub", "octet", &[])), 1);
    assert_eq!(code_for(rrq(b"sub/ok\x01.txt", "octet", &[])), 1);
    assert_eq!(code_for(rrq(b"sub/ok.txt", "mail", &[])), 4);
    // Garbage on the request port gets ERROR 4, and the server carries on.
    c.send_request(b"\x00\x01no-terminator");
    let (reply, _) = c.expect();
    assert_eq!((opcode(&reply), block(&reply)), (5, 4));
    c.send_request(&[0xff; 3]);
    let (reply, _) = c.expect();
    assert_eq!((opcode(&reply), block(&reply)), (5, 4));
    // What is inside, through a symlink or with a leading slash, is served.
    for name in [&b"sub/ok.txt"[..], b"/sub/ok.txt", b"inner-link", b"SUB/OK.TXT"] {
        c.send_request(&rrq(name, "octet", &[]));
        let (bytes, _) = c.download(c.expect(), 512);
        assert_eq!(bytes, b"inside", "{}", String::from_utf8_lossy(name));
    }
}

#[test]
fn packets_from_another_port_get_error_5_and_the_transfer_goes_on() {
    let files = tree(&[("f", pattern(1500))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"f", "octet", &[]));
    let (d1, tid) = c.expect();
    let intruder = Client::new(daemon.addr);
    intruder.send(&ack(1), tid);
    let (reply, from) = intruder.expect();
    assert_eq!((opcode(&reply), block(&reply), from), (5, 5, tid));
    let (bytes, _) = c.download((d1, tid), 512);
    assert_eq!(bytes, pattern(1500));
}

#[test]
fn transfers_are_limited_per_client_and_overall() {
    let files = tree(&[("f", pattern(100_000))]);
    let cfg = config(files.path(), "max_per_client = 2\nmax_transfers = 3\ntimeout_ms = 2000");
    let daemon = Daemon::start(&["--config", &cfg]);
    let open = |ip: &str| {
        let c = Client::from_ip(daemon.addr, ip);
        c.send_request(&rrq(b"f", "octet", &[]));
        c
    };
    let a1 = open("127.0.0.1");
    let a2 = open("127.0.0.1");
    assert!(a1.recv(Duration::from_secs(2)).is_some() && a2.recv(Duration::from_secs(2)).is_some());
    // A third from the same address is dropped (it will retry), another address is served.
    let a3 = open("127.0.0.1");
    assert!(a3.recv(Duration::from_millis(700)).is_none(), "per-client limit not applied");
    let b1 = open("127.0.0.2");
    let (first, tid) = b1.recv(Duration::from_secs(2)).expect("another client is served");
    // Overall limit: three are running.
    let c1 = open("127.0.0.3");
    assert!(c1.recv(Duration::from_millis(700)).is_none(), "overall limit not applied");
    // One ends; a retried request now gets through.
    b1.download((first, tid), 512);
    assert_eq!(daemon.wait_log("outcome=\"complete\"", 1).len(), 1);
    c1.send_request(&rrq(b"f", "octet", &[]));
    let (p, _) = c1.recv(Duration::from_secs(2)).expect("served once a place is free");
    assert_eq!(block(&p), 1);
    assert!(!daemon.wait_log("transfer limit reached", 1).is_empty());
}

#[test]
fn a_huge_client_timeout_holds_a_place_no_longer_than_the_servers_schedule() {
    // Issue 12: timeout=255 held a place for 7 × 255 s, so a few hundred forged requests locked
    // everyone out for half an hour. Here the server's own schedule is 0.1 + 0.2 + 0.4 + 0.8 s.
    let files = tree(&[("f", pattern(100_000))]);
    let cfg = config(files.path(), "max_per_client = 2\nmax_transfers = 4\ntimeout_ms = 100\nretries = 3");
    let daemon = Daemon::start(&["--config", &cfg]);
    let hog = rrq(b"f", "octet", &[("timeout", "255"), ("tsize", "0")]);
    let hogs: Vec<Client> = ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]
        .iter()
        .map(|ip| {
            let c = Client::from_ip(daemon.addr, ip);
            c.send_request(&hog);
            c
        })
        .collect();
    for h in &hogs {
        let (oack, _) = h.expect();
        assert_eq!(oack_options(&oack), [("timeout".into(), "255".into()), ("tsize".into(), "100000".into())]);
    }
    let filled = Instant::now();
    let newcomer = Client::from_ip(daemon.addr, "127.0.0.4");
    newcomer.send_request(&rrq(b"f", "octet", &[]));
    assert!(newcomer.recv(Duration::from_millis(200)).is_none(), "every place should be taken");
    // It repeats its request, as clients do, until it is served.
    let first = loop {
        if let Some((p, _)) = newcomer.recv(Duration::from_millis(250)) {
            break p;
        }
        assert!(filled.elapsed() < Duration::from_secs(30), "still locked out after {:?}", filled.elapsed());
        newcomer.send_request(&rrq(b"f", "octet", &[]));
    };
    assert_eq!((opcode(&first), block(&first)), (3, 1));
    let log = daemon.wait_log("outcome=\"client stopped answering\"", 4);
    assert_eq!(log.len(), 4, "{log:#?}");
    for line in &log {
        let ms: u64 = line.split("ms=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(ms < 10_000, "held for {ms} ms: {line}");
    }
}

#[test]
fn error_replies_are_rate_limited_per_source() {
    // Issue 12: every 2-byte malformed packet got a 54-byte ERROR, without limit.
    let files = tree(&[("f", pattern(10))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let flood = Client::new(daemon.addr);
    let started = Instant::now();
    for _ in 0..1000 {
        flood.send_request(&[0, 1]);
    }
    let (mut errors, mut longest) = (0usize, 0usize);
    while let Some((p, _)) = flood.recv(Duration::from_millis(1000)) {
        assert_eq!((opcode(&p), block(&p)), (5, 4), "{p:?}");
        errors += 1;
        longest = longest.max(p.len());
    }
    eprintln!("{errors} ERRORs of at most {longest} bytes for 1000 malformed packets");
    // A burst of 50, then 10 a second, over the whole time (the last second was silence).
    let bound = 50.0 + 10.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(errors >= 1 && errors as f64 <= bound, "{errors} ERRORs for 1000 packets (bound {bound:.0})");
    assert!(longest <= 39, "an ERROR of {longest} bytes (dnsmasq's is 39)");
    // Another address is not affected.
    let other = Client::from_ip(daemon.addr, "127.0.0.2");
    other.send_request(&[0, 1]);
    let (p, _) = other.expect();
    assert_eq!((opcode(&p), block(&p)), (5, 4));
    // Nor is a real request from the flooded address: its transfer has its own port and slot.
    flood.send_request(&rrq(b"f", "octet", &[]));
    let (bytes, _) = flood.download(flood.expect(), 512);
    assert_eq!(bytes, pattern(10));
}

#[test]
fn a_client_acking_every_block_of_a_window_gets_each_block_once() {
    // Issue 12: 347,441 packets for 16,384 blocks at windowsize 64 when every in-window ACK
    // restarted the window.
    let blocks = 16_384usize;
    let size = blocks * 512 - 1;
    let files = tree(&[("big", pattern(size))]);
    let daemon = Daemon::start(&["--tftp-root", path_str(files.path())]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"big", "octet", &[("windowsize", "64")]));
    let (oack, tid) = c.expect();
    assert_eq!(oack_options(&oack), [("windowsize".into(), "64".into())]);
    c.send(&ack(0), tid);
    let (mut bytes, mut packets, mut next) = (Vec::with_capacity(size), 0usize, 1usize);
    loop {
        let (p, from) = c.expect();
        assert_eq!((opcode(&p), from), (3, tid));
        packets += 1;
        // Each block in order is acknowledged at once; a repeat or one out of order is not.
        if block(&p) == (next % 65536) as u16 {
            bytes.extend_from_slice(&p[4..]);
            c.send(&ack(block(&p)), tid);
            if p.len() - 4 < 512 {
                break;
            }
            next += 1;
        }
    }
    while c.recv(Duration::from_millis(500)).is_some() {
        packets += 1;
    }
    eprintln!("{packets} DATA packets for {blocks} blocks at windowsize 64, ACK per block");
    assert_eq!(next, blocks);
    assert!(bytes == pattern(size), "the file arrived damaged");
    assert!(packets * 10 <= blocks * 11, "{packets} packets for {blocks} blocks");
}

/// A field of /proc/<pid>/status in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().unwrap()
}

#[test]
fn netascii_requests_hold_no_copy_of_the_file() {
    // Issue 12: one netascii RRQ for a 1 GiB file raised the daemon's peak RSS to 3,079 MiB;
    // 32 for a 40 MiB file to 1,449 MiB. Sparse files: nothing to read from the disk.
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("huge.img", 1u64 << 30), ("kernel.img", 40 << 20)] {
        std::fs::File::create(dir.path().join(name)).unwrap().set_len(len).unwrap();
    }
    let daemon = Daemon::start(&["--tftp-root", path_str(dir.path())]);
    let before = status_kib(daemon.pid(), "VmRSS:");
    // From four addresses: 34 transfers are over the 32 allowed to one.
    let clients: Vec<(Client, &[u8])> = (0..34)
        .map(|i| {
            let c = Client::from_ip(daemon.addr, &format!("127.0.0.{}", 2 + i % 4));
            let name: &[u8] = if i < 2 { b"huge.img" } else { b"kernel.img" };
            c.send_request(&rrq(name, "netascii", &[("tsize", "0"), ("blksize", "1468")]));
            (c, name)
        })
        .collect();
    // Every one is answered (and so holds what it holds) before the peak is read. tsize is
    // not offered in netascii, so blksize alone is acknowledged.
    for (c, name) in &clients {
        let (oack, tid) = c.expect();
        assert_eq!(oack_options(&oack), [("blksize".into(), "1468".into())], "{}", String::from_utf8_lossy(name));
        c.send(&ack(0), tid);
        let (data, _) = c.expect();
        assert_eq!((opcode(&data), block(&data), data.len()), (3, 1, 4 + 1468));
        assert!(data[4..].iter().all(|&b| b == 0));
    }
    let peak = status_kib(daemon.pid(), "VmHWM:");
    let now = status_kib(daemon.pid(), "VmRSS:");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "VmRSS {} MiB before, VmHWM {} MiB, VmRSS {} MiB with 34 netascii transfers",
        before / 1024,
        peak / 1024,
        now / 1024
    );
    // The 40 MiB file is cached once (briefly twice while it is loaded); nothing per request.
    assert!(grown_mib < 200, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn a_gap_reported_inside_a_window_is_resent_at_once() {
    // An RFC 7440 receiver that misses block 3 of a window acknowledges block 2; the server
    // resends from 3 without waiting for its timer (5 s here).
    let files = tree(&[("f", pattern(512 * 40))]);
    let cfg = config(files.path(), "timeout_ms = 5000");
    let daemon = Daemon::start(&["--config", &cfg]);
    let c = Client::new(daemon.addr);
    c.send_request(&rrq(b"f", "octet", &[("windowsize", "8")]));
    let (_, tid) = c.expect();
    c.send(&ack(0), tid);
    let window: Vec<u16> = (0..8).map(|_| block(&c.expect().0)).collect();
    assert_eq!(window, [1, 2, 3, 4, 5, 6, 7, 8]);
    let reported = Instant::now();
    c.send(&ack(2), tid);
    let (p, _) = c.expect();
    assert_eq!(block(&p), 3, "the window did not restart at the gap");
    assert!(reported.elapsed() < Duration::from_secs(4), "resent after {:?}: by the timer", reported.elapsed());
    // The rest arrives in order from there.
    let mut next = 3u16;
    let mut bytes = pattern(512 * 40)[..1024].to_vec();
    let mut packet = p;
    loop {
        if block(&packet) == next {
            bytes.extend_from_slice(&packet[4..]);
            c.send(&ack(next), tid);
            if packet.len() - 4 < 512 {
                break;
            }
            next += 1;
        }
        packet = c.expect().0;
    }
    assert!(bytes == pattern(512 * 40));
}
