"""The OpenFlow side of pod networking: the `PodFlowInstaller` the agent runs with.

It owns the connection to the bridge's management socket and programs the core
pipeline: table-miss flows, the pod-networking initial flows, one flow set per local pod
and one per remote node. Restarts are hitless: a new agent run installs everything under
the next cookie round and deletes older rounds only once every surviving pod is back
(`sync_done`). When ovs-vswitchd restarts (it lost every flow) the whole state is
replayed from memory.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from antrea_core.agent.openflow import podnetwork
from antrea_core.agent.openflow.bridge_client import (
    OFBridge,
    assign_feature_ids,
    next_round,
    split_cookie,
)
from antrea_core.agent.openflow.connection import OFConnection
from antrea_core.agent.openflow.flows import Flow, Group
from antrea_core.agent.openflow.podnetwork import NodeNetworkConfig, RemoteNode
from antrea_core.agent.podflows import AgentRuntime
from antrea_core.plugins.context import PodInterface

log = logging.getLogger("antrea.agent.datapath")

FEATURE = "pod-networking"


def node_network_config(runtime: AgentRuntime) -> NodeNetworkConfig:
    gateway = runtime.gateway
    if gateway.ofport is None or not gateway.mac:
        raise RuntimeError(f"gateway port {gateway.name} has no ofport/MAC yet")
    gateway_ips = gateway.ips or podnetwork.gateway_ips(runtime.node.pod_cidrs)
    return NodeNetworkConfig(
        gateway_ofport=gateway.ofport,
        gateway_mac=gateway.mac,
        gateway_ips=tuple(gateway_ips),
        pod_cidrs=tuple(runtime.node.pod_cidrs),
        transport_ips=tuple(runtime.node.ips),
        tunnel_ofport=runtime.tunnel.ofport if runtime.tunnel is not None else None,
    )


class OpenFlowDatapath:
    """Implements `antrea_core.agent.podflows.PodFlowInstaller` on a real bridge."""

    def __init__(self, runtime: AgentRuntime, timeout: float = 10.0) -> None:
        self.runtime = runtime
        self.cfg = node_network_config(runtime)
        self._lock = threading.RLock()
        self._pods: dict[str, PodInterface] = {}  # by container id
        self._remote: dict[str, RemoteNode] = {}  # by node name
        mgmt = Path(runtime.ovs_run_dir) / f"{runtime.bridge_name}.mgmt"
        self.conn = OFConnection(str(mgmt), on_reconnect=self._replay, timeout=timeout)
        self.conn.start()
        feature_ids = assign_feature_ids(getattr(runtime.plugins, "features", {}) or {})
        probe = OFBridge(runtime.layout, self.conn, feature_ids=feature_ids)
        previous = {split_cookie(f.cookie)[1] for f in probe.dump_flows(FEATURE)}
        # The round in use by the previous run (if any) is kept until sync_done().
        round_num = next_round(max(previous) if previous else None)
        self.bridge = OFBridge(runtime.layout, self.conn, round_num=round_num,
                               feature_ids=feature_ids)
        runtime.context.bridge = self.bridge
        self._install_static()
        log.info("pipeline programmed bridge=%s round=%d previous_rounds=%s",
                 runtime.bridge_name, round_num, sorted(previous) or "-")

    def _static_flows(self) -> list[Flow | Group]:
        return podnetwork.initial_flows(self.cfg, self.runtime.layout)

    def _install_static(self) -> None:
        self.bridge.install_pipeline()
        self.bridge.install(self._static_flows(), FEATURE)

    def _replay(self, _conn: OFConnection) -> None:
        # ovs-vswitchd restarted: its flow tables are empty; put everything back.
        with self._lock:
            log.warning("ovs-vswitchd reconnected: replaying flows pods=%d nodes=%d",
                        len(self._pods), len(self._remote))
            self._install_static()
            items: list[Flow | Group] = []
            for pod in self._pods.values():
                items += podnetwork.pod_flows(self.cfg, pod)
            for node in self._remote.values():
                items += podnetwork.remote_node_flows(self.cfg, node)
            if items:
                self.bridge.install(items, FEATURE)

    # -- PodFlowInstaller ----------------------------------------------------------------

    def install_pod_flows(self, pod: PodInterface) -> None:
        with self._lock:
            self.bridge.install(podnetwork.pod_flows(self.cfg, pod), FEATURE)
            self._pods[pod.container_id] = pod

    def uninstall_pod_flows(self, pod: PodInterface) -> None:
        with self._lock:
            self.bridge.delete(podnetwork.pod_flows(self.cfg, pod), FEATURE)
            self._pods.pop(pod.container_id, None)

    def sync_done(self) -> None:
        with self._lock:
            self.bridge.delete_stale_rounds(FEATURE)
            self.bridge.delete_stale_rounds("pipeline")

    # -- remote nodes (the node route controller) ----------------------------------------

    def set_remote_node(self, node: RemoteNode) -> None:
        with self._lock:
            old = self._remote.get(node.name)
            if old == node:
                return
            if old is not None:
                self.bridge.delete(podnetwork.remote_node_flows(self.cfg, old), FEATURE)
            self.bridge.install(podnetwork.remote_node_flows(self.cfg, node), FEATURE)
            self._remote[node.name] = node

    def remove_remote_node(self, name: str) -> None:
        with self._lock:
            old = self._remote.pop(name, None)
            if old is not None:
                self.bridge.delete(podnetwork.remote_node_flows(self.cfg, old), FEATURE)

    def close(self) -> None:
        self.conn.close()
