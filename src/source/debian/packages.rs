//! Binary package records: the control fields a `.deb`'s `control` file, a `Packages` index
//! stanza and a dpkg status entry share ([`BinaryPackage`]), a Packages index as a searchable
//! set of [`IndexEntry`]s (each with its file name, size and sha256 in the archive), and the
//! choice of the version to use ([`Index::pick`]). Pure: text in.

use super::deb822::{self, Deb822Error, Paragraph};
use super::relation::{self, Alternatives, Relation, RelationError};
use super::version::{Version, VersionError};
use std::collections::BTreeMap;

/// How a package behaves with several architectures installed (the `Multi-Arch` field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MultiArch {
    #[default]
    No,
    /// Co-installable with itself for other architectures.
    Same,
    /// Satisfies dependencies of packages of any architecture.
    Foreign,
    /// Satisfies `name:any` dependencies from any architecture.
    Allowed,
}

impl MultiArch {
    fn parse(value: Option<&str>) -> Result<MultiArch, String> {
        match value.map(str::trim) {
            None | Some("no") => Ok(MultiArch::No),
            Some("same") => Ok(MultiArch::Same),
            Some("foreign") => Ok(MultiArch::Foreign),
            Some("allowed") => Ok(MultiArch::Allowed),
            Some(other) => Err(format!("`Multi-Arch: {other}` is not no, same, foreign or allowed")),
        }
    }
}

/// The fields of a binary package Bramble uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryPackage {
    pub name: String,
    pub version: Version,
    /// `amd64`, `arm64`, … or `all`.
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub depends: Vec<Alternatives>,
    pub pre_depends: Vec<Alternatives>,
    pub provides: Vec<Relation>,
    pub essential: bool,
    pub priority: Option<String>,
    /// The source package's name (`Source`, without its version), when it differs.
    pub source: Option<String>,
}

/// A problem with one field of one stanza.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("it has no `{0}` field")]
    Missing(&'static str),
    #[error("`Package: {0}` is not a package name")]
    Name(String),
    #[error("`Version: {0}`: {1}")]
    Version(String, VersionError),
    #[error("`{0}`: {1}")]
    Relation(&'static str, RelationError),
    #[error("{0}")]
    Other(String),
}

impl BinaryPackage {
    /// Read the fields from a stanza. `Version` and `Architecture` are required.
    pub fn from_paragraph(p: &Paragraph) -> Result<BinaryPackage, FieldError> {
        let name = p.get("Package").ok_or(FieldError::Missing("Package"))?;
        if !relation::valid_package_name(name) {
            return Err(FieldError::Name(name.into()));
        }
        let version = p.get("Version").ok_or(FieldError::Missing("Version"))?;
        let version = version.parse().map_err(|e| FieldError::Version(version.into(), e))?;
        let architecture = p.get("Architecture").ok_or(FieldError::Missing("Architecture"))?;
        Ok(BinaryPackage {
            name: name.into(),
            version,
            architecture: architecture.into(),
            multi_arch: MultiArch::parse(p.get("Multi-Arch")).map_err(FieldError::Other)?,
            depends: relations(p, "Depends")?,
            pre_depends: relations(p, "Pre-Depends")?,
            provides: relation::parse_provides(p.get("Provides").unwrap_or(""))
                .map_err(|e| FieldError::Relation("Provides", e))?,
            essential: p.get("Essential") == Some("yes"),
            priority: p.get("Priority").map(str::to_string),
            source: p.get("Source").and_then(|s| s.split_whitespace().next()).map(str::to_string),
        })
    }

    /// Every dependency dpkg must have satisfied before configuring it: Pre-Depends, then
    /// Depends.
    pub fn all_depends(&self) -> impl Iterator<Item = &Alternatives> {
        self.pre_depends.iter().chain(&self.depends)
    }
}

pub(crate) fn relations(p: &Paragraph, field: &'static str) -> Result<Vec<Alternatives>, FieldError> {
    relation::parse_relations(p.get(field).unwrap_or("")).map_err(|e| FieldError::Relation(field, e))
}

/// One package as an archive's Packages index lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub package: BinaryPackage,
    /// Path from the archive root (`pool/main/s/syslinux/pxelinux_6.04~git20190206.bf6db5b4+dfsg1-3_all.deb`).
    pub filename: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    Syntax(#[from] Deb822Error),
    #[error("the stanza at line {line} ({package}): {error}")]
    Stanza { line: usize, package: String, error: FieldError },
}

impl IndexEntry {
    fn from_paragraph(p: &Paragraph) -> Result<IndexEntry, FieldError> {
        let package = BinaryPackage::from_paragraph(p)?;
        let filename = p.get("Filename").ok_or(FieldError::Missing("Filename"))?;
        // The archive URL is built from it: no way out of the archive, no empty name.
        if filename.is_empty() || filename.starts_with('/') || filename.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(FieldError::Other(format!("`Filename: {filename}` is not a path inside the archive")));
        }
        let size = p.get("Size").ok_or(FieldError::Missing("Size"))?;
        let size = size.parse().map_err(|_| FieldError::Other(format!("`Size: {size}` is not a number")))?;
        let sha256 = p.get("SHA256").ok_or(FieldError::Missing("SHA256"))?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FieldError::Other(format!("`SHA256: {sha256}` is not 64 hex digits")));
        }
        Ok(IndexEntry { package, filename: filename.into(), size, sha256: sha256.to_ascii_lowercase() })
    }
}

/// The packages of one or more Packages indexes, found by name and by what they provide.
#[derive(Clone, Debug, Default)]
pub struct Index {
    entries: Vec<IndexEntry>,
    by_name: BTreeMap<String, Vec<usize>>,
    providers: BTreeMap<String, Vec<usize>>,
}

impl Index {
    /// Parse a (decompressed) Packages file.
    pub fn parse(bytes: &[u8]) -> Result<Index, IndexError> {
        let mut index = Index::default();
        index.add(bytes)?;
        Ok(index)
    }

    /// Add the stanzas of another Packages file (another component or `binary-all`).
    pub fn add(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        for p in deb822::parse(bytes)? {
            let entry = IndexEntry::from_paragraph(&p).map_err(|error| IndexError::Stanza {
                line: p.line,
                package: p.get("Package").unwrap_or("no name").to_string(),
                error,
            })?;
            self.push(entry);
        }
        Ok(())
    }

    pub fn push(&mut self, entry: IndexEntry) {
        let i = self.entries.len();
        self.by_name.entry(entry.package.name.clone()).or_default().push(i);
        for p in &entry.package.provides {
            self.providers.entry(p.name.clone()).or_default().push(i);
        }
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry named `name`, in index order.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a IndexEntry> + 'a {
        let found = self.by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        found.iter().map(|&i| &self.entries[i])
    }

    /// Every entry that provides `name`, with the provision, in index order.
    pub fn providing<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a IndexEntry, &'a Relation)> + 'a {
        let name = name.to_string();
        let found = self.providers.get(&name).map(Vec::as_slice).unwrap_or_default();
        found.iter().filter_map(move |&i| {
            let e = &self.entries[i];
            e.package.provides.iter().find(|p| p.name == name).map(|p| (e, p))
        })
    }

    /// The version of `name` to use on `arch`: the highest among entries built for `arch` or
    /// for `all`. Equal versions prefer `arch`'s build, then the first listed, so the choice
    /// is the same on every run.
    pub fn pick(&self, name: &str, arch: &str) -> Option<&IndexEntry> {
        let mut best: Option<&IndexEntry> = None;
        for e in self.named(name).filter(|e| e.package.architecture == arch || e.package.architecture == "all") {
            let better = match best {
                None => true,
                Some(b) => match e.package.version.cmp(&b.package.version) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => e.package.architecture == arch && b.package.architecture != arch,
                    std::cmp::Ordering::Less => false,
                },
            };
            if better {
                best = Some(e);
            }
        }
        best
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stanza as apt-ftparchive writes one.
    pub(crate) fn stanza(name: &str, version: &str, arch: &str, extra: &str) -> String {
        let sha = crate::digest::sha256_hex(format!("{name}{version}{arch}").as_bytes());
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}Filename: pool/main/{name}_{version}_{arch}.deb\nSize: 1234\nSHA256: {sha}\nDescription: {name}\n multi-line\n .\n description\n\n"
        )
    }

    #[test]
    fn reads_stanzas_with_every_field() {
        let text = stanza(
            "nfs-kernel-server",
            "1:2.6.2-4+deb12u1",
            "arm64",
            "Source: nfs-utils (1:2.6.2-4)\nMulti-Arch: foreign\nPriority: optional\nEssential: yes\n\
             Pre-Depends: init-system-helpers (>= 1.54~)\nDepends: nfs-common (= 1:2.6.2-4+deb12u1),\n ucf, libc6 (>= 2.34) | libc6.1\n\
             Provides: nfs-server, knfsd (= 2)\n",
        );
        let index = Index::parse(text.as_bytes()).unwrap();
        let p = &index.entries()[0].package;
        assert_eq!(p.name, "nfs-kernel-server");
        assert_eq!(p.version.to_string(), "1:2.6.2-4+deb12u1");
        assert_eq!(p.multi_arch, MultiArch::Foreign);
        assert_eq!(p.source.as_deref(), Some("nfs-utils"));
        assert_eq!(p.priority.as_deref(), Some("optional"));
        assert!(p.essential);
        assert_eq!(p.pre_depends.len(), 1);
        assert_eq!(p.depends.len(), 3);
        assert_eq!(relation::alternatives_text(&p.depends[2]), "libc6 (>= 2.34) | libc6.1");
        assert_eq!(p.all_depends().count(), 4);
        assert_eq!(index.providing("knfsd").count(), 1);
        assert_eq!(index.providing("nfs-server").next().unwrap().0.package.name, "nfs-kernel-server");
        assert_eq!(index.entries()[0].filename, "pool/main/nfs-kernel-server_1:2.6.2-4+deb12u1_arm64.deb");
        assert_eq!(index.entries()[0].size, 1234);
    }

    #[test]
    fn picks_the_highest_version_for_the_architecture() {
        let text = [
            stanza("a", "1.0", "arm64", ""),
            stanza("a", "2.0~rc1", "arm64", ""),
            stanza("a", "1.5", "all", ""),
            stanza("a", "9.0", "amd64", ""),
            stanza("b", "1:0.1", "all", ""),
            stanza("b", "1:0.1", "arm64", ""),
            stanza("b", "0.9", "arm64", ""),
        ]
        .concat();
        let index = Index::parse(text.as_bytes()).unwrap();
        assert_eq!(index.len(), 7);
        assert_eq!(index.pick("a", "arm64").unwrap().package.version.to_string(), "2.0~rc1");
        assert_eq!(index.pick("a", "amd64").unwrap().package.version.to_string(), "9.0");
        assert_eq!(index.pick("a", "armhf").unwrap().package.version.to_string(), "1.5");
        let b = index.pick("b", "arm64").unwrap();
        assert_eq!((b.package.version.to_string().as_str(), b.package.architecture.as_str()), ("1:0.1", "arm64"));
        assert_eq!(index.pick("b", "amd64").unwrap().package.architecture, "all");
        assert!(index.pick("c", "arm64").is_none());
    }

    #[test]
    fn damaged_stanzas_name_the_package_and_line() {
        let good = stanza("a", "1", "all", "");
        let cases = [
            (stanza("b", "1.0-", "all", ""), "`Version: 1.0-`: revision number is empty"),
            (
                stanza("b", "1", "all", "Depends: c (>= 1\n"),
                "`Depends`: `c (>= 1`: the version constraint has no closing parenthesis",
            ),
            (stanza("b", "1", "all", "Multi-Arch: maybe\n"), "`Multi-Arch: maybe` is not no, same, foreign or allowed"),
            (stanza("b", "1", "all", "").replace("Size: 1234", "Size: big"), "`Size: big` is not a number"),
            (
                stanza("b", "1", "all", "").replace("Filename: pool", "Filename: ../pool"),
                "is not a path inside the archive",
            ),
            (stanza("b", "1", "all", "").replace("Architecture: all\n", ""), "it has no `Architecture` field"),
        ];
        for (bad, want) in cases {
            let err = Index::parse(format!("{good}{bad}").as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with("the stanza at line 12 (b): "), "{err}");
            assert!(err.contains(want), "{err} should say {want}");
        }
        let no_name = Index::parse(b"Version: 1\n").unwrap_err().to_string();
        assert_eq!(no_name, "the stanza at line 1 (no name): it has no `Package` field");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn damaged_indexes_never_panic(cuts in proptest::collection::vec((any::<prop::sample::Index>(), "[ -~\\n]{0,4}"), 1..5)) {
                let mut text = [stanza("a", "1:2.0-1", "arm64", "Depends: b (>= 1) | c:any, d\nProvides: e (= 1)\n"), stanza("b", "1", "all", "")].concat();
                for (at, insert) in cuts {
                    let i = at.index(text.len() + 1);
                    text.insert_str(i, &insert);
                }
                if let Ok(index) = Index::parse(text.as_bytes()) {
                    let _ = index.pick("a", "arm64");
                }
            }
        }
    }
}
