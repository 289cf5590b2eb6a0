//! Which file a request names: the requested name made safe, then routed by its client prefix
//! (`<serial>/`, `<mac-with-dashes>/` or a fixed TFTP_PREFIX_STR) to that client's ordered list
//! of directories, or, with no known prefix, to the root directories. Pure; the filesystem
//! walk that follows the route lives in `files.rs`.

use std::path::PathBuf;

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

/// One client's prefixes and where its files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRoute {
    pub name: String,
    /// Each prefix as path components: `["d9780558"]`, `["dc-a6-32-01-36-c2"]`, `["lab", "n1"]`.
    pub prefixes: Vec<Vec<String>>,
    /// Searched in order, relative to the served root.
    pub dirs: Vec<PathBuf>,
}

/// Routing for a served tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub clients: Vec<ClientRoute>,
    /// For names without a client prefix (the Pi 3 ROM's `bootcode.bin`, or everything when
    /// serving a plain directory).
    pub root_dirs: Vec<PathBuf>,
}

/// Where to look for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub client: Option<&'a str>,
    pub dirs: &'a [PathBuf],
    /// The name inside each of `dirs`.
    pub rest: &'a [String],
}

impl Routes {
    /// Serve one directory as it is.
    pub fn plain() -> Self {
        Routes { clients: Vec::new(), root_dirs: vec![PathBuf::new()] }
    }

    /// Route `parts`: the longest matching client prefix wins (prefixes compare without case,
    /// as the bootloader writes them in lower case but people type them in upper).
    pub fn route<'a>(&'a self, parts: &'a [String]) -> Route<'a> {
        let mut best: Option<(&ClientRoute, usize)> = None;
        for client in &self.clients {
            for prefix in &client.prefixes {
                let matches = !prefix.is_empty()
                    && prefix.len() < parts.len()
                    && prefix.iter().zip(parts).all(|(a, b)| a.eq_ignore_ascii_case(b));
                if matches && best.is_none_or(|(_, len)| prefix.len() > len) {
                    best = Some((client, prefix.len()));
                }
            }
        }
        match best {
            Some((client, len)) => Route { client: Some(&client.name), dirs: &client.dirs, rest: &parts[len..] },
            None => Route { client: None, dirs: &self.root_dirs, rest: parts },
        }
    }
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

    fn routes() -> Routes {
        let client = |name: &str, prefixes: &[&[&str]]| ClientRoute {
            name: name.into(),
            prefixes: prefixes.iter().map(|p| p.iter().map(|s| s.to_string()).collect()).collect(),
            dirs: vec![PathBuf::from(format!("clients/{name}")), PathBuf::from("os/pios/boot")],
        };
        Routes {
            clients: vec![
                client("n1", &[&["d9780558"], &["dc-a6-32-01-36-c2"]]),
                client("n2", &[&["lab"], &["lab", "n2"]]),
                client("n3", &[&["lab", "n3"]]),
            ],
            root_dirs: vec![PathBuf::from("os/pios/boot")],
        }
    }

    #[test]
    fn prefixes_route_to_their_client() {
        let r = routes();
        let p = parts("d9780558/start4.elf");
        let route = r.route(&p);
        assert_eq!((route.client, route.rest), (Some("n1"), &p[1..]));
        assert_eq!(route.dirs[0], PathBuf::from("clients/n1"));
        let p = parts("DC-A6-32-01-36-C2/config.txt");
        assert_eq!(r.route(&p).client, Some("n1"));
        let p = parts("lab/n3/cmdline.txt");
        assert_eq!(r.route(&p).client, Some("n3"));
        // Longest prefix wins: lab/n2 over lab.
        let p = parts("lab/n2/cmdline.txt");
        let route = r.route(&p);
        assert_eq!((route.client, route.rest.len()), (Some("n2"), 1));
    }

    #[test]
    fn unknown_prefixes_and_bare_names_go_to_the_root() {
        let r = routes();
        for name in ["bootcode.bin", "ffffffff/start4.elf", "d9780558"] {
            let p = parts(name);
            let route = r.route(&p);
            assert_eq!(route.client, None, "{name}");
            assert_eq!(route.rest, &p[..]);
            assert_eq!(route.dirs, &[PathBuf::from("os/pios/boot")]);
        }
    }

    #[test]
    fn case_insensitive_pick_prefers_exact() {
        assert_eq!(pick_name("start4.elf", ["Start4.elf", "start4.elf"]), Some("start4.elf"));
        assert_eq!(pick_name("start4.elf", ["START4.ELF", "Start4.elf"]), Some("START4.ELF"));
        assert_eq!(pick_name("config.txt", ["cmdline.txt"]), None);
    }
}
