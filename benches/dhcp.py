#!/usr/bin/python3
"""DHCP benchmark: bramble against dnsmasq 2.90, in the same run, in network namespaces this
script creates (and removes, also on failure).

(a) Server mode with lease persistence on, driven by perfdhcp (Debian's kea-admin) as a relay
    (it sends from port 67 with giaddr = its address, so replies go to giaddr:67): offered
    rates from 200 to 6000 DORA/s for 8 s each; achieved 4-way exchanges/s, drops and delays.
    dnsmasq runs with --no-ping (its ping check adds seconds per OFFER) and a lease limit big
    enough for the run; both start each round with no lease file.
(b) A storm: 100 Pi-shaped DISCOVERs (PXEClient vendor class, arch 0, a Pi 4 option 97) sent at
    once in proxy mode; every one must be answered with the Raspberry Pi boot menu; latency
    percentiles from send to reply. dnsmasq is set up as Raspberry Pi's tutorial says
    (dhcp-range=…,proxy and pxe-service=0,"Raspberry Pi Boot").

Usage: benches/dhcp.py BRAMBLE DNSMASQ    (`just bench` runs it; needs root)
Prints Markdown tables for docs/benchmarks.md.
"""

import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

PID = os.getpid()
SRV, CLI = f"bb-dhcp-s-{PID}", f"bb-dhcp-c-{PID}"
SERVER, CLIENT = "10.77.0.1", "10.77.0.2"
RANGE = ("10.77.1.0", "10.77.200.255")
RATES = [200, 1000, 3000, 6000, 10000]
SECONDS = 8
ROUNDS = 2
STORM = 100
STORM_ROUNDS = 5


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def netns_up():
    for ns in (SRV, CLI):
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", SRV, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", CLI)
    sh("ip", "-n", SRV, "addr", "add", f"{SERVER}/16", "dev", "veth0")
    sh("ip", "-n", CLI, "addr", "add", f"{CLIENT}/16", "dev", "eth0")
    sh("ip", "-n", CLI, "link", "set", "eth0", "address", "dc:a6:32:00:00:02")
    sh("ip", "-n", SRV, "link", "set", "veth0", "up")
    sh("ip", "-n", CLI, "link", "set", "eth0", "up")


def netns_down():
    for ns in (SRV, CLI):
        sh("ip", "netns", "del", ns, check=False)


class Server:
    def __init__(self, name, argv):
        self.name = name
        self.proc = subprocess.Popen(["ip", "netns", "exec", SRV] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.8)
        if self.proc.poll() is not None:
            raise SystemExit(f"{name} did not start: {argv}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(kind, mode, work, bramble, dnsmasq):
    leases = os.path.join(work, f"{kind}.leases")
    if os.path.exists(leases):
        os.remove(leases)
    tftp = os.path.join(work, "tftp")
    os.makedirs(tftp, exist_ok=True)
    if kind == "bramble":
        argv = [bramble, "-q", "serve", "--interface", "veth0", "--tftp-root", tftp, "--tftp-bind", f"{SERVER}:6969"]
        if mode == "server":
            argv += ["--dhcp", "server", "--range", f"{RANGE[0]}-{RANGE[1]}", "--lease-file", leases]
        else:
            argv += ["--dhcp", "proxy", "--answer", "pis"]
        return Server("bramble", argv)
    argv = [dnsmasq, "-k", "--conf-file=/dev/null", "--port=0", "--interface=veth0", "--bind-interfaces",
            "--user=root", "--group=root", f"--pid-file={work}/dnsmasq.pid", "--log-facility=/dev/null"]
    if mode == "server":
        argv += [f"--dhcp-range={RANGE[0]},{RANGE[1]},255.255.0.0,1h", f"--dhcp-leasefile={leases}",
                 "--no-ping", "--dhcp-authoritative", "--dhcp-lease-max=200000"]
    else:
        argv += ["--dhcp-range=10.77.0.0,proxy,255.255.0.0", "--pxe-service=0,Raspberry Pi Boot   "]
    return Server("dnsmasq 2.90", argv)


def perfdhcp(rate):
    out = sh("ip", "netns", "exec", CLI, "timeout", str(SECONDS + 20), "perfdhcp", "-4", "-l", CLIENT,
             "-r", str(rate), "-R", "40000", "-p", str(SECONDS), SERVER, check=False).stdout
    achieved = float(re.search(r"Rate: ([\d.]+) 4-way", out).group(1)) if "Rate:" in out else 0.0
    sections = out.split("***Statistics for: ")
    stats = {}
    for s in sections[1:]:
        name = s.split("***")[0]
        get = lambda key: float(re.search(rf"{key}: ([\d.]+)", s).group(1))
        stats[name] = {"sent": get("sent packets"), "received": get("received packets"), "avg": get("avg delay")}
    do, ra = stats.get("DISCOVER-OFFER"), stats.get("REQUEST-ACK")
    drops = 0.0
    if do and do["sent"]:
        drops = 100.0 * (1 - (ra["received"] if ra else 0) / do["sent"])
    return achieved, drops, (do or {}).get("avg", 0.0), (ra or {}).get("avg", 0.0)


STORM_CLIENT = r"""
import socket, struct, sys, time, json
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.bind(("0.0.0.0", 68))
s.settimeout(0.2)
def discover(i):
    mac = bytes([0xdc, 0xa6, 0x32, 0x10, i >> 8, i & 0xff])
    xid = 0x70000000 + i
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0, bytes(4), bytes(4), bytes(4), bytes(4),
                       mac + bytes(10), bytes(64), bytes(128))
    guid = b"\x00RPi4" + bytes([0, 0xc0, 0x31, 0x11]) + mac[2:] + struct.pack("!I", 0x10000 + i)
    opts = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + bytes([55, 14, 1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135])
    opts += b"\x5d\x02\x00\x00" + b"\x5e\x03\x01\x02\x01" + bytes([97, len(guid)]) + guid
    vendor = b"PXEClient:Arch:00000:UNDI:002001"
    opts += bytes([60, len(vendor)]) + vendor + b"\xff"
    return xid, head + opts
packets = [discover(i) for i in range(n)]
sent = {}
for xid, p in packets:
    sent[xid] = time.perf_counter()
    s.sendto(p, ("255.255.255.255", 67))
got = {}
deadline = time.perf_counter() + 5
while len(got) < n and time.perf_counter() < deadline:
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        continue
    now = time.perf_counter()
    if len(data) < 240 or data[0] != 2:
        continue
    xid = struct.unpack("!I", data[4:8])[0]
    if xid in sent and xid not in got and b"Raspberry Pi Boot" in data:
        got[xid] = (now - sent[xid]) * 1000
print(json.dumps(sorted(got.values())))
"""


def storm():
    out = sh("ip", "netns", "exec", CLI, "/usr/bin/python3", "-c", STORM_CLIENT, str(STORM)).stdout
    import json
    return json.loads(out)


def lease_count(kind, work):
    path = os.path.join(work, f"{kind}.leases")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        text = f.read()
    return text.count("[[lease]]") if kind == "bramble" else len(text.splitlines())


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    bramble, dnsmasq = sys.argv[1], sys.argv[2]
    for tool in ("perfdhcp", "ip"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing; `just bench` installs kea-admin (perfdhcp) and iproute2")
    work = tempfile.mkdtemp(prefix="bramble-dhcp-bench-")
    kinds = ["bramble", "dnsmasq"]
    results = {(k, r): [] for k in kinds for r in RATES}
    storms = {k: [] for k in kinds}
    stored = {}
    try:
        netns_up()
        for round_ in range(ROUNDS):
            for rate in RATES:
                for kind in kinds if round_ % 2 == 0 else reversed(kinds):
                    server = start(kind, "server", work, bramble, dnsmasq)
                    try:
                        results[(kind, rate)].append(perfdhcp(rate))
                    finally:
                        server.stop()
                    # Persistence was on: the leases must be on disk after the stop.
                    on_disk = lease_count(kind, work)
                    stored[(kind, rate)] = on_disk
                    print(f"# {kind} offered {rate}/s: {results[(kind, rate)][-1]}, {on_disk} leases on disk",
                          file=sys.stderr, flush=True)
        for round_ in range(STORM_ROUNDS):
            for kind in kinds if round_ % 2 == 0 else reversed(kinds):
                server = start(kind, "proxy", work, bramble, dnsmasq)
                try:
                    storms[kind].append(storm())
                finally:
                    server.stop()
                lat = storms[kind][-1]
                print(f"# storm {kind}: {len(lat)}/{STORM} answered, p99 {pct(lat, 99):.1f} ms", file=sys.stderr, flush=True)
    finally:
        netns_down()
        shutil.rmtree(work, ignore_errors=True)

    print("| offered DORA/s | bramble: exchanges/s | dnsmasq 2.90: exchanges/s | ratio | bramble drops | dnsmasq drops "
          "| bramble avg delay D-O / R-A (ms) | dnsmasq avg delay D-O / R-A (ms) | leases on disk after the last run, bramble / dnsmasq |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rate in RATES:
        b = [statistics.median(x) for x in zip(*results[("bramble", rate)])]
        d = [statistics.median(x) for x in zip(*results[("dnsmasq", rate)])]
        ratio = b[0] / d[0] if d[0] else float("inf")
        print(f"| {rate} | {b[0]:.0f} | {d[0]:.0f} | {ratio:.1f}× | {b[1]:.1f} % | {d[1]:.1f} % "
              f"| {b[2]:.2f} / {b[3]:.2f} | {d[2]:.2f} / {d[3]:.2f} "
              f"| {stored[('bramble', rate)]} / {stored[('dnsmasq', rate)]} |")
    print()
    print(f"| storm: {STORM} Pi DISCOVERs at once, proxy mode, {STORM_ROUNDS} runs | bramble | dnsmasq 2.90 |")
    print("|---|---|---|")
    answered = {k: min(len(r) for r in storms[k]) for k in kinds}
    print(f"| answered (worst run) | {answered['bramble']}/{STORM} | {answered['dnsmasq']}/{STORM} |")
    for p in (50, 99):
        vals = {k: statistics.median(pct(r, p) for r in storms[k]) for k in kinds}
        print(f"| p{p} latency, median of runs (ms) | {vals['bramble']:.1f} | {vals['dnsmasq']:.1f} |")
    worst = {k: max((max(r) if r else float('nan')) for r in storms[k]) for k in kinds}
    print(f"| max latency, worst run (ms) | {worst['bramble']:.1f} | {worst['dnsmasq']:.1f} |")


if __name__ == "__main__":
    main()
