//! An ACKed lease survives `kill -9`: 50 times, a burst of 40 REQUESTs (through a relay, on
//! plain sockets: tests/scripts/dhcp_burst.py), SIGKILL once the first 1…40 ACKs are in, a
//! restart; then every address ACKed before must be refused to another client (NAK), never given
//! to it. At the end every lease ACKed in the whole run is checked again. Needs root
//! (namespaces, port 67).

mod common;

use common::netns::{Lab, NsDaemon};
use common::*;
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/dhcp_burst.py");
const CYCLES: u32 = 50;
const BURST: u32 = 40;

/// Run the crash client in the client namespace: check `held`, burst `burst`, kill `pid` after
/// `kill_after` ACKs. Returns (addresses not held, leases ACKed).
fn run(
    lab: &Lab,
    dir: &Path,
    held: &[(String, Ipv4Addr)],
    burst: &[(String, Ipv4Addr)],
    pid: u32,
    kill_after: u32,
) -> (Vec<String>, Vec<(String, Ipv4Addr)>) {
    let write = |name: &str, rows: &[(String, Ipv4Addr)]| {
        let path = dir.join(name);
        std::fs::write(&path, rows.iter().map(|(m, ip)| format!("{m} {ip}\n")).collect::<String>()).unwrap();
        path
    };
    let (check, burst) = (write("check", held), write("burst", burst));
    let out = lab
        .client
        .command("/usr/bin/python3")
        .args([SCRIPT, "10.77.0.2", "10.77.0.1", path_str(&check), path_str(&burst)])
        .args([pid.to_string(), kill_after.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dhcp_burst.py: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let mut lost = Vec::new();
    let mut acked = Vec::new();
    for line in stdout.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[..] {
            ["HELD", _] => {}
            ["ACK", mac, ip] => acked.push((mac.to_string(), ip.parse().unwrap())),
            _ => lost.push(line.to_string()),
        }
    }
    (lost, acked)
}

#[test]
fn acked_leases_survive_kill_9_during_bursts() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    let lab = Lab::new("crash");
    lab.client.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    let config = work.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "lab = {:?}\ninterface = \"veth0\"\n[tftp]\nroot_dirs = [\".\"]\n[dhcp]\nmode = \"server\"\nsubnet = \"10.77.0.0/16\"\nrange = \"10.77.1.0-10.77.9.255\"\nlease_file = \"leases.toml\"\n",
            path_str(&root)
        ),
    )
    .unwrap();
    let args = ["--config", path_str(&config)];
    let mut all_acked: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut previous: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut lost = Vec::new();
    let mut killed_mid_burst = 0;
    for cycle in 0..CYCLES {
        let mut daemon = NsDaemon::start(&lab.server, &args);
        let burst: Vec<(String, Ipv4Addr)> = (0..BURST)
            .map(|i| {
                let n = cycle * BURST + i;
                let mac = format!("02:00:00:00:{:02x}:{:02x}", n >> 8, n & 0xff);
                (mac, Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 1, 0)) + n))
            })
            .collect();
        let kill_after = 1 + cycle % BURST;
        let (not_held, acked) = run(&lab, work.path(), &previous, &burst, daemon.pid(), kill_after);
        lost.extend(not_held.into_iter().map(|l| format!("cycle {cycle}: {l}")));
        let status = daemon.wait_exit().expect("the daemon survived SIGKILL");
        assert_eq!(status.signal(), Some(9), "{status:?}");
        for (mac, ip) in &acked {
            assert!(burst.contains(&(mac.clone(), *ip)), "ACK of {ip} to {mac}, which asked for another");
        }
        assert!(acked.len() as u32 >= kill_after, "cycle {cycle}: {} ACKs {:#?}", acked.len(), daemon.log());
        killed_mid_burst += u32::from((acked.len() as u32) < BURST);
        all_acked.extend(acked.iter().cloned());
        previous = acked;
    }
    // After the last kill: every lease ACKed in the whole run.
    let _daemon = NsDaemon::start(&lab.server, &args);
    let (not_held, _) = run(&lab, work.path(), &all_acked, &[], 0, 0);
    lost.extend(not_held.into_iter().map(|l| format!("at the end: {l}")));
    eprintln!(
        "{} leases ACKed over {CYCLES} kills ({killed_mid_burst} mid-burst), {} lost",
        all_acked.len(),
        lost.len()
    );
    let addresses: std::collections::BTreeSet<&str> = lost.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    assert!(
        lost.is_empty(),
        "{} of {} ACKed leases lost over {CYCLES} kills ({killed_mid_burst} mid-burst): {lost:#?}",
        addresses.len(),
        all_acked.len()
    );
    assert!(killed_mid_burst > 0, "no kill came before the burst's last ACK");
}
