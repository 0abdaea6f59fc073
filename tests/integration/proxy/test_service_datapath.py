"""Service flows on a real userspace OVS, proven with real packets.

One node (module-scoped): a netns with its own OVS, br-int with antrea-gw0 and four pod
netns on veth ports, the core pod-networking flows plus AntreaProxy's, driven through
`Proxier` exactly as the plugin drives it (the Kubernetes side is replaced by hand-made
`ServicePort`s). Servers answer with their own IP so tests see which endpoint served.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from antrea_core.agent.bridge.lifecycle import ensure_bridge
from antrea_core.agent.bridge.ovsdb import OVSDB
from antrea_core.agent.openflow.bridge_client import OFBridge, assign_feature_ids
from antrea_core.agent.openflow.connection import OFConnection
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.agent.openflow.podnetwork import (
    FEATURE,
    NodeNetworkConfig,
    initial_flows,
    pod_flows,
)
from antrea_core.plugins.context import PodInterface
from antrea_lab.node import netns
from antrea_lab.node.ovs import NodeOVS
from antrea_proxy import serviceflows
from antrea_proxy.conntrack import appctl_runner
from antrea_proxy.model import Endpoint, ServicePort
from antrea_proxy.proxier import FEATURE as PROXY
from antrea_proxy.proxier import Proxier

pytestmark = pytest.mark.integration

LAYOUT = PipelineLayout.build([*core_tables(), *serviceflows.tables()])
PREFIX = f"hG-{os.getpid() % 10000}"
CIDR = "10.30.0"
GATEWAY = f"{CIDR}.1"
PORT = 18081
CLUSTER_IP = "10.96.7.7"

SERVER = textwrap.dedent("""
    import socket, sys, threading
    host, port = sys.argv[1], int(sys.argv[2])
    def tcp():
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port)); srv.listen(64)
        while True:
            conn, peer = srv.accept()
            conn.recv(1 << 16); conn.sendall(host.encode()); conn.close()
    def udp():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind((host, port))
        while True:
            data, peer = srv.recvfrom(1 << 16)
            srv.sendto(host.encode(), peer)
    threading.Thread(target=tcp, daemon=True).start()
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
""")

# Many requests in one process (starting Python per request is slow on a busy machine):
# prints one line per request: the server's answer or "error: <exception>".
CLIENT = textwrap.dedent("""
    import socket, sys
    proto, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sport = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    for _ in range(count):
        try:
            if proto == "tcp":
                s = socket.create_connection((host, port), timeout=3)
                s.sendall(b"hi"); print(s.recv(100).decode())
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", sport))
                s.connect((host, port)); s.send(b"hi"); print(s.recv(100).decode())
            s.close()
        except OSError as exc:
            print(f"error: {type(exc).__name__}")
""")


def run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Node:
    base: Path
    netns: str = ""
    ovs: NodeOVS | None = None
    ovsdb: OVSDB | None = None
    conn: OFConnection | None = None
    proxier: Proxier | None = None
    pods: dict[str, PodInterface] = field(default_factory=dict)
    servers: list[subprocess.Popen] = field(default_factory=list)
    sctp_served: set[str] = field(default_factory=set)
    created: list[str] = field(default_factory=list)

    def make_netns(self, what: str) -> str:
        name = f"{PREFIX}-{what}"
        if netns.ensure(name):
            self.created.append(name)
        return name

    def start(self) -> None:
        self.netns = self.make_netns("n")
        self.ovs = NodeOVS(self.netns, self.base / "ovs")
        self.ovs.start()
        self.ovsdb = OVSDB(self.ovs.db_sock)
        bridge = ensure_bridge(self.ovsdb, "br-int", datapath_type="netdev")
        gw = bridge.ensure_gateway_port("antrea-gw0", mtu=1500)
        run("ip", "-n", self.netns, "addr", "add", f"{GATEWAY}/24", "dev", "antrea-gw0")
        run("ip", "-n", self.netns, "link", "set", "antrea-gw0", "up")
        assert gw.ofport is not None
        cfg = NodeNetworkConfig(gateway_ofport=gw.ofport, gateway_mac=gw.mac,
                                gateway_ips=(GATEWAY,), pod_cidrs=(f"{CIDR}.0/24",))
        self.conn = OFConnection(str(self.ovs.run_dir / "br-int.mgmt"))
        self.conn.start(timeout=10)
        of = OFBridge(LAYOUT, self.conn, feature_ids=assign_feature_ids([PROXY]))
        of.install_pipeline()
        of.install(initial_flows(cfg, LAYOUT), FEATURE)
        self.proxier = Proxier(of, LAYOUT, serviceflows.ProxyFlowConfig(
            learn_cookie=of.cookie(PROXY), stateless_sctp=True),
            conntrack=appctl_runner(str(self.ovs.run_dir)))
        self.conn.add_packet_in_handler(of.feature_id(PROXY), self.proxier.handle_packet_in)
        self.proxier.install_initial()
        for i, name in enumerate(("p1", "p2", "p3", "p4"), start=2):
            pod_ns = self.make_netns(name)
            host_if = f"hG{os.getpid() % 10000}{name}"
            ip = f"{CIDR}.{i}"
            run("ip", "-n", self.netns, "link", "add", host_if, "type", "veth", "peer",
                "name", "eth0", "netns", pod_ns)
            run("ip", "-n", self.netns, "link", "set", host_if, "up")
            run("ip", "-n", pod_ns, "link", "set", "lo", "up")
            run("ip", "-n", pod_ns, "link", "set", "eth0", "up")
            run("ip", "-n", pod_ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            run("ip", "-n", pod_ns, "route", "add", "default", "via", GATEWAY)
            run("ip", "netns", "exec", pod_ns, "ethtool", "-K", "eth0", "tx", "off")
            mac = json.loads(run("ip", "-n", pod_ns, "-j", "link", "show", "eth0"))[0]["address"]
            ofport = bridge.add_pod_port(host_if, {"ip-address": ip, "attached-mac": mac})
            pod = PodInterface("default", name, pod_ns, host_if, (ip,), mac, ofport)
            of.install(pod_flows(cfg, pod), FEATURE)
            self.pods[name] = pod
            if name != "p1":
                self.serve(pod_ns, ip)

    def serve(self, ns: str, host: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER,
                                 host, str(PORT)], stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def serve_sctp(self, name: str) -> None:
        """SCTP association set-up answered with the pod's IP (raw sockets: the kernel
        here has no SCTP)."""
        pod = self.pods[name]
        if name in self.sctp_served:
            return
        proc = subprocess.Popen(["ip", "netns", "exec", pod.container_id, sys.executable,
                                 "-c", SCTP_SERVER, pod.ips[0], str(PORT)],
                                stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        self.sctp_served.add(name)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def request(self, pod: str, proto: str, host: str, port: int = 80,
                count: int = 1, sport: int = 0) -> list[str]:
        out = run("ip", "netns", "exec", self.pods[pod].container_id, sys.executable, "-c",
                  CLIENT, proto, host, str(port), str(count), str(sport))
        return out.splitlines()

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=10)
        if self.conn is not None:
            self.conn.close()
        if self.ovsdb is not None:
            self.ovsdb.close()
        if self.ovs is not None:
            self.ovs.stop()
        for name in reversed(self.created):
            netns.delete(name)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    base = Path(tempfile.mkdtemp(prefix="hGsv", dir="/tmp"))
    node = Node(base)
    try:
        node.start()
        yield node
    finally:
        node.close()
        shutil.rmtree(base, ignore_errors=True)


def ep(name: str, node: Node) -> Endpoint:
    return Endpoint(node.pods[name].ips[0], PORT, "n1")


def service(node: Node, *names: str, protocol: str = "TCP", **kwargs: object) -> ServicePort:
    return ServicePort("default", "svc", "", protocol, 80, (CLUSTER_IP,),
                       endpoints=tuple(sorted(ep(n, node) for n in names)), local_node="n1",
                       **kwargs)  # type: ignore[arg-type]


def sync(node: Node, *ports: ServicePort) -> None:
    assert node.proxier is not None
    node.proxier.sync(ports)


def test_cluster_ip_balances_tcp_and_udp_flows_of_one_client_over_endpoints(
        node: Node):
    sync(node, service(node, "p2", "p3"), service(node, "p2", "p3", protocol="UDP"))
    p2, p3 = node.pods["p2"].ips[0], node.pods["p3"].ips[0]
    tcp = node.request("p1", "tcp", CLUSTER_IP, count=30)
    assert set(tcp) == {p2, p3}, tcp
    # One client's UDP flows (one source port each) spread over the endpoints: the
    # select groups hash the 5-tuple in the datapath (OVS's default hash would leave UDP
    # ports out and send them all to one endpoint).
    udp = node.request("p1", "udp", CLUSTER_IP, count=20)
    assert set(udp) == {p2, p3}, udp
    # ... while one UDP flow (same source port) keeps its endpoint.
    assert len(set(node.request("p1", "udp", CLUSTER_IP, count=5, sport=41999))) == 1
    assert node.ovs is not None
    groups = node.ovs.ofctl("-O", "OpenFlow15", "dump-groups", "br-int").stdout
    assert "selection_method=dp_hash" in groups, groups


def test_service_without_endpoints_rejects_tcp_and_udp(node: Node):
    sync(node, service(node), service(node, protocol="UDP"))
    started = time.monotonic()
    assert node.request("p1", "tcp", CLUSTER_IP) == ["error: ConnectionRefusedError"]
    assert node.request("p1", "udp", CLUSTER_IP) == ["error: ConnectionRefusedError"]
    assert time.monotonic() - started < 5  # refused at once, not timed out


def test_pod_reaches_itself_through_its_service(node: Node):
    sync(node, service(node, "p2"))
    p2 = node.pods["p2"].ips[0]
    answers = node.request("p2", "tcp", CLUSTER_IP, count=3)
    assert answers == [p2] * 3


def test_client_ip_affinity_sticks_to_one_endpoint(node: Node):
    sync(node, service(node, "p2", "p3", "p4", affinity_timeout=60))
    answers = node.request("p1", "tcp", CLUSTER_IP, count=20)
    assert len(set(answers)) == 1 and not answers[0].startswith("error"), answers


def test_endpoint_removal_clears_stale_udp_entries_of_its_clients(node: Node):
    p2, p3 = node.pods["p2"].ips[0], node.pods["p3"].ips[0]
    full = service(node, "p2", "p3", protocol="UDP")
    sync(node, full)
    # Same source port every time: the same conntrack entry while it exists.
    [first] = node.request("p1", "udp", CLUSTER_IP, sport=40999)
    assert first in (p2, p3)
    assert node.request("p1", "udp", CLUSTER_IP, count=3, sport=40999) == [first] * 3
    other = p3 if first == p2 else p2
    remaining = tuple(e for e in full.endpoints if e.ip == other)
    started = time.monotonic()
    sync(node, replace(full, endpoints=remaining))
    # The removed endpoint still runs: only a flushed entry sends the client elsewhere.
    assert node.request("p1", "udp", CLUSTER_IP, sport=40999) == [other]
    assert time.monotonic() - started < 2


def test_removed_service_leaves_no_service_flows(node: Node):
    sync(node, service(node, "p2", "p3"))
    sync(node)
    assert node.ovs is not None
    flows = node.ovs.ofctl("-O", "OpenFlow15", "dump-flows", "br-int").stdout
    assert CLUSTER_IP not in flows
    groups = node.ovs.ofctl("-O", "OpenFlow15", "dump-groups", "br-int").stdout
    assert "group_id" not in groups


def _upcalls(node: Node) -> int:
    assert node.ovs is not None
    out = node.ovs.appctl("dpif-netdev/pmd-stats-show").stdout
    return sum(int(line.split(":")[1].split()[0]) for line in out.splitlines()
               if line.strip().startswith("miss with"))


def test_new_connections_to_a_one_endpoint_service_reuse_datapath_flows(node: Node):
    """Performance guard: a one-endpoint port loads its endpoint without the select
    group, so new connections reuse the datapath's flows; through a 5-tuple
    `selection_method=hash` group each one costs an upcall (dp_hash: one per hash value)."""
    assert node.ovs is not None
    sync(node, service(node, "p2"))
    p2 = node.pods["p2"].ips[0]
    assert node.request("p1", "tcp", CLUSTER_IP, count=3) == [p2] * 3  # flows installed
    node.ovs.appctl("dpif-netdev/pmd-stats-clear")
    assert node.request("p1", "tcp", CLUSTER_IP, count=30) == [p2] * 30
    assert _upcalls(node) < 10


SCTP_SERVER = textwrap.dedent("""
    import asyncio, sys
    from antrea_lab.sctpinit import Responder
    async def main():
        responder = Responder([int(sys.argv[2])], sys.argv[1])
        print("ready", flush=True)
        await responder.run()
    asyncio.run(main())
""")

SCTP_CLIENT = textwrap.dedent("""
    import asyncio, sys
    from antrea_lab.sctpinit import probe
    async def main():
        for _ in range(int(sys.argv[3])):
            try:
                print(await probe(sys.argv[1], int(sys.argv[2]), 3, int(sys.argv[4])))
            except (OSError, TimeoutError) as exc:
                print(f"error: {type(exc).__name__} {exc}")
    asyncio.run(main())
""")


@pytest.fixture(scope="module")
def sctp_servers(node: Node) -> None:
    for name in ("p2", "p3"):
        node.serve_sctp(name)


def _sctp(node: Node, pod: str, host: str, count: int = 1, port: int = 80,
          sport: int = 0) -> list[str]:
    """One association set-up per count (each from a new random port unless sport)."""
    out = run("ip", "netns", "exec", node.pods[pod].container_id, sys.executable, "-c",
              SCTP_CLIENT, host, str(port), str(count), str(sport))
    return out.splitlines()


def test_sctp_cluster_ip_balances_associations_and_translates_both_ways(
        node: Node, sctp_servers: None):
    sync(node, service(node, "p2", "p3", protocol="SCTP"))
    p2, p3 = node.pods["p2"].ips[0], node.pods["p3"].ips[0]
    # Each INIT-ACK came back from the Service address and port with a valid CRC32c,
    # naming the endpoint that answered; one client's associations spread over both.
    answers = _sctp(node, "p1", CLUSTER_IP, count=20)
    assert set(answers) == {p2, p3}, answers
    # No conntrack NAT on this datapath (it would key by address pair): conntrack only
    # saw the translated packets.
    assert node.ovs is not None
    dump = node.ovs.appctl("dpctl/dump-conntrack").stdout.splitlines()
    sctp = [line for line in dump if line.startswith("sctp")]
    assert sctp and not [line for line in sctp if f"dst={CLUSTER_IP}" in line], sctp


def test_sctp_association_keeps_its_endpoint_while_endpoints_are_added(
        node: Node, sctp_servers: None):
    two = service(node, "p2", "p3", protocol="SCTP")
    sync(node, two)
    [first] = _sctp(node, "p1", CLUSTER_IP, sport=45001)
    assert _sctp(node, "p1", CLUSTER_IP, count=5, sport=45001) == [first] * 5
    node.serve_sctp("p4")
    sync(node, service(node, "p2", "p3", "p4", protocol="SCTP"))
    assert _sctp(node, "p1", CLUSTER_IP, count=5, sport=45001) == [first] * 5
    # ... while new associations may use the new endpoint.
    assert node.pods["p4"].ips[0] in _sctp(node, "p1", CLUSTER_IP, count=20)


def test_sctp_service_without_endpoints_rejects(node: Node, sctp_servers: None):
    sync(node, service(node, protocol="SCTP"))
    started = time.monotonic()
    assert _sctp(node, "p1", CLUSTER_IP) == ["error: ConnectionRefusedError port unreachable"]
    assert time.monotonic() - started < 3


def test_sctp_replies_of_two_frontend_ports_sharing_an_endpoint_port_get_their_own(
        node: Node, sctp_servers: None):
    """One client, one Service address, two ports to the same endpoint port: conntrack
    keeps one entry for both (address pair), so only the per-association learned reply
    flows can give each INIT-ACK its own source port back."""
    a = service(node, "p2", protocol="SCTP")
    b = replace(a, port_name="other", port=81)
    sync(node, a, b)
    p2 = node.pods["p2"].ips[0]
    for _ in range(2):
        assert _sctp(node, "p1", CLUSTER_IP, port=80) == [p2]
        assert _sctp(node, "p1", CLUSTER_IP, port=81) == [p2]
