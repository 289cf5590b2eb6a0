//! What we recently offered boot clients, by MAC: the Pi 4 bootloader's DHCPREQUEST carries no
//! option 60 (pi-netboot.md §1.2), so it is recognised as the client we just made a boot offer
//! to. Bounded in size and time; pure (the caller passes the time).

use super::classify::BootClass;
use crate::recipe::MacAddr;
use std::collections::HashMap;

/// How long a boot offer is remembered; the Pi's `DHCP_REQ_TIMEOUT` is 4 s, retried.
pub const REMEMBER_SECS: u64 = 60;
/// At most this many remembered offers (a storm of spoofed MACs cannot grow it further).
pub const CAPACITY: usize = 4096;

/// One remembered boot offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub class: BootClass,
    /// The lab client it was recognised as (perhaps by the serial in its DISCOVER's option 97,
    /// which its REQUEST may not repeat).
    pub client: Option<String>,
    until: u64,
}

#[derive(Clone, Debug, Default)]
pub struct RecentOffers {
    by_mac: HashMap<MacAddr, Offered>,
}

impl RecentOffers {
    /// Remember that `mac` was offered a boot as `class` (and lab client `client`) at `now`.
    pub fn remember(&mut self, mac: MacAddr, class: BootClass, client: Option<String>, now: u64) {
        if self.by_mac.len() >= CAPACITY && !self.by_mac.contains_key(&mac) {
            self.by_mac.retain(|_, o| o.until > now);
            if self.by_mac.len() >= CAPACITY {
                // Still full of live entries: forget the oldest.
                if let Some(oldest) = self.by_mac.iter().min_by_key(|(_, o)| o.until).map(|(m, _)| *m) {
                    self.by_mac.remove(&oldest);
                }
            }
        }
        self.by_mac.insert(mac, Offered { class, client, until: now + REMEMBER_SECS });
    }

    /// What `mac` was offered a boot as, if that was recent.
    pub fn recall(&self, mac: MacAddr, now: u64) -> Option<&Offered> {
        self.by_mac.get(&mac).filter(|o| o.until > now)
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_for_a_while_and_bounded() {
        let pi = BootClass::RaspberryPi { model: None };
        let mut offers = RecentOffers::default();
        let mac = MacAddr([0xdc, 0xa6, 0x32, 0, 0, 1]);
        offers.remember(mac, pi, Some("node1".into()), 100);
        let o = offers.recall(mac, 100 + REMEMBER_SECS - 1).unwrap();
        assert_eq!((o.class, o.client.as_deref()), (pi, Some("node1")));
        assert_eq!(offers.recall(mac, 100 + REMEMBER_SECS), None);
        for n in 0..(CAPACITY as u32 + 10) {
            let b = n.to_be_bytes();
            offers.remember(MacAddr([2, 0, b[0], b[1], b[2], b[3]]), pi, None, 1000 + u64::from(n));
        }
        assert!(offers.len() <= CAPACITY);
        let newest = (CAPACITY as u32 + 9).to_be_bytes();
        assert!(offers.recall(MacAddr([2, 0, newest[0], newest[1], newest[2], newest[3]]), 1100).is_some());
    }
}
