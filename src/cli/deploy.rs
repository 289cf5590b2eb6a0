//! `bramble deploy LAB DEST`: put a built lab in place on the server (as root): the lab folder
//! copied, each root.tar unpacked with its owners, paths rewritten when DEST is not
//! /srv/bramble, the NFS exports installed. The new lab is assembled beside DEST and swapped in,
//! so clients never see half of it.

use crate::lab::plan::SERVER_LAB_DIR;
use crate::tree::dir::{DirOptions, write_dir};
use crate::tree::tar_reader::read_tar_file;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  sudo bramble deploy out/lab /srv/bramble\n  \
    sudo bramble deploy out/lab /tmp/lab --no-exports")]
pub struct Args {
    /// The built lab (OUT/lab of `bramble build`)
    lab: PathBuf,
    /// Where the server keeps it
    #[arg(default_value = SERVER_LAB_DIR)]
    dest: PathBuf,
    /// Where the NFS exports go
    #[arg(long, value_name = "FILE", default_value = "/etc/exports.d/bramble.exports")]
    exports: PathBuf,
    /// Leave the NFS exports alone
    #[arg(long)]
    no_exports: bool,
}

/// Text files whose NFS paths name the lab's folder.
fn names_lab_dir(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(name, "cmdline.txt" | "grub.cfg" | "exports")
}

fn copy_tree(from: &Path, to: &Path, dest_dir: &str, out: &mut dyn Write) -> Result<usize> {
    let mut copied = 0;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copied += copy_tree(&src, &dst, dest_dir, out)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if src.extension().is_some_and(|e| e == "tar") && src.file_name().is_some_and(|n| n == "root.tar") {
            let tree = read_tar_file(&src)?;
            let folder = dst.with_extension("");
            let report = write_dir(&tree, &folder, DirOptions::default())?;
            writeln!(out, "unpacked {} ({} entries)", folder.display(), report.written)?;
            copied += 1;
        } else if dest_dir != SERVER_LAB_DIR && names_lab_dir(&src) {
            let text = std::fs::read_to_string(&src)?;
            std::fs::write(&dst, text.replace(SERVER_LAB_DIR, dest_dir))?;
            copied += 1;
        } else {
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {}", src.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

pub fn run(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("deploy unpacks the client roots with their owners: run it as root (sudo bramble deploy …)");
    }
    if !args.lab.join("daemon.toml").exists() {
        bail!("{} is not a built lab (no daemon.toml): give the OUT/lab folder of `bramble build`", args.lab.display());
    }
    let dest = std::path::absolute(&args.dest)?;
    let dest_text = dest.to_str().context("the destination must be a UTF-8 path")?.trim_end_matches('/').to_string();
    let parent = dest.parent().context("the destination has no parent folder")?;
    std::fs::create_dir_all(parent)?;
    let name = dest.file_name().context("the destination has no name")?.to_string_lossy().into_owned();
    let pid = std::process::id();
    let fresh = parent.join(format!(".{name}.new-{pid}"));
    let old = parent.join(format!(".{name}.old-{pid}"));
    let mut out = std::io::stdout().lock();
    let copied = copy_tree(&args.lab, &fresh, &dest_text, &mut out).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&fresh);
    })?;
    // The daemon's leases outlive a redeploy.
    let leases = dest.join(crate::lab::daemon_toml::default_lease_file());
    if leases.exists() {
        std::fs::copy(&leases, fresh.join(crate::lab::daemon_toml::default_lease_file()))?;
    }
    if dest.exists() {
        std::fs::rename(&dest, &old)
            .with_context(|| format!("cannot move the previous {} aside (is it a mount point?)", dest.display()))?;
    }
    std::fs::rename(&fresh, &dest)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    writeln!(out, "deployed {} to {} ({copied} files)", args.lab.display(), dest.display())?;
    let exports = dest.join("exports");
    if !args.no_exports && exports.exists() {
        if let Some(dir) = args.exports.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::output::write_file(&args.exports, &std::fs::read(&exports)?)?;
        writeln!(out, "installed the NFS exports in {}", args.exports.display())?;
        match std::process::Command::new("exportfs").arg("-ra").status() {
            Ok(s) if s.success() => writeln!(out, "exportfs -ra: the roots are exported")?,
            Ok(s) => {
                writeln!(out, "exportfs -ra failed ({s}): is the NFS server running? (systemctl start nfs-server)")?
            }
            Err(_) => writeln!(out, "exportfs is missing: install nfs-kernel-server to export the roots")?,
        }
    }
    writeln!(out, "next: bramble serve --config {}", dest.join("daemon.toml").display())?;
    Ok(())
}
