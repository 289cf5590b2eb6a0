//! A new lab while the daemon runs, as `systemctl reload bramble` does it: `bramble deploy`
//! swaps a changed lab in and SIGHUP tells `bramble serve`, which sees the lab through a
//! read-only bind mount as the unit's `ReadOnlyPaths=` gives it. In namespaces this test makes, a
//! TFTP read held in flight across the reload (tests/scripts/slow_tftp_get.py) must end with
//! the old lab's bytes; tftp-hpa must get the new lab's files and its new client's route only
//! after the reload; udhcpc must keep the address it was leased where it fits the new pool, and
//! a client the new lab adds must get its fixed address; a configuration that does not load
//! must change nothing.

mod common;

use common::netns::{Lab, NsDaemon};
use common::{bramble, path_str};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A lab folder: daemon.toml (DHCP server on veth0, files read from disk as they are sent, so
/// the transfer in flight depends on its open file), `boot/big.bin`, and in the new lab a
/// client `node9` with its own folder and a fixed address, and a smaller pool.
fn make_lab(dir: &Path, big: &[u8], node9: bool) {
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    std::fs::write(dir.join("boot/big.bin"), big).unwrap();
    // The new lab's pool starts one address later: 10.77.0.100's lease no longer fits it.
    let first = if node9 { 101 } else { 100 };
    let mut toml = format!(
        "lab = \".\"\ninterface = \"veth0\"\n\n[tftp]\nroot_dirs = [\"boot\"]\ncache_mib = 0\n\n\
         [dhcp]\nmode = \"server\"\nanswer = \"all\"\nrange = \"10.77.0.{first}-10.77.0.120\"\nlease_file = \"leases.toml\"\n",
    );
    if node9 {
        std::fs::create_dir_all(dir.join("clients/node9")).unwrap();
        std::fs::write(dir.join("clients/node9/hello.txt"), "hello from node9\n").unwrap();
        toml.push_str(
            "\n[[client]]\nname = \"node9\"\nserial = \"0000beef\"\nmac = \"02:00:00:00:00:99\"\n\
             address = \"10.77.0.50\"\ndirs = [\"clients/node9\"]\n",
        );
    }
    std::fs::write(dir.join("daemon.toml"), toml).unwrap();
}

fn pattern(seed: u32, len: u32) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8).collect()
}

fn deploy(lab: &Path, dest: &Path) {
    bramble().arg("deploy").arg(lab).arg(dest).args(["--no-exports", "--no-service"]).assert().success();
}

/// The address udhcpc is offered and ACKed for `mac`, from a macvlan of the client's eth0 that
/// has that MAC (the TFTP client keeps eth0's).
fn lease(net: &Lab, dir: &Path, mac: &str) -> String {
    let link = format!("m{}", &mac[15..].replace(':', ""));
    if Command::new("ip").args(["-n", &net.client.name, "link", "show", &link]).output().unwrap().status.success() {
        net.client.ip(&["link", "del", &link]);
    }
    net.client.ip(&["link", "add", "link", "eth0", "name", &link, "address", mac, "type", "macvlan", "mode", "bridge"]);
    net.client.ip(&["link", "set", &link, "up"]);
    let record = dir.join(format!("{link}.env"));
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncase \"$1\" in bound) echo \"$ip\" > {};; esac\nexit 0\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = net
        .client
        .command("busybox")
        .args(["udhcpc", "-i", &link, "-q", "-f", "-n", "-t", "5", "-T", "2", "-s", path_str(&script)])
        .output()
        .unwrap();
    assert!(out.status.success(), "udhcpc for {mac}: {}", String::from_utf8_lossy(&out.stderr));
    let ip = std::fs::read_to_string(&record).unwrap().trim().to_string();
    std::fs::remove_file(&record).unwrap();
    ip
}

/// tftp-hpa's `get NAME` from the client namespace: the bytes, or what it said.
fn tftp_get(net: &Lab, dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let file = dir.join("got");
    let _ = std::fs::remove_file(&file);
    let out = net
        .client
        .command("tftp")
        .args(["-m", "binary", "10.77.0.1", "-c", "get", name, path_str(&file)])
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if said.contains("Error") || !out.status.success() {
        return Err(said);
    }
    std::fs::read(&file).map_err(|e| format!("{e}: {said}"))
}

#[test]
fn a_reload_keeps_transfers_in_flight_and_leases_and_serves_the_new_lab() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let net = Lab::new("reload");
    net.client.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    let (big_a, big_b) = (pattern(1, 100_000), pattern(2, 100_000));
    make_lab(&d.join("a"), &big_a, false);
    make_lab(&d.join("b"), &big_b, true);
    let dest = d.join("srv/bramble");
    deploy(&d.join("a"), &dest);
    // The lab read-only over itself, as the unit's ReadOnlyPaths= has it: the swap must still
    // reach the daemon.
    // The leases outside it, as the unit keeps them in its StateDirectory.
    let leases = d.join("state/leases.toml");
    let mut daemon = NsDaemon::start_read_only(
        &net.server,
        &dest,
        &["--config", path_str(&dest.join("daemon.toml")), "--lease-file", path_str(&leases)],
    );
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", daemon.pid())).unwrap();
    let bound = mounts.lines().find(|l| l.split(' ').nth(4) == Some(path_str(&dest)));
    assert!(bound.is_some_and(|l| l.split(' ').nth(5).unwrap().starts_with("ro")), "{mounts}");
    assert_eq!(lease(&net, d, "02:00:00:00:00:31"), "10.77.0.100");
    assert_eq!(lease(&net, d, "02:00:00:00:00:32"), "10.77.0.101");
    assert_eq!(lease(&net, d, "02:00:00:00:00:33"), "10.77.0.102");

    // A read of the old lab's big.bin, held after its 50th block.
    let (go, received) = (d.join("go"), d.join("slow.bin"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/slow_tftp_get.py");
    let mut slow = net
        .client
        .command("python3")
        .args([path_str(&script), "10.77.0.1", "big.bin", path_str(&received), "50", path_str(&go)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut said = BufReader::new(slow.stdout.take().unwrap()).lines();
    let first = said.next().and_then(Result::ok);
    assert_eq!(first.as_deref(), Some("paused"), "the slow read did not start: {:#?}", daemon.log());

    assert!(tftp_get(&net, d, "0000beef/hello.txt").is_err(), "the old lab has no node9");
    deploy(&d.join("b"), &dest);
    // The folder is the new lab's now, but its clients arrive with the reload.
    assert!(tftp_get(&net, d, "0000beef/hello.txt").is_err(), "node9's route before the reload");
    let hup = Command::new("kill").args(["-HUP", &daemon.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    let reloaded = daemon.wait_log("reload: serving the new lab", 1);
    assert_eq!(reloaded.len(), 1, "no reload: {:#?}", daemon.log());
    assert_eq!(tftp_get(&net, d, "0000beef/hello.txt").unwrap(), b"hello from node9\n");
    assert!(tftp_get(&net, d, "big.bin").unwrap() == big_b, "a new read gets the new lab's big.bin");

    // The read begun before the reload goes on and ends with the old lab's bytes.
    assert!(slow.try_wait().unwrap().is_none(), "the held read ended early");
    std::fs::write(&go, "").unwrap();
    let last = said.next().and_then(Result::ok);
    assert!(slow.wait().unwrap().success(), "the held read failed: {last:?}\n{:#?}", daemon.log());
    assert_eq!(last.as_deref(), Some("done 100000"));
    assert!(std::fs::read(&received).unwrap() == big_a, "the held read got other bytes than the old lab's");
    // The server logs a transfer when the last ACK arrives, a moment after the client has gone.
    daemon.wait_log("outcome=\"complete\"", 3);
    let complete =
        daemon.log().iter().filter(|l| l.contains("file=big.bin") && l.contains("outcome=\"complete\"")).count();
    assert_eq!(complete, 2, "{:#?}", daemon.log());

    // The leases that fit the new pool stayed; the one that does not was dropped and its
    // client leased again from the new pool; the new lab's client gets its fixed address.
    // (Asked first, a client whose lease was lost would get the pool's first address.)
    assert_eq!(lease(&net, d, "02:00:00:00:00:33"), "10.77.0.102", "a lease was lost");
    assert_eq!(lease(&net, d, "02:00:00:00:00:32"), "10.77.0.101", "a lease was lost");
    assert_eq!(lease(&net, d, "02:00:00:00:00:31"), "10.77.0.103");
    assert_eq!(lease(&net, d, "02:00:00:00:00:99"), "10.77.0.50");
    let complaints: Vec<String> =
        daemon.log().into_iter().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    assert_eq!(complaints.len(), 1, "{complaints:#?}");
    assert!(complaints[0].contains("lease no longer fits the new pool; dropped mac=02:00:00:00:00:31 ip=10.77.0.100"));
    // A configuration that does not load changes nothing.
    std::fs::write(dest.join("daemon.toml"), "lab = \".\"\ninterface = \"veth0\"\n[[client]]\nname = 7\n").unwrap();
    let hup = Command::new("kill").args(["-HUP", &daemon.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    let failed = daemon.wait_log("reload failed; still serving the previous lab", 1);
    assert!(failed.len() == 1 && failed[0].contains("daemon.toml"), "{:#?}", daemon.log());
    assert_eq!(tftp_get(&net, d, "0000beef/hello.txt").unwrap(), b"hello from node9\n");
    assert!(daemon.stop(), "bramble serve stops on SIGTERM");
    let saved = std::fs::read_to_string(&leases).unwrap();
    for mac in ["02:00:00:00:00:31", "02:00:00:00:00:32", "02:00:00:00:00:33"] {
        assert!(saved.contains(mac), "{mac} not in the lease file: {saved}");
    }
}
