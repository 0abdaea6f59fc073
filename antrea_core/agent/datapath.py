"""The OpenFlow side of pod networking: the `PodFlowInstaller` the agent runs with.

It owns the connection to the bridge's management socket and programs the core
pipeline: table-miss flows, the pod-networking initial flows, one flow set per local pod
and one per remote node. Restarts are hitless: a new agent run installs everything under
the next cookie round and deletes older rounds only once every surviving pod is back
(`sync_done`). When ovs-vswitchd restarts (it lost every flow) the whole state is
replayed from memory, as the connection's last reconnect listener
(`ReplayOrder.FORWARDING`): policy and feature flows are back before pods forward again.

Userspace (netdev) tunnels need one more thing: vswitchd encapsulates with the next hop's
MAC from its own tunnel neighbour cache, which it fills only by snooping ARP replies on
the uplink bridge. A miss drops the packet being encapsulated (vswitchd sends an ARP
request instead), so a node's first packet to a peer was lost whenever the cache had no
entry: after a vswitchd restart (the cache is empty), at start-up when the host already
knew the peer's MAC (priming sent no ARP), and after 15 idle minutes (entries age out and
only an encapsulation lookup refreshes them). `TunnelPeerResolver` keeps every remote
node's entry resolved and fresh by sending one packet-out per peer through the tunnel
port: the encapsulation lookup refreshes a present entry and makes vswitchd ARP for a
missing one. The inner frame is an ARP request, which the peer's pipeline drops
(ARPSpoofGuard admits ARP only from local ports).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import podnetwork
from antrea_core.agent.openflow.bridge_client import (
    OFBridge,
    assign_feature_ids,
    next_round,
    split_cookie,
)
from antrea_core.agent.openflow.connection import CODEC, OFConnection, ReplayOrder
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


def tunnel_probe(cfg: NodeNetworkConfig, node: RemoteNode) -> ofpp.OFPPacketOut | None:
    """A packet-out that vswitchd encapsulates towards `node` (see the module docstring);
    None without a tunnel port."""
    if cfg.tunnel_ofport is None:
        return None
    transport = ipaddress.ip_address(node.transport_ip)
    field = "tun_ipv4_dst" if transport.version == 4 else "tun_ipv6_dst"
    # A plain request (sender != target): never taken for a gratuitous ARP.
    gateway_ip = next((ip for ip in cfg.gateway_ips if ":" not in ip), "0.0.0.0")
    target_ip = next((ip for ip in node.gateways() if ":" not in ip), "0.0.0.0")
    frame = packet.Packet()
    frame.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=cfg.gateway_mac,
                                         ethertype=0x0806))
    frame.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=cfg.gateway_mac,
                               src_ip=gateway_ip, dst_mac="00:00:00:00:00:00",
                               dst_ip=target_ip))
    frame.serialize()
    return ofpp.OFPPacketOut(
        CODEC, buffer_id=ofp.OFP_NO_BUFFER, match=ofpp.OFPMatch(in_port=ofp.OFPP_CONTROLLER),
        actions=[ofpp.OFPActionSetField(**{field: str(transport)}),
                 ofpp.OFPActionOutput(cfg.tunnel_ofport)],
        data=bytes(frame.data))


class TunnelPeerResolver:
    """Sends `tunnel_probe`s to every remote node: soon after a change (`kick`: a new node,
    a vswitchd reconnect; a few times, in case an ARP exchange is lost) and then every
    `interval` seconds, well inside vswitchd's 15-minute neighbour ageing."""

    BURST = (0.0, 0.5, 2.0)  # delays after a kick

    def __init__(self, send: Callable[[], None], interval: float = 60.0) -> None:
        self.send = send
        self.interval = interval
        self._kicked = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tunnel-peers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        self._kicked.set()

    def stop(self) -> None:
        self._stop.set()
        self._kicked.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            kicked = self._kicked.wait(self.interval)
            self._kicked.clear()
            delays = self.BURST if kicked else (0.0,)
            for delay in delays:
                if self._stop.wait(delay):
                    return
                try:
                    self.send()
                except Exception as exc:  # vswitchd away: the reconnect kicks us again
                    log.debug("tunnel peer probes not sent err=%s", exc)


class OpenFlowDatapath:
    """Implements `antrea_core.agent.podflows.PodFlowInstaller` on a real bridge."""

    def __init__(self, runtime: AgentRuntime, timeout: float = 10.0) -> None:
        self.runtime = runtime
        self.cfg = node_network_config(runtime)
        self._lock = threading.RLock()
        self._pods: dict[str, PodInterface] = {}  # by container id
        self._remote: dict[str, RemoteNode] = {}  # by node name
        self.peers = TunnelPeerResolver(self._probe_tunnel_peers)
        mgmt = Path(runtime.ovs_run_dir) / f"{runtime.bridge_name}.mgmt"
        self.conn = OFConnection(str(mgmt), timeout=timeout)
        self.conn.add_reconnect_listener(self._replay, order=ReplayOrder.FORWARDING,
                                         name=FEATURE)
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
        self.peers.start()
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
        self.peers.kick()  # the new vswitchd's tunnel neighbour cache is empty

    def _probe_tunnel_peers(self) -> None:
        if self.runtime.config.traffic_encryption_mode == "ipsec":
            # Tunnel traffic takes the IPsec plugin's encrypted port; the OVS tunnel port
            # stays idle, and a probe through it would be plaintext on the underlay.
            return
        with self._lock:
            probes = [tunnel_probe(self.cfg, node) for node in self._remote.values()]
        for msg in probes:
            if msg is not None:
                self.conn.send(msg)

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
        self.peers.kick()

    def remove_remote_node(self, name: str) -> None:
        with self._lock:
            old = self._remote.pop(name, None)
            if old is not None:
                self.bridge.delete(podnetwork.remote_node_flows(self.cfg, old), FEATURE)

    def close(self) -> None:
        self.peers.stop()
        self.conn.close()
