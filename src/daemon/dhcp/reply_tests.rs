//! Table tests for the reply policy: every mode × answer × client class, every reply shape in
//! bytes, the server-mode lease exchange, addressing, and arbitrary bytes through the whole
//! parse-and-decide path.

use super::*;
use crate::daemon::dhcp::known::{ClientKind, KnownClient};
use crate::daemon::dhcp::leases::Pool;
use crate::daemon::dhcp::wire::find_option;
use crate::recipe::{MacAddr, Model, Serial};
use proptest::prelude::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);
const PI_VENDOR: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";
const KNOWN_PI_SERIAL: u32 = 0xd978_0558;
const KNOWN_PC_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0, 0, 0x11]);
const PC_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0, 0, 0x22]);
const PI_MAC: MacAddr = MacAddr([0xdc, 0xa6, 0x32, 0, 0, 0x33]);
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
const NOW: u64 = 1_800_000_000;

fn settings(mode: Mode, answer: Answer) -> Settings {
    Settings {
        mode,
        answer,
        server: SERVER,
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        subnet: Some("10.42.0.1/24".parse().unwrap()),
        router: Some(Ipv4Addr::new(10, 42, 0, 254)),
        dns: vec![Ipv4Addr::new(10, 42, 0, 254)],
        domain: Some("lab.example".into()),
        boot: BootFiles::default(),
        placeholders: Placeholders::new(SERVER, 80),
        clients: KnownClients::new(vec![
            KnownClient {
                name: "node1".into(),
                mac: None,
                serial: Some(Serial(KNOWN_PI_SERIAL)),
                kind: Some(ClientKind::Pi(Model::Pi4)),
                address: Some(Ipv4Addr::new(10, 42, 0, 11)),
            },
            KnownClient { name: "pc1".into(), mac: Some(KNOWN_PC_MAC), serial: None, kind: None, address: None },
        ]),
    }
}

fn state(mode: Mode) -> State {
    let leases = (mode == Mode::Server).then(|| {
        let pool = Pool {
            range: "10.42.0.100-10.42.0.102".parse().unwrap(),
            subnet: "10.42.0.1/24".parse().unwrap(),
            server: SERVER,
            lease_secs: 3600,
            boot_hold_secs: 300,
        };
        Leases::new(pool, [Ipv4Addr::new(10, 42, 0, 11)].into())
    });
    State { leases, offers: RecentOffers::default() }
}

fn pi4_guid(serial: u32) -> Vec<u8> {
    let mut g = vec![0, b'R', b'P', b'i', b'4', 0x00, 0xc0, 0x31, 0x14, 0x32, 0x00, 0x00, 0x33];
    g.extend_from_slice(&serial.to_be_bytes());
    g
}

fn discover(mac: MacAddr, vendor: Option<&[u8]>, arch: Option<u16>) -> Request {
    let mut r = Request::new(MessageType::Discover, mac, 0x26f3_0339);
    r.vendor_class = vendor.map(<[u8]>::to_vec);
    r.arch = arch;
    r
}

fn known_pi() -> Request {
    let mut r = discover(MacAddr([0xdc, 0xa6, 0x32, 0, 0, 0x01]), Some(PI_VENDOR), Some(0));
    r.guid = Some(pi4_guid(KNOWN_PI_SERIAL));
    r
}
fn unknown_pi() -> Request {
    let mut r = discover(PI_MAC, Some(PI_VENDOR), Some(0));
    r.guid = Some(pi4_guid(0x0bad_cafe));
    r
}
fn known_pc() -> Request {
    discover(KNOWN_PC_MAC, Some(b"PXEClient:Arch:00007:UNDI:003016"), Some(7))
}
fn unknown_pc() -> Request {
    discover(PC_MAC, Some(b"PXEClient:Arch:00007:UNDI:003016"), Some(7))
}
fn plain() -> Request {
    discover(MacAddr([0x02, 0, 0, 0, 0, 0x44]), Some(b"udhcp 1.35.0"), None)
}

fn run(settings: &Settings, state: &mut State, req: &Request) -> Decision {
    decide(settings, state, req, Arrival::Dhcp, PEER, NOW)
}

fn has_boot_info(reply: &Reply) -> bool {
    reply.file.is_some() || reply.vendor_options.is_some()
}

/// (reply sent?, with an address?, with boot information?) for every mode, answer and client.
#[test]
fn every_mode_and_answer() {
    use Answer::*;
    use Mode::*;
    type Row = (&'static str, fn() -> Request, [(bool, bool); 3]);
    // For each client: (reply, boot info) under answer = known, pis, all, in proxy mode.
    let proxy: &[Row] = &[
        ("known pi", known_pi, [(true, true), (true, true), (true, true)]),
        ("unknown pi", unknown_pi, [(false, false), (true, true), (true, true)]),
        ("known pc", known_pc, [(true, true), (true, true), (true, true)]),
        ("unknown pc", unknown_pc, [(false, false), (false, false), (true, true)]),
        ("plain client", plain, [(false, false), (false, false), (false, false)]),
    ];
    for (name, make, expect) in proxy {
        for (answer, (reply, boot)) in [Known, Pis, All].into_iter().zip(expect) {
            let s = settings(Proxy, answer);
            let d = run(&s, &mut state(Proxy), &make());
            assert_eq!(d.reply.is_some(), *reply, "proxy {answer:?} {name}: {}", d.outcome);
            if let Some((r, dest)) = &d.reply {
                assert_eq!(has_boot_info(r), *boot, "proxy {answer:?} {name}");
                assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED, "proxy never gives an address");
                assert_eq!(*dest, Destination::Broadcast);
            }
        }
    }
    // Server mode: everyone gets an address; boot information as above.
    for (name, make, expect) in proxy {
        for (answer, (reply, boot)) in [Known, Pis, All].into_iter().zip(expect) {
            let s = settings(Server, answer);
            let d = run(&s, &mut state(Server), &make());
            let (r, _) = d.reply.as_ref().unwrap_or_else(|| panic!("server {answer:?} {name}: {}", d.outcome));
            assert_ne!(r.yiaddr, Ipv4Addr::UNSPECIFIED, "server {answer:?} {name}");
            assert_eq!(r.lease_secs, Some(3600));
            assert_eq!(has_boot_info(r), *boot && *reply, "server {answer:?} {name}");
        }
    }
    // Off answers nothing.
    assert!(run(&settings(Off, All), &mut state(Off), &known_pi()).reply.is_none());
}

#[test]
fn pi_reply_bytes_in_offer_and_ack() {
    for mode in [Mode::Proxy, Mode::Server] {
        let s = settings(mode, Answer::Pis);
        let mut st = state(mode);
        let req = unknown_pi();
        let (offer, _) = run(&s, &mut st, &req).reply.unwrap();
        // The Pi 4's REQUEST: no option 60, no 93.
        let mut request = Request::new(MessageType::Request, req.mac, req.xid);
        request.server_id = Some(SERVER);
        request.requested_ip = (mode == Mode::Server).then_some(offer.yiaddr);
        let d = run(&s, &mut st, &request);
        let (ack, _) = d.reply.unwrap_or_else(|| panic!("{mode:?}: {}", d.outcome));
        for (reply, kind) in [(offer, 2u8), (ack, 5)] {
            let bytes = reply.emit(None);
            assert_eq!(find_option(&bytes, 53).unwrap(), [kind], "{mode:?}");
            assert_eq!(find_option(&bytes, 54).unwrap(), SERVER.octets());
            assert_eq!(find_option(&bytes, 60).unwrap(), b"PXEClient");
            let mut menu = vec![6, 1, 3, 10, 4, 0, b'P', b'X', b'E', 9, 0x17, 0, 0, 0x14];
            menu.extend_from_slice(b"Raspberry Pi Boot   ");
            menu.push(255);
            assert_eq!(find_option(&bytes, 43).unwrap(), menu.as_slice());
            assert_eq!(find_option(&bytes, 66).unwrap(), b"10.42.0.1");
            assert_eq!(&bytes[20..24], &SERVER.octets(), "siaddr");
            assert!(bytes.len() >= 300);
            if kind == 2 {
                assert_eq!(find_option(&bytes, 97).unwrap(), pi4_guid(0x0bad_cafe).as_slice(), "97 echoed");
            }
        }
    }
}

#[test]
fn a_pi_known_by_serial_keeps_its_name_and_address_when_its_request_does_not_say() {
    let s = settings(Mode::Server, Answer::Known);
    let mut st = state(Mode::Server);
    let discover = known_pi();
    let (offer, _) = run(&s, &mut st, &discover).reply.unwrap();
    assert_eq!(offer.yiaddr, Ipv4Addr::new(10, 42, 0, 11));
    // Its REQUEST: no option 60, 93 or 97.
    let mut request = Request::new(MessageType::Request, discover.mac, discover.xid);
    request.server_id = Some(SERVER);
    request.requested_ip = Some(offer.yiaddr);
    let d = run(&s, &mut st, &request);
    assert_eq!(d.client.as_deref(), Some("node1"));
    let (ack, _) = d.reply.unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (Some(MessageType::Ack), offer.yiaddr));
    assert!(ack.vendor_options.is_some(), "boot information in the ACK too");
    assert_eq!(ack.hostname.as_deref(), Some("node1"));
    // Hours later, Linux on it renews: still its address.
    let mut renew = Request::new(MessageType::Request, discover.mac, 99);
    renew.ciaddr = offer.yiaddr;
    let d = decide(&s, &mut st, &renew, Arrival::Dhcp, PEER, NOW + 3000);
    assert_eq!(d.reply.unwrap().0.message_type, Some(MessageType::Ack), "{}", d.outcome);
}

#[test]
fn pi3_offer_holds_through_the_boot_and_its_request_makes_the_lease() {
    let s = settings(Mode::Server, Answer::Pis);
    let mut st = state(Mode::Server);
    let mut req = discover(MacAddr([0xb8, 0x27, 0xeb, 1, 2, 3]), Some(PI_VENDOR), Some(0));
    let mut guid = vec![0];
    guid.extend([0x44; 16]);
    req.guid = Some(guid);
    let (offer, _) = run(&s, &mut st, &req).reply.unwrap();
    let held = st.leases.as_ref().unwrap().of(req.mac).unwrap().clone();
    assert!(!held.bound && held.ip == offer.yiaddr && held.expires == NOW + 300, "{held:?}");
    // Linux on the Pi, minutes later, DISCOVERs and REQUESTs: the same address, now a lease.
    let d = decide(&s, &mut st, &discover(req.mac, None, None), Arrival::Dhcp, PEER, NOW + 120);
    assert_eq!(d.reply.unwrap().0.yiaddr, offer.yiaddr);
    let mut request = Request::new(MessageType::Request, req.mac, 5);
    request.server_id = Some(SERVER);
    request.requested_ip = Some(offer.yiaddr);
    let d = decide(&s, &mut st, &request, Arrival::Dhcp, PEER, NOW + 121);
    assert_eq!(d.reply.unwrap().0.message_type, Some(MessageType::Ack));
    let lease = st.leases.as_ref().unwrap().of(req.mac).unwrap().clone();
    assert!(lease.bound && lease.expires == NOW + 121 + 3600, "{lease:?}");
}

#[test]
fn known_pi_gets_its_fixed_address_by_serial_and_a_hostname() {
    let s = settings(Mode::Server, Answer::Known);
    let mut st = state(Mode::Server);
    let (offer, _) = run(&s, &mut st, &known_pi()).reply.unwrap();
    assert_eq!(offer.yiaddr, Ipv4Addr::new(10, 42, 0, 11));
    assert_eq!(offer.hostname.as_deref(), Some("node1"));
    let bytes = offer.emit(None);
    assert_eq!(find_option(&bytes, 1).unwrap(), [255, 255, 255, 0]);
    assert_eq!(find_option(&bytes, 3).unwrap(), [10, 42, 0, 254]);
    assert_eq!(find_option(&bytes, 6).unwrap(), [10, 42, 0, 254]);
    assert_eq!(find_option(&bytes, 12).unwrap(), b"node1");
    assert_eq!(find_option(&bytes, 15).unwrap(), b"lab.example");
    assert_eq!(find_option(&bytes, 51).unwrap(), 3600u32.to_be_bytes());
}

#[test]
fn pc_reply_shapes() {
    let http = |arch: u16| {
        let vendor = format!("HTTPClient:Arch:{arch:05}:UNDI:003001");
        discover(PC_MAC, Some(vendor.as_bytes()), Some(arch))
    };
    let ipxe = |arch: u16| {
        let mut r = discover(PC_MAC, Some(b"PXEClient:Arch:00007:UNDI:003010"), Some(arch));
        r.ipxe = Some(vec![0x13, 1, 1]);
        r.user_class = Some(b"iPXE".to_vec());
        r
    };
    let mut guid_pc = discover(PC_MAC, Some(b"PXEClient:Arch:00000:UNDI:002001"), Some(0));
    guid_pc.guid = Some((0..17).collect());
    /// (request, mode, file, option 60, option 43, option 175)
    type Case<'a> = (Request, Mode, &'a str, Option<&'a [u8]>, Option<Vec<u8>>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        (guid_pc.clone(), Mode::Proxy, "pxelinux.0", Some(b"PXEClient"), Some(vec![6, 1, 8, 255]), None),
        (guid_pc, Mode::Server, "pxelinux.0", None, None, None),
        (unknown_pc(), Mode::Proxy, "ipxe.efi", Some(b"PXEClient"), Some(vec![6, 1, 8, 255]), None),
        (
            discover(PC_MAC, Some(b"PXEClient:Arch:00009:UNDI:003016"), Some(9)),
            Mode::Server,
            "ipxe.efi",
            None,
            None,
            None,
        ),
        (
            discover(PC_MAC, Some(b"PXEClient:Arch:00011:UNDI:003000"), Some(11)),
            Mode::Proxy,
            "grubaa64.efi",
            Some(b"PXEClient"),
            Some(vec![6, 1, 8, 255]),
            None,
        ),
        (
            discover(PC_MAC, Some(b"PXEClient:Arch:00006:UNDI:003016"), Some(6)),
            Mode::Server,
            "ipxe-ia32.efi",
            None,
            None,
            None,
        ),
        (http(16), Mode::Proxy, "http://10.42.0.1/pc/ipxe.efi", Some(b"HTTPClient"), None, None),
        (http(16), Mode::Server, "http://10.42.0.1/pc/ipxe.efi", Some(b"HTTPClient"), None, None),
        (http(19), Mode::Proxy, "http://10.42.0.1/pc/grubaa64.efi", Some(b"HTTPClient"), None, None),
        (http(15), Mode::Server, "http://10.42.0.1/pc/ipxe-ia32.efi", Some(b"HTTPClient"), None, None),
        (
            ipxe(7),
            Mode::Proxy,
            "http://10.42.0.1/ipxe/52-54-00-00-00-22.ipxe",
            Some(b"PXEClient"),
            Some(vec![6, 1, 8, 255]),
            None,
        ),
        (ipxe(7), Mode::Server, "http://10.42.0.1/ipxe/52-54-00-00-00-22.ipxe", None, None, Some(vec![176, 1, 1])),
        (ipxe(0), Mode::Server, "http://10.42.0.1/ipxe/52-54-00-00-00-22.ipxe", None, None, Some(vec![176, 1, 1])),
    ];
    for (req, mode, file, vendor, vendor_options, ipxe_opt) in cases {
        let s = settings(mode, Answer::All);
        let d = run(&s, &mut state(mode), &req);
        let (reply, _) = d.reply.unwrap_or_else(|| panic!("{mode:?} {file}: {}", d.outcome));
        let bytes = reply.emit(None);
        assert_eq!(&bytes[108..108 + file.len()], file.as_bytes(), "{mode:?} {file}: BOOTP file");
        assert_eq!(bytes[108 + file.len()], 0);
        assert_eq!(find_option(&bytes, 67).unwrap(), file.as_bytes(), "{mode:?} {file}");
        assert_eq!(&bytes[20..24], &SERVER.octets(), "siaddr");
        assert_eq!(find_option(&bytes, 60), vendor, "{mode:?} {file}: 60");
        assert_eq!(find_option(&bytes, 43).map(<[u8]>::to_vec), vendor_options, "{mode:?} {file}: 43");
        assert_eq!(find_option(&bytes, 175).map(<[u8]>::to_vec), ipxe_opt, "{mode:?} {file}: 175");
        assert_eq!(find_option(&bytes, 52), None);
        assert_eq!(find_option(&bytes, 97), req.guid.as_deref());
        if mode == Mode::Proxy {
            assert_eq!(&bytes[16..20], &[0; 4], "proxy: yiaddr 0");
            for sub in 1..=5u8 {
                assert!(vendor_options.as_ref().is_none_or(|v| v[0] != sub), "no MTFTP sub-options");
            }
        }
    }
    // An architecture with no boot file: no answer in proxy mode, an address in server mode.
    let riscv = discover(PC_MAC, Some(b"PXEClient:Arch:00027:UNDI:003000"), Some(27));
    let d = run(&settings(Mode::Proxy, Answer::All), &mut state(Mode::Proxy), &riscv);
    assert_eq!(d.outcome, "ignored: no boot file for its architecture");
    let (r, _) = run(&settings(Mode::Server, Answer::All), &mut state(Mode::Server), &riscv).reply.unwrap();
    assert!(r.file.is_none() && r.yiaddr != Ipv4Addr::UNSPECIFIED);
}

#[test]
fn boot_server_port_answers_to_the_sender() {
    for mode in [Mode::Proxy, Mode::Server] {
        let s = settings(mode, Answer::All);
        let mut req = unknown_pc();
        req.message_type = MessageType::Request;
        req.ciaddr = Ipv4Addr::new(10, 42, 0, 150);
        let peer = SocketAddrV4::new(req.ciaddr, 4011);
        let d = decide(&s, &mut state(mode), &req, Arrival::BootServer, peer, NOW);
        let (reply, dest) = d.reply.unwrap();
        assert_eq!(dest, Destination::Unicast(peer));
        assert_eq!(reply.message_type, Some(MessageType::Ack));
        assert_eq!(reply.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.ciaddr, req.ciaddr);
        assert_eq!(reply.lease_secs, None);
        assert_eq!(reply.file.as_deref(), Some(&b"ipxe.efi"[..]));
        // A DISCOVER there, or a plain client, is not answered.
        let mut d2 = unknown_pc();
        d2.ciaddr = req.ciaddr;
        assert!(decide(&s, &mut state(mode), &d2, Arrival::BootServer, peer, NOW).reply.is_none());
        let mut p = plain();
        p.message_type = MessageType::Request;
        assert!(decide(&s, &mut state(mode), &p, Arrival::BootServer, peer, NOW).reply.is_none());
    }
}

#[test]
fn relayed_requests_go_back_to_the_relay_with_option_82() {
    for mode in [Mode::Proxy, Mode::Server] {
        let s = settings(mode, Answer::All);
        let mut req = unknown_pc();
        req.giaddr = Ipv4Addr::new(10, 9, 0, 1);
        req.hops = 1;
        req.relay_info = Some(b"\x01\x04eth7".to_vec());
        let (reply, dest) = run(&s, &mut state(mode), &req).reply.unwrap();
        assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(req.giaddr, 67)));
        assert_eq!((reply.giaddr, reply.hops), (req.giaddr, 1));
        let bytes = reply.emit(None);
        assert_eq!(find_option(&bytes, 82).unwrap(), b"\x01\x04eth7");
        // Not relayed: a client's own option 82 is not echoed.
        let mut own = unknown_pc();
        own.relay_info = Some(b"\x01\x01x".to_vec());
        let (reply, _) = run(&s, &mut state(mode), &own).reply.unwrap();
        assert_eq!(reply.relay_info, None);
    }
}

#[test]
fn addresses_no_relay_can_have_are_refused() {
    for mode in [Mode::Proxy, Mode::Server] {
        let s = settings(mode, Answer::All);
        for bad in [
            "255.255.255.255",
            "224.0.0.1",
            "239.1.2.3",
            "127.0.0.1",
            "0.0.0.1",
            "240.0.0.1",
            "10.42.0.255",
            "10.42.0.0",
            "10.42.0.1",
        ] {
            let mut req = unknown_pc();
            req.giaddr = bad.parse().unwrap();
            let mut st = state(mode);
            let d = run(&s, &mut st, &req);
            assert!(d.reply.is_none(), "{mode:?} giaddr {bad}: {d:?}");
            assert!(d.outcome.contains("which no relay can have"), "{}", d.outcome);
            assert!(st.leases.as_ref().is_none_or(|l| l.active(NOW) == 0), "{bad}: a pool address was used");
            let mut r = Request::new(MessageType::Request, PC_MAC, 9);
            r.giaddr = req.giaddr;
            r.requested_ip = Some(Ipv4Addr::new(10, 42, 0, 100));
            assert!(run(&s, &mut st, &r).reply.is_none(), "{bad}: a REQUEST was answered");
        }
        // A relay on the lab subnet, or on another network, is believed.
        for good in ["10.42.0.2", "10.9.0.1", "192.168.7.1"] {
            let mut req = unknown_pc();
            req.giaddr = good.parse().unwrap();
            assert!(run(&s, &mut state(mode), &req).reply.is_some(), "{good}");
        }
    }
    let none = Settings { subnet: None, ..settings(Mode::Proxy, Answer::All) };
    assert_eq!(impossible_relay(&none, "10.42.0.255".parse().unwrap()), None, "subnet unknown");
    assert_eq!(impossible_relay(&none, Ipv4Addr::UNSPECIFIED), None);
}

#[test]
fn server_mode_exchange() {
    let s = settings(Mode::Server, Answer::All);
    let mut st = state(Mode::Server);
    let mac = MacAddr([0x02, 0, 0, 0, 0, 1]);
    let d = run(&s, &mut st, &discover(mac, None, None));
    let (offer, dest) = d.reply.unwrap();
    assert_eq!((offer.yiaddr, dest), (Ipv4Addr::new(10, 42, 0, 100), Destination::Broadcast));
    assert!(!has_boot_info(&offer) && offer.siaddr.is_unspecified());
    // Selecting.
    let mut req = Request::new(MessageType::Request, mac, 2);
    req.server_id = Some(SERVER);
    req.requested_ip = Some(offer.yiaddr);
    let (ack, _) = run(&s, &mut st, &req).reply.unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (Some(MessageType::Ack), offer.yiaddr));
    // Renewing: unicast to ciaddr.
    let mut renew = Request::new(MessageType::Request, mac, 3);
    renew.ciaddr = offer.yiaddr;
    let (ack, dest) = run(&s, &mut st, &renew).reply.unwrap();
    assert_eq!(ack.ciaddr, offer.yiaddr);
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(offer.yiaddr, 68)));
    // Another client asking for it (init-reboot) is refused, with a broadcast NAK.
    let mut steal = Request::new(MessageType::Request, MacAddr([0x02, 0, 0, 0, 0, 2]), 4);
    steal.requested_ip = Some(offer.yiaddr);
    let d = run(&s, &mut st, &steal);
    let (nak, dest) = d.reply.unwrap();
    assert_eq!((nak.message_type, dest), (Some(MessageType::Nak), Destination::Broadcast));
    assert!(d.outcome.starts_with("nak: 10.42.0.100 is leased to another client"), "{}", d.outcome);
    assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED);
    let bytes = nak.emit(None);
    assert_eq!(find_option(&bytes, 56).unwrap(), b"10.42.0.100 is leased to another client");
    assert_eq!(find_option(&bytes, 51), None);
    // A REQUEST for a foreign subnet (a laptop moved between networks) is refused.
    steal.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 7));
    assert_eq!(run(&s, &mut st, &steal).reply.unwrap().0.message_type, Some(MessageType::Nak));
    // A REQUEST for another server withdraws our offer silently.
    let other = MacAddr([0x02, 0, 0, 0, 0, 3]);
    let (o, _) = run(&s, &mut st, &discover(other, None, None)).reply.unwrap();
    let mut elsewhere = Request::new(MessageType::Request, other, 5);
    elsewhere.server_id = Some(Ipv4Addr::new(10, 42, 0, 2));
    elsewhere.requested_ip = Some(o.yiaddr);
    let d = run(&s, &mut st, &elsewhere);
    assert!(d.reply.is_none() && d.outcome.contains("chose server 10.42.0.2"));
    assert_eq!(st.leases.as_ref().unwrap().of(other), None);
    // INFORM: configuration, no address, no lease time, to ciaddr.
    let mut inform = Request::new(MessageType::Inform, MacAddr([0x02, 0, 0, 0, 0, 9]), 6);
    inform.ciaddr = Ipv4Addr::new(10, 42, 0, 77);
    let (ack, dest) = run(&s, &mut st, &inform).reply.unwrap();
    assert_eq!((ack.yiaddr, ack.lease_secs, ack.subnet_mask.is_some()), (Ipv4Addr::UNSPECIFIED, None, true));
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(inform.ciaddr, 68)));
    assert_eq!(find_option(&ack.emit(None), 51), None);
    // DECLINE quarantines; RELEASE frees; neither is answered.
    let mut decline = Request::new(MessageType::Decline, mac, 7);
    decline.requested_ip = Some(offer.yiaddr);
    decline.server_id = Some(SERVER);
    let d = run(&s, &mut st, &decline);
    assert!(d.reply.is_none() && d.outcome.contains("quarantined"), "{}", d.outcome);
    let (again, _) = run(&s, &mut st, &discover(mac, None, None)).reply.unwrap();
    assert_ne!(again.yiaddr, offer.yiaddr);
    let mut req = Request::new(MessageType::Request, mac, 8);
    req.requested_ip = Some(again.yiaddr);
    run(&s, &mut st, &req).reply.unwrap();
    let mut release = Request::new(MessageType::Release, mac, 9);
    release.ciaddr = again.yiaddr;
    let d = run(&s, &mut st, &release);
    assert!(d.reply.is_none() && d.outcome.starts_with("released"));
}

#[test]
fn pool_exhaustion_is_logged_not_answered() {
    let s = settings(Mode::Server, Answer::All);
    let mut st = state(Mode::Server);
    for n in 1..=3 {
        assert!(run(&s, &mut st, &discover(MacAddr([2, 0, 0, 0, 0, n]), None, None)).reply.is_some());
    }
    let d = run(&s, &mut st, &discover(MacAddr([2, 0, 0, 0, 0, 9]), None, None));
    assert_eq!((d.reply, d.outcome.as_str(), d.warning), (None, "ignored: the pool is exhausted", true));
}

#[test]
fn a_request_without_option_60_from_an_unknown_pi_needs_the_offer() {
    let s = settings(Mode::Proxy, Answer::Pis);
    let mut st = state(Mode::Proxy);
    let mut request = Request::new(MessageType::Request, PI_MAC, 1);
    request.server_id = Some(SERVER);
    assert!(run(&s, &mut st, &request).reply.is_none(), "no offer yet: a plain client");
    run(&s, &mut st, &unknown_pi()).reply.unwrap();
    assert!(run(&s, &mut st, &request).reply.is_some());
    assert!(decide(&s, &mut st, &request, Arrival::Dhcp, PEER, NOW + 3600).reply.is_none(), "forgotten");
}

/// RFC 2131 §4.3.2, and dnsmasq in Raspberry Pi's proxy set-up: the REQUEST a Pi 4 sends the
/// router after taking the router's address (option 54 = the router) is the router's to ACK.
#[test]
fn proxy_mode_answers_only_the_requests_that_name_it() {
    let router = Ipv4Addr::new(10, 42, 0, 254);
    for answer in [Answer::Known, Answer::Pis, Answer::All] {
        let s = settings(Mode::Proxy, answer);
        for discover in [known_pi(), unknown_pi(), known_pc()] {
            let mut st = state(Mode::Proxy);
            if run(&s, &mut st, &discover).reply.is_none() {
                continue;
            }
            // The Pi 4's REQUEST: no option 60, the router's address and identifier.
            let mut request = Request::new(MessageType::Request, discover.mac, discover.xid);
            request.requested_ip = Some(Ipv4Addr::new(10, 42, 0, 123));
            request.server_id = Some(router);
            let d = run(&s, &mut st, &request);
            assert_eq!((d.reply, d.outcome.as_str()), (None, "ignored: it chose server 10.42.0.254"), "{answer:?}");
            // Renewing or rebooting (no option 54): the router's too.
            request.server_id = None;
            let d = run(&s, &mut st, &request);
            assert!(d.reply.is_none() && d.outcome.contains("naming no server"), "{answer:?}: {}", d.outcome);
            // Naming us, with the class it booted as: ours, an ACK with no address.
            request.server_id = Some(SERVER);
            let (ack, dest) = run(&s, &mut st, &request).reply.unwrap();
            assert_eq!(
                (ack.message_type, ack.yiaddr, ack.server_id),
                (Some(MessageType::Ack), Ipv4Addr::UNSPECIFIED, Some(SERVER))
            );
            assert_eq!(dest, Destination::Broadcast);
            // The same REQUEST on the boot server port is ours whoever it names.
            request.server_id = Some(router);
            let boot_server = decide(&s, &mut st, &request, Arrival::BootServer, PEER, NOW);
            assert_eq!(boot_server.reply.map(|(r, _)| r.message_type), Some(Some(MessageType::Ack)), "{answer:?}");
        }
    }
}

fn arbitrary_request() -> impl Strategy<Value = Vec<u8>> {
    // Mostly well-formed headers with random options, plus plain noise.
    let options = proptest::collection::vec(any::<u8>(), 0..400);
    let sometimes = |usual: u8| prop_oneof![4 => Just(usual), 1 => any::<u8>()];
    let header = (any::<u8>(), any::<[u8; 16]>(), 0u8..8, sometimes(1), sometimes(1), sometimes(6));
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..700),
        (header, options).prop_map(|((kind, chaddr, hops, op, htype, hlen), opts)| {
            let mut b = vec![0u8; 240];
            b[0] = op;
            b[1] = htype;
            b[2] = hlen;
            b[3] = hops;
            b[28..44].copy_from_slice(&chaddr);
            b[236..240].copy_from_slice(&[99, 130, 83, 99]);
            b.extend_from_slice(&[53, 1, kind % 9]);
            b.extend_from_slice(&opts);
            b
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in arbitrary_request(), boot_server in any::<bool>()) {
        for mode in [Mode::Proxy, Mode::Server] {
            let s = settings(mode, Answer::All);
            let mut st = state(mode);
            if let Ok(req) = Request::parse(&bytes) {
                let arrival = if boot_server { Arrival::BootServer } else { Arrival::Dhcp };
                let d = decide(&s, &mut st, &req, arrival, PEER, NOW);
                if let Some((reply, _)) = d.reply {
                    let out = reply.emit(req.max_message_size);
                    prop_assert!(out.len() >= 300);
                    prop_assert_eq!(out[0], 2);
                }
            }
        }
    }
}
