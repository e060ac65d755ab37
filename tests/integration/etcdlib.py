"""A three-member etcd cluster (Debian etcd-server 3.4) in its own network
namespace ${P}-e, for the etcd arbiter's tests and demo. Standard library only.

Members ftap-etcd-m1..m3 listen on 10.77.0.11-13 (client port 2379, peer
port 2380) on bridge bre in ${P}-e; nodes A and B reach them through their
own "arbiter links" (veth arbA 10.77.0.1 in ${P}-a, arbB 10.77.0.2 in
${P}-b), apart from the log link and the uplinks. Fast elections
(heartbeat 50 ms, election timeout 500 ms). ``close`` kills the members and
deletes the namespace and the members' data (their logs stay); every member's pid goes to FTAP_PIDFILE (its
command line names "ftap-etcd-", so the harnesses' leftover killers find it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import ftaplib as L
import pairlib as PL
from ftaplib import TestFailure, check

MEMBERS = [("m1", "10.77.0.11"), ("m2", "10.77.0.12"), ("m3", "10.77.0.13")]
PREFIX = "/ftap/t"
TTL = int(os.environ.get("FTAP_ETCD_TTL", "2") or 2)


class EtcdCluster:
    """Three etcd members in namespace ${P}-e, reachable from A and B over
    their arbiter links. ``close`` kills the members, deletes their data and the namespace."""

    def __init__(self, topo: L.Topology, out_dir: str):
        self.topo = topo
        self.ns = f"{topo.prefix}-e"
        self.dir = os.path.join(out_dir, "etcd")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, object] = {}
        self.key = L.register_cleanup("etcd cluster", self.close)
        self.setup_net()
        for name, _ in MEMBERS:
            self.start(name)
        self.wait_healthy(30)

    def setup_net(self):
        L.run(["ip", "netns", "delete", self.ns], check=False, timeout=10)
        L.run(["ip", "netns", "add", self.ns], timeout=10)
        e = self.ns
        cmds = [(e, "ip link set lo up"), (e, "ip link add bre type bridge"), (e, "ip link set bre up")]
        cmds += [(e, f"ip addr add {ip}/24 dev bre") for _, ip in MEMBERS]
        L.run(["ip", "link", "add", "arbA", "netns", self.topo.node_a, "type", "veth", "peer", "name", "e-a",
               "netns", e], timeout=10)
        L.run(["ip", "link", "add", "arbB", "netns", self.topo.node_b, "type", "veth", "peer", "name", "e-b",
               "netns", e], timeout=10)
        cmds += [(e, "ip link set e-a master bre up"), (e, "ip link set e-b master bre up"),
                 (self.topo.node_a, "ip addr add 10.77.0.1/24 dev arbA"), (self.topo.node_a, "ip link set arbA up"),
                 (self.topo.node_b, "ip addr add 10.77.0.2/24 dev arbB"), (self.topo.node_b, "ip link set arbB up")]
        for ns, c in cmds:
            L.run(c.split(), ns=ns, timeout=10)

    @property
    def endpoints(self) -> str:
        return ",".join(f"{ip}:2379" for _, ip in MEMBERS)

    def url(self, prefix: str = PREFIX) -> str:
        return f"etcd://{self.endpoints}{prefix}?ttl={TTL}"

    def start(self, name: str):
        ip = dict(MEMBERS)[name]
        cluster = ",".join(f"ftap-etcd-{n}=http://{i}:2380" for n, i in MEMBERS)
        argv = ["ip", "netns", "exec", self.ns, "etcd", "--name", f"ftap-etcd-{name}",
                "--data-dir", os.path.join(self.dir, name),
                "--listen-client-urls", f"http://{ip}:2379", "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"ftap-{self.topo.prefix}",
                "--heartbeat-interval", "50", "--election-timeout", "500", "--logger", "zap"]
        logf = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        PL.record_pid(p.pid, f"ftap-etcd-{name}")
        self.procs[name] = p
        self.logs[name] = logf

    def kill(self, name: str, sig: int = signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(10)

    def etcdctl(self, *args, timeout: float = 10, check_rc: bool = True, endpoints: str | None = None):
        return L.run(["etcdctl", "--endpoints", endpoints or self.endpoints, "--dial-timeout", "1s",
                      "--command-timeout", "2s"] + list(args), ns=self.ns, timeout=timeout, check=check_rc)

    def wait_healthy(self, timeout: float):
        dl = L.Deadline(timeout)
        while True:
            cp = self.etcdctl("endpoint", "health", check_rc=False)
            if cp.returncode == 0:
                return
            if dl.expired():
                raise TestFailure(f"etcd cluster not healthy within {timeout}s: {cp.stdout} {cp.stderr}")
            time.sleep(0.2)

    def leader(self) -> str:
        """The name (m1..m3) of the current leader."""
        cp = self.etcdctl("endpoint", "status", "-w", "json")
        for st in json.loads(cp.stdout):
            s = st["Status"]
            if s["header"]["member_id"] == s["leader"]:
                ep = st["Endpoint"]
                for n, ip in MEMBERS:
                    if ip in ep:
                        return n
        raise TestFailure(f"no leader in {cp.stdout}")

    def alone_key(self) -> bool:
        cp = self.etcdctl("get", f"{PREFIX}/alone", "--print-value-only", check_rc=False, timeout=5)
        return cp.returncode == 0 and cp.stdout.strip() != ""

    def close(self):
        for name in list(self.procs):
            self.kill(name)
            self.logs[name].close()
        self.procs.clear()
        # The members' data (WAL files are preallocated: ~120 MB per member);
        # their logs stay.
        for name, _ in MEMBERS:
            shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
        L.run(["ip", "netns", "delete", self.ns], check=False, timeout=10)
        if self.key is not None:
            L.unregister_cleanup(self.key)
            self.key = None


def ftap_in(ns: str, *args, timeout: float = 20) -> subprocess.CompletedProcess:
    return L.run([PL.ftap_bin()] + list(args), ns=ns, timeout=timeout, check=False)


def arbiter_status(topo, cluster) -> str:
    cp = ftap_in(topo.node_b, "arbiter", "status", "--arbiter", cluster.url())
    check(cp.returncode == 0, f"ftap arbiter status failed: {cp.stdout} {cp.stderr}")
    return cp.stdout


def claimed(status_text: str) -> dict:
    out = {}
    for line in status_text.splitlines():
        if line.startswith("epoch "):
            e, who = line[6:].split(":", 1)
            out[int(e)] = who.strip().split(" ")[0]
    return out


