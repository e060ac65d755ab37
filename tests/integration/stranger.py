#!/usr/bin/env python3
"""A stranger on the log channel (issue 12), for replication_tests.py s9*.

    stranger.py serve IP:PORT SECONDS    play the primary: answer every connection with
                                          well-formed welcomes (version 1, then 2) and close
    stranger.py connect IP:PORT SECONDS  keep connecting to a node's log port: silent
                                          connections held open, version-1 hellos,
                                          version-2 plaintext hellos, version-2 handshake
                                          hellos followed by a bogus proof

It knows the message formats but not the pair's secret. Stops by itself after
SECONDS (bounded load, loopback or the test's own namespaces only).
"""

import os
import socket
import struct
import sys
import time


def frame(version: int, mtype: int, payload: bytes) -> bytes:
    return struct.pack(">HBBI", 0x4654, version, mtype, len(payload)) + payload


def string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">I", len(b)) + b


def welcome(version: int) -> bytes:
    return frame(version, 2, struct.pack(">QB", 1, 0))


def hello(version: int) -> bytes:
    # node, role, config digest, applied index, epoch
    return frame(version, 1, string("B") + string("backup") + struct.pack(">QQQ", 0, 0, 0))


def handshake_hello() -> bytes:
    return frame(2, 0x40, b"\x00" + os.urandom(32))


def bogus_proof() -> bytes:
    return frame(2, 0x41, string("B") + string("backup") + os.urandom(32))


def addr(s: str):
    ip, port = s.rsplit(":", 1)
    return ip, int(port)


def serve(where, seconds):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(where)
    ls.listen(16)
    ls.settimeout(0.2)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        n += 1
        try:
            if n % 2:
                c.sendall(welcome(1) + welcome(2))
            else:
                c.sendall(welcome(2) + handshake_hello() + welcome(2))
            time.sleep(0.05)
        except OSError:
            pass
        c.close()
    print(f"stranger served {n} connections", flush=True)


def connect(where, seconds):
    end = time.monotonic() + seconds
    held = []
    n = 0
    while time.monotonic() < end:
        kind = n % 4
        n += 1
        try:
            s = socket.create_connection(where, timeout=1)
            if kind == 1:
                s.sendall(hello(1))
            elif kind == 2:
                s.sendall(hello(2))
            elif kind == 3:
                s.sendall(handshake_hello() + bogus_proof())
            held.append((time.monotonic(), s))
        except OSError:
            pass
        now = time.monotonic()
        for t, s in [h for h in held if now - h[0] > 3]:
            s.close()
        held = [h for h in held if now - h[0] <= 3]
        time.sleep(0.03)
    for _, s in held:
        s.close()
    print(f"stranger made {n} connections", flush=True)


if __name__ == "__main__":
    mode, where, seconds = sys.argv[1], addr(sys.argv[2]), float(sys.argv[3])
    (serve if mode == "serve" else connect)(where, seconds)
