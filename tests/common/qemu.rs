//! QEMU machines that network-boot inside a test's namespace (as ../shared/e2e/ does with
//! dnsmasq): BIOS (SeaBIOS + the iPXE option ROM), UEFI (OVMF with EDK2's own PXE, or HTTP
//! boot), and arm64 UEFI (AAVMF). TCG only (KVM hangs here). The serial console goes to a file;
//! a test waits for its marker there, with a deadline.

use super::netns::Netns;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, with the iPXE ROM of QEMU's virtio NIC doing PXE.
    Bios,
    /// OVMF, its own (EDK2) PXE client: the NIC's option ROM is left out.
    UefiPxe,
    /// OVMF's UEFI HTTP Boot, PXE turned off.
    UefiHttp,
    /// AAVMF (arm64 UEFI) on the virt machine, EDK2's PXE.
    Arm64Uefi,
}

/// A running machine; killed on drop.
pub struct Vm {
    child: Option<Child>,
    pub serial: PathBuf,
    _vars: Option<PathBuf>,
}

/// Serial output as text, with the firmware's escape sequences and CRs taken out.
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).replace('\r', "");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

impl Vm {
    /// Boot a machine with `mac` on the tap `tap` (in `ns`), `memory_mib` of RAM.
    pub fn start(ns: &Netns, tap: &str, firmware: Firmware, mac: &str, memory_mib: u32, work: &Path) -> Vm {
        Vm::start_with(ns, tap, firmware, mac, memory_mib, work, &[])
    }

    /// As [`Vm::start`], with more QEMU arguments (a disk: `-drive file=…`).
    pub fn start_with(
        ns: &Netns,
        tap: &str,
        firmware: Firmware,
        mac: &str,
        memory_mib: u32,
        work: &Path,
        extra: &[String],
    ) -> Vm {
        let serial = work.join(format!("serial-{}.log", mac.replace(':', "")));
        let netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
        let mut args: Vec<String> = Vec::new();
        let mut vars = None;
        let program = match firmware {
            Firmware::Arm64Uefi => "qemu-system-aarch64",
            _ => "qemu-system-x86_64",
        };
        match firmware {
            Firmware::Bios => {
                args.extend(["-machine", "pc", "-boot", "n"].map(String::from));
                args.extend(["-device".into(), format!("virtio-net-pci,netdev=n0,mac={mac}")]);
            }
            Firmware::UefiPxe | Firmware::UefiHttp => {
                let v = work.join(format!("vars-{}.fd", mac.replace(':', "")));
                std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &v).expect("OVMF vars (apt-get install ovmf)");
                args.extend(["-machine", "q35"].map(String::from));
                args.extend([
                    "-drive".into(),
                    "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                ]);
                args.extend(["-drive".into(), format!("if=pflash,format=raw,file={}", v.display())]);
                args.extend(["-device".into(), format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1,romfile=")]);
                if firmware == Firmware::UefiHttp {
                    // Without these OVMF tries PXE on IPv4 and IPv6 first (minutes under TCG).
                    for knob in ["IPv4PXESupport", "IPv6PXESupport"] {
                        args.extend(["-fw_cfg".into(), format!("name=opt/org.tianocore/{knob},string=n")]);
                    }
                }
                vars = Some(v);
            }
            Firmware::Arm64Uefi => {
                let v = work.join(format!("aavmf-vars-{}.fd", mac.replace(':', "")));
                std::fs::copy("/usr/share/AAVMF/AAVMF_VARS.fd", &v).expect("AAVMF (apt-get install qemu-efi-aarch64)");
                args.extend(["-machine", "virt", "-cpu", "cortex-a72"].map(String::from));
                args.extend([
                    "-drive".into(),
                    "if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd".into(),
                ]);
                args.extend(["-drive".into(), format!("if=pflash,format=raw,file={}", v.display())]);
                args.extend(["-device".into(), format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1,romfile=")]);
                vars = Some(v);
            }
        }
        // One core each: two machines at once already fill the host's two.
        let smp = "1";
        let child = ns
            .command(program)
            .args(["-accel", "tcg", "-m", &memory_mib.to_string(), "-smp", smp, "-nographic", "-no-reboot"])
            .args(&args)
            .args(extra)
            .args(["-netdev", &netdev])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(["-monitor", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): apt-get install qemu-system-x86 qemu-system-arm")
            });
        Vm { child: Some(child), serial, _vars: vars }
    }

    /// The serial output so far.
    pub fn output(&self) -> String {
        clean(&std::fs::read(&self.serial).unwrap_or_default())
    }

    /// Wait until every one of `markers` is on the console, the machine stops, or `limit`
    /// passes; true if all were seen.
    pub fn wait_for(&mut self, markers: &[&str], limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            let out = self.output();
            if markers.iter().all(|m| out.contains(m)) {
                return true;
            }
            let exited = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                return markers.iter().all(|m| self.output().contains(m));
            }
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The end of the console, for a failure message.
    pub fn tail(&self, lines: usize) -> String {
        let out = self.output();
        let all: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The server side of a boot network: a bridge `br0` with `10.77.0.1/24` in `ns`, and a tap
/// for each machine.
pub fn bridge(ns: &Netns, taps: &[&str]) {
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "br0"]);
    ns.ip(&["link", "set", "br0", "up"]);
    for tap in taps {
        ns.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        ns.ip(&["link", "set", tap, "master", "br0", "up"]);
    }
}

/// Bound the time of a whole scenario: QEMU machines share the two cores.
pub fn serial_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
