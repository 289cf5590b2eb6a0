//! Who holds a local address another program could not bind, told the way `ss -p` finds it:
//! the kernel's socket tables (`/proc/net/{udp,tcp}{,6}`) give the sockets on that port and their
//! inodes, and a process's `/proc/<pid>/fd` links (`socket:[inode]`) give their owners. Pure:
//! the tables' text and the processes come in, the sentence for the operator goes out; `net.rs`
//! reads the files.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The transport a socket table lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The socket tables of this transport, IPv4's then IPv6's.
    pub fn tables(self) -> [&'static str; 2] {
        match self {
            Transport::Udp => ["/proc/net/udp", "/proc/net/udp6"],
            Transport::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// TCP_LISTEN in the tables' `st` column (include/net/tcp_states.h).
const TCP_LISTEN: u8 = 0x0a;

/// One row of a socket table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSocket {
    pub local: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

/// The rows of one table's text (`sl local_address rem_address st … uid timeout inode …`);
/// the header and rows that do not parse are skipped.
pub fn parse_table(text: &str) -> Vec<TableSocket> {
    text.lines().skip(1).filter_map(parse_row).collect()
}

fn parse_row(line: &str) -> Option<TableSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (addr, port) = fields.get(1)?.split_once(':')?;
    let ip = parse_hex_ip(addr)?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some(TableSocket { local: SocketAddr::new(ip, port), state, inode })
}

/// The kernel prints each 32-bit word of the address as `%08X` of its in-memory value, so the
/// bytes are each word's native-endian bytes (net/ipv4/udp.c, net/ipv6/datagram.c).
fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.is_ascii() {
        return None;
    }
    let word = |i: usize| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The inodes of the sockets that can keep `addr` from being bound: the same port, an address
/// that overlaps (equal, or either one the wildcard; an IPv6 wildcard or v4-mapped socket may
/// be dual-stack), and for TCP only listeners (SO_REUSEADDR lets a listener bind beside
/// connections). Sockets bound to another interface are listed too: the tables do not show
/// SO_BINDTODEVICE.
pub fn conflicting(sockets: &[TableSocket], transport: Transport, addr: SocketAddr) -> Vec<u64> {
    let mut out: Vec<u64> = sockets
        .iter()
        .filter(|s| s.local.port() == addr.port())
        .filter(|s| transport == Transport::Udp || s.state == TCP_LISTEN)
        .filter(|s| overlaps(s.local.ip(), addr.ip()))
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn overlaps(held: IpAddr, wanted: IpAddr) -> bool {
    let held = match held {
        IpAddr::V6(v6) if wanted.is_ipv4() => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if v6.is_unspecified() => return true,
            None => return false,
        },
        other => other,
    };
    held.is_ipv4() == wanted.is_ipv4() && (held == wanted || held.is_unspecified() || wanted.is_unspecified())
}

/// The inode of a `/proc/<pid>/fd/<n>` link to a socket (`socket:[31337]`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// A process holding one of the sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command line, arguments joined by spaces (or its `comm` if that is all there is).
    pub command: String,
}

/// What is known about who holds an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    /// The socket tables could be read.
    pub tables_read: bool,
    /// Sockets on the address, whether or not their processes were found.
    pub sockets: usize,
    pub processes: Vec<Holder>,
}

/// Longest command line shown for a holder.
const COMMAND_CHARS: usize = 120;

/// The sentence for EADDRINUSE on `addr`: what holds it, as far as was seen, and what to do.
/// `own_pid` is ours (two of our own services on one port).
pub fn in_use_message(
    transport: Transport,
    addr: SocketAddr,
    device: Option<&str>,
    holders: &Holders,
    own_pid: u32,
) -> String {
    let on = device.map(|d| format!(" on {d}")).unwrap_or_default();
    let mut text = format!("{} {addr}{on} is already in use", transport.name());
    let shown: Vec<String> = holders
        .processes
        .iter()
        .take(4)
        .map(|h| {
            if h.pid == own_pid {
                return format!("this daemon itself (pid {})", h.pid);
            }
            let mut command: String = h.command.chars().take(COMMAND_CHARS).collect();
            if h.command.chars().count() > COMMAND_CHARS {
                command.push('…');
            }
            let program = h.command.split_whitespace().next().unwrap_or("").rsplit('/').next().unwrap_or("");
            format!("{program} (pid {}: {command})", h.pid)
        })
        .collect();
    match (shown.len(), holders.sockets, holders.tables_read) {
        (1, _, _) => {
            let _ = write!(text, " by {}", shown[0]);
        }
        (n, _, _) if n > 1 => {
            let _ = write!(text, " by one of: {}", shown.join("; "));
        }
        (_, s, true) if s > 0 => {
            text.push_str(" by a process this user cannot see (run as root, or `ss -lnp`, to name it)");
        }
        (_, _, true) => text.push_str(" (by a socket in another network namespace, or one that just closed)"),
        _ => text.push_str(" (the kernel's socket tables could not be read to say by whom)"),
    }
    if holders.processes.iter().any(|h| h.pid == own_pid) {
        text.push_str(": give each service its own port");
    } else {
        text.push_str(": another server has it; stop that one, or serve on another address or interface");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rows as a little-endian kernel writes them (`cat /proc/net/udp` on x86-64 and arm64).
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  165: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31337 2 0000000000000000 0
  170: 0100007F:4269 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  171: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0
  nonsense
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 9002 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9003 1 0000000000000000 100 0 0 10 0
";

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rows_parse_as_the_kernel_prints_them() {
        let udp = parse_table(UDP);
        assert_eq!(udp.len(), 3);
        assert_eq!(udp[0], TableSocket { local: at("0.0.0.0:67"), state: 7, inode: 31337 });
        assert_eq!(udp[1].local, at("127.0.0.1:17001"));
        let tcp6 = parse_table(TCP6);
        assert_eq!(tcp6[0].local, at("[::]:80"));
        assert_eq!(tcp6[1].local, at("[::1]:80"));
        assert_eq!(tcp6[2].local, at("[::ffff:127.0.0.1]:8081"));
        assert!(parse_table("header\n 0: zz:zz 0:0 07 x x x x x x\n").is_empty());
        assert_eq!(socket_inode("socket:[31337]"), Some(31337));
        assert_eq!(socket_inode("pipe:[31337]"), None);
    }

    #[test]
    fn overlapping_addresses_conflict() {
        let udp = parse_table(UDP);
        assert_eq!(conflicting(&udp, Transport::Udp, at("127.0.0.1:17001")), [4242]);
        assert_eq!(conflicting(&udp, Transport::Udp, at("0.0.0.0:17001")), [4242]);
        assert_eq!(conflicting(&udp, Transport::Udp, at("10.77.0.1:67")), [31337], "the wildcard covers it");
        assert!(conflicting(&udp, Transport::Udp, at("127.0.0.2:17001")).is_empty());
        assert!(conflicting(&udp, Transport::Udp, at("[::1]:17001")).is_empty(), "another family");
        let tcp6 = parse_table(TCP6);
        // A dual-stack listener on [::]:80 holds 0.0.0.0:80; a connection does not.
        assert_eq!(conflicting(&tcp6, Transport::Tcp, at("127.0.0.1:80")), [9001]);
        assert_eq!(conflicting(&tcp6, Transport::Tcp, at("127.0.0.1:8081")), [9003]);
        assert!(conflicting(&tcp6, Transport::Tcp, at("127.0.0.2:8081")).is_empty());
    }

    #[test]
    fn the_message_names_the_holder_or_says_why_not() {
        let addr = at("127.0.0.1:17001");
        let one = Holders {
            tables_read: true,
            sockets: 1,
            processes: vec![Holder { pid: 4242, command: "/usr/bin/bramble serve --tftp-root /srv/a".into() }],
        };
        let m = in_use_message(Transport::Udp, addr, None, &one, 1);
        assert!(
            m.starts_with(
                "UDP 127.0.0.1:17001 is already in use by bramble (pid 4242: /usr/bin/bramble serve --tftp-root /srv/a): another server has it; stop that one"
            ),
            "{m}"
        );
        let m = in_use_message(Transport::Udp, at("0.0.0.0:67"), Some("eth1"), &one, 4242);
        assert!(
            m.ends_with(
                "0.0.0.0:67 on eth1 is already in use by this daemon itself (pid 4242): give each service its own port"
            ),
            "{m}"
        );
        let two = Holders {
            processes: vec![one.processes[0].clone(), Holder { pid: 7, command: "dnsmasq".into() }],
            ..one.clone()
        };
        assert!(in_use_message(Transport::Udp, addr, None, &two, 1).contains("by one of: bramble (pid 4242"));
        let hidden = Holders { tables_read: true, sockets: 1, processes: vec![] };
        assert!(in_use_message(Transport::Udp, addr, None, &hidden, 1).contains("a process this user cannot see"));
        let unread = Holders::default();
        assert!(in_use_message(Transport::Tcp, addr, None, &unread, 1).contains("could not be read"));
        let long = Holders { processes: vec![Holder { pid: 9, command: "x".repeat(500) }], ..one };
        assert!(in_use_message(Transport::Udp, addr, None, &long, 1).contains(&format!("{}…)", "x".repeat(120))));
    }
}
