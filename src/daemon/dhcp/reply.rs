//! The decision: given a client's message, the port it came to, the mode and the lab, what to
//! send back and where, or why nothing. Pure: the state it changes (leases, remembered offers)
//! is passed in, the time too; sockets are `server`'s.
//!
//! Modes: `proxy` answers only boot clients, never with an address (yiaddr 0): DISCOVER with
//! OFFER, and only a REQUEST that names us (option 54) with ACK; `server` gives every client an address and boot clients boot
//! information too. `answer` narrows which boot clients get boot information: the lab's
//! (`known`), also any Raspberry Pi (`pis`), or all. Port 4011 (the PXE boot server) answers
//! boot clients' REQUESTs with an ACK sent back to where they came from, in either mode.
//! Addressing follows RFC 2131 §4.1: a relay's giaddr, else the client's ciaddr, else
//! broadcast (never unicast to an address the client does not have yet: no ARP injection).

use super::boot::{BootFiles, Placeholders};
use super::classify::{BootClass, Classified, Firmware, classify};
use super::known::KnownClients;
use super::leases::{Leases, OFFER_HOLD_SECS};
use super::offers::RecentOffers;
use super::pxe::{self, VendorClass};
use super::wire::{MessageType, Reply, Request};
use crate::recipe::Ipv4Net;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The DHCP server port, where relays are answered (RFC 2131 §4.1).
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;

/// How the daemon takes part in DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Boot information only, beside the network's own DHCP server.
    Proxy,
    /// Addresses from a pool, and boot information.
    Server,
    /// No DHCP at all.
    Off,
}

/// Which boot clients get boot information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// The lab's clients (by MAC, or Pi serial in option 97).
    Known,
    /// The lab's clients and any Raspberry Pi.
    Pis,
    /// Every PXE or HTTP boot client.
    All,
}

/// Which port a message came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// 67 (or wherever `dhcp.port` moved it).
    Dhcp,
    /// 4011, the PXE boot server.
    BootServer,
}

/// Everything fixed at start-up.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub answer: Answer,
    /// Our address as clients are told it: siaddr, options 54 and 66, `{server}`.
    pub server: Ipv4Addr,
    pub subnet_mask: Option<Ipv4Addr>,
    /// The lab network as the interface (or `[dhcp] subnet`) has it, in either mode: its
    /// broadcast and network addresses are no relay's.
    pub subnet: Option<Ipv4Net>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub boot: BootFiles,
    pub placeholders: Placeholders,
    pub clients: KnownClients,
}

/// What the decision changes.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Server mode's leases.
    pub leases: Option<Leases>,
    pub offers: RecentOffers,
}

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:68 on the interface.
    Broadcast,
    /// One address and port: a client with an address (ciaddr:68, or where a 4011 request
    /// came from), or a relay (giaddr:67).
    Unicast(SocketAddrV4),
}

/// The outcome, for the caller to send and log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub reply: Option<(Reply, Destination)>,
    /// The client's class for the log (`pi4`, `uefi-x64`, `ipxe-bios`, `-`).
    pub class: String,
    /// The lab's name for the client, if known.
    pub client: Option<String>,
    /// What was done: `offer 10.42.0.100`, `ack`, `nak: …`, `ignored: …`.
    pub outcome: String,
    /// The operator should hear of it even without a reply (the pool ran out).
    pub warning: bool,
}

/// What a boot client's reply carries beyond the addressing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct BootInfo {
    vendor_class: Option<Vec<u8>>,
    vendor_options: Option<Vec<u8>>,
    tftp_server: bool,
    file: Option<Vec<u8>>,
    ipxe: Option<Vec<u8>>,
}

/// Decide the answer to `req`, which came from `peer` to the port `arrival` says, at `now`
/// (Unix seconds).
pub fn decide(
    settings: &Settings,
    state: &mut State,
    req: &Request,
    arrival: Arrival,
    peer: SocketAddrV4,
    now: u64,
) -> Decision {
    let mut classified = classify(req, &settings.clients);
    let mut boot = classified.boot;
    if req.message_type == MessageType::Request
        && let Some(offered) = state.offers.recall(req.mac, now)
    {
        // The Pi 4's REQUEST without option 60 (and perhaps without the option 97 that named
        // it), after our boot offer.
        boot = boot.or(Some(offered.class));
        if classified.known.is_none() {
            classified.known = offered.client.as_deref().and_then(|n| settings.clients.named(n));
        }
    }
    let eligible = boot.filter(|b| match settings.answer {
        Answer::All => true,
        Answer::Pis => classified.known.is_some() || matches!(b, BootClass::RaspberryPi { .. }),
        Answer::Known => classified.known.is_some(),
    });
    let info = eligible.and_then(|b| boot_info(settings, b, &classified, req));
    let mut decision = Decision {
        reply: None,
        class: boot.map_or_else(|| "-".to_string(), |b| b.name()),
        client: classified.known.map(|k| k.name.clone()),
        outcome: String::new(),
        warning: false,
    };
    let why_no_boot = || match (boot, eligible) {
        (None, _) => "not a network boot client",
        (Some(_), None) => "not answered (answer setting)",
        (Some(_), Some(_)) => "no boot file for its architecture",
    };
    let ignore = |d: &mut Decision, why: String| d.outcome = format!("ignored: {why}");
    if let Some(why) = impossible_relay(settings, req.giaddr) {
        // Believing it would send the reply there and spend a pool address on nobody.
        ignore(&mut decision, format!("giaddr {} is {why}, which no relay can have", req.giaddr));
        return decision;
    }

    if arrival == Arrival::BootServer {
        match (req.message_type, &info) {
            (MessageType::Request | MessageType::Inform, Some(info)) => {
                let mut reply = base(settings, req, MessageType::Ack);
                reply.ciaddr = req.ciaddr;
                apply(&mut reply, info, settings, req);
                decision.outcome = "ack (boot server)".into();
                decision.reply = Some((reply, Destination::Unicast(peer)));
            }
            (MessageType::Request | MessageType::Inform, None) => ignore(&mut decision, why_no_boot().into()),
            (t, _) => ignore(&mut decision, format!("{t:?} on the boot server port")),
        }
        return decision;
    }

    match settings.mode {
        Mode::Off => ignore(&mut decision, "DHCP is off".into()),
        Mode::Proxy => {
            let kind = match req.message_type {
                MessageType::Discover => MessageType::Offer,
                // RFC 2131 §4.3.2: a server not named in a REQUEST's option 54 stays silent. A
                // Pi 4 beside a router REQUESTs the router's address, naming the router, and the
                // router ACKs it; an ACK from us would race the router's (dnsmasq in Raspberry
                // Pi's documented proxy set-up answers no REQUEST on 67 at all). One naming us
                // (a client that took our offer as its server, pixiecore#21) is ours.
                MessageType::Request => match req.server_id {
                    Some(id) if id == settings.server => MessageType::Ack,
                    Some(id) => {
                        ignore(&mut decision, format!("it chose server {id}"));
                        return decision;
                    }
                    None => {
                        ignore(&mut decision, "a REQUEST naming no server is for the network's DHCP server".into());
                        return decision;
                    }
                },
                t => {
                    ignore(&mut decision, format!("{t:?} in proxy mode"));
                    return decision;
                }
            };
            let Some(info) = &info else {
                ignore(&mut decision, why_no_boot().into());
                return decision;
            };
            let mut reply = base(settings, req, kind);
            apply(&mut reply, info, settings, req);
            if let Some(b) = eligible
                && kind == MessageType::Offer
            {
                state.offers.remember(req.mac, b, classified.known.map(|k| k.name.clone()), now);
            }
            decision.outcome = if kind == MessageType::Offer { "offer (proxy)" } else { "ack (proxy)" }.into();
            decision.reply = Some((reply, destination(req, false)));
        }
        Mode::Server => {
            let Some(leases) = state.leases.as_mut() else {
                ignore(&mut decision, "server mode without a pool".into());
                return decision;
            };
            let fixed = classified.known.and_then(|k| k.address);
            match req.message_type {
                MessageType::Discover => {
                    // The Pi 3 ROM takes the OFFER and never REQUESTs: a booting Pi's offer holds
                    // its address through the boot, until Linux on it REQUESTs it.
                    let booting = info.is_some() && matches!(eligible, Some(BootClass::RaspberryPi { .. }));
                    let hold = if booting { leases.pool().boot_hold_secs } else { OFFER_HOLD_SECS };
                    let Some(ip) = leases.offer(req.mac, fixed, req.requested_ip, now, hold) else {
                        ignore(&mut decision, "the pool is exhausted".into());
                        decision.warning = true;
                        return decision;
                    };
                    let mut reply = base(settings, req, MessageType::Offer);
                    reply.yiaddr = ip;
                    lease_options(&mut reply, settings, leases.pool().lease_secs, &classified);
                    if let (Some(info), Some(b)) = (&info, eligible) {
                        apply(&mut reply, info, settings, req);
                        state.offers.remember(req.mac, b, classified.known.map(|k| k.name.clone()), now);
                    }
                    decision.outcome = format!("offer {ip}");
                    decision.reply = Some((reply, destination(req, false)));
                }
                MessageType::Request => {
                    if let Some(id) = req.server_id
                        && id != settings.server
                    {
                        leases.withdraw_offer(req.mac);
                        ignore(&mut decision, format!("it chose server {id}"));
                        return decision;
                    }
                    let wanted = if req.ciaddr.is_unspecified() { req.requested_ip } else { Some(req.ciaddr) };
                    let Some(ip) = wanted else {
                        ignore(&mut decision, "a REQUEST naming no address".into());
                        return decision;
                    };
                    match leases.request(req.mac, ip, fixed, now) {
                        Ok(lease) => {
                            let mut reply = base(settings, req, MessageType::Ack);
                            reply.ciaddr = req.ciaddr;
                            reply.yiaddr = lease.ip;
                            lease_options(&mut reply, settings, leases.pool().lease_secs, &classified);
                            if let Some(info) = &info {
                                apply(&mut reply, info, settings, req);
                            }
                            decision.outcome = format!("ack {ip}");
                            decision.reply = Some((reply, destination(req, false)));
                        }
                        Err(refusal) => {
                            let mut reply = base(settings, req, MessageType::Nak);
                            reply.message = Some(refusal.to_string());
                            // RFC 2131 §4.3.2: a NAK through a relay has the broadcast bit set.
                            reply.broadcast |= !req.giaddr.is_unspecified();
                            decision.outcome = format!("nak: {refusal}");
                            decision.reply = Some((reply, destination(req, true)));
                        }
                    }
                }
                MessageType::Decline => {
                    if req.server_id.is_some_and(|id| id != settings.server) {
                        ignore(&mut decision, "a DECLINE for another server".into());
                    } else if let Some(ip) = req.requested_ip
                        && leases.decline(req.mac, ip, now)
                    {
                        decision.outcome = format!("declined {ip}: quarantined");
                    } else {
                        ignore(&mut decision, "a DECLINE of an address it does not hold".into());
                    }
                }
                MessageType::Release => {
                    if leases.release(req.mac, req.ciaddr, now) {
                        decision.outcome = format!("released {}", req.ciaddr);
                    } else {
                        ignore(&mut decision, "a RELEASE of an address it does not hold".into());
                    }
                }
                MessageType::Inform => {
                    // RFC 2131 §3.4: configuration only; no yiaddr, no lease time.
                    let mut reply = base(settings, req, MessageType::Ack);
                    reply.ciaddr = req.ciaddr;
                    lease_options(&mut reply, settings, 0, &classified);
                    reply.lease_secs = None;
                    if let Some(info) = &info {
                        apply(&mut reply, info, settings, req);
                    }
                    decision.outcome = "ack (inform)".into();
                    decision.reply = Some((reply, destination(req, false)));
                }
                t => ignore(&mut decision, format!("{t:?} is not for a server")),
            }
        }
    }
    decision
}

/// The reply's header copied from the request, and option 54.
fn base(settings: &Settings, req: &Request, kind: MessageType) -> Reply {
    Reply {
        message_type: Some(kind),
        xid: req.xid,
        hops: req.hops,
        broadcast: req.broadcast,
        giaddr: req.giaddr,
        mac: req.mac,
        server_id: Some(settings.server),
        // RFC 3046 §2.2: option 82 goes back to the relay that added it.
        relay_info: if req.giaddr.is_unspecified() { None } else { req.relay_info.clone() },
        ..Reply::default()
    }
}

/// Address configuration for server mode.
fn lease_options(reply: &mut Reply, settings: &Settings, lease_secs: u32, classified: &Classified) {
    reply.lease_secs = Some(lease_secs);
    reply.subnet_mask = settings.subnet_mask;
    reply.router = settings.router;
    reply.dns = settings.dns.clone();
    reply.domain = settings.domain.clone();
    reply.hostname = classified.known.map(|k| k.name.clone()).filter(|n| is_hostname(n));
}

/// RFC 1123 host name label(s).
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with('-')
}

/// What a boot client of `class` gets, or `None` if there is nothing to boot.
fn boot_info(settings: &Settings, class: BootClass, classified: &Classified, req: &Request) -> Option<BootInfo> {
    match class {
        BootClass::RaspberryPi { .. } => Some(BootInfo {
            vendor_class: Some(pxe::PXE_CLIENT.to_vec()),
            vendor_options: Some(pxe::raspberry_pi_menu()),
            tftp_server: true,
            file: None,
            ipxe: None,
        }),
        BootClass::Pc { firmware, ipxe } => {
            let file = settings.boot.for_client(firmware, ipxe, req.mac, &settings.placeholders)?;
            let http = matches!(firmware, Firmware::HttpIa32 | Firmware::HttpX64 | Firmware::HttpArm64)
                || classified.vendor == Some(VendorClass::Http);
            let proxy = settings.mode == Mode::Proxy;
            Some(BootInfo {
                vendor_class: if http {
                    // EDK2 takes an offer as an HTTP offer only with option 60 "HTTPClient".
                    Some(pxe::HTTP_CLIENT.to_vec())
                } else if proxy {
                    Some(pxe::PXE_CLIENT.to_vec())
                } else {
                    None
                },
                vendor_options: (proxy && !http).then(pxe::boot_named_file),
                tftp_server: false,
                file: Some(file.into_bytes()),
                // In server mode iPXE need not wait for proxy offers.
                ipxe: (ipxe && !proxy).then(pxe::ipxe_no_pxedhcp),
            })
        }
    }
}

/// Put boot information into a reply.
fn apply(reply: &mut Reply, info: &BootInfo, settings: &Settings, req: &Request) {
    reply.siaddr = settings.server;
    reply.vendor_class = info.vendor_class.clone();
    reply.vendor_options = info.vendor_options.clone();
    reply.tftp_server = info.tftp_server.then_some(settings.server);
    reply.file = info.file.clone();
    reply.bootfile = info.file.clone();
    reply.ipxe = info.ipxe.clone();
    // RFC 4578 §2.3: echo the client's GUID.
    reply.guid = req.guid.clone();
}

/// Why `giaddr` cannot be a relay agent's address (RFC 1122 §3.2.1.3, RFC 1112, RFC 6890), or
/// `None` if it can (0.0.0.0 is no relay at all). A relay's giaddr is the address of its
/// interface on the client's network, one we would unicast to.
pub fn impossible_relay(settings: &Settings, giaddr: Ipv4Addr) -> Option<&'static str> {
    if giaddr.is_unspecified() {
        return None;
    }
    let [first, ..] = giaddr.octets();
    let why = if giaddr.is_broadcast() {
        "the limited broadcast address"
    } else if first == 0 {
        "in 0.0.0.0/8 (this host on this network)"
    } else if giaddr.is_loopback() {
        "a loopback address"
    } else if giaddr.is_multicast() {
        "a multicast address"
    } else if first >= 240 {
        "in the reserved 240.0.0.0/4"
    } else if giaddr == settings.server {
        "our own address"
    } else if let Some(net) = settings.subnet
        && net.prefix < 31
        && (giaddr == net.broadcast() || giaddr == net.network())
    {
        "the lab subnet's broadcast or network address"
    } else {
        return None;
    };
    Some(why)
}

/// RFC 2131 §4.1: a relay's giaddr:67, else a NAK broadcast, else ciaddr:68, else broadcast.
fn destination(req: &Request, nak: bool) -> Destination {
    if !req.giaddr.is_unspecified() {
        Destination::Unicast(SocketAddrV4::new(req.giaddr, SERVER_PORT))
    } else if nak || req.ciaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        Destination::Unicast(SocketAddrV4::new(req.ciaddr, CLIENT_PORT))
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
