#!/usr/bin/env python3
"""A TFTP read (RFC 1350: octet, 512-byte blocks, no options) that stops before acknowledging
block PAUSE_AT and goes on once the file GO exists (15 s at most): a transfer held in flight
for as long as a test needs. Writes what it received to OUT; prints `paused`, then `done N`.

usage: slow_tftp_get.py SERVER NAME OUT PAUSE_AT GO
"""
import os
import socket
import struct
import sys
import time

server, name, out, pause_at, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(30)
s.sendto(b"\x00\x01" + name.encode() + b"\x00octet\x00", (server, 69))
expected, data, peer = 1, bytearray(), None
while True:
    packet, sender = s.recvfrom(2048)
    (opcode,) = struct.unpack("!H", packet[:2])
    if opcode == 5:
        sys.exit("ERROR from the server: %r" % packet[4:])
    if opcode != 3:
        continue
    peer = peer or sender
    (block,) = struct.unpack("!H", packet[2:4])
    if block != expected & 0xFFFF:
        continue  # a retransmission of a block already acknowledged
    data += packet[4:]
    if expected == pause_at:
        print("paused", flush=True)
        until = time.time() + 15
        while not os.path.exists(go) and time.time() < until:
            time.sleep(0.01)
    s.sendto(struct.pack("!HH", 4, block), peer)
    expected += 1
    if len(packet) - 4 < 512:
        break
with open(out, "wb") as f:
    f.write(data)
print("done", len(data), flush=True)
