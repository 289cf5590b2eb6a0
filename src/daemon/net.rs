//! UDP sockets for the daemon: a listening socket that reports, for every datagram, the local
//! address it arrived on and its interface (IP_PKTINFO / IPV6_PKTINFO), so replies leave from
//! the address the client spoke to even when bound to 0.0.0.0, and block sizes can follow that
//! interface's MTU. It can be bound to one interface (SO_BINDTODEVICE), so nothing from another
//! interface reaches it and broadcasts leave through that one. No SO_REUSEADDR: a second daemon
//! on the same address (and interface) fails with EADDRINUSE instead of taking the traffic, and
//! that error names the program holding the address (from /proc, see `holder`); daemons bound to
//! different interfaces share a port. Also: what an interface is (index, MTU, IPv4 address).

use super::holder::{self, Holder, Holders, Transport};
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, sockopt};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::Interest;

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    pub len: usize,
    pub peer: SocketAddr,
    /// The local address it was sent to (the interface's address for a broadcast).
    pub local: IpAddr,
    pub ifindex: Option<u32>,
}

/// A bound UDP socket that knows where each datagram arrived.
pub struct Listener {
    socket: tokio::net::UdpSocket,
    bound: SocketAddr,
}

impl Listener {
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        Self::bind_on(addr, None)
    }

    /// Bind to `addr` on interface `device` only (SO_BINDTODEVICE), with broadcasts allowed:
    /// the DHCP server's socket, and TFTP's when the lab interface is set.
    pub fn bind_on(addr: SocketAddr, device: Option<&str>) -> io::Result<Listener> {
        let domain = socket2::Domain::for_address(addr);
        let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        // Bound to the device before bind(): the kernel then lets daemons on other interfaces
        // share the port, and refuses one on the same interface (udp_lib_lport_inuse).
        if let Some(device) = device {
            sock.bind_device(Some(device.as_bytes()))
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind to interface {device}: {e}")))?;
            sock.set_broadcast(true)?;
        }
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
            socket::setsockopt(&sock, sockopt::Ipv6RecvPacketInfo, &true)?;
        } else {
            socket::setsockopt(&sock, sockopt::Ipv4PacketInfo, &true)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into()).map_err(|e| name_the_holder(e, Transport::Udp, addr, device))?;
        let udp: UdpSocket = sock.into();
        let bound = udp.local_addr()?;
        Ok(Listener { socket: tokio::net::UdpSocket::from_std(udp)?, bound })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.bound
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        let fd = self.socket.as_raw_fd();
        self.socket.async_io(Interest::READABLE, || recv_with_pktinfo(fd, buf, self.bound.ip())).await
    }

    pub async fn send_to(&self, buf: &[u8], peer: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(buf, peer).await
    }
}

fn recv_with_pktinfo(fd: RawFd, buf: &mut [u8], bound: IpAddr) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    // Room for either control message; in6_pktinfo is the larger.
    let mut control = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let msg = socket::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut control), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let peer =
        msg.address.and_then(|a| to_socket_addr(&a)).ok_or_else(|| io::Error::other("datagram without a source"))?;
    let (mut local, mut ifindex) = (bound, None);
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                local = IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)));
                ifindex = Some(info.ipi_ifindex as u32);
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                local = IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                ifindex = Some(info.ipi6_ifindex);
            }
            _ => {}
        }
    }
    Ok(Datagram { len: msg.bytes, peer, local, ifindex })
}

fn to_socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = addr.as_sockaddr_in6()?;
    debug_assert_eq!(addr.family(), Some(socket::AddressFamily::Inet6));
    Some(SocketAddr::from((v6.ip(), v6.port())))
}

/// A bind failure for the operator: "cannot listen on ADDR (on IF) for SERVICE", with the
/// privilege hint when that was the problem, then the cause (who holds it, for EADDRINUSE).
pub fn cannot_listen(e: io::Error, service: &str, addr: SocketAddr, device: Option<&str>) -> anyhow::Error {
    let on = device.map(|d| format!(" on interface {d}")).unwrap_or_default();
    let hint = if e.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    } else {
        ""
    };
    anyhow::Error::new(e).context(format!("cannot listen on {addr}{on} for {service}{hint}"))
}

/// An EADDRINUSE from binding `addr` (on `device`), reworded to say who holds the address;
/// other errors as they are.
pub fn name_the_holder(e: io::Error, transport: Transport, addr: SocketAddr, device: Option<&str>) -> io::Error {
    if e.kind() != io::ErrorKind::AddrInUse {
        return e;
    }
    let holders = holders_of(transport, addr);
    io::Error::new(e.kind(), holder::in_use_message(transport, addr, device, &holders, std::process::id()))
}

/// The processes holding sockets that overlap `addr`, as far as this user may see in /proc
/// (root sees all, as `ss -p` does).
pub fn holders_of(transport: Transport, addr: SocketAddr) -> Holders {
    let mut sockets = Vec::new();
    let mut tables_read = false;
    for table in transport.tables() {
        if let Ok(text) = std::fs::read_to_string(table) {
            tables_read = true;
            sockets.extend(holder::parse_table(&text));
        }
    }
    let inodes = holder::conflicting(&sockets, transport, addr);
    let mut processes = Vec::new();
    if let (false, Ok(procs)) = (inodes.is_empty(), std::fs::read_dir("/proc")) {
        for entry in procs.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .ok()
                    .and_then(|link| holder::socket_inode(&link.to_string_lossy()))
                    .is_some_and(|i| inodes.contains(&i))
            });
            if holds {
                processes.push(Holder { pid, command: command_of(&entry.path()) });
            }
        }
    }
    processes.sort_by_key(|h| h.pid);
    Holders { tables_read, sockets: inodes.len(), processes }
}

/// A process's command line, arguments joined by spaces, else its `comm`.
fn command_of(proc_dir: &std::path::Path) -> String {
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let args: Vec<String> =
        cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    if args.is_empty() {
        std::fs::read_to_string(proc_dir.join("comm")).map(|c| c.trim().to_string()).unwrap_or_else(|_| "?".into())
    } else {
        args.join(" ")
    }
}

/// The index of interface `name`.
pub fn interface_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}: {e}")))
}

/// The first IPv4 address of interface `name`, with its prefix length.
pub fn interface_ipv4(name: &str) -> io::Result<Option<(Ipv4Addr, u8)>> {
    for ifa in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        if ifa.interface_name != name {
            continue;
        }
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else { continue };
        if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            return Ok(Some((a.ip(), u32::from(m.ip()).leading_ones() as u8)));
        }
    }
    Ok(None)
}

/// The MTU of interface `ifindex`, from sysfs.
pub fn interface_mtu(ifindex: u32) -> Option<u32> {
    let name = nix::net::if_::if_indextoname(ifindex).ok()?;
    let path = format!("/sys/class/net/{}/mtu", name.to_str().ok()?);
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_local_address_and_interface_when_bound_to_any() {
        let listener = Listener::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", ("127.0.0.2", port)).unwrap();
        let mut buf = [0u8; 64];
        let d = listener.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..d.len], b"hello");
        assert_eq!(d.peer, client.local_addr().unwrap());
        assert_eq!(d.local, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let mtu = interface_mtu(d.ifindex.unwrap()).unwrap();
        assert!(mtu >= 1500, "loopback MTU {mtu}");
        listener.send_to(b"back", d.peer).await.unwrap();
        let mut back = [0u8; 8];
        assert_eq!(client.recv(&mut back).unwrap(), 4);
    }

    #[tokio::test]
    async fn bound_to_a_device_and_asked_about_it() {
        let listener = Listener::bind_on("0.0.0.0:0".parse().unwrap(), Some("lo")).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"x", ("127.0.0.1", listener.local_addr().port())).unwrap();
        let mut buf = [0u8; 8];
        let d = listener.recv(&mut buf).await.unwrap();
        assert_eq!(d.ifindex, Some(interface_index("lo").unwrap()));
        assert_eq!(interface_ipv4("lo").unwrap(), Some((Ipv4Addr::LOCALHOST, 8)));
        assert!(interface_index("no-such-if0").is_err());
        assert!(Listener::bind_on("0.0.0.0:0".parse().unwrap(), Some("no-such-if0")).is_err());
    }

    #[tokio::test]
    async fn a_second_socket_on_the_address_is_refused_and_told_who_holds_it() {
        let first = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr();
        let e = Listener::bind(addr).err().expect("a second bind on the same address");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let me = format!("this daemon itself (pid {}", std::process::id());
        assert!(e.to_string().starts_with(&format!("UDP {addr} is already in use by {me}")), "{e}");
        let e = Listener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port()))).err().expect("the wildcard overlaps");
        assert!(e.to_string().contains(&me), "{e}");
        // Other errors keep their words.
        let denied = name_the_holder(io::Error::from(io::ErrorKind::PermissionDenied), Transport::Udp, addr, None);
        assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn works_over_ipv6_loopback() {
        let listener = Listener::bind("[::1]:0".parse().unwrap()).unwrap();
        let client = UdpSocket::bind("[::1]:0").unwrap();
        client.send_to(b"v6", listener.local_addr()).unwrap();
        let mut buf = [0u8; 8];
        let d = listener.recv(&mut buf).await.unwrap();
        assert_eq!(d.local, "::1".parse::<IpAddr>().unwrap());
    }
}
