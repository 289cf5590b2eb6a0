#!/usr/bin/env bash
# A PC network-boots through `bramble serve` for real: QEMU (TCG) with SeaBIOS and QEMU's iPXE
# NIC ROM (FIRMWARE=bios), or OVMF with EDK2's own PXE and no option ROM (FIRMWARE=uefi), gets
# pxelinux.0 or syslinux.efi, a Debian kernel and a busybox initramfs over bramble's TFTP, and
# the initramfs prints a marker on the serial console.
#   MODE=proxy: dnsmasq in netns "lan" is the network's plain DHCP server, bramble the proxy.
#   MODE=server: bramble alone.
# Env: BRAMBLE (the binary), MODE, FIRMWARE, TIMEOUT (s), E2E_CACHE (kernel .deb cache).
# Prints "RESULT: PASS" or "RESULT: FAIL"; removes its namespaces and files (kept on failure).
# Needs root and the packages `just setup` installs (qemu-system-x86, ovmf, ipxe-qemu, pxelinux,
# syslinux-common, syslinux-efi, busybox-static, cpio, dnsmasq-base).
set -euo pipefail
: "${BRAMBLE:?set BRAMBLE to the bramble binary}"
MODE=${MODE:-proxy}
FIRMWARE=${FIRMWARE:-bios}
TIMEOUT=${TIMEOUT:-240}
E2E_CACHE=${E2E_CACHE:-/var/cache/e2e-pxe}
NS=bvm-s-$$
LAN_NS=bvm-l-$$
WORK=$(mktemp -d /tmp/bramble-vm.XXXXXX)
MARKER="BRAMBLE-VM-$MODE-$FIRMWARE-$$-$RANDOM"
PIDS=()
KEEP=0
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  ip netns del "$NS" 2>/dev/null; ip netns del "$LAN_NS" 2>/dev/null
  if [ "$KEEP" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# A Debian kernel (downloaded once into the cache) and a busybox initramfs.
mkdir -p "$E2E_CACHE"
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ && !f {print $2; f=1}')
ls "$E2E_CACHE"/"${KPKG}"_*_amd64.deb >/dev/null 2>&1 || (cd "$E2E_CACHE" && apt-get download "$KPKG" >/dev/null 2>&1)
mkdir -p "$WORK/k"
dpkg-deb --fsys-tarfile "$E2E_CACHE"/"${KPKG}"_*_amd64.deb | tar -x -C "$WORK/k" --wildcards './boot/vmlinuz-*'
TFTP=$WORK/tftp
mkdir -p "$TFTP/pxelinux.cfg" "$WORK/ir/bin" "$WORK/ir/dev" "$WORK/ir/proc" "$WORK/ir/sys"
cp "$WORK"/k/boot/vmlinuz-* "$TFTP/vmlinuz"
cp /usr/lib/PXELINUX/pxelinux.0 /usr/lib/syslinux/modules/bios/ldlinux.c32 "$TFTP/"
cp /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi /usr/lib/syslinux/modules/efi64/ldlinux.e64 "$TFTP/"
cp /bin/busybox "$WORK/ir/bin/busybox"
mknod -m 600 "$WORK/ir/dev/console" c 5 1
printf '#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null\necho "%s" > /dev/ttyS0\n/bin/busybox poweroff -f\n' "$MARKER" > "$WORK/ir/init"
chmod 755 "$WORK/ir/init"
(cd "$WORK/ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$TFTP/initrd.img"
printf 'SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND console=ttyS0,115200 panic=-1 loglevel=4\n' > "$TFTP/pxelinux.cfg/default"
chmod -R a+rX "$TFTP"

# One bridge in netns $NS: bramble on br0 (10.77.0.1), the VM's tap, and in proxy mode a veth to
# netns $LAN_NS where dnsmasq (10.77.0.2) hands out addresses and knows nothing about booting.
for n in "$NS" "$LAN_NS"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add 10.77.0.1/24 dev br0
ip -n "$NS" link set br0 up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" link set tap0 master br0 up
if [ "$MODE" = proxy ]; then
  ip -n "$NS" link add lan0 type veth peer name eth0 netns "$LAN_NS"
  ip -n "$NS" link set lan0 master br0 up
  ip -n "$LAN_NS" addr add 10.77.0.2/24 dev eth0
  ip -n "$LAN_NS" link set eth0 up
  ip netns exec "$LAN_NS" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
    --user=root --group=root --interface=eth0 --bind-interfaces --no-ping \
    --dhcp-range=10.77.0.100,10.77.0.149,255.255.255.0,1h --dhcp-leasefile="$WORK/lan.leases" \
    --pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/lan.log" &
  PIDS+=($!)
fi
cat > "$WORK/daemon.toml" <<TOML
lab = "$TFTP"
interface = "br0"
[tftp]
root_dirs = ["."]
[dhcp]
mode = "$MODE"
answer = "all"
range = "10.77.0.150-10.77.0.199"
lease_file = "leases.toml"
[boot]
bios = "pxelinux.0"
ipxe = "pxelinux.0"
uefi_x64 = "syslinux.efi"
TOML
ip netns exec "$NS" "$BRAMBLE" -v serve --config "$WORK/daemon.toml" > "$WORK/bramble.log" 2>&1 &
PIDS+=($!)
sleep 0.5

case $FIRMWARE in
  bios) FW=(-machine pc -boot n); NIC="virtio-net-pci,netdev=n0,mac=52:54:00:77:00:50" ;;
  uefi) cp /usr/share/OVMF/OVMF_VARS_4M.fd "$WORK/vars.fd"
        FW=(-machine q35
            -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
            -drive if=pflash,format=raw,file="$WORK/vars.fd")
        NIC="virtio-net-pci,netdev=n0,mac=52:54:00:77:00:50,bootindex=1,romfile=" ;;
esac
T0=$(date +%s)
ip netns exec "$NS" timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 1024 -smp 1 \
  "${FW[@]}" -nographic -no-reboot \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "$NIC" \
  </dev/null >"$WORK/serial.log" 2>&1 || true
echo "----- bramble -----"; grep -E ' dhcp |tftp transfer' "$WORK/bramble.log" | grep -v -e 'file not found' -e ' DEBUG ' | head -n 20 || true
if [ "$MODE" = proxy ]; then
  echo "lan dnsmasq acks: $(grep -c 'DHCPACK' "$WORK/lan.log" || true)"
  # The firmware's REQUEST for dnsmasq's address names dnsmasq: bramble must leave it alone.
  echo "bramble proxy acks: $(grep -c 'outcome=ack (proxy)' "$WORK/bramble.log" || true)"
  echo "bramble left to the router: $(grep -c 'outcome=ignored: it chose server 10.77.0.2' "$WORK/bramble.log" || true)"
fi
if grep -q "$MARKER" "$WORK/serial.log"; then
  echo "RESULT: PASS mode=$MODE firmware=$FIRMWARE seconds=$(( $(date +%s) - T0 ))"
else
  echo "----- serial (tail) -----"; tr -d '\r' < "$WORK/serial.log" | tail -n 20
  echo "RESULT: FAIL mode=$MODE firmware=$FIRMWARE"; KEEP=1; exit 1
fi
