#!/usr/bin/env python3
"""A real client's view of a SYN flood, for the SYN-flood row of scripts/bench
(issue 13). Run in the client namespace:

    synflood.py HOST PORT SECONDS

Starts `hping3 --flood --rand-source -S -p PORT HOST` for SECONDS, and
meanwhile (and 3 s after) opens a fresh TCP connection every 0.2 s to an
echo service on HOST:PORT and sends five 5-byte requests on it, each
awaiting its echo. Prints one JSON line: connect times and request
latencies during the flood and after it, failures, SYNs hping3 sent.
"""
import json
import re
import socket
import subprocess
import sys
import time


def main() -> int:
    host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    flood = subprocess.Popen(["timeout", "-s", "INT", str(secs), "hping3", "--flood", "--rand-source", "-S",
                              "-p", str(port), host], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    end = t0 + secs
    res = {"connect_during_s": [], "connect_after_s": [], "request_during_s": [], "request_after_s": [],
           "failures": []}
    time.sleep(0.2)
    while time.monotonic() < end + 3:
        c0 = time.monotonic()
        try:
            s = socket.create_connection((host, port), timeout=15)
            c1 = time.monotonic()
            res["connect_during_s" if c1 < end else "connect_after_s"].append(round(c1 - c0, 6))
            s.settimeout(15)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(5):
                r0 = time.monotonic()
                s.sendall(b"ping\n")
                got = b""
                while len(got) < 5:
                    b = s.recv(64)
                    if not b:
                        raise OSError("closed")
                    got += b
                res["request_during_s" if r0 < end else "request_after_s"].append(round(time.monotonic() - r0, 6))
            s.close()
        except OSError as e:
            res["failures"].append(f"{time.monotonic() - t0:.2f}s: {e!r}")
        time.sleep(0.2)
    out, _ = flood.communicate(timeout=15)
    m = re.search(r"(\d+) packets transmitted", out or "")
    res["syns_sent"] = int(m.group(1)) if m else None
    res["flood_seconds"] = secs
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
