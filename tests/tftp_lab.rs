//! `bramble serve --config daemon.toml` on a lab tree: client prefixes (serial, MAC, fixed
//! string) map to `clients/<name>/` then `os/<os>/boot/`, names without a prefix go to the root
//! folders (the Pi 3's bootcode.bin), case falls back, and a hundred clients fetching the same
//! firmware read it from disk once. Downloads by curl and tftp-hpa, checked with cmp.

mod common;

use common::*;
use std::path::Path;

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn lab() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lab");
    write(&root, "os/pios/boot/start4.elf", &vec![0x41; 2_300_000]);
    write(&root, "os/pios/boot/config.txt", b"arm_64bit=1\n");
    write(&root, "os/pios/boot/cmdline.txt", b"shared\n");
    write(&root, "os/pios/boot/bootcode.bin", b"pi3 bootcode");
    write(&root, "os/pios/boot/overlays/vc4-kms-v3d.dtbo", b"overlay");
    write(&root, "os/other/boot/cmdline.txt", b"other os\n");
    write(&root, "clients/node1/cmdline.txt", b"root=/dev/nfs systemd.hostname=node1\n");
    write(&root, "clients/node2/cmdline.txt", b"root=/dev/nfs systemd.hostname=node2\n");
    write(&root, "clients/node3/cmdline.txt", b"root=/dev/nfs systemd.hostname=node3\n");
    std::fs::write(
        dir.path().join("daemon.toml"),
        r#"
lab = "lab"

[tftp]
root_dirs = ["os/pios/boot"]

[[client]]
name = "node1"
serial = "d9780558"
os = "pios"

[[client]]
name = "node2"
mac = "dc:a6:32:01:36:c2"
os = "pios"

[[client]]
name = "node3"
prefix = "rack/node3/"
dirs = ["clients/node3", "os/other/boot", "os/pios/boot"]
"#,
    )
    .unwrap();
    dir
}

fn curl(daemon: &Daemon, name: &str, out: &Path) -> bool {
    let url = format!("tftp://127.0.0.1:{}/{name}", daemon.port());
    tool("curl", &["-sS", "--fail", "-o", path_str(out), &url]).status.success()
}

fn same(a: &Path, b: &Path) -> bool {
    tool("cmp", &[path_str(a), path_str(b)]).status.success()
}

#[test]
fn prefixes_route_each_client_to_its_files() {
    let dir = lab();
    let root = dir.path().join("lab");
    let daemon = Daemon::start(&["--config", path_str(&dir.path().join("daemon.toml"))]);
    let out = dir.path().join("out");
    let cases = [
        ("d9780558/cmdline.txt", "clients/node1/cmdline.txt"),
        ("d9780558/start4.elf", "os/pios/boot/start4.elf"),
        ("d9780558/overlays/vc4-kms-v3d.dtbo", "os/pios/boot/overlays/vc4-kms-v3d.dtbo"),
        ("dc-a6-32-01-36-c2/cmdline.txt", "clients/node2/cmdline.txt"),
        ("dc-a6-32-01-36-c2/config.txt", "os/pios/boot/config.txt"),
        ("rack/node3/cmdline.txt", "clients/node3/cmdline.txt"),
        ("rack/node3/config.txt", "os/pios/boot/config.txt"),
        // The Pi 3 ROM asks at the root; upper case falls back to the lower-case file.
        ("bootcode.bin", "os/pios/boot/bootcode.bin"),
        ("D9780558/Config.TXT", "os/pios/boot/config.txt"),
    ];
    for (name, expected) in cases {
        assert!(curl(&daemon, name, &out), "{name} not served");
        assert!(same(&out, &root.join(expected)), "{name} is not {expected}");
    }
    // node1's cmdline.txt is not node2's, and an unknown serial gets nothing of a client's.
    assert!(!curl(&daemon, "ffffffff/cmdline.txt", &out) || same(&out, &root.join("os/pios/boot/cmdline.txt")));
    assert!(!curl(&daemon, "d9780558/nothing", &out));
    let log = daemon.wait_log("file=dc-a6-32-01-36-c2/cmdline.txt", 1);
    assert!(log[0].contains("client=\"node2\""), "{}", log[0]);
}

#[test]
fn a_hundred_clients_read_the_firmware_from_disk_once() {
    let dir = lab();
    let root = dir.path().join("lab");
    let daemon = Daemon::start(&["--config", path_str(&dir.path().join("daemon.toml"))]);
    let port = daemon.port();
    let outs = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..100)
        .map(|i| {
            let out = outs.path().join(format!("start4-{i}.elf"));
            let child = std::process::Command::new("curl")
                .args(["-sS", "--fail", "--tftp-blksize", "1468", "-o", path_str(&out)])
                .arg(format!("tftp://127.0.0.1:{port}/d9780558/start4.elf"))
                .spawn()
                .expect("curl");
            (child, out)
        })
        .collect();
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        assert!(same(&out, &root.join("os/pios/boot/start4.elf")));
    }
    assert_eq!(daemon.wait_log("outcome=\"complete\"", 100).len(), 100);
    let loads = daemon.log().iter().filter(|l| l.contains("read into the cache") && l.contains("start4.elf")).count();
    assert_eq!(loads, 1, "start4.elf was read from disk {loads} times");
}

#[test]
fn bad_daemon_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(&cfg, "lab = \".\"\n[[client]]\nname = \"n\"\nserial = \"xyz\"\nos = \"p\"\n").unwrap();
    bramble()
        .args(["serve", "--config", path_str(&cfg)])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("client n: `xyz` is not a serial number"));
    std::fs::write(&cfg, "lab = \".\"\n[tftp]\nbind = \"nonsense\"\n").unwrap();
    bramble()
        .args(["serve", "--config", path_str(&cfg)])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(format!("--> {}:3:8", cfg.display())));
    bramble().args(["serve"]).assert().code(2).stderr(predicates::str::contains("--config"));
    bramble()
        .args(["serve", "--tftp-root", "/nonexistent/dir", "--tftp-bind", "127.0.0.1:0"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("cannot serve /nonexistent/dir"));
}

/// Issue 12 item 3 over TFTP: `d` trades places with a symlink to a folder outside the root
/// while tftp-hpa asks for `d/f` again and again (200 gets per tftp process). Not one file
/// from outside may arrive, and a link out must not tell which names exist behind it.
#[test]
fn a_folder_swapped_for_a_symlink_out_never_serves_from_outside() {
    use common::swap_race::*;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let root = race_tree(dir.path());
    std::fs::write(dir.path().join("outside/shadow"), b"shadow\n").unwrap();
    let daemon = Daemon::start(&["--tftp-root", path_str(&root)]);
    let port = daemon.port();

    // The existence oracle first, with nothing moving.
    let tftp_get = |name: &str| {
        let out = tool("tftp", &["-m", "binary", "127.0.0.1", &port, "-c", "get", name, "/dev/null"]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let (shadow, missing) = (tftp_get("dl/shadow"), tftp_get("dl/missing"));
    assert_eq!(shadow, missing, "a link out tells which names exist behind it");
    assert!(!shadow.is_empty(), "no error for a link out");

    let outs = tempfile::tempdir().unwrap();
    let swapper = Swapper::start(&root);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let mut tally = Tally::default();
    for _ in 0..50 {
        if std::time::Instant::now() > until {
            break;
        }
        let script: String =
            (0..200).map(|i| format!("get d/f {}\n", outs.path().join(i.to_string()).display())).collect();
        let mut child = std::process::Command::new("tftp")
            .args(["-m", "binary", "127.0.0.1", &port])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tftp-hpa");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().code().is_some());
        for i in 0..200 {
            let path = outs.path().join(i.to_string());
            tally.add(&std::fs::read(&path).unwrap_or_default());
            let _ = std::fs::remove_file(path);
        }
    }
    let swaps = swapper.stop();
    eprintln!("{swaps} swaps, {tally:?}");
    assert_eq!(tally.outside, 0, "files from outside the root were served: {tally:?}");
    assert!(tally.inside > 0 && tally.other > 0, "the race never ran both ways: {tally:?}");
}
