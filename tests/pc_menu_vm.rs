//! Each kind of PC menu entry boots in QEMU (TCG) through the lab's own generated menu: a lab
//! is built from a recipe whose `[pc] default` names the entry, `bramble serve` runs it in a
//! namespace, and the machine must print that entry's marker on its serial console.
//!
//! BIOS: SeaBIOS with QEMU's iPXE NIC ROM gets `boot.ipxe`, which hands it to pxelinux.0 and the
//! lab's `bios/pxelinux.cfg/default` (the daemon's log must show pxelinux fetching it): the
//! local disk (a boot sector on the machine's disk), memtest86+ (Debian's package) as a kernel,
//! an ISO through memdisk (built here with xorriso), and a chain to another PXE program.
//! UEFI: OVMF's own PXE gets ipxe.efi, then the iPXE menu: a chain to another iPXE script (as
//! netboot.xyz's menu is), and an ISO default, which UEFI's menu leaves out for its first entry.
//! Needs root, qemu-system-x86, ovmf, xorriso.

mod common;

use common::netns::{Netns, NsDaemon};
use common::qemu::{self, Firmware, Vm};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A machine reaches its marker well inside this under TCG, two at once on two busy cores.
const BOOT_LIMIT: Duration = Duration::from_secs(300);

/// A real-mode program for 0000:7C00 (an MBR, a PXE program, an El Torito no-emulation image:
/// all three are loaded and entered there) that writes `text` to COM1 and halts. `len` bytes,
/// ending in the 55AA boot signature.
fn marker_program(text: &str, len: usize) -> Vec<u8> {
    const TEXT_AT: u16 = 0x7c00 + 23;
    let [lo, hi] = TEXT_AT.to_le_bytes();
    let mut code = vec![
        0xfa, // cli
        0xfc, // cld
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, lo, hi, // mov si, TEXT_AT
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xac, // next: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz halt
        0xee, // out dx, al
        0xeb, 0xf8, // jmp next
        0xf4, // halt: hlt
        0xeb, 0xfd, // jmp halt
    ];
    assert_eq!(code.len(), 23);
    code.extend_from_slice(format!("\r\n{text}\r\n\0").as_bytes());
    assert!(code.len() < 510);
    code.resize(len, 0);
    code[510] = 0x55;
    code[511] = 0xaa;
    code
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Markers {
    local: String,
    iso: String,
    chain: String,
    script: String,
    kernel: String,
}

/// The recipe's entries and their files, in `work`.
fn recipe(work: &Path, default: &str, m: &Markers) -> String {
    std::fs::copy(common::pcboot::x86_kernel(), work.join("vmlinuz")).unwrap();
    common::pcboot::marker_initramfs(work, &m.kernel);
    std::fs::write(work.join("marker.kpxe"), marker_program(&m.chain, 512)).unwrap();
    std::fs::write(work.join("marker.ipxe"), format!("#!ipxe\necho {}\nshell\n", m.script)).unwrap();
    // The ISO: its El Torito no-emulation image is the marker program (4 sectors of 512).
    let iso_root = work.join("iso");
    std::fs::create_dir_all(&iso_root).unwrap();
    std::fs::write(iso_root.join("boot.bin"), marker_program(&m.iso, 2048)).unwrap();
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-b", "boot.bin", "-no-emul-boot", "-boot-load-size", "4", "-o"])
        .arg(work.join("marker.iso"))
        .arg(&iso_root));
    format!(
        "[lab]\nname = \"pc-menu-e2e\"\n\n[os]\nsource = \"debian\"\n\n\
         [server]\ninterface = \"br0\"\naddress = \"10.77.0.1/24\"\ndhcp = \"server\"\n\
         range = \"10.77.0.100-10.77.0.150\"\nanswer = \"all\"\n\n\
         [pc]\nbios = \"pxelinux\"\nuefi = \"ipxe\"\ntimeout = 1\ndefault = \"{default}\"\n\n\
         [[menu]]\nlabel = \"Marker kernel\"\nkind = \"kernel\"\nfiles = [\"vmlinuz\", \"initrd.img\"]\n\
         append = \"console=ttyS0,115200 panic=-1 loglevel=4\"\n\n\
         [[menu]]\nlabel = \"Memtest86+\"\nkind = \"kernel\"\nfiles = [\"deb:memtest86+:/boot/memtest86+x64.bin\"]\n\
         append = \"console=ttyS0,115200\"\n\n\
         [[menu]]\nlabel = \"Marker ISO\"\nkind = \"iso\"\nfiles = [\"marker.iso\"]\n\n\
         [[menu]]\nlabel = \"Another PXE program\"\nkind = \"chain\"\nfiles = [\"marker.kpxe\"]\n\n\
         [[menu]]\nlabel = \"Another iPXE menu\"\nkind = \"chain\"\nfiles = [\"marker.ipxe\"]\n\n\
         [[menu]]\nlabel = \"Local disk\"\nkind = \"local\"\n"
    )
}

fn build(work: &Path, recipe_text: &str) -> PathBuf {
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

/// A completed TFTP transfer of `file` (as named from the TFTP root, with or without its
/// leading `/`) in the daemon's log.
fn sent(log: &[String], file: &str) -> bool {
    let names = [format!("file={file} "), format!("file=/{file} ")];
    log.iter().any(|l| l.contains("tftp transfer") && names.iter().any(|n| l.contains(n)) && l.contains("complete"))
}

/// Boot a machine on a lab whose menu defaults to `default`; returns its console and the
/// daemon's log once `expect` is on the console (panics, with both, if it never is).
fn boot(tag: &str, firmware: Firmware, default: &str, expect: impl Fn(&Markers) -> String) -> (String, Vec<String>) {
    let work = tempfile::tempdir().unwrap();
    let id = format!("{tag}-{}", std::process::id());
    let m = Markers {
        local: format!("BRAMBLE-LOCAL-{id}"),
        iso: format!("BRAMBLE-ISO-{id}"),
        chain: format!("BRAMBLE-CHAIN-{id}"),
        script: format!("BRAMBLE-SCRIPT-{id}"),
        kernel: format!("BRAMBLE-KERNEL-{id}"),
    };
    let lab = build(work.path(), &recipe(work.path(), default, &m));
    let ns = Netns::new(&format!("menu{tag}"));
    qemu::bridge(&ns, &["tap0"]);
    let config = lab.join("daemon.toml");
    let daemon = NsDaemon::start(&ns, &["--config", config.to_str().unwrap()]);
    // The machine's own disk: a boot sector that prints the local marker.
    let disk = work.path().join("disk.img");
    let mut sector = marker_program(&m.local, 512);
    sector.resize(1024 * 1024, 0);
    std::fs::write(&disk, sector).unwrap();
    let extra = ["-drive".to_string(), format!("file={},format=raw,if=ide", disk.display())];
    let mut vm = Vm::start_with(&ns, "tap0", firmware, "52:54:00:77:00:20", 512, work.path(), &extra);
    let want = expect(&m);
    let booted = vm.wait_for(&[&want], BOOT_LIMIT);
    let log = daemon.log();
    assert!(booted, "{tag}: no `{want}` on the console.\nconsole:\n{}\ndaemon:\n{}", vm.tail(40), log.join("\n"));
    (vm.output(), log)
}

/// pxelinux, not iPXE's menu, booted the entry: it fetched the lab's menu over TFTP.
fn through_pxelinux(log: &[String], entry_file: &str) {
    assert!(sent(log, "bios/pxelinux.cfg/default"), "pxelinux never read the lab's menu: {log:#?}");
    if !entry_file.is_empty() {
        assert!(sent(log, entry_file), "{entry_file} was not sent: {log:#?}");
    }
}

#[test]
fn bios_local_disk() {
    let (_, log) = boot("local", Firmware::Bios, "Local disk", |m| m.local.clone());
    through_pxelinux(&log, "");
}

#[test]
fn bios_memtest_kernel() {
    // Its own banner (`Memtest86+ v6.10`), not the menu's label, which the serial console shows
    // too.
    let (console, log) = boot("memtest", Firmware::Bios, "Memtest86+", |_| "Memtest86+ v".into());
    through_pxelinux(&log, "menu/2/memtest86+x64.bin");
    assert!(!console.contains("BRAMBLE-"), "{console}");
}

#[test]
fn bios_iso_through_memdisk() {
    let (_, log) = boot("iso", Firmware::Bios, "Marker ISO", |m| m.iso.clone());
    through_pxelinux(&log, "menu/3/marker.iso");
    assert!(sent(&log, "bios/memdisk"), "{log:#?}");
}

#[test]
fn bios_chain_to_another_pxe_program() {
    let (_, log) = boot("chain", Firmware::Bios, "Another PXE program", |m| m.chain.clone());
    through_pxelinux(&log, "menu/4/marker.kpxe");
}

#[test]
fn uefi_chain_to_another_ipxe_menu() {
    boot("script", Firmware::UefiPxe, "Another iPXE menu", |m| m.script.clone());
}

#[test]
fn uefi_menu_leaves_the_iso_out() {
    // The ISO is the recipe's default, but UEFI cannot run memdisk: its menu boots its first
    // entry, the marker kernel.
    let (console, _) = boot("efiiso", Firmware::UefiPxe, "Marker ISO", |m| m.kernel.clone());
    assert!(!console.contains("BRAMBLE-ISO-"), "{console}");
}
