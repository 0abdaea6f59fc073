"""All-pairs pod connectivity: every pod probes every other pod from inside its netns.

One prober process per source pod (`python -m antrea_lab.workload probe`) tests all
destinations concurrently, so a matrix of N pods costs N process starts, not N².
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from antrea_lab.labdir import LabDir


@dataclass(frozen=True)
class PodEndpoint:
    namespace: str
    name: str
    ip: str
    netns: str  # where its processes run (the pod's netns, or the node's for hostNetwork)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Matrix:
    """reachable[src][dst] -> bool, plus the error seen for each failed pair."""

    pods: list[PodEndpoint]
    proto: str
    port: int
    reachable: dict[str, dict[str, bool]] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)

    def ok(self, src: str, dst: str) -> bool:
        return self.reachable[src][dst]

    def all_reachable(self) -> bool:
        return all(all(row.values()) for row in self.reachable.values())

    def render(self) -> str:
        """A truth table like Kubernetes' netpol e2e tests: '.' reachable, 'X' not."""
        keys = [p.key for p in self.pods]
        width = max([len(k) for k in keys] + [4])
        lines = [f"{self.proto.upper()}/{self.port}".ljust(width) + "  "
                 + "  ".join(str(i + 1).rjust(2) for i in range(len(keys)))]
        for i, src in enumerate(keys):
            cells = "  ".join(
                ("." if self.reachable[src][dst] else "X").rjust(2) for dst in keys
            )
            lines.append(f"{src.ljust(width)}  {cells}   ({i + 1})")
        return "\n".join(lines)


def pod_endpoints(lab: LabDir, pods: Iterable[Any]) -> list[PodEndpoint]:
    """Running pods with an IP, as kubernetes-client V1Pod objects, sorted by ns/name."""
    out: list[PodEndpoint] = []
    for pod in pods:
        if not pod.status or pod.status.phase != "Running" or not pod.status.pod_ip:
            continue
        if pod.metadata.deletion_timestamp is not None:
            continue
        if pod.spec.host_network:
            netns = lab.netns(pod.spec.node_name)
        else:
            netns = lab.pod_netns(pod.metadata.uid)
        out.append(PodEndpoint(pod.metadata.namespace, pod.metadata.name, pod.status.pod_ip,
                               netns))
    return sorted(out, key=lambda p: p.key)


def _target(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def probe_from(src: PodEndpoint, targets: Sequence[str], proto: str,
               timeout: float) -> dict[str, tuple[bool, str | None]]:
    """Run one prober inside `src`'s netns; map target -> (ok, error)."""
    argv = ["ip", "netns", "exec", src.netns, sys.executable, "-m", "antrea_lab.workload",
            "probe", "--proto", proto, "--timeout", str(timeout), *targets]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 4 + 20)
    results: dict[str, tuple[bool, str | None]] = {}
    for line in proc.stdout.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        results[row["target"]] = (bool(row["ok"]), row.get("error"))
    for target in targets:
        results.setdefault(target, (False, proc.stderr.strip()[-200:] or "no answer"))
    return results


def source_ip_seen(netns: str, host: str, port: int, timeout: float = 2.0) -> str | None:
    """Open one TCP connection from `netns` to a `workload serve --name @peer` server:
    the source IP it arrived with (after any SNAT on the way), None when it failed."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "antrea_lab.workload",
            "probe", "--hostname", "--timeout", str(timeout), _target(host, port)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 4 + 20).stdout
    row = json.loads(out or "{}")
    return str(row.get("hostname") or "") if row.get("ok") else None


def probe_matrix(pods: Sequence[PodEndpoint], proto: str = "tcp", port: int = 80,
                 timeout: float = 1.0, parallel: int = 8) -> Matrix:
    matrix = Matrix(list(pods), proto, port)
    by_target = {_target(p.ip, port): p for p in pods}

    def run(src: PodEndpoint) -> tuple[PodEndpoint, dict[str, tuple[bool, str | None]]]:
        return src, probe_from(src, list(by_target), proto, timeout)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for src, results in pool.map(run, pods):
            row = matrix.reachable.setdefault(src.key, {})
            for target, (ok, error) in results.items():
                dst = by_target[target]
                row[dst.key] = ok
                if not ok:
                    matrix.errors[(src.key, dst.key)] = error or "unreachable"
    return matrix
