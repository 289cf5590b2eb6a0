//! The Debian architecture an OS root was built for (`arm64`, `armhf`, …): what dpkg's own
//! package says in `/var/lib/dpkg/status` (dpkg is always of the native architecture), else
//! the ELF header of `/usr/bin/dpkg`. Pure: reads the tree's contents, decides nothing.

use super::debian::deb822;
use crate::tree::{Kind, Tree};
use std::path::Path;

/// ELF `e_machine` values (System V ABI supplements for ARM and AArch64).
const EM_ARM: u16 = 40;
const EM_AARCH64: u16 = 183;
const EM_X86_64: u16 = 62;

fn file_bytes(root: &Tree, path: &str) -> Option<Vec<u8>> {
    match &root.get(Path::new(path))?.kind {
        Kind::File(c) => c.read_all().ok(),
        _ => None,
    }
}

/// The root's architecture as dpkg names it, if the root says.
pub fn architecture(root: &Tree) -> Option<String> {
    if let Some(status) = file_bytes(root, "var/lib/dpkg/status")
        && let Ok(paragraphs) = deb822::parse(&status)
        && let Some(arch) =
            paragraphs.iter().find(|p| p.get("Package") == Some("dpkg")).and_then(|p| p.get("Architecture"))
    {
        return Some(arch.trim().to_string());
    }
    let elf = file_bytes(root, "usr/bin/dpkg")?;
    if elf.len() < 20 || &elf[..4] != b"\x7fELF" || elf[5] != 1 {
        return None;
    }
    // Little-endian (EI_DATA = 1), as every Pi userland is.
    match u16::from_le_bytes([elf[18], elf[19]]) {
        EM_AARCH64 => Some("arm64".into()),
        EM_ARM => Some("armhf".into()),
        EM_X86_64 => Some("amd64".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Content, Node};

    fn root_with(path: &str, bytes: &[u8]) -> Tree {
        let mut t = Tree::new();
        t.insert_with_parents(
            path,
            Node::new(Kind::File(Content::bytes(bytes.to_vec())), 0o644),
            &Node::new(Kind::Dir, 0o755),
        );
        t
    }

    #[test]
    fn dpkg_status_names_the_architecture() {
        let status = b"Package: libc6\nStatus: install ok installed\nArchitecture: arm64\nVersion: 2.36\n\n\
                       Package: dpkg\nStatus: install ok installed\nArchitecture: armhf\nVersion: 1.21\n";
        assert_eq!(architecture(&root_with("var/lib/dpkg/status", status)).as_deref(), Some("armhf"));
        assert_eq!(architecture(&Tree::new()), None);
    }

    #[test]
    fn else_the_elf_header_of_dpkg() {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        assert_eq!(architecture(&root_with("usr/bin/dpkg", &elf)).as_deref(), Some("arm64"));
        elf[18..20].copy_from_slice(&EM_ARM.to_le_bytes());
        assert_eq!(architecture(&root_with("usr/bin/dpkg", &elf)).as_deref(), Some("armhf"));
        assert_eq!(architecture(&root_with("usr/bin/dpkg", b"dpkg")), None);
    }
}
