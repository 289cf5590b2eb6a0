//! The flashable server image: what goes on its boot partition (the OS's boot files, a command
//! line that mounts the image's own root, and for Raspberry Pi OS the first-boot settings its
//! release reads: userconf.txt and ssh on bookworm, cloud-init seeds on trixie) and in its root
//! (`server_root`), with every id derived from the lab's seed. Pure; `disk` writes the bytes.

use super::plan::Plan;
use super::server_root::{self, ServerRoot};
use super::{ids, nfsroot, tree_edit::read_text};
use crate::recipe::Recipe;
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The partition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Every Pi model boots it.
    Mbr,
    /// Pi 4 and Pi 5 only.
    Gpt,
}

impl Table {
    /// Raspberry Pi Imager's tags for the models that boot this table (its 64-bit ones: the
    /// daemon is aarch64). Only the Pi 4/5 EEPROM bootloader reads GPT (Raspberry Pi's
    /// documentation, "Raspberry Pi boot EEPROM"); the Pi 3's ROM and bootcode.bin find the boot
    /// partition in an MBR only.
    pub fn imager_devices(self) -> &'static [&'static str] {
        match self {
            Table::Mbr => &["pi5-64bit", "pi4-64bit", "pi3-64bit"],
            Table::Gpt => &["pi5-64bit", "pi4-64bit"],
        }
    }
}

/// The two partitions' trees and how the image names them.
pub struct ServerParts {
    pub boot: Tree,
    pub root: Tree,
    pub table: Table,
    pub disk_id: u32,
    pub disk_guid: [u8; 16],
    pub boot_guid: [u8; 16],
    pub root_guid: [u8; 16],
    pub fat_volume_id: u32,
    pub root_uuid: [u8; 16],
    pub steps: Vec<String>,
}

/// A GUID as Linux shows it in `PARTUUID=` (the bytes in text order, as `uuid::Uuid` holds them).
fn guid_text(g: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*g).hyphenated().to_string()
}

fn text_file(t: &mut Tree, name: &str, text: String, mtime: Timestamp) {
    let mut n = Node::new(Kind::File(Content::bytes(text.into_bytes())), 0o644);
    n.mtime = mtime;
    t.insert(name, n);
}

/// The Raspberry Pi OS first-boot seeds: the user (no password: it logs in with the lab's SSH
/// keys), SSH on, and for cloud-init releases the host name and the lab address.
fn raspios_first_boot(boot: &mut Tree, recipe: &Recipe, codename: &str, mtime: Timestamp) -> Vec<String> {
    let s = &recipe.server;
    // userconf-pi reads user:encrypted-password; `*` matches no password.
    text_file(boot, "userconf.txt", format!("{}:*\n", s.user), mtime);
    text_file(boot, "ssh", String::new(), mtime);
    let mut done = vec!["userconf.txt and ssh: the first user and SSH, as bookworm reads them".to_string()];
    if codename != "bookworm" {
        let keys: String = s.ssh_keys.iter().map(|k| format!("      - {k}\n")).collect();
        let user_data = format!(
            "#cloud-config\n# Written by `bramble build`.\nhostname: {}\nmanage_etc_hosts: true\nssh_pwauth: false\n\
             users:\n  - name: {}\n    groups: [adm, dialout, sudo, audio, video, plugdev, users, input, netdev]\n\
             \x20   shell: /bin/bash\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    lock_passwd: true\n    ssh_authorized_keys:\n{keys}\
             rpi:\n  enable_ssh: true\n",
            s.hostname, s.user
        );
        text_file(boot, "user-data", user_data, mtime);
        text_file(boot, "meta-data", format!("instance-id: bramble-{}\n", recipe.lab.name), mtime);
        let mut net = format!("network:\n  version: 2\n  ethernets:\n    {}:\n", s.interface);
        match s.address {
            Some(a) => {
                net.push_str(&format!("      dhcp4: false\n      addresses: [{}/{}]\n", a.addr, a.prefix));
                if let Some(g) = s.gateway {
                    net.push_str(&format!("      routes:\n        - to: default\n          via: {g}\n"));
                }
                if !s.dns.is_empty() {
                    let list: Vec<String> = s.dns.iter().map(|d| d.to_string()).collect();
                    net.push_str(&format!("      nameservers:\n        addresses: [{}]\n", list.join(", ")));
                }
            }
            None => net.push_str("      dhcp4: true\n"),
        }
        text_file(boot, "network-config", net, mtime);
        done.push(format!("cloud-init seeds (user-data, meta-data, network-config) for {codename}"));
    }
    done
}

/// Assemble the server image's partitions from the planned lab.
pub fn assemble(
    plan: &Plan,
    recipe: &Recipe,
    daemon: Content,
    overlays: &[PathBuf],
    table: Table,
    mtime: Timestamp,
    debs: Vec<(String, Content)>,
) -> Result<ServerParts> {
    let os = plan.os.as_ref().context("the server image needs the lab's OS")?;
    let seed = &recipe.lab.seed;
    let disk_id = ids::u32_id(seed, "mbr disk id");
    let (disk_guid, boot_guid, root_guid) =
        (ids::uuid(seed, "gpt disk"), ids::uuid(seed, "gpt boot"), ids::uuid(seed, "gpt root"));
    let (boot_part, root_part) = match table {
        Table::Mbr => (format!("{disk_id:08x}-01"), format!("{disk_id:08x}-02")),
        Table::Gpt => (guid_text(&boot_guid), guid_text(&root_guid)),
    };
    let release = nfsroot::os_release(&os.root)?;
    let mut steps = vec![format!("server image: {} on a {:?} disk, PARTUUID {root_part}", release.pretty_name, table)];

    let mut boot = os.boot.clone();
    let os_cmdline = read_text(&os.boot, Path::new("cmdline.txt")).unwrap_or_default();
    let mut cmdline = server_root::server_cmdline(&os_cmdline, &root_part);
    if release.raspios {
        steps.extend(raspios_first_boot(&mut boot, recipe, &release.codename, mtime));
        if release.codename != "bookworm" && !cmdline.contains("ds=nocloud") {
            cmdline.push_str(&format!(" ds=nocloud;i=bramble-{}", recipe.lab.name));
        }
    }
    text_file(&mut boot, "cmdline.txt", format!("{cmdline}\n"), mtime);

    let mut root = os.root.clone();
    let roots: Vec<(PathBuf, &Tree)> = plan.roots.iter().map(|(p, t)| (p.with_extension(""), t)).collect();
    let done = server_root::convert(
        &mut root,
        &ServerRoot {
            server: &recipe.server,
            raspios: release.raspios,
            daemon,
            daemon_toml: plan.server_daemon_toml.clone(),
            exports: plan.exports.clone(),
            lab: &plan.lab,
            roots,
            overlays,
            mtime,
            root_partuuid: root_part,
            boot_partuuid: boot_part,
            debs,
        },
    )?;
    steps.extend(done.into_iter().map(|d| format!("server root: {d}")));
    Ok(ServerParts {
        boot,
        root,
        table,
        disk_id,
        disk_guid,
        boot_guid,
        root_guid,
        fat_volume_id: ids::u32_id(seed, "fat volume id"),
        root_uuid: ids::uuid(seed, "ext4 root"),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_is_in_byte_order() {
        let g = [0xc1, 0x2a, 0x73, 0x28, 0xf8, 0x1f, 0x11, 0xd2, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
        assert_eq!(guid_text(&g), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }
}
