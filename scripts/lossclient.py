#!/usr/bin/env python3
"""One timed TCP transfer for the loss benchmark (issue 13).

    lossclient.py HOST PORT BYTES echo|discard [TIMEOUT_S]

echo: sends BYTES and reads BYTES back (one thread writes, the main thread
reads), then closes. discard: sends BYTES, half-closes and waits for the
server's FIN. Prints one JSON line: bytes, seconds, mbit_s (payload bytes
moved one way per second), and the client's own TCP_INFO retransmission
counters, so the report can tell which side had to recover.
"""
import json
import socket
import struct
import sys
import threading
import time


def tcp_info(s: socket.socket) -> dict:
    # struct tcp_info (linux/tcp.h): u8 x8, then u32 fields; tcpi_retransmits
    # is byte 2; the u32s from offset 8: rto [0], rtt [15], reordering [20], total_retrans [23].
    try:
        b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return {}
    u32 = struct.unpack_from("<32I", b, 8)
    return {"client_total_retrans": u32[23], "client_rto_us": u32[0], "client_rtt_us": u32[15],
            "client_reordering": u32[20]}


def main() -> int:
    host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 300.0
    data = b"L" * n
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(timeout)
    err = []

    def writer():
        try:
            s.sendall(data)
            if mode == "discard":
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(str(e))

    t0 = time.monotonic()
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    got = 0
    result = "ok"
    try:
        while True:
            if mode == "echo" and got >= n:
                break
            b = s.recv(262144)
            if not b:
                break
            got += len(b)
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result = f"error: {e}"
    t1 = time.monotonic()
    th.join(1)
    info = tcp_info(s)
    s.close()
    moved = got if mode == "echo" else n
    if mode == "echo" and got < n and result == "ok":
        result = "short"
    el = t1 - t0
    print(json.dumps({"mode": mode, "bytes": n, "received": got, "seconds": round(el, 4),
                      "mbit_s": round(moved * 8 / el / 1e6, 3), "result": result,
                      "send_error": err[0] if err else None, **info}))
    return 0  # the JSON says how it went


if __name__ == "__main__":
    sys.exit(main())
