//! dpkg's status file (`/var/lib/dpkg/status`): what a system has installed, as the dependency
//! closure needs it: each package's name, version, architecture, Multi-Arch and Provides, and
//! whether it is really installed (the third word of `Status`). Pure: text in.

use super::deb822::{self, Deb822Error};
use super::packages::{BinaryPackage, FieldError};

/// One status entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    pub package: BinaryPackage,
    /// The package's state: `installed`, `config-files`, `half-installed`, …
    pub state: String,
}

impl StatusEntry {
    /// Installed and configured as far as dependencies go: dpkg counts a package awaiting or
    /// pending triggers as satisfying dependencies too.
    pub fn is_installed(&self) -> bool {
        matches!(self.state.as_str(), "installed" | "triggers-awaited" | "triggers-pending")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("{0}")]
    Syntax(#[from] Deb822Error),
    #[error("the entry at line {line} ({package}): {error}")]
    Entry { line: usize, package: String, error: FieldError },
}

/// The entries of a status file. Entries that record no version (packages dpkg knows only as
/// not installed) are skipped: they satisfy nothing.
pub fn parse(bytes: &[u8]) -> Result<Vec<StatusEntry>, StatusError> {
    let mut out = Vec::new();
    for p in deb822::parse(bytes)? {
        let failed = |error| StatusError::Entry {
            line: p.line,
            package: p.get("Package").unwrap_or("no name").to_string(),
            error,
        };
        let status = p.get("Status").ok_or_else(|| failed(FieldError::Missing("Status")))?;
        let words: Vec<&str> = status.split_whitespace().collect();
        let [_want, _flag, state] = words[..] else {
            return Err(failed(FieldError::Other(format!("`Status: {status}` is not `want flag state`"))));
        };
        if p.get("Version").is_none() && state == "not-installed" {
            continue;
        }
        let package = BinaryPackage::from_paragraph(&p).map_err(failed)?;
        out.push(StatusEntry { package, state: state.to_string() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\n\
Architecture: arm64\nMulti-Arch: same\nVersion: 2.36-9+rpt2+deb12u4\nProvides: libc6-arm64\nDepends: libgcc-s1\n\
Description: GNU C Library\n shared libraries\n\n\
Package: old\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1.0\n\n\
Package: gone\nStatus: purge ok not-installed\nArchitecture: all\n\n\
Package: trig\nStatus: install ok triggers-pending\nArchitecture: arm64\nVersion: 3\n";

    #[test]
    fn reads_installed_packages_and_states() {
        let entries = parse(STATUS.as_bytes()).unwrap();
        let names: Vec<(&str, bool)> = entries.iter().map(|e| (e.package.name.as_str(), e.is_installed())).collect();
        assert_eq!(names, [("libc6", true), ("old", false), ("trig", true)]);
        assert_eq!(entries[0].package.provides[0].name, "libc6-arm64");
        assert_eq!(entries[0].package.version.to_string(), "2.36-9+rpt2+deb12u4");
    }

    #[test]
    fn damaged_entries_name_the_package() {
        let err = parse(b"Package: a\nStatus: install ok\nVersion: 1\nArchitecture: all\n").unwrap_err();
        assert_eq!(err.to_string(), "the entry at line 1 (a): `Status: install ok` is not `want flag state`");
        let err = parse(b"Package: a\nStatus: install ok installed\nArchitecture: all\n").unwrap_err();
        assert!(err.to_string().contains("no `Version` field"), "{err}");
        assert!(parse(b"Package: a\nVersion: 1\n").unwrap_err().to_string().contains("no `Status`"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn damaged_status_never_panics(cuts in proptest::collection::vec((any::<prop::sample::Index>(), "[ -~\\n]{0,4}"), 1..5)) {
                let mut text = STATUS.to_string();
                for (at, insert) in cuts {
                    text.insert_str(at.index(text.len() + 1), &insert);
                }
                let _ = parse(text.as_bytes());
            }
        }
    }
}
