//! What a PC boots: the `[boot]` table of daemon.toml, one entry per firmware class, each a TFTP
//! file name or an `http://` URL with placeholders. Pure: turns a class and a client into the
//! name its reply carries.
//!
//! | class | architecture (option 93) | default |
//! |---|---|---|
//! | `bios` | 0, x86 BIOS | `pxelinux.0` |
//! | `uefi_ia32` | 6, x86 UEFI | `ipxe-ia32.efi` |
//! | `uefi_x64` | 7 and 9, x64 UEFI | `ipxe.efi` |
//! | `uefi_arm64` | 11, arm64 UEFI | `grubaa64.efi` |
//! | `http_ia32` | 15 (or 6) with option 60 `HTTPClient` | `{http}/pc/ipxe-ia32.efi` |
//! | `http_x64` | 16 (or 7, 9) with `HTTPClient` | `{http}/pc/ipxe.efi` |
//! | `http_arm64` | 19 (or 11) with `HTTPClient` | `{http}/pc/grubaa64.efi` |
//! | `ipxe` | any, when iPXE is asking (option 175 or user class "iPXE") | `{http}/ipxe/{mac}.ipxe` |
//!
//! iPXE always gets the `ipxe` entry, whatever its architecture: a ROM that already is iPXE
//! must not be handed `ipxe.efi` again (the chain-load loop). An empty entry means "no boot
//! answer for this class".

use super::classify::Firmware;
use crate::recipe::MacAddr;
use serde::Deserialize;
use std::net::Ipv4Addr;

/// The `[boot]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BootFiles {
    pub bios: String,
    pub uefi_ia32: String,
    pub uefi_x64: String,
    pub uefi_arm64: String,
    pub http_ia32: String,
    pub http_x64: String,
    pub http_arm64: String,
    pub ipxe: String,
}

impl Default for BootFiles {
    fn default() -> Self {
        BootFiles {
            bios: "pxelinux.0".into(),
            uefi_ia32: "ipxe-ia32.efi".into(),
            uefi_x64: "ipxe.efi".into(),
            uefi_arm64: "grubaa64.efi".into(),
            http_ia32: "{http}/pc/ipxe-ia32.efi".into(),
            http_x64: "{http}/pc/ipxe.efi".into(),
            http_arm64: "{http}/pc/grubaa64.efi".into(),
            ipxe: "{http}/ipxe/{mac}.ipxe".into(),
        }
    }
}

/// The values placeholders stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholders {
    /// `{server}`: the address clients are told.
    pub server: Ipv4Addr,
    /// `{http}`: `http://<address>[:port]`.
    pub http: String,
}

impl Placeholders {
    /// `{http}` for an HTTP server on `port` (80 is left out of the URL).
    pub fn new(server: Ipv4Addr, http_port: u16) -> Placeholders {
        let http = if http_port == 80 { format!("http://{server}") } else { format!("http://{server}:{http_port}") };
        Placeholders { server, http }
    }
}

/// The longest a boot name may be: option 67 holds 255 bytes.
const MAX_NAME: usize = 255;

impl BootFiles {
    fn entries(&self) -> [(&'static str, &str); 8] {
        [
            ("bios", &self.bios),
            ("uefi_ia32", &self.uefi_ia32),
            ("uefi_x64", &self.uefi_x64),
            ("uefi_arm64", &self.uefi_arm64),
            ("http_ia32", &self.http_ia32),
            ("http_x64", &self.http_x64),
            ("http_arm64", &self.http_arm64),
            ("ipxe", &self.ipxe),
        ]
    }

    /// Every entry uses only known placeholders and fits option 67 once expanded.
    pub fn check(&self) -> Result<(), String> {
        let longest = Placeholders { server: Ipv4Addr::new(255, 255, 255, 255), http: "x".repeat(28) };
        for (key, value) in self.entries() {
            let mut rest = value;
            while let Some(at) = rest.find('{') {
                let name = rest[at..].split_once('}').map(|(n, _)| &n[1..]);
                match name {
                    Some("server" | "http" | "mac") => {}
                    Some(other) => {
                        return Err(format!(
                            "boot.{key}: unknown placeholder `{{{other}}}`; use {{server}}, {{http}} or {{mac}}"
                        ));
                    }
                    None => return Err(format!("boot.{key}: `{{` without a closing `}}`")),
                }
                rest = &rest[at + 1..];
            }
            if expand(value, &longest, MacAddr([0; 6])).len() > MAX_NAME {
                return Err(format!("boot.{key}: longer than the 255 bytes option 67 can hold"));
            }
        }
        Ok(())
    }

    /// The name for a PC of this firmware (iPXE's own entry when `ipxe`), placeholders filled
    /// in; `None` when the entry is empty or the architecture has none.
    pub fn for_client(&self, firmware: Firmware, ipxe: bool, mac: MacAddr, values: &Placeholders) -> Option<String> {
        let entry = if ipxe {
            &self.ipxe
        } else {
            match firmware {
                Firmware::Bios => &self.bios,
                Firmware::UefiIa32 => &self.uefi_ia32,
                Firmware::UefiX64 => &self.uefi_x64,
                Firmware::UefiArm64 => &self.uefi_arm64,
                Firmware::HttpIa32 => &self.http_ia32,
                Firmware::HttpX64 => &self.http_x64,
                Firmware::HttpArm64 => &self.http_arm64,
                Firmware::Other(_) => return None,
            }
        };
        Some(expand(entry, values, mac)).filter(|s| !s.is_empty())
    }
}

fn expand(entry: &str, values: &Placeholders, mac: MacAddr) -> String {
    entry
        .replace("{server}", &values.server.to_string())
        .replace("{http}", &values.http)
        .replace("{mac}", &mac.dashed())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    #[test]
    fn defaults_per_class() {
        let files = BootFiles::default();
        files.check().unwrap();
        let v = Placeholders::new(Ipv4Addr::new(10, 42, 0, 1), 80);
        let cases = [
            (Firmware::Bios, false, Some("pxelinux.0")),
            (Firmware::UefiIa32, false, Some("ipxe-ia32.efi")),
            (Firmware::UefiX64, false, Some("ipxe.efi")),
            (Firmware::UefiArm64, false, Some("grubaa64.efi")),
            (Firmware::HttpIa32, false, Some("http://10.42.0.1/pc/ipxe-ia32.efi")),
            (Firmware::HttpX64, false, Some("http://10.42.0.1/pc/ipxe.efi")),
            (Firmware::HttpArm64, false, Some("http://10.42.0.1/pc/grubaa64.efi")),
            (Firmware::Other(27), false, None),
            // iPXE never gets ipxe.efi again, whatever it runs on.
            (Firmware::UefiX64, true, Some("http://10.42.0.1/ipxe/52-54-00-ab-cd-ef.ipxe")),
            (Firmware::Bios, true, Some("http://10.42.0.1/ipxe/52-54-00-ab-cd-ef.ipxe")),
            (Firmware::Other(27), true, Some("http://10.42.0.1/ipxe/52-54-00-ab-cd-ef.ipxe")),
        ];
        for (firmware, ipxe, want) in cases {
            assert_eq!(files.for_client(firmware, ipxe, MAC, &v).as_deref(), want, "{firmware:?} ipxe={ipxe}");
        }
    }

    #[test]
    fn placeholders_and_ports() {
        let files = BootFiles {
            bios: "tftp://{server}/{mac}/lpxelinux.0".into(),
            uefi_x64: String::new(),
            ..BootFiles::default()
        };
        let v = Placeholders::new(Ipv4Addr::new(10, 0, 0, 1), 8080);
        assert_eq!(v.http, "http://10.0.0.1:8080");
        assert_eq!(
            files.for_client(Firmware::Bios, false, MAC, &v).unwrap(),
            "tftp://10.0.0.1/52-54-00-ab-cd-ef/lpxelinux.0"
        );
        assert_eq!(files.for_client(Firmware::UefiX64, false, MAC, &v), None, "empty = no answer");
    }

    #[test]
    fn bad_entries_are_explained() {
        let bad = BootFiles { ipxe: "{http}/{serial}.ipxe".into(), ..BootFiles::default() };
        assert!(bad.check().unwrap_err().contains("boot.ipxe: unknown placeholder `{serial}`"));
        let bad = BootFiles { bios: "{http".into(), ..BootFiles::default() };
        assert!(bad.check().unwrap_err().contains("without a closing"));
        let bad = BootFiles { bios: "a".repeat(250) + "{http}", ..BootFiles::default() };
        assert!(bad.check().unwrap_err().contains("255 bytes"));
    }
}
