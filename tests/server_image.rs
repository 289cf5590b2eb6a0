//! The flashable server image, from the Debian recipe: judged by sfdisk, fsck.fat, e2fsck,
//! debugfs, mtools, bmaptool, xz, sha256sum and systemd-analyze; the embedded bramble (built for
//! aarch64 by `just cross`) runs under qemu-aarch64; two builds are byte-identical. The GPT
//! variant (`--table gpt`) from the same recipe and cache is judged by sgdisk, fsck.fat and
//! e2fsck. Then the goal: the GPT image boots in qemu-system-aarch64 as the lab server (one boot
//! for both tables: they differ only in the table and the PARTUUIDs its command line and fstab
//! name), and its bramble.service and kernel NFS server network-boot a second (arm64 UEFI)
//! machine to multi-user from the shared root.

mod common;

use bramble::source::eeprom_release::{RELEASES, RPI_EEPROM};
use common::http::HttpServer;
use common::netns::Netns;
use common::qemu::{self, Firmware, Vm};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const SERVER_MAC: &str = "52:54:00:77:00:01";
const CLIENT_MAC: &str = "52:54:00:77:00:31";

/// The aarch64 bramble, built the way CI builds it.
fn cross_binary() -> PathBuf {
    let out =
        Command::new("just").arg("cross").current_dir(env!("CARGO_MANIFEST_DIR")).stderr(Stdio::inherit()).output();
    let out = out.expect("`just cross` (install just: pip install rust-just)");
    assert!(out.status.success(), "just cross failed");
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn recipe() -> String {
    format!(
        "[lab]\nname = \"srv-e2e\"\noverlays = [\"overlay\"]\n\n[os]\nsource = \"debian\"\n\n\
         [server]\nhostname = \"labserver\"\ninterface = \"eth0\"\naddress = \"10.77.0.1/24\"\ndhcp = \"server\"\n\
         range = \"10.77.0.100-10.77.0.150\"\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1dXzLdQzNn3m5bLx0aN3ZqT1xR2c3d4e5f6g7h8i9 me@lab\"]\n\n\
         [[client]]\nname = \"node1\"\nmodel = \"pi4\"\nserial = \"00000001\"\n\n\
         [[client]]\nname = \"vm1\"\nmodel = \"pc\"\nmac = \"{CLIENT_MAC}\"\nboot = \"os\"\ncmdline = \"console=ttyAMA0\"\n"
    )
}

struct Built {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    daemon: PathBuf,
    _site: HttpServer,
}

fn build_into(b: &Built, out: &str, extra: &[&str]) {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-cache/bramble-cache");
    let started = std::time::Instant::now();
    bramble()
        .args(["build", path_str(&b.dir.join("lab.toml")), "-o", path_str(&b.dir.join(out)), "--server-image"])
        .args(["--daemon", path_str(&b.daemon), "--cache", path_str(&cache)])
        .args(["--mirror", &format!("{RPI_EEPROM}={}", b._site.url("/rpi-eeprom"))])
        .args(extra)
        .timeout(Duration::from_secs(3000))
        .assert()
        .success();
    eprintln!("server image {out} {extra:?}: built in {:.0} s", started.elapsed().as_secs_f64());
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let daemon = cross_binary();
        let site = HttpServer::start();
        for r in RELEASES {
            let dir = eeprom_fixtures().join(format!("firmware-{}/default", r.chip.number()));
            for f in [r.image, r.recovery] {
                let file = f.url.rsplit('/').next().unwrap();
                site.put(
                    &format!("/rpi-eeprom{}", f.url.strip_prefix(RPI_EEPROM).unwrap()),
                    std::fs::read(dir.join(file)).unwrap(),
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.toml"), recipe()).unwrap();
        common::marker::write_overlay(dir.path());
        let b = Built { dir: dir.path().to_path_buf(), _dir: dir, daemon, _site: site };
        build_into(&b, "a", &[]);
        b
    })
}

/// The same lab as a GPT image, in `g` beside `a`: the OS root and the downloads come from the
/// first build's cache.
fn built_gpt() -> &'static Built {
    static GPT: OnceLock<()> = OnceLock::new();
    let b = built();
    // Not compressed: the xz step is the same code as the MBR build's, and most of the time.
    GPT.get_or_init(|| build_into(b, "g", &["--table", "gpt", "--no-xz"]));
    b
}

/// The `key=value` token of a kernel command line.
fn cmdline_value(cmdline: &str, key: &str) -> String {
    cmdline
        .split_whitespace()
        .find_map(|t| t.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {cmdline}"))
        .into()
}

/// The image's own kernel command line, read from its boot partition by mtools.
fn image_cmdline(img: &Path, work: &Path) -> String {
    let boot = partition(img, 1, work);
    let cmdline = tool_ok("mtype", &["-i", path_str(&boot), "::cmdline.txt"]);
    let _ = std::fs::remove_file(boot);
    cmdline
}

fn imager_devices(out: &Path) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("server.json")).unwrap()).unwrap();
    json["os_list"][0]["devices"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect()
}

/// A partition of the image as its own file, for the filesystem checkers.
fn partition(img: &Path, n: usize, to: &Path) -> PathBuf {
    let dump = tool_ok("sfdisk", &["-J", path_str(img)]);
    let json: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let p = &json["partitiontable"]["partitions"][n - 1];
    let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
    let out = to.join(format!("p{n}.img"));
    tool_ok(
        "dd",
        &[
            &format!("if={}", path_str(img)),
            &format!("of={}", path_str(&out)),
            "bs=512",
            &format!("skip={start}"),
            &format!("count={size}"),
            "conv=sparse",
            "status=none",
        ],
    );
    out
}

fn debugfs(fs: &Path, command: &str) -> Vec<u8> {
    let out = Command::new("debugfs").args(["-R", command]).arg(fs).output().unwrap();
    assert!(out.status.success(), "debugfs {command}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn the_image_is_what_the_tools_say_and_reproducible() {
    let b = built();
    let out = b.dir.join("a");
    let img = out.join("server.img");
    let work = tempfile::tempdir().unwrap();

    let table = tool_ok("sfdisk", &["-d", path_str(&img)]);
    assert!(table.contains("label: dos"), "{table}");
    assert!(table.contains("type=c") && table.contains("type=83"), "{table}");
    let boot = partition(&img, 1, work.path());
    let root = partition(&img, 2, work.path());
    let fsck = Command::new("fsck.fat").arg("-n").arg(&boot).output().unwrap();
    assert!(fsck.status.success(), "fsck.fat: {}", String::from_utf8_lossy(&fsck.stdout));
    let e2fsck = Command::new("e2fsck").arg("-fn").arg(&root).output().unwrap();
    assert!(e2fsck.status.success(), "e2fsck: {}", String::from_utf8_lossy(&e2fsck.stdout));

    // The boot partition: the kernel's command line mounts the image's own root.
    let cmdline = tool_ok("mtype", &["-i", path_str(&boot), "::cmdline.txt"]);
    let label = table.lines().find_map(|l| l.strip_prefix("label-id: 0x")).unwrap().trim().to_string();
    assert!(cmdline.contains(&format!("root=PARTUUID={label}-02")), "{cmdline} / {label}");
    assert!(tool_ok("mdir", &["-b", "-i", path_str(&boot), "::"]).contains("config.txt"));

    // The root holds the daemon, its unit and config, the lab and the exports.
    let daemon = debugfs(&root, "cat /usr/bin/bramble");
    assert_eq!(sha256_of(&daemon), sha256_of(&std::fs::read(&b.daemon).unwrap()));
    let config = work.path().join("daemon.toml");
    std::fs::write(&config, debugfs(&root, "cat /etc/bramble/daemon.toml")).unwrap();
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(
        toml.contains("lab = \"/srv/bramble\"") && toml.contains("lease_file = \"/var/lib/bramble/leases.toml\""),
        "{toml}"
    );
    let exports = String::from_utf8(debugfs(&root, "cat /etc/exports.d/bramble.exports")).unwrap();
    assert!(exports.contains("/srv/bramble/os/debian-bookworm-arm64/root 10.77.0.0/24(ro"), "{exports}");
    let listing =
        String::from_utf8_lossy(&debugfs(&root, "ls -l /srv/bramble/os/debian-bookworm-arm64/root/etc")).into_owned();
    assert!(listing.contains("fstab") && listing.contains("passwd"), "{listing}");
    assert!(!debugfs(&root, "ls /srv/bramble/clients/node1").is_empty());

    // The embedded bramble runs on aarch64 and reads its own config.
    let bin = work.path().join("bramble");
    std::fs::write(&bin, &daemon).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let version = tool_ok("qemu-aarch64", &["-L", "/usr/aarch64-linux-gnu", path_str(&bin), "--version"]);
    assert!(version.starts_with("bramble "), "{version}");
    // Its lab is in the image, not here: point a copy of the config at the image's lab.
    let lab = work.path().join("srv");
    std::fs::create_dir_all(&lab).unwrap();
    let check_config = work.path().join("check.toml");
    std::fs::write(&check_config, toml.replace("lab = \"/srv/bramble\"", &format!("lab = {:?}", path_str(&lab))))
        .unwrap();
    let checked = tool_ok(
        "qemu-aarch64",
        &["-L", "/usr/aarch64-linux-gnu", path_str(&bin), "serve", "--config", path_str(&check_config), "--check"],
    );
    assert!(checked.contains("ok: lab") && checked.contains("dhcp server"), "{checked}");

    // The units pass systemd's own checks against the image's own systemd units (the default
    // dependencies such as sysinit.target must resolve), and the daemon's is locked down.
    let units = work.path().join("units");
    let lib = units.join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    debugfs(&root, &format!("rdump /usr/lib/systemd/system {}", path_str(&lib)));
    assert!(lib.join("system/sysinit.target").exists(), "the image has no sysinit.target");
    for unit in ["bramble.service", "bramble-firstboot.service"] {
        let path = units.join("etc/systemd/system").join(unit);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, debugfs(&root, &format!("cat /etc/systemd/system/{unit}"))).unwrap();
    }
    // The programs the units run (ExecReload='s kill too), as stubs.
    for exe in ["usr/bin/bramble", "usr/lib/bramble/firstboot", "bin/kill"] {
        let p = units.join(exe);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--root", path_str(&units)])
        .args(["/etc/systemd/system/bramble.service", "/etc/systemd/system/bramble-firstboot.service"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success() && !said.contains("bramble"), "systemd-analyze verify: {said}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--root", path_str(&units), "bramble.service"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for bramble.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}{}", String::from_utf8_lossy(&security.stderr)));
    assert!(score <= 2.5, "bramble.service exposure {score}:\n{report}");

    // The compressed image, its map, its checksums.
    tool_ok("xz", &["-t", path_str(&out.join("server.img.xz"))]);
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg("server.img.sha256")
        .arg("server.img.xz.sha256")
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    let copy = work.path().join("copy.img");
    tool_ok("bmaptool", &["copy", "--bmap", path_str(&out.join("server.img.bmap")), path_str(&img), path_str(&copy)]);
    assert!(Command::new("cmp").arg(&img).arg(&copy).status().unwrap().success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("server.json")).unwrap()).unwrap();
    let entry = &json["os_list"][0];
    assert_eq!(entry["extract_sha256"].as_str().unwrap(), sha256_of(&std::fs::read(&img).unwrap()));
    assert_eq!(imager_devices(&out), ["pi5-64bit", "pi4-64bit", "pi3-64bit"], "an MBR image boots every Pi");

    // A second build elsewhere gives the same bytes. It skips the xz: given the same image, the
    // encoder's settings fix its bytes (tests/disk_image.rs compresses one image two ways).
    build_into(b, "b", &["--no-xz"]);
    let again = b.dir.join("b");
    for f in ["server.img", "server.img.bmap", "manifest.json"] {
        let same = Command::new("cmp").arg(out.join(f)).arg(again.join(f)).status().unwrap().success();
        assert!(same, "{f} differs between two builds");
    }
    // Without the xz, server.json offers the image itself, whose bytes it must name.
    assert!(!again.join("server.img.xz").exists());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("server.json")).unwrap()).unwrap();
    let plain = &json["os_list"][0];
    assert_eq!(plain["url"], "server.img");
    let sha = tool_ok("sha256sum", &[path_str(&again.join("server.img"))]);
    assert_eq!(plain["image_download_sha256"].as_str(), sha.split_whitespace().next());
    assert_eq!(plain["image_download_sha256"], plain["extract_sha256"]);
}

#[test]
fn the_gpt_image_is_what_sgdisk_and_fsck_say() {
    let b = built_gpt();
    let out = b.dir.join("g");
    let img = out.join("server.img");
    let work = tempfile::tempdir().unwrap();

    let verify = tool("sgdisk", &["-v", path_str(&img)]);
    let said = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success() && said.contains("No problems found"), "sgdisk -v:\n{said}");
    let printed = tool_ok("sgdisk", &["-p", path_str(&img)]);
    let codes: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Number"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    assert_eq!(codes, ["0700", "8300"], "{printed}");
    let guid = |n: &str| {
        let info = tool_ok("sgdisk", &["-i", n, path_str(&img)]);
        let line = info.lines().find_map(|l| l.strip_prefix("Partition unique GUID: ")).expect(&info);
        line.trim().to_ascii_lowercase()
    };
    let (boot_guid, root_guid) = (guid("1"), guid("2"));

    let boot = partition(&img, 1, work.path());
    let root = partition(&img, 2, work.path());
    let fsck = Command::new("fsck.fat").arg("-n").arg(&boot).output().unwrap();
    assert!(fsck.status.success(), "fsck.fat: {}", String::from_utf8_lossy(&fsck.stdout));
    let e2fsck = Command::new("e2fsck").arg("-fn").arg(&root).output().unwrap();
    assert!(e2fsck.status.success(), "e2fsck: {}", String::from_utf8_lossy(&e2fsck.stdout));

    // The command line and fstab name the GPT partitions.
    let cmdline = tool_ok("mtype", &["-i", path_str(&boot), "::cmdline.txt"]);
    assert_eq!(cmdline_value(&cmdline, "root="), format!("PARTUUID={root_guid}"), "{cmdline}");
    let fstab = String::from_utf8(debugfs(&root, "cat /etc/fstab")).unwrap();
    for guid in [&boot_guid, &root_guid] {
        assert!(fstab.contains(&format!("PARTUUID={guid} ")), "{guid} not in {fstab}");
    }

    let sums = Command::new("sha256sum").args(["-c", "server.img.sha256"]).current_dir(&out).output().unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    assert_eq!(imager_devices(&out), ["pi5-64bit", "pi4-64bit"], "a Pi 3 cannot boot a GPT image");
}

#[test]
fn the_image_boots_the_lab_server_which_netboots_a_client() {
    let b = built_gpt();
    let _one_at_a_time = qemu::serial_lock();
    let work = tempfile::tempdir().unwrap();
    let img = b.dir.join("g/server.img");
    let boot = b.dir.join("g/lab/os/debian-bookworm-arm64/boot");
    let config = std::fs::read_to_string(boot.join("config.txt")).unwrap();
    let kernel = config.lines().find_map(|l| l.strip_prefix("kernel=")).unwrap().trim().to_string();
    let initrd = config
        .lines()
        .find_map(|l| l.strip_prefix("initramfs "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // The image's own root= (a GPT PARTUUID): the kernel must find its root by it.
    let root = cmdline_value(&image_cmdline(&img, work.path()), "root=");

    let ns = Netns::new("srvimg");
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["link", "set", "br0", "up"]);
    for tap in ["tap0", "tap1"] {
        ns.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        ns.ip(&["link", "set", tap, "master", "br0", "up"]);
    }
    let serial = work.path().join("server-serial.log");
    let mut server = ns
        .command("qemu-system-aarch64")
        .args([
            "-accel",
            "tcg",
            "-machine",
            "virt",
            "-cpu",
            "cortex-a72",
            "-m",
            "1536",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(boot.join(&kernel))
        .arg("-initrd")
        .arg(boot.join(&initrd))
        .args(["-append", &format!("console=ttyAMA0 root={root} rootwait net.ifnames=0")])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio,snapshot=on", path_str(&img)))
        .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={SERVER_MAC},romfile=")])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args(["-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-aarch64");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(&mut server);
    let server_log = || qemu::clean(&std::fs::read(&serial).unwrap_or_default());
    let booted = std::time::Instant::now();
    let deadline = booted + Duration::from_secs(600);
    while !server_log().contains("Started bramble.service") {
        assert!(
            std::time::Instant::now() < deadline,
            "the server image did not start bramble.service:\n{}",
            server_log()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("the GPT server image started bramble.service in {:.0} s", booted.elapsed().as_secs_f64());
    let mut client = Vm::start(&ns, "tap1", Firmware::Arm64Uefi, CLIENT_MAC, 1024, work.path());
    let ok = client.wait_for(&[&common::marker::expected("vm1")], Duration::from_secs(900));
    let tail: Vec<String> = server_log().lines().rev().take(60).map(str::to_string).collect();
    assert!(
        ok,
        "the client did not boot from the server image.\nclient:\n{}\nserver:\n{}",
        client.tail(60),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
