//! The boot loaders PXE machines get, as files of Debian packages (`[debian]`'s archive): which
//! package and path each comes from and where the lab's `pc/` folder puts it, for each choice of
//! `[pc] bios`/`uefi`. Also every outside file a PC menu needs, for `fetch`.

use crate::recipe::{BiosLoader, FileRef, Pc, UefiLoader};

/// A loader file: where it is in its Debian package and where the lab puts it (inside `pc/`).
pub struct Loader {
    pub package: &'static str,
    pub path: &'static str,
    /// Inside the lab's `pc/`.
    pub to: &'static str,
}

const fn loader(package: &'static str, path: &'static str, to: &'static str) -> Loader {
    Loader { package, path, to }
}

const SYSLINUX_BIOS: &[Loader] = &[
    loader("pxelinux", "/usr/lib/PXELINUX/pxelinux.0", "bios/pxelinux.0"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/bios/ldlinux.c32", "bios/ldlinux.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/bios/menu.c32", "bios/menu.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/bios/libutil.c32", "bios/libutil.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/bios/libcom32.c32", "bios/libcom32.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/bios/pxechn.c32", "bios/pxechn.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/memdisk", "bios/memdisk"),
];
const IPXE_BIOS: &[Loader] = &[
    loader("ipxe", "/usr/lib/ipxe/undionly.kpxe", "bios/undionly.kpxe"),
    // iPXE's menu boots ISO images through memdisk too.
    loader("syslinux-common", "/usr/lib/syslinux/memdisk", "bios/memdisk"),
];
pub const IPXE_EFI64: &[Loader] = &[loader("ipxe", "/usr/lib/ipxe/ipxe.efi", "efi64/ipxe.efi")];
const SYSLINUX_EFI64: &[Loader] = &[
    loader("syslinux-efi", "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi", "efi64/syslinux.efi"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/efi64/ldlinux.e64", "efi64/ldlinux.e64"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/efi64/menu.c32", "efi64/menu.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/efi64/libutil.c32", "efi64/libutil.c32"),
    loader("syslinux-common", "/usr/lib/syslinux/modules/efi64/libcom32.c32", "efi64/libcom32.c32"),
];
/// GRUB's monolithic network image; it reads `$prefix/grub.cfg`.
const GRUB_ARM64: &[Loader] =
    &[loader("grub-efi-arm64-bin", "/usr/lib/grub/arm64-efi/monolithic/grubnetaa64.efi", "arm64/grubnetaa64.efi")];

/// The Debian architecture each loader package is taken from.
pub fn package_arch(package: &str) -> &'static str {
    if package == "grub-efi-arm64-bin" { "arm64" } else { "amd64" }
}

pub fn loaders(pc: &Pc) -> impl Iterator<Item = &'static Loader> {
    let bios = match pc.bios {
        BiosLoader::Pxelinux => SYSLINUX_BIOS,
        BiosLoader::Ipxe => IPXE_BIOS,
    };
    let efi = match pc.uefi {
        UefiLoader::Ipxe => IPXE_EFI64,
        UefiLoader::Syslinux => SYSLINUX_EFI64,
    };
    bios.iter().chain(efi).chain(GRUB_ARM64)
}

/// Every file the `pc/` folder needs from outside: loaders from Debian packages (and iPXE's
/// EFI image for HTTP boot), then each menu entry's files.
pub fn needed_files(pc: &Pc) -> Vec<FileRef> {
    let mut out: Vec<FileRef> = Vec::new();
    let mut push = |f: FileRef| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    for l in loaders(pc).chain(IPXE_EFI64) {
        push(FileRef::Deb { package: l.package.into(), path: l.path.into() });
    }
    for e in &pc.menu {
        for f in &e.files {
            push(f.clone());
        }
    }
    out
}
