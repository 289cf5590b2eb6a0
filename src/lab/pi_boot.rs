//! The shared boot folder of an OS (`os/<id>/boot/`): for Raspberry Pi OS, its boot partition;
//! for Debian, one assembled from the root the way Debian's raspi-firmware package lays out an
//! SD card (its firmware, the kernel's Broadcom device trees, the kernel and initramfs, and a
//! config.txt that boots them). Then the check that every Pi model of the lab finds what its
//! boot stage loads (research/pi-netboot.md §1.1, §6.3).

use super::tree_edit::read_text;
use crate::recipe::Model;
use crate::source::firmware::FirmwareFile;
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Result, bail};
use std::path::Path;

/// A file's content in `root`, with hard links and symlinks followed.
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

/// The boot folder of a Debian root: what raspi-firmware's kernel hook put in /boot/firmware
/// (firmware, the kernel's Broadcom device trees, the kernel, its initramfs, a config.txt and
/// cmdline.txt that boot them), exactly as it would be on an SD card.
pub fn debian_boot_tree(root: &Tree) -> Result<Tree> {
    let firmware = Path::new("boot/firmware");
    if root.get(&firmware.join("config.txt")).is_none() {
        bail!(
            "the Debian root has no /boot/firmware/config.txt: raspi-firmware (non-free-firmware) and \
             linux-image-arm64 must be installed for its kernel hook to lay out the boot files"
        );
    }
    let mut boot = Tree::new();
    for (p, n) in root.iter().filter(|(p, _)| p.starts_with(firmware)) {
        let rel = p.strip_prefix(firmware).expect("under /boot/firmware").to_path_buf();
        let mut node = n.clone();
        if let Kind::HardLink(_) | Kind::Symlink(_) = n.kind {
            match content_of(root, p) {
                Some(c) => node.kind = Kind::File(c),
                None => continue,
            }
        }
        boot.insert(rel, node);
    }
    Ok(boot)
}

/// `[firmware]`'s GPU firmware laid over the boot folder: each file replaces the OS's file of
/// its name, or joins the folder if the OS has none (a newer firmware may add a variant);
/// kernels, device trees, overlays and the config files stay the OS's. Returns the names
/// replaced and the names added.
pub fn lay_firmware(boot: &mut Tree, files: &[FirmwareFile]) -> (Vec<String>, Vec<String>) {
    let (mut replaced, mut added) = (Vec::new(), Vec::new());
    for f in files {
        let path = Path::new(&f.name);
        let mut node = match boot.get(path) {
            Some(old) => {
                replaced.push(f.name.clone());
                old.clone()
            }
            None => {
                added.push(f.name.clone());
                Node::new(Kind::File(Content::bytes(Vec::new())), 0o644)
            }
        };
        node.kind = Kind::File(Content::bytes(f.bytes.clone()));
        node.mtime = Timestamp::from_secs(f.mtime);
        boot.insert(path, node);
    }
    (replaced, added)
}

/// `kernel=` of a config.txt (the first one; sections aside), if set.
pub fn configured_kernel(config: &str) -> Option<String> {
    config.lines().map(str::trim).find_map(|l| l.strip_prefix("kernel=")).map(|k| k.trim().to_string())
}

/// The `initramfs FILE [followkernel]` of a config.txt, if set.
pub fn configured_initramfs(config: &str) -> Option<String> {
    config
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("initramfs "))
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
}

/// What each model's boot stage loads from the boot folder. A `|` separates alternatives.
fn required(model: Model, kernel: Option<&str>) -> Vec<String> {
    let mut files: Vec<String> = match model {
        Model::Pi3 => vec![
            "bootcode.bin".into(),
            "start.elf".into(),
            "fixup.dat".into(),
            "bcm2710-rpi-3-b*.dtb|bcm2837-rpi-3-b*.dtb".into(),
        ],
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

    const DEBIAN_CONFIG: &str =
        "arm_64bit=1\nupstream_kernel=1\nkernel=vmlinuz-6.1.0-50-arm64\ninitramfs initrd.img-6.1.0-50-arm64\n";

    fn file(bytes: &[u8]) -> Node {
        let mut n = Node::new(Kind::File(Content::bytes(bytes.to_vec())), 0o644);
        n.mtime = Timestamp::default();
        n
    }

    fn boot(names: &[&str], config: &str) -> Tree {
        let mut t = Tree::new();
        t.insert("", Node::new(Kind::Dir, 0o755));
        for n in names {
            t.insert(*n, file(&[0]));
        }
        t.insert("config.txt", file(config.as_bytes()));
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
    fn firmware_replaces_its_files_and_adds_new_ones_only() {
        let mut b = boot(&["start4.elf", "fixup4.dat", "kernel8.img"], "x=1\n");
        let fw =
            |name: &str, bytes: &[u8]| FirmwareFile { name: name.into(), bytes: bytes.to_vec(), mtime: 1_700_000_000 };
        let (replaced, added) = lay_firmware(&mut b, &[fw("start4.elf", b"new"), fw("start4x.elf", b"x")]);
        assert_eq!((replaced, added), (vec!["start4.elf".to_string()], vec!["start4x.elf".to_string()]));
        let bytes = |p: &str| match &b.get(Path::new(p)).unwrap().kind {
            Kind::File(c) => c.read_all().unwrap(),
            k => panic!("{k:?}"),
        };
        assert_eq!(bytes("start4.elf"), b"new");
        assert_eq!(bytes("start4x.elf"), b"x");
        assert_eq!(bytes("kernel8.img"), [0]);
        assert_eq!(b.get(Path::new("start4.elf")).unwrap().mtime, Timestamp::from_secs(1_700_000_000));
    }

    #[test]
    fn config_txt_names_the_kernel() {
        let b = boot(&["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz-6.1.0-50-arm64"], DEBIAN_CONFIG);
        check(&b, &[Model::Pi4], "debian").unwrap();
        let pi3 = ["bootcode.bin", "start.elf", "fixup.dat", "bcm2837-rpi-3-b-plus.dtb", "vmlinuz-6.1.0-50-arm64"];
        check(&boot(&pi3, DEBIAN_CONFIG), &[Model::Pi3], "debian").unwrap();
    }

    #[test]
    fn debian_boot_files_come_from_boot_firmware() {
        let mut root = Tree::new();
        root.insert("", Node::new(Kind::Dir, 0o755));
        root.insert("boot", Node::new(Kind::Dir, 0o755));
        assert!(debian_boot_tree(&root).unwrap_err().to_string().contains("raspi-firmware"));
        root.insert("boot/firmware", Node::new(Kind::Dir, 0o755));
        root.insert("boot/firmware/config.txt", file(DEBIAN_CONFIG.as_bytes()));
        root.insert("boot/vmlinuz-6.1.0-50-arm64", file(b"kernel"));
        root.insert(
            "boot/firmware/vmlinuz-6.1.0-50-arm64",
            Node::new(Kind::HardLink("boot/vmlinuz-6.1.0-50-arm64".into()), 0o644),
        );
        let boot = debian_boot_tree(&root).unwrap();
        match &boot.get(Path::new("vmlinuz-6.1.0-50-arm64")).unwrap().kind {
            Kind::File(c) => assert_eq!(c.read_all().unwrap(), b"kernel"),
            k => panic!("{k:?}"),
        }
    }
}
