#!/usr/bin/env python3
"""A userspace stand-in for tc netem, for kernels built without it.

Forwards every frame received on interface A to interface B and back, with
per-direction loss, delay, reordering and duplication modelled on netem's
``loss P% delay Dms reorder R% C% duplicate U%``: a frame is dropped with
probability P; otherwise it is sent at once with probability R (correlated
with the previous decision by C, like netem's correlated generator) and
after D ms otherwise. Frames sent at once overtake delayed ones: that is the
reordering. A frame that is not dropped is sent twice with probability U,
the copy D ms after the original (or at once without a delay).

    impair.py --a sw-c --b imp-c --a2b loss=5,delay=1,reorder=25,corr=50,dup=2 \
              --b2a none --stats FILE [--seed N]

Runs until SIGTERM/SIGINT; writes counters to FILE at start and at exit.
Python standard library only.
"""

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 1 << 3


def parse_model(text):
    if text in ("", "none"):
        return None
    m = {"loss": 0.0, "delay": 0.0, "reorder": 0.0, "corr": 0.0, "dup": 0.0}
    for part in text.split(","):
        k, _, v = part.partition("=")
        if k not in m:
            raise SystemExit(f"impair.py: unknown model key {k!r}")
        m[k] = float(v)
    return m


def inet_sum(data):
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def fix_l4_checksum(frame):
    """Completes a CHECKSUM_PARTIAL TCP/UDP-over-IPv4 frame."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0xF) * 4
    total = struct.unpack("!H", frame[16:18])[0]
    proto = frame[23]
    l4 = bytearray(frame[14 + ihl:14 + total])
    if proto == 6 and len(l4) >= 20:
        off = 16
    elif proto == 17 and len(l4) >= 8:
        off = 6
    else:
        return frame
    l4[off:off + 2] = b"\0\0"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, proto, len(l4))
    c = fold(inet_sum(bytes(pseudo) + bytes(l4)))
    if proto == 17 and c == 0:
        c = 0xFFFF
    l4[off:off + 2] = struct.pack("!H", c)
    return frame[:14 + ihl] + bytes(l4) + frame[14 + total:]


def split_gso(frame, mtu):
    """Cuts a TCP/IPv4 super-frame (a GSO packet the sender's TSO would cut
    on a real NIC; AF_PACKET sees it whole) into segments that fill the MTU,
    as the kernel's GSO does for a sender whose segments fill it: the same
    headers, consecutive sequence numbers and IP ids, PSH/FIN on the last
    segment only, checksums complete. None if it is not TCP/IPv4."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 0xF) * 4
    t = 14 + ihl
    thl = (frame[t + 12] >> 4) * 4
    total = struct.unpack("!H", frame[16:18])[0]
    data = frame[t + thl:14 + total]
    size = mtu - ihl - thl
    if size <= 0:
        return None
    ip_id = struct.unpack("!H", frame[18:20])[0]
    seq = struct.unpack("!I", frame[t + 4:t + 8])[0]
    flags = frame[t + 13]
    out = []
    for i, off in enumerate(range(0, len(data), size)):
        chunk = data[off:off + size]
        ip = bytearray(frame[14:t])
        ip[2:4] = struct.pack("!H", ihl + thl + len(chunk))
        ip[4:6] = struct.pack("!H", (ip_id + i) & 0xFFFF)
        ip[10:12] = b"\0\0"
        ip[10:12] = struct.pack("!H", fold(inet_sum(bytes(ip))))
        tcp = bytearray(frame[t:t + thl])
        tcp[4:8] = struct.pack("!I", (seq + off) & 0xFFFFFFFF)
        f = flags
        if off + len(chunk) < len(data):
            f &= ~0x09  # PSH and FIN on the last segment only
        if off > 0:
            f &= ~0x80  # CWR on the first only
        tcp[13] = f
        out.append(fix_l4_checksum(bytes(frame[:14]) + bytes(ip) + bytes(tcp) + bytes(chunk)))
    return out


class Direction:
    def __init__(self, name, model, rnd):
        self.name = name
        self.model = model
        self.rnd = rnd
        self.last_now = 0.0  # netem-style correlated state for "send now"
        self.stats = {"in": 0, "dropped": 0, "immediate": 0, "delayed": 0, "out": 0, "send_errors": 0,
                      "oversize": 0, "csum_fixed": 0, "gso_split": 0, "duplicated": 0}

    def duplicate(self):
        """Whether a frame that is sent also goes out a second time."""
        m = self.model
        if m is None or not m["dup"] or self.rnd.random() * 100 >= m["dup"]:
            return False
        self.stats["duplicated"] += 1
        return True

    def decide(self):
        """Returns None (drop) or a delay in seconds."""
        m = self.model
        if m is None:
            return 0.0
        if m["loss"] and self.rnd.random() * 100 < m["loss"]:
            self.stats["dropped"] += 1
            return None
        if m["delay"] <= 0:
            self.stats["immediate"] += 1
            return 0.0
        if m["reorder"]:
            c = m["corr"] / 100.0
            u = self.rnd.random()
            v = c * self.last_now + (1 - c) * u
            self.last_now = v
            if v * 100 < m["reorder"]:
                self.stats["immediate"] += 1
                return 0.0
        self.stats["delayed"] += 1
        return m["delay"] / 1000.0


def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--a2b", default="none")
    ap.add_argument("--b2a", default="none")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mtu", type=int, default=1500)
    args = ap.parse_args()

    rnd = random.Random(args.seed)
    sa, sb = open_if(args.a), open_if(args.b)
    dirs = {sa.fileno(): (Direction("a2b", parse_model(args.a2b), rnd), sb),
            sb.fileno(): (Direction("b2a", parse_model(args.b2a), rnd), sa)}
    heap = []  # (due, seq, out_socket, direction, frame)
    seq = 0
    stop = [False]

    def on_signal(signum, frame):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def write_stats():
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            for fd, (d, _) in dirs.items():
                f.write(d.name + " " + " ".join(f"{k}={v}" for k, v in d.stats.items()) + "\n")
        os.replace(tmp, args.stats)

    write_stats()
    poller = select.poll()
    poller.register(sa, select.POLLIN)
    poller.register(sb, select.POLLIN)
    maxlen = args.mtu + 14

    def send(out, d, frame):
        try:
            out.send(frame)
            d.stats["out"] += 1
        except BlockingIOError:
            d.stats["send_errors"] += 1
        except OSError:
            d.stats["send_errors"] += 1

    while not stop[0]:
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, out, d, frame = heapq.heappop(heap)
            send(out, d, frame)
        timeout_ms = 200 if not heap else max(0, (heap[0][0] - time.monotonic()) * 1000)
        try:
            events = poller.poll(timeout_ms)
        except InterruptedError:
            continue
        for fd, _ in events:
            d, out = dirs[fd]
            s = sa if fd == sa.fileno() else sb
            for _ in range(256):
                try:
                    frame, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                d.stats["in"] += 1
                for level, typ, data in anc:
                    if level == SOL_PACKET and typ == PACKET_AUXDATA and len(data) >= 4:
                        status = struct.unpack("I", data[:4])[0]
                        if status & TP_STATUS_CSUMNOTREADY:
                            frame = fix_l4_checksum(frame)
                            d.stats["csum_fixed"] += 1
                frames = [frame]
                if len(frame) > maxlen:
                    frames = split_gso(frame, args.mtu)
                    if frames is None:
                        d.stats["oversize"] += 1
                        continue
                    d.stats["gso_split"] += 1
                # Each segment meets the loss model on its own, as on a wire.
                for frame in frames:
                    delay = d.decide()
                    if delay is None:
                        continue
                    if delay == 0:
                        send(out, d, frame)
                    else:
                        seq += 1
                        heapq.heappush(heap, (time.monotonic() + delay, seq, out, d, frame))
                    if d.duplicate():
                        later = d.model["delay"] / 1000.0
                        if later <= 0:
                            send(out, d, frame)
                        else:
                            seq += 1
                            heapq.heappush(heap, (time.monotonic() + delay + later, seq, out, d, frame))
    # Flush what is still delayed, then report.
    for _, _, out, d, frame in sorted(heap):
        send(out, d, frame)
    write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
