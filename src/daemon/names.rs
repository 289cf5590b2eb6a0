//! Requested file names made safe, for every server that serves the lab tree (TFTP, HTTP):
//! split into components, with `..`, control characters and drive letters refused rather than
//! resolved, and the case-insensitive choice among directory entries. Pure: it looks at no
//! file; `files.rs` walks the filesystem with what this returns.

/// Why a requested name is refused before any file is looked at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is not UTF-8")]
    NotUtf8,
    #[error("the name holds a control character")]
    Control,
    #[error("the name climbs out of the root with `..`")]
    Traversal,
    #[error("the name has a drive letter")]
    Drive,
    #[error("the name is empty")]
    Empty,
}

/// The path components of a requested name. `\` counts as `/` (Windows-built NBPs ask that
/// way), leading `/`, empty and `.` components are dropped, and `..` is refused outright rather
/// than resolved, so no name can leave its root.
pub fn components(filename: &[u8]) -> Result<Vec<String>, NameError> {
    let name = std::str::from_utf8(filename).map_err(|_| NameError::NotUtf8)?;
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    let name = name.replace('\\', "/");
    let parts: Vec<String> = name.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    if parts.iter().any(|c| c == "..") {
        return Err(NameError::Traversal);
    }
    if parts.first().is_some_and(|c| c.len() == 2 && c.ends_with(':')) {
        return Err(NameError::Drive);
    }
    if parts.is_empty() {
        return Err(NameError::Empty);
    }
    Ok(parts)
}

/// Pick the directory entry for `wanted`: the exact name, else the first (in byte order) that
/// matches without regard to case.
pub fn pick_name<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut fallback: Option<&str> = None;
    for name in names {
        if name == wanted {
            return Some(name);
        }
        if name.eq_ignore_ascii_case(wanted) && fallback.is_none_or(|f| name < f) {
            fallback = Some(name);
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Vec<String> {
        components(s.as_bytes()).unwrap()
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(parts("d9780558/start4.elf"), ["d9780558", "start4.elf"]);
        assert_eq!(parts("/boot//./grub\\grub.cfg"), ["boot", "grub", "grub.cfg"]);
        assert_eq!(parts("pxelinux.cfg/01-52-54-00-77-00-10"), ["pxelinux.cfg", "01-52-54-00-77-00-10"]);
    }

    #[test]
    fn escapes_and_junk_are_refused() {
        for (name, err) in [
            (&b"../etc/passwd"[..], NameError::Traversal),
            (b"a/../../etc/passwd", NameError::Traversal),
            (b"..\\..\\windows", NameError::Traversal),
            (b"a/b/..", NameError::Traversal),
            (b"C:\\boot.ini", NameError::Drive),
            (b"a\x01b", NameError::Control),
            (b"a\nb", NameError::Control),
            (b"\xff\xfe", NameError::NotUtf8),
            (b"", NameError::Empty),
            (b"/", NameError::Empty),
            (b"./.", NameError::Empty),
        ] {
            assert_eq!(components(name), Err(err), "{:?}", String::from_utf8_lossy(name));
        }
        // Dots inside names are fine.
        assert_eq!(parts("..hidden/a..b"), ["..hidden", "a..b"]);
    }

    #[test]
    fn case_insensitive_pick_prefers_exact() {
        assert_eq!(pick_name("start4.elf", ["Start4.elf", "start4.elf"]), Some("start4.elf"));
        assert_eq!(pick_name("start4.elf", ["START4.ELF", "Start4.elf"]), Some("START4.ELF"));
        assert_eq!(pick_name("config.txt", ["cmdline.txt"]), None);
    }
}
