//! A Raspberry Pi OS (bookworm, arm64)-shaped image for build tests: the files the NFS-root
//! conversion works on (os-release and rpi-issue, accounts, the SD card's fstab, SSH host keys,
//! first-boot and swap units, a file capability) and the boot partition's firmware, device trees
//! and kernels for Pi 3, 4 and 5, with Pi OS's own cmdline.txt. Made with the real tools
//! (Python's tarfile, mke2fs -d, mformat/mcopy, sfdisk, xz) by [`super::image::assemble`].

use super::http::HttpServer;
use super::image::assemble;
use super::{eeprom_fixtures, path_str, tool_ok};
use bramble::source::eeprom_release::{RELEASES, RPI_EEPROM};
use std::path::{Path, PathBuf};

const ROOT_SCRIPT: &str = r##"
import io, sys, tarfile
T = 1_732_406_400
def e(tar, name, kind, mode, uid=0, gid=0, data=b"", link="", xattrs=None):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.mtime, i.linkname = kind, mode, uid, gid, T, link
    i.uname = i.gname = ""
    if xattrs:
        i.pax_headers = {"SCHILY.xattr." + k: v.decode("latin-1") for k, v in xattrs.items()}
    if kind == tarfile.REGTYPE:
        i.size = len(data)
        tar.addfile(i, io.BytesIO(data))
    else:
        tar.addfile(i)
D, F, L = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE
CAP = bytes([1, 0, 0, 2, 0, 0x20, 0, 0] + [0] * 12)
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
    for d in [".", "bin", "boot", "boot/firmware", "dev", "etc", "etc/init.d", "etc/ssh", "etc/skel",
              "etc/systemd", "etc/systemd/system", "etc/systemd/system/multi-user.target.wants",
              "etc/cloud", "home", "proc", "run", "sys", "tmp", "usr", "usr/bin", "usr/lib",
              "usr/lib/systemd", "usr/lib/systemd/system", "var", "var/lib", "var/lib/dbus", "var/log",
              "var/cache", "var/spool", "var/tmp"]:
        e(tar, d, D, 0o1777 if d in ("tmp", "var/tmp") else 0o755)
    e(tar, "lib", L, 0o777, link="usr/lib")
    e(tar, "usr/lib/os-release", F, 0o644, data=b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n')
    e(tar, "etc/os-release", L, 0o777, link="../usr/lib/os-release")
    e(tar, "etc/rpi-issue", F, 0o644, data=b"Raspberry Pi reference 2025-11-24\n")
    e(tar, "etc/passwd", F, 0o644, data=b"root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:107::/nonexistent:/usr/sbin/nologin\n")
    e(tar, "etc/group", F, 0o644, data=b"root:x:0:\nadm:x:4:\nshadow:x:42:\nsudo:x:27:\nvideo:x:44:\ngpio:x:997:\nmessagebus:x:107:\n")
    e(tar, "etc/shadow", F, 0o640, gid=42, data=b"root:*:20000:0:99999:7:::\nmessagebus:!:20000::::::\n")
    e(tar, "etc/gshadow", F, 0o640, gid=42, data=b"root:*::\nsudo:*::\n")
    e(tar, "etc/fstab", F, 0o644, data=b"proc /proc proc defaults 0 0\nPARTUUID=1b2c3d4e-01 /boot/firmware vfat defaults 0 2\nPARTUUID=1b2c3d4e-02 / ext4 defaults,noatime 0 1\n")
    e(tar, "etc/hostname", F, 0o644, data=b"raspberrypi\n")
    e(tar, "etc/hosts", F, 0o644, data=b"127.0.0.1 localhost\n127.0.1.1 raspberrypi\n")
    e(tar, "etc/resolv.conf", F, 0o644, data=b"nameserver 192.168.1.1\n")
    e(tar, "etc/machine-id", F, 0o444, data=b"4d2a1e0c9b8f4a7e8d6c5b4a3f2e1d0c\n")
    e(tar, "var/lib/dbus/machine-id", L, 0o777, link="/etc/machine-id")
    e(tar, "etc/ssh/sshd_config", F, 0o644, data=b"Include /etc/ssh/sshd_config.d/*.conf\n")
    e(tar, "etc/ssh/ssh_host_ed25519_key", F, 0o600, data=b"-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    e(tar, "etc/ssh/ssh_host_ed25519_key.pub", F, 0o644, data=b"ssh-ed25519 AAAA raspberrypi\n")
    e(tar, "etc/skel/.bashrc", F, 0o644, data=b"# ~/.bashrc\n")
    e(tar, "etc/skel/.profile", F, 0o644, data=b"# ~/.profile\n")
    e(tar, "etc/init.d/resize2fs_once", F, 0o755, data=b"#!/bin/sh\nresize2fs /dev/root\n")
    e(tar, "usr/lib/systemd/system/ssh.service", F, 0o644, data=b"[Unit]\nDescription=OpenBSD Secure Shell server\n")
    e(tar, "usr/lib/systemd/system/dphys-swapfile.service", F, 0o644, data=b"[Unit]\nDescription=swap file\n")
    e(tar, "etc/systemd/system/multi-user.target.wants/dphys-swapfile.service", L, 0o777,
      link="/lib/systemd/system/dphys-swapfile.service")
    e(tar, "bin/bash", F, 0o755, data=b"bash")
    e(tar, "usr/bin/ping", F, 0o755, data=b"ping", xattrs={"security.capability": CAP})
    e(tar, "usr/bin/sudo", F, 0o4755, data=b"sudo")
"##;

/// Raspberry Pi OS's own command line (bookworm, before its first boot).
pub const CMDLINE: &str = "console=serial0,115200 console=tty1 root=PARTUUID=1b2c3d4e-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n";

/// The image (`.img.xz`) and its folder.
pub struct RaspiosImage {
    pub dir: tempfile::TempDir,
    pub xz: PathBuf,
}

fn write(dir: &std::path::Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

pub fn build() -> RaspiosImage {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root_tar = d.join("root.tar");
    tool_ok("python3", &["-c", ROOT_SCRIPT, path_str(&root_tar)]);
    let boot = d.join("boot");
    write(
        &boot,
        "config.txt",
        b"# Pi OS\ndtparam=audio=on\ncamera_auto_detect=1\nauto_initramfs=1\narm_64bit=1\n[all]\n",
    );
    write(&boot, "cmdline.txt", CMDLINE.as_bytes());
    let blob = |n: u32| (0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>();
    let mut names = vec!["config.txt", "cmdline.txt", "overlays"];
    for (name, size) in [
        ("bootcode.bin", 52_000),
        ("start.elf", 200_000),
        ("fixup.dat", 7_000),
        ("start4.elf", 220_000),
        ("fixup4.dat", 5_000),
        ("bcm2710-rpi-3-b.dtb", 30_000),
        ("bcm2711-rpi-4-b.dtb", 50_000),
        ("bcm2712-rpi-5-b.dtb", 60_000),
        ("kernel8.img", 400_000),
        ("kernel_2712.img", 420_000),
    ] {
        write(&boot, name, &blob(size));
        names.push(name);
    }
    write(&boot, "overlays/vc4-kms-v3d.dtbo", b"\xd0\x0d\xfe\xed overlay");
    let (img, _, _) = assemble(d, &root_tar, &boot, &names, false, false);
    RaspiosImage { xz: img.with_extension("img.xz"), dir }
}

/// The image and the pinned bootloader releases on a local HTTP server, where `bramble fetch`
/// looks (with `--mirror RPI_EEPROM=<url>/rpi-eeprom`); returns the server and the image's sha256.
pub fn site(image: &Path) -> (HttpServer, String) {
    let server = HttpServer::start();
    let bytes = std::fs::read(image).unwrap();
    let sha = super::sha256_of(&bytes);
    server.put("/pi.img.xz", bytes);
    for r in RELEASES {
        let dir = eeprom_fixtures().join(format!("firmware-{}/default", r.chip.number()));
        for f in [r.image, r.recovery] {
            let file = f.url.rsplit('/').next().unwrap();
            server.put(
                &format!("/rpi-eeprom{}", f.url.strip_prefix(RPI_EEPROM).unwrap()),
                std::fs::read(dir.join(file)).unwrap(),
            );
        }
    }
    (server, sha)
}
