//! Option negotiation for a read request (RFC 2347 blksize/timeout/tsize from RFC 2348/2349,
//! windowsize from RFC 7440): what the transfer will use, and the OACK that says so.
//!
//! Only options the client asked for, and that the server accepts, are acknowledged; with none,
//! there is no OACK at all (pxelinux and some UEFI firmware fail on anything else).

use std::time::Duration;

/// Transfer modes (RFC 1350 §5). `mail` is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Octet,
    /// Lines end in CR LF on the wire, a bare CR is CR NUL; tftp-hpa's client default.
    Netascii,
}

impl Mode {
    pub fn parse(mode: &str) -> Option<Mode> {
        if mode.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if mode.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else {
            None
        }
    }
}

/// RFC 2348: the block size a client may ask for.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
/// Without the option: RFC 1350's block.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Ethernet MTU 1500 − 20 (IP) − 8 (UDP) − 4 (TFTP): the largest unfragmented block. Boot ROMs
/// mishandle fragments, so this is the cap when the interface's MTU is unknown.
pub const ETHERNET_BLKSIZE: u16 = 1468;

/// The server's side of the negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest block the server sends (interface MTU − 32, or configured).
    pub max_blksize: u16,
    /// Largest window the server accepts (RFC 7440); tftp-hpa's client fails above 64.
    pub max_windowsize: u16,
    /// First retransmission timeout when the client does not ask for one; doubles per retry.
    pub timeout: Duration,
    /// Longest retransmission timeout after doubling.
    pub max_timeout: Duration,
    /// Retransmissions before the client is given up on.
    pub retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blksize: ETHERNET_BLKSIZE,
            max_windowsize: 64,
            timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(5),
            retries: 6,
        }
    }
}

impl Limits {
    /// How long a transfer may go without progress: the server's own retransmission schedule
    /// (first timeout, doubling up to `max_timeout`, `retries` times) run to its end — 27 s by
    /// default. It applies whatever `timeout` the client asks for, so a request for
    /// `timeout=255` holds its place no longer than one without.
    pub fn give_up_after(&self) -> Duration {
        let mut wait = self.timeout;
        let mut total = Duration::ZERO;
        for _ in 0..=self.retries {
            total += wait;
            wait = (wait * 2).min(self.max_timeout.max(self.timeout));
        }
        total
    }
}

/// What a transfer runs with, and the OACK to send first (empty: send DATA 1 at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// The client's fixed retransmission timeout (RFC 2349), if it set one.
    pub timeout: Option<Duration>,
    /// Acknowledged options in request order, names spelled as the client spelled them.
    pub oack: Vec<(String, String)>,
}

/// Negotiate `options` for a file of `size` bytes (as sent, after any netascii conversion).
pub fn negotiate(options: &[(&str, &str)], mode: Mode, size: u64, limits: &Limits) -> Negotiated {
    let mut n = Negotiated { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeout: None, oack: Vec::new() };
    let mut seen: Vec<String> = Vec::new();
    for &(name, value) in options {
        let key = name.to_ascii_lowercase();
        // A repeated option is ignored: the first one counts.
        if seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let accepted = match key.as_str() {
            "blksize" => value.parse::<u32>().ok().filter(|&b| b >= u32::from(MIN_BLKSIZE)).map(|asked| {
                n.blksize = asked.min(u32::from(MAX_BLKSIZE)).min(u32::from(limits.max_blksize)) as u16;
                n.blksize.to_string()
            }),
            // RFC 2349: 1-255 seconds, echoed unchanged.
            "timeout" => value.parse::<u8>().ok().filter(|&t| t >= 1).map(|t| {
                n.timeout = Some(Duration::from_secs(u64::from(t)));
                t.to_string()
            }),
            // Only meaningful in octet mode. Clients send 0 to learn the size; atftp sends its
            // command-line word ("enable"), which means the same. Declined for an empty file:
            // curl rejects "tsize 0" in an OACK, and the one empty block says the same thing.
            "tsize" if mode == Mode::Octet && size > 0 => Some(size.to_string()),
            // Netascii is converted as it is sent, one block after the other, so its blocks
            // have no offsets to resend a window from (dnsmasq also declines windowsize there).
            "windowsize" if mode == Mode::Octet => value.parse::<u16>().ok().filter(|&w| w >= 1).map(|asked| {
                n.windowsize = asked.min(limits.max_windowsize.max(1));
                n.windowsize.to_string()
            }),
            _ => None,
        };
        if let Some(value) = accepted {
            n.oack.push((name.to_string(), value));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oack(options: &[(&str, &str)], mode: Mode) -> Vec<(String, String)> {
        negotiate(options, mode, 4242, &Limits::default()).oack
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn no_options_no_oack() {
        let n = negotiate(&[], Mode::Octet, 10, &Limits::default());
        assert_eq!((n.blksize, n.windowsize, n.timeout), (512, 1, None));
        assert!(n.oack.is_empty());
    }

    #[test]
    fn each_client_gets_exactly_what_it_asked_for() {
        // Pi 4 EEPROM, Pi 5, UEFI tsize probe, curl, iPXE, pxelinux.
        assert_eq!(
            oack(&[("tsize", "0"), ("blksize", "1024")], Mode::Octet),
            pairs(&[("tsize", "4242"), ("blksize", "1024")])
        );
        assert_eq!(
            oack(&[("tsize", "0"), ("blksize", "1468")], Mode::Octet),
            pairs(&[("tsize", "4242"), ("blksize", "1468")])
        );
        assert_eq!(oack(&[("tsize", "0")], Mode::Octet), pairs(&[("tsize", "4242")]));
        assert_eq!(
            oack(&[("tsize", "0"), ("blksize", "512"), ("timeout", "6")], Mode::Octet),
            pairs(&[("tsize", "4242"), ("blksize", "512"), ("timeout", "6")])
        );
        assert_eq!(
            oack(&[("blksize", "1432"), ("tsize", "0")], Mode::Octet),
            pairs(&[("blksize", "1432"), ("tsize", "4242")])
        );
    }

    #[test]
    fn blksize_is_capped_and_nonsense_is_declined() {
        let limits = Limits { max_blksize: 1468, ..Limits::default() };
        assert_eq!(negotiate(&[("blksize", "65464")], Mode::Octet, 0, &limits).blksize, 1468);
        let big = Limits { max_blksize: 65535, ..Limits::default() };
        assert_eq!(negotiate(&[("blksize", "70000")], Mode::Octet, 0, &big).blksize, 65464);
        for bad in ["7", "0", "-1", "abc", ""] {
            let n = negotiate(&[("blksize", bad)], Mode::Octet, 0, &limits);
            assert_eq!(n.blksize, 512, "{bad}");
            assert!(n.oack.is_empty(), "{bad}");
        }
    }

    #[test]
    fn timeout_and_windowsize_rules() {
        let n = negotiate(&[("timeout", "3"), ("windowsize", "16")], Mode::Octet, 0, &Limits::default());
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert_eq!(n.windowsize, 16);
        assert_eq!(n.oack, pairs(&[("timeout", "3"), ("windowsize", "16")]));
        for bad in ["0", "256", "x"] {
            assert!(oack(&[("timeout", bad)], Mode::Octet).is_empty(), "{bad}");
        }
        assert_eq!(oack(&[("windowsize", "1000")], Mode::Octet), pairs(&[("windowsize", "64")]));
        assert!(oack(&[("windowsize", "0")], Mode::Octet).is_empty());
    }

    #[test]
    fn names_are_case_insensitive_echoed_as_sent_and_first_wins() {
        let n =
            negotiate(&[("BlkSize", "1024"), ("blksize", "600"), ("TSIZE", "0")], Mode::Octet, 9, &Limits::default());
        assert_eq!(n.blksize, 1024);
        assert_eq!(n.oack, pairs(&[("BlkSize", "1024"), ("TSIZE", "9")]));
    }

    #[test]
    fn tsize_only_in_octet_mode_and_unknown_options_ignored() {
        assert!(oack(&[("tsize", "0")], Mode::Netascii).is_empty());
        assert!(oack(&[("windowsize", "8")], Mode::Netascii).is_empty());
        assert_eq!(negotiate(&[("windowsize", "8")], Mode::Netascii, 9, &Limits::default()).windowsize, 1);
        assert_eq!(oack(&[("tsize", "enable")], Mode::Octet), pairs(&[("tsize", "4242")]));
        assert!(negotiate(&[("tsize", "0")], Mode::Octet, 0, &Limits::default()).oack.is_empty());
        assert!(oack(&[("multicast", ""), ("rollover", "0"), ("utimeout", "100")], Mode::Octet).is_empty());
    }

    #[test]
    fn the_idle_bound_is_the_servers_own_schedule() {
        assert_eq!(Limits::default().give_up_after(), Duration::from_secs(1 + 2 + 4 + 5 + 5 + 5 + 5));
        let fast = Limits { timeout: Duration::from_millis(100), retries: 3, ..Limits::default() };
        assert_eq!(fast.give_up_after(), Duration::from_millis(100 + 200 + 400 + 800));
        let none = Limits { retries: 0, ..Limits::default() };
        assert_eq!(none.give_up_after(), Duration::from_secs(1));
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("OCTET"), Some(Mode::Octet));
        assert_eq!(Mode::parse("NetAscii"), Some(Mode::Netascii));
        assert_eq!(Mode::parse("mail"), None);
        assert_eq!(Mode::parse(""), None);
    }
}
