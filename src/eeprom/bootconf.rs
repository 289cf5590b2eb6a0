//! `bootconf.txt`, the bootloader's configuration: read it line by line, edit one key the way a
//! person would, and check every setting against what the bootloader documents.
//!
//! The syntax is config.txt's: `KEY=VALUE` with no spaces around `=`, `#` comments at the start
//! of a line, `[filter]` sections; later settings override earlier ones. Everything from a
//! `[config.txt]` section to the end of the file is not for the bootloader: the firmware appends
//! it to the OS's config.txt. Sources: Raspberry Pi documentation, eeprom-bootloader.adoc
//! ("Configuration properties") and research/pi-netboot.md §1.8.

use super::Chip;
use crate::diagnostic::Diagnostic;
use std::ops::Range;

/// One line of the file. `range` excludes the line terminator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub number: usize,
    pub range: Range<usize>,
    pub kind: LineKind<'a>,
    pub scope: Scope,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind<'a> {
    Blank,
    Comment,
    Section(&'a str),
    Setting {
        key: &'a str,
        value: &'a str,
    },
    /// Neither blank, comment, section nor `KEY=VALUE`; the bootloader ignores it.
    Other,
}

/// Which boards a line applies to, from the section it sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Before any section, or under `[all]`.
    Always,
    /// Under a conditional filter such as `[pi5]` or `[gpio8=0]`, or `[none]`.
    Conditional,
    /// At or after `[config.txt]`: text for the OS's config.txt.
    ConfigTxt,
}

/// Split the file into lines and classify each.
pub fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut scope = Scope::Always;
    let mut start = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let content = raw.strip_suffix('\n').unwrap_or(raw);
        let content = content.strip_suffix('\r').unwrap_or(content);
        let range = start..start + content.len();
        start += raw.len();
        let trimmed = content.trim();
        let kind = if trimmed.is_empty() {
            LineKind::Blank
        } else if trimmed.starts_with('#') {
            LineKind::Comment
        } else if trimmed.starts_with('[') && trimmed.ends_with(']') {
            let name = &trimmed[1..trimmed.len() - 1];
            if scope != Scope::ConfigTxt {
                scope = match name {
                    "all" => Scope::Always,
                    "config.txt" => Scope::ConfigTxt,
                    _ => Scope::Conditional,
                };
            }
            LineKind::Section(name)
        } else if let Some((key, value)) = content.split_once('=') {
            LineKind::Setting { key, value }
        } else {
            LineKind::Other
        };
        out.push(Line { number: index + 1, range, kind, scope });
    }
    out
}

/// The value a key has on every board: its last setting outside conditional sections.
pub fn effective<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    lines(text).into_iter().rev().find_map(|line| match line.kind {
        LineKind::Setting { key: k, value } if k == key && line.scope == Scope::Always => Some(value),
        _ => None,
    })
}

/// Set `key` to `value` for every board: replace its last unconditional line, or add the line at
/// the end of the bootloader's part of the file, opening an `[all]` section if the file ends
/// inside a conditional one. Line endings follow the file's.
pub fn set(text: &str, key: &str, value: &str) -> String {
    let all = lines(text);
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let setting = format!("{key}={value}");
    let existing = all
        .iter()
        .rev()
        .find(|l| l.scope == Scope::Always && matches!(l.kind, LineKind::Setting { key: k, .. } if k == key));
    if let Some(line) = existing {
        return format!("{}{setting}{}", &text[..line.range.start], &text[line.range.end..]);
    }
    // Insert before `[config.txt]`, where the bootloader's settings end.
    let config_txt = all.iter().find(|l| l.kind == LineKind::Section("config.txt"));
    let (at, scope_before) = match config_txt {
        Some(line) => {
            let before = all.iter().take_while(|l| l.number < line.number).last();
            (line.range.start, before.map_or(Scope::Always, |l| l.scope))
        }
        None => (text.len(), all.last().map_or(Scope::Always, |l| l.scope)),
    };
    let mut insert = String::new();
    if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        insert.push_str(newline);
    }
    if scope_before != Scope::Always {
        insert.push_str("[all]");
        insert.push_str(newline);
    }
    insert.push_str(&setting);
    insert.push_str(newline);
    format!("{}{insert}{}", &text[..at], &text[at..])
}

/// The most bytes `bootconf.txt` may hold: the image's file section less its header
/// (research/pi-netboot.md §3.4); `rpi-eeprom-config` refuses more, and so does
/// [`super::EepromImage::with_bootconf`].
pub const MAX_LEN: usize = super::image::MAX_BOOTCONF_LEN;

/// Whether a whole `bootconf.txt` fits the bootloader; the message says by how much it does not.
/// `bramble validate` checks the file a recipe's settings make from [`pinned`], and the build
/// checks the file it makes from the pinned image itself, both here.
pub fn check_len(config: &str) -> Result<(), String> {
    too_long(config.len(), true).map_or(Ok(()), Err)
}

/// The message for a `bootconf.txt` of `len` bytes (`exact`, or at least that many), if too long.
pub fn too_long(len: usize, exact: bool) -> Option<String> {
    let at_least = if exact { "" } else { "at least " };
    (len > MAX_LEN)
        .then(|| format!("bootconf.txt would be {at_least}{len} bytes; the bootloader holds at most {MAX_LEN}"))
}

/// The `bootconf.txt` of the bootloader release Bramble pins for `chip`
/// (source/eeprom_release.rs), which a lab's settings are applied to. A test reads it from the
/// pinned images.
pub fn pinned(chip: Chip) -> &'static str {
    match chip {
        Chip::Bcm2711 => "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\nNET_INSTALL_AT_POWER_ON=1\n",
        Chip::Bcm2712 => "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf461\nNET_INSTALL_AT_POWER_ON=1\n",
    }
}

/// The length of the file `edits` make of [`pinned`] (written by `card::edited_config`, as the
/// build writes it), and whether that is exact. A setting is at least its own `KEY=VALUE` line,
/// so settings far too long by that count are answered with that lower bound, without editing:
/// each edit costs the file's length, and 40,000 of them would take minutes.
pub fn edited_len(chip: Chip, edits: &[(String, String)]) -> (usize, bool) {
    // Each key once, with the last value given for it: the line it ends up as.
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (key, value) in edits {
        last.insert(key, value.len());
    }
    let least: usize = last.iter().map(|(k, v)| k.len() + 1 + v).sum();
    // Exact up to four times the limit: at most some 64 MB of copying.
    if least > 4 * MAX_LEN || edits.len() > MAX_LEN {
        return (least, false);
    }
    (super::card::edited_config(pinned(chip), None, edits).len(), true)
}

/// Boot modes, one per `BOOT_ORDER` nibble (eeprom-bootloader.adoc, "BOOT_ORDER fields").
pub fn boot_mode_name(nibble: u8) -> Option<&'static str> {
    Some(match nibble {
        0x0 => "SD CARD DETECT",
        0x1 => "SD CARD",
        0x2 => "NETWORK",
        0x3 => "RPIBOOT",
        0x4 => "USB-MSD",
        0x5 => "BCM-USB-MSD",
        0x6 => "NVME",
        0x7 => "HTTP",
        0xe => "STOP",
        0xf => "RESTART",
        _ => return None,
    })
}

/// The bootloader's default when `BOOT_ORDER` is unset or empty.
pub const DEFAULT_BOOT_ORDER: &str = "0xf41";
/// What Bramble writes unless told otherwise: SD card first (so a card can still rescue a
/// board), then network, repeat; the documentation's network-boot example.
pub const NETWORK_BOOT_ORDER: &str = "0xf21";

/// `BOOT_ORDER`'s nibbles in the order the bootloader tries them (least significant first).
pub fn parse_boot_order(value: &str) -> Result<Vec<u8>, String> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .ok_or_else(|| format!("`{value}` has no 0x prefix; BOOT_ORDER is hexadecimal, e.g. 0xf21"))?;
    if digits.is_empty() || digits.len() > 8 {
        return Err(format!("`{value}` must have 1 to 8 hex digits, one per boot mode"));
    }
    let mut modes = Vec::new();
    for c in digits.chars().rev() {
        let nibble = c.to_digit(16).ok_or_else(|| format!("`{c}` in `{value}` is not a hex digit"))? as u8;
        if boot_mode_name(nibble).is_none() {
            return Err(format!("{nibble:#x} in `{value}` is not a boot mode"));
        }
        modes.push(nibble);
    }
    Ok(modes)
}

/// `BOOT_ORDER` in words: "SD CARD, NETWORK, RESTART".
pub fn describe_boot_order(value: &str) -> Result<String, String> {
    let modes = parse_boot_order(value)?;
    Ok(modes.iter().filter_map(|&m| boot_mode_name(m)).collect::<Vec<_>>().join(", "))
}

/// How a property's value is written.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Flag,
    /// Decimal or 0x-hex integer within bounds (inclusive).
    Int(i64, i64),
    BootOrder,
    Ipv4,
    /// Free text of at most this many bytes.
    Text(usize),
    Mac,
    HttpHost,
    Sha256,
    OneOf(&'static [&'static str]),
}

/// Which SoC a property is for, when only one (the doc's "Raspberry Pi 5 only" and the like).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Only {
    Any,
    Chip(Chip),
}

const NO_MAX: i64 = i64::MAX;
const MS_MIN_5S: Kind = Kind::Int(5000, NO_MAX);
const RETRIES: Kind = Kind::Int(-1, NO_MAX);
const COUNT: Kind = Kind::Int(0, NO_MAX);
const FREE: Kind = Kind::Text(usize::MAX);
const PI5: Only = Only::Chip(Chip::Bcm2712);
const PI4: Only = Only::Chip(Chip::Bcm2711);

/// Every documented property (eeprom-bootloader.adoc "Configuration properties", plus
/// SIGNED_BOOT from usbboot's secure-boot docs), with its value form.
const PROPERTIES: &[(&str, Kind, Only)] = &[
    ("BOOT_UART", Kind::Flag, Only::Any),
    ("UART_BAUD", Kind::OneOf(&["9600", "19200", "38400", "57600", "115200", "230400", "460800", "921600"]), PI5),
    ("WAKE_ON_GPIO", Kind::Int(0, 2), Only::Any),
    ("POWER_OFF_ON_HALT", Kind::Flag, Only::Any),
    ("WAIT_FOR_POWER_BUTTON", Kind::Flag, PI5),
    ("BOOT_ORDER", Kind::BootOrder, Only::Any),
    ("BOOT_WATCHDOG_TIMEOUT", COUNT, Only::Any),
    ("BOOT_WATCHDOG_PARTITION", COUNT, Only::Any),
    ("MAX_RESTARTS", RETRIES, Only::Any),
    ("REBOOT_ON_FATAL_ERROR", Kind::Flag, Only::Any),
    ("SD_BOOT_MAX_RETRIES", RETRIES, Only::Any),
    ("SD_OVERCURRENT_CHECK", Kind::Flag, Only::Any),
    ("SD_QUIRKS", COUNT, Only::Any),
    ("NET_BOOT_MAX_RETRIES", RETRIES, Only::Any),
    ("DHCP_TIMEOUT", MS_MIN_5S, Only::Any),
    ("DHCP_REQ_TIMEOUT", Kind::Int(500, NO_MAX), Only::Any),
    ("TFTP_FILE_TIMEOUT", MS_MIN_5S, Only::Any),
    ("TFTP_IP", Kind::Ipv4, Only::Any),
    ("TFTP_PREFIX", Kind::Int(0, 2), Only::Any),
    ("TFTP_PREFIX_STR", Kind::Text(32), Only::Any),
    ("PXE_OPTION43", FREE, Only::Any),
    ("DHCP_OPTION97", Kind::Int(0, u32::MAX as i64), Only::Any),
    ("MAC_ADDRESS", Kind::Mac, Only::Any),
    ("MAC_ADDRESS_OTP", FREE, Only::Any),
    ("CLIENT_IP", Kind::Ipv4, Only::Any),
    ("SUBNET", Kind::Ipv4, Only::Any),
    ("GATEWAY", Kind::Ipv4, Only::Any),
    ("DISABLE_HDMI", Kind::Flag, Only::Any),
    ("HDMI_DELAY", COUNT, Only::Any),
    ("ENABLE_SELF_UPDATE", Kind::Flag, Only::Any),
    ("FREEZE_VERSION", Kind::Flag, Only::Any),
    ("HTTP_HOST", Kind::HttpHost, Only::Any),
    ("HTTP_PORT", Kind::Int(1, 65535), Only::Any),
    ("HTTP_PATH", FREE, Only::Any),
    ("HTTP_CACERT_HASH", Kind::Sha256, PI5),
    ("IMAGER_REPO_URL", FREE, Only::Any),
    ("NET_INSTALL_ENABLED", Kind::Flag, Only::Any),
    ("NET_INSTALL_AT_POWER_ON", Kind::Flag, Only::Any),
    ("NET_INSTALL_KEYBOARD_WAIT", COUNT, Only::Any),
    ("NETCONSOLE", Kind::Text(32), Only::Any),
    ("PARTITION", COUNT, Only::Any),
    ("PARTITION_WALK", Kind::Flag, Only::Any),
    ("BOOTVAR0", COUNT, Only::Any),
    ("PCIE_PROBE", Kind::Flag, PI5),
    ("PSU_MAX_CURRENT", COUNT, PI5),
    ("USB_MSD_EXCLUDE_VID_PID", FREE, Only::Any),
    ("USB_MSD_DISCOVER_TIMEOUT", MS_MIN_5S, Only::Any),
    ("USB_MSD_LUN_TIMEOUT", Kind::Int(100, NO_MAX), Only::Any),
    ("USB_MSD_PWR_OFF_TIME", Kind::Int(0, 5000), PI4),
    ("USB_MSD_STARTUP_DELAY", Kind::Int(0, 30000), Only::Any),
    ("VL805", Kind::Flag, PI4),
    ("XHCI_DEBUG", COUNT, Only::Any),
    ("SDRAM_BANKLOW", Kind::Int(0, 4), Only::Any),
    ("SIGNED_BOOT", Kind::Flag, Only::Any),
];

/// Whether `key` is a documented bootloader property.
pub fn is_known(key: &str) -> bool {
    PROPERTIES.iter().any(|(k, ..)| *k == key)
}

/// Check one `KEY=VALUE` against the documentation. An empty value means "the default" and is
/// always accepted. `chip` narrows checks to one SoC when the image is known. The problems come
/// without a location; callers attach one with [`Diagnostic::at`].
pub fn check_setting(key: &str, value: &str, chip: Option<Chip>) -> Vec<Diagnostic> {
    let Some(&(_, kind, only)) = PROPERTIES.iter().find(|(k, ..)| *k == key) else {
        return vec![unknown_key(key)];
    };
    let mut found = Vec::new();
    if let (Only::Chip(needed), Some(chip)) = (only, chip)
        && needed != chip
    {
        found.push(Diagnostic::warning(None, format!("{key} has no effect on {chip} ({})", chip.boards())));
    }
    if value.is_empty() {
        return found;
    }
    if let Err((message, help)) = check_value(key, kind, value) {
        found.push(Diagnostic::error(None, message).help(help));
    } else if kind_is(kind, Kind::BootOrder) {
        found.extend(boot_order_warnings(value, chip));
    }
    found
}

fn kind_is(a: Kind, b: Kind) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

fn unknown_key(key: &str) -> Diagnostic {
    let nearest = PROPERTIES
        .iter()
        .map(|(k, ..)| (strsim::jaro_winkler(&key.to_ascii_uppercase(), k), *k))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.85);
    let help = match nearest {
        Some((_, k)) => {
            format!("did you mean {k}? It is kept as written; the bootloader ignores keys it does not know")
        }
        None => "it is kept as written; the bootloader ignores keys it does not know".into(),
    };
    Diagnostic::warning(None, format!("{key} is not a documented bootloader property")).help(help)
}

type Invalid = (String, String);

fn check_value(key: &str, kind: Kind, value: &str) -> Result<(), Invalid> {
    let fail = |what: String, help: &str| Err((format!("{key}={value}: {what}"), help.to_string()));
    match kind {
        Kind::Flag => match value {
            "0" | "1" => Ok(()),
            _ => fail("must be 0 or 1".into(), &format!("write {key}=0 or {key}=1")),
        },
        Kind::Int(min, max) => match parse_int(value) {
            None => fail("is not a number".into(), "write a decimal number, or hexadecimal with 0x"),
            Some(n) if n < min || n > max => {
                let range = match (min, max) {
                    (min, NO_MAX) => format!("at least {min}"),
                    (min, max) => format!("between {min} and {max}"),
                };
                fail(format!("is out of range: it must be {range}"), &format!("write a value {range}"))
            }
            Some(_) => Ok(()),
        },
        Kind::BootOrder => match parse_boot_order(value) {
            Ok(_) => Ok(()),
            Err(why) => fail(
                why,
                "BOOT_ORDER is 0x then up to 8 modes, tried right to left: 1 SD, 2 NETWORK, 4 USB-MSD, \
                 6 NVME, 7 HTTP, 3 RPIBOOT, e STOP, f RESTART (e.g. 0xf21: SD, then network, repeat)",
            ),
        },
        Kind::Ipv4 => match value.parse::<std::net::Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => fail("is not a dotted IPv4 address".into(), &format!("write e.g. {key}=192.168.1.10")),
        },
        Kind::Text(max) if value.len() > max => {
            fail(format!("is {} characters long; the bootloader takes at most {max}", value.len()), "shorten it")
        }
        Kind::Text(_) => Ok(()),
        Kind::Mac => {
            let parts: Vec<&str> = value.split(':').collect();
            if parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) {
                Ok(())
            } else {
                fail("is not a MAC address".into(), "write six hex pairs with colons, e.g. dc:a6:32:01:36:c2")
            }
        }
        Kind::HttpHost => {
            if value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
                Ok(())
            } else {
                fail(
                    "may hold only lower-case letters, digits, '-' and '.'".into(),
                    "give a bare host name or IP address, without http:// or slashes",
                )
            }
        }
        Kind::Sha256 => {
            if value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(())
            } else {
                fail("is not a SHA-256 hash (64 hex digits)".into(), "write the sha256 of the DER CA certificate")
            }
        }
        Kind::OneOf(allowed) => {
            if allowed.contains(&value) {
                Ok(())
            } else {
                fail(format!("must be one of {}", allowed.join(", ")), "pick one of the listed values")
            }
        }
    }
}

/// Integers as the bootloader reads them: decimal, or hexadecimal with 0x; `-1` where allowed.
fn parse_int(value: &str) -> Option<i64> {
    match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok().filter(|_| !hex.starts_with(['+', '-'])),
        None => value.parse().ok().filter(|_| !value.starts_with('+')),
    }
}

fn boot_order_warnings(value: &str, chip: Option<Chip>) -> Vec<Diagnostic> {
    let Ok(modes) = parse_boot_order(value) else { return Vec::new() };
    let mut found = Vec::new();
    if let Some(i) = modes.iter().position(|&m| m == 0xe || m == 0xf)
        && i + 1 < modes.len()
    {
        found.push(
            Diagnostic::warning(
                None,
                format!(
                    "BOOT_ORDER={value}: the modes after {} are never tried",
                    boot_mode_name(modes[i]).unwrap_or("?")
                ),
            )
            .help("put STOP (e) or RESTART (f) last, in the leftmost digit"),
        );
    }
    if let Some(i) = modes.iter().position(|&m| m == 0x3)
        && i + 1 < modes.len()
        && !modes[i + 1..].iter().all(|&m| m == 0xe || m == 0xf)
    {
        found.push(
            Diagnostic::warning(
                None,
                format!("BOOT_ORDER={value}: RPIBOOT has no timeout, so the modes after it are never tried"),
            )
            .help("put RPIBOOT (3) last"),
        );
    }
    if chip == Some(Chip::Bcm2712) && modes.contains(&0x5) {
        found.push(Diagnostic::warning(
            None,
            format!("BOOT_ORDER={value}: BCM-USB-MSD (5) does not exist on {}", Chip::Bcm2712.boards()),
        ));
    }
    found
}

/// Check a whole file: its syntax, every setting, and repeated keys.
pub fn check(text: &str, chip: Option<Chip>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let all = lines(text);
    for line in &all {
        if line.scope == Scope::ConfigTxt {
            continue;
        }
        match line.kind {
            LineKind::Setting { key, value } => {
                if key.trim() != key || value.trim_start() != value {
                    let fixed = format!("{}={}", key.trim(), value.trim());
                    out.push(
                        Diagnostic::error(
                            line.range.clone(),
                            "spaces around `=`: the bootloader would not see this setting",
                        )
                        .help(format!("write `{fixed}`")),
                    );
                    continue;
                }
                out.extend(check_setting(key, value, chip).into_iter().map(|d| d.at(line.range.clone())));
            }
            LineKind::Other => out.push(
                Diagnostic::warning(line.range.clone(), "not a setting, section or comment; the bootloader ignores it")
                    .help("settings are KEY=VALUE; comments start with #"),
            ),
            _ => {}
        }
    }
    // A second unconditional setting of a key silently overrides the first.
    for (i, line) in all.iter().enumerate() {
        let LineKind::Setting { key, .. } = line.kind else { continue };
        if line.scope != Scope::Always {
            continue;
        }
        let earlier = all[..i]
            .iter()
            .rev()
            .find(|l| l.scope == Scope::Always && matches!(l.kind, LineKind::Setting { key: k, .. } if k == key));
        if let Some(first) = earlier {
            out.push(
                Diagnostic::warning(
                    line.range.clone(),
                    format!("{key} is set again; this value overrides line {}", first.number),
                )
                .related(first.range.clone(), "first set here")
                .help("remove one of the two lines"),
            );
        }
    }
    out.sort_by_key(|d| d.span.as_ref().map(|s| s.start));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PI4: &str = "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\nNET_INSTALL_AT_POWER_ON=1\n";

    #[test]
    fn set_appends_a_new_key_at_the_end() {
        assert_eq!(set(PI4, "BOOT_ORDER", "0xf21"), format!("{PI4}BOOT_ORDER=0xf21\n"));
        assert_eq!(set("", "BOOT_ORDER", "0xf21"), "BOOT_ORDER=0xf21\n");
        assert_eq!(set("[all]\nBOOT_UART=0", "A", "1"), "[all]\nBOOT_UART=0\nA=1\n");
    }

    #[test]
    fn set_replaces_the_effective_line_in_place() {
        let text = "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf461\nNET_INSTALL_AT_POWER_ON=1\n";
        assert_eq!(
            set(text, "BOOT_ORDER", "0xf21"),
            "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf21\nNET_INSTALL_AT_POWER_ON=1\n"
        );
        let twice = "BOOT_ORDER=0x1\n[all]\nBOOT_ORDER=0x41\n";
        assert_eq!(set(twice, "BOOT_ORDER", "0xf21"), "BOOT_ORDER=0x1\n[all]\nBOOT_ORDER=0xf21\n");
    }

    #[test]
    fn set_leaves_conditional_sections_alone() {
        let text = "[all]\nBOOT_UART=0\n[gpio8=0]\nBOOT_ORDER=0xf7\n";
        assert_eq!(set(text, "BOOT_ORDER", "0xf21"), format!("{text}[all]\nBOOT_ORDER=0xf21\n"));
        let none = "BOOT_UART=0\n[none]\nFREEZE_VERSION=0\n";
        assert_eq!(set(none, "FREEZE_VERSION", "1"), format!("{none}[all]\nFREEZE_VERSION=1\n"));
    }

    #[test]
    fn set_keeps_config_txt_section_last() {
        let text = "[all]\nBOOT_UART=0\n[config.txt]\ndtoverlay=disable-wifi\n";
        assert_eq!(
            set(text, "BOOT_ORDER", "0xf21"),
            "[all]\nBOOT_UART=0\nBOOT_ORDER=0xf21\n[config.txt]\ndtoverlay=disable-wifi\n"
        );
        let after_filter = "[pi4]\nX=1\n[config.txt]\nY=2\n";
        assert_eq!(
            set(after_filter, "BOOT_ORDER", "0xf21"),
            "[pi4]\nX=1\n[all]\nBOOT_ORDER=0xf21\n[config.txt]\nY=2\n"
        );
    }

    #[test]
    fn set_keeps_crlf_line_endings() {
        assert_eq!(set("[all]\r\nBOOT_UART=0\r\n", "BOOT_UART", "1"), "[all]\r\nBOOT_UART=1\r\n");
        assert_eq!(set("[all]\r\nA=0\r\n", "B", "1"), "[all]\r\nA=0\r\nB=1\r\n");
    }

    #[test]
    fn effective_value_ignores_conditional_sections() {
        assert_eq!(effective("BOOT_ORDER=0x1\n[pi5]\nBOOT_ORDER=0x6\n", "BOOT_ORDER"), Some("0x1"));
        assert_eq!(effective("[none]\nBOOT_ORDER=0x6\n", "BOOT_ORDER"), None);
    }

    #[test]
    fn boot_order_reads_right_to_left() {
        assert_eq!(parse_boot_order("0xf21").unwrap(), vec![1, 2, 0xf]);
        assert_eq!(describe_boot_order("0xf461").unwrap(), "SD CARD, NVME, USB-MSD, RESTART");
        assert!(parse_boot_order("f21").unwrap_err().contains("0x prefix"));
        assert!(parse_boot_order("0xf81").unwrap_err().contains("0x8"));
        assert!(parse_boot_order("0x").is_err());
        assert!(parse_boot_order("0x123456789").is_err());
        assert!(parse_boot_order("0xg1").unwrap_err().contains("not a hex digit"));
    }

    fn errors(key: &str, value: &str) -> Vec<String> {
        check_setting(key, value, None).into_iter().filter(|d| d.is_error()).map(|d| d.message).collect()
    }

    #[test]
    fn documented_limits_are_enforced() {
        assert!(errors("TFTP_PREFIX", "2").is_empty());
        assert!(errors("TFTP_PREFIX", "3")[0].contains("between 0 and 2"));
        assert!(errors("TFTP_IP", "10.0.0.1").is_empty());
        assert!(errors("TFTP_IP", "10.0.0").len() == 1);
        assert!(errors("TFTP_IP", "").is_empty(), "empty means default");
        assert!(errors("TFTP_PREFIX_STR", &"a".repeat(32)).is_empty());
        assert!(errors("TFTP_PREFIX_STR", &"a".repeat(33))[0].contains("at most 32"));
        assert!(errors("DHCP_TIMEOUT", "4999")[0].contains("at least 5000"));
        assert!(errors("DHCP_TIMEOUT", "45000").is_empty());
        assert!(errors("DHCP_REQ_TIMEOUT", "500").is_empty());
        assert!(errors("TFTP_FILE_TIMEOUT", "30s")[0].contains("not a number"));
        assert!(errors("NET_BOOT_MAX_RETRIES", "-1").is_empty());
        assert!(errors("NET_BOOT_MAX_RETRIES", "-2").len() == 1);
        assert!(errors("DHCP_OPTION97", "0x34695052").is_empty());
        assert!(errors("BOOT_UART", "2")[0].contains("0 or 1"));
        assert!(errors("BOOT_ORDER", "0xf21").is_empty());
        assert!(errors("BOOT_ORDER", "0xf91").len() == 1);
        assert!(errors("MAC_ADDRESS", "dc:a6:32:01:36:c2").is_empty());
        assert!(errors("MAC_ADDRESS", "dc-a6-32-01-36-c2").len() == 1);
        assert!(errors("HTTP_HOST", "http://10.0.0.1/").len() == 1);
        assert!(errors("HTTP_PORT", "0").len() == 1);
        assert!(errors("UART_BAUD", "115200").is_empty());
        assert!(errors("UART_BAUD", "115201").len() == 1);
    }

    #[test]
    fn unknown_keys_are_warnings_with_a_suggestion() {
        let found = check_setting("BOOT_ODER", "0xf21", None);
        assert_eq!(found.len(), 1);
        assert!(!found[0].is_error());
        assert!(found[0].help.as_deref().unwrap().contains("did you mean BOOT_ORDER?"));
    }

    #[test]
    fn chip_specific_properties_warn_on_the_other_chip() {
        assert!(check_setting("PCIE_PROBE", "1", Some(Chip::Bcm2711))[0].message.contains("no effect on BCM2711"));
        assert!(check_setting("PCIE_PROBE", "1", Some(Chip::Bcm2712)).is_empty());
        assert!(check_setting("BOOT_ORDER", "0xf51", Some(Chip::Bcm2712))[0].message.contains("BCM-USB-MSD"));
    }

    #[test]
    fn boot_order_shapes_that_waste_modes_warn() {
        assert!(check_setting("BOOT_ORDER", "0x1f2", None)[0].message.contains("never tried"));
        assert!(check_setting("BOOT_ORDER", "0x231", None)[0].message.contains("RPIBOOT"));
        assert!(check_setting("BOOT_ORDER", "0xf321", None).is_empty());
    }

    #[test]
    fn file_check_finds_spaces_repeats_and_junk_but_skips_config_txt() {
        let text = "[all]\nBOOT_ORDER = 0xf21\nBOOT_UART=0\nBOOT_UART=1\njunk\n[config.txt]\nnot bootloader\n";
        let found = check(text, None);
        let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(found.len(), 3, "{messages:?}");
        assert!(found[0].is_error() && messages[0].contains("spaces around"));
        assert_eq!(found[0].help.as_deref(), Some("write `BOOT_ORDER=0xf21`"));
        assert!(messages[1].contains("overrides line 3"));
        assert!(messages[2].contains("not a setting"));
    }

    #[test]
    fn pinned_configs_are_the_pinned_images_own() {
        for fx in crate::eeprom::test_fixtures::FIXTURES {
            let bytes = fx.image();
            let image = crate::eeprom::EepromImage::parse(&bytes).unwrap();
            assert_eq!(image.bootconf().unwrap(), pinned(fx.chip).as_bytes(), "{}", fx.name);
        }
    }

    #[test]
    fn edited_len_is_exact_until_far_over_the_limit() {
        let edits = |n: usize, len: usize| -> Vec<(String, String)> {
            (0..n).map(|i| (format!("K{i:05}"), "v".repeat(len))).collect()
        };
        for (n, len) in [(0, 0), (10, 3), (40, 100), (100, 100)] {
            let e = edits(n, len);
            let exact = super::super::card::edited_config(pinned(Chip::Bcm2712), None, &e).len();
            assert_eq!(edited_len(Chip::Bcm2712, &e), (exact, true));
        }
        let (least, exact) = edited_len(Chip::Bcm2711, &edits(40_000, 1));
        assert!(!exact && least == 40_000 * 8, "{least}");
        assert!(too_long(least, exact).unwrap().contains("at least 320000 bytes"));
        assert_eq!(check_len(&"#".repeat(MAX_LEN)), Ok(()));
        assert!(check_len(&"#".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn real_configs_are_clean() {
        for text in [PI4, "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf461\nNET_INSTALL_AT_POWER_ON=1\n"] {
            assert!(check(text, None).is_empty());
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Config-shaped text: sections, settings, comments, junk, CRLF or LF.
        fn config_text() -> impl Strategy<Value = String> {
            proptest::string::string_regex(
                "((\\[(all|none|pi4|pi5|gpio8=0|config.txt)\\]|[A-Z_]{1,8}=[0-9a-fx. ]{0,6}|#[ -~]{0,8}|[ -~]{0,8}|)(\r?\n))*[ -~]{0,8}",
            )
            .unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn set_makes_the_value_effective_and_keeps_the_rest(
                text in config_text(),
                key in "[A-Z_]{1,8}",
                value in "[ -~]{0,12}",
            ) {
                let out = set(&text, &key, &value);
                prop_assert_eq!(effective(&out, &key), Some(value.as_str()));
                // Every other key's effective value is unchanged.
                for line in lines(&text) {
                    if let LineKind::Setting { key: other, .. } = line.kind && other != key {
                        prop_assert_eq!(effective(&out, other), effective(&text, other));
                    }
                }
                let _ = check(&out, None);
            }

            #[test]
            fn any_text_can_be_checked(text in any::<String>()) {
                let _ = check(&text, Some(Chip::Bcm2712));
                let _ = set(&text, "BOOT_ORDER", "0xf21");
            }
        }
    }
}
