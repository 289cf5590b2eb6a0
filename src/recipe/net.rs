//! Network and board identifiers as a recipe writes them: MAC addresses, Pi serial numbers,
//! IPv4 subnets and address ranges. Parsing accepts the forms users paste; display is canonical.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Lower case with dashes: the bootloader's `TFTP_PREFIX=2` directory name.
    pub fn dashed(&self) -> String {
        self.to_string().replace(':', "-")
    }

    /// Multicast (group) addresses never belong to a board.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for MacAddr {
    type Err = String;
    /// `dc:a6:32:01:36:c2` or `dc-a6-32-01-36-c2`, any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        let mut mac = [0u8; 6];
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a MAC address: it needs six hex pairs"));
        }
        for (byte, part) in mac.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(format!("`{s}` is not a MAC address: `{part}` is not a hex pair"));
            }
            *byte =
                u8::from_str_radix(part, 16).map_err(|_| format!("`{s}` is not a MAC address: `{part}` is not hex"))?;
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// OUIs registered to Raspberry Pi and seen on boards (research/pi-netboot.md §1.5).
pub const RASPBERRY_PI_OUIS: &[[u8; 3]] = &[
    [0xb8, 0x27, 0xeb],
    [0xdc, 0xa6, 0x32],
    [0xe4, 0x5f, 0x01],
    [0x28, 0xcd, 0xc1],
    [0xd8, 0x3a, 0xdd],
    [0x2c, 0xcf, 0x67],
];

/// The part of a Pi's serial number the bootloader uses: the low 32 bits, shown as 8 lower-case
/// hex digits (the `TFTP_PREFIX=0` directory name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(pub u32);

impl FromStr for Serial {
    type Err = String;
    /// 8 hex digits (`d9780558`), or the 16 that /proc/cpuinfo prints (`10000000d9780558`).
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if !(digits.len() == 8 || digits.len() == 16) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{s}` is not a serial number: write 8 hex digits, or the 16 of /proc/cpuinfo"));
        }
        let low = &digits[digits.len() - 8..];
        Ok(Serial(u32::from_str_radix(low, 16).map_err(|e| e.to_string())?))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// An interface address with its prefix length, e.g. `10.42.0.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0))
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask()))
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !u32::from(self.netmask()))
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.netmask()) == u32::from(self.network())
    }
    /// Inside the subnet and neither its network nor its broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network() && ip != self.broadcast()
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) =
            s.split_once('/').ok_or_else(|| format!("`{s}` has no prefix length; write e.g. 10.42.0.1/24"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (1..=30).contains(p)).ok_or_else(|| {
            format!("`/{prefix}` is not a usable prefix length; a lab subnet is /1 to /30, usually /24")
        })?;
        Ok(Ipv4Net { addr, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An inclusive range of addresses, written `FIRST-LAST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Range {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Ipv4Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for Ipv4Range {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a range; write FIRST-LAST, e.g. 10.42.0.100-10.42.0.199"))?;
        let first: Ipv4Addr = a.trim().parse().map_err(|_| format!("`{}` is not an IPv4 address", a.trim()))?;
        let last: Ipv4Addr = b.trim().parse().map_err(|_| format!("`{}` is not an IPv4 address", b.trim()))?;
        if first > last {
            return Err(format!("`{s}` runs backwards; write the lower address first"));
        }
        Ok(Ipv4Range { first, last })
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_both_notations() {
        let mac: MacAddr = "DC-A6-32-01-36-C2".parse().unwrap();
        assert_eq!(mac.to_string(), "dc:a6:32:01:36:c2");
        assert_eq!(mac.dashed(), "dc-a6-32-01-36-c2");
        for bad in
            ["dc:a6:32:01:36", "dc:a6:32:01:36:c2:00", "dc:a6:32:01:36:zz", "dca6.3201.36c2", "d:ca6:32:01:36:c2"]
        {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!("01:00:5e:00:00:01".parse::<MacAddr>().unwrap().is_multicast());
    }

    #[test]
    fn serials_keep_the_low_32_bits() {
        assert_eq!("d9780558".parse::<Serial>().unwrap().to_string(), "d9780558");
        assert_eq!("10000000D9780558".parse::<Serial>().unwrap(), Serial(0xd978_0558));
        assert_eq!("0x0000abcd".parse::<Serial>().unwrap().to_string(), "0000abcd");
        for bad in ["d978055", "d97805589", "g9780558", ""] {
            assert!(bad.parse::<Serial>().is_err(), "{bad}");
        }
    }

    #[test]
    fn subnets_and_ranges() {
        let net: Ipv4Net = "10.42.0.1/24".parse().unwrap();
        assert_eq!(net.network(), Ipv4Addr::new(10, 42, 0, 0));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 42, 0, 255));
        assert_eq!(net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(net.is_host(Ipv4Addr::new(10, 42, 0, 254)));
        assert!(!net.is_host(Ipv4Addr::new(10, 42, 0, 255)));
        assert!(!net.contains(Ipv4Addr::new(10, 42, 1, 1)));
        assert!("10.42.0.1".parse::<Ipv4Net>().is_err());
        assert!("10.42.0.1/31".parse::<Ipv4Net>().is_err());
        assert!("10.42.0.1/0".parse::<Ipv4Net>().is_err());
        let range: Ipv4Range = "10.42.0.100 - 10.42.0.199".parse().unwrap();
        assert_eq!(range.len(), 100);
        assert!(range.contains(Ipv4Addr::new(10, 42, 0, 150)));
        assert!("10.42.0.199-10.42.0.100".parse::<Ipv4Range>().is_err());
        assert!("10.42.0.100".parse::<Ipv4Range>().is_err());
    }
}
