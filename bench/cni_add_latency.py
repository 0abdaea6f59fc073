"""CNI ADD latency through the lab's kubelet -> antrea-cni -> antrea-agent.

Run as root:  .venv/bin/python bench/cni_add_latency.py [--pods 100] [--batch 10]

Brings up a 1-node `--cni antrea` lab and creates `--pods` pods on it, `--batch` at a
time (the next batch once the previous one is Running). Prints p50/p90/p99/max of:
  - kubelet: the whole CNI ADD of the conflist (antrea-cni exec + gRPC to the agent +
    portmap), from the kubelet's log;
  - agent: the ADD as the agent's CNI server handled it (IPAM, veth, OVS port, flows),
    from the agent's log;
  - pod: creation in the API to Running with an IP (scheduling, sandbox, ADD, status).
The machine is shared with other work: read the figures as orders of magnitude.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client

from antrea_lab import cluster
from antrea_lab.labdir import LabDir

ADD_DONE = re.compile(r"CNI ADD done .*container=(?P<cid>[0-9a-f]+).* ms=(?P<ms>[0-9.]+)")


def add_latencies(log_file: Path, containers: set[str] | None = None) -> dict[str, float]:
    """container id -> ms of every "CNI ADD done ... ms=" line in a log."""
    out = {}
    for line in log_file.read_text(errors="replace").splitlines():
        match = ADD_DONE.search(line)
        if match and (containers is None or match["cid"] in containers):
            out[match["cid"]] = float(match["ms"])
    return out


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
    return (f"n={len(ordered):3d}  p50={at(0.50):7.1f}  p90={at(0.90):7.1f}  "
            f"p99={at(0.99):7.1f}  max={ordered[-1]:7.1f}  mean={statistics.mean(ordered):7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--name", default=f"cni{os.getpid() % 1000}", help="lab name")
    parser.add_argument("--api-port", type=int, default=None, help="lab API port")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces, Open vSwitch)")
    with tempfile.TemporaryDirectory(prefix="antrea-bench-") as tmp:
        lab = LabDir(args.name, root=Path(tmp))
        try:
            cluster.up(lab, 1, cni="antrea", api_port=args.api_port,
                       progress=lambda _m: None)
            api = client.CoreV1Api(cluster.kube_client(lab))
            api.create_namespace({"metadata": {"name": "bench"}})
            created: dict[str, float] = {}
            running: dict[str, float] = {}
            t0 = time.monotonic()
            for first in range(0, args.pods, args.batch):
                names = [f"p{i}" for i in range(first, min(first + args.batch, args.pods))]
                for name in names:
                    created[name] = time.monotonic()
                    api.create_namespaced_pod("bench", {"metadata": {"name": name}, "spec": {
                        "nodeName": "node1", "containers": [{"name": "c", "image": "echo",
                                                             "command": ["sleep", "3600"]}]}})
                deadline = time.monotonic() + 180
                while set(names) - set(running):
                    for pod in api.list_namespaced_pod("bench").items:
                        name = pod.metadata.name
                        if (name not in running and pod.status.phase == "Running"
                                and pod.status.pod_ip):
                            running[name] = time.monotonic()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"pods {sorted(set(names) - set(running))} "
                                           "not running after 180 s")
                    time.sleep(0.05)
            total = time.monotonic() - t0
            time.sleep(1)  # let the last log lines land
            kubelet = add_latencies(lab.log("node1-kubelet"))
            agent = add_latencies(lab.log("node1-antrea-agent"), set(kubelet))
        finally:
            cluster.down(lab, progress=lambda _m: None)
    print(f"{args.pods} pods on one node, {args.batch} at a time: {total:.1f} s "
          f"({args.pods / total:.1f} pods/s); latencies in ms")
    rows = [("CNI ADD, kubelet (antrea-cni exec + agent + portmap)", list(kubelet.values())),
            ("CNI ADD, the agent's own handling", list(agent.values())),
            ("pod created -> Running with an IP",
             [(running[n] - created[n]) * 1000 for n in running])]
    width = max(len(label) for label, _ in rows)
    for label, values in rows:
        print(f"  {label.ljust(width)}  {percentiles(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
