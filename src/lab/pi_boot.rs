//! The shared boot folder of an OS (`os/<id>/boot/`): for Raspberry Pi OS, its boot partition;
//! for Debian, one assembled from the root the way Debian's raspi-firmware package lays out an
//! SD card (its firmware, the kernel's Broadcom device trees, the kernel and initramfs, and a
//! config.txt that boots them). Then the check that every Pi model of the lab finds what its
//! boot stage loads (research/pi-netboot.md §1.1, §6.3).

use super::tree_edit::read_text;
use crate::recipe::Model;
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The Debian boot folder's config.txt: upstream device tree names, the serial console, the
/// kernel and initramfs copied under fixed names.
pub const DEBIAN_CONFIG_TXT: &str = "# Written by bramble build, as Debian's raspi-firmware writes it for an SD card.\n\
arm_64bit=1\nenable_uart=1\nupstream_kernel=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n";
/// Debian's kernels name the consoles this way on Pi 3/4 (mini UART with enable_uart=1).
pub const DEBIAN_CMDLINE: &str = "console=tty0 console=ttyS1,115200 net.ifnames=0";

/// The newest kernel of a root: its version (`6.1.0-28-arm64`) from `boot/vmlinuz-<version>`.
pub fn kernel_version(root: &Tree) -> Option<String> {
    let mut versions: Vec<String> = root
        .children(Path::new("boot"))
        .filter_map(|(p, _)| p.file_name()?.to_str()?.strip_prefix("vmlinuz-").map(str::to_string))
        .collect();
    versions.sort_by(|a, b| version_cmp(a, b));
    versions.pop()
}

/// Kernel versions compare by their numbers: 6.1.0-10 after 6.1.0-9.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let nums = |s: &str| s.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()).collect::<Vec<_>>();
    nums(a).cmp(&nums(b)).then_with(|| a.cmp(b))
}

fn file(content: Content, mtime: Timestamp) -> Node {
    let mut n = Node::new(Kind::File(content), 0o644);
    n.mtime = mtime;
    n
}

/// A file's content in `root`, with hard links followed.
fn content_of(root: &Tree, path: &Path) -> Option<Content> {
    match &root.get(path)?.kind {
        Kind::File(c) => Some(c.clone()),
        Kind::HardLink(first) => content_of(root, first),
        Kind::Symlink(_) => {
            let real = super::tree_edit::resolve(root, path)?;
            content_of(root, &real)
        }
        _ => None,
    }
}

/// The boot folder of a Debian root.
pub fn debian_boot_tree(root: &Tree, mtime: Timestamp) -> Result<Tree> {
    let Some(version) = kernel_version(root) else {
        bail!("the Debian root has no kernel (/boot/vmlinuz-*): is linux-image-arm64 installed?")
    };
    let mut boot = Tree::new();
    let mut dir = Node::new(Kind::Dir, 0o755);
    dir.mtime = mtime;
    boot.insert("", dir.clone());
    let firmware = Path::new("usr/lib/raspi-firmware");
    if root.get(firmware).is_none() {
        bail!("the Debian root has no /usr/lib/raspi-firmware: is raspi-firmware (non-free-firmware) installed?");
    }
    for (p, _) in root.children(firmware) {
        if let Some(c) = content_of(root, p) {
            boot.insert(p.strip_prefix(firmware).expect("child").to_path_buf(), file(c, mtime));
        }
    }
    let dtbs = PathBuf::from(format!("usr/lib/linux-image-{version}/broadcom"));
    for (p, _) in root.children(&dtbs) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("bcm27") || name.starts_with("bcm28") {
            if let Some(c) = content_of(root, p) {
                boot.insert(name, file(c, mtime));
            }
        }
    }
    for (from, to) in [(format!("boot/vmlinuz-{version}"), "vmlinuz"), (format!("boot/initrd.img-{version}"), "initrd.img")] {
        match content_of(root, Path::new(&from)) {
            Some(c) => boot.insert(to, file(c, mtime)),
            None => bail!("the Debian root has no /{from}; was the initramfs made? (initramfs-tools must be installed)"),
        }
    }
    boot.insert("config.txt", file(Content::bytes(DEBIAN_CONFIG_TXT.as_bytes().to_vec()), mtime));
    boot.insert("cmdline.txt", file(Content::bytes(format!("{DEBIAN_CMDLINE}\n").into_bytes()), mtime));
    Ok(boot)
}

/// `kernel=` of a config.txt (the first one; sections aside), if set.
fn configured_kernel(config: &str) -> Option<String> {
    config.lines().map(str::trim).find_map(|l| l.strip_prefix("kernel=")).map(|k| k.trim().to_string())
}

/// What each model's boot stage loads from the boot folder. A `|` separates alternatives.
fn required(model: Model, kernel: Option<&str>) -> Vec<String> {
    let mut files: Vec<String> = match model {
        Model::Pi3 => vec!["bootcode.bin".into(), "start.elf".into(), "fixup.dat".into(), "bcm2710-rpi-3-b*.dtb|bcm2837-rpi-3-b*.dtb".into()],
        Model::Pi4 => vec!["start4.elf".into(), "fixup4.dat".into(), "bcm2711-rpi-4-b.dtb".into()],
        Model::Pi5 => vec!["bcm2712-rpi-5-b.dtb".into()],
        Model::Pc => Vec::new(),
    };
    let default_kernel = match model {
        Model::Pi5 => "kernel_2712.img",
        _ => "kernel8.img",
    };
    if model != Model::Pc {
        files.push(kernel.unwrap_or(default_kernel).to_string());
    }
    files
}

/// Whether `pattern` (one `*` at most) names a file in the folder.
fn present(boot: &Tree, pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => boot.get(Path::new(pattern)).is_some(),
        Some((head, tail)) => boot.children(Path::new("")).any(|(p, _)| {
            p.to_str().is_some_and(|n| n.starts_with(head) && n.ends_with(tail) && n.len() >= head.len() + tail.len())
        }),
    }
}

/// Every file a model of the lab needs and the boot folder lacks, as one error.
pub fn check(boot: &Tree, models: &[Model], os: &str) -> Result<()> {
    let kernel = read_text(boot, Path::new("config.txt")).ok().and_then(|c| configured_kernel(&c));
    let mut missing = Vec::new();
    for &m in models {
        for f in required(m, kernel.as_deref()) {
            if !f.split('|').any(|alt| present(boot, alt)) {
                missing.push(format!("{} (needed by {m})", f.replace('|', " or ")));
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "the boot files of {os} lack what the lab's Pis load: {}; use an OS release that supports these models, or add [firmware]",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(names: &[&str], config: &str) -> Tree {
        let mut t = Tree::new();
        t.insert("", Node::new(Kind::Dir, 0o755));
        for n in names {
            t.insert(*n, file(Content::bytes(vec![0]), Timestamp::default()));
        }
        t.insert("config.txt", file(Content::bytes(config.as_bytes().to_vec()), Timestamp::default()));
        t
    }

    #[test]
    fn missing_files_are_named_with_their_model() {
        let b = boot(&["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "kernel8.img"], "");
        check(&b, &[Model::Pi4], "os").unwrap();
        let err = check(&b, &[Model::Pi4, Model::Pi5, Model::Pi3], "os").unwrap_err().to_string();
        assert!(err.contains("bcm2712-rpi-5-b.dtb (needed by pi5)"), "{err}");
        assert!(err.contains("kernel_2712.img (needed by pi5)"), "{err}");
        assert!(err.contains("bootcode.bin (needed by pi3)"), "{err}");
        assert!(err.contains("bcm2710-rpi-3-b*.dtb or bcm2837-rpi-3-b*.dtb (needed by pi3)"), "{err}");
    }

    #[test]
    fn config_txt_names_the_kernel() {
        let b = boot(&["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz"], DEBIAN_CONFIG_TXT);
        check(&b, &[Model::Pi4], "debian").unwrap();
        let b = boot(&["bootcode.bin", "start.elf", "fixup.dat", "bcm2837-rpi-3-b-plus.dtb", "vmlinuz"], DEBIAN_CONFIG_TXT);
        check(&b, &[Model::Pi3], "debian").unwrap();
    }

    #[test]
    fn newest_kernel_wins() {
        let mut t = Tree::new();
        t.insert("", Node::new(Kind::Dir, 0o755));
        t.insert("boot", Node::new(Kind::Dir, 0o755));
        for v in ["6.1.0-9-arm64", "6.1.0-10-arm64", "5.10.0-30-arm64"] {
            t.insert(format!("boot/vmlinuz-{v}"), file(Content::bytes(vec![]), Timestamp::default()));
        }
        assert_eq!(kernel_version(&t).as_deref(), Some("6.1.0-10-arm64"));
    }
}
