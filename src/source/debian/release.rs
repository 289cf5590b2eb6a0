//! An archive suite's `Release` file (or `InRelease`, the same text cleartext-signed), as the
//! Debian repository format describes it: which suite and codename it is, its date, its
//! architectures and components, and the SHA256 list naming every index file with its hash and
//! size. The list is what makes a signed Release vouch for the Packages indexes, and through
//! their hashes for every .deb. Pure: text in; the signature is checked by `fetch::gpgv`.

use super::clearsign::{self, ClearSignError};
use super::deb822::{self, Deb822Error};
use crate::source::compression::Compression;
use std::collections::BTreeMap;

/// A file the Release file vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub version: Option<String>,
    /// As written (RFC 2822 style, `Sat, 10 May 2025 09:01:44 UTC`).
    pub date: Option<String>,
    pub valid_until: Option<String>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Paths relative to the suite's folder (`main/binary-arm64/Packages.xz`).
    pub sha256: BTreeMap<String, IndexFile>,
    /// `No-Support-for-Architecture-all: Packages`: `Architecture: all` packages are listed in
    /// each architecture's index, not only in `binary-all`.
    pub all_in_each_arch: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("the cleartext signature wrapper is damaged: {0}")]
    ClearSign(#[from] ClearSignError),
    #[error("{0}")]
    Syntax(#[from] Deb822Error),
    #[error("it holds {0} paragraphs; a Release file is one")]
    Paragraphs(usize),
    #[error("it has no SHA256 list, so it vouches for no index (apt refuses such archives too)")]
    NoSha256,
    #[error("line {line} of its SHA256 list is not `<sha256> <size> <path>`: `{text}`")]
    BadSha256Line { line: usize, text: String },
}

/// Index names in the order Bramble tries them: the smallest download first.
const PACKAGES_NAMES: [(&str, Compression); 3] =
    [("Packages.xz", Compression::Xz), ("Packages.gz", Compression::Gzip), ("Packages", Compression::None)];

fn words(value: Option<&str>) -> Vec<String> {
    value.map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

impl Release {
    /// Parse a Release file, or an InRelease file (whose signature is not checked here).
    pub fn parse(bytes: &[u8]) -> Result<Release, ReleaseError> {
        let text = String::from_utf8_lossy(bytes);
        let body = if clearsign::is_clearsigned(&text) { clearsign::split(&text)?.text } else { text.into_owned() };
        let paragraphs = deb822::parse(body.as_bytes())?;
        let [p] = <[_; 1]>::try_from(paragraphs).map_err(|ps| ReleaseError::Paragraphs(ps.len()))?;
        let owned = |name: &str| p.get(name).map(str::to_string);
        let list = p.field("SHA256").ok_or(ReleaseError::NoSha256)?;
        let mut sha256 = BTreeMap::new();
        // The value's first line is empty; entries follow, one per continuation line.
        for (i, line) in list.value.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || ReleaseError::BadSha256Line { line: list.line + i, text: deb822::shorten(line) };
            let mut it = line.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) = (it.next(), it.next(), it.next(), it.next()) else {
                return Err(bad());
            };
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let size = size.parse::<u64>().map_err(|_| bad())?;
            sha256.insert(path.to_string(), IndexFile { sha256: hash.to_ascii_lowercase(), size });
        }
        Ok(Release {
            origin: owned("Origin"),
            label: owned("Label"),
            suite: owned("Suite"),
            codename: owned("Codename"),
            version: owned("Version"),
            date: owned("Date"),
            valid_until: owned("Valid-Until"),
            architectures: words(p.get("Architectures")),
            components: words(p.get("Components")),
            sha256,
            all_in_each_arch: p
                .get("No-Support-for-Architecture-all")
                .is_some_and(|v| v.split_whitespace().any(|w| w == "Packages")),
        })
    }

    /// Whether this is the suite asked for, by suite name or codename (`stable`, `bookworm`).
    pub fn is_suite(&self, name: &str) -> bool {
        // Security and backports suites are `bookworm-security`, with the codename the same.
        self.suite.as_deref() == Some(name) || self.codename.as_deref() == Some(name)
    }

    /// The Packages indexes of `component` for `arch` this Release vouches for, best first:
    /// `(path, compression, hash and size)`.
    pub fn packages_indexes(&self, component: &str, arch: &str) -> Vec<(String, Compression, &IndexFile)> {
        PACKAGES_NAMES
            .iter()
            .filter_map(|(name, kind)| {
                let path = format!("{component}/binary-{arch}/{name}");
                self.sha256.get(&path).map(|f| (path, *kind, f))
            })
            .collect()
    }

    /// The architectures whose indexes hold the packages installable on `arch`: `arch`
    /// itself, and `all` where the archive lists `Architecture: all` packages separately.
    pub fn index_arches(&self, arch: &str) -> Vec<String> {
        let mut out = vec![arch.to_string()];
        if arch != "all" && self.architectures.iter().any(|a| a == "all") && !self.all_in_each_arch {
            out.push("all".into());
        }
        out
    }
}

/// Unix time of a Release date (`Sat, 15 Mar 2025 09:17:28 UTC`, RFC 2822 with the `UTC`
/// zone name apt writes).
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let normalised = match text.strip_suffix(" UTC").or_else(|| text.strip_suffix(" GMT")) {
        Some(rest) => format!("{rest} +0000"),
        None => text.to_string(),
    };
    let t = time::OffsetDateTime::parse(&normalised, &time::format_description::well_known::Rfc2822).ok()?;
    Some(t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "Origin: Debian\nLabel: Debian\nSuite: stable\nVersion: 12.10\nCodename: bookworm\n\
Date: Sat, 15 Mar 2025 09:17:28 UTC\nAcquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
Architectures: all amd64 arm64 armhf\nComponents: main contrib non-free-firmware non-free\n\
Description: Debian 12.10 Released 15 March 2025\nMD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all\n\
SHA256:\n 3957f28db16e3f28c7b34ae84f1c929c567de6970f3f1b95dac9b498dd80fe63   738242 contrib/Contents-all\n \
aa7a8f9b4c0b7f1e3d2c6a5b4e3f2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e 8745123 main/binary-arm64/Packages.xz\n \
BB7A8F9B4C0B7F1E3D2C6A5B4E3F2D1C0B9A8F7E6D5C4B3A2F1E0D9C8B7A6F5E 11945123 main/binary-arm64/Packages.gz\n \
cc7a8f9b4c0b7f1e3d2c6a5b4e3f2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e 45123456 main/binary-arm64/Packages\n";

    #[test]
    fn reads_a_debian_release() {
        let r = Release::parse(RELEASE.as_bytes()).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.date.as_deref(), Some("Sat, 15 Mar 2025 09:17:28 UTC"));
        assert_eq!(r.architectures, ["all", "amd64", "arm64", "armhf"]);
        assert_eq!(r.components, ["main", "contrib", "non-free-firmware", "non-free"]);
        assert_eq!(r.sha256.len(), 4);
        assert!(r.is_suite("bookworm") && r.is_suite("stable") && !r.is_suite("trixie"));
        let idx = r.packages_indexes("main", "arm64");
        assert_eq!(
            idx.iter().map(|(p, k, _)| (p.as_str(), *k)).collect::<Vec<_>>(),
            [
                ("main/binary-arm64/Packages.xz", Compression::Xz),
                ("main/binary-arm64/Packages.gz", Compression::Gzip),
                ("main/binary-arm64/Packages", Compression::None)
            ]
        );
        assert_eq!(idx[1].2.sha256, "bb7a8f9b4c0b7f1e3d2c6a5b4e3f2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e");
        assert_eq!(idx[0].2.size, 8745123);
        assert!(r.packages_indexes("contrib", "arm64").is_empty());
        // Debian lists `all` packages in every architecture's index.
        assert_eq!(r.index_arches("arm64"), ["arm64"]);
        let separate = Release::parse(RELEASE.replace("No-Support-for-Architecture-all: Packages\n", "").as_bytes());
        assert_eq!(separate.unwrap().index_arches("arm64"), ["arm64", "all"]);
    }

    #[test]
    fn dates_as_apt_writes_them() {
        assert_eq!(parse_date("Sat, 15 Mar 2025 09:17:28 UTC"), Some(1_742_030_248));
        assert_eq!(parse_date("Sat, 15 Mar 2025 09:17:28 +0000"), Some(1_742_030_248));
        assert_eq!(parse_date("Sat, 15 Mar 2025 10:17:28 +0100"), Some(1_742_030_248));
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn reads_the_signed_form() {
        let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{RELEASE}-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n"
        );
        assert_eq!(Release::parse(signed.as_bytes()).unwrap(), Release::parse(RELEASE.as_bytes()).unwrap());
        let tail = format!("{signed}Suite: evil\n");
        assert!(matches!(Release::parse(tail.as_bytes()), Err(ReleaseError::ClearSign(ClearSignError::TextAfter(_)))));
    }

    #[test]
    fn damaged_releases_are_refused() {
        assert_eq!(Release::parse(b"Suite: a\n"), Err(ReleaseError::NoSha256));
        assert_eq!(Release::parse(b""), Err(ReleaseError::Paragraphs(0)));
        assert_eq!(Release::parse(b"Suite: a\n\nSuite: b\n"), Err(ReleaseError::Paragraphs(2)));
        let bad = Release::parse(b"Suite: a\nSHA256:\n abc 12 main/x\n").unwrap_err();
        assert_eq!(bad.to_string(), "line 3 of its SHA256 list is not `<sha256> <size> <path>`: `abc 12 main/x`");
        let h = "a".repeat(64);
        assert!(Release::parse(format!("SHA256:\n {h} x main/x\n").as_bytes()).is_err());
        assert!(Release::parse(format!("SHA256:\n {h} 1\n").as_bytes()).is_err());
        assert!(Release::parse(format!("SHA256:\n {h} 1 a b\n").as_bytes()).is_err());
        assert!(matches!(Release::parse(b"Suite a\n"), Err(ReleaseError::Syntax(_))));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn damaged_release_text_never_panics(cuts in proptest::collection::vec((any::<prop::sample::Index>(), "[ -~\\n]{0,4}"), 1..5)) {
                let mut text = RELEASE.to_string();
                for (at, insert) in cuts {
                    let i = at.index(text.len() + 1);
                    text.insert_str(i, &insert);
                }
                let _ = Release::parse(text.as_bytes());
            }
        }
    }
}
