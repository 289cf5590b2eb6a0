//! `bramble serve` DHCP against real clients, in network namespaces each test creates: busybox
//! udhcpc (a lease in server mode; a Pi-shaped DISCOVER in proxy mode), ISC dhclient (server
//! mode), and scapy (tests/scripts/dhcp_client.py) for the exact shapes of Pi 3/4/5 DISCOVERs and
//! the Pi 4's REQUEST without option 60 (answered only when it names us, as dnsmasq in Raspberry
//! Pi's proxy set-up, run here as the reference, leaves the router's REQUEST alone), a PXE ROM on
//! port 4011, a relay (and giaddrs no relay can have), malformed packets, a request on another
//! interface, and 50 clients keeping their addresses over a restart. Needs root (namespaces,
//! port 67).

mod common;

use bramble::daemon::dhcp::wire::find_option;
use common::netns::{Lab, NsDaemon};
use common::*;
use std::path::Path;

const SERVER: [u8; 4] = [10, 77, 0, 1];
const PI_VENDOR: &str = "PXEClient:Arch:00000:UNDI:002001";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/dhcp_client.py");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// One datagram the scapy client saw: source, destination, payload.
#[derive(Debug)]
struct Seen {
    from: String,
    to: String,
    payload: Vec<u8>,
}

/// Run the scapy client in the lab's client namespace.
fn scapy(lab: &Lab, iface: &str, args: &[String]) -> Vec<Seen> {
    let out = lab
        .client
        .command("/usr/bin/python3")
        .arg(SCRIPT)
        .arg(iface)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); `just setup` installs python3-scapy"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dhcp_client.py failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("REPLY "))
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            Seen { from: parts[0].into(), to: parts[1].into(), payload: unhex(parts[2]) }
        })
        .collect()
}

fn opt(code: u8, value: &[u8]) -> String {
    format!("opt={code}:{}", hex(value))
}

/// The Pi 4/5 GUID: FourCC, board revision, MAC low 4 bytes, serial; big- or little-endian.
fn pi_guid(model: u8, serial: u32, little: bool) -> Vec<u8> {
    let mut g = vec![0u8];
    if little {
        g.extend_from_slice(&[model, b'i', b'P', b'R', 0x11, 0x31, 0xc0, 0x00, 0x03, 0x00, 0x00, 0x32]);
        g.extend_from_slice(&serial.to_le_bytes());
    } else {
        g.extend_from_slice(&[b'R', b'P', b'i', model, 0x00, 0xc0, 0x31, 0x11, 0x32, 0x00, 0x00, 0x03]);
        g.extend_from_slice(&serial.to_be_bytes());
    }
    g
}

/// The DISCOVER a Pi bootloader sends (pi-netboot.md §1.2): broadcast bit clear, vendor class,
/// arch 0, UNDI 2.1, the given GUID, and its parameter request list.
fn pi_discover(mac: &str, xid: u32, guid: &[u8], pi3: bool) -> Vec<String> {
    let params: &[u8] = if pi3 {
        &[43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]
    } else {
        &[1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]
    };
    vec![
        format!("mac={mac}"),
        format!("xid={xid:#x}"),
        opt(53, &[1]),
        opt(55, params),
        opt(93, &[0, 0]),
        opt(94, &[1, 2, 1]),
        opt(97, guid),
        opt(60, PI_VENDOR.as_bytes()),
    ]
}

/// The reply shape every Pi needs, in OFFER and ACK alike.
fn assert_pi_reply(p: &[u8], kind: u8, guid: Option<&[u8]>) {
    assert_eq!(p[0], 2, "a BOOTREPLY");
    assert!(p.len() >= 300, "padded to 300 bytes: {}", p.len());
    assert_eq!(find_option(p, 53).unwrap(), [kind]);
    assert_eq!(find_option(p, 54).unwrap(), SERVER);
    assert_eq!(find_option(p, 60).unwrap(), b"PXEClient");
    let menu = find_option(p, 43).unwrap();
    assert!(menu.windows(17).any(|w| w == b"Raspberry Pi Boot"), "option 43: {menu:02x?}");
    assert_eq!(&menu[..3], &[6, 1, 3]);
    assert_eq!(find_option(p, 66).unwrap(), b"10.77.0.1");
    assert_eq!(&p[20..24], &SERVER, "siaddr");
    if let Some(g) = guid {
        assert_eq!(find_option(p, 97).unwrap(), g, "option 97 echoed");
    }
    // No pad options between options; only zeros after the end.
    let mut i = 240;
    while p[i] != 255 {
        assert_ne!(p[i], 0, "a pad option at {i}");
        i += 2 + usize::from(p[i + 1]);
    }
    assert!(p[i + 1..].iter().all(|&b| b == 0));
}

fn tftp_root(dir: &Path) -> String {
    let root = dir.join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    path_str(&root).to_string()
}

/// A udhcpc hook script that records the lease's variables in `out`.
fn udhcpc_script(dir: &Path, out: &Path) -> String {
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in bound) env | grep -E '^(ip|subnet|router|dns|domain|lease|siaddr|serverid|tftp|opt43|opt60|opt97|hostname)=' > {};; esac\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path_str(&script).to_string()
}

fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn udhcpc_leases_in_server_mode_and_boots_as_a_pi_in_proxy_mode() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("udhcpc");
    lab.client.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:31"]);
    let leases = work.path().join("leases.toml");
    let env = work.path().join("lease.env");
    let script = udhcpc_script(work.path(), &env);
    {
        let args = ["--interface", "veth0", "--dhcp", "server", "--range", "10.77.0.100-10.77.0.120"];
        let mut daemon = NsDaemon::start(
            &lab.server,
            &[&args[..], &["--tftp-root", &root, "--lease-file", path_str(&leases)]].concat(),
        );
        let out = lab
            .client
            .command("busybox")
            .args(["udhcpc", "-i", "eth0", "-q", "-f", "-n", "-t", "5", "-T", "1", "-s", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "udhcpc: {}", String::from_utf8_lossy(&out.stderr));
        let got = std::fs::read_to_string(&env).unwrap();
        assert_eq!(env_value(&got, "ip").as_deref(), Some("10.77.0.100"), "{got}");
        assert_eq!(env_value(&got, "subnet").as_deref(), Some("255.255.255.0"));
        assert_eq!(env_value(&got, "lease").as_deref(), Some("3600"));
        assert_eq!(env_value(&got, "serverid").as_deref(), Some("10.77.0.1"));
        assert!(env_value(&got, "opt43").is_none(), "a plain client gets no boot information");
        assert!(daemon.stop(), "bramble serve stops on SIGTERM");
        let saved = std::fs::read_to_string(&leases).unwrap();
        assert!(saved.contains("02:00:00:00:00:31") && saved.contains("10.77.0.100"), "{saved}");
    }
    // Proxy mode, a Pi-shaped DISCOVER (pi-netboot.md §1.2); udhcpc sends the same class in its
    // REQUEST, which the proxy ACKs too.
    std::fs::remove_file(&env).unwrap();
    lab.client.ip(&["link", "set", "eth0", "address", "dc:a6:32:00:00:31"]);
    let _daemon = NsDaemon::start(
        &lab.server,
        &["--interface", "veth0", "--dhcp", "proxy", "--answer", "pis", "--tftp-root", &root],
    );
    let guid = hex(&pi_guid(b'4', 0xa1b2_c3d4, false));
    let out = lab
        .client
        .command("busybox")
        .args(["udhcpc", "-i", "eth0", "-q", "-f", "-n", "-t", "5", "-T", "1", "-s", &script])
        .args(["-V", PI_VENDOR, "-x", "0x5d:0000", "-x", &format!("0x61:{guid}"), "-O", "43", "-O", "66"])
        .output()
        .unwrap();
    assert!(out.status.success(), "udhcpc: {}", String::from_utf8_lossy(&out.stderr));
    let got = std::fs::read_to_string(&env).unwrap();
    let opt43 = env_value(&got, "opt43").unwrap_or_default();
    assert!(opt43.contains(&hex(b"Raspberry Pi Boot")), "option 43 {opt43}");
    assert_eq!(env_value(&got, "tftp").as_deref(), Some("10.77.0.1"));
    assert_eq!(env_value(&got, "siaddr").as_deref(), Some("10.77.0.1"));
    assert_eq!(env_value(&got, "ip").as_deref(), Some("0.0.0.0"), "proxy mode gives no address");
    assert_eq!(env_value(&got, "opt97").as_deref(), Some(guid.as_str()));
    // A plain client gets nothing from a proxy.
    lab.client.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:32"]);
    let out = lab
        .client
        .command("busybox")
        .args(["udhcpc", "-i", "eth0", "-q", "-n", "-t", "2", "-T", "1", "-s", &script])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a proxy answered a plain client");
}

#[test]
fn dhclient_leases_in_server_mode() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("dhclient");
    lab.client.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:41"]);
    let leases = work.path().join("leases.toml");
    let config = work.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "lab = {root:?}\ninterface = \"veth0\"\n[tftp]\nroot_dirs = [\".\"]\n[dhcp]\nmode = \"server\"\nrange = \"10.77.0.100-10.77.0.120\"\nrouter = \"10.77.0.254\"\ndns = [\"10.77.0.53\"]\ndomain = \"lab.example\"\nlease_secs = 600\nlease_file = {:?}\n\n[[client]]\nname = \"node7\"\nmac = \"02:00:00:00:00:41\"\naddress = \"10.77.0.7\"\ndirs = [\".\"]\n",
            path_str(&leases)
        ),
    )
    .unwrap();
    let _daemon = NsDaemon::start(&lab.server, &["--config", path_str(&config)]);
    // dhclient's own script would rewrite /etc/resolv.conf; this one only records and configures.
    let record = work.path().join("dhclient.env");
    let hook = work.path().join("dhclient.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBOOT) env | grep '^new_' > {}; ip addr add \"$new_ip_address/24\" dev \"$interface\";; esac\nexit 0\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let lease_db = work.path().join("dhclient.leases");
    let pid = work.path().join("dhclient.pid");
    // dhclient with our hook, lease database and pid file, bounded by `timeout`.
    let dhclient = |secs: &str, mode: &[&str]| {
        let files = ["-sf", path_str(&hook), "-lf", path_str(&lease_db), "-pf", path_str(&pid), "eth0"];
        lab.client.command("timeout").args([secs, "dhclient"]).args(mode).args(files).output().unwrap()
    };
    let out = dhclient("30", &["-1", "-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dhclient: {stderr}");
    assert!(stderr.contains("DHCPACK of 10.77.0.7 from 10.77.0.1"), "{stderr}");
    let got = std::fs::read_to_string(&record).unwrap();
    for want in [
        "new_ip_address=10.77.0.7",
        "new_subnet_mask=255.255.255.0",
        "new_routers=10.77.0.254",
        "new_domain_name_servers=10.77.0.53",
        "new_domain_name=lab.example",
        "new_host_name=node7",
        "new_dhcp_lease_time=600",
    ] {
        assert!(got.lines().any(|l| l == want), "{want} missing from\n{got}");
    }
    let addr = String::from_utf8_lossy(
        &lab.client.command("ip").args(["-4", "addr", "show", "eth0"]).output().unwrap().stdout,
    )
    .into_owned();
    assert!(addr.contains("10.77.0.7/24"), "{addr}");
    // Release it; dhclient -r sends a DHCPRELEASE.
    let out = dhclient("20", &["-r"]);
    assert!(out.status.success(), "dhclient -r: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(_daemon.wait_log("outcome=released 10.77.0.7", 1).len(), 1, "{:#?}", _daemon.log());
}

#[test]
fn scapy_pi_3_4_5_shapes_in_proxy_and_server_mode() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("pishapes");
    let mut pi3b = vec![0u8];
    pi3b.extend([0x44; 16]);
    // Pi 3B: the ROM's fixed xid and GUID, a Raspberry Pi MAC.
    for (mode, extra) in [("proxy", vec![]), ("server", vec!["--range", "10.77.0.100-10.77.0.120"])] {
        let lease_file = work.path().join(format!("{mode}.toml"));
        let mut args = vec!["--interface", "veth0", "--dhcp", mode, "--answer", "pis", "--tftp-root", &root];
        args.extend(extra);
        args.extend(["--lease-file", path_str(&lease_file)]);
        let daemon = NsDaemon::start(&lab.server, &args);
        let seen = scapy(&lab, "eth0", &pi_discover("b8:27:eb:00:00:03", 0x26f3_0339, &pi3b, true));
        assert_eq!(seen.len(), 1, "{mode}: {seen:?}");
        assert_eq!((seen[0].from.as_str(), seen[0].to.as_str()), ("10.77.0.1:67", "255.255.255.255:68"));
        assert_pi_reply(&seen[0].payload, 2, Some(&pi3b));
        let yiaddr = &seen[0].payload[16..20];
        if mode == "proxy" {
            assert_eq!(yiaddr, [0, 0, 0, 0]);
        } else {
            assert_eq!(yiaddr, [10, 77, 0, 100]);
        }
        // Pi 4 (big-endian FourCC) and Pi 5 (little-endian), then the Pi 4's REQUEST: no 60, 93, 97;
        // it names us (in proxy mode, as a client with no router would; the router's REQUEST is
        // `proxy_mode_leaves_the_routers_requests_to_the_router_as_dnsmasq_does`).
        for (mac, guid) in [
            ("dc:a6:32:00:00:04", pi_guid(b'4', 0x1234_5678, false)),
            ("2c:cf:67:00:00:05", pi_guid(b'5', 0x8765_4321, true)),
        ] {
            let seen = scapy(&lab, "eth0", &pi_discover(mac, 0x0404_0404, &guid, false));
            assert_eq!(seen.len(), 1, "{mode} {mac}: {seen:?}");
            assert_pi_reply(&seen[0].payload, 2, Some(&guid));
            let offered = seen[0].payload[16..20].to_vec();
            let mut request = vec![format!("mac={mac}"), "xid=0x4040404".into(), opt(53, &[3]), opt(54, &SERVER)];
            if mode == "server" {
                request.push(opt(50, &offered));
            }
            request.push(opt(55, &[1, 3, 43, 60, 66, 67]));
            let seen = scapy(&lab, "eth0", &request);
            assert_eq!(seen.len(), 1, "{mode} {mac} REQUEST: {seen:?}");
            assert_pi_reply(&seen[0].payload, 5, None);
            assert_eq!(&seen[0].payload[16..20], offered.as_slice());
        }
        let class_lines = daemon.wait_log("class=pi", 6);
        assert!(
            class_lines.iter().any(|l| l.contains("class=pi3")) && class_lines.iter().any(|l| l.contains("class=pi5")),
            "{class_lines:#?}"
        );
    }
}

/// dnsmasq with Raspberry Pi's documented proxy configuration (network-boot-raspberry-pi.adoc:
/// `dhcp-range=<broadcast>,proxy`, `pxe-service=0,"Raspberry Pi Boot"`), the set-up real Pis are
/// known to boot from, on the lab side of `lab`; killed on drop.
struct ReferenceProxy {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl ReferenceProxy {
    fn start(lab: &Lab, dir: &Path) -> ReferenceProxy {
        let conf = dir.join("dnsmasq.conf");
        let log = dir.join("dnsmasq.log");
        std::fs::write(
            &conf,
            format!(
                "port=0\ndhcp-range=10.77.0.255,proxy\nlog-dhcp\nenable-tftp\ntftp-root={}\npxe-service=0,\"Raspberry Pi Boot\"\ninterface=veth0\nbind-interfaces\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = lab
            .server
            .command("dnsmasq")
            .args(["--keep-in-foreground", "--user=root", "--group=root"])
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .arg(format!("--log-facility={}", log.display()))
            .spawn()
            .expect("dnsmasq (`just setup` installs dnsmasq-base)");
        let proxy = ReferenceProxy { child, log };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(&proxy.log).unwrap_or_default().contains("DHCP, proxy on subnet") {
            assert!(std::time::Instant::now() < until, "dnsmasq did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        proxy
    }
}

impl Drop for ReferenceProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Pi 4 beside a router: it takes the router's address, so its REQUEST names the router
/// (option 54) and asks for the router's address (50). That is the router's to ACK: dnsmasq in
/// Raspberry Pi's proxy set-up stays silent, and so must bramble (RFC 2131 §4.3.2). bramble
/// still ACKs a REQUEST that names it.
#[test]
fn proxy_mode_leaves_the_routers_requests_to_the_router_as_dnsmasq_does() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("proxyreq");
    let mac = "dc:a6:32:00:00:61";
    let guid = pi_guid(b'4', 0x6161_6161, false);
    let router: [u8; 4] = [10, 77, 0, 254];
    let request = |server: Option<[u8; 4]>| {
        let mut r = vec![format!("mac={mac}"), "xid=0x6161".into(), opt(53, &[3]), opt(50, &[10, 77, 0, 123])];
        r.extend(server.map(|s| opt(54, &s)));
        r.push(opt(55, &[1, 3, 43, 60, 66, 67]));
        r
    };
    let shapes = [
        ("the DISCOVER", pi_discover(mac, 0x6161, &guid, false)),
        ("the REQUEST naming the router", request(Some(router))),
        ("a REQUEST naming no server", request(None)),
    ];
    let answered = |shapes: &[(&str, Vec<String>)]| -> Vec<usize> {
        shapes.iter().map(|(_, args)| scapy(&lab, "eth0", args).len()).collect()
    };
    let reference = {
        let _dnsmasq = ReferenceProxy::start(&lab, work.path());
        answered(&shapes)
    };
    assert_eq!(reference, [1, 0, 0], "dnsmasq: replies to {:?}", shapes.map(|s| s.0));
    let daemon = NsDaemon::start(
        &lab.server,
        &["--interface", "veth0", "--dhcp", "proxy", "--answer", "pis", "--tftp-root", &root],
    );
    assert_eq!(answered(&shapes), reference, "bramble answers as dnsmasq does: {:#?}", daemon.log());
    assert_eq!(daemon.wait_log("outcome=ignored: it chose server 10.77.0.254", 1).len(), 1, "{:#?}", daemon.log());
    // One that names us is ours: an ACK with boot information and no address.
    let seen = scapy(&lab, "eth0", &request(Some(SERVER)));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_pi_reply(&seen[0].payload, 5, None);
    assert_eq!(&seen[0].payload[16..20], &[0; 4]);
}

#[test]
fn boot_server_port_relay_and_known_client_by_serial() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("pxe4011");
    let config = work.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "lab = {root:?}\ninterface = \"veth0\"\n[tftp]\nroot_dirs = [\".\"]\n[dhcp]\nmode = \"server\"\nanswer = \"known\"\nrange = \"10.77.0.100-10.77.0.120\"\nlease_file = \"leases.toml\"\n\n[[client]]\nname = \"pi-by-serial\"\nserial = \"10000000d9780558\"\naddress = \"10.77.0.21\"\ndirs = [\".\"]\n\n[[client]]\nname = \"pc\"\nmac = \"52:54:00:00:00:42\"\nmodel = \"pc\"\ndirs = [\".\"]\n"
        ),
    )
    .unwrap();
    let daemon = NsDaemon::start(&lab.server, &["--config", path_str(&config)]);
    // A Pi the lab lists by serial only (the default recipe's way) gets its fixed address.
    let guid = pi_guid(b'4', 0xd978_0558, true);
    let seen = scapy(&lab, "eth0", &pi_discover("dc:a6:32:00:00:21", 7, &guid, false));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_pi_reply(&seen[0].payload, 2, Some(&guid));
    assert_eq!(&seen[0].payload[16..20], &[10, 77, 0, 21]);
    assert!(daemon.wait_log("client=\"pi-by-serial\"", 1).len() == 1);
    // An unknown Pi is given an address but no boot information (answer = known).
    let seen = scapy(&lab, "eth0", &pi_discover("dc:a6:32:00:00:22", 8, &pi_guid(b'4', 0xffff, false), false));
    assert_eq!(seen.len(), 1);
    assert_eq!(find_option(&seen[0].payload, 43), None);
    assert_eq!(&seen[0].payload[16..20], &[10, 77, 0, 100]);

    // A PXE ROM with an address asks the boot server on 4011: the ACK comes from 4011, to it.
    lab.client.ip(&["addr", "add", "10.77.0.50/24", "dev", "eth0"]);
    let ask = vec![
        "mac=52:54:00:00:00:42".to_string(),
        "xid=0x4011".into(),
        "ciaddr=10.77.0.50".into(),
        "src=10.77.0.50".into(),
        "dst=10.77.0.1".into(),
        "dport=4011".into(),
        "l3=1".into(),
        opt(53, &[3]),
        opt(60, b"PXEClient:Arch:00007:UNDI:003016"),
        opt(93, &[0, 7]),
        opt(97, &[0; 17]),
    ];
    let seen = scapy(&lab, "eth0", &ask);
    assert_eq!(seen.len(), 1, "{seen:?} {:#?}", daemon.log());
    assert_eq!((seen[0].from.as_str(), seen[0].to.as_str()), ("10.77.0.1:4011", "10.77.0.50:68"));
    let p = &seen[0].payload;
    assert_eq!(find_option(p, 53).unwrap(), [5]);
    assert_eq!(&p[108..117], b"ipxe.efi\0");
    assert_eq!(find_option(p, 67).unwrap(), b"ipxe.efi");
    assert_eq!(&p[16..20], &[0; 4], "no address from the boot server");
    assert_eq!(find_option(p, 51), None);

    // A relay (10.77.0.2, from port 67, giaddr set, option 82) is answered at giaddr:67.
    lab.client.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    let relayed = vec![
        "mac=52:54:00:00:00:43".to_string(),
        "xid=0x6767".into(),
        "giaddr=10.77.0.2".into(),
        "hops=1".into(),
        "src=10.77.0.2".into(),
        "sport=67".into(),
        "dst=10.77.0.1".into(),
        "listen=67".into(),
        "l3=1".into(),
        opt(53, &[1]),
        opt(82, b"\x01\x06port-9\x02\x02ab"),
    ];
    let seen = scapy(&lab, "eth0", &relayed);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].from.as_str(), seen[0].to.as_str()), ("10.77.0.1:67", "10.77.0.2:67"));
    let p = &seen[0].payload;
    assert_eq!((p[3], &p[24..28]), (1, &[10u8, 77, 0, 2][..]), "hops and giaddr kept");
    assert_eq!(find_option(p, 82).unwrap(), b"\x01\x06port-9\x02\x02ab");
    assert_eq!(find_option(p, 53).unwrap(), [2]);
    assert_eq!(&p[16..20], &[10, 77, 0, 101]);

    // Relay addresses no relay can have get nothing, and spend no pool address.
    for (n, giaddr) in ["255.255.255.255", "224.0.0.1", "127.0.0.1", "0.0.0.1", "10.77.0.255"].iter().enumerate() {
        let mut bad = relayed.clone();
        bad[0] = format!("mac=52:54:00:00:01:{n:02x}");
        bad[2] = format!("giaddr={giaddr}");
        bad.push("wait=1".into());
        let seen = scapy(&lab, "eth0", &bad);
        assert!(seen.is_empty(), "giaddr {giaddr}: {seen:?}");
        let why = format!("outcome=ignored: giaddr {giaddr} is");
        assert_eq!(daemon.wait_log(&why, 1).len(), 1, "{giaddr}: {:#?}", daemon.log());
    }
    let mut again = relayed.clone();
    again[0] = "mac=52:54:00:00:00:44".into();
    let seen = scapy(&lab, "eth0", &again);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(&seen[0].payload[16..20], &[10, 77, 0, 102], "the refused relays took no address");
}

#[test]
fn malformed_packets_and_other_interfaces_get_no_answer() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("ignored");
    let daemon = NsDaemon::start(&lab.server, &["--interface", "veth0", "--dhcp", "proxy", "--tftp-root", &root]);
    let discover = pi_discover("dc:a6:32:00:00:51", 0x51, &pi_guid(b'4', 0x51, false), false);
    // Garbage: too short, no magic cookie, a BOOTREPLY, a hardware length of 255.
    let mut good = vec![0u8; 240];
    good[..3].copy_from_slice(&[1, 1, 6]);
    good[236..240].copy_from_slice(&[99, 130, 83, 99]);
    good.extend_from_slice(&[53, 1, 1, 255]);
    let mut no_cookie = good.clone();
    no_cookie[236] = 0;
    let mut reply = good.clone();
    reply[0] = 2;
    let mut long_hw = good.clone();
    long_hw[2] = 255;
    for raw in [vec![1u8, 2, 3], no_cookie, reply, long_hw] {
        let seen = scapy(&lab, "eth0", &[format!("raw={}", hex(&raw)), "wait=0.5".into()]);
        assert!(seen.is_empty(), "{seen:?}");
    }
    assert!(daemon.wait_log("malformed packet ignored", 4).len() >= 4, "{:#?}", daemon.log());
    // A well-formed boot DISCOVER on the other interface: nothing comes back, nothing is logged.
    let seen = scapy(&lab, "eth1", &discover);
    assert!(seen.is_empty(), "answered on another interface: {seen:?}");
    assert!(!daemon.log().iter().any(|l| l.contains("xid=0x00000051")), "{:#?}", daemon.log());
    // The same on the lab interface is answered (so the silence above meant something).
    let seen = scapy(&lab, "eth0", &discover);
    assert_eq!(seen.len(), 1);
    assert!(daemon.log().iter().all(|l| !l.contains("panicked")));
    // TFTP listens on the lab interface only, like DHCP.
    std::fs::write(Path::new(&root).join("start4.elf"), b"firmware").unwrap();
    lab.client.ip(&["addr", "add", "10.77.0.60/24", "dev", "eth0"]);
    lab.client.ip(&["addr", "add", "10.78.0.60/24", "dev", "eth1"]);
    let fetch = |server: &str| {
        let out = work.path().join(format!("from-{server}"));
        let status = lab
            .client
            .command("timeout")
            .args(["3", "busybox", "tftp", "-g", "-r", "start4.elf", "-l", path_str(&out), server])
            .status()
            .unwrap();
        status.success() && std::fs::read(&out).is_ok_and(|b| b == b"firmware")
    };
    assert!(fetch("10.77.0.1"), "TFTP on the lab interface");
    assert!(!fetch("10.78.0.1"), "TFTP answered on another interface");
}

#[test]
fn fifty_clients_keep_their_addresses_over_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("restart");
    let leases = work.path().join("leases.toml");
    let args = [
        "--interface",
        "veth0",
        "--dhcp",
        "server",
        "--range",
        "10.77.0.100-10.77.0.250",
        "--tftp-root",
        &root,
        "--lease-file",
        path_str(&leases),
    ];
    let dora = |macbase: &str| -> Vec<(String, String)> {
        let out = lab
            .client
            .command("/usr/bin/python3")
            .args([SCRIPT, "eth0", "dora", "count=50", &format!("macbase={macbase}"), "wait=20"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("LEASE "))
            .map(|l| {
                let (mac, ip) = l.split_once(' ').unwrap();
                (mac.to_string(), ip.to_string())
            })
            .collect()
    };
    let mut daemon = NsDaemon::start(&lab.server, &args);
    // Someone else first, so the 50 do not simply get the pool's first addresses again.
    let first = dora("02:00:00:00:02:00");
    assert_eq!(first.len(), 50, "{first:?}");
    let before = dora("02:00:00:00:01:00");
    assert_eq!(before.len(), 50);
    assert!(daemon.stop());
    let saved = std::fs::read_to_string(&leases).unwrap();
    assert_eq!(saved.matches("[[lease]]").count(), 100, "{saved}");
    let _daemon = NsDaemon::start(&lab.server, &args);
    assert_eq!(_daemon.wait_log("leases=100", 1).len(), 1, "{:#?}", _daemon.log());
    let after = dora("02:00:00:00:01:00");
    assert_eq!(after, before, "the same clients get the same addresses after a restart");
}

#[test]
fn serve_flags_are_checked_before_anything_listens() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let fails = |args: &[&str], needle: &str| {
        let out = bramble().arg("serve").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    fails(&["--tftp-root", &root, "--dhcp", "proxy"], "DHCP needs the lab interface");
    fails(&["--tftp-root", &root, "--dhcp", "server", "--interface", "lo"], "needs a pool: give --range");
    fails(&["--tftp-root", &root, "--range", "10.0.0.1-10.0.0.9"], "DHCP is off");
    fails(&["--tftp-root", &root, "--dhcp", "proxy", "--interface", "no-such-if0"], "no-such-if0");
    fails(
        &["--tftp-root", &root, "--dhcp", "server", "--interface", "lo", "--range", "10.0.0.1-10.0.0.9"],
        "is not inside the subnet 127.0.0.1/8",
    );
    let help = bramble().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("without --config `all`, since there are no known clients"), "{help}");
}

/// A lease file that is a FIFO, a symlink to /dev/zero, 50 MB big, or holds a 20 MB MAC: `bramble serve`
/// stops at once (not killed by the `timeout` guarding it) with a short message naming the file.
#[test]
fn lease_files_that_are_no_lease_files_stop_start_up_with_a_short_message() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("leasefile");
    let leases = work.path().join("leases.toml");
    let serve = || {
        let bin = assert_cmd::cargo::cargo_bin("bramble");
        let out = lab
            .server
            .command("timeout")
            .args(["60", path_str(&bin), "serve", "--interface", "veth0", "--dhcp", "server"])
            .args(["--range", "10.77.0.100-10.77.0.120", "--tftp-root", &root, "--lease-file", path_str(&leases)])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let named = format!("the lease file {}", leases.display());
    nix::unistd::mkfifo(&leases, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, stderr) = serve();
    assert_eq!(code, Some(1), "a FIFO: {stderr}");
    assert!(stderr.contains(&named) && stderr.contains("is not a regular file (it is a FIFO)"), "{stderr}");
    std::fs::remove_file(&leases).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &leases).unwrap();
    let (code, stderr) = serve();
    assert_eq!(code, Some(1), "/dev/zero: {stderr}");
    assert!(stderr.contains(&named) && stderr.contains("(it is a character device)"), "{stderr}");
    std::fs::remove_file(&leases).unwrap();
    // A 50 MB file is too big to be a lease file; a 20 MB MAC makes a line no lease has. Both
    // messages are short.
    for (mb, says) in [(50, "more than any lease file can be"), (20, "bytes long, which no lease is")] {
        let huge = "0".repeat(mb << 20);
        std::fs::write(&leases, format!("[[lease]]\nmac = \"{huge}\"\nip = \"10.77.0.100\"\nexpires = 1\n")).unwrap();
        let (code, stderr) = serve();
        assert_eq!(code, Some(1), "a {mb} MB MAC: {}", &stderr[..stderr.len().min(2000)]);
        assert!(stderr.len() < 2000, "a {} byte message", stderr.len());
        assert!(stderr.contains(&named) && stderr.contains(says), "{stderr}");
    }
}

/// Pi-shaped DISCOVERs take pool addresses only for the boot hold (here 30 s), not for a lease
/// time, and write nothing to disk; the one whose Linux REQUESTs its offer keeps it as a lease.
#[test]
fn pi_discovers_hold_the_pool_only_for_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let root = tftp_root(work.path());
    let lab = Lab::new("pihold");
    let leases = work.path().join("leases.toml");
    let config = work.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "lab = {root:?}\ninterface = \"veth0\"\n[tftp]\nroot_dirs = [\".\"]\n[dhcp]\nmode = \"server\"\nanswer = \"pis\"\nrange = \"10.77.0.100-10.77.0.102\"\nboot_hold_secs = 30\nlease_file = {:?}\n",
            path_str(&leases)
        ),
    )
    .unwrap();
    let mut daemon = NsDaemon::start(&lab.server, &["--config", path_str(&config)]);
    let mut pi3 = vec![0u8];
    pi3.extend([0x44; 16]);
    // Four Pi 3 ROMs at once (b8:27:eb:00:01:00…03): three offers, then the pool is empty.
    let mut storm = pi_discover("b8:27:eb:00:01:00", 0x3300, &pi3, true);
    storm.push("count=4".into());
    let seen = scapy(&lab, "eth0", &storm);
    let offered: Vec<(String, [u8; 4])> =
        seen.iter().map(|s| (hex(&s.payload[28..34]), s.payload[16..20].try_into().unwrap())).collect();
    assert_eq!(offered.len(), 3, "{offered:?}");
    for s in &seen {
        assert_pi_reply(&s.payload, 2, Some(&pi3));
    }
    assert_eq!(daemon.wait_log("the pool is exhausted", 1).len(), 1, "{:#?}", daemon.log());
    // The first one's Linux REQUESTs its address: a lease.
    let (mac0, ip0) = &offered[0];
    let mac0 = (0..6).map(|i| &mac0[2 * i..2 * i + 2]).collect::<Vec<_>>().join(":");
    let request = vec![format!("mac={mac0}"), "xid=0x3301".into(), opt(53, &[3]), opt(54, &SERVER), opt(50, ip0)];
    let seen = scapy(&lab, "eth0", &request);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((find_option(&seen[0].payload, 53).unwrap(), &seen[0].payload[16..20]), (&[5u8][..], &ip0[..]));
    // Meanwhile a plain client finds the pool held; once the hold is over, it gets one of the
    // two unconfirmed addresses (never the leased one).
    let plain = |n: u32| {
        let args = vec!["mac=02:00:00:00:01:99".to_string(), format!("xid={n:#x}"), opt(53, &[1]), "wait=1".into()];
        scapy(&lab, "eth0", &args)
    };
    assert!(plain(1).is_empty(), "answered while the Pis hold the pool");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let got = loop {
        let seen = plain(2);
        if let Some(s) = seen.first() {
            break <[u8; 4]>::try_from(&s.payload[16..20]).unwrap();
        }
        assert!(std::time::Instant::now() < until, "the pool stayed exhausted: {:#?}", daemon.log());
    };
    assert!(offered[1..].iter().any(|(_, ip)| *ip == got) && got != *ip0, "{got:?} {offered:?}");
    assert!(daemon.stop());
    let saved = std::fs::read_to_string(&leases).unwrap();
    assert_eq!(saved.matches("[[lease]]").count(), 1, "only the confirmed lease is saved: {saved}");
    assert!(saved.contains(&mac0), "{saved}");
}
