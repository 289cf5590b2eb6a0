//! From the raw TOML shape to a [`Recipe`]: defaults filled in, every value checked, and every
//! problem collected with the span it is about and the fix.

use super::raw::{
    EepromTable, EepromValue, Opt, RawClient, RawDebian, RawFirmware, RawLab, RawOs, RawRecipe, RawServer,
};
use super::{
    Answer, Client, ClientBoot, DEFAULT_OS, DebianArchive, DebianRoot, DhcpMode, Download, HostKeys, Ipv4Net,
    Ipv4Range, Lab, MacAddr, Model, OS_CATALOG, OS_CATALOG_32BIT, OsSource, RASPBERRY_PI_OUIS, Recipe, RootMode,
    Serial, Server,
};
use crate::diagnostic::Diagnostic;
use crate::eeprom::{Chip, bootconf};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::str::FromStr;
use toml::Spanned;

/// Earliest timestamp FAT can store (1980-01-01); the EEPROM's is a u32.
const MIN_EPOCH: i64 = 315_532_800;

#[derive(Default)]
pub(super) struct Report(pub(super) Vec<Diagnostic>);

impl Report {
    pub(super) fn error(
        &mut self,
        span: impl Into<Option<Range<usize>>>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.0.push(Diagnostic::error(span, message).help(help));
    }

    pub(super) fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Parse an optional value with `FromStr`, reporting failure with `help`. Our own types
    /// explain themselves; the only foreign one here is `Ipv4Addr`.
    pub(super) fn parse<T: FromStr<Err: std::fmt::Display>>(&mut self, value: &Opt<String>, help: &str) -> Option<T> {
        let v = value.as_ref()?;
        match v.get_ref().parse() {
            Ok(t) => Some(t),
            Err(why) => {
                let why = why.to_string();
                let message =
                    if why.starts_with('`') { why } else { format!("`{}` is not an IPv4 address", v.get_ref()) };
                self.error(v.span(), message, help);
                None
            }
        }
    }
}

/// Validate `raw`, filling in defaults. The recipe is only meaningful if no error was reported.
pub fn validate(raw: RawRecipe) -> (Recipe, Vec<Diagnostic>) {
    let mut r = Report::default();
    let lab = lab(raw.lab, &mut r);
    let os = os(raw.os, &mut r);
    let server_span = raw.server.as_ref().map(|s| s.span());
    let ssh_keys = raw.server.as_ref().and_then(|s| s.get_ref().ssh_keys.as_ref());
    let ssh_keys_given = ssh_keys.is_some_and(|k| !k.get_ref().is_empty());
    let ssh_keys_span = ssh_keys.map(|k| k.span());
    let (server, dhcp_span) = server(raw.server.map(Spanned::into_inner).unwrap_or_default(), server_span, &mut r);
    let raw_clients = raw.client.map(Spanned::into_inner).unwrap_or_default();
    let models: Vec<Model> = raw_clients.iter().filter_map(|c| model_of(c.get_ref())).collect();
    let chips = lab_chips(&models);
    let lab_prefix_span = raw.eeprom.as_ref().and_then(|t| setting_span(t.get_ref(), "TFTP_PREFIX_STR"));
    let lab_eeprom_span = raw.eeprom.as_ref().map(|t| t.span());
    let mut eeprom = raw.eeprom.map(|t| eeprom_table(t.into_inner(), &chips, &mut r)).unwrap_or_default();
    if !eeprom.iter().any(|(k, _)| k == "BOOT_ORDER") {
        eeprom.push(("BOOT_ORDER".into(), bootconf::NETWORK_BOOT_ORDER.into()));
        eeprom.sort();
    }
    for chip in &chips {
        config_fits(*chip, &eeprom, lab_eeprom_span.clone(), "[eeprom]", &mut r);
    }
    let mut clients = Vec::new();
    let mut seen = Seen::default();
    for (index, raw_client) in raw_clients.into_iter().enumerate() {
        if let Some(c) = client(index, raw_client, &server, (&eeprom, lab_prefix_span.clone()), &mut seen, &mut r) {
            clients.push(c);
        }
    }
    shared_folders(&seen.folders, &mut r);
    if server.ssh_keys.is_empty() && !ssh_keys_given && clients.iter().any(|c| c.boot == ClientBoot::Os) {
        r.push(no_login(&server.user, ssh_keys_span));
    }
    if clients.is_empty() && raw.menu.is_none() && !r.0.iter().any(Diagnostic::is_error) {
        r.push(
            Diagnostic::warning(None, "the recipe has no [[client]]: the lab will boot no Pi")
                .help("add a [[client]] table with name, model and serial for each Pi"),
        );
    }
    if let Some(range) = server.range {
        let dynamic = clients.iter().filter(|c| c.address.is_none()).count() as u64;
        if dynamic > range.len() {
            r.push(Diagnostic::warning(
                dhcp_span.clone(),
                format!(
                    "the range {range} has {} addresses for {dynamic} clients without a fixed address",
                    range.len()
                ),
            ));
        }
    }
    let firmware = firmware(raw.firmware, &mut r);
    let debian = debian(raw.debian.map(Spanned::into_inner).unwrap_or_default(), &mut r);
    let pc = super::boot::pc(raw.pc, raw.menu, &clients, &os, &mut r);
    (Recipe { lab, os, server, clients, eeprom, firmware, pc, debian }, r.0)
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn lab(raw: Opt<RawLab>, r: &mut Report) -> Lab {
    let Some(raw) = raw else {
        r.error(None, "the recipe has no [lab] table", "add:\n[lab]\nname = \"my-lab\"");
        return Lab {
            name: "lab".into(),
            seed: "lab".into(),
            source_date_epoch: None,
            root: RootMode::Shared,
            ssh_host_keys: HostKeys::Boot,
            overlays: Vec::new(),
        };
    };
    let span = raw.span();
    let raw = raw.into_inner();
    let name = match raw.name {
        None => {
            r.error(span, "[lab] has no `name`", "add name = \"my-lab\": lower-case letters, digits and '-'");
            "lab".to_string()
        }
        Some(n) => {
            if !is_dns_label(n.get_ref()) || n.get_ref().len() > 32 {
                r.error(
                    n.span(),
                    format!("lab name `{}` is not usable in hostnames and file names", n.get_ref()),
                    "use up to 32 lower-case letters, digits and '-', not starting or ending with '-'",
                );
            }
            n.into_inner()
        }
    };
    let seed = match raw.seed {
        Some(s) if s.get_ref().is_empty() => {
            r.error(s.span(), "`seed` is empty", "remove it to use the lab name, or write any non-empty text");
            name.clone()
        }
        Some(s) => s.into_inner(),
        None => name.clone(),
    };
    let source_date_epoch = raw.source_date_epoch.and_then(|t| {
        let v = *t.get_ref();
        if (MIN_EPOCH..=i64::from(u32::MAX)).contains(&v) {
            Some(v as u32)
        } else {
            r.error(
                t.span(),
                format!("source_date_epoch {v} is out of range"),
                format!("use Unix seconds from {MIN_EPOCH} (1980-01-01, FAT's first date) to {} (2106)", u32::MAX),
            );
            None
        }
    });
    let root = choice(
        &raw.root,
        "root",
        &[("shared", RootMode::Shared), ("per-client", RootMode::PerClient)],
        "\"shared\" (one read-only root for every client) or \"per-client\" (a writable copy each)",
        RootMode::Shared,
        r,
    );
    let ssh_host_keys = choice(
        &raw.ssh_host_keys,
        "ssh_host_keys",
        &[("boot", HostKeys::Boot), ("per-client", HostKeys::PerClient)],
        "\"boot\" (new keys at every boot, in memory) or \"per-client\" (made once by the build)",
        HostKeys::Boot,
        r,
    );
    let overlays = raw
        .overlays
        .map(|list| {
            list.into_inner()
                .into_iter()
                .filter_map(|o| {
                    let path = std::path::PathBuf::from(o.get_ref());
                    // An absolute path would be laid over the lab from anywhere on the build machine.
                    if o.get_ref().is_empty()
                        || path.has_root()
                        || path.components().any(|c| c == std::path::Component::ParentDir)
                    {
                        r.error(
                            o.span(),
                            format!("overlay folder `{}` must be a folder beside the recipe", o.get_ref()),
                            "write a path relative to the recipe's folder, without `..` or a leading `/`",
                        );
                        return None;
                    }
                    Some(path)
                })
                .collect()
        })
        .unwrap_or_default();
    if let (HostKeys::PerClient, RootMode::Shared, Some(k)) = (ssh_host_keys, root, &raw.ssh_host_keys) {
        r.error(
            k.span(),
            "ssh_host_keys = \"per-client\" needs root = \"per-client\"",
            "a shared root is read-only and seen by every client: keep \"boot\" (new keys at each boot), or give each client its own root",
        );
    }
    Lab { name, seed, source_date_epoch, root, ssh_host_keys, overlays }
}

/// One of a fixed set of words, reported with the nearest word when it is none of them.
pub(super) fn choice<T: Copy>(
    value: &Opt<String>,
    key: &str,
    words: &[(&str, T)],
    meaning: &str,
    default: T,
    r: &mut Report,
) -> T {
    let Some(v) = value else { return default };
    if let Some((_, t)) = words.iter().find(|(w, _)| w == v.get_ref()) {
        return *t;
    }
    let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
    r.error(
        v.span(),
        format!("{key} = \"{}\" is not one of {}", v.get_ref(), names.join(", ")),
        format!("{}use {meaning}", suggest(v.get_ref(), &names)),
    );
    default
}

fn os(raw: Opt<RawOs>, r: &mut Report) -> OsSource {
    let default = OsSource::Catalog(DEFAULT_OS.into());
    let Some(raw) = raw.map(Spanned::into_inner) else { return default };
    let debian = choice(
        &raw.source,
        "source",
        &[("raspios", false), ("debian", true)],
        "\"raspios\" (a Raspberry Pi OS image) or \"debian\" (a Debian arm64 root built with mmdebstrap)",
        false,
        r,
    );
    if debian {
        for (key, span) in
            [("catalog", raw.catalog.as_ref()), ("url", raw.url.as_ref()), ("sha256", raw.sha256.as_ref())]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v.span())))
        {
            r.error(
                span,
                format!("`{key}` is for Raspberry Pi OS images, not source = \"debian\""),
                "remove it; the Debian root comes from [debian]'s mirror and suite",
            );
        }
        let mut packages: Vec<String> = Vec::new();
        for p in raw.packages.map(Spanned::into_inner).unwrap_or_default() {
            let name = p.get_ref();
            let valid = name.len() >= 2
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
            if !valid {
                r.error(
                    p.span(),
                    format!("`{name}` is not a Debian package name"),
                    "write the package's name as `apt-cache show` knows it, e.g. \"htop\"",
                );
                continue;
            }
            packages.push(p.into_inner());
        }
        packages.sort();
        packages.dedup();
        return OsSource::Debian(DebianRoot { packages });
    }
    if let Some(p) = &raw.packages {
        r.error(
            p.span(),
            "`packages` is for source = \"debian\"",
            "remove it: a Raspberry Pi OS image is used as it is",
        );
    }
    match (raw.catalog, raw.url, raw.sha256) {
        (Some(_), Some(url), _) => {
            r.error(
                url.span(),
                "[os] has both `catalog` and `url`",
                "keep one: a catalog name, or a url with its sha256",
            );
            default
        }
        (Some(name), None, sha) => {
            if let Some(sha) = sha {
                r.error(
                    sha.span(),
                    "`sha256` goes with `url`, not with `catalog`",
                    "remove it: catalog images are pinned in the recipe's lock",
                );
            }
            if let Some((_, arm64)) = OS_CATALOG_32BIT.iter().find(|(n, _)| n == name.get_ref()) {
                r.error(
                    name.span(),
                    format!(
                        "`{}` is 32-bit Raspberry Pi OS (armhf), which Bramble does not build: its server runs \
                         an aarch64 daemon and installs arm64 packages",
                        name.get_ref()
                    ),
                    format!("use catalog = \"{arm64}\", the same release for 64-bit (every Pi 3, 4 and 5 runs it)"),
                );
            } else if !OS_CATALOG.iter().any(|(n, _)| n == name.get_ref()) {
                let names: Vec<&str> = OS_CATALOG.iter().map(|(n, _)| *n).collect();
                r.error(
                    name.span(),
                    format!("`{}` is not in the OS catalog", name.get_ref()),
                    format!("{}use one of: {}", suggest(name.get_ref(), &names), names.join(", ")),
                );
            }
            OsSource::Catalog(name.into_inner())
        }
        (None, Some(url), sha) => OsSource::Url(download(url, sha, "image", r)),
        (None, None, Some(sha)) => {
            r.error(
                sha.span(),
                "`sha256` without `url`",
                "add the image's url, or remove sha256 to use the default catalog image",
            );
            default
        }
        (None, None, None) => default,
    }
}

/// A `url` with its `sha256`, both checked; `what` names the file in messages.
pub(super) fn download(url: Spanned<String>, sha: Opt<String>, what: &str, r: &mut Report) -> Download {
    let u = url.get_ref();
    if !(u.starts_with("https://") || u.starts_with("http://")) {
        r.error(
            url.span(),
            format!("`{u}` is not an http(s) URL"),
            format!("write the full https:// address of the {what}"),
        );
    }
    let sha256 = match sha {
        None => {
            r.error(
                url.span(),
                format!("`url` needs the {what}'s `sha256`"),
                "add sha256 = \"…\" (64 hex digits, as sha256sum prints)",
            );
            String::new()
        }
        Some(s) => {
            let v = s.get_ref();
            if v.len() != 64 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                r.error(
                    s.span(),
                    "`sha256` is not 64 hex digits",
                    format!("copy the hash sha256sum prints for the {what}"),
                );
            }
            v.to_ascii_lowercase()
        }
    };
    Download { url: url.into_inner(), sha256 }
}

fn firmware(raw: Opt<RawFirmware>, r: &mut Report) -> Option<Download> {
    let raw = raw?;
    let span = raw.span();
    let raw = raw.into_inner();
    match (raw.url, raw.sha256) {
        (Some(url), sha) => Some(download(url, sha, "firmware archive", r)),
        (None, _) => {
            r.error(
                span,
                "[firmware] has no `url`",
                "give the url and sha256 of the firmware archive, or remove [firmware]",
            );
            None
        }
    }
}

/// `[debian]`: each key checked, defaults for the rest.
fn debian(raw: RawDebian, r: &mut Report) -> DebianArchive {
    let mut archive = DebianArchive::default();
    if let Some(m) = raw.mirror {
        let url = m.get_ref().trim_end_matches('/');
        let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || host.is_empty()
            || url.contains(char::is_whitespace)
        {
            r.error(
                m.span(),
                format!("`{}` is not an http(s) URL", m.get_ref()),
                format!(
                    "write the archive's base URL, the folder holding `dists/` and `pool/`, e.g. \"{}\"",
                    super::DEBIAN_MIRROR
                ),
            );
        }
        archive.mirror = url.to_string();
    }
    if let Some(s) = raw.suite {
        let v = s.get_ref();
        let ok = !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+/".contains(&b))
            && !v.starts_with('/')
            && !v.ends_with('/')
            && !v.split('/').any(|c| c == ".." || c == "." || c.is_empty());
        if !ok {
            r.error(
                s.span(),
                format!("`{v}` is not a suite name"),
                "write a codename or suite as the archive's dists/ folder names it, e.g. \"bookworm\" or \"bookworm-backports\"",
            );
        }
        archive.suite = s.into_inner();
    }
    if let Some(list) = raw.components {
        let span = list.span();
        let list = list.into_inner();
        if list.is_empty() {
            r.error(
                span,
                "`components` is empty",
                "name at least one, e.g. [\"main\"] or [\"main\", \"non-free-firmware\"]",
            );
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        archive.components.clear();
        for c in list {
            let v = c.get_ref();
            let ok = !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+/".contains(&b))
                && !v.split('/').any(|p| p == ".." || p == "." || p.is_empty());
            if !ok {
                r.error(
                    c.span(),
                    format!("`{v}` is not a component name"),
                    "write a name from the suite's Release file, e.g. \"main\"",
                );
            }
            match seen.get(v) {
                Some(first) => r.push(
                    Diagnostic::error(c.span(), format!("component `{v}` is listed twice"))
                        .related(first.clone(), "first listed here")
                        .help("list each component once"),
                ),
                None => {
                    seen.insert(v.clone(), c.span());
                }
            }
            archive.components.push(c.into_inner());
        }
    }
    if let Some(k) = raw.keyring {
        if !k.get_ref().starts_with('/') {
            r.error(
                k.span(),
                format!("keyring `{}` is not an absolute path", k.get_ref()),
                format!("write the full path of the archive's keyring, e.g. \"{}\"", super::DEBIAN_KEYRING),
            );
        }
        archive.keyring = k.into_inner().into();
    }
    archive
}

/// `did you mean `x`? ` when exactly one candidate is closest and close enough, else nothing.
pub(super) fn suggest(given: &str, candidates: &[&str]) -> String {
    let mut scored: Vec<(f64, &str)> = candidates.iter().map(|c| (strsim::jaro_winkler(given, c), *c)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    match scored.as_slice() {
        [(best, c), rest @ ..] if *best > 0.8 && rest.first().is_none_or(|(next, _)| next < best) => {
            format!("did you mean `{c}`? ")
        }
        _ => String::new(),
    }
}

fn server(raw: RawServer, span: Option<Range<usize>>, r: &mut Report) -> (Server, Option<Range<usize>>) {
    let hostname = match raw.hostname {
        Some(h) if !is_dns_label(h.get_ref()) => {
            r.error(
                h.span(),
                format!("hostname `{}` is not a valid host name", h.get_ref()),
                "use lower-case letters, digits and '-' (at most 63)",
            );
            h.into_inner()
        }
        Some(h) => h.into_inner(),
        None => "bramble".into(),
    };
    let interface = match raw.interface {
        Some(i) => {
            let v = i.get_ref();
            if v.is_empty() || v.len() > 15 || v.contains(['/', ' ', ':']) {
                r.error(
                    i.span(),
                    format!("`{v}` is not an interface name"),
                    "write the name `ip link` shows, e.g. eth0 or end0",
                );
            }
            i.into_inner()
        }
        None => "eth0".into(),
    };
    let dhcp_span = raw.dhcp.as_ref().map(|d| d.span()).or(span.clone());
    let dhcp = match &raw.dhcp {
        None => DhcpMode::Proxy,
        Some(d) => match d.get_ref().as_str() {
            "proxy" => DhcpMode::Proxy,
            "server" => DhcpMode::Server,
            "off" => DhcpMode::Off,
            other => {
                r.error(
                    d.span(),
                    format!("dhcp = \"{other}\" is not a DHCP mode"),
                    format!(
                        "{}use \"proxy\" (a router hands out addresses), \"server\" (Bramble does) or \"off\"",
                        suggest(other, &["proxy", "server", "off"])
                    ),
                );
                DhcpMode::Proxy
            }
        },
    };
    let answer = choice(
        &raw.answer,
        "answer",
        &[("known", Answer::Known), ("pis", Answer::Pis), ("all", Answer::All)],
        "\"known\" (the recipe's clients), \"pis\" (and any Raspberry Pi) or \"all\" (every PXE client)",
        Answer::Known,
        r,
    );
    let address: Option<Ipv4Net> =
        r.parse(&raw.address, "write the server's address with its prefix, e.g. \"10.42.0.1/24\"");
    if let (Some(net), Some(a)) = (address, &raw.address)
        && !net.is_host(net.addr)
    {
        r.error(
            a.span(),
            format!("{} is the subnet's network or broadcast address", net.addr),
            "give the server a host address, e.g. the .1 of the subnet",
        );
    }
    if dhcp == DhcpMode::Server && address.is_none() && raw.address.is_none() {
        r.error(
            dhcp_span.clone(),
            "dhcp = \"server\" needs the server's static `address`",
            "add address = \"10.42.0.1/24\" to [server]",
        );
    }
    let gateway: Option<Ipv4Addr> = r.parse(&raw.gateway, "write an IPv4 address, e.g. \"10.42.0.254\"");
    if let (Some(gw), Some(g)) = (gateway, &raw.gateway) {
        match address {
            Some(net) if !net.is_host(gw) => r.error(
                g.span(),
                format!("gateway {gw} is not on the lab subnet {}/{}", net.network(), net.prefix),
                "the gateway must be an address inside `address`'s subnet",
            ),
            Some(net) if net.addr == gw => r.error(
                g.span(),
                "the gateway is the server's own address",
                "remove `gateway` if the server is the router",
            ),
            None if raw.address.is_none() => r.error(
                g.span(),
                "`gateway` without `address`",
                "set the server's static address too, or remove gateway (DHCP gives it)",
            ),
            _ => {}
        }
    }
    let dns = raw
        .dns
        .map(|list| {
            list.into_inner()
                .into_iter()
                .filter_map(|d| r.parse::<Ipv4Addr>(&Some(d), "write an IPv4 address, e.g. \"10.42.0.254\""))
                .collect()
        })
        .unwrap_or_default();
    let domain = raw.domain.map(|d| {
        if d.get_ref().split('.').any(|label| !is_dns_label(label)) {
            r.error(d.span(), format!("`{}` is not a domain name", d.get_ref()), "write e.g. \"lab.example\"");
        }
        d.into_inner()
    });
    let range: Option<Ipv4Range> = r.parse(&raw.range, "write FIRST-LAST, e.g. \"10.42.0.100-10.42.0.199\"");
    match (&raw.range, dhcp) {
        (Some(rs), DhcpMode::Proxy | DhcpMode::Off) => r.error(
            rs.span(),
            format!("`range` is only used with dhcp = \"server\" (this lab uses \"{dhcp}\")"),
            "remove it, or set dhcp = \"server\"",
        ),
        (None, DhcpMode::Server) => r.error(
            dhcp_span.clone(),
            "dhcp = \"server\" needs a `range` to hand out",
            "add e.g. range = \"10.42.0.100-10.42.0.199\" to [server]",
        ),
        _ => {}
    }
    if let (Some(range), Some(rs), Some(net)) = (range, &raw.range, address) {
        if !net.is_host(range.first) || !net.is_host(range.last) {
            r.error(
                rs.span(),
                format!("range {range} is not inside the subnet {}/{}", net.network(), net.prefix),
                "choose addresses between the subnet's network and broadcast addresses",
            );
        } else if range.contains(net.addr) {
            r.error(
                rs.span(),
                format!("range {range} contains the server's own address {}", net.addr),
                "start the range after the server's address",
            );
        } else if let Some(gw) = gateway.filter(|gw| range.contains(*gw)) {
            r.error(rs.span(), format!("range {range} contains the gateway {gw}"), "keep the gateway out of the range");
        }
    }
    let ssh_keys = raw
        .ssh_keys
        .map(|keys| keys.into_inner().into_iter().filter(|k| ssh_key(k, r)).map(Spanned::into_inner).collect())
        .unwrap_or_default();
    let user = match raw.user {
        Some(u) => {
            let v = u.get_ref();
            let valid = !v.is_empty()
                && v.len() <= 32
                && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid {
                r.error(
                    u.span(),
                    format!("`{v}` is not a valid user name"),
                    "use lower-case letters, digits, '_' and '-', starting with a letter",
                );
            } else if v == "root" {
                r.error(u.span(), "the lab user cannot be root", "name an ordinary user; it gets sudo");
            }
            u.into_inner()
        }
        None => "pi".into(),
    };
    let server = Server { hostname, interface, address, gateway, dns, domain, dhcp, answer, range, ssh_keys, user };
    (server, dhcp_span)
}

/// The lab user has no password (nfsroot writes `*`), so without a key nobody can log in to a
/// client or the server image; the build would still succeed and say only "0 SSH keys".
pub fn no_login(user: &str, span: Option<Range<usize>>) -> Diagnostic {
    Diagnostic::warning(
        span,
        format!("nobody can log in to this lab: user `{user}` has no password and [server] has no `ssh_keys`"),
    )
    .help(
        "add your public key to [server]: ssh_keys = [\"ssh-ed25519 AAAA… you@laptop\"], the line of \
         ~/.ssh/id_ed25519.pub (`ssh-keygen -t ed25519` makes one)",
    )
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Whether an `ssh_keys` entry is a public key line; reports it if not.
fn ssh_key(key: &Spanned<String>, r: &mut Report) -> bool {
    let v = key.get_ref().trim();
    if v.contains("PRIVATE KEY") {
        r.error(
            key.span(),
            "this is a private key",
            "put the public key here (the .pub file); remove the private key from the recipe now",
        );
        return false;
    }
    let mut parts = v.split_whitespace();
    let (kind, blob) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !SSH_KEY_TYPES.contains(&kind) || blob.len() < 16 || !blob.starts_with("AAAA") {
        r.error(
            key.span(),
            "not an SSH public key line",
            "paste one line of ~/.ssh/id_ed25519.pub: \"ssh-ed25519 AAAA… comment\"",
        );
        return false;
    }
    true
}

fn model_of(raw: &RawClient) -> Option<Model> {
    Model::ALL.into_iter().find(|m| raw.model.as_ref().is_some_and(|s| s.get_ref() == m.name()))
}

/// The EEPROM chips in the lab, for checking `[eeprom]`; none means "no Pi 4/5 yet".
fn lab_chips(models: &[Model]) -> Vec<Chip> {
    let mut chips: Vec<Chip> = models.iter().filter_map(|m| m.eeprom_chip()).collect();
    chips.sort();
    chips.dedup();
    chips
}

/// `[eeprom]`-style table to bootconf `KEY=VALUE` pairs, each checked for every chip present.
fn eeprom_table(table: EepromTable, chips: &[Chip], r: &mut Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in table {
        let span = key.span().start..value.span().end;
        let text = match value.get_ref() {
            EepromValue::Int(n) if key.get_ref() == "BOOT_ORDER" && *n >= 0 => format!("{n:#x}"),
            EepromValue::Int(n) => n.to_string(),
            EepromValue::Bool(b) => u8::from(*b).to_string(),
            EepromValue::Text(s) => s.clone(),
        };
        if text.contains(['\n', '\r']) {
            r.error(span, format!("{} spans several lines", key.get_ref()), "a bootloader setting is one line");
            continue;
        }
        if key.get_ref() == "BOOT_ORDER" && text.is_empty() {
            let order = bootconf::DEFAULT_BOOT_ORDER;
            let modes = bootconf::describe_boot_order(order).unwrap_or_default();
            r.error(
                span,
                format!("BOOT_ORDER = \"\" leaves the bootloader's own order, {order} ({modes}): the Pi would never boot from the network"),
                format!("remove it for Bramble's {} (SD card, then network), or write an order with 2 in it", bootconf::NETWORK_BOOT_ORDER),
            );
            continue;
        }
        // Whatever TFTP_PREFIX says now: the string is written into the EEPROM either way. It is
        // kept, so the client's folder is not taken from `[eeprom]` instead.
        if key.get_ref() == "TFTP_PREFIX_STR" && !text.is_empty() && !is_inner_folder(&text) {
            r.error(
                span.clone(),
                format!("TFTP_PREFIX_STR `{text}` is not a folder inside the TFTP root"),
                "write a relative folder without `.`, `..` or `//`, e.g. \"lab/node1/\"",
            );
        }
        let targets: Vec<Option<Chip>> =
            if chips.is_empty() { vec![None] } else { chips.iter().copied().map(Some).collect() };
        let mut seen = Vec::new();
        for chip in targets {
            for d in bootconf::check_setting(key.get_ref(), &text, chip) {
                if !seen.contains(&d.message) {
                    seen.push(d.message.clone());
                    r.push(d.at(span.clone()));
                }
            }
        }
        out.push((key.into_inner(), text));
    }
    out
}

/// A TFTP_PREFIX_STR that stays inside the TFTP root: relative, no `.`, `..` or empty parts.
fn is_inner_folder(text: &str) -> bool {
    let inner = text.strip_suffix('/').unwrap_or(text);
    !inner.split('/').any(|c| c.is_empty() || c == "." || c == "..")
}

/// The bootconf.txt the build writes for `chip` (the pinned image's, with `edits` applied) must
/// fit the bootloader; the build checks its file with the same [`bootconf::check_len`] rule.
fn config_fits(
    chip: Chip,
    edits: &[(String, String)],
    span: Option<Range<usize>>,
    whose: &str,
    r: &mut Report,
) -> bool {
    let (len, exact) = bootconf::edited_len(chip, edits);
    let Some(why) = bootconf::too_long(len, exact) else { return true };
    r.error(
        span,
        format!("{whose}'s settings do not fit the {chip} bootloader ({}): {why}", chip.boards()),
        "remove settings: keys the bootloader does not know are written as they are and take room too",
    );
    false
}

/// First place each identifier was used, to point duplicates back at it.
#[derive(Default)]
struct Seen {
    names: HashMap<String, Range<usize>>,
    serials: HashMap<Serial, Range<usize>>,
    macs: HashMap<MacAddr, Range<usize>>,
    addresses: HashMap<Ipv4Addr, Range<usize>>,
    /// Each Pi's TFTP folder, in recipe order.
    folders: Vec<Folder>,
}

/// The folder a Pi asks for its files under (its TFTP_PREFIX), and what decides it.
struct Folder {
    client: String,
    /// Lower case, without the trailing `/`: as the daemon's routing compares it.
    folder: String,
    /// From TFTP_PREFIX_STR (TFTP_PREFIX=1), not the board's serial or MAC.
    by_string: bool,
    /// The serial, the MAC, or the TFTP_PREFIX_STR setting (the client's own or `[eeprom]`'s).
    span: Range<usize>,
}

fn unique<K: Hash + Eq>(
    seen: &mut HashMap<K, Range<usize>>,
    key: K,
    span: Range<usize>,
    what: &str,
    shown: &str,
    r: &mut Report,
) {
    if let Some(first) = seen.get(&key) {
        r.push(
            Diagnostic::error(span, format!("{what} {shown} is used by two clients"))
                .related(first.clone(), "first used here")
                .help(format!("each client needs its own {what}")),
        );
    } else {
        seen.insert(key, span);
    }
}

fn client(
    index: usize,
    raw: Spanned<RawClient>,
    server: &Server,
    (lab_eeprom, lab_prefix_span): (&[(String, String)], Option<Range<usize>>),
    seen: &mut Seen,
    r: &mut Report,
) -> Option<Client> {
    let span = raw.span();
    let raw = raw.into_inner();
    let label = format!("[[client]] #{}", index + 1);
    let name = match &raw.name {
        None => {
            r.error(
                span.clone(),
                format!("{label} has no `name`"),
                "add name = \"node1\": it is also the client's hostname",
            );
            None
        }
        Some(n) => {
            if !is_dns_label(n.get_ref()) {
                r.error(
                    n.span(),
                    format!("client name `{}` is not a valid host name", n.get_ref()),
                    "use lower-case letters, digits and '-' (it becomes the hostname)",
                );
            }
            unique(&mut seen.names, n.get_ref().clone(), n.span(), "name", n.get_ref(), r);
            Some(n.get_ref().clone())
        }
    };
    let label = name.as_ref().map_or(label, |n| format!("client `{n}`"));
    let model = match &raw.model {
        None => {
            r.error(span.clone(), format!("{label} has no `model`"), "add model = \"pi3\", \"pi4\", \"pi5\" or \"pc\"");
            None
        }
        Some(m) => {
            let found = model_of(&raw);
            if found.is_none() {
                r.error(
                    m.span(),
                    format!("`{}` is not a model Bramble knows", m.get_ref()),
                    format!(
                        "{}use \"pi3\" (3B, 3B+), \"pi4\" (4B, 400, CM4), \"pi5\" (5, 500, CM5) or \"pc\" (a PXE machine)",
                        suggest(m.get_ref(), &["pi3", "pi4", "pi5", "pc"])
                    ),
                );
            }
            found
        }
    };
    let serial: Option<Serial> =
        r.parse(&raw.serial, "the serial is on the bootloader's HDMI screen, or `grep Serial /proc/cpuinfo`");
    if let (Some(s), Some(raw_s)) = (serial, &raw.serial) {
        unique(&mut seen.serials, s, raw_s.span(), "serial", &s.to_string(), r);
    }
    let mac: Option<MacAddr> =
        r.parse(&raw.mac, "write six hex pairs, e.g. \"dc:a6:32:01:36:c2\" (`ethtool -P eth0` shows it)");
    if let (Some(m), Some(raw_m)) = (mac, &raw.mac) {
        if m.is_multicast() || m.0 == [0; 6] {
            r.error(
                raw_m.span(),
                format!("{m} is not a board's address (multicast or zero)"),
                "copy the MAC from the board's label or `ethtool -P eth0`",
            );
        } else if model.is_some_and(Model::is_pi) && !RASPBERRY_PI_OUIS.iter().any(|oui| m.0[..3] == oui[..]) {
            r.push(
                Diagnostic::warning(raw_m.span(), format!("{m} does not start with a Raspberry Pi prefix"))
                    .help("Pis netboot only on their built-in Ethernet (b8:27:eb, dc:a6:32, e4:5f:01, 28:cd:c1, d8:3a:dd, 2c:cf:67); check the address"),
            );
        }
        unique(&mut seen.macs, m, raw_m.span(), "MAC address", &m.to_string(), r);
    }
    if model == Some(Model::Pc) {
        if raw.mac.is_none() {
            r.error(
                span.clone(),
                format!("{label} is a PC without a `mac`"),
                "add mac = \"…\": a PXE machine is known by its MAC address",
            );
        }
        for (key, value) in [
            ("serial", raw.serial.as_ref().map(|v| v.span())),
            ("config_txt", raw.config_txt.as_ref().map(|v| v.span())),
        ] {
            if let Some(span) = value {
                r.error(span, format!("`{key}` is for Raspberry Pis, not model = \"pc\""), "remove it");
            }
        }
    } else if raw.serial.is_none() && raw.mac.is_none() {
        r.error(
            span.clone(),
            format!("{label} has neither `serial` nor `mac`"),
            "add serial = \"…\" (8 hex digits): the Pi asks for its files under it",
        );
    }
    let boot = match (&raw.boot, model) {
        (None, Some(Model::Pc)) => ClientBoot::Menu,
        (None, _) => ClientBoot::Os,
        (Some(_), Some(Model::Pc)) => choice(
            &raw.boot,
            "boot",
            &[("menu", ClientBoot::Menu), ("os", ClientBoot::Os)],
            "\"menu\" (the PC boot menu) or \"os\" (the lab's OS over NFS: arm64 UEFI machines)",
            ClientBoot::Menu,
            r,
        ),
        (Some(b), _) => {
            r.error(b.span(), "`boot` is for model = \"pc\"", "remove it: a Pi always boots the lab's OS");
            ClientBoot::Os
        }
    };
    let address: Option<Ipv4Addr> = r.parse(&raw.address, "write an IPv4 address, e.g. \"10.42.0.11\"");
    if let (Some(ip), Some(raw_a)) = (address, &raw.address) {
        if server.dhcp != DhcpMode::Server {
            r.error(
                raw_a.span(),
                format!("a fixed `address` needs dhcp = \"server\" (this lab uses \"{}\")", server.dhcp),
                "remove it and reserve the address on your router, or let Bramble serve DHCP",
            );
        } else if let Some(net) = server.address {
            if !net.is_host(ip) {
                r.error(
                    raw_a.span(),
                    format!("{ip} is not a host address in the lab subnet {}/{}", net.network(), net.prefix),
                    "pick an address inside the server's subnet",
                );
            } else if ip == net.addr || Some(ip) == server.gateway {
                r.error(raw_a.span(), format!("{ip} is the server's or the gateway's address"), "pick a free address");
            }
        }
        unique(&mut seen.addresses, ip, raw_a.span(), "address", &ip.to_string(), r);
    }
    if let Some(c) = raw.cmdline.as_ref().filter(|c| c.get_ref().contains(['\n', '\r'])) {
        r.error(
            c.span(),
            "`cmdline` spans several lines",
            "the kernel command line is one line; separate arguments with spaces",
        );
    }
    if let Some(c) = raw.cmdline.as_ref().filter(|c| c.get_ref().len() > super::CMDLINE_EXTRA_MAX) {
        r.error(
            c.span(),
            format!(
                "`cmdline` is {} bytes; the firmware reads at most {} of cmdline.txt, and the OS and Bramble need the rest",
                c.get_ref().len(),
                super::CMDLINE_TXT_MAX
            ),
            format!("keep the client's own arguments to {} bytes", super::CMDLINE_EXTRA_MAX),
        );
    }
    let prefix_span =
        raw.eeprom.as_ref().and_then(|t| setting_span(t.get_ref(), "TFTP_PREFIX_STR")).or(lab_prefix_span);
    let own_eeprom_span = raw.eeprom.as_ref().map(|t| t.span());
    let eeprom = match (raw.eeprom, model) {
        (Some(t), Some(Model::Pi3)) => {
            r.error(t.span(), "a Pi 3 has no bootloader EEPROM", "remove this client's eeprom table");
            Vec::new()
        }
        (Some(t), Some(Model::Pc)) => {
            r.error(t.span(), "a PC has no Raspberry Pi bootloader EEPROM", "remove this client's eeprom table");
            Vec::new()
        }
        (Some(t), Some(m)) => eeprom_table(t.into_inner(), &lab_chips(&[m]), r),
        (Some(t), None) => eeprom_table(t.into_inner(), &[], r),
        (None, _) => Vec::new(),
    };
    if let Some(chip) = model.and_then(Model::eeprom_chip).filter(|_| !eeprom.is_empty()) {
        // Only when the lab's own settings fit: otherwise that is the one problem to report.
        if bootconf::too_long(bootconf::edited_len(chip, lab_eeprom).0, false).is_none() {
            let edits: Vec<(String, String)> = lab_eeprom.iter().chain(&eeprom).cloned().collect();
            config_fits(chip, &edits, own_eeprom_span, &label, r);
        }
    }
    let client = Client {
        name: name?,
        model: model?,
        serial,
        mac,
        address,
        cmdline: raw.cmdline.map(Spanned::into_inner),
        config_txt: raw.config_txt.map(Spanned::into_inner),
        eeprom,
        boot,
    };
    if client.model.is_pi() {
        let spans = PrefixSpans { serial: &raw.serial, mac: &raw.mac, setting: prefix_span, client: span };
        seen.folders.extend(check_prefix(&client, spans, lab_eeprom, r));
    }
    Some(client)
}

/// Where each thing that can decide a Pi's TFTP folder was written.
struct PrefixSpans<'a> {
    serial: &'a Opt<String>,
    mac: &'a Opt<String>,
    /// TFTP_PREFIX_STR's value: the client's own, else `[eeprom]`'s.
    setting: Option<Range<usize>>,
    client: Range<usize>,
}

/// The span of setting `key`'s value in an `[eeprom]`-style table.
fn setting_span(table: &EepromTable, key: &str) -> Option<Range<usize>> {
    table.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v.span())
}

/// The bootloader asks for files under a prefix (TFTP_PREFIX); the client needs the identifier
/// that prefix is made of, and a TFTP_PREFIX_STR must name a folder (the daemon routes each
/// client's requests by the folder they start with). Returns the client's folder.
fn check_prefix(client: &Client, spans: PrefixSpans<'_>, lab: &[(String, String)], r: &mut Report) -> Option<Folder> {
    let value = |key: &str| client.eeprom.iter().chain(lab).find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mode =
        if client.model == Model::Pi3 { 0 } else { value("TFTP_PREFIX").and_then(|v| v.parse().ok()).unwrap_or(0) };
    let name = &client.name;
    let folder = |folder: String, by_string: bool, span: Range<usize>| {
        Some(Folder { client: name.clone(), folder: folder.to_ascii_lowercase(), by_string, span })
    };
    match mode {
        0 => match (client.serial, spans.serial) {
            (Some(serial), Some(at)) => folder(serial.to_string(), false, at.span()),
            // Written but not a serial: reported where it is.
            (None, Some(_)) => None,
            (_, None) => {
                r.error(
                    spans.client,
                    format!("client `{name}` has no `serial`, but the bootloader asks for files under it (TFTP_PREFIX=0)"),
                    "add serial = \"…\" (the bootloader's HDMI screen shows it), or set TFTP_PREFIX = 2 in [eeprom] to use MACs",
                );
                None
            }
        },
        2 => match (client.mac, spans.mac) {
            (Some(mac), Some(at)) => folder(mac.dashed(), false, at.span()),
            (None, Some(_)) => None,
            (_, None) => {
                r.error(
                    spans.client,
                    format!("client `{name}` has no `mac`, but TFTP_PREFIX=2 names its files by MAC"),
                    "add mac = \"…\"",
                );
                None
            }
        },
        1 => {
            let text = value("TFTP_PREFIX_STR").unwrap_or("");
            let at = spans.setting.unwrap_or(spans.client);
            if text.is_empty() {
                r.error(
                    at,
                    format!("client `{name}` uses TFTP_PREFIX=1 without TFTP_PREFIX_STR"),
                    format!("set TFTP_PREFIX_STR, e.g. \"lab/{name}/\""),
                );
                return None;
            }
            let Some(inner) = text.strip_suffix('/') else {
                // eeprom-bootloader.adoc: the string goes before each file name as it is.
                r.error(
                    at,
                    format!(
                        "TFTP_PREFIX_STR `{text}` does not end in `/`: the bootloader would ask for `{text}start4.elf`"
                    ),
                    format!("write \"{text}/\": Bramble serves each client's files from a folder"),
                );
                return None;
            };
            if !is_inner_folder(text) {
                // Reported where it is written.
                return None;
            }
            folder(inner.to_string(), true, at)
        }
        _ => None,
    }
}

/// Two Pis that ask for their files under one folder cannot be told apart: the daemon would send
/// both to the first one's files (the lab-wide `TFTP_PREFIX = 1` with one TFTP_PREFIX_STR).
/// Shared serials and MACs are reported where they are written, so only TFTP_PREFIX_STR's here.
fn shared_folders(folders: &[Folder], r: &mut Report) {
    let mut groups: Vec<(&str, Vec<&Folder>)> = Vec::new();
    for f in folders {
        match groups.iter_mut().find(|(name, _)| *name == f.folder) {
            Some((_, users)) => users.push(f),
            None => groups.push((&f.folder, vec![f])),
        }
    }
    for (folder, users) in groups.iter().filter(|(_, u)| u.len() > 1 && u.iter().any(|f| f.by_string)) {
        let names: Vec<String> = users.iter().map(|f| format!("`{}`", f.client)).collect();
        let (all, last) = names.split_at(names.len() - 1);
        let both = if users.len() == 2 { "both" } else { "all" };
        let (first, second) = (users[0], users[1]);
        let mut d = Diagnostic::error(
            second.span.clone(),
            format!(
                "clients {} and {} {both} ask for their files under `{folder}/`: the server cannot tell their requests apart",
                all.join(", "),
                last[0]
            ),
        )
        .help(format!(
            "give each client its own folder in its [client.eeprom] table, e.g. TFTP_PREFIX_STR = \"{folder}/{}/\" for `{}`, or set TFTP_PREFIX = 0 (each Pi's serial) or 2 (its MAC)",
            second.client, second.client
        ));
        if first.span != second.span {
            d = d.related(first.span.clone(), format!("`{}`'s folder", first.client));
        }
        r.push(d);
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::parse;

    const BASE: &str = r#"
[lab]
name = "t"

[server]
dhcp = "server"
address = "10.42.0.1/24"
range = "10.42.0.100-10.42.0.199"
ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@lab"]
"#;

    #[test]
    fn a_lab_nobody_can_log_in_to_is_warned_about() {
        let keyless = "[lab]\nname = \"t\"\n[server]\nuser = \"ada\"\n";
        let parsed = parse(&format!("{keyless}{}", client("serial = \"d9780558\"")));
        let d: Vec<_> = parsed.diagnostics.iter().collect();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(!d[0].is_error());
        assert!(d[0].message.contains("user `ada` has no password"), "{}", d[0].message);
        assert!(d[0].help.as_deref().unwrap().contains("ssh_keys = [\"ssh-ed25519"), "{:?}", d[0].help);
        // A key, or no client booting the OS: nothing to say.
        assert!(parse(&format!("{BASE}{}", client("serial = \"d9780558\""))).diagnostics.is_empty());
        assert!(parse(keyless).diagnostics.iter().all(|d| !d.message.starts_with("nobody")));
    }

    fn errors(extra: &str) -> Vec<String> {
        let src = format!("{BASE}{extra}");
        parse(&src).diagnostics.into_iter().filter(|d| d.is_error()).map(|d| d.message).collect()
    }

    fn client(body: &str) -> String {
        format!("[[client]]\nname = \"n1\"\nmodel = \"pi4\"\n{body}\n")
    }

    #[test]
    fn a_good_client_passes() {
        assert!(errors(&client("serial = \"d9780558\"\nmac = \"dc:a6:32:01:36:c2\"")).is_empty());
    }

    #[test]
    fn malformed_identifiers_are_errors() {
        assert!(errors(&client("serial = \"xyz\""))[0].contains("not a serial number"));
        assert!(errors(&client("serial = \"d9780558\"\nmac = \"dc:a6:32:01:36\""))[0].contains("not a MAC address"));
        assert!(errors(&client("serial = \"d9780558\"\naddress = \"10.42.0.300\""))[0].contains("not an IPv4 address"));
    }

    #[test]
    fn duplicates_point_back_at_the_first() {
        let two = format!(
            "{}{}",
            client("serial = \"d9780558\""),
            client("serial = \"10000000d9780558\"").replace("n1", "n2")
        );
        let src = format!("{BASE}{two}");
        let parsed = parse(&src);
        let dup = parsed.diagnostics.iter().find(|d| d.message.contains("used by two clients")).unwrap();
        assert_eq!(dup.message, "serial d9780558 is used by two clients");
        let first = dup.related.clone().unwrap().0;
        assert_eq!(&src[first], "\"d9780558\"");
        let names = format!("{}{}", client("serial = \"00000001\""), client("serial = \"00000002\""));
        assert!(errors(&names).contains(&"name n1 is used by two clients".to_string()));
    }

    #[test]
    fn range_and_addresses_must_fit_the_subnet() {
        let src = "[lab]\nname = \"t\"\n[server]\ndhcp = \"server\"\naddress = \"10.42.0.1/24\"\nrange = \"10.42.0.100-10.42.1.10\"\n";
        let errs: Vec<String> = parse(src).diagnostics.into_iter().map(|d| d.message).collect();
        assert!(errs[0].contains("not inside the subnet 10.42.0.0/24"), "{errs:?}");
        let src = src.replace("10.42.1.10", "10.42.0.10").replace("10.42.0.100", "10.42.0.1");
        assert!(parse(&src).diagnostics[0].message.contains("contains the server's own address"));
        assert!(
            errors(&client("serial = \"d9780558\"\naddress = \"10.43.0.5\""))[0]
                .contains("not a host address in the lab subnet")
        );
    }

    #[test]
    fn mode_rules_explain_themselves() {
        let proxy = "[lab]\nname = \"t\"\n[server]\ndhcp = \"proxy\"\nrange = \"10.0.0.1-10.0.0.9\"\n";
        assert!(parse(proxy).diagnostics.iter().any(|d| d.message.contains("only used with dhcp = \"server\"")));
        let server = "[lab]\nname = \"t\"\n[server]\ndhcp = \"server\"\n";
        let msgs: Vec<String> = parse(server).diagnostics.into_iter().map(|d| d.message).collect();
        assert!(msgs.iter().any(|m| m.contains("needs the server's static `address`")));
        assert!(msgs.iter().any(|m| m.contains("needs a `range`")));
        let typo = "[lab]\nname = \"t\"\n[server]\ndhcp = \"proxi\"\n";
        let d = &parse(typo).diagnostics[0];
        assert!(d.help.as_deref().unwrap().starts_with("did you mean `proxy`?"));
    }

    #[test]
    fn unknown_model_suggests_the_nearest() {
        let d =
            parse(&format!("{BASE}[[client]]\nname = \"a\"\nmodel = \"pi4b\"\nserial = \"00000001\"\n")).diagnostics;
        assert_eq!(d[0].message, "`pi4b` is not a model Bramble knows");
        assert!(d[0].help.as_deref().unwrap().starts_with("did you mean `pi4`?"));
    }

    #[test]
    fn prefix_mode_decides_which_identifier_is_needed() {
        assert!(errors(&client("mac = \"dc:a6:32:01:36:c2\""))[0].contains("has no `serial`"));
        let by_mac = format!("{}[eeprom]\nTFTP_PREFIX = 2\n", client("mac = \"dc:a6:32:01:36:c2\""));
        assert!(errors(&by_mac).is_empty());
        let by_mac_no_mac = format!("{}[eeprom]\nTFTP_PREFIX = 2\n", client("serial = \"d9780558\""));
        assert!(errors(&by_mac_no_mac)[0].contains("has no `mac`"));
    }

    #[test]
    fn a_tftp_prefix_str_names_one_clients_folder() {
        let pis = |eeprom: &str, own: [&str; 3]| {
            let mut src = format!("{BASE}[eeprom]\nTFTP_PREFIX = 1\n{eeprom}\n");
            for (i, extra) in own.iter().enumerate() {
                let table = if extra.is_empty() { String::new() } else { format!("[client.eeprom]\n{extra}\n") };
                src.push_str(&format!(
                    "[[client]]\nname = \"n{i}\"\nmodel = \"pi4\"\nserial = \"0000000{i}\"\n{table}"
                ));
            }
            src
        };
        // One lab-wide string: every Pi asks under `lab/`. One error, at the setting.
        let src = pis("TFTP_PREFIX_STR = \"lab/\"", ["", "", ""]);
        let d: Vec<_> = parse(&src).diagnostics.into_iter().filter(|d| d.is_error()).collect();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].message,
            "clients `n0`, `n1` and `n2` all ask for their files under `lab/`: the server cannot tell their requests apart"
        );
        assert_eq!(&src[d[0].span.clone().unwrap()], "\"lab/\"");
        assert!(d[0].help.as_deref().unwrap().contains("TFTP_PREFIX_STR = \"lab/n1/\" for `n1`"), "{:?}", d[0].help);
        // Each its own: fine, even nested under another's.
        let own =
            pis("TFTP_PREFIX_STR = \"lab/\"", ["", "TFTP_PREFIX_STR = \"lab/n1/\"", "TFTP_PREFIX_STR = \"LAB/N2/\""]);
        assert!(parse(&own).diagnostics.iter().all(|d| !d.is_error()), "{:?}", parse(&own).diagnostics);
        // Two the same (case does not tell them apart), pointing back at the first.
        let two = pis(
            "",
            ["TFTP_PREFIX_STR = \"rack/a/\"", "TFTP_PREFIX_STR = \"Rack/A/\"", "TFTP_PREFIX_STR = \"rack/c/\""],
        );
        let d = parse(&two).diagnostics.into_iter().find(|d| d.is_error()).unwrap();
        assert!(d.message.starts_with("clients `n0` and `n1` both ask"), "{}", d.message);
        assert_eq!(&two[d.span.unwrap()], "\"Rack/A/\"");
        assert_eq!(&two[d.related.unwrap().0], "\"rack/a/\"");
        // A string that is another Pi's serial folder.
        let serial = pis("", ["TFTP_PREFIX = 0", "TFTP_PREFIX_STR = \"00000000/\"", "TFTP_PREFIX_STR = \"c/\""]);
        let errs: Vec<String> =
            parse(&serial).diagnostics.into_iter().filter(|d| d.is_error()).map(|d| d.message).collect();
        assert_eq!(
            errs,
            [
                "clients `n0` and `n1` both ask for their files under `00000000/`: the server cannot tell their requests apart"
            ]
        );
        // Not a folder.
        let bare = pis("TFTP_PREFIX_STR = \"lab\"", ["TFTP_PREFIX_STR = \"a/\"", "", "TFTP_PREFIX_STR = \"../x/\""]);
        let bare: Vec<String> =
            parse(&bare).diagnostics.into_iter().filter(|d| d.is_error()).map(|d| d.message).collect();
        assert_eq!(bare.len(), 2, "{bare:?}");
        assert_eq!(bare[0], "TFTP_PREFIX_STR `lab` does not end in `/`: the bootloader would ask for `labstart4.elf`");
        assert_eq!(bare[1], "TFTP_PREFIX_STR `../x/` is not a folder inside the TFTP root");
    }

    #[test]
    fn eeprom_settings_are_checked_like_bootconf() {
        let errs =
            errors(&format!("{}[eeprom]\nBOOT_ORDER = \"f21\"\nTFTP_PREFIX = 7\n", client("serial = \"d9780558\"")));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("no 0x prefix"));
        assert!(errs[1].contains("between 0 and 2"));
        let src = format!("{BASE}{}[eeprom]\nBOOT_ORDER = 0xf21\nBOOT_UART = true\n", client("serial = \"d9780558\""));
        let recipe = parse(&src).recipe.unwrap();
        assert_eq!(recipe.eeprom, vec![("BOOT_ORDER".into(), "0xf21".into()), ("BOOT_UART".into(), "1".into())]);
        let pi3 = client("serial = \"d9780558\"\n[client.eeprom]\nBOOT_ORDER = 0xf21").replace("pi4", "pi3");
        assert!(errors(&pi3)[0].contains("Pi 3 has no bootloader EEPROM"));
    }

    #[test]
    fn secrets_and_junk_in_ssh_keys_are_refused() {
        let src = "[lab]\nname = \"t\"\n[server]\nssh_keys = [\"-----BEGIN OPENSSH PRIVATE KEY-----\", \"hello\", \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me\"]\n";
        let msgs: Vec<String> = parse(src).diagnostics.into_iter().map(|d| d.message).collect();
        assert_eq!(msgs[0], "this is a private key");
        assert_eq!(msgs[1], "not an SSH public key line");
        assert_eq!(msgs.len(), 2, "{msgs:?}");
    }

    #[test]
    fn boot_order_defaults_to_sd_then_network() {
        let src = format!("{BASE}{}[eeprom]\nTFTP_PREFIX = 0\n", client("serial = \"d9780558\""));
        let recipe = parse(&src).recipe.unwrap();
        assert_eq!(recipe.eeprom, vec![("BOOT_ORDER".into(), "0xf21".into()), ("TFTP_PREFIX".into(), "0".into())]);
    }

    #[test]
    fn debian_archive_defaults_and_checks() {
        let recipe = parse(&format!("{BASE}{}", client("serial = \"d9780558\""))).recipe.unwrap();
        assert_eq!(recipe.debian.mirror, "https://deb.debian.org/debian");
        assert_eq!(recipe.debian.suite, "bookworm");
        assert_eq!(recipe.debian.components, ["main"]);
        assert_eq!(recipe.debian.keyring, std::path::Path::new("/usr/share/keyrings/debian-archive-keyring.gpg"));
        let rpi = format!(
            "{BASE}{}[debian]\nmirror = \"http://archive.raspberrypi.com/debian/\"\nsuite = \"bookworm\"\n\
             components = [\"main\", \"untested\"]\nkeyring = \"/usr/share/keyrings/raspberrypi-archive-keyring.gpg\"\n",
            client("serial = \"d9780558\"")
        );
        let recipe = parse(&rpi).recipe.unwrap();
        assert_eq!(recipe.debian.mirror, "http://archive.raspberrypi.com/debian");
        assert_eq!(recipe.debian.components, ["main", "untested"]);
        let bad = "[debian]\nmirror = \"ftp://x\"\nsuite = \"../etc\"\ncomponents = [\"main\", \"main\", \"a b\"]\nkeyring = \"keys.gpg\"\n";
        let src = format!("{BASE}{}{bad}", client("serial = \"d9780558\""));
        let parsed = parse(&src);
        let msgs: Vec<&str> = parsed.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "`ftp://x` is not an http(s) URL",
                "`../etc` is not a suite name",
                "component `main` is listed twice",
                "`a b` is not a component name",
                "keyring `keys.gpg` is not an absolute path"
            ]
        );
        let dup = parsed.diagnostics.iter().find(|d| d.message.contains("twice")).unwrap();
        assert_eq!(&src[dup.span.clone().unwrap()], "\"main\"");
        assert_eq!(&src[dup.related.clone().unwrap().0], "\"main\"");
        assert!(errors("[debian]\ncomponents = []\n")[0].contains("`components` is empty"));
        assert!(errors("[debian]\nsuit = \"x\"\n")[0].contains("unknown key `suit` in [debian]"));
    }

    #[test]
    fn root_and_host_key_modes() {
        let lab = |extra: &str| format!("[lab]\nname = \"t\"\n{extra}\n");
        let msgs = |src: String| {
            parse(&src).diagnostics.into_iter().filter(|d| d.is_error()).map(|d| d.message).collect::<Vec<_>>()
        };
        assert_eq!(
            msgs(lab("ssh_host_keys = \"per-client\"")),
            ["ssh_host_keys = \"per-client\" needs root = \"per-client\""]
        );
        assert_eq!(msgs(lab("root = \"per-client\"\nssh_host_keys = \"per-client\"")), Vec::<String>::new());
        assert_eq!(msgs(lab("root = \"own\"")), ["root = \"own\" is not one of shared, per-client"]);
        assert!(msgs(lab("overlays = [\"../x\"]"))[0].contains("must be a folder beside the recipe"));
        let debian =
            parse(&lab("[os]\nsource = \"debian\"\npackages = [\"htop\", \"Bad_Name\", \"htop\"]")).diagnostics;
        assert_eq!(debian[0].message, "`Bad_Name` is not a Debian package name");
        let ok = parse(&lab("[os]\nsource = \"debian\"\npackages = [\"vim\", \"htop\", \"vim\"]")).recipe.unwrap();
        assert_eq!(
            ok.os,
            crate::recipe::OsSource::Debian(crate::recipe::DebianRoot { packages: vec!["htop".into(), "vim".into()] })
        );
    }

    #[test]
    fn missing_lab_and_out_of_range_epoch() {
        assert_eq!(parse("").diagnostics[0].message, "the recipe has no [lab] table");
        let old = "[lab]\nname = \"t\"\nsource_date_epoch = 0\n";
        assert!(parse(old).diagnostics[0].message.contains("out of range"));
    }
}
