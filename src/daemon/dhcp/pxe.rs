//! The PXE-specific bytes of DHCP (PXE 2.1 spec; RFC 4578; iPXE `include/ipxe/dhcp.h`): the
//! vendor class a client sends (option 60) and the one a server answers with, the option-43
//! vendor sub-options (discovery control, boot menu, prompt), and iPXE's option 175. Pure byte
//! building and matching; which reply gets which of these is `reply`'s decision.

/// Option 60 prefix of a PXE ROM (PXE 2.1 §2.4): `PXEClient:Arch:xxxxx:UNDI:yyyzzz`.
pub const PXE_CLIENT: &[u8] = b"PXEClient";
/// Option 60 prefix of UEFI HTTP boot (UEFI 2.x "HTTP Boot"; EDK2 `HttpBootDhcp4.c`).
pub const HTTP_CLIENT: &[u8] = b"HTTPClient";

/// Option 43 sub-option codes (PXE 2.1 §2.4.5; iPXE `dhcp.h`).
const PXE_DISCOVERY_CONTROL: u8 = 6;
const PXE_BOOT_MENU: u8 = 9;
const PXE_MENU_PROMPT: u8 = 10;
const PXE_END: u8 = 255;

/// Discovery-control bits: 0 no broadcast discovery, 1 no multicast discovery, 3 "a boot file is
/// named in this offer: download it, no menu, no discovery".
const NO_BROADCAST_NO_MULTICAST: u8 = 0b0011;
const BOOT_THE_NAMED_FILE: u8 = 0b1000;

/// The menu text a Pi looks for (pi-netboot.md §1.3). Three trailing spaces: the Pi 3B ROM counts
/// the length wrong and needs them; every later model takes the text as a substring.
pub const RASPBERRY_PI_BOOT: &[u8] = b"Raspberry Pi Boot   ";

/// iPXE's encapsulated options (option 175) and its "no-pxedhcp" setting (175.176): with it in
/// the main DHCP offer iPXE does not wait for proxyDHCP offers (pxe.md §2.4).
pub const IPXE_ENCAP: u8 = 175;
const IPXE_NO_PXEDHCP: u8 = 176;

/// What option 60 says about a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VendorClass {
    /// A PXE ROM (or iPXE, which sends the same prefix).
    Pxe,
    /// UEFI HTTP boot.
    Http,
}

impl VendorClass {
    /// Classify an option 60 value by its prefix; anything else is not a boot client.
    pub fn of(option60: &[u8]) -> Option<VendorClass> {
        if option60.starts_with(PXE_CLIENT) {
            Some(VendorClass::Pxe)
        } else if option60.starts_with(HTTP_CLIENT) {
            Some(VendorClass::Http)
        } else {
            None
        }
    }

    /// The option 60 a reply carries: the bare class name (dnsmasq, smee and the Pi all use it).
    pub fn reply_value(self) -> &'static [u8] {
        match self {
            VendorClass::Pxe => PXE_CLIENT,
            VendorClass::Http => HTTP_CLIENT,
        }
    }
}

/// The architecture inside an option 60 `…:Arch:xxxxx:…` (five decimal digits), for clients
/// that send no option 93.
pub fn arch_in_vendor_class(option60: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(option60).ok()?;
    let mut parts = text.split(':');
    while let Some(part) = parts.next() {
        if part == "Arch" {
            let digits = parts.next()?;
            return if digits.len() == 5 { digits.parse().ok() } else { None };
        }
    }
    None
}

/// Option 43 for a Raspberry Pi: what dnsmasq's `pxe-service=0,"Raspberry Pi Boot   "` sends
/// (the configuration of Raspberry Pi's tutorial, PiServer and RPi-PXE-Server):
/// `06 01 03 | 0a 04 00 'PXE' | 09 17 00 00 14 "Raspberry Pi Boot   " | ff`. The lengths count
/// the whole 20-byte text; a shorter length would leave the last space outside sub-option 9.
pub fn raspberry_pi_menu() -> Vec<u8> {
    let mut out = vec![PXE_DISCOVERY_CONTROL, 1, NO_BROADCAST_NO_MULTICAST];
    // Prompt: timeout 0 (boot the first item at once), then the text.
    out.extend_from_slice(&[PXE_MENU_PROMPT, 4, 0]);
    out.extend_from_slice(b"PXE");
    // One menu item: boot server type 0, description length, description.
    out.extend_from_slice(&[PXE_BOOT_MENU, 3 + RASPBERRY_PI_BOOT.len() as u8, 0, 0, RASPBERRY_PI_BOOT.len() as u8]);
    out.extend_from_slice(RASPBERRY_PI_BOOT);
    out.push(PXE_END);
    out
}

/// Option 43 for a PC in proxy mode: "boot the file named in this offer". No MTFTP sub-options
/// (1–5): EDK2 classifies an offer with them as WfM11a and discards it (pxe.md §2.2).
pub fn boot_named_file() -> Vec<u8> {
    vec![PXE_DISCOVERY_CONTROL, 1, BOOT_THE_NAMED_FILE, PXE_END]
}

/// Option 175's value telling iPXE not to wait for proxyDHCP offers: sub-option 176 = 1.
pub fn ipxe_no_pxedhcp() -> Vec<u8> {
    vec![IPXE_NO_PXEDHCP, 1, 1]
}

/// Whether an option 77 (user class) names iPXE: iPXE sends the raw string "iPXE", RFC 3004
/// wants length-prefixed items (`04 'iPXE'`); both are seen (pxe.md §2.4).
pub fn user_class_is_ipxe(option77: &[u8]) -> bool {
    if option77 == b"iPXE" {
        return true;
    }
    // RFC 3004: one or more (length, data) items.
    let mut rest = option77;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            return false;
        }
        if &tail[..len] == b"iPXE" {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raspberry_pi_menu_bytes() {
        let mut want = vec![0x06, 0x01, 0x03, 0x0a, 0x04, 0x00, b'P', b'X', b'E', 0x09, 0x17, 0x00, 0x00, 0x14];
        want.extend_from_slice(b"Raspberry Pi Boot   ");
        want.push(0xff);
        assert_eq!(raspberry_pi_menu(), want);
        assert_eq!(raspberry_pi_menu().len(), 35);
    }

    #[test]
    fn pc_and_ipxe_bytes() {
        assert_eq!(boot_named_file(), [6, 1, 8, 255]);
        assert_eq!(ipxe_no_pxedhcp(), [176, 1, 1]);
    }

    #[test]
    fn vendor_classes() {
        let cases: &[(&[u8], Option<VendorClass>, Option<u16>)] = &[
            (b"PXEClient:Arch:00000:UNDI:002001", Some(VendorClass::Pxe), Some(0)),
            (b"PXEClient:Arch:00007:UNDI:003016", Some(VendorClass::Pxe), Some(7)),
            (b"HTTPClient:Arch:00016:UNDI:003001", Some(VendorClass::Http), Some(16)),
            (b"PXEClient", Some(VendorClass::Pxe), None),
            (b"PXEClient:Arch:7:UNDI:003016", Some(VendorClass::Pxe), None),
            (b"PXEClient:Arch:", Some(VendorClass::Pxe), None),
            (b"udhcp 1.35.0", None, None),
            (b"MSFT 5.0", None, None),
            (b"", None, None),
            (b"\xff\xfe", None, None),
        ];
        for (value, class, arch) in cases {
            assert_eq!(VendorClass::of(value), *class, "{value:?}");
            assert_eq!(arch_in_vendor_class(value), *arch, "{value:?}");
        }
    }

    #[test]
    fn ipxe_user_class_in_both_encodings() {
        assert!(user_class_is_ipxe(b"iPXE"));
        assert!(user_class_is_ipxe(b"\x04iPXE"));
        assert!(user_class_is_ipxe(b"\x03abc\x04iPXE"));
        assert!(!user_class_is_ipxe(b"\x05iPXE"));
        assert!(!user_class_is_ipxe(b"\x04iPX"));
        assert!(!user_class_is_ipxe(b"bramble"));
        assert!(!user_class_is_ipxe(b""));
        assert!(!user_class_is_ipxe(b"\x00"));
    }
}
