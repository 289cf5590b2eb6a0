//! One `bramble serve` per address: a second daemon on an address another already serves
//! (TFTP, DHCP, HTTP) fails at once, naming the program that holds it (checked against what
//! `ss -p` says), and the first keeps its traffic (tftp-hpa and curl fetch the first one's
//! files); daemons on different interfaces both serve (scapy's DISCOVERs, busybox tftp and curl
//! on each link get that link's daemon). Needs root (namespaces, ports 67, 69 and 80).

mod common;

use common::netns::{Lab, NsDaemon};
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/dhcp_client.py");

/// A folder served as it is, with a `who` file saying whose it is.
fn root(dir: &Path, who: &str) -> String {
    let root = dir.join(who);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("who"), who).unwrap();
    path_str(&root).to_string()
}

/// `bramble serve ARGS` that must fail at once (bounded by `timeout`, so a daemon that
/// starts anyway fails the test instead of hanging it).
fn refused(mut command: Command, args: &[&str]) -> String {
    let out: Output = command
        .args(["10", assert_cmd::cargo::cargo_bin("bramble").to_str().unwrap(), "serve"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "a second daemon started: {args:?}\n{stderr}");
    stderr
}

/// The pids `ss -p` lists as holding `filter`'s sockets (e.g. `-lunp` and `sport = :69`);
/// `ss` is the command to run (perhaps in a namespace).
fn ss_pids(mut ss: Command, flags: &str, filter: &str) -> Vec<String> {
    let out = ss.args(["-H", flags, filter]).output().expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut pids: Vec<String> =
        text.split("pid=").skip(1).map(|s| s.chars().take_while(char::is_ascii_digit).collect()).collect();
    pids.sort();
    pids.dedup();
    pids
}

fn plain(program: &str) -> Command {
    Command::new(program)
}

#[test]
fn a_second_daemon_on_the_same_loopback_address_is_refused_and_says_who_has_it() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (root(work.path(), "a"), root(work.path(), "b"));
    // The first daemon, on fixed ports (a second one needs to know them).
    let mut first = Command::new(assert_cmd::cargo::cargo_bin("bramble"))
        .args(["-v", "serve", "--tftp-root", &a, "--tftp-bind", "127.0.0.1:17001", "--http-bind", "127.0.0.1:17080"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ss_pids(plain("ss"), "-ltnp", "sport = :17080").is_empty() {
        assert!(std::time::Instant::now() < until, "the first daemon did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = first.id().to_string();
    let holder = format!("by bramble (pid {pid}: ");
    assert_eq!(ss_pids(plain("ss"), "-lunp", "sport = :17001"), vec![pid.clone()], "ss names the first daemon");
    // The same TFTP address, and one that overlaps it (the wildcard).
    for bind in ["127.0.0.1:17001", "0.0.0.0:17001"] {
        let stderr = refused(plain("timeout"), &["--tftp-root", &b, "--tftp-bind", bind, "--no-http"]);
        assert!(
            stderr.contains(&format!("error: cannot listen on {bind} for TFTP: UDP {bind} is already in use {holder}")),
            "{stderr}"
        );
        assert!(stderr.contains("stop that one, or serve on another address or interface"), "{stderr}");
    }
    // The same HTTP address.
    let stderr =
        refused(plain("timeout"), &["--tftp-root", &b, "--tftp-bind", "127.0.0.1:0", "--http-bind", "127.0.0.1:17080"]);
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:17080 for HTTP: TCP 127.0.0.1:17080 is already in use {holder}"
        )),
        "{stderr}"
    );
    // The first one still has the traffic: its own files, by tftp-hpa and curl.
    let got = work.path().join("got");
    let tftp = tool("tftp", &["127.0.0.1", "17001", "-m", "binary", "-c", "get", "who", path_str(&got)]);
    assert!(tftp.status.success(), "{}", String::from_utf8_lossy(&tftp.stderr));
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "a");
    assert_eq!(tool_ok("curl", &["-sS", "--fail", "http://127.0.0.1:17080/who"]), "a");
    // A different address is fine.
    let out = Command::new("timeout")
        .args(["2", assert_cmd::cargo::cargo_bin("bramble").to_str().unwrap(), "serve", "--tftp-root", &b])
        .args(["--tftp-bind", "127.0.0.2:17001", "--no-http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "ran until the timeout: {}", String::from_utf8_lossy(&out.stderr));
    let _ = first.kill();
    let _ = first.wait();
}

/// busybox tftp's copy of `name` from `server`, if any.
fn tftp_get(lab: &Lab, dir: &Path, server: &str) -> Option<String> {
    let out = dir.join(format!("from-{server}"));
    let _ = std::fs::remove_file(&out);
    let status = lab
        .client
        .command("timeout")
        .args(["3", "busybox", "tftp", "-g", "-r", "who", "-l", path_str(&out), server])
        .status()
        .unwrap();
    status.success().then(|| std::fs::read_to_string(&out).unwrap())
}

#[test]
fn daemons_on_different_interfaces_both_serve_and_a_third_on_one_of_them_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (a, b, c) = (root(work.path(), "a"), root(work.path(), "b"), root(work.path(), "c"));
    let lab = Lab::new("oneper");
    lab.client.ip(&["addr", "add", "10.77.0.60/24", "dev", "eth0"]);
    lab.client.ip(&["addr", "add", "10.78.0.60/24", "dev", "eth1"]);
    // The same ports (DHCP 67 and 4011, TFTP 69, HTTP 80), each daemon on its own interface.
    let on = |interface: &str, root: &str| {
        NsDaemon::start(
            &lab.server,
            &["--interface", interface, "--dhcp", "proxy", "--answer", "all", "--tftp-root", root],
        )
    };
    let first = on("veth0", &a);
    // A third on veth0, while only the first runs: each service in turn is refused, naming it.
    let first_pid = {
        let pids = ss_pids(lab.server.command("ss"), "-lunp", "sport = :69");
        assert_eq!(pids.len(), 1, "{pids:?}");
        pids[0].clone()
    };
    let holder = format!("by bramble (pid {first_pid}: ");
    let in_ns = || lab.server.command("timeout");
    for (args, says) in [
        (vec!["--interface", "veth0", "--tftp-root", &c], "for TFTP: UDP 0.0.0.0:69 on veth0 is already in use "),
        (
            vec!["--interface", "veth0", "--dhcp", "proxy", "--tftp-bind", "0.0.0.0:6969", "--tftp-root", &c],
            "for DHCP: UDP 0.0.0.0:67 on veth0 is already in use ",
        ),
        (
            vec!["--interface", "veth0", "--tftp-bind", "0.0.0.0:6969", "--http-bind", "0.0.0.0:80", "--tftp-root", &c],
            "for HTTP: TCP 0.0.0.0:80 on veth0 is already in use ",
        ),
        // Without an interface, the wildcard overlaps the first's too.
        (
            vec!["--tftp-root", &c, "--tftp-bind", "0.0.0.0:69", "--no-http"],
            "for TFTP: UDP 0.0.0.0:69 is already in use ",
        ),
    ] {
        let stderr = refused(in_ns(), &args);
        assert!(stderr.contains(&format!("{says}{holder}")), "{args:?}: {stderr}");
    }
    let second = on("veth1", &b);
    // Each link gets its own daemon: DHCP, TFTP, HTTP.
    for (iface, server, who, daemon) in [("eth0", "10.77.0.1", "a", &first), ("eth1", "10.78.0.1", "b", &second)] {
        let out = lab
            .client
            .command("/usr/bin/python3")
            .args([SCRIPT, iface, "mac=52:54:00:00:00:61", "xid=0x61", "opt=53:01", "opt=93:0007"])
            .arg(format!(
                "opt=60:{}",
                b"PXEClient:Arch:00007:UNDI:003016".iter().map(|b| format!("{b:02x}")).collect::<String>()
            ))
            .output()
            .unwrap();
        let replies: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("REPLY "))
            .map(String::from)
            .collect();
        assert_eq!(replies.len(), 1, "{iface}: {replies:?}");
        assert!(replies[0].starts_with(&format!("REPLY {server}:67 ")), "{iface}: {replies:?}");
        assert_eq!(tftp_get(&lab, work.path(), server).as_deref(), Some(who), "TFTP on {iface}");
        let http = lab
            .client
            .command("curl")
            .args(["-sS", "--fail", "-m", "5", &format!("http://{server}/who")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&http.stdout), who, "HTTP on {iface}");
        assert!(!daemon.wait_log("outcome=offer (proxy)", 1).is_empty(), "{:#?}", daemon.log());
    }
}
