"""How long Egress traffic is interrupted when its Egress Node goes away, in a real lab.

Run as root:  .venv/bin/python bench/egress_failover.py [--rounds 3] [--api-port 46455]

Brings up a 3-node `--cni antrea` lab, an ExternalIPPool whose nodeSelector picks node2
and node3, an Egress for a client pod on node1, and a server in the external netns that
answers each connection with the source address it arrived from. A prober in the client
pod opens a new TCP connection every 50 ms (0.5 s timeout) and records whether it got
through and with which source IP. Then, per round:

  * hang:    SIGSTOP the Egress Node's agent (it renews its Lease no more, like a dead
             node), wait for the other node to take the IP over, SIGCONT;
  * restart: `antrea-lab restart` of the Egress Node's agent (SIGTERM: it deletes its
             Lease and releases the IP, the other node takes over at once, then the
             restarted agent wins its IP back);

and prints, per event, the time until the Egress status names the new node, the longest
run of failed connections (the outage seen by the client), and how many connections
left with anything but the Egress IP (must be 0: no fallback to the node IP). Also the
time from creating an Egress to its first connection leaving with the allocated IP.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from kubernetes import client

from antrea_lab import cluster
from antrea_lab.labdir import LabDir
from antrea_lab.node.topology import EXTERNAL_IP

GROUP, VERSION = "crd.antrea.io", "v1beta1"
PORT = 8080
PROBE_LOOP = textwrap.dedent("""
    import json, socket, sys, time
    host, port = sys.argv[1], int(sys.argv[2])
    while True:
        start = time.time()
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.sendall(b"hostname\\n")
                seen = s.makefile().readline().strip()
        except OSError:
            seen = ""
        print(json.dumps([start, seen]), flush=True)
        time.sleep(max(0.0, 0.05 - (time.time() - start)))
""")


class Prober:
    """Connections from a pod, each recorded as (start time, source IP seen or "")."""

    def __init__(self, netns: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c",
                                      PROBE_LOOP, EXTERNAL_IP, str(PORT)],
                                     stdout=subprocess.PIPE, text=True)
        self.samples: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            start, seen = json.loads(line)
            self.samples.append((start, seen))

    def between(self, t0: float, t1: float) -> list[tuple[float, str]]:
        return [s for s in self.samples if t0 <= s[0] <= t1]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def longest_outage(samples: list[tuple[float, str]]) -> float:
    """Seconds from the first failed connection of the longest failing run to the next
    success."""
    worst, run_start = 0.0, None
    for start, seen in samples:
        if not seen:
            run_start = start if run_start is None else run_start
        elif run_start is not None:
            worst, run_start = max(worst, start - run_start), None
    return worst


def wait_until(fn, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not fn():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--api-port", type=int, default=46455)
    args = parser.parse_args()
    lab = LabDir(f"bef{os.getpid() % 10000}", root=Path(tempfile.mkdtemp(prefix="bench-eg-")))
    server = prober = None
    try:
        cluster.up(lab, 3, cni="antrea", api_port=args.api_port,
                   progress=lambda m: print(m, file=sys.stderr))
        api = cluster.kube_client(lab)
        core, crd = client.CoreV1Api(api), client.CustomObjectsApi(api)
        server = subprocess.Popen(["ip", "netns", "exec", lab.netns("external"), sys.executable,
                                   "-m", "antrea_lab.workload", "serve", "--tcp", str(PORT),
                                   "--name", "@peer"], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and json.loads(server.stdout.readline())["listening"]
        for node in ("node2", "node3"):
            core.patch_node(node, {"metadata": {"labels": {"egress-gateway": "yes"}}})
        core.create_namespaced_pod("default", {
            "metadata": {"name": "client", "labels": {"app": "client"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "echo",
                                                          "ports": [{"containerPort": 80}]}]}})
        wait_until(lambda: core.read_namespaced_pod("client", "default").status.phase
                   == "Running", 90)
        uid = core.read_namespaced_pod("client", "default").metadata.uid
        crd.create_cluster_custom_object(GROUP, VERSION, "externalippools", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ExternalIPPool",
            "metadata": {"name": "outside"},
            "spec": {"ipRanges": [{"start": "192.168.77.200", "end": "192.168.77.209"}],
                     "nodeSelector": {"matchLabels": {"egress-gateway": "yes"}}}})
        prober = Prober(lab.pod_netns(uid))
        time.sleep(1)
        created = time.time()
        crd.create_cluster_custom_object(GROUP, VERSION, "egresses", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Egress", "metadata": {"name": "web"},
            "spec": {"appliedTo": {"podSelector": {"matchLabels": {"app": "client"}}},
                     "externalIPPool": "outside"}})

        def status() -> tuple[str, str]:
            s = crd.get_cluster_custom_object(GROUP, VERSION, "egresses", "web").get(
                "status") or {}
            return s.get("egressNode", ""), s.get("egressIP", "")

        wait_until(lambda: all(status()))
        node, ip = status()
        wait_until(lambda: any(seen == ip for t, seen in prober.samples if t >= created))
        first = min(t for t, seen in prober.samples if t >= created and seen == ip)
        print(f"Egress created -> first connection with {ip}: {first - created:.2f} s "
              f"(held by {node})")
        # The Egress status over time, sampled every 50 ms.
        timeline: list[tuple[float, str]] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                timeline.append((time.time(), status()[0]))
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        results: dict[str, list[tuple[float, float, int]]] = {"hang": [], "restart": []}
        for _ in range(args.rounds):
            for kind in ("hang", "restart"):
                node, ip = status()
                other = "node3" if node == "node2" else "node2"
                state = lab.load()
                assert state is not None
                t0 = time.time()
                if kind == "hang":
                    pid = state.pids[f"{node}-antrea-agent"]
                    os.kill(pid, signal.SIGSTOP)
                    try:
                        wait_until(lambda other=other: status()[0] == other)
                        time.sleep(2)  # let the client's traffic settle on the survivor
                    finally:
                        os.kill(pid, signal.SIGCONT)
                else:
                    cluster.restart(lab, f"{node}-antrea-agent")
                time.sleep(1)
                wait_until(lambda node=node: status()[0] == node)  # back to its winner
                time.sleep(2)
                moved = next((t for t, n in timeline if t >= t0 and n == other), float("nan")) - t0
                samples = prober.between(t0, time.time())
                wrong = sum(1 for _t, seen in samples if seen and seen != ip)
                results[kind].append((moved, longest_outage(samples), wrong))
        sampling.set()
        for kind, rows in results.items():
            moved = [r[0] for r in rows]
            outage = [r[1] for r in rows]
            print(f"{kind:8s} status moved after {statistics.median(moved):.2f} s median "
                  f"({min(moved):.2f}-{max(moved):.2f}); client outage "
                  f"{statistics.median(outage):.2f} s median ({min(outage):.2f}-"
                  f"{max(outage):.2f}) over the whole round trip; connections with "
                  f"another source IP: {sum(r[2] for r in rows)}")
        return 0
    finally:
        if prober is not None:
            prober.close()
        if server is not None:
            server.terminate()
            server.wait(10)
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
