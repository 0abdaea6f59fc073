"""ClusterIP through AntreaProxy vs direct pod-to-pod vs a kube-proxy-style iptables DNAT,
measured in one run on the same lab.

Run as root:  .venv/bin/python bench/proxy_throughput.py [--seconds 5] [--api-port 46445]

Brings up a 2-node `--cni antrea` lab with a client pod and a server pod (iperf3 server
+ the lab's echo server) on node1, a ClusterIP Service for both ports, and the same
"Service" built the way kube-proxy's iptables mode does it on node1 (nat PREROUTING ->
SERVICES -> SVC -> SEP chains, DNAT to the pod) on a VIP outside the Service CIDR, so the
pod's packets go through antrea-gw0 to the host and back. Prints, per path:
  * iperf3 TCP throughput, one stream;
  * short TCP connections per second (connect, 1 request/response, close; one client
    loop, sequential), against the echo server.
The paths are measured in interleaved rounds and each figure is the median: the machine
is shared, compare rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from kubernetes import client

from antrea_lab import cluster
from antrea_lab.labdir import LabDir

IPERF_PORT = 5201
ECHO_PORT = 80
BASELINE_VIP = "10.97.0.10"  # outside the lab's Service CIDR: AntreaProxy leaves it alone

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


def iperf(netns: str, ip: str, seconds: int) -> float:
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run(["ip", "netns", "exec", netns, "iperf3", "-c", ip, "-p",
                              str(IPERF_PORT), "-t", str(seconds), "-J"],
                             capture_output=True, text=True, timeout=seconds + 60)
        report = json.loads(out.stdout or "{}")
        if "end" in report and "error" not in report:
            return report["end"]["sum_received"]["bits_per_second"] / 1e9
        if time.monotonic() > deadline:
            raise RuntimeError(f"iperf3 to {ip} failed: {report.get('error', out.stderr)}")
        time.sleep(0.5)


def conn_rate(netns: str, ip: str, seconds: int) -> tuple[float, int]:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CONN_RATE, ip,
                          str(ECHO_PORT), str(seconds)], capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout.split()
    return float(out[0]), int(out[1])


def iptables_service(node_netns: str, vip: str, endpoint: str) -> None:
    """kube-proxy iptables mode's shape for one Service with one endpoint, two ports."""
    def ipt(*args: str) -> None:
        subprocess.run(["ip", "netns", "exec", node_netns, "iptables", "-w", "-t", "nat",
                        *args], check=True, capture_output=True)
    for chain in ("BENCH-SERVICES", "BENCH-SVC", "BENCH-SEP", "BENCH-MARK-MASQ"):
        ipt("-N", chain)
    ipt("-A", "BENCH-MARK-MASQ", "-j", "MARK", "--set-xmark", "0x4000/0x4000")
    ipt("-I", "PREROUTING", "-j", "BENCH-SERVICES")
    ipt("-I", "OUTPUT", "-j", "BENCH-SERVICES")
    for port in (IPERF_PORT, ECHO_PORT):
        ipt("-A", "BENCH-SERVICES", "-d", f"{vip}/32", "-p", "tcp", "--dport", str(port),
            "-j", "BENCH-SVC")
    # One endpoint: kube-proxy jumps straight to its SEP chain (statistic only for >1).
    ipt("-A", "BENCH-SVC", "-j", "BENCH-SEP")
    ipt("-A", "BENCH-SEP", "-s", f"{endpoint}/32", "-j", "BENCH-MARK-MASQ")
    ipt("-A", "BENCH-SEP", "-p", "tcp", "-j", "DNAT", "--to-destination", endpoint)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--name", default=f"pb{os.getpid() % 1000}", help="lab name")
    parser.add_argument("--api-port", type=int, default=None, help="lab API port")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces, Open vSwitch)")
    rows: list[tuple[str, float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="antrea-bench-") as tmp:
        lab = LabDir(args.name, root=Path(tmp))
        try:
            cluster.up(lab, 2, cni="antrea", api_port=args.api_port,
                       progress=lambda _m: None)
            api = client.CoreV1Api(cluster.kube_client(lab))
            api.create_namespace({"metadata": {"name": "bench"}})
            api.create_namespaced_pod("bench", {"metadata": {"name": "client"}, "spec": {
                "nodeName": "node1", "containers": [
                    {"name": "c", "image": "iperf3", "command": ["sleep", "3600"]}]}})
            api.create_namespaced_pod("bench", {
                "metadata": {"name": "server", "labels": {"app": "server"}},
                "spec": {"nodeName": "node1", "containers": [
                    {"name": "iperf", "image": "iperf3",
                     "command": ["iperf3", "-s", "-p", str(IPERF_PORT)]},
                    {"name": "echo", "image": "echo",
                     "ports": [{"containerPort": ECHO_PORT}]}]}})
            svc = api.create_namespaced_service("bench", {
                "metadata": {"name": "server"},
                "spec": {"selector": {"app": "server"}, "ports": [
                    {"name": "iperf", "port": IPERF_PORT}, {"name": "echo", "port": ECHO_PORT}]}})
            pods = wait_running(api, "bench", 2)
            client_ns = lab.pod_netns(pods["client"].metadata.uid)
            server_ip = pods["server"].status.pod_ip
            iptables_service(lab.netns("node1"), BASELINE_VIP, server_ip)
            time.sleep(2)  # EndpointSlice -> agents
            paths = [("direct pod to pod", server_ip),
                     ("ClusterIP (AntreaProxy, OVS)", svc.spec.cluster_ip),
                     ("iptables DNAT (kube-proxy style)", BASELINE_VIP)]
            # Interleaved rounds, median per path: other users of the machine come and
            # go, and one sequential measurement per path mostly measures them.
            samples: dict[str, list[tuple[float, float, int]]] = {p[0]: [] for p in paths}
            for _ in range(args.rounds):
                for label, ip in paths:
                    gbps = iperf(client_ns, ip, args.seconds)
                    rate, errors = conn_rate(client_ns, ip, args.seconds)
                    samples[label].append((gbps, rate, errors))
            for label, _ip in paths:
                got = samples[label]
                rows.append((label, statistics.median(g for g, _, _ in got),
                             statistics.median(r for _, r, _ in got),
                             sum(e for _, _, e in got)))
        finally:
            cluster.down(lab, progress=lambda _m: None)
    width = max(len(r[0]) for r in rows)
    print(f"same node, iperf3 1 TCP stream and sequential short TCP connections, "
          f"{args.seconds} s each, median of {args.rounds} interleaved rounds")
    for label, gbps, rate, errors in rows:
        print(f"  {label.ljust(width)}  {gbps:6.2f} Gbit/s  {rate:8.0f} conn/s"
              f"  ({errors} failed)")
    direct, proxy, ipt = rows
    print(f"  ClusterIP / direct throughput:        {proxy[1] / direct[1]:.2f}")
    print(f"  ClusterIP / iptables connection rate: {proxy[2] / ipt[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
