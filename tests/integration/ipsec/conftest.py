"""Two "nodes" (netns) joined by a veth underlay, each with its own charon, and the
agent's kernel VXLAN device (`tunnelport`, FDB entry per peer) carrying inner addresses.
Nothing is configured in IPsec yet: tests load the PSK, the peers and the fail-closed
rules (`Pair.configure`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from waiting import wait_for

from antrea_core.agent.podnet.netns import run_in_netns
from antrea_ipsec.charon import Charon, CharonConfig
from antrea_ipsec.failclosed import FailClosed
from antrea_ipsec.sa import Peer, SAManager
from antrea_ipsec.tunnelport import DEVICE, DeviceSpec, EncryptedTunnelPort, peer_mac
from antrea_lab.capture import capture

PY = sys.executable
PSK = "antrea-hn-test-psk"
TCP_PORT = 8080
UNDERLAY = "underlay"


def run(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout)


@dataclass
class Node:
    name: str  # the netns, also the node name given to IKE
    ip: str  # underlay / IKE / tunnel IP
    inner: str  # address on the VXLAN device
    charon: Charon
    sa: SAManager
    fail_closed: FailClosed


@dataclass
class Capture:
    """Packets seen on an underlay, by UDP port."""

    vxlan: int  # plaintext kernel VXLAN, UDP 4789
    esp_in_udp: int  # UDP 4500: ESP (and IKE after NAT-T)
    ike: int  # UDP 500
    total: int


@dataclass
class Pair:
    a: Node
    b: Node
    state_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def peer_of(self, node: Node) -> Peer:
        other = self.b if node is self.a else self.a
        return Peer(node_name=other.name, local_ip=node.ip, remote_ip=other.ip)

    def configure(self, node: Node, fail_closed: bool = True) -> None:
        """PSK + the connection to the other node (+ the drop rules for it)."""
        other = self.b if node is self.a else self.a
        if fail_closed:
            node.fail_closed.install()
            node.fail_closed.add_peer(other.ip)
        node.sa.load_psk(PSK)
        node.sa.load_peer(self.peer_of(node))

    def wait_installed(self, timeout: float = 20) -> None:
        wait_for(lambda: self.a.sa.child_installed(self.b.name)
                 and self.b.sa.child_installed(self.a.name), timeout,
                 "CHILD SAs installed on both nodes")

    def probe(self, src: Node, dst: Node, proto: str = "icmp", timeout: float = 2) -> bool:
        """One echo round trip from `src` to `dst`'s inner address."""
        out = subprocess.run(["ip", "netns", "exec", src.name, PY, "-m", "antrea_lab.workload",
                              "probe", "--proto", proto, "--timeout", str(timeout),
                              f"{dst.inner}:{TCP_PORT}"],
                             capture_output=True, text=True, timeout=timeout + 20)
        lines = out.stdout.strip().splitlines()
        assert lines, f"probe printed nothing: {out.stderr}"
        return bool(json.loads(lines[-1])["ok"])

    def serve(self, node: Node) -> None:
        """A TCP echo server on `node`'s inner address (stopped at teardown)."""
        p = subprocess.Popen(["ip", "netns", "exec", node.name, PY, "-m", "antrea_lab.workload",
                              "serve", "--tcp", str(TCP_PORT)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_for(lambda: f":{TCP_PORT} " in run("ip", "netns", "exec", node.name, "ss", "-ltnH")
                 .stdout, 15, f"echo server listening in {node.name}")

    @contextmanager
    def capture(self, node: Node) -> Iterator[list[Capture]]:
        """tcpdump on `node`'s underlay while the block runs; the result is appended to
        the yielded list when the block ends."""
        path = self.state_dir / f"{node.name}-{time.monotonic_ns()}.pcap"
        result: list[Capture] = []
        with capture(node.name, path, interface=UNDERLAY) as pcap:
            yield result
        result.append(Capture(vxlan=pcap.count("udp port 4789"),
                              esp_in_udp=pcap.count("udp port 4500"),
                              ike=pcap.count("udp port 500"),
                              total=pcap.count()))


def _node(name: str, ip: str, inner: str, state: Path) -> Node:
    cfg = CharonConfig(netns=name, state_dir=state / name.rsplit("-", 1)[-1])
    return Node(name, ip, inner, Charon(cfg), SAManager(cfg.vici_socket, name),
                FailClosed(name))


@pytest.fixture
def pair() -> Iterator[Pair]:
    tag = uuid.uuid4().hex[:6]
    # A short base dir: the VICI socket path must stay < 108 bytes.
    state = Path(tempfile.mkdtemp(prefix=f"hn-ipsec-{tag}-", dir="/tmp"))
    pr = Pair(_node(f"antrea-hn-{tag}-a", "192.168.99.1", "10.99.0.1", state),
              _node(f"antrea-hn-{tag}-b", "192.168.99.2", "10.99.0.2", state), state)
    created: list[str] = []
    try:
        for n in (pr.a, pr.b):
            run("ip", "netns", "add", n.name)
            created.append(n.name)
            run("ip", "-n", n.name, "link", "set", "lo", "up")
        run("ip", "link", "add", UNDERLAY, "netns", pr.a.name, "type", "veth",
            "peer", "name", UNDERLAY, "netns", pr.b.name)
        for n, other in ((pr.a, pr.b), (pr.b, pr.a)):
            run("ip", "-n", n.name, "addr", "add", f"{n.ip}/24", "dev", UNDERLAY)
            run("ip", "-n", n.name, "link", "set", UNDERLAY, "up")
            # The agent's device: one VXLAN device, a static FDB entry per peer MAC.
            port = EncryptedTunnelPort(DeviceSpec(local_ip=n.ip, mtu=1350))
            run_in_netns(f"/run/netns/{n.name}", port.ensure)
            run_in_netns(f"/run/netns/{n.name}", lambda p=port, o=other: p.set_peer(o.ip))
            # The kernel's IP stack stands in for OVS here: the device answers to its
            # own peer MAC, and the peer's inner address resolves to the peer's MAC
            # (OVS rewrites the destination MAC the same way).
            run("ip", "-n", n.name, "link", "set", DEVICE, "address", peer_mac(n.ip))
            run("ip", "-n", n.name, "addr", "add", f"{n.inner}/24", "dev", DEVICE)
            run("ip", "-n", n.name, "neigh", "replace", other.inner, "lladdr",
                peer_mac(other.ip), "dev", DEVICE, "nud", "permanent")
        for n in (pr.a, pr.b):
            n.charon.start()
        yield pr
    finally:
        for p in pr.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for n in (pr.a, pr.b):
            n.charon.stop()
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
