//! The recipe: a TOML description of one lab (its server, its Pi clients, the OS they boot and
//! their bootloader settings), parsed and validated into [`Recipe`], with every problem reported
//! at once against the file's lines.
//!
//! Every key and its default is documented in recipes/README.md. Reads nothing but the text it
//! is given.

mod boot;
mod net;
mod raw;
mod validate;

pub use net::{Ipv4Net, Ipv4Range, MacAddr, RASPBERRY_PI_OUIS, Serial};
pub use validate::no_login;

use crate::diagnostic::Diagnostic;
use crate::eeprom::Chip;
use std::fmt;
use std::net::Ipv4Addr;

/// recipes/default.toml, built in: a 4-node Pi 4 lab on proxyDHCP.
pub const DEFAULT_RECIPE: &str = include_str!("../../recipes/default.toml");
/// How the built-in recipe is named in messages.
pub const DEFAULT_RECIPE_NAME: &str = "recipes/default.toml (built in)";

/// A validated lab description.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub lab: Lab,
    pub os: OsSource,
    pub server: Server,
    pub clients: Vec<Client>,
    /// Bootloader settings for every Pi 4/5 (`[eeprom]`, `BOOT_ORDER` defaulting to 0xf21), in
    /// key order; values as bootconf.txt writes them.
    pub eeprom: Vec<(String, String)>,
    /// Newer boot firmware to lay over the OS image's (`[firmware]`).
    pub firmware: Option<Download>,
    /// PC (PXE) boot: loaders and the boot menu (`[pc]`, `[[menu]]`); `None` when the lab has
    /// no PC clients and no menu.
    pub pc: Option<Pc>,
    /// Where Debian packages come from (`[debian]`, defaults filled in).
    pub debian: DebianArchive,
}

/// A Debian-format package archive: its base URL, the suite and components to read, and the
/// keyring its Release file must be signed with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DebianArchive {
    /// Without a trailing slash.
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    pub keyring: std::path::PathBuf,
}

pub const DEBIAN_MIRROR: &str = "https://deb.debian.org/debian";
pub const DEBIAN_SUITE: &str = "bookworm";
pub const DEBIAN_COMPONENTS: &[&str] = &["main"];
/// What Debian's `debian-archive-keyring` package installs.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

impl Default for DebianArchive {
    fn default() -> DebianArchive {
        DebianArchive {
            mirror: DEBIAN_MIRROR.into(),
            suite: DEBIAN_SUITE.into(),
            components: DEBIAN_COMPONENTS.iter().map(|c| c.to_string()).collect(),
            keyring: DEBIAN_KEYRING.into(),
        }
    }
}

/// A file named by URL and pinned by its sha256 (lower-case hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    pub url: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lab {
    pub name: String,
    /// Derives every id and UUID of the build; defaults to the name.
    pub seed: String,
    /// Timestamp for every output; `None` means the OS image's release date.
    pub source_date_epoch: Option<u32>,
    /// One read-only root for every client, or a writable copy each.
    pub root: RootMode,
    /// Where the clients' SSH host keys come from.
    pub ssh_host_keys: HostKeys,
    /// The recipe's own overlay folders, relative to the recipe's folder, laid over the repo's.
    pub overlays: Vec<std::path::PathBuf>,
}

/// How clients share the OS root (DESIGN.md, "The lab on disk").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootMode {
    /// One read-only NFS export for every client; writable paths are tmpfs (the PiServer model).
    Shared,
    /// Each client gets its own writable copy of the root.
    PerClient,
}

/// SSH host keys of the clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeys {
    /// Generated at every boot into tmpfs: nothing secret in the shared root, but the keys
    /// change at each boot.
    Boot,
    /// Generated once by the build, per client, from the lab seed, and served only to that
    /// client's folder; stable across boots.
    PerClient,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OsSource {
    /// A name from Raspberry Pi's OS list, e.g. `raspios-lite-arm64`.
    Catalog(String),
    /// An image at a URL, pinned by its sha256.
    Url(Download),
    /// A Debian arm64 root built with mmdebstrap from `[debian]`'s archive.
    Debian(DebianRoot),
}

/// What the Debian root holds beyond the base system Bramble always installs.
#[derive(Clone, Debug, PartialEq)]
pub struct DebianRoot {
    /// Extra packages, sorted, each once.
    pub packages: Vec<String>,
}

impl OsSource {
    /// The OS's name for messages and ids (`raspios-lite-arm64`, `debian`, an image URL).
    pub fn describe(&self) -> String {
        match self {
            OsSource::Catalog(name) => name.clone(),
            OsSource::Url(d) => d.url.clone(),
            OsSource::Debian(_) => "debian".into(),
        }
    }
}

/// Catalog names `[os] catalog` accepts, with what they are.
pub const OS_CATALOG: &[(&str, &str)] = &[
    ("raspios-lite-arm64", "Raspberry Pi OS Lite (64-bit)"),
    ("raspios-arm64", "Raspberry Pi OS with desktop (64-bit)"),
    ("raspios-full-arm64", "Raspberry Pi OS with desktop and recommended software (64-bit)"),
];

/// Raspberry Pi's 32-bit (armhf) catalog names, each with the 64-bit release of the same kind.
/// Refused: the server image runs an aarch64 daemon and installs arm64 packages into the OS, and
/// the client root's kernel command line and units are those of the 64-bit release.
pub const OS_CATALOG_32BIT: &[(&str, &str)] = &[
    ("raspios-lite-armhf", "raspios-lite-arm64"),
    ("raspios-armhf", "raspios-arm64"),
    ("raspios-full-armhf", "raspios-full-arm64"),
];
pub const DEFAULT_OS: &str = "raspios-lite-arm64";

#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub hostname: String,
    /// The interface on the lab network.
    pub interface: String,
    /// Static address on that interface; `None` (proxy mode only) means the server takes one
    /// by DHCP and the daemon uses whatever it got.
    pub address: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub dhcp: DhcpMode,
    /// Which PXE clients get a boot answer.
    pub answer: Answer,
    /// The dynamic pool (server mode).
    pub range: Option<Ipv4Range>,
    pub ssh_keys: Vec<String>,
    /// The login user on the server and the clients.
    pub user: String,
}

/// How Bramble takes part in DHCP on the lab network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpMode {
    /// Another server hands out addresses; Bramble only adds boot information (proxyDHCP).
    Proxy,
    /// Bramble is the lab's DHCP server.
    Server,
    /// No DHCP from Bramble (static setups, TFTP_IP in the EEPROM).
    Off,
}

impl fmt::Display for DhcpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhcpMode::Proxy => "proxy",
            DhcpMode::Server => "server",
            DhcpMode::Off => "off",
        })
    }
}

/// Which PXE clients the daemon answers with boot information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Only the recipe's clients (by MAC, or a Pi's serial from its DHCP option 97).
    Known,
    /// The recipe's clients and any Raspberry Pi.
    Pis,
    /// Every PXE client on the network.
    All,
}

impl Answer {
    pub fn name(self) -> &'static str {
        match self {
            Answer::Known => "known",
            Answer::Pis => "pis",
            Answer::All => "all",
        }
    }
}

/// Board families; each netboots its own way (research/pi-netboot.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    /// Pi 3B/3B+ (and 2B v1.2): the boot ROM netboots, fetching bootcode.bin; no EEPROM.
    Pi3,
    /// Pi 4B, 400, CM4: BCM2711 EEPROM bootloader.
    Pi4,
    /// Pi 5, 500, CM5: BCM2712 EEPROM bootloader with built-in firmware.
    Pi5,
    /// A PXE machine (x86 BIOS or UEFI, arm64 UEFI): boots the PC menu, or the lab's OS.
    Pc,
}

impl Model {
    pub const ALL: [Model; 4] = [Model::Pi3, Model::Pi4, Model::Pi5, Model::Pc];

    pub fn name(self) -> &'static str {
        match self {
            Model::Pi3 => "pi3",
            Model::Pi4 => "pi4",
            Model::Pi5 => "pi5",
            Model::Pc => "pc",
        }
    }

    /// The SoC of its bootloader EEPROM; Pi 3 and PCs have none.
    pub fn eeprom_chip(self) -> Option<Chip> {
        match self {
            Model::Pi3 | Model::Pc => None,
            Model::Pi4 => Some(Chip::Bcm2711),
            Model::Pi5 => Some(Chip::Bcm2712),
        }
    }

    pub fn is_pi(self) -> bool {
        self != Model::Pc
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The most bytes of cmdline.txt the Pi's firmware reads: 1024 since its 2012 fix
/// (raspberrypi/linux#140, popcornmix: "Latest firmware should support 1024 characters"; it had
/// been 500). The firmware puts its own arguments before it, and the arm64 kernel keeps 2048
/// (COMMAND_LINE_SIZE in arch/arm64/include/uapi/asm/setup.h), so the file is the tighter limit.
pub const CMDLINE_TXT_MAX: usize = 1024;
/// What a client's `cmdline` may add: the rest of the 1024 is the OS's own arguments (about
/// 100 bytes of Raspberry Pi OS's once the SD-card ones are dropped) and Bramble's NFS root,
/// `ip=` and hostname (about 130 with a 32-byte lab name and a 63-byte client name).
pub const CMDLINE_EXTRA_MAX: usize = 640;

#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    /// Also its hostname.
    pub name: String,
    pub model: Model,
    pub serial: Option<Serial>,
    pub mac: Option<MacAddr>,
    /// Fixed address (server mode).
    pub address: Option<Ipv4Addr>,
    /// Extra kernel command-line arguments.
    pub cmdline: Option<String>,
    /// Extra config.txt lines.
    pub config_txt: Option<String>,
    /// This client's bootloader settings over `[eeprom]`.
    pub eeprom: Vec<(String, String)>,
    /// What a PC client boots (Pis always boot the lab's OS).
    pub boot: ClientBoot,
}

/// What a client boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientBoot {
    /// The lab's OS over NFS (every Pi; an arm64 UEFI machine with `boot = "os"`).
    Os,
    /// The PC boot menu (`[[menu]]`).
    Menu,
}

/// PC boot: which loader each firmware gets and the menu they show.
#[derive(Clone, Debug, PartialEq)]
pub struct Pc {
    pub bios: BiosLoader,
    pub uefi: UefiLoader,
    /// Seconds the menu waits before booting its first entry; 0 boots it at once.
    pub timeout: u32,
    pub menu: Vec<MenuEntry>,
    /// The entry the menu boots when the timeout runs out (index into `menu`); a firmware that
    /// cannot run it boots its first entry instead.
    pub default: usize,
}

/// What BIOS PXE ROMs load first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiosLoader {
    /// pxelinux.0 with a syslinux menu (pxelinux.cfg/default).
    Pxelinux,
    /// undionly.kpxe, then the iPXE menu over HTTP.
    Ipxe,
}

/// What x86-64 UEFI firmware loads first (arm64 UEFI always gets GRUB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UefiLoader {
    /// ipxe.efi, then the iPXE menu over HTTP.
    Ipxe,
    /// syslinux.efi with the syslinux menu.
    Syslinux,
}

/// One entry of the PC boot menu.
#[derive(Clone, Debug, PartialEq)]
pub struct MenuEntry {
    pub label: String,
    pub kind: MenuKind,
    /// `kernel`: the kernel, then initrds; `iso`: the image; `chain`: the loader; `local`: none.
    pub files: Vec<FileRef>,
    /// Kernel command line (`kernel`), or memdisk arguments (`iso`).
    pub append: Option<String>,
    /// The only firmware whose menus show it (`firmware = "bios"`: a BIOS-only kernel such as
    /// memtest86+x64.bin); `None`: every menu that can run its kind.
    pub firmware: Option<EntryFirmware>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryFirmware {
    Bios,
    Uefi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MenuKind {
    /// Boot the machine's own disk.
    Local,
    /// A Linux kernel and its initrds.
    Kernel,
    /// A disk or CD image in memory (memdisk; BIOS only: memdisk does not run on UEFI).
    Iso,
    /// Another network boot program (netboot.xyz, a vendor's NBP), or an http:// URL.
    Chain,
}

impl MenuKind {
    pub fn name(self) -> &'static str {
        match self {
            MenuKind::Local => "local",
            MenuKind::Kernel => "kernel",
            MenuKind::Iso => "iso",
            MenuKind::Chain => "chain",
        }
    }
}

/// Where a file of the lab comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileRef {
    /// A file on the build machine, relative to the recipe's folder.
    Local(std::path::PathBuf),
    /// A download pinned by sha256 (`https://…#sha256=…`).
    Url(Download),
    /// A file inside a package of `[debian]`'s archive (`deb:PACKAGE:/path`).
    Deb { package: String, path: String },
}

impl FileRef {
    /// The file's name, as the lab tree stores it.
    pub fn file_name(&self) -> String {
        let path = match self {
            FileRef::Local(p) => return p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            FileRef::Url(d) => d.url.split(['#', '?']).next().unwrap_or(""),
            FileRef::Deb { path, .. } => path.as_str(),
        };
        path.rsplit('/').next().unwrap_or("").to_string()
    }
}

impl Client {
    /// The directory the bootloader prefixes its TFTP requests with, given the effective
    /// `TFTP_PREFIX`/`TFTP_PREFIX_STR`; `None` if the client lacks the needed identifier.
    pub fn tftp_prefix(&self, prefix_mode: u8, prefix_str: &str) -> Option<String> {
        match (self.model, prefix_mode) {
            (Model::Pc, _) => None,
            (Model::Pi3, _) | (_, 0) => self.serial.map(|s| s.to_string()),
            (_, 2) => self.mac.map(|m| m.dashed()),
            _ => Some(prefix_str.trim_end_matches('/').to_string()),
        }
    }
}

impl Recipe {
    /// The value of a bootloader setting for one client: its own, else `[eeprom]`'s.
    pub fn eeprom_value<'a>(&'a self, client: &'a Client, key: &str) -> Option<&'a str> {
        let find = |list: &'a [(String, String)]| list.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        find(&client.eeprom).or_else(|| find(&self.eeprom))
    }

    /// Whether any client boots the lab's OS (else the OS is neither fetched nor built).
    pub fn needs_os(&self) -> bool {
        self.clients.iter().any(|c| c.boot == ClientBoot::Os)
    }

    /// The models present, each once, in order.
    pub fn models(&self) -> Vec<Model> {
        let mut models: Vec<Model> = self.clients.iter().map(|c| c.model).collect();
        models.sort();
        models.dedup();
        models
    }
}

/// The outcome of reading a recipe: the recipe if it has no errors, and every diagnostic
/// (errors and warnings) in file order.
#[derive(Debug)]
pub struct Parsed {
    pub recipe: Option<Recipe>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parse and validate recipe text.
pub fn parse(source: &str) -> Parsed {
    let (raw, mut diagnostics) = raw::parse(source);
    let mut recipe = None;
    if let Some(raw) = raw {
        let (validated, more) = validate::validate(raw);
        diagnostics.extend(more);
        if !diagnostics.iter().any(Diagnostic::is_error) {
            recipe = Some(validated);
        }
    }
    diagnostics.sort_by_key(|d| (d.span.as_ref().map_or(0, |s| s.start), d.severity));
    Parsed { recipe, diagnostics }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipe_is_valid_and_clean() {
        let parsed = parse(DEFAULT_RECIPE);
        // Only that it has no SSH key: a key is each lab's own.
        let messages: Vec<&str> = parsed.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            ["nobody can log in to this lab: user `pi` has no password and [server] has no `ssh_keys`"]
        );
        let recipe = parsed.recipe.unwrap();
        assert_eq!(recipe.clients.len(), 4);
        assert!(recipe.clients.iter().all(|c| c.model == Model::Pi4));
        assert_eq!(recipe.server.dhcp, DhcpMode::Proxy);
        assert_eq!(recipe.debian, DebianArchive::default());
    }

    #[test]
    fn shipped_examples_are_valid_and_clean() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let parsed = parse(&std::fs::read_to_string(&path).unwrap());
                let unexpected: Vec<_> =
                    parsed.diagnostics.iter().filter(|d| !d.message.starts_with("nobody can log in")).collect();
                assert!(unexpected.is_empty(), "{}: {unexpected:?}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 3);
    }

    #[test]
    fn tftp_prefix_follows_the_mode() {
        let client = Client {
            name: "n".into(),
            model: Model::Pi4,
            serial: Some(Serial(0xd978_0558)),
            mac: Some("dc:a6:32:01:36:c2".parse().unwrap()),
            address: None,
            cmdline: None,
            config_txt: None,
            eeprom: vec![],
            boot: ClientBoot::Os,
        };
        assert_eq!(client.tftp_prefix(0, "").as_deref(), Some("d9780558"));
        assert_eq!(client.tftp_prefix(2, "").as_deref(), Some("dc-a6-32-01-36-c2"));
        assert_eq!(client.tftp_prefix(1, "lab/").as_deref(), Some("lab"));
        let pi3 = Client { model: Model::Pi3, ..client };
        assert_eq!(pi3.tftp_prefix(2, "").as_deref(), Some("d9780558"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_parses_without_panic(text in any::<String>()) {
                let parsed = parse(&text);
                prop_assert!(parsed.recipe.is_some() || parsed.diagnostics.iter().any(Diagnostic::is_error));
            }

            #[test]
            fn damaged_recipes_are_diagnosed_not_panicked(
                cuts in proptest::collection::vec((any::<prop::sample::Index>(), "[ -~\\n]{0,6}"), 1..6),
            ) {
                let mut text = DEFAULT_RECIPE.to_string();
                for (at, insert) in cuts {
                    let mut i = at.index(text.len() + 1);
                    while !text.is_char_boundary(i) { i -= 1; }
                    text.insert_str(i, &insert);
                }
                let parsed = parse(&text);
                for d in &parsed.diagnostics {
                    if let Some(span) = &d.span {
                        prop_assert!(span.start <= span.end && span.end <= text.len());
                    }
                }
                let _ = crate::diagnostic::render(&parsed.diagnostics, &text, "x.toml", false);
            }
        }
    }
}
