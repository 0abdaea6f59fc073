"""Readiness probes (tcpSocket, httpGet, exec), run from the node netns like a kubelet's."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from antrea_lab.node.containers import Container

log = logging.getLogger("antrea.lab.kubelet.prober")


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"unknown named port {port!r}")


def run_probe(probe: dict[str, Any], container: dict[str, Any], pod_ip: str,
              netns: str | None) -> bool:
    """One probe attempt; True = success."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            addr = (spec.get("host") or pod_ip, _port(container, spec["port"]))
            with socket.create_connection(addr, timeout=timeout):
                return True
        if "httpGet" in probe:
            spec = probe["httpGet"]
            host = spec.get("host") or pod_ip
            host = f"[{host}]" if ":" in host else host
            scheme = str(spec.get("scheme") or "HTTP").lower()
            url = f"{scheme}://{host}:{_port(container, spec['port'])}{spec.get('path') or '/'}"
            req = urllib.request.Request(url)
            for h in spec.get("httpHeaders") or []:
                req.add_header(h["name"], h["value"])
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return 200 <= resp.status < 400
        if "exec" in probe:
            argv = list(probe["exec"].get("command") or [])
            if netns:
                argv = ["ip", "netns", "exec", netns, *argv]
            return subprocess.run(argv, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, ValueError, subprocess.TimeoutExpired, urllib.error.URLError):
        return False
    return True  # a probe without a handler cannot fail


class ReadinessTracker:
    """Applies periods and thresholds; ``due``/``record`` are called by the supervisor."""

    def __init__(self) -> None:
        self.next_at: dict[int, float] = {}

    @staticmethod
    def probe_of(c: Container) -> dict[str, Any] | None:
        return c.spec.get("readinessProbe")

    def due(self, c: Container) -> bool:
        probe = self.probe_of(c)
        if probe is None or not c.state.pid:
            return False
        first = c.state.started_wall + float(probe.get("initialDelaySeconds") or 0)
        return time.time() >= max(first, self.next_at.get(id(c), 0.0))

    def record(self, c: Container, ok: bool) -> bool:
        """Count one result; True if the container's readiness changed."""
        probe = self.probe_of(c) or {}
        self.next_at[id(c)] = time.time() + float(probe.get("periodSeconds") or 10)
        st = c.state
        if ok:
            st.probe_successes, st.probe_failures = st.probe_successes + 1, 0
        else:
            st.probe_failures, st.probe_successes = st.probe_failures + 1, 0
        before = c.probe_ready
        if ok and st.probe_successes >= int(probe.get("successThreshold") or 1):
            c.probe_ready = True
        elif not ok and st.probe_failures >= int(probe.get("failureThreshold") or 3):
            c.probe_ready = False
        return c.probe_ready != before
