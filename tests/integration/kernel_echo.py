#!/usr/bin/env python3
"""A kernel-TCP echo server: the reference the loss tests and the benchmark
measure ftap against, on the same switch in the same run.

    kernel_echo.py ADDRESS PORT [CONGESTION_CONTROL]

Echoes every connection's bytes back until it closes, one thread per
connection. With CONGESTION_CONTROL (e.g. cubic) the listening socket, and
so every accepted one, uses it (TCP_CONGESTION; root may set any the kernel
has, a network namespace's default is net.ipv4.tcp_congestion_control).
"""
import socket
import sys
import threading


def serve(c: socket.socket) -> None:
    with c:
        while True:
            b = c.recv(262144)
            if not b:
                return
            c.sendall(b)


def main() -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if len(sys.argv) > 3:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, sys.argv[3].encode())
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
