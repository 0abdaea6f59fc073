"""The sandboxed node of antctl's agent-mode tests.

A netns of our own (prefix hE) with a userspace ovsdb-server + ovs-vswitchd, br-int
created as the agent creates it, two pods' host-side veths attached through OVSDB with the
agent's external_ids, an `InterfaceStore` rebuilt from those rows, the core pipeline and
the real pod-networking flows installed over the management socket, and the agent query
server on a unix socket.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from antrea_core.agent.apiserver import AgentQueryServer
from antrea_core.agent.bridge.interface_store import InterfaceConfig, InterfaceStore
from antrea_core.agent.bridge.lifecycle import OVSBridge, ensure_bridge
from antrea_core.agent.bridge.ovsdb import OVSDB
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
from antrea_lab.node import netns as labnetns
from antrea_lab.node.ovs import NodeOVS

BRIDGE = "br-int"
_seq = itertools.count()


@dataclass(frozen=True)
class PodSpec:
    namespace: str
    name: str
    veth: str
    ip: str
    mac: str


PODS = (
    PodSpec("default", "web", "hEweb-h", "10.244.0.2", "aa:bb:cc:00:00:02"),
    PodSpec("demo", "db", "hEdb-h", "10.244.0.12", "aa:bb:cc:00:00:12"),
)


@dataclass
class AgentNode:
    netns: str
    ovs: NodeOVS
    store: InterfaceStore
    layout: PipelineLayout
    server: AgentQueryServer
    socket: Path
    run_dir: Path


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True)


def start_agent_node() -> Iterator[AgentNode]:
    # Short paths: unix socket paths (db.sock, br-int.mgmt) must stay under 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="hEq", dir="/tmp"))
    name = f"hE-antctl-{os.getpid() % 10000}-{next(_seq)}"
    created = labnetns.ensure(name)
    ovs = NodeOVS(name, base / "ovs")
    server: AgentQueryServer | None = None
    try:
        ovs.start()
        ovsdb = OVSDB(ovs.db_sock)
        try:
            ensure_bridge(ovsdb, BRIDGE, "netdev")
            bridge = OVSBridge(ovsdb, BRIDGE)
            ports = {}
            for pod in PODS:
                _ip(name, "link", "add", pod.veth, "type", "veth", "peer", "name",
                    pod.veth + "p")
                _ip(name, "link", "set", pod.veth, "up")
                ports[pod.veth] = InterfaceConfig.container(
                    pod.veth, f"{pod.name}-container-0123456789abcdef", pod.namespace,
                    pod.name, [pod.ip], pod.mac).external_ids()
            bridge.add_pod_ports(ports)
            store = InterfaceStore()
            store.rebuild(bridge.interfaces())
        finally:
            ovsdb.close()
        layout = PipelineLayout.build(core_tables())
        cfg = NodeNetworkConfig(gateway_ofport=100, gateway_mac="aa:bb:cc:00:00:01",
                                gateway_ips=("10.244.0.1",), pod_cidrs=("10.244.0.0/24",))
        conn = OFConnection(str(ovs.run_dir / f"{BRIDGE}.mgmt"))
        conn.start(timeout=20)
        try:
            of = OFBridge(layout, conn)
            of.install_pipeline()
            of.install(initial_flows(cfg, layout), FEATURE)
            for config in store.containers():
                of.install(pod_flows(cfg, config.to_pod_interface()), FEATURE)
        finally:
            conn.close()
        socket = base / "agentquery.sock"
        server = AgentQueryServer(socket, store, layout, BRIDGE, ovs.run_dir)
        server.start()
        yield AgentNode(name, ovs, store, layout, server, socket, ovs.run_dir)
    finally:
        if server is not None:
            server.stop()
        ovs.stop()
        if created:
            labnetns.delete(name)
        shutil.rmtree(base, ignore_errors=True)
