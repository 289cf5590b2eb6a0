//! Which folders a TFTP request is looked up in: its name, already made safe by
//! [`crate::daemon::names::components`], is routed by its client prefix (`<serial>/`,
//! `<mac-with-dashes>/` or a fixed TFTP_PREFIX_STR) to that client's ordered list of
//! directories, or, with no known prefix, to the root directories. Pure; the filesystem walk
//! that follows the route lives in `daemon/files.rs`.

use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::names::components;

    fn parts(s: &str) -> Vec<String> {
        components(s.as_bytes()).unwrap()
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
}
