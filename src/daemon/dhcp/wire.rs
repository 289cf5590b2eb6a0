//! DHCP messages on the wire (RFC 2131, 2132), on the dhcproto codec: `Request::parse` reads
//! what a client sent into the fields the daemon uses; `Reply::emit` writes an answer the way
//! picky boot ROMs need it. Pure bytes in and out; what to answer is `reply`'s job.
//!
//! Emitting rules (pxe.md §2.1, pi-netboot.md §1.3): options in a fixed order with 53 and 54
//! first and 82 last; no 0x00 pad options between options (the Pi 4 bootloader mis-parses
//! them), zero padding only after the end option, up to the BOOTP minimum of 300 bytes; the
//! boot file in the BOOTP `file` field, never option overload.

use crate::recipe::MacAddr;
use dhcproto::v4::{self, DhcpOption, Flags, HType, Message, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use std::net::Ipv4Addr;

/// BOOTP's minimum message (RFC 1542 §3.5; dhcproto's `MIN_PACKET_SIZE` is not applied by it).
pub const MIN_REPLY_LEN: usize = 300;
/// What every DHCP client must accept (RFC 2131 §2: 576-byte IP datagrams).
const DEFAULT_MAX_MESSAGE: usize = 576 - 28;
/// The BOOTP `file` field holds 128 bytes with its NUL.
pub const FILE_FIELD_MAX: usize = 127;
/// The fixed header, through the magic cookie.
const HEADER_LEN: usize = 240;

/// The DHCP message types the daemon tells apart (RFC 2132 §9.6).
pub use v4::MessageType;

/// Why a datagram is not a DHCP request we can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0} bytes is too short for a DHCP message (at least 240)")]
    TooShort(usize),
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("not a BOOTREQUEST (op {0})")]
    NotARequest(u8),
    #[error("hardware type {htype}, length {hlen}: only Ethernet (1, 6) is served")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("no message type (option 53): a BOOTP client, which is not served")]
    NoMessageType,
}

/// What a client's message says, as far as the daemon cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub message_type: MessageType,
    pub xid: u32,
    pub hops: u8,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: MacAddr,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54: the server the client chose.
    pub server_id: Option<Ipv4Addr>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 60.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 77, raw.
    pub user_class: Option<Vec<u8>>,
    /// Option 93, the first (preferred) architecture.
    pub arch: Option<u16>,
    /// Option 97: type byte and GUID.
    pub guid: Option<Vec<u8>>,
    /// Option 175 (iPXE's encapsulated options), raw.
    pub ipxe: Option<Vec<u8>>,
    /// Option 82, raw, to be copied back byte for byte.
    pub relay_info: Option<Vec<u8>>,
}

impl Request {
    /// Read a datagram sent to a DHCP server port.
    pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::TooShort(bytes.len()));
        }
        if bytes[236..240] != v4::MAGIC {
            return Err(ParseError::NoCookie);
        }
        // Read before dhcproto: its `chaddr()` slices by hlen, which the wire can set to 255.
        let (op, htype, hlen) = (bytes[0], bytes[1], bytes[2]);
        if op != 1 {
            return Err(ParseError::NotARequest(op));
        }
        if htype != 1 || hlen != 6 {
            return Err(ParseError::NotEthernet { htype, hlen });
        }
        let msg = Message::decode(&mut Decoder::new(bytes)).map_err(|e| ParseError::Decode(e.to_string()))?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&bytes[28..34]);
        let opts = msg.opts();
        // dhcproto stops decoding at the first option it cannot read (a host name that is not
        // UTF-8, say) and drops the rest; what it lost is read from the raw options instead.
        let raw = |code: u8| find_option(bytes, code);
        let ip = |code: u8| raw(code).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(Ipv4Addr::from);
        let u16_of = |code: u8| raw(code).and_then(|v| v.get(..2)).map(|v| u16::from_be_bytes([v[0], v[1]]));
        let bytes_of = |code: OptionCode| match opts.get(code) {
            Some(DhcpOption::ClassIdentifier(v))
            | Some(DhcpOption::UserClass(v))
            | Some(DhcpOption::ClientMachineIdentifier(v)) => Some(v.clone()),
            Some(DhcpOption::Unknown(u)) => Some(u.data().to_vec()),
            _ => raw(u8::from(code)).map(<[u8]>::to_vec),
        };
        let message_type = opts
            .msg_type()
            .or_else(|| raw(53).and_then(|v| v.first()).map(|&t| MessageType::from(t)))
            .ok_or(ParseError::NoMessageType)?;
        Ok(Request {
            message_type,
            xid: msg.xid(),
            hops: msg.hops(),
            broadcast: msg.flags().broadcast(),
            ciaddr: msg.ciaddr(),
            giaddr: msg.giaddr(),
            mac: MacAddr(mac),
            requested_ip: match opts.get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
                _ => ip(50),
            },
            server_id: match opts.get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
                _ => ip(54),
            },
            max_message_size: match opts.get(OptionCode::MaxMessageSize) {
                Some(DhcpOption::MaxMessageSize(n)) => Some(*n),
                _ => u16_of(57),
            },
            vendor_class: bytes_of(OptionCode::ClassIdentifier),
            user_class: bytes_of(OptionCode::UserClass),
            arch: match opts.get(OptionCode::ClientSystemArchitecture) {
                Some(DhcpOption::ClientSystemArchitecture(a)) => Some(a.0),
                _ => u16_of(93),
            },
            guid: bytes_of(OptionCode::ClientMachineIdentifier),
            ipxe: bytes_of(OptionCode::Unknown(super::pxe::IPXE_ENCAP)),
            relay_info: raw(82).map(<[u8]>::to_vec),
        })
    }

    /// A request with only the header fields set; tests and tools fill in the rest.
    pub fn new(message_type: MessageType, mac: MacAddr, xid: u32) -> Request {
        Request {
            message_type,
            xid,
            hops: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            mac,
            requested_ip: None,
            server_id: None,
            max_message_size: None,
            vendor_class: None,
            user_class: None,
            arch: None,
            guid: None,
            ipxe: None,
            relay_info: None,
        }
    }

    /// Encode as a client would send it (for tests and benchmarks).
    pub fn emit(&self) -> Vec<u8> {
        let mut msg = Message::new_with_id(
            self.xid,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr,
            &self.mac.0,
        );
        msg.set_hops(self.hops);
        if self.broadcast {
            msg.set_flags(Flags::default().set_broadcast());
        }
        let o = msg.opts_mut();
        o.insert(DhcpOption::MessageType(self.message_type));
        if let Some(ip) = self.requested_ip {
            o.insert(DhcpOption::RequestedIpAddress(ip));
        }
        if let Some(ip) = self.server_id {
            o.insert(DhcpOption::ServerIdentifier(ip));
        }
        if let Some(n) = self.max_message_size {
            o.insert(DhcpOption::MaxMessageSize(n));
        }
        if let Some(v) = &self.vendor_class {
            o.insert(DhcpOption::ClassIdentifier(v.clone()));
        }
        if let Some(v) = &self.user_class {
            o.insert(DhcpOption::UserClass(v.clone()));
        }
        if let Some(a) = self.arch {
            o.insert(DhcpOption::ClientSystemArchitecture(v4::Architecture(a)));
        }
        if let Some(v) = &self.guid {
            o.insert(DhcpOption::ClientMachineIdentifier(v.clone()));
        }
        if let Some(v) = &self.ipxe {
            o.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::Unknown(super::pxe::IPXE_ENCAP), v.clone())));
        }
        if let Some(r) = &self.relay_info {
            o.insert(raw_relay_info(r));
        }
        let mut out = Vec::with_capacity(MIN_REPLY_LEN);
        // Encoding into a Vec cannot fail.
        let _ = msg.encode(&mut Encoder::new(&mut out));
        out.resize(out.len().max(MIN_REPLY_LEN), 0);
        out
    }
}

/// An answer to a client, before encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub message_type: Option<MessageType>,
    pub xid: u32,
    pub hops: u8,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    /// The next server (TFTP) for boot clients.
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: MacAddr,
    /// The BOOTP `file` field (at most 127 bytes; longer names go only in option 67).
    pub file: Option<Vec<u8>>,
    /// 54.
    pub server_id: Option<Ipv4Addr>,
    /// 51, with 58 and 59 derived (T1 = 1/2, T2 = 7/8, RFC 2131 §4.4.5).
    pub lease_secs: Option<u32>,
    /// 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3.
    pub router: Option<Ipv4Addr>,
    /// 6.
    pub dns: Vec<Ipv4Addr>,
    /// 12.
    pub hostname: Option<String>,
    /// 15.
    pub domain: Option<String>,
    /// 43.
    pub vendor_options: Option<Vec<u8>>,
    /// 56 (a NAK's reason).
    pub message: Option<String>,
    /// 60.
    pub vendor_class: Option<Vec<u8>>,
    /// 66, a dotted-quad string (the Pi has no resolver).
    pub tftp_server: Option<Ipv4Addr>,
    /// 67.
    pub bootfile: Option<Vec<u8>>,
    /// 97, echoed.
    pub guid: Option<Vec<u8>>,
    /// 175.
    pub ipxe: Option<Vec<u8>>,
    /// 82, echoed byte for byte, last.
    pub relay_info: Option<Vec<u8>>,
}

impl Default for Reply {
    fn default() -> Self {
        let zero = Ipv4Addr::UNSPECIFIED;
        Reply {
            message_type: None,
            xid: 0,
            hops: 0,
            broadcast: false,
            ciaddr: zero,
            yiaddr: zero,
            siaddr: zero,
            giaddr: zero,
            mac: MacAddr([0; 6]),
            file: None,
            server_id: None,
            lease_secs: None,
            subnet_mask: None,
            router: None,
            dns: Vec::new(),
            hostname: None,
            domain: None,
            vendor_options: None,
            message: None,
            vendor_class: None,
            tftp_server: None,
            bootfile: None,
            guid: None,
            ipxe: None,
            relay_info: None,
        }
    }
}

impl Reply {
    /// The options in the order they are written: 53 and 54 first (as dnsmasq does; some ROMs
    /// look for them there), then by number, 82 last (RFC 3046 §2.1).
    fn options(&self) -> Vec<DhcpOption> {
        let mut o = Vec::new();
        if let Some(t) = self.message_type {
            o.push(DhcpOption::MessageType(t));
        }
        if let Some(ip) = self.server_id {
            o.push(DhcpOption::ServerIdentifier(ip));
        }
        if let Some(ip) = self.subnet_mask {
            o.push(DhcpOption::SubnetMask(ip));
        }
        if let Some(ip) = self.router {
            o.push(DhcpOption::Router(vec![ip]));
        }
        if !self.dns.is_empty() {
            o.push(DhcpOption::DomainNameServer(self.dns.clone()));
        }
        if let Some(h) = &self.hostname {
            o.push(DhcpOption::Hostname(h.clone()));
        }
        if let Some(d) = &self.domain {
            o.push(DhcpOption::DomainName(d.clone()));
        }
        if let Some(v) = &self.vendor_options {
            o.push(DhcpOption::VendorExtensions(v.clone()));
        }
        if let Some(secs) = self.lease_secs {
            o.push(DhcpOption::AddressLeaseTime(secs));
        }
        if let Some(m) = &self.message {
            o.push(DhcpOption::Message(m.clone()));
        }
        if let Some(secs) = self.lease_secs {
            o.push(DhcpOption::Renewal(secs / 2));
            o.push(DhcpOption::Rebinding((u64::from(secs) * 7 / 8) as u32));
        }
        if let Some(v) = &self.vendor_class {
            o.push(DhcpOption::ClassIdentifier(v.clone()));
        }
        if let Some(ip) = self.tftp_server {
            o.push(DhcpOption::TFTPServerName(ip.to_string().into_bytes()));
        }
        if let Some(f) = &self.bootfile {
            o.push(DhcpOption::BootfileName(f.clone()));
        }
        if let Some(g) = &self.guid {
            o.push(DhcpOption::ClientMachineIdentifier(g.clone()));
        }
        if let Some(v) = &self.ipxe {
            o.push(DhcpOption::Unknown(UnknownOption::new(OptionCode::Unknown(super::pxe::IPXE_ENCAP), v.clone())));
        }
        if let Some(r) = &self.relay_info {
            o.push(raw_relay_info(r));
        }
        o
    }

    /// Encode for a client that accepts messages of `max_message_size` (option 57; default 576
    /// bytes of IP). Option 67 is left out when it would not fit (the `file` field still names
    /// the file); the result is padded with zeros after the end option to 300 bytes.
    pub fn emit(&self, max_message_size: Option<u16>) -> Vec<u8> {
        let limit = max_message_size.map_or(DEFAULT_MAX_MESSAGE, |n| usize::from(n).max(DEFAULT_MAX_MESSAGE));
        let out = self.emit_all();
        if out.len() > limit && self.bootfile.is_some() && self.file.is_some() {
            let mut smaller = self.clone();
            smaller.bootfile = None;
            return smaller.emit_all();
        }
        out
    }

    fn emit_all(&self) -> Vec<u8> {
        let mut msg = Message::new_with_id(self.xid, self.ciaddr, self.yiaddr, self.siaddr, self.giaddr, &self.mac.0);
        msg.set_opcode(Opcode::BootReply).set_htype(HType::Eth).set_hops(self.hops);
        if self.broadcast {
            msg.set_flags(Flags::default().set_broadcast());
        }
        if let Some(file) = self.file.as_deref().filter(|f| f.len() <= FILE_FIELD_MAX) {
            msg.set_fname(file);
        }
        let mut out = Vec::with_capacity(MIN_REPLY_LEN + 64);
        let mut e = Encoder::new(&mut out);
        // The header with no options (dhcproto writes nothing, not even the end, for none), then
        // our options in our order. Encoding into a Vec cannot fail.
        let _ = msg.encode(&mut e);
        for option in self.options() {
            let _ = option.encode(&mut e);
        }
        let _ = DhcpOption::End.encode(&mut e);
        out.resize(out.len().max(MIN_REPLY_LEN), 0);
        out
    }
}

/// Option 82 as the relay sent it: dhcproto's typed form would re-order its sub-options.
fn raw_relay_info(bytes: &[u8]) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::RelayAgentInformation, bytes.to_vec()))
}

/// One option of an encoded message, found by walking its TLVs (for tests and log lines).
pub fn find_option(message: &[u8], code: u8) -> Option<&[u8]> {
    let mut rest = message.get(HEADER_LEN..)?;
    while let Some((&c, tail)) = rest.split_first() {
        match c {
            0 => rest = tail,
            255 => return None,
            _ => {
                let (&len, tail) = tail.split_first()?;
                let value = tail.get(..usize::from(len))?;
                if c == code {
                    return Some(value);
                }
                rest = &tail[usize::from(len)..];
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::dhcp::pxe;

    const PI_MAC: MacAddr = MacAddr([0xdc, 0xa6, 0x32, 0x01, 0x36, 0xc2]);

    /// A Pi 4 DISCOVER as captured (pi-netboot.md §1.2).
    fn pi4_discover() -> Request {
        let mut r = Request::new(MessageType::Discover, PI_MAC, 0x1234_5678);
        r.vendor_class = Some(b"PXEClient:Arch:00000:UNDI:002001".to_vec());
        r.arch = Some(0);
        let mut guid = vec![0u8];
        guid.extend_from_slice(b"RPi4");
        guid.extend_from_slice(&[0x00, 0xc0, 0x31, 0x14, 0x32, 0x01, 0x36, 0xc2, 0xd9, 0x78, 0x05, 0x58]);
        r.guid = Some(guid);
        r
    }

    #[test]
    fn request_round_trips_through_bytes() {
        let mut r = pi4_discover();
        r.ipxe = Some(vec![0x13, 1, 1]);
        r.user_class = Some(b"iPXE".to_vec());
        r.requested_ip = Some(Ipv4Addr::new(10, 0, 0, 5));
        r.giaddr = Ipv4Addr::new(10, 9, 0, 1);
        r.hops = 1;
        r.relay_info = Some(b"\x01\x03abc".to_vec());
        let bytes = r.emit();
        assert!(bytes.len() >= 300);
        assert_eq!(Request::parse(&bytes).unwrap(), r);
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        let good = pi4_discover().emit();
        assert_eq!(Request::parse(&good[..239]), Err(ParseError::TooShort(239)));
        let mut bad = good.clone();
        bad[236] = 0;
        assert_eq!(Request::parse(&bad), Err(ParseError::NoCookie));
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(Request::parse(&bad), Err(ParseError::NotARequest(2)));
        let mut bad = good.clone();
        bad[2] = 255;
        assert_eq!(Request::parse(&bad), Err(ParseError::NotEthernet { htype: 1, hlen: 255 }));
        // Options cut short: the message type is the first option, so it is still read.
        let header_and_type = &good[..243];
        assert_eq!(Request::parse(header_and_type).unwrap().message_type, MessageType::Discover);
        // No options at all: BOOTP.
        assert_eq!(Request::parse(&good[..240]), Err(ParseError::NoMessageType));
        // An option 94 of the wrong length and option 93 of one byte (debug asserts in dhcproto).
        let mut odd = good[..240].to_vec();
        odd.extend_from_slice(&[53, 1, 1, 94, 1, 1, 93, 1, 0, 151, 0, 81, 1, 0, 255]);
        let parsed = Request::parse(&odd).unwrap();
        assert_eq!(parsed.arch, None);
        // A host name that is not UTF-8 stops dhcproto; what follows it is still read.
        let mut latin1 = good[..240].to_vec();
        latin1.extend_from_slice(&[12, 3, b'p', 0xe9, b'c', 60, 9]);
        latin1.extend_from_slice(b"PXEClient");
        latin1.extend_from_slice(&[93, 2, 0, 7, 50, 4, 10, 0, 0, 9, 53, 1, 3, 255]);
        let parsed = Request::parse(&latin1).unwrap();
        assert_eq!(parsed.message_type, MessageType::Request);
        assert_eq!(parsed.vendor_class.as_deref(), Some(&b"PXEClient"[..]));
        assert_eq!((parsed.arch, parsed.requested_ip), (Some(7), Some(Ipv4Addr::new(10, 0, 0, 9))));
    }

    #[test]
    fn reply_layout_for_a_pi() {
        let reply = Reply {
            message_type: Some(MessageType::Offer),
            xid: 7,
            mac: PI_MAC,
            siaddr: Ipv4Addr::new(10, 42, 0, 1),
            server_id: Some(Ipv4Addr::new(10, 42, 0, 1)),
            vendor_class: Some(b"PXEClient".to_vec()),
            vendor_options: Some(pxe::raspberry_pi_menu()),
            tftp_server: Some(Ipv4Addr::new(10, 42, 0, 1)),
            guid: Some(vec![0; 17]),
            ..Reply::default()
        };
        let bytes = reply.emit(None);
        assert_eq!(bytes.len(), 240 + 3 + 6 + 37 + 11 + 11 + 19 + 1, "no padding past 300");
        assert_eq!(bytes[0], 2);
        assert_eq!(&bytes[20..24], &[10, 42, 0, 1]);
        // 53 then 54 first; no pad bytes before the end option; zeros after it.
        let options = &bytes[240..];
        assert_eq!(&options[..3], &[53, 1, 2]);
        assert_eq!(&options[3..9], &[54, 4, 10, 42, 0, 1]);
        assert_eq!(walk_to_end(options), options.len() - 1);
        // A small reply is padded with zeros after the end option.
        let small = Reply { message_type: Some(MessageType::Nak), ..Reply::default() }.emit(None);
        assert_eq!(small.len(), 300);
        let end = walk_to_end(&small[240..]);
        assert!(small[240 + end + 1..].iter().all(|&b| b == 0));
        assert_eq!(find_option(&bytes, 43).unwrap(), pxe::raspberry_pi_menu().as_slice());
        assert_eq!(find_option(&bytes, 60).unwrap(), b"PXEClient");
        assert_eq!(find_option(&bytes, 66).unwrap(), b"10.42.0.1");
        assert_eq!(find_option(&bytes, 97).unwrap(), &[0; 17]);
        assert_eq!(find_option(&bytes, 67), None);
    }

    /// The index of the end option, asserting no pad option comes before it.
    fn walk_to_end(options: &[u8]) -> usize {
        let mut i = 0;
        loop {
            match options[i] {
                255 => return i,
                0 => panic!("pad option at {i} before the end"),
                _ => i += 2 + usize::from(options[i + 1]),
            }
        }
    }

    #[test]
    fn options_are_ordered_with_82_last() {
        // Sub-options out of numeric order: they must come back as they were.
        let relay = b"\x02\x01\x09\x01\x05port7".to_vec();
        let reply = Reply {
            message_type: Some(MessageType::Ack),
            server_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
            lease_secs: Some(3600),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            router: Some(Ipv4Addr::new(10, 0, 0, 254)),
            dns: vec![Ipv4Addr::new(10, 0, 0, 53)],
            hostname: Some("node1".into()),
            domain: Some("lab.example".into()),
            ipxe: Some(pxe::ipxe_no_pxedhcp()),
            relay_info: Some(relay),
            ..Reply::default()
        };
        let bytes = reply.emit(None);
        let mut codes = Vec::new();
        let mut i = 240;
        while bytes[i] != 255 {
            codes.push(bytes[i]);
            i += 2 + usize::from(bytes[i + 1]);
        }
        assert_eq!(codes, [53, 54, 1, 3, 6, 12, 15, 51, 58, 59, 175, 82]);
        assert_eq!(find_option(&bytes, 58).unwrap(), 1800u32.to_be_bytes());
        assert_eq!(find_option(&bytes, 59).unwrap(), 3150u32.to_be_bytes());
        assert_eq!(find_option(&bytes, 82).unwrap(), b"\x02\x01\x09\x01\x05port7");
        assert_eq!(find_option(&bytes, 175).unwrap(), &[176, 1, 1]);
    }

    #[test]
    fn boot_file_goes_in_the_file_field_and_option_67_when_it_fits() {
        let name = b"pxelinux.0".to_vec();
        let reply = Reply { file: Some(name.clone()), bootfile: Some(name.clone()), ..Reply::default() };
        let bytes = reply.emit(None);
        assert_eq!(&bytes[108..118], b"pxelinux.0");
        assert_eq!(bytes[118], 0);
        assert_eq!(find_option(&bytes, 67).unwrap(), b"pxelinux.0");
        assert_eq!(find_option(&bytes, 52), None, "no option overload");
        // A long URL: only option 67 can hold it.
        let url = format!("http://10.42.0.1/{}", "x".repeat(150)).into_bytes();
        let reply = Reply { file: Some(url.clone()), bootfile: Some(url.clone()), ..Reply::default() };
        let bytes = reply.emit(None);
        assert!(bytes[108..236].iter().all(|&b| b == 0));
        assert_eq!(find_option(&bytes, 67).unwrap(), url.as_slice());
        // A name that fits the field but not the message: option 67 is dropped.
        let name = vec![b'a'; 127];
        let big = Reply {
            file: Some(name.clone()),
            bootfile: Some(name.clone()),
            vendor_options: Some(vec![1; 250]),
            guid: Some(vec![0; 17]),
            ..Reply::default()
        };
        let bytes = big.emit(None);
        assert!(bytes.len() <= 548, "{}", bytes.len());
        assert_eq!(find_option(&bytes, 67), None);
        assert_eq!(&bytes[108..235], name.as_slice());
        assert_eq!(find_option(&big.emit(Some(1472)), 67).unwrap(), name.as_slice());
    }
}
