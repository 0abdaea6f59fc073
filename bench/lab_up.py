"""How long a lab takes to come up and go down, and how fast pods start in it.

Run as root:  .venv/bin/python bench/lab_up.py [--nodes 3] [--pods 20]
Prints: time of each `up` step, total up time, time for N pods (spread by the scheduler)
to be Running with an IP, and `down` time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kubernetes import client

from antrea_lab import cluster
from antrea_lab.labdir import LabDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="antrea-bench-") as tmp:
        lab = LabDir("bench", root=Path(tmp))
        steps: list[str] = []
        start = time.monotonic()
        try:
            cluster.up(lab, args.nodes, progress=lambda m: steps.append(m) if "done" in m
                       else None)
            up_s = time.monotonic() - start
            for line in steps:
                print(line)
            print(f"lab up ({args.nodes} nodes): {up_s:.2f} s")
            api = client.CoreV1Api(cluster.kube_client(lab))
            api.create_namespace({"metadata": {"name": "bench"}})
            t0 = time.monotonic()
            for i in range(args.pods):
                api.create_namespaced_pod("bench", {
                    "metadata": {"name": f"p{i}"},
                    "spec": {"containers": [{"name": "c", "image": "x",
                                             "ports": [{"containerPort": 80}]}]}})
            while True:
                pods = api.list_namespaced_pod("bench").items
                ready = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
                if len(ready) == args.pods:
                    break
                if time.monotonic() - t0 > 300:
                    raise SystemExit(f"only {len(ready)}/{args.pods} pods running after 300 s")
                time.sleep(0.1)
            pods_s = time.monotonic() - t0
            print(f"{args.pods} pods Running with an IP: {pods_s:.2f} s "
                  f"({args.pods / pods_s:.1f} pods/s)")
        finally:
            t1 = time.monotonic()
            cluster.down(lab, progress=lambda _m: None)
            print(f"lab down: {time.monotonic() - t1:.2f} s")


if __name__ == "__main__":
    main()
