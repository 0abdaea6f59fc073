"""A sandbox node for the agent: its own netns + userspace OVS, the lab API server
in-process with a Node (podCIDRs, InternalIP), and the agent running in-process for that
netns with a recording pod flow installer.

Names: netns ``antrea-h11-<pid>-<what>``; everything created here is deleted at teardown
(netns by name, OVS daemons by their pidfiles).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from antrea_core.agent.agent import Agent, AgentOptions
from antrea_core.agent.main import prepare
from antrea_core.agent.nodeinfo import KubeClusterView, api_client
from antrea_core.agent.podflows import AgentRuntime
from antrea_core.plugins.context import PodInterface
from antrea_lab.apiserver.pki import ensure_pki
from antrea_lab.node import netns
from antrea_lab.node.cni_exec import Attachment, CNIExecutor
from antrea_lab.node.ovs import NodeOVS

PREFIX = f"antrea-h11-{os.getpid() % 100000}"
NODE = "n1"
POD_CIDRS = ["10.99.1.0/24", "fd00:99:1::/64"]
NODE_IP = "192.168.99.10"
UNDERLAY_MTU = 1500
HARNESS = Path(__file__).parents[2] / "unit" / "apiserver" / "apiserver_harness.py"
_seq = itertools.count()


def _load_harness() -> Any:
    spec = importlib.util.spec_from_file_location("apiserver_harness", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("apiserver_harness", module)
    spec.loader.exec_module(module)
    return module


class RecordingFlows:
    """The pod flow installer seam, recording what the agent asked for."""

    def __init__(self) -> None:
        self.events: list[tuple[str, PodInterface]] = []
        self.synced = 0
        self.runtime: AgentRuntime | None = None
        self.fail_for: set[str] = set()  # pod names whose install raises

    def install_pod_flows(self, pod: PodInterface) -> None:
        self.events.append(("install", pod))
        if pod.name in self.fail_for:
            raise RuntimeError(f"injected flow failure for {pod.name}")

    def uninstall_pod_flows(self, pod: PodInterface) -> None:
        self.events.append(("uninstall", pod))

    def sync_done(self) -> None:
        self.synced += 1

    def of(self, kind: str) -> dict[str, PodInterface]:
        return {p.name: p for k, p in self.events if k == kind}


@dataclass
class Sandbox:
    tmp: Path
    node_ns: str
    ovs: NodeOVS
    api: kubernetes.client.ApiClient
    kubeconfig: Path
    conf_path: Path
    executor: CNIExecutor
    new_ns: Callable[[str], str]
    agents: list[Agent] = field(default_factory=list)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    def start_agent(self) -> tuple[Agent, RecordingFlows]:
        config, plugins, layout = prepare(self.conf_path)
        flows = RecordingFlows()

        def factory(runtime: AgentRuntime) -> RecordingFlows:
            flows.runtime = runtime
            return flows

        view = KubeClusterView(api_client(str(self.kubeconfig)), NODE, poll_interval=0.2)
        agent = Agent(config, plugins, layout, view, factory, AgentOptions(
            node_name=NODE, state_dir=self.tmp / "state", cni_conf_dir=self.tmp / "net.d",
            cni_bin_dir=self.tmp / "bin", host_netns=f"/run/netns/{self.node_ns}",
            node_timeout=30))
        agent.start()
        self.agents.append(agent)
        return agent, flows

    def create_pod(self, name: str) -> None:
        self.core.create_namespaced_pod("default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}})

    def attachment(self, i: int, name: str | None = None) -> Attachment:
        pod_ns = self.new_ns(f"p{i}-")
        return Attachment(container_id=f"sandbox{i:04d}", netns=f"/run/netns/{pod_ns}",
                          pod_namespace="default", pod_name=name or f"web-{i}",
                          pod_uid=f"uid-{i}")

    def ip(self, ns: str, *args: str) -> str:
        return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True,
                              check=True).stdout


def make_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """The `sandbox` fixture's body (see conftest)."""
    created: list[str] = []

    def new_ns(what: str) -> str:
        name = f"{PREFIX}-{what}{next(_seq)}"
        if netns.ensure(name):
            created.append(name)
        return name

    harness = _load_harness()
    pki = tmp_path / "pki"
    ensure_pki(pki, ["127.0.0.1"], ["localhost"])
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f'{harness.ADMIN_TOKEN},admin,uid-admin,"system:masters"\n')
    server = harness.start_server(tmp_path / "apiserver", pki, tokens)
    node_ns = new_ns("node")
    ovs = NodeOVS(node_ns, tmp_path / "ovs")
    box: Sandbox | None = None
    try:
        # The node's underlay: a Linux bridge holding the node IP (no dummy module here).
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "uplink0", "mtu", str(UNDERLAY_MTU), "type", "bridge"],
                    ["addr", "add", f"{NODE_IP}/24", "dev", "uplink0"],
                    ["link", "set", "uplink0", "up"]):
            subprocess.run(["ip", "-n", node_ns, *cmd], check=True, capture_output=True)
        ovs.start()
        api = harness.client_for(server)
        core = kubernetes.client.CoreV1Api(api)
        core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                          "spec": {"podCIDR": POD_CIDRS[0], "podCIDRs": POD_CIDRS}})
        core.patch_node_status(NODE, {"status": {"addresses": [
            {"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname",
                                                          "address": NODE}]}})
        conf = tmp_path / "antrea-agent.conf"
        conf.write_text(
            "ovsDatapathType: netdev\n"
            f"ovsRunDir: {ovs.run_dir}\n"
            f"cniSocket: {tmp_path / 'run' / 'cni.sock'}\n"
            "tunnelType: geneve\n")
        executor = CNIExecutor(tmp_path / "net.d", [tmp_path / "bin"], tmp_path / "cache",
                               timeout=30)
        box = Sandbox(tmp_path, node_ns, ovs, api, server.kubeconfig, conf, executor,
                      new_ns)
        yield box
    finally:
        for agent in box.agents if box else []:
            agent.stop()
        ovs.stop()
        server.stop()
        for name in reversed(created):
            netns.delete(name)
