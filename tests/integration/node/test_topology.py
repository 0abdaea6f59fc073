"""The lab network: namespaces, underlay reachability, idempotence, clean destroy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from antrea_lab.node import netns, topology

pytestmark = pytest.mark.integration

LAB = f"h4t{os.getpid() % 10000}"


def listen_tcp(ns: str, ip: str) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket()
        s.bind((ip, 0))
        s.listen()
        return s

    return netns.run_in(ns, make)


def connect_from(ns: str, addr: tuple[str, int]) -> str:
    def run() -> str:
        with socket.create_connection(addr, timeout=2) as c:
            return c.getsockname()[0]

    return netns.run_in(ns, run)


@pytest.fixture
def lab():
    topo = topology.plan(LAB, 3)
    yield topo
    topology.destroy(topo)


def test_three_nodes_reach_each_other_and_external(lab):
    start = time.monotonic()
    topo = topology.create(LAB, 3)
    elapsed = time.monotonic() - start
    print(f"topology create for 3 nodes: {elapsed * 1000:.0f} ms")
    assert [n.ip for n in topo.nodes] == ["192.168.77.11", "192.168.77.12", "192.168.77.13"]
    assert all(netns.exists(n) for n in topo.all_netns())

    ext = listen_tcp(topo.external_netns, topo.external_ip)
    node3 = listen_tcp(topo.node("node3").netns, "192.168.77.13")
    gw = listen_tcp(topo.underlay_netns, topology.GATEWAY_IP)
    try:
        assert connect_from(f"antrea-{LAB}-node1", ext.getsockname()) == "192.168.77.11"
        assert connect_from(topo.node("node2").netns, node3.getsockname()) == "192.168.77.12"
        assert connect_from(topo.node("node3").netns, gw.getsockname()) == "192.168.77.13"
    finally:
        for s in (ext, node3, gw):
            s.close()

    out = subprocess.run(
        ["ip", "netns", "exec", topo.node("node1").netns, "sysctl", "-n",
         "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert out == ["1", "1"]
    links = json.loads(subprocess.run(
        ["ip", "-j", "-n", topo.underlay_netns, "link", "show", "master", "underlay"],
        capture_output=True, text=True, check=True).stdout)
    assert sorted(link["ifname"] for link in links) == ["external", "node1", "node2", "node3"]


def test_create_is_idempotent_and_destroy_from_dict_leaves_nothing(lab):
    first = topology.create(LAB, 2)
    again = topology.create(LAB, 2)
    assert first.to_dict() == again.to_dict()
    addrs = json.loads(subprocess.run(
        ["ip", "-j", "-n", first.node("node1").netns, "addr", "show", "eth0"],
        capture_output=True, text=True, check=True).stdout)
    assert [a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet"] == [
        "192.168.77.11"]
    # A crashed CLI only has lab.json: destroy from the serialised form.
    saved = json.loads(json.dumps(first.to_dict()))
    removed = topology.destroy(saved)
    assert sorted(removed) == sorted(first.all_netns())
    assert not [n for n in first.all_netns() if netns.exists(n)]
    assert topology.destroy(saved) == []
