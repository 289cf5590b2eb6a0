#!/usr/bin/python3
"""A scriptable DHCP client for bramble's tests, on scapy: sends one BOOTP/DHCP message with
exactly the header fields and options given (so the tests can play a Pi 3/4/5 ROM, a PXE ROM
asking the boot server on 4011, a relay, or send garbage), then prints every UDP datagram that
arrives for the listening port within the wait, one line each:

    REPLY <src-ip>:<src-port> <dst-ip>:<dst-port> <payload-hex>

Or, with `dora count=N macbase=02:00:00:00:01:00 wait=S`: N clients (MACs counting up from
macbase) do DISCOVER/OFFER/REQUEST/ACK at once; prints `LEASE <mac> <ip>` per ACK.

Usage: dhcp_client.py IFACE key=value...
  mac=dc:a6:32:00:00:01 xid=0x26f30339 op=1 hops=0 flags=0 ciaddr= giaddr=
  opt=53:01 opt=60:<hex> ...   options in this order (then the end option), or
  raw=<hex>                    the whole UDP payload instead
  src=0.0.0.0 sport=68 dst=255.255.255.255 dport=67
  listen=68 wait=2             the port replies come to, and how long to wait for them
  l3=1                         send through the kernel's IP stack (a client with an address)
  count=1                      send it as that many clients at once: MAC and xid count up
"""

import sys
import threading
import time

from scapy.all import BOOTP, IP, UDP, Ether, Raw, AsyncSniffer, conf, get_if_hwaddr, send, sendp

conf.verb = 0
conf.checkIPaddr = False


def options_of(payload):
    """The options of a BOOTP payload, as {code: bytes}."""
    out, i = {}, 240
    while i < len(payload) and payload[i] != 255:
        if payload[i] == 0:
            i += 1
            continue
        code, length = payload[i], payload[i + 1]
        out[code] = payload[i + 2 : i + 2 + length]
        i += 2 + length
    return out


def message(mac, xid, opts):
    options = b"\x63\x82\x53\x63"
    for code, value in opts:
        options += bytes([code, len(value)]) + value
    options += b"\xff"
    chaddr = bytes.fromhex(mac.replace(":", "")) + b"\x00" * 10
    bootp = BOOTP(op=1, xid=xid, chaddr=chaddr, options=options)
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
    return frame / UDP(sport=68, dport=67) / Raw(bytes(bootp))


def dora(iface, args):
    count = int(args.get("count", "50"))
    base = int(args.get("macbase", "02:00:00:00:01:00").replace(":", ""), 16)
    macs = [":".join(f"{(base + n) >> s & 0xFF:02x}" for s in range(40, -8, -8)) for n in range(count)]
    xid_of = {mac: 0x5000_0000 + n for n, mac in enumerate(macs)}
    offers, acks = {}, {}

    def seen(p):
        if not (IP in p and UDP in p and p[UDP].dport == 68):
            return
        raw = bytes(p[UDP].payload)
        if len(raw) < 240 or raw[0] != 2:
            return
        mac = ":".join(f"{b:02x}" for b in raw[28:34])
        kind = options_of(raw).get(53, b"\x00")[0]
        yiaddr = ".".join(str(b) for b in raw[16:20])
        server = options_of(raw).get(54, b"")
        if kind == 2:
            offers[mac] = (yiaddr, server)
        elif kind == 5:
            acks[mac] = yiaddr

    listening = threading.Event()
    sniffer = AsyncSniffer(iface=iface, store=False, prn=seen, started_callback=listening.set)
    sniffer.start()
    listening.wait(10)
    wait = float(args.get("wait", "10"))
    sendp([message(m, xid_of[m], [(53, b"\x01"), (55, b"\x01\x03\x06")]) for m in macs], iface=iface)
    deadline = time.time() + wait
    while len(offers) < count and time.time() < deadline:
        time.sleep(0.05)
    requests = []
    for mac, (yiaddr, server) in offers.items():
        ip = bytes(int(x) for x in yiaddr.split("."))
        requests.append(message(mac, xid_of[mac], [(53, b"\x03"), (50, ip), (54, server)]))
    sendp(requests, iface=iface)
    while len(acks) < len(offers) and time.time() < deadline:
        time.sleep(0.05)
    sniffer.stop()
    for mac in macs:
        if mac in acks:
            print(f"LEASE {mac} {acks[mac]}", flush=True)


def main():
    iface = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "dora":
        return dora(iface, dict(kv.split("=", 1) for kv in sys.argv[3:]))
    args = {}
    opts = []
    for kv in sys.argv[2:]:
        key, value = kv.split("=", 1)
        if key == "opt":
            code, hexval = value.split(":", 1)
            opts.append((int(code), bytes.fromhex(hexval)))
        else:
            args[key] = value
    first_mac = args.get("mac", get_if_hwaddr(iface))
    listen = int(args.get("listen", "68"))
    count = int(args.get("count", "1"))
    base = int(first_mac.replace(":", ""), 16)
    macs = [":".join(f"{(base + n) >> s & 0xFF:02x}" for s in range(40, -8, -8)) for n in range(count)]
    packets = [packet(args, opts, mac, n) for n, mac in enumerate(macs)]
    ours = args.get("src", "0.0.0.0")
    # Our own datagram is seen leaving too; replies come from someone else.
    listening = threading.Event()
    sniffer = AsyncSniffer(
        iface=iface,
        store=True,
        lfilter=lambda p: IP in p and UDP in p and p[UDP].dport == listen and p[IP].src != ours,
        started_callback=listening.set,
    )
    sniffer.start()
    listening.wait(10)
    for mac, ip in zip(macs, packets):
        if args.get("l3") == "1":
            send(ip, iface=iface)
        else:
            sendp(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ip, iface=iface)
    time.sleep(float(args.get("wait", "2")))
    for p in sniffer.stop():
        raw = bytes(p[UDP].payload)
        print(f"REPLY {p[IP].src}:{p[UDP].sport} {p[IP].dst}:{p[UDP].dport} {raw.hex()}", flush=True)


def packet(args, opts, mac, n):
    """The IP datagram of the message, as client number `n` (its MAC `mac`, xid + n)."""
    if "raw" in args:
        payload = bytes.fromhex(args["raw"])
    else:
        options = b"\x63\x82\x53\x63"
        for code, value in opts:
            options += bytes([code, len(value)]) + value
        options += b"\xff"
        bootp = BOOTP(
            op=int(args.get("op", "1")),
            xid=int(args.get("xid", "0x26f30339"), 0) + n,
            hops=int(args.get("hops", "0")),
            flags=int(args.get("flags", "0"), 0),
            ciaddr=args.get("ciaddr", "0.0.0.0"),
            giaddr=args.get("giaddr", "0.0.0.0"),
            chaddr=bytes.fromhex(mac.replace(":", "")) + b"\x00" * 10,
            options=options,
        )
        payload = bytes(bootp)
    udp = UDP(sport=int(args.get("sport", "68")), dport=int(args.get("dport", "67"))) / Raw(payload)
    return IP(src=args.get("src", "0.0.0.0"), dst=args.get("dst", "255.255.255.255")) / udp


if __name__ == "__main__":
    main()
