#!/usr/bin/python3
"""Crash-test client for bramble's DHCP server, playing a relay (from port 67, giaddr = its
address, so replies come back unicast to it), on plain sockets so that it starts fast:

1. For each `mac ip` line of CHECK (leases ACKed before), a client with another MAC (the first
   byte 06) REQUESTs that address: the server must NAK it (held), not ACK it (lost). Prints
   `HELD ip` or `LOST ip` (or `SILENT ip` if nothing came back).
2. For each `mac ip` line of BURST, a REQUEST (INIT-REBOOT style, no server id), all at once;
   after KILL_AFTER ACKs have arrived, SIGKILL to PID (0: none), then 0.3 s more for ACKs that
   were already on their way. Prints `ACK mac ip` for every ACK seen.

Usage: dhcp_burst.py RELAY_IP SERVER_IP CHECK BURST PID KILL_AFTER
"""

import os
import select
import socket
import struct
import sys
import time


def request(mac, ip, xid, relay):
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, xid, 0, 0, bytes(4), bytes(4), bytes(4),
        socket.inet_aton(relay), mac + bytes(10), bytes(64), bytes(128),
    )
    opts = b"\x63\x82\x53\x63\x35\x01\x03" + b"\x32\x04" + socket.inet_aton(ip) + b"\xff"
    return head + opts


def kind_of(data):
    i = 240
    while i + 1 < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        if data[i] == 53:
            return data[i + 2]
        i += 2 + data[i + 1]
    return 0


def lines(path):
    with open(path) as f:
        return [tuple(l.split()) for l in f if l.strip()]


def exchange(sock, server, packets, until_count, deadline, on_reply):
    """Send all packets, then hand replies (xid, kind, yiaddr) to on_reply until it has been
    called until_count() times or the deadline passes."""
    for p in packets:
        sock.sendto(p, (server, 67))
    seen = 0
    while seen < until_count() and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            continue
        data, _ = sock.recvfrom(2048)
        if len(data) < 240 or data[0] != 2:
            continue
        xid = struct.unpack("!I", data[4:8])[0]
        if on_reply(xid, kind_of(data), socket.inet_ntoa(data[16:20])):
            seen += 1


def main():
    relay, server, check, burst, pid, kill_after = sys.argv[1:7]
    pid, kill_after = int(pid), int(kill_after)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((relay, 67))

    held = {}
    checks = lines(check)
    by_xid = {0x7000_0000 + n: ip for n, (_, ip) in enumerate(checks)}

    def on_check(xid, kind, _):
        if xid in by_xid and xid not in held:
            held[xid] = "HELD" if kind == 6 else "LOST" if kind == 5 else f"KIND{kind}"
            return True
        return False

    packets = []
    for n, (mac, ip) in enumerate(checks):
        other = bytes([0x06]) + bytes.fromhex(mac.replace(":", ""))[1:]
        packets.append(request(other, ip, 0x7000_0000 + n, relay))
    # In chunks, so that the replies fit the socket's receive buffer.
    for at in range(0, len(packets), 100):
        chunk = packets[at : at + 100]
        exchange(sock, server, chunk, lambda: len(chunk), time.monotonic() + 10, on_check)
    for xid, ip in by_xid.items():
        print(f"{held.get(xid, 'SILENT')} {ip}", flush=True)

    acks = {}
    wanted = lines(burst)
    xids = {0x6000_0000 + n: (mac, ip) for n, (mac, ip) in enumerate(wanted)}

    def on_ack(xid, kind, yiaddr):
        if kind == 5 and xid in xids and xid not in acks:
            acks[xid] = yiaddr
            return True
        return False

    packets = [request(bytes.fromhex(mac.replace(":", "")), ip, xid, relay) for xid, (mac, ip) in xids.items()]
    exchange(sock, server, packets, lambda: kill_after, time.monotonic() + 10, on_ack)
    if pid:
        os.kill(pid, 9)
        exchange(sock, server, [], lambda: len(wanted), time.monotonic() + 0.3, on_ack)
    for xid, yiaddr in acks.items():
        print(f"ACK {xids[xid][0]} {yiaddr}", flush=True)


if __name__ == "__main__":
    main()
