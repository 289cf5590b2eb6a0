# Bramble's tasks. `just --list` shows them; README.md says which to run first.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where `just cross` puts the aarch64 daemon (the builder looks here by default).
cross_bin := "target/cross/aarch64-unknown-linux-gnu/release/bramble"

# Install what the build and the tests need (Debian 12+/Ubuntu 22.04+; idempotent, needs root or sudo).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    exec 1>&2   # stdout stays clean for recipes that print a result (`just cross`)
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    . /etc/os-release
    # e2fsprogs >= 1.47.1 (`mke2fs -d` from a tar, reproducible) and qemu 10 come from
    # bookworm-backports on Debian 12; newer releases have them in main.
    target=()
    if [ "${VERSION_CODENAME:-}" = bookworm ]; then
        list=/etc/apt/sources.list.d/bramble-backports.list
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo tee "$list" >/dev/null
            touch /tmp/bramble-apt-stale
        fi
        target=(-t bookworm-backports)
    fi
    # The aarch64 cross build uses Debian's rustc-web with the arm64 std (see `just cross`).
    # clippy and rustfmt for `just lint`, where rustup manages the toolchain.
    if command -v rustup >/dev/null && ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then
        rustup component add clippy rustfmt
    fi
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $sudo dpkg --add-architecture arm64
        touch /tmp/bramble-apt-stale
    fi
    pkgs=(
        build-essential pkg-config git curl wget xz-utils ca-certificates file
        dosfstools mtools fdisk libarchive13 libarchive-tools attr acl libcap2-bin python3
        # busybox-static: the PC boot test packs it into an initramfs (it provides busybox too).
        atftp tftp-hpa busybox-static
        iproute2 python3-scapy isc-dhcp-client dnsmasq-base
        ovmf ipxe-qemu pxelinux syslinux-common syslinux-efi cpio
        # xorriso: the PC menu test builds the ISO image memdisk boots.
        xorriso
        # The lab's end-to-end test: arm64 UEFI machines, a userspace NFS server, GRUB's checker.
        qemu-efi-aarch64 rpcbind grub-common arch-test
        gpgv debian-archive-keyring gnupg apt-utils zstd binutils
        # The disk-image tests: bmaptool judges our bmaps, sgdisk our GPTs.
        bmap-tools gdisk
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        rustc-web cargo-web libstd-rust-web-dev:arm64
    )
    # mmdebstrap builds the Debian root (unshare mode) with qemu-user-binfmt running its arm64
    # package scripts; nfs-ganesha serves the NFS root in the end-to-end test.
    backported=(e2fsprogs qemu-user qemu-user-binfmt qemu-system-x86 qemu-system-arm mmdebstrap nfs-ganesha nfs-ganesha-vfs)
    missing=()
    for p in "${pkgs[@]}" "${backported[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    e2fs=$(dpkg-query -W -f='${Version}' e2fsprogs 2>/dev/null || echo 0)
    dpkg --compare-versions "$e2fs" ge 1.47.1 || missing+=(e2fsprogs)
    if [ ${#missing[@]} -gt 0 ] || [ -e /tmp/bramble-apt-stale ]; then
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        rm -f /tmp/bramble-apt-stale
        $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
        $sudo apt-get install -y -qq --no-install-recommends "${target[@]}" "${backported[@]}"
    fi
    # arm64 programs through qemu-user: systemd registers binfmt_misc at boot; where nothing
    # does (containers, CI sandboxes), mount it and register qemu-aarch64 here.
    bfm=/proc/sys/fs/binfmt_misc
    if [ "$(uname -m)" != aarch64 ] && [ -r /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
        [ -e "$bfm/register" ] || $sudo mount -t binfmt_misc binfmt_misc "$bfm"
        [ -e "$bfm/qemu-aarch64" ] || grep -m1 -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | $sudo tee "$bfm/register" >/dev/null
    fi
    e2fs=$(dpkg-query -W -f='${Version}' e2fsprogs)
    if ! dpkg --compare-versions "$e2fs" ge 1.47.1; then
        echo "setup: e2fsprogs $e2fs is too old; bramble needs >= 1.47.1 (Debian 12: bookworm-backports)" >&2
        exit 1
    fi
    echo "setup: ok (e2fsprogs $e2fs, $(/usr/bin/rustc --version) for the aarch64 build)"

# Build a lab: the built-in default (Raspberry Pi OS Lite, four Pi 4s on proxyDHCP), or
# `just lab recipe=recipes/debian.toml` (or `just lab recipes/debian.toml`). Fetches its inputs,
# writes out/lab, out/manifest.json and the flashable server image out/server.img.xz (with the
# aarch64 daemon from `just cross`).
# just hands `recipe=…` after the task's name to it as its argument, so the `recipe=` is dropped.
lab recipe="": setup
    #!/usr/bin/env bash
    set -euo pipefail
    daemon=$(just cross)
    cargo build --locked --release >&2
    target/release/bramble build {{ trim_start_match(recipe, "recipe=") }} -o out --server-image --daemon "$daemon"

# Everything: unit, property, integration and end-to-end tests (installs what they need first).
# The EEPROM fixtures come first ($BRAMBLE_FIXTURES, ../shared/fixtures/eeprom, or the pinned
# files fetched by sha256 into the cache): without them the run stops here, saying what to do.
test: setup
    #!/usr/bin/env bash
    set -euo pipefail
    fixtures=$(cargo run --locked --example eeprom_fixtures)
    echo "test: EEPROM fixtures from $fixtures" >&2
    BRAMBLE_FIXTURES="$fixtures" cargo test --locked --all-targets

# A long run of the parser fuzzer (tests/fuzz.rs; `just test` runs it briefly): `just fuzz 200000`
# inputs per reader, from a new random seed each run (printed; BRAMBLE_FUZZ_SEED=N repeats one).
# Failing inputs land in target/fuzz-failures/; add each to tests/corpus/ with its fix.
fuzz iters="200000":
    #!/usr/bin/env bash
    set -euo pipefail
    seed=${BRAMBLE_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
    echo "fuzz: {{iters}} inputs per reader, BRAMBLE_FUZZ_SEED=$seed" >&2
    BRAMBLE_FUZZ_ITERS={{iters}} BRAMBLE_FUZZ_SEED=$seed cargo test --locked --release --test fuzz -- --nocapture

# Formatting and clippy, warnings are errors.
lint:
    cargo fmt --all --check
    cargo clippy --locked --all-targets -- -D warnings

# Build bramble for aarch64 (the daemon inside the server image) and print where it is.
cross: setup
    #!/usr/bin/env bash
    set -euo pipefail
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    # A separate target dir: the two toolchains would otherwise rebuild each other's host artifacts.
    args=(build --locked --release --target aarch64-unknown-linux-gnu --target-dir target/cross)
    if [ "${BRAMBLE_CROSS:-auto}" != debian ] && rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
        cargo "${args[@]}" >&2
    else
        RUSTC=/usr/bin/rustc /usr/bin/cargo "${args[@]}" >&2
    fi
    echo "{{cross_bin}}"

# Benchmarks against the field's peers, measured in the same run (needs root: port 69).
# Results and analysis: docs/benchmarks.md.
bench: setup
    #!/usr/bin/env bash
    set -euo pipefail
    # The peers' binaries are unpacked, not installed: installing would start their services.
    peers=target/bench-peers
    if [ ! -x "$peers/usr/sbin/atftpd" ] || [ ! -x "$peers/usr/sbin/in.tftpd" ] || [ ! -x "$peers/usr/sbin/dnsmasq" ]; then
        mkdir -p "$peers/debs"
        (cd "$peers/debs" && apt-get download tftpd-hpa atftpd dnsmasq-base 2>/dev/null)
        for deb in "$peers"/debs/*.deb; do dpkg-deb -x "$deb" "$peers"; done
    fi
    missing=()
    for p in libwrap0 libnetfilter-conntrack3 libnftables1 time kea-admin; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
    cargo bench --locked --bench tftp
    # DHCP: perfdhcp (kea-admin) in server mode and a 100-Pi storm in proxy mode, against dnsmasq.
    cargo build --locked --release
    python3 benches/dhcp.py target/release/bramble "$peers/usr/sbin/dnsmasq"
    # Reading a 2 GiB .img.xz against `xz -dc -T0 | sha256sum` (the image is made once).
    cargo build --locked --release
    python3 benches/image_read.py target/release/bramble
    # What each client of a lab costs to build (1, 10, 100 Pi 4s), and two builds compared.
    python3 benches/lab_scale.py target/release/bramble
    # The server image from a 2 GiB OS image, against decompressing the input and compressing the output.
    daemon=$(just cross)
    python3 benches/server_image.py target/release/bramble "$daemon"
