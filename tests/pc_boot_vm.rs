//! PCs network-boot through `bramble serve` for real, in QEMU (TCG): SeaBIOS with QEMU's iPXE
//! NIC ROM and OVMF with EDK2's own UEFI PXE stack, each in proxy mode (beside dnsmasq as the
//! network's plain DHCP server) and in server mode; pxelinux.0 or syslinux.efi then loads a
//! Debian kernel and a busybox initramfs over bramble's TFTP, which prints a marker on the
//! serial console (tests/scripts/pc_boot_vm.sh does the set-up). Needs root.

mod common;

use std::process::Command;

fn boot(mode: &str, firmware: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/pc_boot_vm.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("BRAMBLE", assert_cmd::cargo::cargo_bin("bramble"))
        .env("MODE", mode)
        .env("FIRMWARE", firmware)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("RESULT: PASS"),
        "{mode} {firmware}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The boot went through bramble's DHCP and TFTP, as the firmware class it is.
    let class = if firmware == "bios" { "class=ipxe-bios" } else { "class=uefi-x64" };
    assert!(stdout.contains(class), "{stdout}");
    assert!(stdout.contains("file=vmlinuz") && stdout.contains("outcome=\"complete\""), "{stdout}");
    if mode == "proxy" {
        // The address came from the other server; bramble only added the boot information.
        assert!(stdout.contains("outcome=offer (proxy)"), "{stdout}");
        let acks = count(&stdout, "lan dnsmasq acks: ");
        assert!(acks >= 1, "dnsmasq gave no address: {stdout}");
        // Its REQUEST for that address names dnsmasq; only dnsmasq answers it (RFC 2131 §4.3.2).
        assert_eq!(count(&stdout, "bramble proxy acks: "), 0, "bramble ACKed a REQUEST for the router: {stdout}");
        assert!(count(&stdout, "bramble left to the router: ") >= 1, "{stdout}");
    } else {
        assert!(stdout.contains("outcome=ack 10.77.0.150"), "{stdout}");
    }
}

/// The number the script printed after `label`.
fn count(stdout: &str, label: &str) -> usize {
    stdout.lines().find_map(|l| l.strip_prefix(label)).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn proxy_mode_beside_another_dhcp_server() {
    boot("proxy", "bios");
    boot("proxy", "uefi");
}

#[test]
fn server_mode() {
    boot("server", "bios");
    boot("server", "uefi");
}
