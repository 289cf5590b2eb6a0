#!/usr/bin/env python3
"""What each client of a lab costs: `bramble build` of 1, 10 and 100 Pi 4 clients.

The lab's OS is a small Raspberry-Pi-OS-shaped image made here with the real tools (Python's
tarfile, mke2fs -d, mformat/mcopy, sfdisk, xz), served with the pinned bootloader releases
(from ../shared/fixtures/eeprom) by an HTTP server on 127.0.0.1, so the shared part of the
build is the same for every size and the difference is the clients'. Each size is built REPEAT
times, taking turns; the table gives the median wall time and the lab's size on disk (du,
4 KiB blocks), and the cost of each client beyond the first. Two builds of the 100-client lab
into different folders must give the same manifest (every file's sha256).

Usage: benches/lab_scale.py BRAMBLE_BINARY
"""

import functools
import http.server
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

REPEAT = 7
SIZES = (1, 10, 100)
TARGET_MS = 50
TARGET_KIB = 64
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("BRAMBLE_FIXTURES", os.path.join(HERE, "..", "..", "shared", "fixtures", "eeprom"))
RPI_EEPROM = "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom"


def run(*args, **kw):
    subprocess.run(args, check=True, **kw)


def root_tar(path):
    def add(tar, name, kind, mode, data=b"", link=""):
        i = tarfile.TarInfo(name)
        i.type, i.mode, i.mtime, i.linkname = kind, mode, 1_732_406_400, link
        if kind == tarfile.REGTYPE:
            i.size = len(data)
            tar.addfile(i, io.BytesIO(data))
        else:
            tar.addfile(i)
    D, F, L = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in [".", "bin", "boot", "boot/firmware", "etc", "etc/ssh", "home", "tmp", "usr", "usr/lib",
                  "usr/lib/systemd", "usr/lib/systemd/system", "var", "var/lib", "var/log", "var/tmp"]:
            add(tar, d, D, 0o755)
        add(tar, "usr/lib/os-release", F, 0o644, b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n")
        add(tar, "etc/os-release", L, 0o777, link="../usr/lib/os-release")
        add(tar, "etc/rpi-issue", F, 0o644, b"Raspberry Pi reference 2025-11-24\n")
        add(tar, "etc/passwd", F, 0o644, b"root:x:0:0:root:/root:/bin/bash\n")
        add(tar, "etc/group", F, 0o644, b"root:x:0:\nsudo:x:27:\n")
        add(tar, "etc/shadow", F, 0o640, b"root:*:20000:0:99999:7:::\n")
        add(tar, "etc/fstab", F, 0o644, b"proc /proc proc defaults 0 0\n")
        add(tar, "bin/bash", F, 0o755, b"bash")
        for n in range(2000):  # a root of some size, shared by every client
            add(tar, f"usr/lib/f{n:04d}", F, 0o644, os.urandom(1024))


def make_image(work):
    boot = os.path.join(work, "boot")
    os.makedirs(boot)
    files = {"config.txt": b"arm_64bit=1\n", "cmdline.txt": b"console=tty1 root=PARTUUID=1b2c3d4e-02 rootwait\n",
             "start4.elf": os.urandom(200_000), "fixup4.dat": os.urandom(5000),
             "bcm2711-rpi-4-b.dtb": os.urandom(50_000), "kernel8.img": os.urandom(500_000)}
    for name, data in files.items():
        with open(os.path.join(boot, name), "wb") as f:
            f.write(data)
    tar = os.path.join(work, "root.tar")
    root_tar(tar)
    bootfs, rootfs, img = (os.path.join(work, n) for n in ("boot.img", "root.img", "pi.img"))
    with open(bootfs, "wb") as f:
        f.truncate(64 << 20)
    run("mformat", "-i", bootfs, "-F", "-v", "bootfs", "::")
    run("mcopy", "-i", bootfs, *[os.path.join(boot, n) for n in sorted(files)], "::")
    run("mke2fs", "-q", "-F", "-t", "ext4", "-L", "rootfs", "-d", tar, rootfs, "64M")
    with open(img, "wb") as f:
        f.truncate((16384 + 131072 + 131072 + 2048) * 512)
    table = "label: dos\nlabel-id: 0x1b2c3d4e\nstart=16384, size=131072, type=c\nstart=147456, size=131072, type=83\n"
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", img, input=table.encode(), stdout=subprocess.DEVNULL)
    for part, start in ((bootfs, 16384), (rootfs, 147456)):
        run("dd", f"if={part}", f"of={img}", "bs=512", f"seek={start}", "conv=notrunc,sparse", "status=none")
    run("xz", "-T0", "-f", img)
    return img + ".xz"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root):
    handler = functools.partial(QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def recipe(url, sha, n):
    text = (f"[lab]\nname = \"scale\"\n\n[os]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n\n"
            "[server]\naddress = \"10.42.0.1/16\"\ndhcp = \"server\"\nrange = \"10.42.1.1-10.42.1.250\"\n")
    for i in range(n):
        text += f"\n[[client]]\nname = \"node{i + 1}\"\nmodel = \"pi4\"\nserial = \"{0x10000000 + i:08x}\"\n"
    return text


def du_kib(path):
    return int(subprocess.run(["du", "-sk", path], check=True, capture_output=True, text=True).stdout.split()[0])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bramble = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as work:
        site = os.path.join(work, "site")
        os.makedirs(site)
        os.makedirs(os.path.join(work, "img"))
        image = make_image(os.path.join(work, "img"))
        shutil.copy(image, os.path.join(site, "pi.img.xz"))
        # The Pi 4 bootloader release bramble pins (source/eeprom_release.rs), where --mirror
        # sends it.
        src = {
            "d83d30ceccb218901a59e5c831cd3cd8df7c8c46/firmware-2711/default": ("2711", ["pieeprom-2026-05-17.bin", "recovery.bin"]),
        }
        for rel, (chip, names) in src.items():
            dest = os.path.join(site, "rpi-eeprom", rel)
            os.makedirs(dest, exist_ok=True)
            for n in names:
                shutil.copy(os.path.join(FIXTURES, f"firmware-{chip}", "default", n), dest)
        server = serve(site)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        sha = subprocess.run(["sha256sum", image], check=True, capture_output=True, text=True).stdout.split()[0]
        cache = os.path.join(work, "cache")
        rows = {}
        for n in SIZES:
            d = os.path.join(work, f"lab{n}")
            os.makedirs(d)
            with open(os.path.join(d, "lab.toml"), "w") as f:
                f.write(recipe(f"{base}/pi.img.xz", sha, n))
            rows[n] = {"wall": [], "kib": None, "dir": d}
        cmd = lambda d, out: [bramble, "-q", "build", os.path.join(d, "lab.toml"), "-o", os.path.join(d, out),
                              "--cache", cache, "--mirror", f"{RPI_EEPROM}={base}/rpi-eeprom"]
        for n in SIZES:  # warm the cache and the lock
            subprocess.run(cmd(rows[n]["dir"], "warm"), check=True, stdout=subprocess.DEVNULL)
        for _ in range(REPEAT):
            for n in SIZES:
                t0 = time.monotonic()
                subprocess.run(cmd(rows[n]["dir"], "out"), check=True, stdout=subprocess.DEVNULL)
                rows[n]["wall"].append(time.monotonic() - t0)
        for n in SIZES:
            rows[n]["kib"] = du_kib(os.path.join(rows[n]["dir"], "out", "lab"))
        same = open(os.path.join(rows[100]["dir"], "warm", "manifest.json")).read() == \
            open(os.path.join(rows[100]["dir"], "out", "manifest.json")).read()
        print(f"lab build, median of {REPEAT} runs, {os.cpu_count()} CPUs")
        print("| clients | wall (s) | lab on disk (KiB) |")
        print("|---|---|---|")
        for n in SIZES:
            print(f"| {n} | {statistics.median(rows[n]['wall']):.3f} | {rows[n]['kib']} |")
        w1, w100 = statistics.median(rows[1]["wall"]), statistics.median(rows[100]["wall"])
        per_ms = (w100 - w1) / 99 * 1000
        per_kib = (rows[100]["kib"] - rows[1]["kib"]) / 99
        print(f"each client beyond the first: {per_ms:.1f} ms (target < {TARGET_MS}: {'met' if per_ms < TARGET_MS else 'NOT met'}), "
              f"{per_kib:.1f} KiB (target < {TARGET_KIB}: {'met' if per_kib < TARGET_KIB else 'NOT met'})")
        print(f"two builds of 100 clients into different folders: manifests {'identical' if same else 'DIFFER'}")
        server.shutdown()
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
