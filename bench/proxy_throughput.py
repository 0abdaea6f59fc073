"""ClusterIP through AntreaProxy vs direct pod-to-pod vs a kube-proxy-style iptables DNAT,
measured in one run on the same lab.

Run as root:  .venv/bin/python bench/proxy_throughput.py [--seconds 3] [--rounds 7]
              [--streams 1] [--endpoints 1] [--api-port 46445]

Brings up a 2-node `--cni antrea` lab with a client pod and `--endpoints` server pods
(iperf3 server + the lab's echo server) on node1, ClusterIP Services for the echo port
(every server) and the iperf3 port (the first server: iperf3's control and data
connections must meet one server), and the same built the way kube-proxy's iptables
mode does it on node1 (nat PREROUTING -> SERVICES -> SVC -> SEP chains, statistic-random
per endpoint, DNAT to the pod) on a VIP outside the Service CIDR, so the pod's packets go
through antrea-gw0 to the host and back. Direct traffic goes to the first server pod;
all paths start at the same client pod. Prints, per path:
  * iperf3 TCP throughput (`--streams` parallel streams, one by default);
  * short TCP connections per second (connect, 1 request/response, close; one client
    loop, sequential), against the echo server;
  * what node1's ovs-vswitchd spent on it, which the machine's other users disturb far
    less than the rates: CPU seconds per GB and per connection, datapath passes per
    packet (1 + recirculations), upcalls per 1,000 connections and datapath flows
    (megaflows) hit during the connection test.
The paths are measured in rounds, after one warm-up pass: each round measures the three
throughputs back to back, then the three connection rates, in an order that rotates
from round to round (no path always runs first or next to the same neighbour). Each
figure is the median over rounds; the ratios are medians of per-round ratios, so that a
load spike shared by the paths of one round cancels out. Compare rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from antrea_lab import cluster
from antrea_lab.labdir import LabDir

IPERF_PORT = 5201
ECHO_PORT = 80
BASELINE_VIP = "10.97.0.10"  # outside the lab's Service CIDR: AntreaProxy leaves it alone
CLK_TCK = os.sysconf("SC_CLK_TCK")

CONN_RATE = textwrap.dedent("""
    import socket, sys, time
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    done, errors, end = 0, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            s = socket.create_connection((host, port), timeout=2)
            s.sendall(b"x\\n"); s.recv(64); s.close(); done += 1
        except OSError:
            errors += 1
    print(done / seconds, errors)
""")


def iperf(netns: str, ip: str, seconds: int, streams: int) -> tuple[float, int]:
    """Gbit/s received and bytes sent by the client."""
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run(["ip", "netns", "exec", netns, "iperf3", "-c", ip, "-p",
                              str(IPERF_PORT), "-t", str(seconds), "-P", str(streams), "-J"],
                             capture_output=True, text=True, timeout=seconds + 60)
        report = json.loads(out.stdout or "{}")
        if "end" in report and "error" not in report:
            return (report["end"]["sum_received"]["bits_per_second"] / 1e9,
                    int(report["end"]["sum_sent"]["bytes"]))
        if time.monotonic() > deadline:
            raise RuntimeError(f"iperf3 to {ip} failed: {report.get('error', out.stderr)}")
        time.sleep(0.5)


def conn_rate(netns: str, ip: str, seconds: float) -> tuple[float, int]:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CONN_RATE, ip,
                          str(ECHO_PORT), str(seconds)], capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout.split()
    return float(out[0]), int(out[1])


class Vswitchd:
    """One node's ovs-vswitchd: CPU time and datapath counters (userspace datapath)."""

    def __init__(self, lab: LabDir, node: str) -> None:
        run = lab.ovs_dirs(node) / "run"
        self.netns = lab.netns(node)
        self.ctl = str(run / "ovs-vswitchd.ctl")
        self.pid = int((run / "ovs-vswitchd.pid").read_text())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def appctl(self, *args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.netns, "ovs-appctl", "-t",
                               self.ctl, *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    def clear(self) -> None:
        self.appctl("dpif-netdev/pmd-stats-clear")

    def stats(self) -> dict[str, float]:
        """Packets, recirculations and upcalls since `clear`, summed over threads."""
        keys = {"packets received": "packets", "packet recirculations": "recirculations",
                "miss with success upcall": "upcalls", "miss with failed upcall": "upcalls"}
        out = dict.fromkeys(keys.values(), 0.0)
        for line in self.appctl("dpif-netdev/pmd-stats-show").splitlines():
            name, _, value = line.strip().partition(":")
            if name in keys:
                out[keys[name]] += float(value.split()[0])
        return out

    def megaflows(self, within: float) -> int:
        """Datapath flows hit in the last `within` seconds (others are leftovers)."""
        used = re.findall(r"used:([0-9.]+)s", self.appctl("dpif/dump-flows", "br-int"))
        return sum(float(u) <= within for u in used)


@dataclass
class Sample:
    gbps: float
    rate: float
    errors: int
    cpu_per_gb: float  # vswitchd CPU seconds per GB sent
    cpu_per_conn_us: float
    passes_bulk: float  # datapath passes per packet during iperf3
    passes_conn: float  # ... during the connection test
    upcalls_per_1k: float
    megaflows: int


@dataclass
class Target:
    label: str
    ip: str  # connection test (every endpoint)
    bulk_ip: str  # iperf3: its control and data connections must meet one server
    samples: list[Sample] = field(default_factory=list)

    def median(self, get: Callable[[Sample], float]) -> float:
        return statistics.median(get(s) for s in self.samples)


def measure_bulk(ovs: Vswitchd, netns: str, ip: str, seconds: int,
                 streams: int) -> dict[str, float]:
    ovs.clear()
    cpu = ovs.cpu_seconds()
    gbps, sent = iperf(netns, ip, seconds, streams)
    cpu = ovs.cpu_seconds() - cpu
    dp = ovs.stats()
    return {"gbps": gbps, "cpu_per_gb": cpu / max(sent / 1e9, 1e-9),
            "passes_bulk": 1 + dp["recirculations"] / max(dp["packets"], 1)}


def measure_conns(ovs: Vswitchd, netns: str, ip: str, seconds: int) -> dict[str, float]:
    ovs.clear()
    cpu = ovs.cpu_seconds()
    rate, errors = conn_rate(netns, ip, seconds)
    cpu = ovs.cpu_seconds() - cpu
    dp = ovs.stats()
    done = max(rate * seconds, 1.0)
    return {"rate": rate, "errors": errors, "cpu_per_conn_us": cpu / done * 1e6,
            "passes_conn": 1 + dp["recirculations"] / max(dp["packets"], 1),
            "upcalls_per_1k": dp["upcalls"] / done * 1000,
            "megaflows": ovs.megaflows(seconds)}


def iptables_service(node_netns: str, vip: str, endpoints: list[str]) -> None:
    """kube-proxy iptables mode's shape for a Service with two ports."""
    def ipt(*args: str) -> None:
        subprocess.run(["ip", "netns", "exec", node_netns, "iptables", "-w", "-t", "nat",
                        *args], check=True, capture_output=True)
    seps = [f"BENCH-SEP-{i}" for i in range(len(endpoints))]
    for chain in ("BENCH-SERVICES", "BENCH-SVC", *seps, "BENCH-MARK-MASQ"):
        ipt("-N", chain)
    ipt("-A", "BENCH-MARK-MASQ", "-j", "MARK", "--set-xmark", "0x4000/0x4000")
    ipt("-I", "PREROUTING", "-j", "BENCH-SERVICES")
    ipt("-I", "OUTPUT", "-j", "BENCH-SERVICES")
    # iperf3 to the first endpoint only (its two connections must meet one server).
    for port, chain in ((IPERF_PORT, seps[0]), (ECHO_PORT, "BENCH-SVC")):
        ipt("-A", "BENCH-SERVICES", "-d", f"{vip}/32", "-p", "tcp", "--dport", str(port),
            "-j", chain)
    # Endpoint i of n is taken with probability 1/(n-i); the last one unconditionally.
    for i, (sep, endpoint) in enumerate(zip(seps, endpoints, strict=True)):
        pick = [] if i == len(seps) - 1 else [
            "-m", "statistic", "--mode", "random", "--probability",
            f"{1 / (len(seps) - i):.10f}"]
        ipt("-A", "BENCH-SVC", *pick, "-j", sep)
        ipt("-A", sep, "-s", f"{endpoint}/32", "-j", "BENCH-MARK-MASQ")
        ipt("-A", sep, "-p", "tcp", "-j", "DNAT", "--to-destination", endpoint)


def wait_running(api: client.CoreV1Api, ns: str, count: int) -> dict:
    deadline = time.monotonic() + 120
    while True:
        pods = {p.metadata.name: p for p in api.list_namespaced_pod(ns).items
                if p.status.phase == "Running" and p.status.pod_ip}
        if len(pods) == count:
            return pods
        if time.monotonic() > deadline:
            raise RuntimeError("bench pods not running after 120 s")
        time.sleep(0.3)


def setup(lab: LabDir, servers: int) -> tuple[str, list[Target]]:
    """The client's netns and the three paths: direct to the first server pod, the two
    Services' echo ports to all of them (iperf3 ports to the first one: iperf3's control
    and data connections, balanced apart, would reach different servers)."""
    api = client.CoreV1Api(cluster.kube_client(lab))
    api.create_namespace({"metadata": {"name": "bench"}})
    api.create_namespaced_pod("bench", {"metadata": {"name": "client"}, "spec": {
        "nodeName": "node1", "containers": [
            {"name": "c", "image": "iperf3", "command": ["sleep", "3600"]}]}})
    for i in range(servers):
        api.create_namespaced_pod("bench", {
            "metadata": {"name": f"server-{i}",
                         "labels": {"app": "server", "iperf": str(i == 0).lower()}},
            "spec": {"nodeName": "node1", "containers": [
                {"name": "iperf", "image": "iperf3",
                 "command": ["iperf3", "-s", "-p", str(IPERF_PORT)]},
                {"name": "echo", "image": "echo",
                 "ports": [{"containerPort": ECHO_PORT}]}]}})
    echo = api.create_namespaced_service("bench", {
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": ECHO_PORT}]}})
    bulk = api.create_namespaced_service("bench", {
        "metadata": {"name": "iperf"},
        "spec": {"selector": {"iperf": "true"}, "ports": [{"port": IPERF_PORT}]}})
    pods = wait_running(api, "bench", servers + 1)
    server_ips = [pods[f"server-{i}"].status.pod_ip for i in range(servers)]
    iptables_service(lab.netns("node1"), BASELINE_VIP, server_ips)
    return lab.pod_netns(pods["client"].metadata.uid), [
        Target("direct pod to pod", server_ips[0], server_ips[0]),
        Target("ClusterIP (AntreaProxy, OVS)", echo.spec.cluster_ip, bulk.spec.cluster_ip),
        Target("iptables DNAT (kube-proxy style)", BASELINE_VIP, BASELINE_VIP)]


def warm_up(client_ns: str, paths: list[Target]) -> None:
    """Every path answers (EndpointSlice -> agent, ARP, first megaflows) before timing."""
    deadline = time.monotonic() + 60
    for p in paths:
        while conn_rate(client_ns, p.ip, 1)[0] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{p.label} ({p.ip}) does not answer")
            time.sleep(0.5)


def paired_ratio(a: Target, b: Target, get: Callable[[Sample], float]) -> float:
    return statistics.median(get(x) / get(y) for x, y in zip(a.samples, b.samples,
                                                               strict=True) if get(y))


def report(paths: list[Target], args: argparse.Namespace) -> None:
    width = max(len(p.label) for p in paths)
    print(f"same node, {args.endpoints} endpoint(s), iperf3 {args.streams} TCP stream(s) "
          f"and sequential short TCP connections, {args.seconds} s each, median of "
          f"{args.rounds} rotating rounds")
    for p in paths:
        print(f"  {p.label.ljust(width)}  {p.median(lambda s: s.gbps):6.2f} Gbit/s"
              f"  {p.median(lambda s: s.rate):6.0f} conn/s"
              f"  ({sum(s.errors for s in p.samples)} failed)"
              f"   rounds: {' '.join(f'{s.gbps:.2f}' for s in p.samples)} Gbit/s;"
              f" {' '.join(f'{s.rate:.0f}' for s in p.samples)} conn/s")
    print("node1 ovs-vswitchd (all threads) and its userspace datapath, per path:")
    for p in paths:
        print(f"  {p.label.ljust(width)}  {p.median(lambda s: s.cpu_per_gb):5.2f} CPU s/GB"
              f"  {p.median(lambda s: s.cpu_per_conn_us):5.0f} CPU us/conn"
              f"  passes/pkt {p.median(lambda s: s.passes_bulk):.2f} bulk,"
              f" {p.median(lambda s: s.passes_conn):.2f} conns"
              f"  upcalls/1k conns {p.median(lambda s: s.upcalls_per_1k):4.1f}"
              f"  megaflows {p.median(lambda s: s.megaflows):.0f}")
    direct, proxy, ipt = paths
    print(f"  ClusterIP / direct throughput:        "
          f"{paired_ratio(proxy, direct, lambda s: s.gbps):.2f} (paired), "
          f"{proxy.median(lambda s: s.gbps) / direct.median(lambda s: s.gbps):.2f} (medians)")
    print(f"  ClusterIP / iptables connection rate: "
          f"{paired_ratio(proxy, ipt, lambda s: s.rate):.2f} (paired), "
          f"{proxy.median(lambda s: s.rate) / ipt.median(lambda s: s.rate):.2f} (medians)")
    print(f"  ClusterIP / direct connection rate:   "
          f"{paired_ratio(proxy, direct, lambda s: s.rate):.2f} (paired)")
    # What the rates would be if node1's vswitchd were the only bottleneck: the ratio
    # of its CPU cost per unit, which the machine's load shifts far less than the rates.
    gb, conn = (lambda s: s.cpu_per_gb), (lambda s: s.cpu_per_conn_us)
    per_gb = direct.median(gb) / proxy.median(gb)
    per_conn = direct.median(conn) / proxy.median(conn)
    ipt_conn = ipt.median(conn) / proxy.median(conn)
    print(f"  vswitchd CPU cost, direct / ClusterIP: {per_gb:.2f} per GB, {per_conn:.2f} per "
          f"connection; iptables / ClusterIP per connection: {ipt_conn:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="per measurement")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--streams", type=int, default=1, help="iperf3 parallel streams")
    parser.add_argument("--endpoints", type=int, default=1,
                        help="server pods behind both Services (2+: the select group)")
    parser.add_argument("--name", default=f"pb{os.getpid() % 1000}", help="lab name")
    parser.add_argument("--api-port", type=int, default=None, help="lab API port")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces, Open vSwitch)")
    with tempfile.TemporaryDirectory(prefix="antrea-bench-") as tmp:
        lab = LabDir(args.name, root=Path(tmp))
        try:
            cluster.up(lab, 2, cni="antrea", api_port=args.api_port,
                       progress=lambda _m: None)
            client_ns, paths = setup(lab, args.endpoints)
            ovs = Vswitchd(lab, "node1")
            warm_up(client_ns, paths)
            for r in range(args.rounds):
                # The machine's other users come and go: measure the paths back to back
                # (all throughputs, then all connection rates) and rotate their order, so
                # that no path always runs first or next to the same neighbour.
                order = paths[r % len(paths):] + paths[:r % len(paths)]
                bulk = {p.label: measure_bulk(ovs, client_ns, p.bulk_ip, args.seconds,
                                              args.streams) for p in order}
                conns = {p.label: measure_conns(ovs, client_ns, p.ip, args.seconds)
                         for p in order}
                for p in paths:
                    p.samples.append(Sample(**bulk[p.label], **conns[p.label]))
        finally:
            cluster.down(lab, progress=lambda _m: None)
    report(paths, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
