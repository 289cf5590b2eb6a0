//! The server image's root: the OS root made into the lab server — the bramble daemon (the same
//! program built for aarch64) with its own user, a hardened systemd unit and its config, the
//! lab under /srv/bramble with the client roots unpacked, the NFS exports, a static address on
//! the lab interface, the lab user's SSH keys, and a first boot that grows the root to the card.
//! Pure: trees in, a tree out.

use super::overlay;
use super::plan::SERVER_LAB_DIR;
use super::tree_edit::Editor;
use crate::recipe::Server;
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// ELF machine number of aarch64 (the ELF spec's EM_AARCH64).
const EM_AARCH64: u16 = 183;

/// Whether `bytes` start like a 64-bit little-endian aarch64 ELF executable.
pub fn check_aarch64(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        bail!("the daemon binary is not an ELF program: build it with `just cross`");
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if bytes[4] != 2 || bytes[5] != 1 || machine != EM_AARCH64 {
        bail!(
            "the daemon binary is not for aarch64 (ELF machine {machine}); the server image runs on a Pi: build it with `just cross`"
        );
    }
    Ok(())
}

/// What goes into the server's root.
pub struct ServerRoot<'a> {
    pub server: &'a Server,
    pub raspios: bool,
    /// `bramble` for aarch64.
    pub daemon: Content,
    /// `/etc/bramble/daemon.toml`.
    pub daemon_toml: String,
    /// `/etc/exports.d/bramble.exports`.
    pub exports: Option<String>,
    /// The lab folder (boot files, clients, PC loaders, bootloader updates).
    pub lab: &'a Tree,
    /// Roots to unpack inside the lab, by their folder in it (`os/<id>/root`).
    pub roots: Vec<(PathBuf, &'a Tree)>,
    pub overlays: &'a [PathBuf],
    pub mtime: Timestamp,
    /// fstab's lines for `/` and `/boot/firmware`, by PARTUUID.
    pub root_partuuid: String,
    pub boot_partuuid: String,
    /// Packages the OS lacks for serving the lab (Raspberry Pi OS: the NFS server and its
    /// dependencies), by file name, installed offline at the first boot.
    pub debs: Vec<(String, Content)>,
}

/// Installs the packages the image carries, once, before the services that need them.
const INSTALL_DEBS_UNIT: &str = "[Unit]\nDescription=Bramble server's first boot: install the NFS server from the image (offline)\n\
After=local-fs.target\nBefore=nfs-server.service bramble.service\nConditionDirectoryNotEmpty=/var/cache/bramble/debs\n\n\
[Service]\nType=oneshot\nRemainAfterExit=yes\nEnvironment=DEBIAN_FRONTEND=noninteractive\n\
ExecStart=/bin/sh -c 'dpkg -i /var/cache/bramble/debs/*.deb && rm -f /var/cache/bramble/debs/*.deb'\n\
ExecStartPost=-/usr/sbin/exportfs -ra\n\n[Install]\nWantedBy=multi-user.target\n";

/// A system account for the daemon: uid and gid below 1000, the first free from 999 down.
fn add_system_user(e: &mut Editor, name: &str) -> Result<u32> {
    let passwd = e.text("etc/passwd")?;
    let group = e.text("etc/group")?;
    if let Some(line) = passwd.lines().find(|l| l.split(':').next() == Some(name)) {
        return Ok(line.split(':').nth(2).and_then(|u| u.parse().ok()).unwrap_or(999));
    }
    let used = |text: &str| -> Vec<u32> { text.lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect() };
    let (uids, gids) = (used(&passwd), used(&group));
    let id = (100..1000).rev().find(|i| !uids.contains(i) && !gids.contains(i)).unwrap_or(999);
    e.write(
        "etc/passwd",
        format!("{passwd}{name}:x:{id}:{id}:Bramble boot daemon:/var/lib/bramble:/usr/sbin/nologin\n").as_bytes(),
        0o644,
    );
    e.write("etc/group", format!("{group}{name}:x:{id}:\n").as_bytes(), 0o644);
    if let Ok(shadow) = e.text("etc/shadow") {
        e.write("etc/shadow", format!("{shadow}{name}:!:19000::::::\n").as_bytes(), 0o640);
        if let Some(n) = e.node_mut("etc/shadow") {
            n.gid = 42;
        }
    }
    Ok(id)
}

/// Replace a Raspberry Pi OS fstab's PARTUUIDs (the image's disk id) with the new disk's.
fn rewrite_fstab(fstab: &str, root: &str, boot: &str) -> String {
    let mut out = String::new();
    for line in fstab.lines() {
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        let replacement = match fields.get(1) {
            Some(&"/") if !line.trim_start().starts_with('#') => Some(root),
            Some(&"/boot/firmware") | Some(&"/boot") if !line.trim_start().starts_with('#') => Some(boot),
            _ => None,
        };
        if let Some(r) = replacement.filter(|_| fields[0].starts_with("PARTUUID=") || fields[0].starts_with("UUID=")) {
            let spec = format!("PARTUUID={r}");
            fields[0] = &spec;
            out.push_str(&fields.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Turn `root` (the OS root, untouched) into the server's root.
pub fn convert(root: &mut Tree, s: &ServerRoot) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut e = Editor::new(root, s.mtime);
    let bytes = s.daemon.read_all()?;
    check_aarch64(&bytes)?;
    e.write("usr/bin/bramble", &bytes, 0o755);
    let id = add_system_user(&mut e, "bramble")?;
    e.write("etc/bramble/daemon.toml", s.daemon_toml.as_bytes(), 0o644);
    e.symlink("etc/systemd/system/multi-user.target.wants/bramble.service", "/etc/systemd/system/bramble.service");
    done.push(format!("bramble {} MiB for aarch64, user `bramble` ({id}), bramble.service enabled", bytes.len() >> 20));

    // The boot partition is mounted over /boot/firmware: what the root holds there is hidden.
    e.remove_matching("boot/firmware", |_| true);
    // The image's first boot makes the SSH host keys; the image holds none.
    e.remove_matching("etc/ssh", |n| n.starts_with("ssh_host_"));
    e.write("etc/machine-id", b"", 0o444);
    e.symlink(
        "etc/systemd/system/sysinit.target.wants/bramble-firstboot.service",
        "/etc/systemd/system/bramble-firstboot.service",
    );
    let user = &s.server.user;
    let mut keys = s.server.ssh_keys.join("\n");
    if !keys.is_empty() {
        keys.push('\n');
    }
    e.write(&format!("etc/bramble/authorized_keys/{user}"), keys.as_bytes(), 0o644);
    if !s.raspios {
        // Debian's root has no user; Raspberry Pi OS makes its first user from userconf.txt.
        super::nfsroot::add_user_to(&mut e, user, &s.server.ssh_keys, false)?;
        e.symlink(
            "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
            "/lib/systemd/system/systemd-networkd.service",
        );
        e.symlink(
            "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
            "/lib/systemd/system/systemd-networkd.socket",
        );
        e.symlink(
            "etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
            "/lib/systemd/system/systemd-networkd-wait-online.service",
        );
        let mut resolv = String::new();
        if let Some(d) = &s.server.domain {
            resolv.push_str(&format!("search {d}\n"));
        }
        for ns in &s.server.dns {
            resolv.push_str(&format!("nameserver {ns}\n"));
        }
        if !resolv.is_empty() {
            e.remove("etc/resolv.conf");
            e.write("etc/resolv.conf", resolv.as_bytes(), 0o644);
        }
        done.push(format!("user `{user}` with sudo; systemd-networkd on {}", s.server.interface));
    }
    let fstab = e.text("etc/fstab").unwrap_or_default();
    let new_fstab = if s.raspios && fstab.contains("PARTUUID=") {
        rewrite_fstab(&fstab, &s.root_partuuid, &s.boot_partuuid)
    } else {
        format!(
            "# The server image's file systems, by partition (written by `bramble build`).\n\
             proc /proc proc defaults 0 0\nPARTUUID={} / ext4 defaults,noatime 0 1\nPARTUUID={} /boot/firmware vfat defaults 0 2\n",
            s.root_partuuid, s.boot_partuuid
        )
    };
    e.write("etc/fstab", new_fstab.as_bytes(), 0o644);
    if !s.debs.is_empty() {
        for (name, content) in &s.debs {
            let mut node = Node::new(Kind::File(content.clone()), 0o644);
            node.mtime = s.mtime;
            e.mkdir("var/cache/bramble/debs", 0o755);
            e.insert_node(&format!("var/cache/bramble/debs/{name}"), node);
        }
        e.write("etc/systemd/system/bramble-install-debs.service", INSTALL_DEBS_UNIT.as_bytes(), 0o644);
        e.symlink(
            "etc/systemd/system/multi-user.target.wants/bramble-install-debs.service",
            "/etc/systemd/system/bramble-install-debs.service",
        );
        done.push(format!("{} packages to install at the first boot (the NFS server)", s.debs.len()));
    }
    if let Some(exports) = &s.exports {
        e.write("etc/exports.d/bramble.exports", exports.as_bytes(), 0o644);
        done.push("NFS exports in /etc/exports.d/bramble.exports".into());
    }

    let tree = e.finish();
    let lab_dir = PathBuf::from(SERVER_LAB_DIR.trim_start_matches('/'));
    let mut dir = Node::new(Kind::Dir, 0o755);
    dir.mtime = s.mtime;
    tree.remove(&lab_dir);
    for (p, n) in s.lab.iter() {
        let mut node = n.clone();
        if let Kind::HardLink(t) = &n.kind {
            node.kind = Kind::HardLink(lab_dir.join(t));
        }
        tree.insert_with_parents(lab_dir.join(p), node, &dir);
    }
    for (at, r) in &s.roots {
        let base = lab_dir.join(at);
        for (p, n) in r.iter() {
            let mut node = n.clone();
            if let Kind::HardLink(t) = &n.kind {
                node.kind = Kind::HardLink(base.join(t));
            }
            tree.insert_with_parents(base.join(p), node, &dir);
        }
    }
    let (linked, bytes) = share_usr(tree, &lab_dir, &s.roots);
    done.push(format!(
        "the lab in {SERVER_LAB_DIR}, {} client root(s) unpacked; {linked} files of /usr ({} MiB) shared with the client root as hard links",
        s.roots.len(),
        bytes >> 20
    ));

    let address = s.server.address.map(|n| format!("{}/{}", n.addr, n.prefix));
    let values = minijinja::context! {
        hostname => s.server.hostname.clone(),
        interface => s.server.interface.clone(),
        address => address,
        gateway => s.server.gateway.map(|g| g.to_string()),
        dns => s.server.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        domain => s.server.domain.clone(),
        user => user.clone(),
        lab => SERVER_LAB_DIR,
    };
    let written = overlay::apply(tree, overlay::Target::Server, s.overlays, &values, s.mtime)?;
    done.push(format!("overlay: {} files", written.len()));
    Ok(done)
}

/// The server's /usr files that its unpacked client root holds unchanged become hard links to
/// them, which halves the image when the server and its clients run the same OS. Only /usr:
/// dpkg replaces files there by renaming a new one into place, so an upgrade on the server
/// never reaches the clients' copy; a file edited in place (as /etc's are) would.
fn share_usr(tree: &mut Tree, lab_dir: &Path, roots: &[(PathBuf, &Tree)]) -> (usize, u64) {
    let (mut linked, mut bytes) = (0usize, 0u64);
    let Some((at, client)) = roots.first() else { return (0, 0) };
    let base = lab_dir.join(at);
    let candidates: Vec<PathBuf> = tree
        .paths_under(Path::new("usr"))
        .filter(|p| matches!(tree.get(p).map(|n| &n.kind), Some(Kind::File(_))))
        .cloned()
        .collect();
    for p in candidates {
        let (Some(ours), Some(theirs)) = (tree.get(&p), client.get(&p)) else { continue };
        let same = match (&ours.kind, &theirs.kind) {
            (Kind::File(a), Kind::File(b)) => {
                a.same_source(b)
                    && ours.mode == theirs.mode
                    && ours.uid == theirs.uid
                    && ours.gid == theirs.gid
                    && ours.xattrs == theirs.xattrs
            }
            _ => false,
        };
        if same {
            // The client root's copy comes first in tree order (srv/ before usr/) and keeps the bytes.
            if let Kind::File(c) = &ours.kind {
                bytes += c.len();
            }
            let mut node = ours.clone();
            node.kind = Kind::HardLink(base.join(&p));
            tree.insert(p, node);
            linked += 1;
        }
    }
    (linked, bytes)
}

/// The server's kernel command line: the OS's own, its root on the image's second partition.
pub fn server_cmdline(os_cmdline: &str, root_partuuid: &str) -> String {
    let mut args: Vec<String> = os_cmdline
        .split_whitespace()
        .filter(|a| !a.starts_with("root=") && !a.starts_with("rootfstype="))
        .map(str::to_string)
        .collect();
    args.push(format!("root=PARTUUID={root_partuuid}"));
    args.push("rootfstype=ext4".into());
    if !args.iter().any(|a| a == "rootwait") {
        args.push("rootwait".into());
    }
    args.join(" ")
}

/// Whether `path` in `tree` is a regular file (for checks on a built root).
pub fn has_file(tree: &Tree, path: &str) -> bool {
    matches!(tree.get(Path::new(path)).map(|n| &n.kind), Some(Kind::File(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aarch64_elf_is_taken() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        check_aarch64(&elf).unwrap();
        elf[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert!(check_aarch64(&elf).unwrap_err().to_string().contains("not for aarch64 (ELF machine 62)"));
        assert!(check_aarch64(b"#!/bin/sh\n").unwrap_err().to_string().contains("just cross"));
    }

    #[test]
    fn fstab_and_cmdline_follow_the_new_disk() {
        let fstab = "proc /proc proc defaults 0 0\nPARTUUID=1b2c3d4e-01 /boot/firmware vfat defaults 0 2\nPARTUUID=1b2c3d4e-02 / ext4 defaults,noatime 0 1\n";
        assert_eq!(
            rewrite_fstab(fstab, "abcd0123-02", "abcd0123-01"),
            "proc /proc proc defaults 0 0\nPARTUUID=abcd0123-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd0123-02 / ext4 defaults,noatime 0 1\n"
        );
        assert_eq!(
            server_cmdline(
                "console=tty1 root=PARTUUID=1b2c3d4e-02 rootfstype=ext4 fsck.repair=yes rootwait",
                "abcd0123-02"
            ),
            "console=tty1 fsck.repair=yes rootwait root=PARTUUID=abcd0123-02 rootfstype=ext4"
        );
    }
}
