"""One test's set-up and its undoing, for the pair suites (health_tests.py,
etcd_tests.py, ops_tests.py). Python 3 standard library only.

A ``Scenario`` is a ``contextlib.ExitStack``: every thing a test starts
through it (the pair, the client load, a capture, a link taken down) has its
undoing registered at the moment it is started, and ``with Scenario(ctx) as
sc:`` undoes all of it, last first, however the test ends:

    with Scenario(ctx) as sc:
        pair = sc.pair(failover_timeout_ms=T_MS)   # closed at the end
        a, b = pair.start()
        load = sc.load()                           # closed before the pair
        t0 = time.monotonic()
        sc.links(ctx.topo.node_a, "upA down")      # up again at the end
        ...
        r = finish_load(ctx, load, t0, "uplink down")

Also the client-load bookkeeping both suites share: ``finish_load`` (stop
the INCR client, note what it saw, check it saw no error and every value
once), ``ms`` and ``links`` (``ip link set`` in one ``ip -batch``).
"""

from __future__ import annotations

import contextlib
import os

import ftaplib as L
import pairlib as PL
from ftaplib import check
from pairlib import Capture, IncrLoad, Pair


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def links(ns: str, *changes: str):
    """`ip link set CHANGE` for every change, in one `ip -batch` (so two links
    go down within a millisecond or so, like a pulled cable)."""
    L.run(["ip", "-b", "-"], ns=ns, input="".join(f"link set {c}\n" for c in changes).encode(), timeout=10)


def start_load(req_timeout: float = 15.0, pace_s: float = 0.001, warm_up_timeout: float = 10) -> IncrLoad:
    """An INCR client on one TCP connection, started, once it got 50 replies."""
    load = IncrLoad(pace_s=pace_s, req_timeout=req_timeout).start()
    load.wait_count(50, warm_up_timeout)
    return load


def finish_load(ctx, load: IncrLoad, t_event: float, what: str, first: int = 1, after: float = 3.0,
                detail: bool = True) -> dict:
    """Stops the client and checks what it saw: no reset/EOF/timeout, values
    first, first+1, ... (no gap = nothing lost, no duplicate). Returns the
    stall around t_event and notes the client's report either way (with
    ``detail``: also the INCR that stalled, the longest request and resets)."""
    load.stop()
    values = load.values
    stall, sv = load.stall_around(t_event, before=0.05, after=after)
    worst, _, _ = load.max_latency()
    err = load.error
    if detail:
        resets = 1 if err and ("Reset" in err or "reset" in err) else 0
        ctx.note(f"client ({what}): {PL.describe_values(values)}; stall around the event {ms(stall)} "
                 f"(the INCR that returned {sv}); longest request {ms(worst)}; resets {resets}; "
                 f"error {err or 'none'}")
    else:
        ctx.note(f"client ({what}): {PL.describe_values(values)}; stall {ms(stall)}; error {err or 'none'}")
    check(err is None, f"{what}: client error (reset/EOF/timeout): {err}; {PL.describe_values(values)}")
    PL.check_consecutive(values, first, f"{what}: INCR replies")
    return {"stall": stall, "values": len(values), "longest": worst}


class Scenario(contextlib.ExitStack):
    """What one test (or one trial of it) set up, undone last first on exit."""

    def __init__(self, ctx, out_dir: str | None = None):
        super().__init__()
        self.ctx = ctx
        self.topo: L.Topology = ctx.topo
        self.out_dir = out_dir or ctx.out_dir
        self._down: set[tuple[str, str]] = set()

    def pair(self, out_dir: str | None = None, **kw) -> Pair:
        """A ``Pair`` in this scenario's directory (or ``out_dir``), closed on exit."""
        pair = Pair(self.topo, out_dir or self.out_dir, **kw)
        self.callback(pair.close)
        return pair

    def load(self, req_timeout: float = 15.0, pace_s: float = 0.001, warm_up_timeout: float = 10) -> IncrLoad:
        """``start_load``, closed on exit."""
        load = start_load(req_timeout, pace_s, warm_up_timeout)
        self.callback(load.close)
        return load

    def capture(self, ns: str, iface: str, name: str, **kw) -> Capture:
        """tcpdump on ``iface`` in ``ns`` into out_dir/``name``, started now and stopped on exit."""
        cap = Capture(ns, iface, os.path.join(self.out_dir, name), **kw).start()
        self.callback(cap.stop)
        return cap

    def links(self, ns: str, *changes: str):
        """``links``; every link this sets down is set up again on exit
        (unless the test did so itself: then that is a no-op)."""
        for c in changes:
            words = c.split()
            if words[-1] == "down":
                self.restore_link(ns, words[0])
        links(ns, *changes)

    def restore_link(self, ns: str, name: str):
        """Sets link ``name`` in ``ns`` up on exit (for a link the test takes
        down by other means than ``links``)."""
        if (ns, name) not in self._down:
            self._down.add((ns, name))
            self.callback(L.run, ["ip", "link", "set", name, "up"], ns=ns, check=False, timeout=10)
