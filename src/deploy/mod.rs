//! `bramble deploy`: a built lab put in place on the server. The lab is copied beside its
//! destination (`copy`), the clients' own writable roots carried over from the deployed lab
//! unless a reset is asked for (`client_roots`), and the whole swapped in by rename, so clients
//! never see half of it; then the NFS exports and the daemon's systemd unit are installed and
//! the running daemon reloaded (`service`). Not for building labs (`lab`) or serving them
//! (`daemon`).

pub mod client_roots;
pub mod copy;
pub mod service;

use anyhow::{Context, Result, bail};
use client_roots::Reset;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything a deploy does, decided by the command line.
pub struct Deploy {
    /// The built lab (OUT/lab).
    pub lab: PathBuf,
    /// Where the server keeps it.
    pub dest: PathBuf,
    /// The system's root: `/`, or a folder holding one (an image, a test). Under any other
    /// root nothing is started: files are written for the system that boots from it.
    pub root: PathBuf,
    /// Where the NFS exports go, under `root`; `None` leaves them alone.
    pub exports: Option<PathBuf>,
    /// Install and reload the daemon's service.
    pub service: bool,
    pub reset: Reset,
}

/// The clients of a lab folder that have a root of their own: `clients/<name>/root.tar` or,
/// unpacked, `clients/<name>/root/`.
fn client_roots(lab: &Path, unpacked_only: bool) -> Result<BTreeSet<String>> {
    let clients = lab.join("clients");
    let mut names = BTreeSet::new();
    let entries = match std::fs::read_dir(&clients) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e).with_context(|| format!("cannot list the folder {}", clients.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list the folder {}", clients.display()))?;
        let dir = entry.path();
        let has_root = dir.join("root").is_dir() || (!unpacked_only && dir.join("root.tar").is_file());
        if has_root && let Some(name) = entry.file_name().to_str() {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

/// Rename each client's root from `from/clients/<name>/root` to `to/…`; on a failure, the ones
/// already moved go back, so no root is ever left out of both folders.
fn move_roots(names: &[String], from: &Path, to: &Path) -> Result<()> {
    let path = |base: &Path, name: &str| base.join("clients").join(name).join("root");
    for (i, name) in names.iter().enumerate() {
        let (src, dst) = (path(from, name), path(to, name));
        let moved = std::fs::create_dir_all(dst.parent().expect("has a parent"))
            .and_then(|_| std::fs::rename(&src, &dst))
            .with_context(|| format!("cannot move the client root {} to {}", src.display(), dst.display()));
        if let Err(e) = moved {
            for back in &names[..i] {
                let _ = std::fs::rename(path(to, back), path(from, back));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// The lab's path as the server sees it: `dest` inside `root`.
fn server_path(root: &Path, dest: &Path) -> Result<String> {
    let inside = dest.strip_prefix(root).with_context(|| {
        format!(
            "the destination {} is not inside --root {}: give a destination under it",
            dest.display(),
            root.display()
        )
    })?;
    let text = Path::new("/").join(inside);
    let text = text.to_str().context("the destination must be a UTF-8 path")?;
    Ok(text.trim_end_matches('/').to_string())
}

impl Deploy {
    pub fn run(&self, out: &mut dyn Write) -> Result<()> {
        if !self.lab.join("daemon.toml").exists() {
            bail!(
                "{} is not a built lab (no daemon.toml): give the OUT/lab folder of `bramble build`",
                self.lab.display()
            );
        }
        let root = std::path::absolute(&self.root)
            .with_context(|| format!("cannot make {} an absolute path", self.root.display()))?;
        let dest = std::path::absolute(&self.dest)
            .with_context(|| format!("cannot make {} an absolute path", self.dest.display()))?;
        let lab_dir = server_path(&root, &dest)?;
        if self.service {
            // Checked before anything is written: a unit that cannot see the lab is no service.
            service::check_lab_dir(&lab_dir)?;
        }
        let parent = dest.parent().context("the destination has no parent folder")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {} for the lab", parent.display()))?;
        let name = dest.file_name().context("the destination has no name")?.to_string_lossy().into_owned();
        let pid = std::process::id();
        let fresh = parent.join(format!(".{name}.new-{pid}"));
        let old = parent.join(format!(".{name}.old-{pid}"));

        let built = client_roots(&self.lab, false)?;
        let deployed = client_roots(&dest, true)?;
        let decision = client_roots::decide(&built, &deployed, &self.reset)?;
        let kept: BTreeSet<PathBuf> = decision
            .keep
            .iter()
            .flat_map(|n| ["root.tar", "root"].map(|f| Path::new("clients").join(n).join(f)))
            .collect();
        let skip = |rel: &Path| kept.contains(rel);
        let copied = copy::copy_lab(&self.lab, &fresh, &lab_dir, &skip, out).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&fresh);
        })?;
        let discard_fresh = |e: anyhow::Error| {
            let _ = std::fs::remove_dir_all(&fresh);
            e
        };
        // The daemon's leases outlive a redeploy.
        let lease_name = crate::lab::daemon_toml::default_lease_file();
        let journal = crate::daemon::dhcp::lease_file::journal_path(&lease_name);
        // The journal holds what was ACKed since the last snapshot: the two go together.
        for name in [&lease_name, &journal] {
            let from = dest.join(name);
            if from.exists() {
                std::fs::copy(&from, fresh.join(name))
                    .with_context(|| format!("cannot carry the leases {} into the new lab", from.display()))
                    .map_err(discard_fresh)?;
            }
        }
        move_roots(&decision.keep, &dest, &fresh).map_err(discard_fresh)?;
        let swapped = swap(&dest, &fresh, &old);
        if let Err(e) = swapped {
            // Nothing moved: the kept roots go back where they were.
            let back = move_roots(&decision.keep, &fresh, &dest);
            let _ = std::fs::remove_dir_all(&fresh);
            return match back {
                Ok(()) => Err(e),
                Err(b) => Err(e.context(format!("{b:#}; the roots are still in {}", fresh.display()))),
            };
        }
        for name in &decision.keep {
            writeln!(
                out,
                "kept clients/{name}/root: the client's files and host keys (--reset-client {name} replaces it)"
            )?;
        }
        for name in &decision.reset {
            writeln!(out, "reset clients/{name}/root to the build's")?;
        }
        if old.exists()
            && let Err(e) = std::fs::remove_dir_all(&old)
        {
            writeln!(out, "warning: cannot remove the previous lab {} ({e}); remove it yourself", old.display())?;
        }
        writeln!(out, "deployed {} to {} ({copied} files)", self.lab.display(), dest.display())?;
        if let Some(exports) = &self.exports {
            install_exports(&dest.join("exports"), &join_root(&root, exports), root == Path::new("/"), out)?;
        }
        let config = format!("{lab_dir}/daemon.toml");
        if self.service {
            service::install(&root, &lab_dir, out)?;
        } else {
            writeln!(out, "next: bramble serve --config {config}")?;
        }
        Ok(())
    }
}

/// Move `dest` aside to `old` and `fresh` into its place; on a failure, `dest` is as it was.
fn swap(dest: &Path, fresh: &Path, old: &Path) -> Result<()> {
    let had = dest.exists();
    if had {
        std::fs::rename(dest, old).with_context(|| {
            format!("cannot move the deployed lab {} aside to {} (is it a mount point?)", dest.display(), old.display())
        })?;
    }
    if let Err(e) = std::fs::rename(fresh, dest) {
        if had {
            let _ = std::fs::rename(old, dest);
        }
        return Err(e).with_context(|| format!("cannot move the new lab {} to {}", fresh.display(), dest.display()));
    }
    Ok(())
}

/// `path` (absolute, as the system sees it) under `root`.
pub(crate) fn join_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn install_exports(exports: &Path, target: &Path, live: bool, out: &mut dyn Write) -> Result<()> {
    if !exports.exists() {
        return Ok(());
    }
    let text =
        std::fs::read(exports).with_context(|| format!("cannot read the lab's exports {}", exports.display()))?;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {} for the exports", dir.display()))?;
    }
    crate::output::write_file(target, &text)
        .with_context(|| format!("cannot install the NFS exports {}", target.display()))?;
    writeln!(out, "installed the NFS exports in {}", target.display())?;
    if !live {
        return Ok(());
    }
    match std::process::Command::new("exportfs").arg("-ra").status() {
        Ok(s) if s.success() => writeln!(out, "exportfs -ra: the roots are exported")?,
        Ok(s) => writeln!(out, "exportfs -ra failed ({s}): is the NFS server running? (systemctl start nfs-server)")?,
        Err(_) => writeln!(out, "exportfs is missing: install nfs-kernel-server to export the roots")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_is_named_as_the_server_sees_it() {
        assert_eq!(server_path(Path::new("/"), Path::new("/srv/bramble/")).unwrap(), "/srv/bramble");
        assert_eq!(server_path(Path::new("/tmp/img"), Path::new("/tmp/img/srv/lab")).unwrap(), "/srv/lab");
        let e = server_path(Path::new("/tmp/img"), Path::new("/srv/lab")).unwrap_err().to_string();
        assert!(e.contains("not inside --root /tmp/img"), "{e}");
        assert_eq!(join_root(Path::new("/r"), Path::new("/etc/x")), Path::new("/r/etc/x"));
    }
}
