//! The built lab copied into a new folder: files and symlinks as they are, each `root.tar`
//! unpacked with its owners as the folder `root`, and the text files that name the lab's NFS
//! paths rewritten when the server keeps the lab somewhere other than /srv/bramble. Every
//! failure names the path and what was being done.

use crate::lab::plan::SERVER_LAB_DIR;
use crate::tree::dir::{DirOptions, write_dir};
use crate::tree::tar_reader::read_tar_file;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Text files whose NFS paths name the lab's folder.
fn names_lab_dir(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(name, "cmdline.txt" | "grub.cfg" | "exports")
}

/// Copy the lab `from` into `to`; `lab_dir` is where the server sees the lab (for the NFS
/// paths), `skip` the lab-relative paths left out (the roots a redeploy keeps). Returns the
/// number of files written.
pub fn copy_lab(
    from: &Path,
    to: &Path,
    lab_dir: &str,
    skip: &dyn Fn(&Path) -> bool,
    out: &mut dyn Write,
) -> Result<usize> {
    copy_dir(from, to, Path::new(""), lab_dir, skip, out)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    rel: &Path,
    lab_dir: &str,
    skip: &dyn Fn(&Path) -> bool,
    out: &mut dyn Write,
) -> Result<usize> {
    let mut copied = 0;
    std::fs::create_dir_all(to).with_context(|| format!("cannot create the folder {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| format!("cannot list the folder {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list the folder {}", from.display()))?;
        let (src, dst, rel) = (entry.path(), to.join(entry.file_name()), rel.join(entry.file_name()));
        if skip(&rel) {
            continue;
        }
        let kind = entry.file_type().with_context(|| format!("cannot read the type of {}", src.display()))?;
        if kind.is_dir() {
            copied += copy_dir(&src, &dst, &rel, lab_dir, skip, out)?;
        } else if kind.is_symlink() {
            let target =
                std::fs::read_link(&src).with_context(|| format!("cannot read the symlink {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst)
                .with_context(|| format!("cannot create the symlink {} (to {})", dst.display(), target.display()))?;
        } else if src.file_name().is_some_and(|n| n == "root.tar") {
            let tree =
                read_tar_file(&src).with_context(|| format!("cannot read the root archive {}", src.display()))?;
            let folder = dst.with_extension("");
            let report = write_dir(&tree, &folder, DirOptions::default())
                .with_context(|| format!("cannot unpack {} into {}", src.display(), folder.display()))?;
            writeln!(out, "unpacked {} ({} entries)", folder.display(), report.written)?;
            copied += 1;
        } else if lab_dir != SERVER_LAB_DIR && names_lab_dir(&src) {
            let text = std::fs::read_to_string(&src).with_context(|| format!("cannot read {}", src.display()))?;
            std::fs::write(&dst, text.replace(SERVER_LAB_DIR, lab_dir))
                .with_context(|| format!("cannot write {}", dst.display()))?;
            copied += 1;
        } else {
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}
