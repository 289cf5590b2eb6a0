//! PCs network-boot from bramble alone, in QEMU, inside namespaces this test makes: a lab is
//! built from a recipe with a PC menu (its loaders come from Debian's packages through `bramble
//! fetch`), `bramble serve` runs it, and each machine must reach the menu's kernel, whose
//! initramfs prints a marker on the serial console. BIOS (SeaBIOS + iPXE ROM → pxelinux.0),
//! UEFI (OVMF's own PXE → ipxe.efi → the iPXE menu over HTTP, or → syslinux.efi and its menu),
//! BIOS with iPXE (undionly.kpxe → the iPXE menu), UEFI HTTP Boot (no TFTP), and proxyDHCP beside
//! a router (dnsmasq handing out addresses only).

mod common;

use common::netns::Netns;
use common::qemu::{self, Firmware, Vm};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A machine boots to the marker well inside this under TCG (16–30 s measured).
const BOOT_LIMIT: Duration = Duration::from_secs(240);

fn recipe(dhcp: &str, bios: &str, uefi: &str, clients: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[lab]\nname = \"pxe-e2e\"\n\n# Built only if a client boots it, and this lab has only PCs with a menu.\n[os]\nsource = \"debian\"\n\n[server]\ninterface = \"br0\"\naddress = \"10.77.0.1/24\"\ndhcp = \"{dhcp}\"\n{}\n\
         [pc]\nbios = \"{bios}\"\nuefi = \"{uefi}\"\ntimeout = 1\n\n\
         [[menu]]\nlabel = \"Marker kernel\"\nkind = \"kernel\"\nfiles = [\"vmlinuz\", \"initrd.img\"]\n\
         append = \"console=ttyS0,115200 panic=-1 loglevel=4\"\n\n\
         [[menu]]\nlabel = \"Local disk\"\nkind = \"local\"\n",
        if dhcp == "server" { "range = \"10.77.0.100-10.77.0.150\"\n" } else { "" }
    );
    for (name, mac) in clients {
        text.push_str(&format!("\n[[client]]\nname = \"{name}\"\nmodel = \"pc\"\nmac = \"{mac}\"\n"));
    }
    text
}

/// Build the lab of `recipe` in `work`; returns the lab folder.
fn build(work: &Path, recipe_text: &str, marker: &str) -> std::path::PathBuf {
    std::fs::copy(common::pcboot::x86_kernel(), work.join("vmlinuz")).unwrap();
    common::pcboot::marker_initramfs(work, marker);
    std::fs::write(work.join("lab.toml"), recipe_text).unwrap();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-cache/bramble-cache");
    common::bramble()
        .args(["build"])
        .arg(work.join("lab.toml"))
        .arg("-o")
        .arg(work.join("out"))
        .arg("--cache")
        .arg(&cache)
        .timeout(Duration::from_secs(600))
        .assert()
        .success();
    work.join("out/lab")
}

fn boot(firmware: Firmware, dhcp: &str) {
    boot_with(firmware, dhcp, "pxelinux", "ipxe");
}

fn boot_with(firmware: Firmware, dhcp: &str, bios: &str, uefi: &str) {
    let _one_at_a_time = qemu::serial_lock();
    let work = tempfile::tempdir().unwrap();
    let marker = format!("BRAMBLE-E2E-{firmware:?}-{dhcp}-{bios}-{uefi}-{}", std::process::id());
    let mac = "52:54:00:77:00:10";
    let lab = build(work.path(), &recipe(dhcp, bios, uefi, &[("pc1", mac)]), &marker);
    let ns = Netns::new(&format!("pxe{}", firmware as u8));
    qemu::bridge(&ns, &["tap0"]);
    let _router = (dhcp == "proxy").then(|| Router::start(&ns, work.path()));
    let config = lab.join("daemon.toml");
    let daemon = common::netns::NsDaemon::start(&ns, &["--config", config.to_str().unwrap()]);
    let mut vm = Vm::start(&ns, "tap0", firmware, mac, 512, work.path());
    let booted = vm.wait_for(&[&marker], BOOT_LIMIT);
    assert!(
        booted,
        "{firmware:?} ({dhcp}) did not reach the marker kernel.\nconsole:\n{}\ndaemon:\n{}",
        vm.tail(40),
        daemon.log().join("\n")
    );
    if firmware == Firmware::Bios && bios == "pxelinux" {
        // The iPXE ROM was handed on to pxelinux, which read the lab's own menu.
        let log = daemon.log();
        assert!(
            log.iter().any(|l| l.contains("tftp transfer")
                && l.contains("bios/pxelinux.cfg/default ")
                && l.contains("outcome=\"complete\"")),
            "pxelinux never read the lab's menu: {log:#?}"
        );
    }
    if dhcp == "proxy" {
        // The firmware's REQUEST for the router's address names the router: only it answers.
        let log = daemon.log();
        assert!(!log.iter().any(|l| l.contains("outcome=ack (proxy)")), "bramble ACKed the router's REQUEST: {log:#?}");
        assert!(!daemon.wait_log("outcome=ignored: it chose server 10.77.0.2", 1).is_empty(), "{log:#?}");
    }
}

/// The lab network's own router: dnsmasq handing out addresses and no boot information, in a
/// namespace of its own joined to the bridge.
struct Router {
    _ns: Netns,
    child: std::process::Child,
}

impl Router {
    fn start(lab: &Netns, work: &Path) -> Router {
        let ns = Netns::new("pxerouter");
        lab.ip(&["link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
        lab.ip(&["link", "set", "lan0", "master", "br0", "up"]);
        ns.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        let child = ns
            .command("dnsmasq")
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root", "--group=root"])
            .args(["--interface=eth0", "--bind-interfaces", "--dhcp-range=10.77.0.160,10.77.0.200,255.255.255.0,1h"])
            .arg(format!("--dhcp-leasefile={}", work.join("router.leases").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)");
        Router { _ns: ns, child }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bios_pxelinux_menu_boots_the_kernel() {
    boot(Firmware::Bios, "server");
}

#[test]
fn uefi_pxe_chains_ipxe_and_boots_over_http() {
    boot(Firmware::UefiPxe, "server");
}

#[test]
fn uefi_http_boot_needs_no_tftp() {
    boot(Firmware::UefiHttp, "server");
}

#[test]
fn proxy_mode_beside_a_router() {
    boot(Firmware::Bios, "proxy");
}

#[test]
fn bios_ipxe_loads_the_menu_over_http() {
    boot_with(Firmware::Bios, "server", "ipxe", "ipxe");
}

#[test]
fn uefi_syslinux_menu_boots_the_kernel() {
    boot_with(Firmware::UefiPxe, "server", "pxelinux", "syslinux");
}
