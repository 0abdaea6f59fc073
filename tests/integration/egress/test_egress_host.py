"""The Egress Node's host side with real packets: a "pod" netns behind the node's
antrea-gw0, an "external" netns on the node's uplink. The external server reports the
source address each connection arrives with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from antrea_core.agent.snat import PodSNAT
from antrea_egress.addresses import EgressAddresses, label_for
from antrea_egress.hostsnat import EgressSNAT, ipset_name
from antrea_lab.probe import source_ip_seen

pytestmark = pytest.mark.integration

PY = sys.executable
NODE_IP, EXTERNAL_IP, POD_IP = "192.168.60.1", "192.168.60.254", "10.244.9.10"
EGRESS_IP, OTHER_EGRESS_IP = "192.168.60.100", "192.168.60.101"
PORT = 8080


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Host:
    node: str
    pod: str
    external: str

    def path(self, ns: str) -> str:
        return f"/run/netns/{ns}"

    def source_seen(self) -> str:
        """The source IP the external server saw for a fresh connection from the pod."""
        seen = source_ip_seen(self.pod, EXTERNAL_IP, PORT, timeout=3)
        assert seen is not None, "the connection failed"
        return seen

    def uplink_mac(self) -> str:
        return json.loads(ip("-n", self.node, "-j", "link", "show", "uplink"))[0]["address"]

    def external_neighbour(self, address: str) -> str | None:
        rows = json.loads(ip("-n", self.external, "-j", "neigh", "show", address))
        return rows[0].get("lladdr") if rows else None


@pytest.fixture
def host() -> Iterator[Host]:
    tag = uuid.uuid4().hex[:6]
    h = Host(f"antrea-ieg-{tag}-node", f"antrea-ieg-{tag}-pod", f"antrea-ieg-{tag}-ext")
    created: list[str] = []
    server = None
    try:
        for ns in (h.node, h.pod, h.external):
            ip("netns", "add", ns)
            created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", "antrea-gw0", "netns", h.node, "type", "veth",
           "peer", "name", "eth0", "netns", h.pod)
        ip("link", "add", "uplink", "netns", h.node, "type", "veth",
           "peer", "name", "eth0", "netns", h.external)
        for ns, dev, cidr in ((h.node, "antrea-gw0", "10.244.9.1/24"),
                              (h.node, "uplink", f"{NODE_IP}/24"),
                              (h.pod, "eth0", f"{POD_IP}/24"),
                              (h.external, "eth0", f"{EXTERNAL_IP}/24")):
            ip("-n", ns, "addr", "add", cidr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", h.pod, "route", "add", "default", "via", "10.244.9.1")
        subprocess.run(["ip", "netns", "exec", h.node, "sysctl", "-qw",
                        "net.ipv4.ip_forward=1"], check=True)
        server = subprocess.Popen(["ip", "netns", "exec", h.external, PY, "-m",
                                   "antrea_lab.workload", "serve", "--tcp", str(PORT),
                                   "--name", "@peer"], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        assert json.loads(server.stdout.readline())["listening"]
        # The core's masquerade of local pods, as the agent installs it.
        PodSNAT("antrea-gw0", ["10.244.9.0/24"], netns=h.path(h.node)).install()
        yield h
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_egress_ip_replaces_the_masquerade_for_its_pods_only_and_comes_off(host: Host):
    node = host.path(host.node)
    assert host.source_seen() == NODE_IP  # the core's masquerade, before any Egress
    snat = EgressSNAT("antrea-gw0", netns=node)
    snat.install()
    snat.install()  # idempotent: one jump
    rules = subprocess.run(["ip", "netns", "exec", host.node, "iptables", "-t", "nat", "-S",
                            "POSTROUTING"], capture_output=True, text=True).stdout
    assert rules.count("-j ANTREA-EGRESS") == 1
    assert rules.index("-j ANTREA-EGRESS") < rules.index("-j ANTREA-POSTROUTING")

    addresses = EgressAddresses([NODE_IP], netns=node)
    assert addresses.sync({EGRESS_IP: 32}) == [EGRESS_IP]
    snat.sync({EGRESS_IP: frozenset({POD_IP})})
    assert host.source_seen() == EGRESS_IP

    # Another pod's IP in the set instead: this pod is masqueraded again.
    snat.sync({EGRESS_IP: frozenset({"10.244.9.11"})})
    assert host.source_seen() == NODE_IP
    # Moved to another Egress IP: the old IP's set goes with its rule.
    assert addresses.sync({OTHER_EGRESS_IP: 32}) == [OTHER_EGRESS_IP]
    snat.sync({OTHER_EGRESS_IP: frozenset({POD_IP})})
    assert host.source_seen() == OTHER_EGRESS_IP
    sets = subprocess.run(["ip", "netns", "exec", host.node, "ipset", "list", "-name"],
                          capture_output=True, text=True).stdout.split()
    assert ipset_name(OTHER_EGRESS_IP) in sets and ipset_name(EGRESS_IP) not in sets

    snat.sync({})
    assert host.source_seen() == NODE_IP
    addresses.sync({})
    shown = ip("-n", host.node, "-4", "addr", "show", "dev", "uplink")
    assert OTHER_EGRESS_IP not in shown and NODE_IP in shown


def test_except_cidrs_keep_the_masquerade(host: Host):
    node = host.path(host.node)
    EgressAddresses([NODE_IP], netns=node).sync({EGRESS_IP: 32})
    snat = EgressSNAT("antrea-gw0", except_cidrs=[f"{EXTERNAL_IP}/32"], netns=node)
    snat.install()
    snat.sync({EGRESS_IP: frozenset({POD_IP})})
    assert host.source_seen() == NODE_IP


def test_a_taken_over_ip_is_announced_and_only_our_addresses_are_released(host: Host):
    node = host.path(host.node)
    # The external host still maps the IP to the Node that held it before.
    ip("-n", host.external, "neigh", "replace", EGRESS_IP, "lladdr", "02:00:00:00:00:01",
       "dev", "eth0", "nud", "stale")
    # An address the operator configured by hand on the same device.
    ip("-n", host.node, "addr", "add", f"{OTHER_EGRESS_IP}/32", "dev", "uplink")
    addresses = EgressAddresses([NODE_IP], netns=node)
    addresses.sync({EGRESS_IP: 32})
    labels = json.loads(ip("-n", host.node, "-j", "-4", "addr", "show", "dev", "uplink"))
    by_ip = {a["local"]: a.get("label") for a in labels[0]["addr_info"]}
    assert by_ip[EGRESS_IP] == label_for("uplink")
    deadline = time.monotonic() + 5  # the repeats outlast the neighbour's 1 s locktime
    while host.external_neighbour(EGRESS_IP) != host.uplink_mac():
        assert time.monotonic() < deadline, host.external_neighbour(EGRESS_IP)
        time.sleep(0.1)
    # A restarted agent (new instance) owning nothing removes its own address only.
    EgressAddresses([NODE_IP], netns=node).sync({})
    shown = ip("-n", host.node, "-4", "addr", "show", "dev", "uplink")
    assert EGRESS_IP not in shown and OTHER_EGRESS_IP in shown
    addresses.close()
