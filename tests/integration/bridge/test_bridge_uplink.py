"""attach_uplink: the node's address moves onto br-phy and the node still reaches its peer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

from antrea_core.agent.bridge.interface_store import KEY_TYPE
from antrea_core.agent.bridge.lifecycle import attach_uplink
from antrea_lab.node import netns

pytestmark = pytest.mark.integration

PORT = 18080
SERVER = textwrap.dedent(f"""
    import socket
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", {PORT}))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, peer = srv.accept()
        conn.sendall(b"pong")
        conn.close()
""")


def tcp_reply(ns: str, host: str) -> str:
    """Connect from inside netns `ns` with Python sockets; returns what the peer sent."""
    client = (f"import socket; s = socket.create_connection(({host!r}, {PORT}), timeout=5); "
              "print(s.recv(16).decode())")
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", client],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]


@pytest.fixture
def peer(node, make_netns: Callable[[str], str]) -> Iterator[str]:
    """A second netns wired to the node's eth0 by a veth, serving TCP on PORT.

    node eth0: 10.99.0.1/24, fd99::1/64, route 10.98.0.0/24 via the peer;
    peer: 10.99.0.2/24, fd99::2/64 and 10.98.0.1/32 on lo.
    """
    name = make_netns("peer")
    node.ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0", "netns", name)
    for ns, dev, v4, v6 in ((node.netns, "eth0", "10.99.0.1/24", "fd99::1/64"),
                            (name, "peer0", "10.99.0.2/24", "fd99::2/64")):
        run = ["ip", "-n", ns]
        subprocess.run([*run, "addr", "add", v4, "dev", dev], check=True)
        subprocess.run([*run, "addr", "add", v6, "dev", dev, "nodad"], check=True)
        subprocess.run([*run, "link", "set", dev, "up"], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "-n", name, "addr", "add", "10.98.0.1/32", "dev", "lo"], check=True)
    node.ip("route", "add", "10.98.0.0/24", "via", "10.99.0.2", "dev", "eth0")
    # Frames from the peer reach the node's kernel through userspace OVS, which does not
    # complete partial checksums: the peer must send full ones.
    netns.disable_tx_checksum(name, "peer0")
    server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield name
    finally:
        server.terminate()
        server.wait(timeout=10)


def tcp_in_segments(ns: str) -> int:
    """TCP segments the kernel of netns `ns` received (the TCP MIB covers IPv4 and IPv6)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"],
                         capture_output=True, text=True, check=True).stdout
    head, values = [line.split() for line in out.splitlines() if line.startswith("Tcp:")]
    return int(values[head.index("InSegs")])


def addresses(node, dev: str) -> set[str]:
    [link] = node.ip_json("addr", "show", "dev", dev)
    return {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]
            if not a["local"].startswith("fe80:")}


def test_attach_uplink_moves_address_to_br_phy_and_peer_stays_reachable(node, peer: str):
    for host in ("10.99.0.2", "10.98.0.1", "fd99::2"):
        assert tcp_reply(node.netns, host) == "pong"  # before: plain kernel routing
    [eth0] = node.ip_json("link", "show", "eth0")

    done = attach_uplink(node.ovsdb, bridge="br-phy", uplink="eth0", netns=node.netns)

    assert sorted(done.moved_addresses) == ["10.99.0.1/24", "fd99::1/64"]
    assert done.moved_routes == ["10.98.0.0/24 via 10.99.0.2"]
    assert done.ofport > 0 and done.mac == eth0["address"]
    assert addresses(node, "br-phy") == {"10.99.0.1/24", "fd99::1/64"}
    assert addresses(node, "eth0") == set()
    [br_addrs] = node.ip_json("addr", "show", "dev", "br-phy")
    moved_v6 = [a for a in br_addrs["addr_info"] if a["local"] == "fd99::1"]
    assert moved_v6 and not moved_v6[0].get("tentative")  # usable at once, no second DAD
    [route] = node.ip_json("route", "show", "10.98.0.0/24")
    assert route["dev"] == "br-phy" and route["gateway"] == "10.99.0.2"
    [br_phy] = node.ip_json("link", "show", "br-phy")
    assert br_phy["address"] == eth0["address"] and br_phy["mtu"] == eth0["mtu"]
    assert node.column("Bridge", "br-phy", "datapath_type") == "netdev"
    assert node.column("Bridge", "br-phy", "fail_mode") == "standalone"
    assert node.column("Interface", "eth0", "external_ids") == {KEY_TYPE: "uplink"}
    assert node.ovs.vsctl("list-ports", "br-phy").stdout.split() == ["eth0"]
    chain = subprocess.run(["ip", "netns", "exec", node.netns, "nft", "list", "table",
                            "netdev", "antrea_uplink"], capture_output=True, text=True,
                           check=True).stdout
    assert 'device "eth0"' in chain and "policy drop" in chain

    segments_before = tcp_in_segments(node.netns)
    for host in ("10.99.0.2", "10.98.0.1", "fd99::2"):
        assert tcp_reply(node.netns, host) == "pong"  # now through OVS's br-phy
    # The kernel got each segment once (via br-phy), not also directly from eth0:
    # measured 4 per connection (8 when the kernel also received on eth0).
    assert tcp_in_segments(node.netns) - segments_before <= 3 * 5

    again = attach_uplink(node.ovsdb, bridge="br-phy", uplink="eth0", netns=node.netns)
    assert again.moved_addresses == [] and again.moved_routes == []
    assert again.ofport == done.ofport
    assert addresses(node, "br-phy") == {"10.99.0.1/24", "fd99::1/64"}
    assert tcp_reply(node.netns, "10.98.0.1") == "pong"
