"""A sandboxed node for the NetworkPolicy integration tests.

Its own netns with ovsdb-server/ovs-vswitchd, br-int (netdev) with antrea-gw0, the core
pipeline and pod-networking flows, pods in netns on veth ports, and a
`NetworkPolicyController` on the same OpenFlow connection. An OVS reconnect replays
policy flows first, then the pod-networking flows (as the agent wires it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from antrea_core.agent.bridge.lifecycle import OVSBridge, ensure_bridge
from antrea_core.agent.bridge.ovsdb import OVSDB
from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.openflow.bridge_client import OFBridge
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

LAYOUT = PipelineLayout.build(core_tables())
PREFIX = f"hD-np{os.getpid() % 10000}"
NODE_NAME = "node-a"
MTU = 1450
PORT = 18081

# TCP and UDP echo; every datagram/connection logged so "never arrived" is visible.
SERVER = textwrap.dedent("""
    import socket, sys, threading
    host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    def record(proto, peer):
        with open(log, "a") as f:
            f.write(f"{proto} {peer}\\n")
    def tcp():
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port)); srv.listen(16)
        while True:
            conn, peer = srv.accept()
            record("tcp", peer[0])
            data = conn.recv(1 << 16)
            conn.sendall(b"echo:" + data)
            conn.close()
    def udp():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind((host, port))
        while True:
            data, peer = srv.recvfrom(1 << 16)
            record("udp", peer[0])
            srv.sendto(b"echo:" + data, peer)
    threading.Thread(target=tcp, daemon=True).start()
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
""")

CLIENT = textwrap.dedent("""
    import socket, sys
    proto, host, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        if proto == "tcp":
            s = socket.socket(); s.settimeout(2)
            s.connect((host, port)); s.sendall(payload.encode())
            print(s.recv(1 << 16).decode())
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
            s.sendto(payload.encode(), (host, port))
            print(s.recvfrom(1 << 16)[0].decode())
    except OSError as exc:
        print(f"error: {type(exc).__name__}")
""")


def run(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def ip(ns: str, *args: str) -> str:
    return run("ip", "-n", ns, *args)


@dataclass
class Pod:
    name: str
    netns: str
    host_ifname: str
    ip: str
    mac: str
    ofport: int

    def interface(self) -> PodInterface:
        return PodInterface("default", self.name, self.name, self.host_ifname, (self.ip,),
                            self.mac, self.ofport)


@dataclass
class PolicyNode:
    base: Path
    pod_cidr: str = "10.66.0.0/24"
    netns: str = ""
    ovs: NodeOVS | None = None
    ovsdb: OVSDB | None = None
    bridge: OVSBridge | None = None
    conn: OFConnection | None = None
    of: OFBridge | None = None
    cfg: NodeNetworkConfig | None = None
    policy: NetworkPolicyController | None = None
    pods: dict[str, Pod] = field(default_factory=dict)
    servers: list[subprocess.Popen] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def gateway_ip(self) -> str:
        return self.pod_cidr.rsplit(".", 1)[0] + ".1"

    def _netns(self, what: str) -> str:
        name = f"{PREFIX}-{what}"
        if netns.ensure(name):
            self.created.append(name)
        return name

    def start(self) -> None:
        self.netns = self._netns("n")
        self.ovs = NodeOVS(self.netns, self.base / "ovs")
        self.ovs.start()
        self.ovsdb = OVSDB(self.ovs.db_sock)
        ip(self.netns, "link", "set", "lo", "up")
        self.bridge = ensure_bridge(self.ovsdb, "br-int", datapath_type="netdev")
        gw = self.bridge.ensure_gateway_port("antrea-gw0", mtu=MTU)
        ip(self.netns, "addr", "add", f"{self.gateway_ip}/24", "dev", "antrea-gw0")
        ip(self.netns, "link", "set", "antrea-gw0", "up")
        assert gw.ofport is not None
        self.cfg = NodeNetworkConfig(gateway_ofport=gw.ofport, gateway_mac=gw.mac,
                                     gateway_ips=(self.gateway_ip,),
                                     pod_cidrs=(self.pod_cidr,))
        self.conn = OFConnection(str(self.ovs.run_dir / "br-int.mgmt"),
                                 on_reconnect=lambda _c: self.install_pod_networking())
        self.conn.start(timeout=10)
        self.of = OFBridge(LAYOUT, self.conn)
        self.install_pod_networking()
        self.policy = NetworkPolicyController(NODE_NAME, self.of, (self.gateway_ip,),
                                              layout=LAYOUT)
        self.policy.attach_replay(self.conn)

    def install_pod_networking(self) -> None:
        assert self.of is not None and self.cfg is not None
        self.of.install_pipeline()
        self.of.install(initial_flows(self.cfg, LAYOUT), FEATURE)
        for pod in self.pods.values():
            self.of.install(pod_flows(self.cfg, pod.interface()), FEATURE)

    def add_pod(self, name: str, octet: int) -> Pod:
        assert self.bridge is not None and self.of is not None and self.cfg is not None
        pod_ns = self._netns(name)
        host_if = f"hD{os.getpid() % 10000}{name}"[:15]
        pod_ip = self.pod_cidr.rsplit(".", 1)[0] + f".{octet}"
        ip(self.netns, "link", "add", host_if, "mtu", str(MTU), "type", "veth", "peer",
           "name", "eth0", "netns", pod_ns)
        ip(self.netns, "link", "set", host_if, "up")
        ip(pod_ns, "link", "set", "lo", "up")
        ip(pod_ns, "link", "set", "eth0", "mtu", str(MTU), "up")
        ip(pod_ns, "addr", "add", f"{pod_ip}/24", "dev", "eth0")
        ip(pod_ns, "route", "add", "default", "via", self.gateway_ip)
        run("ip", "netns", "exec", pod_ns, "ethtool", "-K", "eth0", "tx", "off")
        mac = json.loads(ip(pod_ns, "-j", "link", "show", "eth0"))[0]["address"]
        ofport = self.bridge.add_pod_port(host_if, {"ip-address": pod_ip,
                                                    "attached-mac": mac})
        pod = Pod(name, pod_ns, host_if, pod_ip, mac, ofport)
        self.of.install(pod_flows(self.cfg, pod.interface()), FEATURE)
        self.pods[name] = pod
        if self.policy is not None:
            self.policy.pod_added(pod.interface())
        return pod

    def serve(self, pod: Pod) -> Path:
        log = Path(tempfile.mkstemp(prefix="echo", dir=self.base)[1])
        proc = subprocess.Popen(["ip", "netns", "exec", pod.netns, sys.executable, "-c",
                                 SERVER, pod.ip, str(PORT), str(log)],
                                stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return log

    def send(self, ns: str, proto: str, host: str, payload: str) -> str:
        return run("ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, proto, host,
                   str(PORT), payload).strip()

    def trace(self, flow: str, *options: str) -> str:
        assert self.ovs is not None
        return self.ovs.appctl("ofproto/trace", "br-int", flow, *options).stdout

    def verdict(self, flow: str, *options: str) -> str:
        """The datapath actions of a trace ("drop", or the output port list)."""
        last = self.trace(flow, *options).strip().splitlines()[-1]
        assert last.startswith("Datapath actions:"), last
        return last.removeprefix("Datapath actions:").strip()

    def dump_flows(self, table: str) -> list[str]:
        assert self.ovs is not None
        out = self.ovs.ofctl("-O", "OpenFlow15", "dump-flows", "br-int",
                             f"table={LAYOUT.table_id(table)}").stdout
        return [line.strip() for line in out.splitlines()[1:] if line.strip()]

    def close(self) -> None:
        for proc in self.servers:
            proc.terminate()
            proc.wait(timeout=10)
        if self.conn is not None:
            self.conn.close()
        if self.ovsdb is not None:
            self.ovsdb.close()
        if self.ovs is not None:
            self.ovs.stop()
        for name in reversed(self.created):
            netns.delete(name)
