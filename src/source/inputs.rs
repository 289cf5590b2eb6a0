//! The inputs a recipe needs, named and described before anything is downloaded: the OS image,
//! the bootloader EEPROM image and recovery.bin for each Pi 4/5 chip in the lab, any newer
//! firmware, and Debian packages ([`deb_input`]). Each has a `from` key saying what it was
//! resolved from, so a lock entry is reused only while the recipe still asks for the same thing.

use super::{eeprom_release, pc_loaders};
use crate::recipe::{DebianArchive, FileRef, OsSource, Recipe};

/// Input names, as the lock and the cache listing show them.
pub const OS: &str = "os";
pub const FIRMWARE: &str = "firmware";

/// What an input is, before resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// A catalog name, resolved through Raspberry Pi's OS list.
    Catalog(String),
    /// A URL with a known sha256 (and size, when known).
    Pinned { url: String, sha256: String, size: Option<u64> },
    /// A binary package from a Debian-format archive: its highest version for `arch` (or
    /// `all`), found in the suite's signed indexes.
    Deb { archive: DebianArchive, package: String, arch: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub name: String,
    /// What the recipe asked for: `catalog:raspios-lite-arm64`, `url:<url>`, `eeprom:2711`.
    pub from: String,
    pub spec: Spec,
}

/// The package `package` for architecture `arch` (`arm64`, `amd64`, …; `all` packages count
/// for every architecture) from `archive`. Named `deb:<package>:<arch>` in the lock.
pub fn deb_input(archive: &DebianArchive, package: &str, arch: &str) -> Input {
    Input {
        name: format!("deb:{package}:{arch}"),
        from: format!("deb:{}/{}/{arch}/{package}@{}", archive.suite, archive.components.join(","), archive.mirror),
        spec: Spec::Deb { archive: archive.clone(), package: package.into(), arch: arch.into() },
    }
}

/// Every input `recipe` needs, in a stable order.
pub fn inputs(recipe: &Recipe) -> Vec<Input> {
    let mut out = Vec::new();
    // The OS even when no client boots it: the server image runs it.
    match &recipe.os {
        OsSource::Catalog(name) => {
            out.push(Input { name: OS.into(), from: format!("catalog:{name}"), spec: Spec::Catalog(name.clone()) })
        }
        OsSource::Url(d) => out.push(Input {
            name: OS.into(),
            from: format!("url:{}#{}", d.url, d.sha256),
            spec: Spec::Pinned { url: d.url.clone(), sha256: d.sha256.clone(), size: None },
        }),
        // Built by mmdebstrap from the archive, not downloaded as one file.
        OsSource::Debian(_) => {}
    }
    let mut chips: Vec<_> = recipe.models().into_iter().filter_map(|m| m.eeprom_chip()).collect();
    chips.dedup();
    for chip in chips {
        let release = eeprom_release::release(chip);
        for (kind, file) in [("pieeprom", release.image), ("recovery", release.recovery)] {
            out.push(Input {
                name: format!("{kind}-{}", chip.number()),
                from: format!("eeprom:{}:{}", chip.number(), file.sha256),
                spec: Spec::Pinned { url: file.url.into(), sha256: file.sha256.into(), size: Some(file.size) },
            });
        }
    }
    if let Some(fw) = &recipe.firmware {
        out.push(Input {
            name: FIRMWARE.into(),
            from: format!("url:{}#{}", fw.url, fw.sha256),
            spec: Spec::Pinned { url: fw.url.clone(), sha256: fw.sha256.clone(), size: None },
        });
    }
    if let Some(pc) = &recipe.pc {
        for f in pc_loaders::needed_files(pc) {
            let input = match &f {
                FileRef::Deb { package, .. } => deb_input(&recipe.debian, package, pc_loaders::package_arch(package)),
                FileRef::Url(d) => url_input(d),
                FileRef::Local(_) => continue,
            };
            if !out.iter().any(|i| i.name == input.name) {
                out.push(input);
            }
        }
    }
    out
}

/// A file named by URL and sha256 (a menu's kernel, an ISO image), named `file:<sha256
/// prefix>:<file name>` so two files of one name stay apart.
pub fn url_input(d: &crate::recipe::Download) -> Input {
    let name = d.url.split(['#', '?']).next().unwrap_or("").rsplit('/').next().unwrap_or("file");
    Input {
        name: format!("file:{}:{name}", &d.sha256[..d.sha256.len().min(16)]),
        from: format!("url:{}#{}", d.url, d.sha256),
        spec: Spec::Pinned { url: d.url.clone(), sha256: d.sha256.clone(), size: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{DEFAULT_RECIPE, parse};

    #[test]
    fn default_lab_needs_the_os_and_the_pi4_bootloader() {
        let recipe = parse(DEFAULT_RECIPE).recipe.unwrap();
        let names: Vec<String> = inputs(&recipe).into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["os", "pieeprom-2711", "recovery-2711"]);
        assert_eq!(inputs(&recipe)[0].spec, Spec::Catalog("raspios-lite-arm64".into()));
    }

    #[test]
    fn debian_packages_are_named_by_package_and_arch() {
        let archive = DebianArchive::default();
        let i = deb_input(&archive, "pxelinux", "amd64");
        assert_eq!(i.name, "deb:pxelinux:amd64");
        assert_eq!(i.from, "deb:bookworm/main/amd64/pxelinux@https://deb.debian.org/debian");
        let other = DebianArchive { components: vec!["main".into(), "non-free-firmware".into()], ..archive };
        assert_eq!(
            deb_input(&other, "raspi-firmware", "arm64").from,
            "deb:bookworm/main,non-free-firmware/arm64/raspi-firmware@https://deb.debian.org/debian"
        );
    }

    #[test]
    fn mixed_labs_need_both_chips_and_urls_are_pinned() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/mixed-server.toml")).unwrap();
        let mut recipe = parse(&text).recipe.unwrap();
        let names: Vec<String> = inputs(&recipe).into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["os", "pieeprom-2711", "recovery-2711", "pieeprom-2712", "recovery-2712"]);
        let sha = "ab".repeat(32);
        recipe.os =
            OsSource::Url(crate::recipe::Download { url: "https://example.org/x.img.xz".into(), sha256: sha.clone() });
        let os = &inputs(&recipe)[0];
        assert_eq!(os.from, format!("url:https://example.org/x.img.xz#{sha}"));
    }
}
