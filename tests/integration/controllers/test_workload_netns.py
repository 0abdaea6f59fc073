"""The workload across two network namespaces joined by a veth pair (IPv4 and IPv6)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.integration

PY = sys.executable


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    server_ns, client_ns = f"antrea-h3-{tag}-srv", f"antrea-h3-{tag}-cli"
    created: list[str] = []
    try:
        for ns in (server_ns, client_ns):
            ip("netns", "add", ns)
            created.append(ns)
        ip("link", "add", f"h3s{tag}", "netns", server_ns, "type", "veth",
           "peer", "name", f"h3c{tag}", "netns", client_ns)
        for ns, dev, v4, v6 in ((server_ns, f"h3s{tag}", "10.199.0.1/24", "fd00:199::1/64"),
                                (client_ns, f"h3c{tag}", "10.199.0.2/24", "fd00:199::2/64")):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", v4, "dev", dev)
            ip("-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad")
            ip("-n", ns, "link", "set", dev, "up")
        yield server_ns, client_ns
    finally:
        for ns in created:  # deleting a netns removes its end of the veth pair too
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_probe_across_namespaces_tcp_udp_v4_v6(netns_pair: tuple[str, str]) -> None:
    server_ns, client_ns = netns_pair
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "env", "POD_NAME=srv-pod",
                               PY, "-m", "antrea_lab.workload", "serve", "--tcp", "80,81",
                               "--udp", "80"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        summary = json.loads(server.stdout.readline())
        assert {(e["proto"], e["port"]) for e in summary["listening"]} == \
            {("tcp", 80), ("tcp", 81), ("udp", 80)}

        def probe(proto: str, *targets: str, extra: tuple[str, ...] = ()) -> list[dict]:
            out = subprocess.run(["ip", "netns", "exec", client_ns, PY, "-m",
                                  "antrea_lab.workload", "probe", "--proto", proto,
                                  "--timeout", "2", *extra, *targets],
                                 capture_output=True, text=True, timeout=30, check=True)
            return [json.loads(line) for line in out.stdout.splitlines()]

        tcp = probe("tcp", "10.199.0.1:80", "10.199.0.1:81", "[fd00:199::1]:80",
                    "10.199.0.1:82")
        assert [r["ok"] for r in tcp] == [True, True, True, False]
        assert tcp[3]["error"] == "connection refused"
        udp = probe("udp", "10.199.0.1:80", "[fd00:199::1]:80")
        assert [r["ok"] for r in udp] == [True, True]
        [named] = probe("tcp", "10.199.0.1:81", extra=("--hostname",))
        assert named["hostname"] == "srv-pod"
        # No route to this address from the client namespace: fails, does not hang.
        [unreachable] = probe("tcp", "10.198.0.1:80")
        assert unreachable["ok"] is False and unreachable["error"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
