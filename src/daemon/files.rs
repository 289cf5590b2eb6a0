//! Finding a requested file on disk, for every server that serves the lab tree (TFTP, HTTP):
//! each candidate folder in turn, each component matched exactly or, failing that, without
//! regard to case; the result must be a regular file whose real path (symlinks resolved) is
//! still inside the served root. Not for deciding which folders a client may see (that is the
//! caller's routing) nor for making names safe (`names.rs` does that first).
//!
//! Blocking filesystem calls; servers run this on the blocking pool.

use super::names::pick_name;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file found for a request.
#[derive(Debug)]
pub struct Found {
    /// Its real path (symlinks resolved).
    pub path: PathBuf,
    pub file: File,
    pub metadata: Metadata,
}

/// Why no file is served.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("not found")]
    NotFound,
    /// A symlink leads outside the root, or the file is not readable.
    #[error("access denied")]
    Denied,
}

/// One component inside `dir`: exactly, else the case-insensitive match.
fn step(dir: &Path, component: &str) -> Option<PathBuf> {
    let exact = dir.join(component);
    if exact.symlink_metadata().is_ok() {
        return Some(exact);
    }
    let entries: Vec<String> =
        std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    pick_name(component, entries.iter().map(String::as_str)).map(|name| dir.join(name))
}

/// Open without side effects whatever the path turns out to be: O_NONBLOCK so a FIFO in the
/// tree cannot hang the blocking pool waiting for a writer, O_NOCTTY so a terminal device
/// cannot become ours. Neither changes how a regular file reads.
fn open_read_only(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY).open(path)
}

/// Find `rest` (safe components, from [`super::names::components`]) in the first of `dirs`
/// (relative to `root`, which must be canonical) that holds it as a regular file.
pub fn find(root: &Path, dirs: &[PathBuf], rest: &[String]) -> Result<Found, LookupError> {
    let mut denied = false;
    for dir in dirs {
        let mut path = root.join(dir);
        let mut ok = true;
        for component in rest {
            match step(&path, component) {
                Some(next) => path = next,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let Ok(real) = path.canonicalize() else { continue };
        if !real.starts_with(root) {
            denied = true;
            continue;
        }
        match open_read_only(&real) {
            Ok(file) => {
                let metadata = file.metadata().map_err(|_| LookupError::NotFound)?;
                if metadata.is_file() {
                    return Ok(Found { path: real, file, metadata });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
            Err(_) => {}
        }
    }
    Err(if denied { LookupError::Denied } else { LookupError::NotFound })
}

#[cfg(test)]
mod tests {
    use super::super::names::components;
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lab");
        for (path, text) in [
            ("clients/n1/cmdline.txt", "n1 cmdline"),
            ("os/pios/boot/cmdline.txt", "shared cmdline"),
            ("os/pios/boot/start4.elf", "firmware"),
            ("os/pios/boot/Overlays/Vc4-Kms-V3d.dtbo", "overlay"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        symlink(dir.path().join("secret"), root.join("clients/n1/escape")).unwrap();
        symlink("../../os/pios/boot/start4.elf", root.join("clients/n1/linked.elf")).unwrap();
        nix::unistd::mkfifo(&root.join("clients/n1/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let root = root.canonicalize().unwrap();
        (dir, root)
    }

    /// The way a client with its own folder before the shared boot folder looks a name up.
    fn read(root: &Path, name: &str) -> Result<String, LookupError> {
        let dirs = [PathBuf::from("clients/n1"), PathBuf::from("os/pios/boot")];
        let parts = components(name.as_bytes()).unwrap();
        let found = find(root, &dirs, &parts)?;
        Ok(std::fs::read_to_string(found.path).unwrap())
    }

    #[test]
    fn earlier_folders_override_later_ones() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "cmdline.txt").unwrap(), "n1 cmdline");
        assert_eq!(read(&root, "start4.elf").unwrap(), "firmware");
        assert_eq!(read(&root, "nothing"), Err(LookupError::NotFound));
        let plain = find(&root, &[PathBuf::new()], &components(b"os/pios/boot/cmdline.txt").unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(plain.path).unwrap(), "shared cmdline");
    }

    #[test]
    fn case_falls_back_per_component() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "overlays/vc4-kms-v3d.dtbo").unwrap(), "overlay");
        assert_eq!(read(&root, "START4.ELF").unwrap(), "firmware");
    }

    #[test]
    fn symlinks_may_stay_inside_but_not_leave() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "linked.elf").unwrap(), "firmware");
        assert_eq!(read(&root, "escape"), Err(LookupError::Denied));
    }

    #[test]
    fn only_regular_files_are_served() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "overlays"), Err(LookupError::NotFound));
        // Opening a FIFO for reading would block until a writer came; it must simply not be found.
        assert_eq!(read(&root, "fifo"), Err(LookupError::NotFound));
        assert_eq!(find(&root, &[PathBuf::new()], &[]).map(|f| f.path), Err(LookupError::NotFound));
    }
}
