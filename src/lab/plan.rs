//! Assembling the lab from loaded inputs: what goes where in `OUT/lab/`, as trees. Decides
//! everything and writes nothing (that is [`super::emit`]).

use super::{daemon_toml, eeprom, menu::GrubClient, nfsroot, pc, pi_boot, tree_edit::read_text};
use crate::daemon::tftp::placeholder;
use crate::recipe::{ClientBoot, FileRef, Model, Recipe, RootMode};
use crate::tree::{Content, Kind, Node, Timestamp, Tree};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Where the lab lives on the server; NFS paths in command lines and exports name it.
/// `bramble deploy` to another folder rewrites them.
pub const SERVER_LAB_DIR: &str = "/srv/bramble";

/// An OS, read: its boot folder and its root, before any change.
pub struct OsInput {
    /// The folder name under `os/` (`raspios-lite-arm64-2025-11-24`, `debian-bookworm-arm64`).
    pub id: String,
    pub boot: Tree,
    pub root: Tree,
}

pub struct Inputs<'a> {
    pub recipe: &'a Recipe,
    /// For messages and the generated files' headers.
    pub recipe_name: &'a str,
    /// The recipe's folder: local files and overlays are relative to it.
    pub recipe_dir: &'a Path,
    pub os: Option<OsInput>,
    pub eeprom: Vec<eeprom::Release>,
    /// How the bootloader updates' timestamp is chosen (see README: a Pi applies only newer ones).
    pub eeprom_ts: eeprom::Timestamps<'a>,
    pub mtime: Timestamp,
    pub resolve: &'a mut dyn FnMut(&FileRef) -> Result<Content>,
}

/// What the build writes.
pub struct Plan {
    /// `OUT/lab/`, but for the roots.
    pub lab: Tree,
    /// Roots written as tar files, by their path in the lab.
    pub roots: Vec<(PathBuf, Tree)>,
    /// What was decided, a line each (the `--dry-run` listing).
    pub steps: Vec<String>,
    /// The OS as read, before any change: the server image starts from it.
    pub os: Option<OsInput>,
    /// daemon.toml as the server image holds it (`/etc/bramble/daemon.toml`): the lab in
    /// /srv/bramble, the leases in the daemon's state folder.
    pub server_daemon_toml: String,
    /// The NFS exports, if the lab has an OS to export.
    pub exports: Option<String>,
    /// The bootloader updates' timestamp of each chip, for the lock.
    pub eeprom_stamps: Vec<eeprom::Stamp>,
}

/// Where the server image's daemon keeps its leases (its systemd unit's StateDirectory).
pub const SERVER_LEASE_FILE: &str = "/var/lib/bramble/leases.toml";

struct Builder {
    lab: Tree,
    dir: Node,
    mtime: Timestamp,
}

impl Builder {
    fn file(&mut self, path: impl Into<PathBuf>, content: Content) {
        let mut n = Node::new(Kind::File(content), 0o644);
        n.mtime = self.mtime;
        self.lab.insert_with_parents(path.into(), n, &self.dir);
    }

    fn text(&mut self, path: impl Into<PathBuf>, text: String) {
        self.file(path, Content::bytes(text.into_bytes()));
    }

    /// `tree` under `at` (its root becomes the folder `at`).
    fn graft(&mut self, at: &Path, tree: &Tree) {
        for (p, n) in tree.iter() {
            let mut node = n.clone();
            if let Kind::HardLink(t) = &n.kind {
                node.kind = Kind::HardLink(at.join(t));
            }
            self.lab.insert_with_parents(at.join(p), node, &self.dir);
        }
    }
}

pub fn plan(inputs: Inputs) -> Result<Plan> {
    let recipe = inputs.recipe;
    let mtime = inputs.mtime;
    let mut dir = Node::new(Kind::Dir, 0o755);
    dir.mtime = mtime;
    let mut lab = Tree::new();
    lab.insert("", dir.clone());
    let mut b = Builder { lab, dir, mtime };
    let mut steps = Vec::new();
    let mut roots = Vec::new();
    let shared = recipe.lab.root == RootMode::Shared;
    // Without a fixed address the daemon fills it in as it serves cmdline.txt.
    let server = recipe
        .server
        .address
        .map(|n| n.addr.to_string())
        .unwrap_or_else(|| String::from_utf8_lossy(placeholder::SERVER).into_owned());
    let overlays: Vec<PathBuf> = recipe.lab.overlays.iter().map(|o| inputs.recipe_dir.join(o)).collect();

    let mut grub_clients = Vec::new();
    let os_id = inputs.os.as_ref().map(|o| o.id.clone());
    if let Some(os) = &inputs.os {
        let pi_models: Vec<Model> = recipe.models().into_iter().filter(|m| m.is_pi()).collect();
        pi_boot::check(&os.boot, &pi_models, &os.id)?;
        let release = nfsroot::os_release(&os.root)?;
        steps.push(format!("os {}: {} ({} entries in the root)", os.id, release.pretty_name, os.root.len()));
        let boot_dir = PathBuf::from("os").join(&os.id).join("boot");
        b.graft(&boot_dir, &os.boot);
        let os_cmdline = read_text(&os.boot, Path::new("cmdline.txt")).unwrap_or_default();
        let os_config = read_text(&os.boot, Path::new("config.txt")).unwrap_or_default();
        let export = |client: Option<&str>| match client {
            None => format!("{SERVER_LAB_DIR}/os/{}/root", os.id),
            Some(c) => format!("{SERVER_LAB_DIR}/clients/{c}/root"),
        };
        let values = |client: Option<&crate::recipe::Client>| {
            minijinja::context! {
                server => recipe.server.address.map(|n| n.addr.to_string()),
                client => client.map(|c| minijinja::context! {
                    name => c.name.clone(),
                    serial => c.serial.map(|s| s.to_string()),
                    mac => c.mac.map(|m| m.to_string()),
                }),
            }
        };
        let convert = |root: &mut Tree, client: Option<&crate::recipe::Client>| {
            nfsroot::convert(
                root,
                &nfsroot::Conversion {
                    lab: &recipe.lab.name,
                    host_keys: recipe.lab.ssh_host_keys,
                    user: &recipe.server.user,
                    ssh_keys: &recipe.server.ssh_keys,
                    root: recipe.lab.root,
                    mtime,
                    overlays: &overlays,
                    extra: values(client),
                },
            )
        };
        if shared {
            let mut root = os.root.clone();
            let done = convert(&mut root, None).context("converting the client root")?;
            steps.extend(done.into_iter().map(|d| format!("root: {d}")));
            roots.push((PathBuf::from("os").join(&os.id).join("root.tar"), root));
        }
        for c in recipe.clients.iter().filter(|c| c.boot == ClientBoot::Os) {
            let base = PathBuf::from("clients").join(&c.name);
            if !shared {
                let mut root = os.root.clone();
                convert(&mut root, Some(c)).with_context(|| format!("converting {}'s root", c.name))?;
                roots.push((base.join("root.tar"), root));
            }
            let nfsroot = format!("{server}:{}", export((!shared).then_some(c.name.as_str())));
            if c.model == Model::Pc {
                let cmdline = nfsroot::client_cmdline("", &nfsroot, shared, &c.name, c.cmdline.as_deref());
                let mac = c.mac.map(|m| m.to_string()).unwrap_or_default();
                // The same kernel and initramfs the Pis boot, named as config.txt names them.
                let kernel = pi_boot::configured_kernel(&os_config).unwrap_or_else(|| "kernel8.img".into());
                let initrd = pi_boot::configured_initramfs(&os_config).map(|i| format!("/{i}"));
                grub_clients.push(GrubClient {
                    mac,
                    name: c.name.clone(),
                    kernel: format!("/{kernel}"),
                    initrd,
                    cmdline,
                });
                continue;
            }
            let cmdline = nfsroot::client_cmdline(&os_cmdline, &nfsroot, shared, &c.name, c.cmdline.as_deref());
            // The recipe's part is bounded by `bramble validate`; the OS's own line is not.
            if cmdline.len() + 1 > crate::recipe::CMDLINE_TXT_MAX {
                anyhow::bail!(
                    "{}'s cmdline.txt would be {} bytes; the Pi's firmware reads at most {}: shorten the OS's cmdline.txt or the client's `cmdline`",
                    c.name,
                    cmdline.len() + 1,
                    crate::recipe::CMDLINE_TXT_MAX
                );
            }
            b.text(base.join("cmdline.txt"), format!("{cmdline}\n"));
            if let Some(extra) = c.config_txt.as_deref().filter(|x| !x.trim().is_empty()) {
                let mut config = os_config.clone();
                if !config.ends_with('\n') && !config.is_empty() {
                    config.push('\n');
                }
                config.push_str(&format!(
                    "\n[all]\n# {}'s own lines (recipe `config_txt`)\n{}\n",
                    c.name,
                    extra.trim_end()
                ));
                b.text(base.join("config.txt"), config);
            }
        }
        let n = recipe.clients.iter().filter(|c| c.boot == ClientBoot::Os).count();
        steps.push(format!(
            "clients: {n} boot {} over NFS ({}), host names from their command lines",
            os.id,
            if shared { "one shared read-only root" } else { "a writable root each" }
        ));
    }

    let boot_files = match &recipe.pc {
        Some(pc_settings) => {
            let title = format!("{} boot menu", recipe.lab.name);
            let t = pc::tree(pc_settings, &title, &pc::OsBoot { grub: grub_clients }, mtime, inputs.resolve)?;
            b.graft(Path::new("pc"), &t);
            steps.push(format!(
                "pc: loaders and a {}-entry menu for BIOS, UEFI (x64, arm64), iPXE and HTTP boot",
                pc_settings.menu.len()
            ));
            Some(pc::boot_files(pc_settings))
        }
        None => None,
    };

    let (updates, eeprom_stamps) = eeprom::updates(recipe, &inputs.eeprom, inputs.eeprom_ts)?;
    for u in &updates {
        let folder = match &u.client {
            None => PathBuf::from("eeprom").join(u.chip.number().to_string()),
            Some(c) => PathBuf::from("clients").join(c),
        };
        for f in u.files.iter().filter(|f| f.name != "recovery.bin") {
            b.file(folder.join(f.name), Content::bytes(f.bytes.clone()));
        }
        let who =
            u.client.as_deref().map(|c| format!("client {c}")).unwrap_or_else(|| format!("every {}", u.chip.boards()));
        if u.client.is_none() {
            let card = eeprom::card_image(&u.files, u.ts)?;
            b.file(folder.join("update-card.img"), Content::bytes(card));
        }
        let order = crate::eeprom::bootconf::effective(&u.config, "BOOT_ORDER").unwrap_or("0xf41").to_string();
        steps.push(format!(
            "eeprom: {who}: BOOT_ORDER={order}, self-update files{}",
            if u.client.is_none() { " and an SD card image" } else { "" }
        ));
    }
    let eeprom_dir = |client: &str| -> Option<String> {
        let c = recipe.clients.iter().find(|c| c.name == client)?;
        let chip = c.model.eeprom_chip()?;
        Some(format!("eeprom/{}", chip.number()))
    };
    let daemon = daemon_toml::render(
        recipe,
        inputs.recipe_name,
        ".",
        os_id.as_deref(),
        &eeprom_dir,
        boot_files.as_ref(),
        &daemon_toml::default_lease_file().display().to_string(),
    );
    b.text("daemon.toml", daemon);
    let exports = os_id.as_deref().map(|id| exports(recipe, id));
    if let Some(text) = &exports {
        b.text("exports", text.clone());
    }
    let server_daemon_toml = daemon_toml::render(
        recipe,
        inputs.recipe_name,
        SERVER_LAB_DIR,
        os_id.as_deref(),
        &eeprom_dir,
        boot_files.as_ref(),
        SERVER_LEASE_FILE,
    );
    steps.push(format!("daemon.toml: dhcp {}, answer {}", recipe.server.dhcp, recipe.server.answer.name()));
    Ok(Plan { lab: b.lab, roots, steps, os: inputs.os, server_daemon_toml, exports, eeprom_stamps })
}

/// The NFS exports for nfs-kernel-server (`/etc/exports.d/bramble.exports`).
pub fn exports(recipe: &Recipe, os_id: &str) -> String {
    let who = recipe.server.address.map(|n| format!("{}/{}", n.network(), n.prefix)).unwrap_or_else(|| "*".into());
    let mut out = format!(
        "# NFS exports of the Bramble lab `{}`, written by `bramble build`; `bramble deploy` installs them.\n",
        recipe.lab.name
    );
    match recipe.lab.root {
        RootMode::Shared => out
            .push_str(&format!("{SERVER_LAB_DIR}/os/{os_id}/root {who}(ro,no_subtree_check,no_root_squash,fsid=1)\n")),
        RootMode::PerClient => {
            for (i, c) in recipe.clients.iter().filter(|c| c.boot == ClientBoot::Os).enumerate() {
                let host = c.address.map(|a| a.to_string()).unwrap_or_else(|| who.clone());
                out.push_str(&format!(
                    "{SERVER_LAB_DIR}/clients/{}/root {host}(rw,sync,no_subtree_check,no_root_squash,fsid={})\n",
                    c.name,
                    100 + i
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{CMDLINE_EXTRA_MAX, CMDLINE_TXT_MAX};

    /// What `bramble validate` lets a client add always fits the firmware's cmdline.txt with
    /// Raspberry Pi OS's own line (bookworm's, first-boot arguments included) and the longest
    /// names: so the build's own check only ever catches an OS with an unusually long line.
    #[test]
    fn the_longest_recipe_cmdline_fits_the_firmware() {
        let os = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes \
                  rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cfg80211.ieee80211_regdom=GB";
        let name = "n".repeat(63);
        let server = String::from_utf8_lossy(placeholder::SERVER);
        let nfsroot = format!("{server}:{SERVER_LAB_DIR}/clients/{name}/root");
        let extra = "x".repeat(CMDLINE_EXTRA_MAX);
        let line = nfsroot::client_cmdline(os, &nfsroot, false, &name, Some(&extra));
        // With its newline.
        assert!(line.len() < CMDLINE_TXT_MAX, "{} bytes", line.len() + 1);
    }
}
