//! Temporary names that say which run made them, and the clearing of those a dead run left.
//!
//! Outputs are written beside their target under a temporary name and renamed into place when
//! complete (`output.rs`, `lab/emit.rs`, `extract --dir`). A run killed before the rename
//! leaves the temporary behind; each name carries its maker's pid and that process's start time
//! (`/proc/<pid>/stat` field 22), so a later run can tell a dead run's leftover (pid gone, or
//! reused by a process started at another time) from a live run's work in progress, and remove
//! only the former. A pid alone could not tell a reused pid from the maker.

use std::path::{Path, PathBuf};

/// The token naming the run that owns a temporary: `<pid>-<start time>`.
pub fn token() -> String {
    let pid = std::process::id();
    match start_time(pid) {
        Some(start) => format!("{pid}-{start}"),
        None => pid.to_string(),
    }
}

/// When process `pid` started, in clock ticks since boot; `None` if there is no such process
/// (or no /proc to ask).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the run named by `token` has ended. Without /proc nothing can be told, so nothing
/// counts as dead; a token that does not parse is not ours.
pub fn is_dead(token: &str) -> bool {
    if start_time(std::process::id()).is_none() {
        return false;
    }
    let (pid, start) = match token.split_once('-') {
        Some((pid, start)) => (pid, Some(start)),
        // Older names held the pid alone.
        None => (token, None),
    };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    if pid == 0 || start.is_some_and(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    match (start_time(pid), start) {
        (None, _) => true,
        (Some(now), Some(then)) => then.parse::<u64>().ok() != Some(now),
        (Some(_), None) => false,
    }
}

/// The owner token of a file temporary `.<name>.<token>.<random>.part` (`output.rs`).
fn part_owner(name: &str) -> Option<&str> {
    let stem = name.strip_prefix('.')?.strip_suffix(".part")?;
    let mut pieces = stem.rsplitn(3, '.');
    let _random = pieces.next()?;
    let token = pieces.next()?;
    pieces.next().filter(|target| !target.is_empty())?;
    Some(token)
}

/// A folder temporary `.<name>.partial-<token>` or `.<name>.old-<token>` (`emit.rs`,
/// `extract --dir`): (target name, is the moved-aside old one, token).
fn folder_owner(name: &str) -> Option<(&str, bool, &str)> {
    let stem = name.strip_prefix('.')?;
    if let Some((target, token)) = stem.rsplit_once(".partial-") {
        return Some((target, false, token));
    }
    let (target, token) = stem.rsplit_once(".old-")?;
    Some((target, true, token))
}

/// The name for a folder being written to replace `<dir>/<target>`.
pub fn partial_folder(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!(".{target}.partial-{}", token()))
}

/// The name for the previous `<dir>/<target>` while the new one is moved in.
pub fn old_folder(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!(".{target}.old-{}", token()))
}

/// The prefix a file temporary for `<target>` takes (tempfile adds the random part and
/// `.part`).
pub fn part_prefix(target: &str) -> String {
    format!(".{target}.{}.", token())
}

/// Remove from `dir` what dead runs left: file temporaries of any target, and the folder
/// temporaries of `folders_of` (if given). A dead run's moved-aside old folder whose target is
/// missing (killed between the two renames) is put back rather than removed, so the last good
/// output is not lost. Returns what was removed or put back; failures are skipped (the next
/// run tries again), since clearing up must never stop the work itself.
pub fn clear_dead(dir: &Path, folders_of: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_file() {
            if part_owner(name).is_some_and(is_dead) && std::fs::remove_file(&path).is_ok() {
                tracing::info!("removed {}, left by a run that was stopped", path.display());
                done.push(path);
            }
            continue;
        }
        let Some((target, is_old, owner)) = folder_owner(name) else { continue };
        if !kind.is_dir() || Some(target) != folders_of || !is_dead(owner) {
            continue;
        }
        let dest = dir.join(target);
        if is_old && dest.symlink_metadata().is_err() && std::fs::rename(&path, &dest).is_ok() {
            tracing::info!(
                "put back {} from {}, moved aside by a run that was stopped",
                dest.display(),
                path.display()
            );
            done.push(path);
        } else if std::fs::remove_dir_all(&path).is_ok() {
            tracing::info!("removed {}, left by a run that was stopped", path.display());
            done.push(path);
        }
    }
    done
}

/// The token of a process that has ended (its pid not reused yet, or reused at another start
/// time), for tests of what callers clear.
#[cfg(test)]
pub(crate) fn dead_token() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    let start = start_time(pid);
    child.wait().unwrap();
    match start {
        Some(s) => format!("{pid}-{s}"),
        None => format!("{pid}-1"),
    }
}

/// A process that runs until killed, and its token, for tests that need another live run.
#[cfg(test)]
pub(crate) fn live_process() -> (std::process::Child, String) {
    let child = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let token = format!("{}-{}", child.id(), start_time(child.id()).expect("its /proc/<pid>/stat"));
    (child, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_owner() {
        assert_eq!(part_owner(".os.img.123-456.Ab3xYz.part"), Some("123-456"));
        assert_eq!(part_owner(".x.part"), None);
        assert_eq!(part_owner("os.img.part"), None);
        assert_eq!(folder_owner(".lab.partial-12-34"), Some(("lab", false, "12-34")));
        assert_eq!(folder_owner(".lab.old-12"), Some(("lab", true, "12")));
        assert_eq!(folder_owner(".lab"), None);
    }

    #[test]
    fn only_ended_runs_count_as_dead() {
        assert!(!is_dead(&token()), "this run is alive");
        assert!(is_dead(&dead_token()));
        let me = std::process::id();
        // Our pid with another start time: the pid was reused, its maker is gone.
        assert!(is_dead(&format!("{me}-1")));
        assert!(!is_dead(&me.to_string()));
        for junk in ["", "abc", "0", "12-", "12-x"] {
            assert!(!is_dead(junk), "{junk:?}");
        }
    }

    #[test]
    fn dead_runs_leftovers_go_live_ones_stay_and_an_old_output_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut other, other_live) = live_process();
        let (live, dead) = (token(), dead_token());
        let file = |name: String| {
            std::fs::write(d.join(&name), b"half").unwrap();
            d.join(name)
        };
        let folder = |name: String| {
            std::fs::create_dir_all(d.join(&name).join("sub")).unwrap();
            std::fs::write(d.join(&name).join("sub/f"), b"x").unwrap();
            d.join(name)
        };
        let dead_part = file(format!(".os.img.{dead}.Q1w2E3.part"));
        let live_part = file(format!(".os.img.{live}.Q1w2E3.part"));
        let foreign = file("download.iso.part".into());
        let dead_partial = folder(format!(".lab.partial-{dead}"));
        let live_partial = folder(format!(".lab.partial-{live}"));
        let other_partial = folder(format!(".lab.partial-{other_live}"));
        let other_target = folder(format!(".boot.partial-{dead}"));
        let dead_old = folder(format!(".lab.old-{dead}"));
        let done = clear_dead(d, Some("lab"));
        assert_eq!(done.len(), 3, "{done:?}");
        assert!(!dead_part.exists() && !dead_partial.exists() && !dead_old.exists());
        assert!(live_part.exists() && live_partial.exists() && foreign.exists() && other_target.exists());
        assert!(other_partial.exists(), "another live run's folder was removed");
        other.kill().unwrap();
        other.wait().unwrap();
        // The lab was missing, so the dead run's moved-aside lab is the lab again.
        assert_eq!(std::fs::read(d.join("lab/sub/f")).unwrap(), b"x");
        // With a lab in place, a dead run's old one is just removed.
        let dead_old = folder(format!(".lab.old-{dead}"));
        clear_dead(d, Some("lab"));
        assert!(!dead_old.exists() && d.join("lab/sub/f").exists());
    }
}
