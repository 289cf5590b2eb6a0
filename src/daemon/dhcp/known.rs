//! The lab's clients as DHCP sees them: the `[[client]]` entries of daemon.toml, found by MAC or
//! by the Pi serial a DISCOVER carries in option 97, with what the operator said about each
//! (model, fixed address). Lookup only; deciding what a client gets is `reply`'s job.

use crate::recipe::{MacAddr, Model, Serial};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// What kind of machine a lab client is, when the operator says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    Pi(Model),
    Pc,
}

/// One `[[client]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownClient {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub serial: Option<Serial>,
    pub kind: Option<ClientKind>,
    /// A fixed address (server mode).
    pub address: Option<Ipv4Addr>,
}

/// The lab's clients, indexed.
#[derive(Clone, Debug, Default)]
pub struct KnownClients {
    clients: Vec<KnownClient>,
    by_mac: HashMap<MacAddr, usize>,
    by_serial: HashMap<Serial, usize>,
}

impl KnownClients {
    /// Index `clients`; the first entry wins where two share a MAC or serial (config validation
    /// refuses that anyway).
    pub fn new(clients: Vec<KnownClient>) -> KnownClients {
        let mut by_mac = HashMap::new();
        let mut by_serial = HashMap::new();
        for (i, c) in clients.iter().enumerate() {
            if let Some(mac) = c.mac {
                by_mac.entry(mac).or_insert(i);
            }
            if let Some(serial) = c.serial {
                by_serial.entry(serial).or_insert(i);
            }
        }
        KnownClients { clients, by_mac, by_serial }
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &KnownClient> {
        self.clients.iter()
    }

    /// The client with this MAC, else the first with one of these serials.
    pub fn find(&self, mac: MacAddr, serials: &[Serial]) -> Option<&KnownClient> {
        let i = self.by_mac.get(&mac).or_else(|| serials.iter().find_map(|s| self.by_serial.get(s)))?;
        self.clients.get(*i)
    }

    /// The client called `name`.
    pub fn named(&self, name: &str) -> Option<&KnownClient> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// Whether another client than `mac`/`serials`'s owner has `ip` reserved.
    pub fn reserved_for_other(&self, ip: Ipv4Addr, mac: MacAddr, serials: &[Serial]) -> bool {
        let me = self.find(mac, serials).map(|c| c.name.as_str());
        self.clients.iter().any(|c| c.address == Some(ip) && Some(c.name.as_str()) != me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_by_mac_or_serial() {
        let a = KnownClient {
            name: "a".into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            serial: None,
            kind: Some(ClientKind::Pc),
            address: Some(Ipv4Addr::new(10, 0, 0, 11)),
        };
        let b = KnownClient {
            name: "b".into(),
            mac: None,
            serial: Some(Serial(0xd978_0558)),
            kind: None,
            address: Some(Ipv4Addr::new(10, 0, 0, 12)),
        };
        let known = KnownClients::new(vec![a, b]);
        let mac_a = MacAddr([2, 0, 0, 0, 0, 1]);
        let other = MacAddr([2, 0, 0, 0, 0, 9]);
        assert_eq!(known.find(mac_a, &[]).unwrap().name, "a");
        assert_eq!(known.find(other, &[Serial(1), Serial(0xd978_0558)]).unwrap().name, "b");
        assert!(known.find(other, &[Serial(1)]).is_none());
        assert_eq!(known.named("b").unwrap().serial, Some(Serial(0xd978_0558)));
        assert!(known.named("c").is_none());
        assert!(known.reserved_for_other(Ipv4Addr::new(10, 0, 0, 12), mac_a, &[]));
        assert!(!known.reserved_for_other(Ipv4Addr::new(10, 0, 0, 11), mac_a, &[]));
        assert!(!known.reserved_for_other(Ipv4Addr::new(10, 0, 0, 12), other, &[Serial(0xd978_0558)]));
    }
}
