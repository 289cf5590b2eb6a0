//! The PC boot menu in each boot loader's language: a syslinux `pxelinux.cfg/default` for BIOS
//! (pxelinux) and for UEFI (syslinux.efi), an iPXE script, and a GRUB `grub.cfg`. Pure text
//! from the recipe's `[[menu]]`; where the files are is decided by [`super::pc`].
//!
//! Not every firmware can boot every entry: memdisk runs only under BIOS, and UEFI has no
//! "boot the local disk" for syslinux, so those entries are left out there rather than shown
//! and failing.

use crate::recipe::{EntryFirmware, MenuEntry, MenuKind};

/// Which firmware a syslinux config is for: the module set and what can run differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Efi64,
}

/// A menu entry with the served paths of its files.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed<'a> {
    pub entry: &'a MenuEntry,
    /// TFTP names (absolute from the TFTP root, `/menu/2/vmlinuz`).
    pub tftp: Vec<String>,
    /// HTTP paths (absolute on the lab's HTTP server, `/pc/menu/2/vmlinuz`).
    pub http: Vec<String>,
}

/// The entry a menu boots when its timeout runs out: the recipe's `default` if this menu shows
/// it, else the first entry it shows.
fn default_shown(entries: &[Placed], default: usize, shows: impl Fn(&Placed) -> bool) -> Option<usize> {
    entries.get(default).filter(|p| shows(p)).map(|_| default).or_else(|| entries.iter().position(&shows))
}

/// What a `chain` entry's program is, from its file name: a PC firmware runs only its own
/// kind (netboot.xyz ships `netboot.xyz.kpxe` for BIOS and `netboot.xyz.efi` for UEFI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    /// `.efi`: a UEFI application.
    Efi,
    /// `.ipxe`: an iPXE script, for iPXE on either firmware.
    IpxeScript,
    /// Anything else (`.0`, `.pxe`, `.kpxe`): a BIOS PXE program.
    Pxe,
}

fn program(placed: &Placed) -> Program {
    let name = placed.tftp.first().map(|n| n.to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".efi") {
        Program::Efi
    } else if name.ends_with(".ipxe") {
        Program::IpxeScript
    } else {
        Program::Pxe
    }
}

/// What syslinux can boot on each firmware: memdisk and the BIOS disk are BIOS only; pxechn
/// chains PXE programs, syslinux.efi EFI ones.
fn syslinux_runs(placed: &Placed, firmware: Firmware) -> bool {
    let only = match firmware {
        Firmware::Bios => EntryFirmware::Bios,
        Firmware::Efi64 => EntryFirmware::Uefi,
    };
    if placed.entry.firmware.is_some_and(|f| f != only) {
        return false;
    }
    match (placed.entry.kind, firmware) {
        (MenuKind::Kernel, _) | (MenuKind::Local | MenuKind::Iso, Firmware::Bios) => true,
        (MenuKind::Local | MenuKind::Iso, Firmware::Efi64) => false,
        (MenuKind::Chain, Firmware::Bios) => program(placed) == Program::Pxe,
        (MenuKind::Chain, Firmware::Efi64) => program(placed) == Program::Efi,
    }
}

/// The only iPXE `${platform}` (`pcbios`, `efi`) an entry runs on, if it is not for both.
fn ipxe_platform(placed: &Placed) -> Option<&'static str> {
    match placed.entry.firmware {
        Some(EntryFirmware::Bios) => return Some("pcbios"),
        Some(EntryFirmware::Uefi) => return Some("efi"),
        None => {}
    }
    match (placed.entry.kind, program(placed)) {
        (MenuKind::Iso, _) | (MenuKind::Chain, Program::Pxe) => Some("pcbios"),
        (MenuKind::Chain, Program::Efi) => Some("efi"),
        _ => None,
    }
}

/// A label on one line, without the characters each language treats specially.
fn clean(label: &str) -> String {
    label.chars().map(|c| if c.is_control() || matches!(c, '"' | '\'' | '$' | '\\' | '`') { ' ' } else { c }).collect()
}

/// `pxelinux.cfg/default` (BIOS, pxelinux.0) or its UEFI twin (syslinux.efi reads the same
/// file name). The timeout is in tenths of a second; 0 waits for a key, so "boot at once" is 1.
/// File names take syslinux's `::` prefix, "from the TFTP root": without it syslinux.efi puts
/// its own folder in front of even a name that starts with `/`.
pub fn syslinux(title: &str, entries: &[Placed], timeout_secs: u32, default: usize, firmware: Firmware) -> String {
    let root = |name: &str| format!("::{name}");
    let mut out = String::new();
    out.push_str("# Written by bramble build from the recipe's [[menu]]; edits are lost at the next build.\n");
    // BIOS pxelinux mirrors its menu on the first serial port (headless machines, VMs);
    // syslinux.efi has no SERIAL.
    if firmware == Firmware::Bios {
        out.push_str("SERIAL 0 115200\n");
    }
    out.push_str("UI menu.c32\nPROMPT 0\n");
    if let Some(d) = default_shown(entries, default, |p| syslinux_runs(p, firmware)) {
        out.push_str(&format!("DEFAULT e{}\n", d + 1));
    }
    out.push_str(&format!("TIMEOUT {}\n", (timeout_secs * 10).max(1)));
    out.push_str(&format!("MENU TITLE {}\n", clean(title)));
    for (i, placed) in entries.iter().enumerate() {
        let e = placed.entry;
        if !syslinux_runs(placed, firmware) {
            continue;
        }
        let body = match (e.kind, firmware) {
            (MenuKind::Local, Firmware::Bios) => "  LOCALBOOT 0\n".to_string(),
            (MenuKind::Local, Firmware::Efi64) | (MenuKind::Iso, Firmware::Efi64) => continue,
            (MenuKind::Kernel, _) => {
                // LINUX, not KERNEL: KERNEL picks the type by extension, and memtest86+x64.bin
                // would be run as a CD boot sector (syslinux's "Configuration" doc, KERNEL).
                let mut b = format!("  LINUX {}\n", root(&placed.tftp[0]));
                if placed.tftp.len() > 1 {
                    let initrds: Vec<String> = placed.tftp[1..].iter().map(|t| root(t)).collect();
                    b.push_str(&format!("  INITRD {}\n", initrds.join(",")));
                }
                if let Some(a) = &e.append {
                    b.push_str(&format!("  APPEND {a}\n"));
                }
                b
            }
            (MenuKind::Iso, Firmware::Bios) => format!(
                "  KERNEL memdisk\n  INITRD {}\n  APPEND {}\n",
                root(&placed.tftp[0]),
                e.append.as_deref().unwrap_or("iso raw")
            ),
            // pxelinux hands a PXE program to the firmware with pxechn; syslinux.efi loads an
            // EFI program as a kernel.
            (MenuKind::Chain, Firmware::Bios) => format!("  COM32 pxechn.c32\n  APPEND {}\n", root(&placed.tftp[0])),
            (MenuKind::Chain, Firmware::Efi64) => format!("  KERNEL {}\n", root(&placed.tftp[0])),
        };
        out.push_str(&format!("\nLABEL e{}\n  MENU LABEL {}\n{body}", i + 1, clean(&e.label)));
    }
    out
}

/// The iPXE menu script, fetched over HTTP; its paths are absolute on the same server, so it
/// needs no server address. memdisk entries are offered to BIOS iPXE only. With
/// `bios_pxelinux`, BIOS iPXE (a NIC's iPXE ROM, as QEMU's) goes on to pxelinux.0 and the lab's
/// syslinux menu instead: that is the BIOS menu the recipe asked for.
pub fn ipxe(title: &str, entries: &[Placed], timeout_secs: u32, default: usize, bios_pxelinux: bool) -> String {
    let mut out = String::from("#!ipxe\n# Written by bramble build from the recipe's [[menu]].\n");
    if bios_pxelinux {
        out.push_str("iseq ${platform} pcbios && goto pxelinux ||\n");
    }
    out.push_str(&format!("menu {}\n", clean(title)));
    for (i, placed) in entries.iter().enumerate() {
        let label = clean(&placed.entry.label);
        match ipxe_platform(placed) {
            Some(only) => out.push_str(&format!("iseq ${{platform}} {only} && item e{} {label} ||\n", i + 1)),
            None => out.push_str(&format!("item e{} {label}\n", i + 1)),
        }
    }
    let mut choose_default = String::new();
    if let Some(d) = default_shown(entries, default, |_| true) {
        choose_default = " --default ${default}".into();
        out.push_str(&format!("set default e{}\n", d + 1));
        if let Some(only) = ipxe_platform(&entries[d]) {
            // Not on the other platform's menu: its first entry that is.
            if let Some(other) = default_shown(entries, 0, |p| ipxe_platform(p).is_none_or(|o| o != only)) {
                out.push_str(&format!("iseq ${{platform}} {only} || set default e{}\n", other + 1));
            }
        }
    }
    let timeout =
        if timeout_secs == 0 { " --timeout 1".to_string() } else { format!(" --timeout {}", timeout_secs * 1000) };
    out.push_str(&format!("choose{choose_default}{timeout} target && goto ${{target}} || exit\n"));
    if bios_pxelinux {
        // pxelinux runs on iPXE's PXE API; option 210, its path prefix, is what it takes from
        // a DHCP file name of bios/pxelinux.0, so it finds ldlinux.c32 and pxelinux.cfg/ in
        // bios/ on the TFTP server, as a plain PXE ROM's pxelinux does.
        // When it returns (LOCALBOOT), iPXE exits and the BIOS boots its next device.
        out.push_str("\n:pxelinux\nset 210:string bios/\nchain /pc/bios/pxelinux.0 ||\nexit\n");
    }
    for (i, placed) in entries.iter().enumerate() {
        let e = placed.entry;
        out.push_str(&format!("\n:e{}\n", i + 1));
        match e.kind {
            MenuKind::Local => out.push_str("exit\n"),
            MenuKind::Kernel => {
                let names: Vec<&str> = placed.http[1..].iter().map(|p| p.rsplit('/').next().unwrap_or(p)).collect();
                // UEFI kernels find their initrds by name through initrd=.
                let initrds: String = names.iter().map(|n| format!(" initrd={n}")).collect();
                out.push_str(&format!("kernel {}{initrds} {}\n", placed.http[0], e.append.as_deref().unwrap_or("")));
                for p in &placed.http[1..] {
                    out.push_str(&format!("initrd {p}\n"));
                }
                out.push_str("boot\n");
            }
            MenuKind::Iso => out.push_str(&format!(
                "kernel /pc/bios/memdisk {}\ninitrd {}\nboot\n",
                e.append.as_deref().unwrap_or("iso raw"),
                placed.http[0]
            )),
            MenuKind::Chain => out.push_str(&format!("chain {}\n", placed.http[0])),
        }
    }
    out
}

/// One client that boots an OS kernel from GRUB (an arm64 UEFI machine with `boot = "os"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrubClient {
    /// `52:54:00:12:34:56`, as GRUB's `net_default_mac` holds it.
    pub mac: String,
    pub name: String,
    /// TFTP names.
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: String,
}

/// `grub.cfg` for GRUB's network image: each known OS-booting machine, matched by MAC, boots
/// its kernel at once; any other machine gets the menu entries GRUB can run (kernels and EFI
/// chains).
pub fn grub(title: &str, clients: &[GrubClient], entries: &[Placed], timeout_secs: u32, default: usize) -> String {
    // GRUB chains EFI programs only, and has no memdisk.
    let runs = |p: &Placed| match p.entry.kind {
        _ if p.entry.firmware == Some(EntryFirmware::Bios) => false,
        MenuKind::Kernel | MenuKind::Local => true,
        MenuKind::Chain => program(p) == Program::Efi,
        MenuKind::Iso => false,
    };
    let mut out = String::from("# Written by bramble build from the recipe; edits are lost at the next build.\n");
    out.push_str(&format!("# {}\nset default=0\n", clean(title)));
    let mut keyword = "if";
    for c in clients {
        out.push_str(&format!("{keyword} [ \"$net_default_mac\" = \"{}\" ]; then\n", c.mac));
        out.push_str(&format!("  set timeout=0\n  menuentry \"{}\" {{\n", clean(&c.name)));
        out.push_str(&format!("    linux {} {}\n", c.kernel, c.cmdline));
        if let Some(i) = &c.initrd {
            out.push_str(&format!("    initrd {i}\n"));
        }
        out.push_str("  }\n");
        keyword = "elif";
    }
    let indent = if clients.is_empty() { "" } else { "  " };
    if !clients.is_empty() {
        out.push_str("else\n");
    }
    out.push_str(&format!("{indent}set timeout={timeout_secs}\n"));
    if let Some(d) = default_shown(entries, default, runs) {
        // GRUB counts the entries it shows.
        let n = entries[..d].iter().filter(|p| runs(p)).count();
        out.push_str(&format!("{indent}set default={n}\n"));
    }
    for placed in entries.iter().filter(|p| runs(p)) {
        let e = placed.entry;
        let body = match e.kind {
            MenuKind::Kernel => {
                let mut b = format!("{indent}  linux {} {}\n", placed.tftp[0], e.append.as_deref().unwrap_or(""));
                if placed.tftp.len() > 1 {
                    b.push_str(&format!("{indent}  initrd {}\n", placed.tftp[1..].join(" ")));
                }
                b
            }
            MenuKind::Chain => format!("{indent}  chainloader {}\n", placed.tftp[0]),
            MenuKind::Local => format!("{indent}  exit\n"),
            MenuKind::Iso => continue,
        };
        out.push_str(&format!("{indent}menuentry \"{}\" {{\n{body}{indent}}}\n", clean(&e.label)));
    }
    if !clients.is_empty() {
        out.push_str("fi\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{FileRef, MenuEntry};

    fn entries() -> Vec<MenuEntry> {
        vec![
            MenuEntry {
                label: "Local disk".into(),
                kind: MenuKind::Local,
                files: vec![],
                append: None,
                firmware: None,
            },
            MenuEntry {
                label: "Linux \"test\"".into(),
                kind: MenuKind::Kernel,
                files: vec![FileRef::Local("vmlinuz".into()), FileRef::Local("initrd.img".into())],
                append: Some("console=ttyS0".into()),
                firmware: None,
            },
            MenuEntry {
                label: "DOS".into(),
                kind: MenuKind::Iso,
                files: vec![FileRef::Local("fd.iso".into())],
                append: None,
                firmware: None,
            },
            MenuEntry {
                label: "xyz".into(),
                kind: MenuKind::Chain,
                files: vec![FileRef::Local("n.efi".into())],
                append: None,
                firmware: None,
            },
            MenuEntry {
                label: "xyz BIOS".into(),
                kind: MenuKind::Chain,
                files: vec![FileRef::Local("n.kpxe".into())],
                append: None,
                firmware: None,
            },
            MenuEntry {
                label: "script".into(),
                kind: MenuKind::Chain,
                files: vec![FileRef::Local("menu.ipxe".into())],
                append: None,
                firmware: None,
            },
            MenuEntry {
                label: "memtest".into(),
                kind: MenuKind::Kernel,
                files: vec![FileRef::Local("memtest.bin".into())],
                append: None,
                firmware: Some(EntryFirmware::Bios),
            },
        ]
    }

    fn placed(list: &[MenuEntry]) -> Vec<Placed<'_>> {
        list.iter()
            .enumerate()
            .map(|(i, e)| Placed {
                entry: e,
                tftp: e.files.iter().map(|f| format!("/menu/{}/{}", i + 1, f.file_name())).collect(),
                http: e.files.iter().map(|f| format!("/pc/menu/{}/{}", i + 1, f.file_name())).collect(),
            })
            .collect()
    }

    #[test]
    fn bios_menu_has_every_entry() {
        let list = entries();
        let text = syslinux("lab", &placed(&list), 5, 0, Firmware::Bios);
        assert!(text.contains("TIMEOUT 50\n"));
        assert!(text.contains("DEFAULT e1\n"));
        assert!(text.contains("LABEL e1\n  MENU LABEL Local disk\n  LOCALBOOT 0\n"));
        assert!(text.contains("  LINUX ::/menu/2/vmlinuz\n  INITRD ::/menu/2/initrd.img\n  APPEND console=ttyS0\n"));
        assert!(text.contains("MENU LABEL Linux  test \n"), "{text}");
        assert!(text.contains("  KERNEL memdisk\n  INITRD ::/menu/3/fd.iso\n  APPEND iso raw\n"));
        assert!(text.contains("LABEL e5\n  MENU LABEL xyz BIOS\n  COM32 pxechn.c32\n  APPEND ::/menu/5/n.kpxe\n"));
        // pxechn runs PXE programs: neither an EFI one nor an iPXE script.
        assert!(!text.contains("n.efi") && !text.contains("menu.ipxe"), "{text}");
        assert!(text.starts_with("# Written by bramble build from the recipe's [[menu]]; edits are lost at the next build.\nSERIAL 0 115200\n"));
    }

    #[test]
    fn the_default_entry_boots_where_the_firmware_can_run_it() {
        let list = entries();
        let p = placed(&list);
        assert!(syslinux("lab", &p, 5, 2, Firmware::Bios).contains("DEFAULT e3\n"));
        // The ISO is not on the UEFI menu: its first entry instead.
        assert!(syslinux("lab", &p, 5, 2, Firmware::Efi64).contains("DEFAULT e2\n"));
        assert!(syslinux("lab", &p, 5, 3, Firmware::Efi64).contains("DEFAULT e4\n"));
        let script = ipxe("lab", &p, 5, 2, false);
        assert!(script.contains("set default e3\niseq ${platform} pcbios || set default e1\nchoose --default ${default} --timeout 5000 target"), "{script}");
        let efi_only = ipxe("lab", &p, 5, 3, false);
        assert!(efi_only.contains("set default e4\niseq ${platform} efi || set default e1\n"), "{efi_only}");
        assert!(ipxe("lab", &p, 5, 5, false).contains("set default e6\nchoose"));
        // GRUB counts the entries it shows: Local disk, Linux, xyz (the EFI chain).
        let g = grub("lab", &[], &p, 5, 3);
        assert!(g.contains("set timeout=5\nset default=2\n"), "{g}");
        assert!(!g.contains("n.kpxe") && !g.contains("menu.ipxe") && !g.contains("memtest"), "{g}");
        // firmware = "bios": on the BIOS menus only.
        assert!(syslinux("lab", &p, 5, 0, Firmware::Bios).contains("LINUX ::/menu/7/memtest.bin\n"));
        assert!(!syslinux("lab", &p, 5, 0, Firmware::Efi64).contains("memtest"));
        assert!(ipxe("lab", &p, 5, 0, false).contains("iseq ${platform} pcbios && item e7 memtest ||\n"));
    }

    #[test]
    fn bios_ipxe_hands_over_to_pxelinux() {
        let list = entries();
        let script = ipxe("lab", &placed(&list), 5, 0, true);
        let menu_at = script.find("\nmenu lab\n").unwrap();
        assert!(script[..menu_at].contains("\niseq ${platform} pcbios && goto pxelinux ||"));
        assert!(script.contains("\n:pxelinux\nset 210:string bios/\nchain /pc/bios/pxelinux.0 ||\nexit\n"));
        assert!(!ipxe("lab", &placed(&list), 5, 0, false).contains("pxelinux"));
    }

    #[test]
    fn efi_menu_leaves_out_what_uefi_cannot_run() {
        let list = entries();
        let text = syslinux("lab", &placed(&list), 0, 0, Firmware::Efi64);
        assert!(text.contains("TIMEOUT 1\n"));
        assert!(!text.contains("LOCALBOOT") && !text.contains("memdisk"));
        assert!(text.contains("DEFAULT e2\n"));
    }

    #[test]
    fn ipxe_script_is_relative_to_its_server() {
        let list = entries();
        let text = ipxe("lab", &placed(&list), 3, 0, false);
        assert!(text.starts_with("#!ipxe\n"));
        assert!(
            text.contains(
                "set default e1\nchoose --default ${default} --timeout 3000 target && goto ${target} || exit\n"
            )
        );
        assert!(text.contains("iseq ${platform} efi && item e4 xyz ||\n"));
        assert!(text.contains("iseq ${platform} pcbios && item e5 xyz BIOS ||\n"));
        assert!(text.contains("item e6 script\n"));
        assert!(text.contains(
            "kernel /pc/menu/2/vmlinuz initrd=initrd.img console=ttyS0\ninitrd /pc/menu/2/initrd.img\nboot\n"
        ));
        assert!(text.contains("iseq ${platform} pcbios && item e3 DOS ||\n"));
        assert!(text.contains(":e4\nchain /pc/menu/4/n.efi\n"));
    }

    #[test]
    fn grub_boots_known_machines_at_once() {
        let list = entries();
        let clients = [GrubClient {
            mac: "52:54:00:12:34:56".into(),
            name: "vm1".into(),
            kernel: "/os/x/boot/vmlinuz".into(),
            initrd: Some("/os/x/boot/initrd.img".into()),
            cmdline: "root=/dev/nfs ro".into(),
        }];
        let text = grub("lab", &clients, &placed(&list), 5, 0);
        assert!(text.contains("if [ \"$net_default_mac\" = \"52:54:00:12:34:56\" ]; then\n  set timeout=0\n"));
        assert!(text.contains("    linux /os/x/boot/vmlinuz root=/dev/nfs ro\n    initrd /os/x/boot/initrd.img\n  }\nelse\n  set timeout=5\n"));
        assert!(!text.contains("memdisk"));
        assert!(text.contains("    chainloader /menu/4/n.efi\n"));
        assert!(text.ends_with("fi\n"));
        let plain = grub("lab", &[], &placed(&list), 5, 0);
        assert!(plain.contains("set timeout=5\nset default=0\nmenuentry \"Local disk\" {\n  exit\n}\n"), "{plain}");
    }
}
