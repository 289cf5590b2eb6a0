//! Who is asking: a Raspberry Pi (by option 97's shape, by MAC prefix, or because the lab says
//! so), a PC (by its architecture, option 93, with IANA's numbers), iPXE (option 175 or user
//! class "iPXE"), UEFI HTTP boot (option 60 "HTTPClient"), or a machine that is not booting
//! from the network at all. Pure; what each class is answered is `reply`'s decision.

use super::known::{ClientKind, KnownClient, KnownClients};
use super::pxe::{self, VendorClass};
use super::wire::Request;
use crate::recipe::{MacAddr, Model, RASPBERRY_PI_OUIS, Serial};

/// IANA "Processor Architecture Types" (RFC 4578 §2.1 had 7 and 9 swapped; pxe.md §2.5).
pub mod arch {
    pub const X86_BIOS: u16 = 0;
    pub const X86_UEFI: u16 = 6;
    pub const X64_UEFI: u16 = 7;
    /// "EFI BC"; what many x64 firmwares send.
    pub const EBC: u16 = 9;
    pub const ARM64_UEFI: u16 = 11;
    pub const X86_UEFI_HTTP: u16 = 15;
    pub const X64_UEFI_HTTP: u16 = 16;
    pub const ARM64_UEFI_HTTP: u16 = 19;
}

/// A PC's boot firmware, as its architecture says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Firmware {
    Bios,
    UefiIa32,
    UefiX64,
    UefiArm64,
    HttpIa32,
    HttpX64,
    HttpArm64,
    /// An architecture Bramble has no boot file class for (arm32, RISC-V, …).
    Other(u16),
}

impl Firmware {
    /// From option 93; `http` when option 60 says HTTPClient.
    pub fn of(arch: u16, http: bool) -> Firmware {
        use arch::*;
        match (arch, http) {
            (X86_BIOS, false) => Firmware::Bios,
            (X86_UEFI, false) => Firmware::UefiIa32,
            (X64_UEFI | EBC, false) => Firmware::UefiX64,
            (ARM64_UEFI, false) => Firmware::UefiArm64,
            (X86_UEFI | X86_UEFI_HTTP, _) => Firmware::HttpIa32,
            (X64_UEFI | EBC | X64_UEFI_HTTP, _) => Firmware::HttpX64,
            (ARM64_UEFI | ARM64_UEFI_HTTP, _) => Firmware::HttpArm64,
            (other, _) => Firmware::Other(other),
        }
    }

    /// Short name for log lines.
    pub fn name(self) -> String {
        match self {
            Firmware::Bios => "bios".into(),
            Firmware::UefiIa32 => "uefi-ia32".into(),
            Firmware::UefiX64 => "uefi-x64".into(),
            Firmware::UefiArm64 => "uefi-arm64".into(),
            Firmware::HttpIa32 => "http-ia32".into(),
            Firmware::HttpX64 => "http-x64".into(),
            Firmware::HttpArm64 => "http-arm64".into(),
            Firmware::Other(a) => format!("arch-{a}"),
        }
    }
}

/// What a network-booting client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootClass {
    RaspberryPi { model: Option<Model> },
    Pc { firmware: Firmware, ipxe: bool },
}

impl BootClass {
    /// Short name for log lines.
    pub fn name(&self) -> String {
        match self {
            BootClass::RaspberryPi { model: Some(m) } => m.name().to_string(),
            BootClass::RaspberryPi { model: None } => "pi".into(),
            BootClass::Pc { firmware, ipxe: true } => format!("ipxe-{}", firmware.name()),
            BootClass::Pc { firmware, ipxe: false } => firmware.name(),
        }
    }
}

/// What option 97 of a Pi says (pi-netboot.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PiGuid {
    /// Pi 4/5 (`DHCP_OPTION97` default): FourCC `RPi4`/`RPi5`, board revision, MAC low 4 bytes,
    /// serial; seen in both byte orders.
    FourCc { model: Model, serial: Serial },
    /// Pi 3B+ (and Pi 4/5 with `DHCP_OPTION97=0`): the serial four times. The byte order is not
    /// documented, so both readings are candidates.
    SerialRepeated { big: Serial, little: Serial },
    /// The Pi 3B ROM: 0x44 sixteen times, the same on every board.
    Pi3bConstant,
}

impl PiGuid {
    /// Read option 97 (type byte 0, then 16 bytes).
    pub fn of(option97: &[u8]) -> Option<PiGuid> {
        let [0, g @ ..] = option97 else { return None };
        let g: &[u8; 16] = g.try_into().ok()?;
        let word = |i: usize| [g[i], g[i + 1], g[i + 2], g[i + 3]];
        if g.iter().all(|&b| b == 0x44) {
            return Some(PiGuid::Pi3bConstant);
        }
        let model = |digit: u8| match digit {
            b'4' => Some(Model::Pi4),
            b'5' => Some(Model::Pi5),
            _ => None,
        };
        match word(0) {
            [b'R', b'P', b'i', d] => {
                return Some(PiGuid::FourCc { model: model(d)?, serial: Serial(u32::from_be_bytes(word(12))) });
            }
            [d, b'i', b'P', b'R'] => {
                return Some(PiGuid::FourCc { model: model(d)?, serial: Serial(u32::from_le_bytes(word(12))) });
            }
            _ => {}
        }
        let w = word(0);
        if w == word(4) && w == word(8) && w == word(12) && w != [0; 4] {
            return Some(PiGuid::SerialRepeated {
                big: Serial(u32::from_be_bytes(w)),
                little: Serial(u32::from_le_bytes(w)),
            });
        }
        None
    }

    /// The serials this GUID may carry, most likely first.
    pub fn serials(&self) -> Vec<Serial> {
        match *self {
            PiGuid::FourCc { serial, .. } => vec![serial],
            PiGuid::SerialRepeated { big, little } if big == little => vec![big],
            PiGuid::SerialRepeated { big, little } => vec![big, little],
            PiGuid::Pi3bConstant => Vec::new(),
        }
    }
}

/// Whether a MAC's OUI is registered to Raspberry Pi.
pub fn is_raspberry_pi_mac(mac: MacAddr) -> bool {
    RASPBERRY_PI_OUIS.iter().any(|oui| mac.0[..3] == oui[..])
}

/// Everything the reply policy needs to know about a requester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified<'a> {
    /// Its vendor class, when it says it is a PXE or HTTP boot client.
    pub vendor: Option<VendorClass>,
    /// What it is, if it is booting from the network (or may be: a known Pi's REQUEST).
    pub boot: Option<BootClass>,
    /// The lab's entry for it.
    pub known: Option<&'a KnownClient>,
    /// Its Pi serial, if option 97 carries one (the one that matched a known client first).
    pub serial: Option<Serial>,
    /// Every serial option 97 may carry (for reservations by serial).
    pub serials: Vec<Serial>,
}

impl Classified<'_> {
    pub fn is_pi(&self) -> bool {
        matches!(self.boot, Some(BootClass::RaspberryPi { .. }))
    }
}

/// Classify a request.
pub fn classify<'a>(req: &Request, clients: &'a KnownClients) -> Classified<'a> {
    let vendor = req.vendor_class.as_deref().and_then(VendorClass::of);
    let guid = req.guid.as_deref().and_then(PiGuid::of);
    let serials = guid.map(|g| g.serials()).unwrap_or_default();
    let known = clients.find(req.mac, &serials);
    let serial = known.and_then(|k| k.serial).filter(|s| serials.contains(s)).or(serials.first().copied());
    let arch = req.arch.or_else(|| req.vendor_class.as_deref().and_then(pxe::arch_in_vendor_class));
    let ipxe = req.ipxe.is_some() || req.user_class.as_deref().is_some_and(pxe::user_class_is_ipxe);

    // A Pi says arch 0 (x86 BIOS) or nothing; a Pi running UEFI firmware says 11 and is a PC.
    let pi_arch = arch.is_none_or(|a| a == arch::X86_BIOS) && !ipxe;
    let pi_evidence = match known.and_then(|k| k.kind) {
        Some(ClientKind::Pi(_)) => true,
        Some(ClientKind::Pc) => false,
        None => guid.is_some() || is_raspberry_pi_mac(req.mac),
    };
    let model = match (known.and_then(|k| k.kind), guid) {
        (Some(ClientKind::Pi(m)), _) => Some(m),
        (_, Some(PiGuid::FourCc { model, .. })) => Some(model),
        (_, Some(PiGuid::Pi3bConstant)) => Some(Model::Pi3),
        _ => None,
    };
    let boot = if pi_arch && pi_evidence && (vendor == Some(VendorClass::Pxe) || known.is_some()) {
        // A known Pi's REQUEST has no option 60 (the Pi 4's, pi-netboot.md §1.2).
        Some(BootClass::RaspberryPi { model })
    } else if let Some(v) = vendor {
        let firmware = Firmware::of(arch.unwrap_or(arch::X86_BIOS), v == VendorClass::Http);
        Some(BootClass::Pc { firmware, ipxe })
    } else {
        None
    };
    Classified { vendor, boot, known, serial, serials }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::dhcp::wire::MessageType;

    const PI4_MAC: MacAddr = MacAddr([0xdc, 0xa6, 0x32, 0x01, 0x36, 0xc2]);
    const PC_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const PI_VENDOR: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";

    fn fourcc_be(digit: u8, serial: u32) -> Vec<u8> {
        let mut g = vec![0, b'R', b'P', b'i', digit, 0x00, 0xc0, 0x31, 0x14, 0x32, 0x01, 0x36, 0xc2];
        g.extend_from_slice(&serial.to_be_bytes());
        g
    }

    fn fourcc_le(digit: u8, serial: u32) -> Vec<u8> {
        let mut g = vec![0, digit, b'i', b'P', b'R', 0x41, 0x31, 0xa0, 0x00, 0xc2, 0x36, 0x01, 0x32];
        g.extend_from_slice(&serial.to_le_bytes());
        g
    }

    fn repeated(serial: [u8; 4]) -> Vec<u8> {
        let mut g = vec![0];
        for _ in 0..4 {
            g.extend_from_slice(&serial);
        }
        g
    }

    #[test]
    fn option_97_shapes() {
        let s = Serial(0xd978_0558);
        assert_eq!(PiGuid::of(&fourcc_be(b'4', s.0)), Some(PiGuid::FourCc { model: Model::Pi4, serial: s }));
        assert_eq!(PiGuid::of(&fourcc_le(b'4', s.0)), Some(PiGuid::FourCc { model: Model::Pi4, serial: s }));
        assert_eq!(PiGuid::of(&fourcc_be(b'5', s.0)), Some(PiGuid::FourCc { model: Model::Pi5, serial: s }));
        assert_eq!(PiGuid::of(&fourcc_le(b'5', s.0)), Some(PiGuid::FourCc { model: Model::Pi5, serial: s }));
        assert_eq!(PiGuid::of(&fourcc_be(b'3', s.0)), None);
        let mut pi3b = vec![0];
        pi3b.extend([0x44; 16]);
        assert_eq!(PiGuid::of(&pi3b), Some(PiGuid::Pi3bConstant));
        let r = PiGuid::of(&repeated([0xd9, 0x78, 0x05, 0x58])).unwrap();
        assert_eq!(r.serials(), vec![s, Serial(0x5805_78d9)]);
        assert_eq!(PiGuid::of(&repeated([0; 4])), None);
        // A PC's GUID, a wrong type byte, wrong lengths.
        let pc: Vec<u8> = (0..17).collect();
        assert_eq!(PiGuid::of(&pc), None);
        let mut typed = fourcc_be(b'4', 1);
        typed[0] = 1;
        assert_eq!(PiGuid::of(&typed), None);
        assert_eq!(PiGuid::of(&fourcc_be(b'4', 1)[..16]), None);
        assert_eq!(PiGuid::of(&[]), None);
    }

    fn req(mac: MacAddr, vendor: Option<&[u8]>, arch: Option<u16>, guid: Option<Vec<u8>>) -> Request {
        let mut r = Request::new(MessageType::Discover, mac, 1);
        r.vendor_class = vendor.map(<[u8]>::to_vec);
        r.arch = arch;
        r.guid = guid;
        r
    }

    #[test]
    fn every_class() {
        let pi = |model| Some(BootClass::RaspberryPi { model });
        let pc = |firmware, ipxe| Some(BootClass::Pc { firmware, ipxe });
        let other_mac = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let s = 0x1234_abcd;
        let mut ipxe_opt = req(PC_MAC, Some(b"PXEClient:Arch:00007:UNDI:003010"), Some(7), None);
        ipxe_opt.ipxe = Some(vec![0x13, 1, 1]);
        let mut ipxe_raw = req(PC_MAC, Some(b"PXEClient:Arch:00000:UNDI:002001"), Some(0), None);
        ipxe_raw.user_class = Some(b"iPXE".to_vec());
        let mut ipxe_rfc = req(PC_MAC, Some(b"PXEClient:Arch:00009:UNDI:003010"), Some(9), None);
        ipxe_rfc.user_class = Some(b"\x04iPXE".to_vec());
        let mut pi_ipxe = req(PI4_MAC, Some(PI_VENDOR), Some(0), None);
        pi_ipxe.ipxe = Some(vec![]);
        let mut pi3b = vec![0];
        pi3b.extend([0x44; 16]);
        let cases: Vec<(&str, Request, Option<BootClass>)> = vec![
            ("pi4 BE fourcc", req(other_mac, Some(PI_VENDOR), Some(0), Some(fourcc_be(b'4', s))), pi(Some(Model::Pi4))),
            ("pi4 LE fourcc", req(other_mac, Some(PI_VENDOR), Some(0), Some(fourcc_le(b'4', s))), pi(Some(Model::Pi4))),
            ("pi5 BE fourcc", req(other_mac, Some(PI_VENDOR), Some(0), Some(fourcc_be(b'5', s))), pi(Some(Model::Pi5))),
            ("pi5 LE fourcc", req(other_mac, Some(PI_VENDOR), Some(0), Some(fourcc_le(b'5', s))), pi(Some(Model::Pi5))),
            ("pi3b constant", req(other_mac, Some(PI_VENDOR), Some(0), Some(pi3b)), pi(Some(Model::Pi3))),
            ("pi3b+ serial x4", req(other_mac, Some(PI_VENDOR), Some(0), Some(repeated([1, 2, 3, 4]))), pi(None)),
            ("pi by OUI only", req(PI4_MAC, Some(PI_VENDOR), Some(0), None), pi(None)),
            ("pi by OUI, no 93", req(MacAddr([0x2c, 0xcf, 0x67, 1, 2, 3]), Some(b"PXEClient"), None, None), pi(None)),
            (
                "pi OUI running UEFI",
                req(PI4_MAC, Some(b"PXEClient:Arch:00011:UNDI:003000"), Some(11), None),
                pc(Firmware::UefiArm64, false),
            ),
            ("pi OUI running iPXE", pi_ipxe, pc(Firmware::Bios, true)),
            ("pi OUI, not booting", req(PI4_MAC, Some(b"dhcpcd-9.4.1:Linux"), None, None), None),
            ("bios", req(PC_MAC, Some(PI_VENDOR), Some(0), None), pc(Firmware::Bios, false)),
            (
                "bios, arch only in 60",
                req(PC_MAC, Some(b"PXEClient:Arch:00000:UNDI:002001"), None, None),
                pc(Firmware::Bios, false),
            ),
            (
                "uefi ia32",
                req(PC_MAC, Some(b"PXEClient:Arch:00006:UNDI:003016"), Some(6), None),
                pc(Firmware::UefiIa32, false),
            ),
            (
                "uefi x64 (7)",
                req(PC_MAC, Some(b"PXEClient:Arch:00007:UNDI:003016"), Some(7), None),
                pc(Firmware::UefiX64, false),
            ),
            (
                "uefi x64 (9)",
                req(PC_MAC, Some(b"PXEClient:Arch:00009:UNDI:003016"), Some(9), None),
                pc(Firmware::UefiX64, false),
            ),
            (
                "uefi x64 from 60",
                req(PC_MAC, Some(b"PXEClient:Arch:00007:UNDI:003016"), None, None),
                pc(Firmware::UefiX64, false),
            ),
            (
                "uefi arm64",
                req(PC_MAC, Some(b"PXEClient:Arch:00011:UNDI:003000"), Some(11), None),
                pc(Firmware::UefiArm64, false),
            ),
            (
                "http x64",
                req(PC_MAC, Some(b"HTTPClient:Arch:00016:UNDI:003001"), Some(16), None),
                pc(Firmware::HttpX64, false),
            ),
            (
                "http ia32",
                req(PC_MAC, Some(b"HTTPClient:Arch:00015:UNDI:003001"), Some(15), None),
                pc(Firmware::HttpIa32, false),
            ),
            (
                "http arm64",
                req(PC_MAC, Some(b"HTTPClient:Arch:00019:UNDI:003001"), Some(19), None),
                pc(Firmware::HttpArm64, false),
            ),
            (
                "riscv",
                req(PC_MAC, Some(b"PXEClient:Arch:00027:UNDI:003000"), Some(27), None),
                pc(Firmware::Other(27), false),
            ),
            ("ipxe by 175", ipxe_opt, pc(Firmware::UefiX64, true)),
            ("ipxe by raw 77", ipxe_raw, pc(Firmware::Bios, true)),
            ("ipxe by RFC 3004 77", ipxe_rfc, pc(Firmware::UefiX64, true)),
            ("plain client", req(PC_MAC, Some(b"udhcp 1.35.0"), None, None), None),
            ("no 60", req(PC_MAC, None, None, None), None),
        ];
        let none = KnownClients::default();
        for (name, r, want) in cases {
            assert_eq!(classify(&r, &none).boot, want, "{name}");
        }
    }

    #[test]
    fn the_lab_overrides_and_finds_by_serial() {
        let known = KnownClients::new(vec![
            KnownClient { name: "pi".into(), mac: None, serial: Some(Serial(0xd978_0558)), kind: None, address: None },
            KnownClient {
                name: "pc-with-pi-mac".into(),
                mac: Some(PI4_MAC),
                serial: None,
                kind: Some(ClientKind::Pc),
                address: None,
            },
            KnownClient {
                name: "pi-with-odd-mac".into(),
                mac: Some(PC_MAC),
                serial: None,
                kind: Some(ClientKind::Pi(Model::Pi5)),
                address: None,
            },
        ]);
        let other = MacAddr([0x02, 0, 0, 0, 0, 7]);
        for guid in [fourcc_be(b'4', 0xd978_0558), fourcc_le(b'4', 0xd978_0558)] {
            let c = classify(&req(other, Some(PI_VENDOR), Some(0), Some(guid)), &known);
            assert_eq!(c.known.unwrap().name, "pi");
            assert_eq!(c.serial, Some(Serial(0xd978_0558)));
        }
        // Serial x4 in little-endian order still finds it.
        let c = classify(&req(other, Some(PI_VENDOR), Some(0), Some(repeated([0x58, 0x05, 0x78, 0xd9]))), &known);
        assert_eq!(c.known.unwrap().name, "pi");
        assert_eq!(c.serial, Some(Serial(0xd978_0558)));
        let c = classify(&req(PI4_MAC, Some(PI_VENDOR), Some(0), None), &known);
        assert_eq!(c.boot, Some(BootClass::Pc { firmware: Firmware::Bios, ipxe: false }));
        // A known Pi's REQUEST without option 60 is still a Pi boot.
        let c = classify(&req(PC_MAC, None, None, None), &known);
        assert_eq!(c.boot, Some(BootClass::RaspberryPi { model: Some(Model::Pi5) }));
        // An unknown Pi's REQUEST without option 60 is not classified here (the offer memory is).
        assert_eq!(classify(&req(MacAddr([0xdc, 0xa6, 0x32, 9, 9, 9]), None, None, None), &known).boot, None);
    }
}
