//! Converting an OS root (Raspberry Pi OS bookworm or trixie, or Debian) into a network-booted
//! client root: the SD card's partitions, first-boot wizards, resizing and swap go; the lab user
//! and its SSH keys come in; what must differ per client (host name, machine id, SSH host keys,
//! DNS) is made at boot in memory. The steps follow research/builders.md §4.5 and PiServer's
//! conversion (pi-netboot.md §4). Pure: a tree in, the same tree changed out.

use super::overlay;
use super::tree_edit::{Editor, read_text};
use crate::recipe::RootMode;
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Which OS a root is, from its os-release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsRelease {
    /// `debian`, `raspbian`, ...
    pub id: String,
    /// `bookworm`, `trixie`, ...
    pub codename: String,
    pub pretty_name: String,
    /// Raspberry Pi OS (it has /etc/rpi-issue, whatever os-release's ID says).
    pub raspios: bool,
}

pub fn os_release(root: &Tree) -> Result<OsRelease> {
    let text = read_text(root, Path::new("etc/os-release"))
        .or_else(|_| read_text(root, Path::new("usr/lib/os-release")))
        .context("the root has no /etc/os-release: is it an OS root?")?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let codename = field("VERSION_CODENAME");
    if codename.is_empty() {
        bail!("the root's os-release names no VERSION_CODENAME; Bramble converts Debian-based roots only");
    }
    Ok(OsRelease {
        id: field("ID"),
        codename,
        pretty_name: field("PRETTY_NAME"),
        raspios: root.get(Path::new("etc/rpi-issue")).is_some(),
    })
}

/// What the converted root is for.
pub struct Conversion<'a> {
    pub lab: &'a str,
    pub host_keys: crate::recipe::HostKeys,
    pub user: &'a str,
    pub ssh_keys: &'a [String],
    pub root: RootMode,
    pub mtime: Timestamp,
    /// The recipe's overlay folders (absolute), laid after the built-in one.
    pub overlays: &'a [PathBuf],
    /// Extra template values (`server`, `client`).
    pub extra: minijinja::Value,
}

/// Units the client must not run: first-boot wizards and resizers of the SD card, swap files,
/// key regeneration that would write to the shared root, and jobs that need a writable one.
/// Masked (linked to /dev/null), so a unit that is absent costs nothing.
const MASKED: &[&str] = &[
    "resize2fs_once.service",
    "rpi-resize.service",
    "rpi-resize-swap-file.service",
    "dphys-swapfile.service",
    "userconfig.service",
    "regenerate_ssh_host_keys.service",
    "sshswitch.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "logrotate.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "systemd-firstboot.service",
    // SD-card-only: the bootloader update from /boot/firmware, the clock saved to the card.
    "rpi-eeprom-update.service",
    "fake-hwclock.service",
    // The server's own services, in a root the server image shares.
    "nfs-server.service",
    "nfs-kernel-server.service",
    "nfs-mountd.service",
    "nfs-idmapd.service",
    "rpcbind.service",
    "rpcbind.socket",
    "bramble.service",
    "bramble-firstboot.service",
    "systemd-networkd.service",
];

/// In-memory folders of a shared root, with their modes: PiServer's list (convert_chrooted_cmds)
/// and what systemd and the package managers write to.
const SHARED_TMPFS: &[(&str, &str)] = &[
    ("/tmp", "1777"),
    ("/var/tmp", "1777"),
    ("/var/log", "0755"),
    ("/var/spool", "0755"),
    ("/var/cache", "0755"),
    ("/var/lib/systemd", "0755"),
    ("/var/lib/sudo", "0700"),
    ("/var/lib/dhcp", "0755"),
    ("/var/lib/dhcpcd", "0755"),
    ("/var/lib/NetworkManager", "0700"),
    ("/var/lib/bluetooth", "0700"),
    ("/var/lib/lightdm", "0750"),
    ("/var/lib/logrotate", "0755"),
    ("/home", "0755"),
    ("/media", "0755"),
];
/// Always made, even when the OS does not have the folder yet.
const ESSENTIAL: &[&str] = &["/tmp", "/var/tmp", "/var/log", "/var/lib/systemd", "/home"];
const PER_CLIENT_TMPFS: &[(&str, &str)] = &[("/tmp", "1777")];

/// Groups the lab user joins when the OS has them (Raspberry Pi OS's first user's groups).
const USER_GROUPS: &[&str] = &[
    "adm",
    "dialout",
    "cdrom",
    "sudo",
    "audio",
    "video",
    "plugdev",
    "games",
    "users",
    "input",
    "render",
    "netdev",
    "gpio",
    "i2c",
    "spi",
    "systemd-journal",
];

/// Convert `root` in place; returns a line per change, for the build's summary.
pub fn convert(root: &mut Tree, c: &Conversion) -> Result<Vec<String>> {
    let release = os_release(root)?;
    let mut e = Editor::new(root, c.mtime);
    let mut done = Vec::new();
    let shared = c.root == RootMode::Shared;
    let tmpfs: Vec<(&str, &str)> = if shared {
        SHARED_TMPFS.iter().copied().filter(|(p, _)| ESSENTIAL.contains(p) || e.exists(&p[1..])).collect()
    } else {
        PER_CLIENT_TMPFS.to_vec()
    };
    for (p, _) in &tmpfs {
        e.mkdir(&p[1..], 0o755);
    }
    done.push(format!(
        "fstab: no SD-card partitions; in memory: {}",
        tmpfs.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(" ")
    ));

    // The boot files are served from the lab's boot folder; a client never mounts its own.
    let boot_files = e.remove_matching("boot/firmware", |_| true);
    if boot_files > 0 {
        done.push(format!("removed {boot_files} boot files from /boot/firmware (served over TFTP instead)"));
    }
    for unit in MASKED {
        e.symlink(&format!("etc/systemd/system/{unit}"), "/dev/null");
    }
    done.push(format!("masked {} first-boot, resize, swap and maintenance units", MASKED.len()));
    // trixie's cloud-init would look for a seed on the (absent) boot partition at every boot.
    if e.exists("etc/cloud") {
        e.write("etc/cloud/cloud-init.disabled", b"Bramble: clients are configured by the lab build.\n", 0o644);
        done.push("cloud-init disabled".into());
    }

    // Per-client identity: the machine id is made at boot (an empty file on a read-only root
    // gives a transient one), the host name comes from the kernel command line.
    e.write("etc/machine-id", b"", 0o444);
    if e.exists("var/lib/dbus") {
        e.symlink("var/lib/dbus/machine-id", "/etc/machine-id");
    }
    e.remove("etc/hostname");
    e.symlink("etc/hosts", "/run/bramble/hosts");
    e.symlink("etc/resolv.conf", "/run/bramble/resolv.conf");
    // The image's own keys would be every client's (and are not its secret): always removed.
    // Each boot makes new ones in memory, or a client's own root keeps what its first boot made.
    let keep = c.host_keys == crate::recipe::HostKeys::PerClient && !shared;
    e.write("etc/bramble/ssh-host-keys", if keep { b"keep\n" } else { b"boot\n" }, 0o644);
    {
        let removed = e.remove_matching("etc/ssh", |name| name.starts_with("ssh_host_"));
        if removed > 0 {
            done.push(format!(
                "removed {removed} SSH host key files: each client makes its own {}",
                if keep { "at its first boot" } else { "at every boot" }
            ));
        }
    }
    e.symlink(
        "etc/systemd/system/sysinit.target.wants/bramble-netboot.service",
        "/etc/systemd/system/bramble-netboot.service",
    );
    if e.exists("lib/systemd/system/ssh.service") || e.exists("usr/lib/systemd/system/ssh.service") {
        e.symlink("etc/systemd/system/multi-user.target.wants/ssh.service", "/lib/systemd/system/ssh.service");
        done.push("SSH server enabled".into());
    }

    add_user_to(&mut e, c.user, c.ssh_keys, shared)?;
    done.push(format!(
        "user `{}` with {} SSH key{} and sudo; no password",
        c.user,
        c.ssh_keys.len(),
        if c.ssh_keys.len() == 1 { "" } else { "s" }
    ));

    let root = e.finish();
    let mut values = minijinja::Value::from(minijinja::value::Serde(serde_json::json!({
        "lab": c.lab,
        "user": c.user,
        "shared": shared,
        "tmpfs": tmpfs,
        "os": { "id": release.id, "codename": release.codename, "raspios": release.raspios },
    })));
    if !c.extra.is_undefined() && !c.extra.is_none() {
        values = minijinja::context! { ..values, ..c.extra.clone() };
    }
    let written = overlay::apply(root, overlay::Target::Client, c.overlays, &values, c.mtime)?;
    done.push(format!("overlay: {} files", written.len()));
    Ok(done)
}

/// The lab user: an account with the usual groups, no password (SSH keys only), a home the
/// boot copies into memory, and sudo (overlay `etc/sudoers.d/010_bramble`).
pub(super) fn add_user_to(e: &mut Editor, user: &str, keys: &[String], shared: bool) -> Result<()> {
    let passwd = e.text("etc/passwd").context("the root has no /etc/passwd")?;
    let group = e.text("etc/group").context("the root has no /etc/group")?;
    let shadow = e.text("etc/shadow").unwrap_or_default();
    let uid = match passwd.lines().find(|l| l.split(':').next() == Some(user)) {
        Some(line) => line.split(':').nth(2).and_then(|u| u.parse::<u32>().ok()).unwrap_or(1000),
        None => {
            let used: Vec<u32> = passwd.lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect();
            let gids: Vec<u32> = group.lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect();
            let uid = (1000..60000).find(|u| !used.contains(u) && !gids.contains(u)).unwrap_or(1000);
            let shell = if e.exists("bin/bash") || e.exists("usr/bin/bash") { "/bin/bash" } else { "/bin/sh" };
            e.write(
                "etc/passwd",
                format!("{passwd}{user}:x:{uid}:{uid}:{user}:/home/{user}:{shell}\n").as_bytes(),
                0o644,
            );
            uid
        }
    };
    let mut groups: Vec<String> = Vec::new();
    let mut has_own = false;
    for line in group.lines() {
        let mut f: Vec<String> = line.split(':').map(str::to_string).collect();
        if f.len() == 4 && f[0] == user {
            has_own = true;
        }
        if f.len() == 4 && USER_GROUPS.contains(&f[0].as_str()) {
            let members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
            if !members.contains(&user) {
                f[3] = members.iter().copied().chain([user]).collect::<Vec<_>>().join(",");
            }
        }
        groups.push(f.join(":"));
    }
    if !has_own {
        groups.push(format!("{user}:x:{uid}:"));
    }
    e.write("etc/group", (groups.join("\n") + "\n").as_bytes(), 0o644);
    if !shadow.lines().any(|l| l.split(':').next() == Some(user)) {
        // `*`: no password can match; `!` would lock SSH key logins too on some PAM setups.
        e.write("etc/shadow", format!("{shadow}{user}:*:19000:0:99999:7:::\n").as_bytes(), 0o640);
        if let Some(n) = e.node_mut("etc/shadow") {
            n.gid = 42; // shadow, on Debian
        }
    }
    let gshadow = e.text("etc/gshadow").unwrap_or_default();
    if !gshadow.is_empty() && !gshadow.lines().any(|l| l.split(':').next() == Some(user)) {
        e.write("etc/gshadow", format!("{gshadow}{user}:!::\n").as_bytes(), 0o640);
        if let Some(n) = e.node_mut("etc/gshadow") {
            n.gid = 42;
        }
    }
    let home = format!("usr/share/bramble/home/{user}");
    e.mkdir(&home, 0o750);
    for skel in ["etc/skel/.bashrc", "etc/skel/.profile", "etc/skel/.bash_logout"] {
        if let Ok(bytes) = e.bytes(skel) {
            let name = skel.rsplit('/').next().expect("has a name");
            e.write(&format!("{home}/{name}"), &bytes, 0o644);
        }
    }
    e.mkdir(&format!("{home}/.ssh"), 0o700);
    let mut authorized = keys.join("\n");
    if !authorized.is_empty() {
        authorized.push('\n');
    }
    e.write(&format!("{home}/.ssh/authorized_keys"), authorized.as_bytes(), 0o600);
    // Without a shared root the home is not in memory: make it in place too.
    if !shared && !e.exists(&format!("home/{user}")) {
        for path in e.paths_under(&home) {
            let rel = path.strip_prefix(&home).expect("under home").to_path_buf();
            e.copy(&path, &Path::new("home").join(user).join(rel));
        }
        e.mkdir(&format!("home/{user}"), 0o750);
        e.chown_tree(&format!("home/{user}"), uid, uid);
    }
    Ok(())
}

/// The kernel command line of a network-booted client: the OS's own arguments (consoles,
/// quiet, ...) without those that mount the SD card or run first-boot steps, then the NFS root.
pub fn client_cmdline(os_cmdline: &str, nfsroot: &str, shared: bool, hostname: &str, extra: Option<&str>) -> String {
    const DROP_KEYS: &[&str] = &[
        "root",
        "rootfstype",
        "fsck.repair",
        "init",
        "nfsroot",
        "ip",
        "rootwait",
        "ro",
        "rw",
        "ds",
        "cfg80211.ieee80211_regdom",
    ];
    let mut args: Vec<String> = os_cmdline
        .split_whitespace()
        .filter(|a| {
            let key = a.split('=').next().unwrap_or(a);
            !DROP_KEYS.contains(&key)
                && !key.starts_with("systemd.run")
                && key != "systemd.unit"
                && key != "systemd.hostname"
                && *a != "resize"
                && *a != "splash"
                && *a != "plymouth.ignore-serial-consoles"
        })
        .map(str::to_string)
        .collect();
    args.push("root=/dev/nfs".into());
    // `nfsvers=3`, not `vers=3`: the kernel takes both, but klibc's nfsmount in Debian's
    // initramfs refuses `vers` ("bad option").
    args.push(format!("nfsroot={nfsroot},nfsvers=3,tcp"));
    args.push(if shared { "ro" } else { "rw" }.into());
    args.push("ip=dhcp".into());
    args.push("rootwait".into());
    args.push(format!("systemd.hostname={hostname}"));
    if let Some(x) = extra.filter(|x| !x.trim().is_empty()) {
        args.push(x.trim().to_string());
    }
    args.join(" ")
}

/// A file node, for callers that add files to a converted tree.
pub fn file_node(bytes: &[u8], mode: u32, mtime: Timestamp) -> Node {
    let mut n = Node::new(Kind::File(Content::bytes(bytes.to_vec())), mode);
    n.mtime = mtime;
    n
}
