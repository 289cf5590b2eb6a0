#!/usr/bin/env python3
"""Building the server image from a warm cache for a 2 GiB OS image, against the floor.

The OS is a 2 GiB Raspberry-Pi-OS-shaped image made once with the real tools (the files of
benches/image_read.py's image, plus the accounts, os-release and dpkg status an OS root has) and
kept in target/bench-data; it is served with the pinned bootloader releases on 127.0.0.1. The
NFS server's packages are resolved once against Debian's archive (the warm-up run) and pinned.
The floor is what any tool that turns that .img.xz into a server .img.xz must do at least, in
the same run: decompress the input (`xz -dc -T0 IMG.xz > /dev/null`) and compress an image of
the output's size (`xz -T0 -6 --block-size=16MiB` of bramble's own server.img), the two times
added. bramble's wall time and peak RSS (GNU time's %M) are for `bramble build --server-image`
with everything fetched already, median of REPEAT runs.

Usage: benches/server_image.py BRAMBLE_BINARY AARCH64_BRAMBLE
"""

import functools
import http.server
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

REPEAT = 3
TARGET_RATIO = 1.5
TARGET_RSS_MIB = 1024
HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.path.join("target", "bench-data", "pi-os-2g-server-v2.img.xz")
FIXTURES = os.environ.get("BRAMBLE_FIXTURES", os.path.join(HERE, "..", "..", "shared", "fixtures", "eeprom"))
RPI_EEPROM = "https://raw.githubusercontent.com/raspberrypi/rpi-eeprom"
EEPROM_2711 = "d83d30ceccb218901a59e5c831cd3cd8df7c8c46/firmware-2711/default"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def timed(cmd, **kw):
    """(wall seconds, peak RSS MiB) of one run, from GNU time."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%e %M", *cmd], check=True, **kw)
        wall, rss = out.read().split()[-2:]
    return float(wall), int(rss) / 1024


def make_image():
    """image_read.py's 2 GiB image, with what an OS root has in /etc and /var/lib/dpkg."""
    sys.path.insert(0, HERE)
    import image_read
    original = image_read.fill_root

    def fill(root):
        original(root)
        files = {
            "etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
            "etc/rpi-issue": "Raspberry Pi reference 2025-11-24\n",
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
            "etc/group": "root:x:0:\nsudo:x:27:\nshadow:x:42:\n",
            "etc/shadow": "root:*:20000:0:99999:7:::\n",
            "etc/fstab": "proc /proc proc defaults 0 0\n",
            "var/lib/dpkg/status": "",
        }
        for rel, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
    original_boot = image_read.fill_boot

    def fill_boot(boot):
        # What the lab's Pi 4 needs from the OS's boot partition (the build checks for it).
        original_boot(boot)
        r = random.Random(7)
        for name, size in (("start4.elf", 2 << 20), ("fixup4.dat", 5 << 10), ("bcm2711-rpi-4-b.dtb", 52 << 10),
                           ("kernel8.img", 9 << 20)):
            with open(os.path.join(boot, name), "wb") as f:
                f.write(r.randbytes(size))
        with open(os.path.join(boot, "config.txt"), "w") as f:
            f.write("arm_64bit=1\n")
        with open(os.path.join(boot, "cmdline.txt"), "w") as f:
            f.write("console=serial0,115200 root=PARTUUID=1b2c3d4e-02 rootfstype=ext4 rootwait\n")
    image_read.fill_root = fill
    image_read.fill_boot = fill_boot
    image_read.IMAGE = IMAGE
    image_read.make_image()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bramble, daemon = (os.path.abspath(a) for a in sys.argv[1:])
    if not os.path.exists(IMAGE):
        make_image()
    with tempfile.TemporaryDirectory(dir="target") as work:
        site = os.path.join(work, "site")
        os.makedirs(os.path.join(site, "rpi-eeprom", EEPROM_2711))
        shutil.copy(IMAGE, os.path.join(site, "os.img.xz"))
        for n in ("pieeprom-2026-05-17.bin", "recovery.bin"):
            shutil.copy(os.path.join(FIXTURES, "firmware-2711", "default", n), os.path.join(site, "rpi-eeprom", EEPROM_2711))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=site))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        sha = subprocess.run(["sha256sum", IMAGE], check=True, capture_output=True, text=True).stdout.split()[0]
        recipe = os.path.join(work, "lab.toml")
        with open(recipe, "w") as f:
            f.write(f"[lab]\nname = \"bench\"\nsource_date_epoch = 1767225600\n\n[os]\nurl = \"{base}/os.img.xz\"\n"
                    f"sha256 = \"{sha}\"\n\n[server]\naddress = \"10.42.0.1/24\"\n\n"
                    "[[client]]\nname = \"node1\"\nmodel = \"pi4\"\nserial = \"00000001\"\n")
        cmd = [bramble, "-q", "build", recipe, "-o", os.path.join(work, "out"), "--server-image", "--daemon", daemon,
               "--cache", os.path.join(work, "cache"), "--mirror", f"{RPI_EEPROM}={base}/rpi-eeprom"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm: fetch and pin everything
        runs = [timed(cmd, stdout=subprocess.DEVNULL) for _ in range(REPEAT)]
        img = os.path.join(work, "out", "server.img")
        decompress = statistics.median(timed(["sh", "-c", f"xz -dc -T0 {IMAGE} > /dev/null"])[0] for _ in range(REPEAT))
        compress = statistics.median(
            timed(["sh", "-c", f"xz -T0 -6 --block-size=16MiB -c {img} > /dev/null"])[0] for _ in range(REPEAT))
        server.shutdown()
        floor = decompress + compress
        wall = statistics.median(w for w, _ in runs)
        rss = max(m for _, m in runs)
        size = os.path.getsize(img) >> 20
        print(f"server image from a 2 GiB OS image ({size} MiB image), median of {REPEAT}, {os.cpu_count()} CPUs")
        print("| | wall (s) | × floor | peak RSS (MiB) |")
        print("|---|---|---|---|")
        print(f"| floor: xz -dc -T0 of the input | {decompress:.1f} | | |")
        print(f"| floor: xz -T0 -6 of the output | {compress:.1f} | | |")
        print(f"| floor, both | {floor:.1f} | 1.00 | |")
        print(f"| bramble build --server-image | {wall:.1f} | {wall / floor:.2f} | {rss:.0f} |")
        print(f"target: <= {TARGET_RATIO}x floor: {wall / floor:.2f}x ({'met' if wall / floor <= TARGET_RATIO else 'NOT met'}); "
              f"peak RSS <= {TARGET_RSS_MIB} MiB: {rss:.0f} ({'met' if rss <= TARGET_RSS_MIB else 'NOT met'})")


if __name__ == "__main__":
    main()
