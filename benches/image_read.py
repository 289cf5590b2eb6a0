#!/usr/bin/env python3
"""Reading a 2 GiB Raspberry-Pi-OS-shaped .img.xz: bramble against `xz -dc -T0 IMG | sha256sum`.

The image is made once with the real tools (sfdisk, mformat/mcopy, mke2fs -d, xz -T0 -6, as
Raspberry Pi's own images are compressed) and kept in target/bench-data. Its files mix what a
real root holds: incompressible data (compressed modules, firmware), text-like data, and free
space. Each command runs REPEAT times, alternating, and the median wall time and the peak RSS
(GNU time's %M) are reported with the ratio to the floor measured in the same run.

Usage: benches/image_read.py BRAMBLE_BINARY
"""

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

GIB = 1 << 30
MIB = 1 << 20
REPEAT = 3
TARGET_RATIO = 1.2
TARGET_RSS_MIB = 512
DATA = os.path.join("target", "bench-data")
# Bump when the image recipe changes, so a stale image is not measured.
IMAGE = os.path.join(DATA, "pi-2g-v1.img.xz")


def run(*args, **kw):
    subprocess.run(args, check=True, **kw)


def fill_root(root):
    """About 1.2 GiB of files: 350 MiB incompressible, 850 MiB text-like, some empty files."""
    r = random.Random(2026)
    words = [b"raspberry", b"pi", b"kernel", b"initramfs", b"cmdline", b"boot", b"ext4", b"\n",
             b"/usr/lib/aarch64-linux-gnu/", b"libc.so.6", b"systemd", b"dpkg", b"{", b"}", b"=", b"0x"]
    pool = b" ".join(r.choice(words) for _ in range(3_000_000))
    made = 0
    n = 0
    while made < 1200 * MIB:
        d = os.path.join(root, "usr", "lib", f"d{n // 200:03d}")
        os.makedirs(d, exist_ok=True)
        size = int(r.expovariate(1 / (2 * MIB))) + 1
        with open(os.path.join(d, f"f{n:05d}"), "wb") as f:
            if n % 7 < 2:
                f.write(r.randbytes(size))
            else:
                off = r.randrange(len(pool) - size) if size < len(pool) else 0
                f.write((pool * (size // len(pool) + 1))[off:off + size])
        made += size
        n += 1


def fill_boot(boot):
    """40 MiB of incompressible kernels, as a Pi OS boot partition carries."""
    r = random.Random(5)
    for i in range(20):
        with open(os.path.join(boot, f"kernel{i}.img"), "wb") as f:
            f.write(r.randbytes(2 * MIB))


def make_image():
    os.makedirs(DATA, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DATA) as work:
        root = os.path.join(work, "root")
        boot = os.path.join(work, "boot")
        os.makedirs(root)
        os.makedirs(boot)
        print("bench: making the 2 GiB test image (once; several minutes)", file=sys.stderr)
        fill_root(root)
        fill_boot(boot)
        boot_start, boot_size = 16384, 512 * 2048  # sectors: 8 MiB, 512 MiB
        root_start = boot_start + boot_size
        root_size = (2 * GIB // 512) - root_start - 2048
        bootfs, rootfs, img = (os.path.join(work, n) for n in ("boot.img", "root.img", "pi.img"))
        with open(bootfs, "wb") as f:
            f.truncate(boot_size * 512)
        run("mformat", "-i", bootfs, "-F", "-v", "bootfs", "::")
        run("mcopy", "-s", "-i", bootfs, *[os.path.join(boot, n) for n in sorted(os.listdir(boot))], "::")
        run("mke2fs", "-q", "-F", "-t", "ext4", "-L", "rootfs", "-d", root, rootfs, f"{root_size // 2}k")
        with open(img, "wb") as f:
            f.truncate((root_start + root_size + 2048) * 512)
        table = (f"label: dos\nlabel-id: 0x1b2c3d4e\nstart={boot_start}, size={boot_size}, type=c\n"
                 f"start={root_start}, size={root_size}, type=83\n")
        run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", img, input=table.encode(), stdout=subprocess.DEVNULL)
        for part, start in ((bootfs, boot_start), (rootfs, root_start)):
            run("dd", f"if={part}", f"of={img}", "bs=1M", f"seek={start * 512}", "oflag=seek_bytes",
                "conv=notrunc,sparse", "status=none")
        run("xz", "-T0", "-6", "-f", img)
        os.replace(img + ".xz", IMAGE)


def measure(cmd):
    """(wall seconds, peak RSS in KiB) of one run, from GNU time."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%e %M", *cmd], check=True,
                       stdout=subprocess.DEVNULL)
        wall, rss = out.read().split()[-2:]
    return float(wall), int(rss)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bramble = sys.argv[1]
    if not os.path.exists(IMAGE):
        make_image()
    floor_cmd = ["bash", "-c", f"xz -dc -T0 {IMAGE} | sha256sum"]
    want = subprocess.run(floor_cmd, check=True, capture_output=True, text=True).stdout.split()[0]
    commands = {
        "xz -dc -T0 | sha256sum": floor_cmd,
        "bramble inspect --sha256": [bramble, "-q", "inspect", IMAGE, "--sha256", want],
        "bramble extract rootfs:/ --tar /dev/null": [bramble, "-q", "extract", IMAGE, "rootfs:/", "--tar", "/dev/null"],
    }
    results = {name: [] for name in commands}
    for _ in range(REPEAT):
        for name, cmd in commands.items():
            results[name].append(measure(cmd))
    size = os.path.getsize(IMAGE)
    print(f"image: {IMAGE}, {size / MIB:.0f} MiB compressed, 2048 MiB uncompressed; "
          f"median of {REPEAT} runs, {os.cpu_count()} CPUs")
    floor = statistics.median(w for w, _ in results["xz -dc -T0 | sha256sum"])
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        rss = max(m for _, m in runs) / 1024
        print(f"  {name:<44} {wall:7.2f} s  {2048 / wall:6.0f} MiB/s  {wall / floor:5.2f}x floor  peak RSS {rss:6.1f} MiB")
    wall = statistics.median(w for w, _ in results["bramble inspect --sha256"])
    rss = max(m for _, m in results["bramble inspect --sha256"]) / 1024
    ratio = wall / floor
    print(f"target: decompress+verify <= {TARGET_RATIO}x floor: {ratio:.2f}x "
          f"({'met' if ratio <= TARGET_RATIO else 'NOT met'}); peak RSS < {TARGET_RSS_MIB} MiB: {rss:.0f} MiB "
          f"({'met' if rss < TARGET_RSS_MIB else 'NOT met'})")


if __name__ == "__main__":
    if shutil.which("/usr/bin/time") is None:
        sys.exit("bench: GNU time is missing (apt-get install time; `just bench` installs it)")
    main()
