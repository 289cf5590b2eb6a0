//! Server mode's address book: the pool, offers, bound leases, renewals, expiry, DECLINE
//! quarantine, RELEASE, and fixed addresses. A pure state machine: the caller passes the time
//! (Unix seconds) and each client's fixed address; persistence is `lease_file`'s job, and it
//! learns what changed from [`Leases::take_changes`].

use crate::recipe::{Ipv4Net, Ipv4Range, MacAddr};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

/// How long an offered address is held for the client's REQUEST (RFC 2131 §4.3.1 leaves it to
/// the server; dnsmasq holds none, ISC a minute).
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a booting Pi keeps the address of an OFFER it has not confirmed, unless `[dhcp]
/// boot_hold_secs` says: the Pi 3 ROM never sends a REQUEST, so its offer must hold through the
/// TFTP boot until Linux on it asks (and confirms) by REQUEST; minutes, not a lease time, or a
/// few forged DISCOVERs would take the pool for an hour. dnsmasq holds no offer at all.
pub const BOOT_HOLD_SECS: u64 = 300;
/// How long a declined address (someone else answers ARP for it) stays out of the pool;
/// dnsmasq's DECLINE_BACKOFF.
pub const DECLINE_QUARANTINE_SECS: u64 = 600;

/// The pool's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub range: Ipv4Range,
    pub subnet: Ipv4Net,
    /// Our own address, never handed out.
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    /// How long a booting Pi's unconfirmed offer holds its address ([`BOOT_HOLD_SECS`]).
    pub boot_hold_secs: u64,
}

/// One address held for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Unix seconds; from then on the address is free for others (the record stays, so the
    /// client gets the same address back while nobody else took it).
    pub expires: u64,
    /// Confirmed by a REQUEST and ACKed (persisted), rather than only offered.
    pub bound: bool,
}

/// A change to the bound leases, as the lease journal records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `mac` holds `ip` as a lease (until `expires`), and no other address; nobody else holds `ip`.
    Bind(Lease),
    /// Nobody holds `ip` as a lease any more.
    Free(Ipv4Addr),
}

/// Why a REQUEST is refused with a NAK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not in this server's subnet")]
    WrongSubnet(Ipv4Addr),
    #[error("{0} is not in the pool")]
    OutsidePool(Ipv4Addr),
    #[error("{0} is leased to another client")]
    Taken(Ipv4Addr),
    #[error("{0} is reserved for another client")]
    Reserved(Ipv4Addr),
    #[error("{0} was declined and is quarantined")]
    Quarantined(Ipv4Addr),
    #[error("this client's address is {0}")]
    NotYours(Ipv4Addr),
}

/// The leases of one pool.
#[derive(Clone, Debug)]
pub struct Leases {
    pool: Pool,
    /// Every fixed address of the lab, never given to anyone else.
    reserved: HashSet<Ipv4Addr>,
    by_ip: BTreeMap<Ipv4Addr, Lease>,
    by_mac: HashMap<MacAddr, Ipv4Addr>,
    quarantine: HashMap<Ipv4Addr, u64>,
    /// Where the search for a never-used address goes on from.
    cursor: u32,
    generation: u64,
    /// Not yet taken by the journal.
    changes: Vec<Change>,
}

impl Leases {
    pub fn new(pool: Pool, reserved: HashSet<Ipv4Addr>) -> Leases {
        let cursor = u32::from(pool.range.first);
        Leases {
            pool,
            reserved,
            by_ip: BTreeMap::new(),
            by_mac: HashMap::new(),
            quarantine: HashMap::new(),
            cursor,
            generation: 0,
            changes: Vec::new(),
        }
    }

    /// Leases read back from a snapshot; ones that no longer fit the pool (the range or the
    /// reservations changed) are dropped and returned.
    pub fn restore(&mut self, leases: Vec<Lease>) -> Vec<Lease> {
        let mut dropped = Vec::new();
        for lease in leases {
            let fits = self.pool.subnet.is_host(lease.ip)
                && lease.ip != self.pool.server
                && (self.pool.range.contains(lease.ip) || self.reserved.contains(&lease.ip))
                && !self.by_ip.contains_key(&lease.ip)
                && !self.by_mac.contains_key(&lease.mac);
            if fits {
                self.by_mac.insert(lease.mac, lease.ip);
                self.by_ip.insert(lease.ip, Lease { bound: true, ..lease });
            } else {
                dropped.push(lease);
            }
        }
        dropped
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Bumped on every change a snapshot would show.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The changes to the bound leases since the last call, in order (what the journal appends).
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The bound leases, in address order (what a snapshot holds).
    pub fn snapshot(&self) -> Vec<Lease> {
        self.by_ip.values().filter(|l| l.bound).cloned().collect()
    }

    /// The lease `mac` holds, if any (active or not).
    pub fn of(&self, mac: MacAddr) -> Option<&Lease> {
        self.by_ip.get(self.by_mac.get(&mac)?)
    }

    /// A fixed address this MAC was given before: the lab knows some clients only by the
    /// serial in their DISCOVER's option 97, which their REQUESTs and renewals (Linux's) do not
    /// carry.
    fn learned_fixed(&self, mac: MacAddr) -> Option<Ipv4Addr> {
        self.by_mac.get(&mac).copied().filter(|ip| self.reserved.contains(ip))
    }

    fn quarantined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.quarantine.get(&ip).is_some_and(|&until| until > now)
    }

    /// Whether `mac` may have `ip` from the pool (not its fixed address).
    fn pool_allows(&self, mac: MacAddr, ip: Ipv4Addr, now: u64) -> Result<(), Refusal> {
        if !self.pool.subnet.is_host(ip) || ip == self.pool.server {
            return Err(Refusal::WrongSubnet(ip));
        }
        if self.reserved.contains(&ip) {
            return Err(Refusal::Reserved(ip));
        }
        if !self.pool.range.contains(ip) {
            return Err(Refusal::OutsidePool(ip));
        }
        if self.quarantined(ip, now) {
            return Err(Refusal::Quarantined(ip));
        }
        match self.by_ip.get(&ip) {
            Some(l) if l.mac != mac && l.expires > now => Err(Refusal::Taken(ip)),
            _ => Ok(()),
        }
    }

    /// An address to offer `mac`: its fixed one, else the one it had, else the one it asks for,
    /// else a free one (never-used first, then the one expired longest ago). `None`: the pool is
    /// exhausted. The offer holds the address for `hold_secs` ([`OFFER_HOLD_SECS`], or a Pi's
    /// [`Pool::boot_hold_secs`]) and is never a lease: only a REQUEST makes one.
    pub fn offer(
        &mut self,
        mac: MacAddr,
        fixed: Option<Ipv4Addr>,
        requested: Option<Ipv4Addr>,
        now: u64,
        hold_secs: u64,
    ) -> Option<Ipv4Addr> {
        let ip = match fixed.or_else(|| self.learned_fixed(mac)) {
            Some(ip) => ip,
            None => self.choose(mac, requested, now)?,
        };
        match self.by_ip.get(&ip) {
            // Still bound to it: the offer changes nothing (a client re-DISCOVERing mid-lease).
            Some(l) if l.mac == mac && l.bound && l.expires > now => {}
            // A record of the client's own that outlives this hold is not shortened.
            Some(l) if l.mac == mac && l.expires > now + hold_secs => {}
            _ => self.hold(mac, ip, now + hold_secs, false),
        }
        Some(ip)
    }

    fn choose(&mut self, mac: MacAddr, requested: Option<Ipv4Addr>, now: u64) -> Option<Ipv4Addr> {
        if let Some(&ip) = self.by_mac.get(&mac)
            && self.pool_allows(mac, ip, now).is_ok()
        {
            return Some(ip);
        }
        if let Some(ip) = requested
            && self.pool_allows(mac, ip, now).is_ok()
        {
            return Some(ip);
        }
        // Never-used addresses first, from where the last search stopped.
        let (first, last) = (u32::from(self.pool.range.first), u32::from(self.pool.range.last));
        let len = u64::from(last - first) + 1;
        let mut at = self.cursor.clamp(first, last);
        for _ in 0..len {
            let ip = Ipv4Addr::from(at);
            at = if at == last { first } else { at + 1 };
            if !self.by_ip.contains_key(&ip) && self.pool_allows(mac, ip, now).is_ok() {
                self.cursor = at;
                return Some(ip);
            }
        }
        // Then the record that expired longest ago.
        let oldest = self
            .by_ip
            .values()
            .filter(|l| l.expires <= now && self.pool_allows(mac, l.ip, now).is_ok())
            .min_by_key(|l| l.expires)?;
        Some(oldest.ip)
    }

    /// Record `mac` holding `ip` until `expires`, dropping what either held before.
    /// (A new lease's [`Change::Bind`] says all that; an offer records what it displaced.)
    fn hold(&mut self, mac: MacAddr, ip: Ipv4Addr, expires: u64, bound: bool) {
        if let Some(old_ip) = self.by_mac.insert(mac, ip)
            && old_ip != ip
            && let Some(old) = self.by_ip.remove(&old_ip)
            && old.bound
        {
            self.generation += 1;
            if !bound {
                self.changes.push(Change::Free(old_ip));
            }
        }
        let lease = Lease { mac, ip, expires, bound };
        if let Some(previous) = self.by_ip.insert(ip, lease.clone()) {
            if previous.mac != mac {
                self.by_mac.remove(&previous.mac);
            }
            if previous.bound && !bound {
                self.generation += 1;
                self.changes.push(Change::Free(ip));
            }
        }
        if bound {
            self.generation += 1;
            self.changes.push(Change::Bind(lease));
        }
    }

    /// A REQUEST for `ip` (selecting, init-reboot, renewing or rebinding): bind it for a lease
    /// time, or say why not.
    pub fn request(&mut self, mac: MacAddr, ip: Ipv4Addr, fixed: Option<Ipv4Addr>, now: u64) -> Result<Lease, Refusal> {
        match fixed.or_else(|| self.learned_fixed(mac)) {
            Some(f) if f != ip => return Err(Refusal::NotYours(f)),
            Some(_) => {}
            None => self.pool_allows(mac, ip, now)?,
        }
        let lease = Lease { mac, ip, expires: now + u64::from(self.pool.lease_secs), bound: true };
        self.hold(mac, ip, lease.expires, true);
        Ok(lease)
    }

    /// DHCPDECLINE: the client found `ip` in use; keep it out of the pool for a while.
    pub fn decline(&mut self, mac: MacAddr, ip: Ipv4Addr, now: u64) -> bool {
        if self.by_ip.get(&ip).is_none_or(|l| l.mac != mac) {
            return false;
        }
        if let Some(old) = self.by_ip.remove(&ip)
            && old.bound
        {
            self.generation += 1;
            self.changes.push(Change::Free(ip));
        }
        self.by_mac.remove(&mac);
        self.quarantine.insert(ip, now + DECLINE_QUARANTINE_SECS);
        self.quarantine.retain(|_, until| *until > now);
        true
    }

    /// DHCPRELEASE: the address is free from now on; the record stays so the client gets it
    /// back next time if nobody else took it.
    pub fn release(&mut self, mac: MacAddr, ip: Ipv4Addr, now: u64) -> bool {
        match self.by_ip.get_mut(&ip) {
            Some(l) if l.mac == mac && l.expires > now => {
                l.expires = now;
                if l.bound {
                    self.generation += 1;
                    self.changes.push(Change::Bind(l.clone()));
                }
                true
            }
            _ => false,
        }
    }

    /// Forget an unanswered offer (the client chose another server).
    pub fn withdraw_offer(&mut self, mac: MacAddr) {
        if let Some(&ip) = self.by_mac.get(&mac)
            && self.by_ip.get(&ip).is_some_and(|l| !l.bound)
        {
            self.by_ip.remove(&ip);
            self.by_mac.remove(&mac);
        }
    }

    /// Addresses currently held by someone (offered or bound, not expired).
    pub fn active(&self, now: u64) -> usize {
        self.by_ip.values().filter(|l| l.expires > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }
    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }
    fn pool(first: u8, last: u8) -> Leases {
        let pool = Pool {
            range: Ipv4Range { first: ip(first), last: ip(last) },
            subnet: "10.0.0.1/24".parse().unwrap(),
            server: ip(1),
            lease_secs: 3600,
            boot_hold_secs: 300,
        };
        Leases::new(pool, [ip(50)].into())
    }

    #[test]
    fn offer_request_renew_expire() {
        let mut l = pool(10, 20);
        let a = l.offer(mac(1), None, None, 1000, OFFER_HOLD_SECS).unwrap();
        assert_eq!(a, ip(10));
        assert_eq!(l.generation(), 0, "offers are not persisted");
        // The offer is held: another client gets the next address.
        assert_eq!(l.offer(mac(2), None, Some(ip(10)), 1001, OFFER_HOLD_SECS).unwrap(), ip(11));
        let lease = l.request(mac(1), a, None, 1002).unwrap();
        assert_eq!(lease.expires, 1002 + 3600);
        assert_eq!(l.generation(), 1);
        // Renewal extends it; a DISCOVER mid-lease gets the same address.
        assert_eq!(l.request(mac(1), a, None, 2000).unwrap().expires, 5600);
        assert_eq!(l.offer(mac(1), None, None, 2001, OFFER_HOLD_SECS).unwrap(), a);
        assert!(l.of(mac(1)).unwrap().bound);
        // Someone else cannot take it while it is bound; can once it has expired.
        assert_eq!(l.request(mac(3), a, None, 3000), Err(Refusal::Taken(a)));
        assert!(l.request(mac(3), a, None, 5600).is_ok());
        assert_eq!(l.of(mac(1)), None);
        assert_eq!(l.snapshot().len(), 1);
    }

    #[test]
    fn changes_replayed_give_the_snapshot() {
        let mut l = pool(10, 20);
        let a = l.offer(mac(1), None, None, 0, OFFER_HOLD_SECS).unwrap();
        assert!(l.take_changes().is_empty(), "an offer is no lease");
        let lease = l.request(mac(1), a, None, 1).unwrap();
        assert_eq!(l.take_changes(), [Change::Bind(lease.clone())]);
        assert!(l.release(mac(1), a, 5));
        assert_eq!(l.take_changes(), [Change::Bind(Lease { expires: 5, ..lease })]);
        // Someone else takes the released address; then its own fixed one is offered, which
        // ends its pool lease.
        l.request(mac(2), a, None, 6).unwrap();
        let moved = l.offer(mac(2), Some(ip(50)), None, 7, OFFER_HOLD_SECS).unwrap();
        assert_eq!(moved, ip(50));
        let changes = l.take_changes();
        assert_eq!(changes.last(), Some(&Change::Free(a)), "{changes:?}");
        l.request(mac(3), ip(12), None, 8).unwrap();
        assert!(l.decline(mac(3), ip(12), 9));
        assert_eq!(l.take_changes().last(), Some(&Change::Free(ip(12))));
        assert!(l.snapshot().is_empty());
    }

    #[test]
    fn requested_address_and_affinity() {
        let mut l = pool(10, 20);
        assert_eq!(l.offer(mac(1), None, Some(ip(15)), 0, OFFER_HOLD_SECS), Some(ip(15)));
        assert_eq!(l.offer(mac(2), None, Some(ip(99)), 0, OFFER_HOLD_SECS), Some(ip(10)), "outside the pool");
        assert_eq!(l.offer(mac(3), None, Some(ip(50)), 0, OFFER_HOLD_SECS), Some(ip(11)), "reserved");
        l.request(mac(1), ip(15), None, 0).unwrap();
        assert!(l.release(mac(1), ip(15), 100));
        assert!(!l.release(mac(1), ip(15), 100), "already released");
        // Released, not forgotten: the same client gets the same address back.
        assert_eq!(l.offer(mac(1), None, None, 200, OFFER_HOLD_SECS), Some(ip(15)));
    }

    #[test]
    fn fixed_addresses() {
        let mut l = pool(10, 20);
        assert_eq!(l.offer(mac(1), Some(ip(50)), None, 0, OFFER_HOLD_SECS), Some(ip(50)));
        assert!(l.request(mac(1), ip(50), Some(ip(50)), 0).is_ok());
        assert_eq!(l.request(mac(1), ip(12), Some(ip(50)), 0), Err(Refusal::NotYours(ip(50))));
        assert_eq!(l.request(mac(2), ip(50), None, 0), Err(Refusal::Reserved(ip(50))));
        // Once given its fixed address, the MAC keeps it without saying who it is again
        // (a serial-only client's REQUEST, or its Linux renewing after expiry and a restart).
        assert!(l.request(mac(1), ip(50), None, 10_000).is_ok());
        let mut restarted = pool(10, 20);
        restarted.restore(l.snapshot());
        assert_eq!(restarted.offer(mac(1), None, None, 20_000, OFFER_HOLD_SECS), Some(ip(50)));
        assert_eq!(restarted.request(mac(1), ip(12), None, 20_000), Err(Refusal::NotYours(ip(50))));
    }

    #[test]
    fn naks_for_what_cannot_be_given() {
        let mut l = pool(10, 20);
        assert_eq!(
            l.request(mac(1), Ipv4Addr::new(192, 168, 1, 5), None, 0),
            Err(Refusal::WrongSubnet(Ipv4Addr::new(192, 168, 1, 5)))
        );
        assert_eq!(l.request(mac(1), ip(1), None, 0), Err(Refusal::WrongSubnet(ip(1))), "the server's own");
        assert_eq!(l.request(mac(1), ip(255), None, 0), Err(Refusal::WrongSubnet(ip(255))));
        assert_eq!(l.request(mac(1), ip(30), None, 0), Err(Refusal::OutsidePool(ip(30))));
        // Authoritative: a free address in the pool is granted without an offer (INIT-REBOOT
        // after our restart lost the offer).
        assert!(l.request(mac(1), ip(19), None, 0).is_ok());
    }

    #[test]
    fn decline_quarantines() {
        let mut l = pool(10, 11);
        let a = l.offer(mac(1), None, None, 0, OFFER_HOLD_SECS).unwrap();
        l.request(mac(1), a, None, 0).unwrap();
        assert!(!l.decline(mac(2), a, 5), "only the holder can decline");
        assert!(l.decline(mac(1), a, 5));
        assert_eq!(l.snapshot().len(), 0);
        assert_eq!(l.offer(mac(1), None, Some(a), 6, OFFER_HOLD_SECS), Some(ip(11)));
        assert_eq!(l.request(mac(3), a, None, 6), Err(Refusal::Quarantined(a)));
        assert!(l.request(mac(3), a, None, 5 + DECLINE_QUARANTINE_SECS).is_ok());
    }

    #[test]
    fn exhaustion_then_reuse_of_the_oldest_expired() {
        let mut l = pool(10, 12);
        for n in 1..=3 {
            let a = l.offer(mac(n), None, None, u64::from(n), OFFER_HOLD_SECS).unwrap();
            l.request(mac(n), a, None, u64::from(n)).unwrap();
        }
        assert_eq!(l.offer(mac(9), None, None, 10, OFFER_HOLD_SECS), None, "exhausted");
        assert_eq!(l.active(10), 3);
        // After expiry the one that expired first is reused.
        assert_eq!(l.offer(mac(9), None, None, 3602, OFFER_HOLD_SECS), Some(ip(10)));
        // Offers that are not taken up free their address after the hold.
        let mut l = pool(10, 10);
        assert_eq!(l.offer(mac(1), None, None, 0, OFFER_HOLD_SECS), Some(ip(10)));
        assert_eq!(l.offer(mac(2), None, None, 1, OFFER_HOLD_SECS), None);
        assert_eq!(l.offer(mac(2), None, None, OFFER_HOLD_SECS, OFFER_HOLD_SECS), Some(ip(10)));
        l.withdraw_offer(mac(2));
        assert_eq!(l.of(mac(2)), None);
    }

    #[test]
    fn a_booting_pi_holds_its_offer_for_minutes_not_a_lease_time() {
        let mut l = pool(10, 12);
        let hold = l.pool().boot_hold_secs;
        // Three Pi-shaped DISCOVERs take the pool, but only for the hold, and write nothing.
        for n in 1..=3 {
            assert!(l.offer(mac(n), None, None, 0, hold).is_some());
        }
        assert_eq!(l.generation(), 0, "an unconfirmed offer is not persisted");
        assert!(l.snapshot().is_empty());
        assert_eq!(
            l.offer(mac(9), None, None, OFFER_HOLD_SECS + 1, OFFER_HOLD_SECS),
            None,
            "held past a plain offer's hold"
        );
        assert_eq!(l.offer(mac(9), None, None, hold - 1, OFFER_HOLD_SECS), None);
        assert_eq!(l.offer(mac(9), None, None, hold, OFFER_HOLD_SECS), Some(ip(10)), "free after the hold");
        // The Pi 3: its DISCOVERs refresh the hold while it boots; Linux on it then REQUESTs the
        // offered address, which makes the lease.
        let mut l = pool(10, 12);
        let a = l.offer(mac(1), None, None, 0, hold).unwrap();
        assert_eq!(l.offer(mac(1), None, None, 200, hold), Some(a));
        assert_eq!(l.of(mac(1)).unwrap().expires, 500);
        assert_eq!(l.request(mac(2), a, None, 400), Err(Refusal::Taken(a)));
        let lease = l.request(mac(1), a, None, 450).unwrap();
        assert_eq!((lease.expires, l.snapshot().len()), (450 + 3600, 1));
        // Once bound, a re-DISCOVER (a reboot) keeps the lease as it is.
        assert_eq!(l.offer(mac(1), None, None, 500, hold), Some(a));
        assert_eq!(l.of(mac(1)).unwrap(), &lease);
        // A plain offer after a Pi's hold does not shorten the hold.
        let b = l.offer(mac(3), None, None, 500, hold).unwrap();
        assert_eq!(l.offer(mac(3), None, None, 510, OFFER_HOLD_SECS), Some(b));
        assert_eq!(l.of(mac(3)).unwrap().expires, 500 + hold);
    }

    #[test]
    fn restore_keeps_what_fits() {
        let mut l = pool(10, 20);
        let saved = vec![
            Lease { mac: mac(1), ip: ip(12), expires: 100, bound: true },
            Lease { mac: mac(2), ip: ip(50), expires: 100, bound: true },
            Lease { mac: mac(3), ip: ip(99), expires: 100, bound: true },
            Lease { mac: mac(4), ip: ip(12), expires: 100, bound: true },
            Lease { mac: mac(1), ip: ip(13), expires: 100, bound: true },
        ];
        let dropped = l.restore(saved);
        assert_eq!(dropped.iter().map(|d| d.mac).collect::<Vec<_>>(), [mac(3), mac(4), mac(1)]);
        assert_eq!(l.offer(mac(1), None, None, 50, OFFER_HOLD_SECS), Some(ip(12)));
        assert_eq!(l.request(mac(5), ip(12), None, 50), Err(Refusal::Taken(ip(12))));
        assert_eq!(l.snapshot().len(), 2);
    }
}
