//! A Raspberry-Pi-OS-shaped disk image made with the real tools, for tests: a root tree built as
//! a tar by Python's tarfile (so owners, a setuid file, a symlink, a hard link, device nodes, a
//! fifo and a file capability need no root), turned into ext4 by `mke2fs -d`; a FAT32 boot
//! partition made with mformat and filled with mcopy; an MBR (or GPT) from sfdisk with the boot
//! partition at 8 MiB, like Raspberry Pi OS since 2025; then `xz -T0`.
#![allow(dead_code)]

use super::{path_str, tool_ok};
use std::path::{Path, PathBuf};

/// Writes the root tree's tar; its entries are the reference every reader is compared with.
const ROOT_TAR_SCRIPT: &str = r##"
import io, sys, tarfile
out = sys.argv[1]
T = 1_700_000_000
def entry(tar, name, kind, mode, uid=0, gid=0, data=b"", link="", dev=(0, 0), xattrs=None, mtime=T, nanos=None):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.mtime = kind, mode, uid, gid, mtime
    i.uname = i.gname = ""
    i.linkname = link
    i.devmajor, i.devminor = dev
    i.pax_headers = {}
    if xattrs:
        for k, v in xattrs.items():
            i.pax_headers["SCHILY.xattr." + k] = v.decode("latin-1")
    if nanos is not None:
        i.pax_headers["mtime"] = "%d.%09d" % (mtime, nanos)
    if kind == tarfile.REGTYPE:
        i.size = len(data)
        tar.addfile(i, io.BytesIO(data))
    else:
        tar.addfile(i)
D, F, L, H = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
# cap_net_raw+ep: VFS_CAP_REVISION_2 with the effective flag, permitted bit 13.
CAP = bytes([1, 0, 0, 2, 0, 0x20, 0, 0] + [0] * 12)
big = bytes((i * 2654435761 >> 13) & 0xFF for i in range(5 * 1024 * 1024 + 17))
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
    entry(tar, ".", D, 0o755)
    entry(tar, "bin", D, 0o755)
    entry(tar, "bin/busybox", F, 0o755, data=b"#!/bin/sh\necho busybox\n")
    entry(tar, "bin/ping", F, 0o755, data=b"ping binary", xattrs={"security.capability": CAP})
    entry(tar, "dev", D, 0o755)
    entry(tar, "dev/null", tarfile.CHRTYPE, 0o666, dev=(1, 3))
    entry(tar, "dev/console", tarfile.CHRTYPE, 0o600, dev=(5, 1))
    entry(tar, "dev/sda", tarfile.BLKTYPE, 0o660, gid=6, dev=(8, 0))
    entry(tar, "dev/wide", tarfile.CHRTYPE, 0o600, dev=(1, 300000))
    entry(tar, "etc", D, 0o755)
    entry(tar, "etc/alternatives", D, 0o755)
    entry(tar, "etc/alternatives/awk", L, 0o777, link="/usr/bin/mawk")
    entry(tar, "etc/motd", F, 0o644, data=b"welcome to the bramble\n", xattrs={"user.comment": b"hello"})
    entry(tar, "etc/passwd", F, 0o644, data=b"root:x:0:0:root:/root:/bin/sh\npi:x:1000:1000::/home/pi:/bin/bash\n", nanos=123456789)
    entry(tar, "etc/shadow", F, 0o640, gid=42, data=b"root:*:19000:0:99999:7:::\n")
    entry(tar, "home", D, 0o755)
    entry(tar, "home/pi", D, 0o750, uid=1000, gid=1000)
    entry(tar, "home/pi/.bashrc", F, 0o644, uid=1000, gid=1000, data=b"export PS1='$ '\n", mtime=T + 86400)
    entry(tar, "run", D, 0o755)
    entry(tar, "run/initctl", tarfile.FIFOTYPE, 0o600)
    entry(tar, "tmp", D, 0o1777)
    entry(tar, "usr", D, 0o755)
    entry(tar, "usr/bin", D, 0o755)
    entry(tar, "usr/bin/awk", L, 0o777, link="/etc/alternatives/awk")
    entry(tar, "usr/bin/mawk", F, 0o755, data=b"mawk")
    entry(tar, "usr/bin/perl", F, 0o755, data=b"perl interpreter\n" * 100)
    entry(tar, "usr/bin/perl5.36", H, 0o755, link="usr/bin/perl")
    entry(tar, "usr/bin/sudo", F, 0o4755, data=b"sudo")
    entry(tar, "usr/bin/wall", F, 0o2755, gid=5, data=b"wall")
    entry(tar, "usr/lib", D, 0o755)
    entry(tar, "usr/lib/long-target-link", L, 0o777,
          link="/usr/lib/aarch64-linux-gnu/some/really/quite/long/path/to/a/shared/library/libexample.so.1.2.3")
    entry(tar, "usr/lib/firmware.bin", F, 0o644, data=big)
    entry(tar, "var", D, 0o755)
    entry(tar, "var/lib", D, 0o755)
    entry(tar, "var/lib/nobody", D, 0o700, uid=100000, gid=100000)
    entry(tar, "var/lib/nobody/state", F, 0o600, uid=100000, gid=100000, data=b"x")
    entry(tar, "var/empty", F, 0o644, data=b"")
"##;

pub const ROOT_UUID: &str = "8f1d0d7a-2c37-4a3e-9a65-3c1c3ebd0a11";
pub const DISK_ID: &str = "0x1b2c3d4e";

/// The image and what it was made from.
pub struct PiImage {
    pub dir: tempfile::TempDir,
    pub img: PathBuf,
    pub xz: PathBuf,
    /// The tar the root filesystem was made from.
    pub root_tar: PathBuf,
    /// The boot partition's files.
    pub boot: PathBuf,
    /// The two filesystems on their own, before they went into the image.
    pub bootfs: PathBuf,
    pub rootfs: PathBuf,
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Build the image; `gpt` switches the partition table.
pub fn build_pi_image(gpt: bool) -> PiImage {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root_tar = d.join("root.tar");
    tool_ok("python3", &["-c", ROOT_TAR_SCRIPT, path_str(&root_tar)]);

    let boot = d.join("boot");
    write(&boot, "config.txt", b"arm_64bit=1\nauto_initramfs=1\n[pi4]\narm_boost=1\n");
    write(&boot, "cmdline.txt", b"console=serial0,115200 root=PARTUUID=1b2c3d4e-02 rootfstype=ext4 rootwait\n");
    write(&boot, "start4.elf", &(0..300_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>());
    write(&boot, "overlays/vc4-kms-v3d.dtbo", b"\xd0\x0d\xfe\xed overlay");
    write(&boot, "overlays/README", b"overlays go here\n");

    let names = ["config.txt", "cmdline.txt", "start4.elf", "overlays"];
    let (img, bootfs, rootfs) = assemble(d, &root_tar, &boot, &names, gpt, true);
    let xz = d.join("pi.img.xz");
    PiImage { dir, img, xz, root_tar, boot, bootfs, rootfs }
}

/// The disk image from a root tar and a boot folder: ext4 by `mke2fs -d`, FAT32 by mformat and
/// mcopy (the `boot_names` entries of `boot`), an MBR (or GPT) by sfdisk with the boot partition
/// at 8 MiB, then `xz -T0` beside it. `fixups` adds what mke2fs's tar import drops (for
/// [`build_pi_image`]'s root). Returns the image and the two filesystems.
pub fn assemble(
    d: &Path,
    root_tar: &Path,
    boot: &Path,
    boot_names: &[&str],
    gpt: bool,
    fixups: bool,
) -> (PathBuf, PathBuf, PathBuf) {
    // Sizes in 512-byte sectors: boot at 8 MiB, 64 MiB each.
    let (boot_start, boot_size, root_size) = (16384u64, 131072u64, 131072u64);
    let root_start = boot_start + boot_size;
    let bootfs = d.join("bootfs.img");
    std::fs::File::create(&bootfs).unwrap().set_len(boot_size * 512).unwrap();
    tool_ok("mformat", &["-i", path_str(&bootfs), "-F", "-v", "bootfs", "::"]);
    let sources: Vec<String> = boot_names.iter().map(|n| path_str(&boot.join(n)).to_string()).collect();
    let mut args = vec!["-s", "-i", path_str(&bootfs)];
    args.extend(sources.iter().map(String::as_str));
    args.push("::");
    tool_ok("mcopy", &args);

    let rootfs = d.join("rootfs.img");
    tool_ok(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "rootfs",
            "-U",
            ROOT_UUID,
            "-E",
            &format!("hash_seed={ROOT_UUID},root_owner=0:0"),
            "-d",
            path_str(root_tar),
            path_str(&rootfs),
            &format!("{}k", root_size / 2),
        ],
    );

    // mke2fs's tar import drops user.* xattrs and sub-second times; debugfs puts them in, so
    // the image holds everything the tar says.
    if fixups {
        let script = d.join("fixups.debugfs");
        std::fs::write(&script, "ea_set /etc/motd user.comment hello\nsif /etc/passwd mtime_extra 0x1D6F3454\n")
            .unwrap();
        tool_ok("debugfs", &["-w", "-f", path_str(&script), path_str(&rootfs)]);
    }
    tool_ok("e2fsck", &["-fn", path_str(&rootfs)]);

    let img = d.join("pi.img");
    std::fs::File::create(&img).unwrap().set_len((root_start + root_size + 2048) * 512).unwrap();
    let script = if gpt {
        format!(
            "label: gpt\nstart={boot_start}, size={boot_size}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=\"bootfs\"\n\
             start={root_start}, size={root_size}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"rootfs\"\n"
        )
    } else {
        format!(
            "label: dos\nlabel-id: {DISK_ID}\nstart={boot_start}, size={boot_size}, type=c\nstart={root_start}, size={root_size}, type=83\n"
        )
    };
    let sfdisk = std::process::Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "-q", path_str(&img)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sfdisk (run `just setup`)");
    {
        use std::io::Write;
        let mut child = sfdisk;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "sfdisk failed");
    }
    for (part, start) in [(&bootfs, boot_start), (&rootfs, root_start)] {
        tool_ok(
            "dd",
            &[
                &format!("if={}", path_str(part)),
                &format!("of={}", path_str(&img)),
                "bs=512",
                &format!("seek={start}"),
                "conv=notrunc,sparse",
                "status=none",
            ],
        );
    }
    tool_ok("xz", &["-T0", "-k", "-f", path_str(&img)]);
    (img, bootfs, rootfs)
}
