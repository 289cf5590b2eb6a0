//! The `pc/` folder of the lab: the boot loaders PXE machines get (from Debian's packages), the
//! menus in each loader's language, and the menu's files. Decides names and contents; the
//! files' bytes come from a resolver the caller passes in.
//!
//! TFTP serves `pc/` at its root (`bios/pxelinux.0`, `/menu/2/vmlinuz`); HTTP serves it as
//! `/pc/...` (the iPXE script names `/pc/menu/2/vmlinuz`).

use super::menu::{self, Firmware, GrubClient, Placed};
use crate::recipe::{BiosLoader, FileRef, MenuKind, Pc, UefiLoader};
use crate::source::pc_loaders::{IPXE_EFI64, loaders};
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The boot file names the daemon hands out, as TFTP names inside `pc/` and HTTP paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFiles {
    pub bios: String,
    pub uefi_x64: String,
    pub uefi_arm64: String,
    /// For UEFI HTTP boot (relative to the HTTP root).
    pub http_x64: String,
    pub http_arm64: String,
    /// The iPXE script, on the HTTP server.
    pub ipxe: String,
}

pub fn boot_files(pc: &Pc) -> BootFiles {
    let bios = match pc.bios {
        BiosLoader::Pxelinux => "bios/pxelinux.0",
        BiosLoader::Ipxe => "bios/undionly.kpxe",
    };
    let efi = match pc.uefi {
        UefiLoader::Ipxe => "efi64/ipxe.efi",
        UefiLoader::Syslinux => "efi64/syslinux.efi",
    };
    BootFiles {
        bios: bios.into(),
        uefi_x64: efi.into(),
        uefi_arm64: "arm64/grubnetaa64.efi".into(),
        // HTTP boot firmware needs an EFI program it can start by itself: iPXE, whatever the
        // TFTP loader is.
        http_x64: "/pc/efi64/ipxe.efi".into(),
        http_arm64: "/pc/arm64/grubnetaa64.efi".into(),
        ipxe: "/pc/boot.ipxe".into(),
    }
}

/// Where one menu entry's files go: `menu/<n>/<name>` inside `pc/`.
fn menu_dir(index: usize) -> PathBuf {
    PathBuf::from("menu").join((index + 1).to_string())
}

/// A machine that boots the lab's OS kernel through GRUB.
pub struct OsBoot {
    pub grub: Vec<GrubClient>,
}

/// The `pc/` tree. `resolve` gives the bytes of a loader or menu file.
pub fn tree(
    pc: &Pc,
    title: &str,
    os_boot: &OsBoot,
    mtime: Timestamp,
    resolve: &mut dyn FnMut(&FileRef) -> Result<Content>,
) -> Result<Tree> {
    let mut t = Tree::new();
    let dir = |t: &mut Tree, p: &Path| {
        let mut acc = PathBuf::new();
        for c in p.components() {
            acc.push(c);
            if t.get(&acc).is_none() {
                t.insert(acc.clone(), node(Kind::Dir, 0o755, mtime));
            }
        }
    };
    t.insert("", node(Kind::Dir, 0o755, mtime));
    let file = |t: &mut Tree, path: &Path, content: Content| {
        if let Some(parent) = path.parent() {
            dir(t, parent);
        }
        t.insert(path.to_path_buf(), node(Kind::File(content), 0o644, mtime));
    };
    for l in loaders(pc).chain(IPXE_EFI64) {
        let f = FileRef::Deb { package: l.package.into(), path: l.path.into() };
        let content = resolve(&f).with_context(|| format!("boot loader {} from package {}", l.path, l.package))?;
        file(&mut t, Path::new(l.to), content);
    }
    let mut placed: Vec<Placed> = Vec::new();
    for (i, e) in pc.menu.iter().enumerate() {
        let mut p = Placed { entry: e, tftp: Vec::new(), http: Vec::new() };
        for f in &e.files {
            let name = f.file_name();
            let rel = menu_dir(i).join(&name);
            let content = resolve(f).with_context(|| format!("menu entry `{}`: file {name}", e.label))?;
            file(&mut t, &rel, content);
            p.tftp.push(format!("/{}", rel.display()));
            p.http.push(format!("/pc/{}", rel.display()));
        }
        placed.push(p);
    }
    let text = |s: String| Content::bytes(s.into_bytes());
    if pc.bios == BiosLoader::Pxelinux {
        file(
            &mut t,
            Path::new("bios/pxelinux.cfg/default"),
            text(menu::syslinux(title, &placed, pc.timeout, pc.default, Firmware::Bios)),
        );
    }
    if pc.uefi == UefiLoader::Syslinux {
        file(
            &mut t,
            Path::new("efi64/pxelinux.cfg/default"),
            text(menu::syslinux(title, &placed, pc.timeout, pc.default, Firmware::Efi64)),
        );
    }
    file(
        &mut t,
        Path::new("boot.ipxe"),
        text(menu::ipxe(title, &placed, pc.timeout, pc.default, pc.bios == BiosLoader::Pxelinux)),
    );
    // grubnetaa64.efi has the prefix /grub; over TFTP it reads $prefix/grub.cfg.
    file(&mut t, Path::new("grub/grub.cfg"), text(menu::grub(title, &os_boot.grub, &placed, pc.timeout, pc.default)));
    // Menu entries of kind Iso need memdisk beside the BIOS loader: both loader sets ship it.
    debug_assert!(!pc.menu.iter().any(|e| e.kind == MenuKind::Iso) || t.get(Path::new("bios/memdisk")).is_some());
    Ok(t)
}

fn node(kind: Kind, mode: u32, mtime: Timestamp) -> Node {
    let mut n = Node::new(kind, mode);
    n.mtime = mtime;
    n
}
