//! Finding a requested file on disk, for every server that serves the lab tree (TFTP, HTTP):
//! each candidate folder in turn, each component matched exactly or, failing that, without
//! regard to case; the result must be a regular file reached without leaving the served root.
//! Not for deciding which folders a client may see (that is the caller's routing) nor for
//! making names safe (`names.rs` does that first).
//!
//! Containment is enforced by the open itself, not by a check before it: every open is relative
//! to a descriptor of the root with `openat2(RESOLVE_BENEATH)`, so a folder swapped for a
//! symlink between the case lookup and the open cannot move the open outside (a check of the
//! resolved path followed by an open by name could be raced, issue 12). Where the kernel lacks
//! `openat2` (before Linux 5.6, or a seccomp filter answering ENOSYS), the same rules are kept
//! by walking one component at a time with `O_NOFOLLOW`, resolving symlinks ourselves against
//! the descriptors already held. Symlinks inside the root are followed; absolute ones and ones
//! that climb out are refused, whatever lies behind them, so a link out tells nothing of which
//! names exist there.
//!
//! Blocking filesystem calls; servers run this on the blocking pool.

use super::names::pick_name;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A file found for a request.
#[derive(Debug)]
pub struct Found {
    /// Its real path (symlinks resolved), as the kernel names the open file.
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

/// How a path below the root descriptor is opened: `open_beneath` (the kernel's scoped lookup,
/// else the walk) in service, either one alone in tests.
type Opener = fn(BorrowedFd<'_>, &Path, OFlag) -> nix::Result<OwnedFd>;

static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Open `rel` below `root` with `flags`, never resolving to anything outside it.
fn open_beneath(root: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match kernel_beneath(root, rel, flags) {
            Err(Errno::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            other => return other,
        }
    }
    walk_beneath(root, rel, flags)
}

fn dot_if_empty(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() { Path::new(".") } else { rel }
}

/// `openat2` with `RESOLVE_BENEATH` (absolute symlinks and climbs above the root fail with
/// EXDEV, and the kernel checks the result is still under the root) and
/// `RESOLVE_NO_MAGICLINKS` (no `/proc/*/fd` style jumps).
fn kernel_beneath(root: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // EAGAIN: a rename elsewhere raced a `..` in a symlink; the kernel asks for a retry.
    let mut result = Err(Errno::EAGAIN);
    for _ in 0..8 {
        result = openat2(root, dot_if_empty(rel), how);
        if !matches!(result, Err(Errno::EAGAIN)) {
            break;
        }
    }
    result
}

/// Symlinks followed in one lookup before giving up, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// The same rules as [`kernel_beneath`] by hand: each component opened `O_PATH | O_NOFOLLOW`
/// in the folder descriptor reached so far, symlink targets spliced in and walked the same
/// way, `..` taken back along the descriptors held (never above the root).
fn walk_beneath(root: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    fn parts(path: &Path) -> nix::Result<Vec<OsString>> {
        path.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Ok(n.to_os_string())),
                Component::ParentDir => Some(Ok(OsString::from(".."))),
                Component::CurDir => None,
                Component::RootDir | Component::Prefix(_) => Some(Err(Errno::EXDEV)),
            })
            .collect()
    }
    let mut todo: VecDeque<OsString> = parts(rel)?.into();
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        let here = held.last().map_or(root, |fd| fd.as_fd());
        if name == ".." {
            held.pop().ok_or(Errno::EXDEV)?;
            continue;
        }
        let fd = openat(here, name.as_os_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
        let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::ELOOP);
            }
            let target = readlinkat(&fd, "")?;
            for part in parts(Path::new(&target))?.into_iter().rev() {
                todo.push_front(part);
            }
            continue;
        }
        if todo.is_empty() {
            // Reopened by name in the same folder descriptor: if it became a symlink since,
            // O_NOFOLLOW fails rather than follow it.
            return openat(here, name.as_os_str(), flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty());
        }
        if kind != SFlag::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        held.push(fd);
    }
    // Empty, or ended on `..`: the folder reached itself.
    openat(held.last().map_or(root, |fd| fd.as_fd()), ".", flags | OFlag::O_CLOEXEC, Mode::empty())
}

/// An error of an open below the root, as the client will hear it.
fn refusal(e: Errno) -> LookupError {
    match e {
        // EXDEV: a symlink leads out (or is absolute).
        Errno::EXDEV | Errno::EACCES | Errno::EPERM => LookupError::Denied,
        _ => LookupError::NotFound,
    }
}

/// The names in the folder `rel` below the root.
fn entries(root: BorrowedFd<'_>, rel: &Path, opener: Opener) -> Result<Vec<String>, LookupError> {
    let fd = opener(root, rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(refusal)?;
    let mut dir = nix::dir::Dir::from_fd(fd).map_err(refusal)?;
    Ok(dir
        .iter()
        .filter_map(|e| std::str::from_utf8(e.ok()?.file_name().to_bytes()).ok().map(str::to_string))
        .collect())
}

/// Open without side effects whatever the path turns out to be: O_NONBLOCK so a FIFO in the
/// tree cannot hang the blocking pool waiting for a writer, O_NOCTTY so a terminal device
/// cannot become ours. Neither changes how a regular file reads.
const READ_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_NONBLOCK).union(OFlag::O_NOCTTY);

/// `rest` in the folder `dir` below the root.
fn find_in(
    root_fd: BorrowedFd<'_>,
    root: &Path,
    dir: &Path,
    rest: &[String],
    opener: Opener,
) -> Result<Found, LookupError> {
    let mut rel = dir.to_path_buf();
    for component in rest {
        let exact = rel.join(component);
        rel = match opener(root_fd, &exact, OFlag::O_PATH) {
            Ok(_) => exact,
            Err(Errno::ENOENT) => {
                let names = entries(root_fd, &rel, opener)?;
                let name = pick_name(component, names.iter().map(String::as_str)).ok_or(LookupError::NotFound)?;
                rel.join(name)
            }
            Err(e) => return Err(refusal(e)),
        };
    }
    let file = File::from(opener(root_fd, &rel, READ_FLAGS).map_err(refusal)?);
    let metadata = file.metadata().map_err(|_| LookupError::NotFound)?;
    if !metadata.is_file() {
        return Err(LookupError::NotFound);
    }
    // What the kernel calls the open file; a file moved out of the root since is not served.
    let path = match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(real) if real.starts_with(root) => real,
        Ok(_) => return Err(LookupError::Denied),
        Err(_) => root.join(&rel),
    };
    Ok(Found { path, file, metadata })
}

/// Find `rest` (safe components, from [`super::names::components`]) in the first of `dirs`
/// (relative to `root`, which must be canonical) that holds it as a regular file.
pub fn find(root: &Path, dirs: &[PathBuf], rest: &[String]) -> Result<Found, LookupError> {
    find_with(root, dirs, rest, open_beneath)
}

fn find_with(root: &Path, dirs: &[PathBuf], rest: &[String], opener: Opener) -> Result<Found, LookupError> {
    let root_fd = open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|_| LookupError::NotFound)?;
    let mut denied = false;
    for dir in dirs {
        match find_in(root_fd.as_fd(), root, dir, rest, opener) {
            Ok(found) => return Ok(found),
            Err(LookupError::Denied) => denied = true,
            Err(LookupError::NotFound) => {}
        }
    }
    Err(if denied { LookupError::Denied } else { LookupError::NotFound })
}

#[cfg(test)]
mod tests {
    use super::super::names::components;
    use super::*;
    use std::os::unix::fs::symlink;

    const OPENERS: [(&str, Opener); 2] = [("openat2", kernel_beneath), ("walk", walk_beneath)];

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lab");
        for (path, text) in [
            ("clients/n1/cmdline.txt", "n1 cmdline"),
            ("os/pios/boot/cmdline.txt", "shared cmdline"),
            ("os/pios/boot/start4.elf", "firmware"),
            ("os/pios/boot/Overlays/Vc4-Kms-V3d.dtbo", "overlay"),
            ("../out/shadow", "outside"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        symlink(dir.path().join("secret"), root.join("clients/n1/escape")).unwrap();
        symlink("../../../secret", root.join("clients/n1/climb")).unwrap();
        symlink(dir.path().join("out"), root.join("clients/n1/link")).unwrap();
        symlink("../../os/pios/boot/start4.elf", root.join("clients/n1/linked.elf")).unwrap();
        symlink("../../os/pios/boot/Overlays", root.join("clients/n1/overlays-link")).unwrap();
        symlink("loop", root.join("clients/n1/loop")).unwrap();
        nix::unistd::mkfifo(&root.join("clients/n1/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let root = root.canonicalize().unwrap();
        (dir, root)
    }

    /// The way a client with its own folder before the shared boot folder looks a name up.
    fn read_with(root: &Path, name: &str, opener: Opener) -> Result<String, LookupError> {
        let dirs = [PathBuf::from("clients/n1"), PathBuf::from("os/pios/boot")];
        let parts = components(name.as_bytes()).unwrap();
        let found = find_with(root, &dirs, &parts, opener)?;
        assert!(found.path.starts_with(root), "{}", found.path.display());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &found.file, &mut text).unwrap();
        assert_eq!(std::fs::read_to_string(&found.path).unwrap(), text, "the path is the file");
        Ok(text)
    }

    /// Every case, with both ways of opening.
    fn check(name: &str, expected: Result<&str, LookupError>) {
        let (_keep, root) = tree();
        for (how, opener) in OPENERS {
            assert_eq!(read_with(&root, name, opener).as_deref(), expected.as_ref().map(|s| *s), "{name} by {how}");
        }
    }

    #[test]
    fn earlier_folders_override_later_ones() {
        check("cmdline.txt", Ok("n1 cmdline"));
        check("start4.elf", Ok("firmware"));
        check("nothing", Err(LookupError::NotFound));
        let (_keep, root) = tree();
        let plain = find(&root, &[PathBuf::new()], &components(b"os/pios/boot/cmdline.txt").unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(plain.path).unwrap(), "shared cmdline");
    }

    #[test]
    fn case_falls_back_per_component() {
        check("overlays/vc4-kms-v3d.dtbo", Ok("overlay"));
        check("START4.ELF", Ok("firmware"));
        // Through a symlinked folder inside the root too.
        check("overlays-link/VC4-KMS-V3D.DTBO", Ok("overlay"));
    }

    #[test]
    fn symlinks_may_stay_inside_but_not_leave() {
        check("linked.elf", Ok("firmware"));
        check("escape", Err(LookupError::Denied));
        check("climb", Err(LookupError::Denied));
        check("loop", Err(LookupError::NotFound));
    }

    #[test]
    fn a_link_out_tells_nothing_of_what_is_behind_it() {
        for name in ["link/shadow", "link/missing", "LINK/shadow", "link/SHADOW", "link"] {
            check(name, Err(LookupError::Denied));
        }
    }

    #[test]
    fn only_regular_files_are_served() {
        check("overlays", Err(LookupError::NotFound));
        // Opening a FIFO for reading would block until a writer came; it must simply not be found.
        check("fifo", Err(LookupError::NotFound));
        let (_keep, root) = tree();
        assert_eq!(find(&root, &[PathBuf::new()], &[]).map(|f| f.path), Err(LookupError::NotFound));
    }

    /// A folder swapped for a symlink out while lookups run (issue 12: checking the resolved
    /// path and then opening by name served the outside file about one time in six).
    #[test]
    fn a_folder_swapped_for_a_link_out_never_opens_outside() {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        let (keep, root) = tree();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/shadow"), "inside").unwrap();
        symlink(keep.path().join("out"), root.join("dl")).unwrap();
        for (how, opener) in OPENERS {
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let (d, dl) = (root.join("d"), root.join("dl"));
            let swapper = std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !flag.load(Ordering::Relaxed) || swaps % 2 == 1 {
                    renameat2(AT_FDCWD, &d, AT_FDCWD, &dl, RenameFlags::RENAME_EXCHANGE).unwrap();
                    swaps += 1;
                }
                swaps
            });
            let parts = components(b"d/shadow").unwrap();
            let (mut inside, mut outside, mut refused) = (0, 0, 0);
            let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
            for _ in 0..2_000_000 {
                if std::time::Instant::now() > until {
                    break;
                }
                match find_with(&root, &[PathBuf::new()], &parts, opener) {
                    Ok(found) => {
                        let mut text = String::new();
                        std::io::Read::read_to_string(&mut &found.file, &mut text).unwrap();
                        if text == "inside" { inside += 1 } else { outside += 1 }
                    }
                    Err(_) => refused += 1,
                }
            }
            stop.store(true, Ordering::Relaxed);
            let swaps = swapper.join().unwrap();
            assert_eq!(
                outside, 0,
                "{how}: {outside} opens outside ({inside} inside, {refused} refused, {swaps} swaps)"
            );
            assert!(inside > 0 && refused > 0, "{how}: the race never ran both ways");
        }
    }
}
