//! A Debian arm64 root built with mmdebstrap (unshare mode: no root needed; qemu-user through
//! binfmt_misc runs the arm64 maintainer scripts), as a tar, cached by everything that decides
//! its content so a rebuild is instant. The kernel and firmware are Debian's own way to run on
//! a Pi 3/4: `linux-image-arm64` and `raspi-firmware`; its initramfs holds the network drivers
//! of the Pi 3 (USB: dwc2, smsc95xx, lan78xx), the Pi 4 (bcmgenet and its PHY), virtual machines
//! (virtio) and the NFS client, so the root can be mounted over the network.
//!
//! mmdebstrap downloads the packages itself from the archive; pin the archive with a
//! snapshot.debian.org mirror to rebuild the same versions months later.

use crate::digest::sha256_hex;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the root gets: an init, device manager and bus, the kernel with an initramfs that boots
/// from the network or a disk, the Pi firmware, what the lab's users need to log in and look
/// around, and what the server image adds (the NFS server, `growpart` for the first boot's
/// resize). One root serves the clients and the server, so the lab needs one mmdebstrap run;
/// the client conversion masks the server's services.
pub const BASE_PACKAGES: &[&str] = &[
    "nfs-kernel-server",
    "cloud-guest-utils",
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "linux-image-arm64",
    "raspi-firmware",
    "initramfs-tools",
    "openssh-server",
    "sudo",
    "iproute2",
    "iputils-ping",
    "procps",
    "less",
];

/// Everything that decides the root's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianRootSpec {
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    pub arch: String,
    /// Sorted, each once.
    pub packages: Vec<String>,
    pub source_date_epoch: u32,
}

/// Written into the root before the packages are configured, so the kernel's postinst builds
/// an initramfs that can mount the root from the network (clients: the Pi 3's USB Ethernet, the
/// Pi 4's GENET and its PHY, virtio, NFS) or from a disk (the server: the Pi 3's and Pi 4's SD
/// hosts, USB storage, virtio, and ext4 itself). A short module list rather than `MODULES=netboot` or `most`:
/// every module costs mkinitramfs several programs started through qemu-user, and netboot's
/// hundreds took 15 of the 20 minutes here.
const ESSENTIAL_HOOK: &str = "mkdir -p \"$1/etc/initramfs-tools/conf.d\" && \
    printf 'MODULES=list\\n' > \"$1/etc/initramfs-tools/conf.d/bramble.conf\" && \
    printf '%s\\n' virtio_net virtio_pci virtio_blk bcmgenet broadcom mdio_bcm_unimac dwc2 smsc95xx lan78xx \
    nfsv3 ext4 sdhci_iproc bcm2835 usb_storage uas \
    > \"$1/etc/initramfs-tools/modules\"";

impl DebianRootSpec {
    pub fn new(mirror: &str, suite: &str, components: &[String], extra: &[String], sde: u32) -> DebianRootSpec {
        let mut packages: Vec<String> =
            BASE_PACKAGES.iter().map(|p| p.to_string()).chain(extra.iter().cloned()).collect();
        packages.sort();
        packages.dedup();
        let mut components = components.to_vec();
        // raspi-firmware lives in non-free-firmware (bookworm and later).
        if !components.iter().any(|c| c == "non-free-firmware") {
            components.push("non-free-firmware".into());
        }
        DebianRootSpec {
            mirror: mirror.trim_end_matches('/').to_string(),
            suite: suite.into(),
            components,
            arch: "arm64".into(),
            packages,
            source_date_epoch: sde,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--mode=unshare".into(),
            format!("--arch={}", self.arch),
            "--variant=minbase".into(),
            format!("--components={}", self.components.join(",")),
            format!("--include={}", self.packages.join(",")),
            format!("--essential-hook={ESSENTIAL_HOOK}"),
        ]
    }

    /// The cache key: the tool's version and every argument.
    pub fn key(&self, mmdebstrap_version: &str) -> String {
        let text = format!(
            "bramble-debian-root-v1\n{mmdebstrap_version}\n{}\n{}\n{}\nSOURCE_DATE_EPOCH={}\n",
            self.mirror,
            self.suite,
            self.args().join("\n"),
            self.source_date_epoch
        );
        sha256_hex(text.as_bytes())
    }
}

/// `mmdebstrap --version`, or what to install.
pub fn mmdebstrap_version() -> Result<String> {
    let out = Command::new("mmdebstrap").arg("--version").output().map_err(|e| {
        anyhow::anyhow!("cannot run mmdebstrap ({e}): install it (`apt-get install mmdebstrap arch-test qemu-user-binfmt`, on Debian 12 from bookworm-backports)")
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether this machine can run arm64 programs (natively or through binfmt_misc).
fn check_arm64() -> Result<()> {
    if std::env::consts::ARCH == "aarch64" {
        return Ok(());
    }
    let status = Command::new("arch-test").arg("arm64").stdout(Stdio::null()).stderr(Stdio::null()).status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => bail!(
            "this machine cannot run arm64 programs, which mmdebstrap needs for the Debian root's \
             package scripts: install qemu-user-binfmt and make sure binfmt_misc is mounted and \
             registered (`just setup` does both)"
        ),
        Err(e) => bail!("cannot run arch-test ({e}): install it with `apt-get install arch-test`"),
    }
}

/// The root's tar in `cache_dir`, built if it is not there yet. `log` gets mmdebstrap's
/// progress lines.
pub fn build(spec: &DebianRootSpec, cache_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let version = mmdebstrap_version()?;
    let dir = cache_dir.join("debian-roots");
    let tar = dir.join(format!("{}.tar", spec.key(&version)));
    if tar.exists() {
        return Ok(tar);
    }
    check_arm64()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let partial = dir.join(format!(".{}.partial.tar", spec.key(&version)));
    let _ = std::fs::remove_file(&partial);
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(spec.args())
        .arg(&spec.suite)
        .arg(&partial)
        .arg(&spec.mirror)
        .env("SOURCE_DATE_EPOCH", spec.source_date_epoch.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start mmdebstrap")?;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if let Some(step) = line.strip_prefix("I: ") {
                // The hook's whole shell text is no news; its name is.
                log(step.split(" in shell:").next().unwrap_or(step));
            }
            tail.push(line);
            if tail.len() > 30 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("mmdebstrap failed ({status}) building the Debian {} root:\n{}", spec.suite, tail.join("\n"));
    }
    std::fs::rename(&partial, &tar)?;
    Ok(tar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_every_input() {
        let a = DebianRootSpec::new("http://deb.debian.org/debian/", "bookworm", &["main".into()], &[], 1);
        assert_eq!(a.mirror, "http://deb.debian.org/debian");
        assert!(a.components.contains(&"non-free-firmware".to_string()));
        let b = DebianRootSpec::new("http://deb.debian.org/debian", "bookworm", &["main".into()], &["htop".into()], 1);
        let c = DebianRootSpec::new("http://deb.debian.org/debian", "bookworm", &["main".into()], &[], 2);
        assert_eq!(a.key("1.5.5"), a.clone().key("1.5.5"));
        assert_ne!(a.key("1.5.5"), b.key("1.5.5"));
        assert_ne!(a.key("1.5.5"), c.key("1.5.5"));
        assert_ne!(a.key("1.5.5"), a.key("1.5.6"));
        assert!(b.packages.windows(2).all(|w| w[0] < w[1]));
    }
}
