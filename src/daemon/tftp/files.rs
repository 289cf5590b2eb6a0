//! Following a [`Route`] on disk: each directory in turn, each component matched exactly or,
//! failing that, without regard to case; the result must be a regular file whose real path
//! (symlinks resolved) is still inside the served root.
//!
//! Blocking filesystem calls; the server runs this on the blocking pool.

use super::lookup::{Route, pick_name};
use std::fs::{File, Metadata};
use std::io;
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

/// Find the file `route` names under `root` (already canonical).
pub fn find(root: &Path, route: &Route) -> Result<Found, LookupError> {
    let mut denied = false;
    for dir in route.dirs {
        let mut path = root.join(dir);
        let mut ok = true;
        for component in route.rest {
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
        match File::open(&real) {
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
    use super::super::lookup::{ClientRoute, Routes, components};
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
            ("os/pios/boot/bootcode.bin", "pi3"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        symlink(dir.path().join("secret"), root.join("clients/n1/escape")).unwrap();
        symlink("../../os/pios/boot/start4.elf", root.join("clients/n1/linked.elf")).unwrap();
        let root = root.canonicalize().unwrap();
        (dir, root)
    }

    fn routes() -> Routes {
        Routes {
            clients: vec![ClientRoute {
                name: "n1".into(),
                prefixes: vec![vec!["d9780558".into()]],
                dirs: vec!["clients/n1".into(), "os/pios/boot".into()],
            }],
            root_dirs: vec!["os/pios/boot".into()],
        }
    }

    fn read(root: &Path, name: &str) -> Result<String, LookupError> {
        let r = routes();
        let parts = components(name.as_bytes()).unwrap();
        let found = find(root, &r.route(&parts))?;
        Ok(std::fs::read_to_string(found.path).unwrap())
    }

    #[test]
    fn client_files_override_shared_ones() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "d9780558/cmdline.txt").unwrap(), "n1 cmdline");
        assert_eq!(read(&root, "d9780558/start4.elf").unwrap(), "firmware");
        assert_eq!(read(&root, "bootcode.bin").unwrap(), "pi3");
        assert_eq!(read(&root, "d9780558/nothing"), Err(LookupError::NotFound));
    }

    #[test]
    fn case_falls_back_per_component() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "d9780558/overlays/vc4-kms-v3d.dtbo").unwrap(), "overlay");
        assert_eq!(read(&root, "D9780558/START4.ELF").unwrap(), "firmware");
    }

    #[test]
    fn symlinks_may_stay_inside_but_not_leave() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "d9780558/linked.elf").unwrap(), "firmware");
        assert_eq!(read(&root, "d9780558/escape"), Err(LookupError::Denied));
    }

    #[test]
    fn directories_are_not_files() {
        let (_keep, root) = tree();
        assert_eq!(read(&root, "d9780558/overlays"), Err(LookupError::NotFound));
    }
}
