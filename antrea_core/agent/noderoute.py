"""The node route controller: one forwarding entry per remote Node.

Every other Node with podCIDRs and a transport address is reached one of two ways,
chosen per Node by the `RoutePolicy` of trafficEncapMode:

- tunnelled (encap; hybrid across subnets): the tunnel flows that send traffic for the
  Node's podCIDRs to its IP (through the datapath's `set_remote_node`) and a host route
  ``<podCIDR> via <remote gateway> dev antrea-gw0 onlink``, so the node itself reaches
  remote pods through the pipeline (the pipeline's ARP responder answers for the remote
  gateway);
- routed directly (noEncap; hybrid within the node's transport subnet): no tunnel flow
  (the pipeline hands traffic for any non-local address to the host) and a host route
  ``<podCIDR> via <remote Node IP>``: packets cross the underlay with pod addresses.

Node deletions remove both. Nodes come from the core informer (`antrea_core.k8s.informer`);
`sync` returns once the first list is applied, so a restarted agent has every remote
entry back before it deletes the previous run's flows.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import kubernetes
from pyroute2.netlink.exceptions import NetlinkError

from antrea_core.agent import hostnet
from antrea_core.agent.nodeinfo import node_info_from
from antrea_core.agent.openflow.podnetwork import RemoteNode
from antrea_core.agent.podnet.netns import run_in_netns
from antrea_core.k8s.informer import Informer
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import NODES
from antrea_core.plugins.context import NodeInfo

log = logging.getLogger("antrea.agent.noderoute")

RTNH_F_ONLINK = 4
ESRCH = 3
DISCARD_PORT = 9


@runtime_checkable
class RemoteNodeFlows(Protocol):
    def set_remote_node(self, node: RemoteNode) -> None: ...
    def remove_remote_node(self, name: str) -> None: ...


def _remote(info: NodeInfo) -> RemoteNode:
    """The datapath's view of a routable Node (first transport IP = tunnel endpoint)."""
    return RemoteNode(info.name, tuple(info.pod_cidrs), info.ips[0])


@dataclass(frozen=True)
class RoutePolicy:
    """Which peers this node reaches without a tunnel, by trafficEncapMode: none
    (encap), all (noEncap), or those whose transport IP is on one of this node's
    transport subnets (hybrid: a router between subnets knows nothing of podCIDRs)."""

    mode: str = "encap"
    local_subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def direct(self, info: NodeInfo) -> bool:
        if self.mode == "noEncap":
            return True
        if self.mode == "hybrid":
            peer = ipaddress.ip_address(info.ips[0])
            return any(peer in subnet for subnet in self.local_subnets)
        return False


def _direct_next_hops(info: NodeInfo) -> list[tuple[str, str]]:
    """(podCIDR, the peer's IP of the same family) for a directly routed Node; a podCIDR
    of a family the Node has no address of cannot be routed without a tunnel."""
    hops = []
    for cidr in info.pod_cidrs:
        version = ipaddress.ip_network(cidr, strict=False).version
        ip = next((a for a in info.ips if ipaddress.ip_address(a).version == version), None)
        if ip is None:
            log.warning("no IPv%d address on node %s: podCIDR %s not routed", version,
                        info.name, cidr)
            continue
        hops.append((cidr, ip))
    return hops


class NodeRouteController:
    def __init__(self, api: kubernetes.client.ApiClient, node_name: str,
                 flows: RemoteNodeFlows, gateway: str, *, netns: str | None = None,
                 policy: RoutePolicy | None = None,
                 on_added: Callable[[NodeInfo], None] | None = None,
                 on_removed: Callable[[NodeInfo], None] | None = None) -> None:
        self.api = api
        self.node_name = node_name
        self.flows = flows
        self.gateway = gateway
        self.netns = netns
        self.policy = policy or RoutePolicy()
        self.on_added = on_added
        self.on_removed = on_removed
        self.known: dict[str, NodeInfo] = {}
        self._direct: dict[str, bool] = {}  # by node name: routed without a tunnel
        self._informer: Informer | None = None

    # -- reconcile one Node ---------------------------------------------------------------
    def apply(self, node: Mapping[str, Any]) -> None:
        info = node_info_from(node)
        if info.name == self.node_name:
            return
        if not info.pod_cidrs or not info.ips:
            self.remove(info.name)  # not routable (yet): nothing to forward to
            return
        if self.known.get(info.name) == info:
            return
        old = self.known.get(info.name)
        direct = self.policy.direct(info)
        if old is not None:  # podCIDRs it no longer has; `replace` updates the others
            self._del_routes(set(old.pod_cidrs) - set(info.pod_cidrs))
        if direct:
            self.flows.remove_remote_node(info.name)
            self._direct_routes(info)
        else:
            remote = _remote(info)
            self.flows.set_remote_node(remote)
            self._tunnel_routes(remote)
            self._prime_neighbour(remote.transport_ip)
        self.known[info.name] = info
        self._direct[info.name] = direct
        log.info("remote node routed name=%s podCIDRs=%s via=%s tunnel=%s", info.name,
                 ",".join(info.pod_cidrs), info.ips[0], not direct)
        if self.on_added is not None:
            self.on_added(info)

    def remove(self, name: str) -> None:
        old = self.known.pop(name, None)
        if old is None:
            return
        self._direct.pop(name, None)
        self.flows.remove_remote_node(name)
        self._del_routes(old.pod_cidrs)
        log.info("remote node removed name=%s", name)
        if self.on_removed is not None:
            self.on_removed(old)

    def _prime_neighbour(self, ip: str) -> None:
        """Make the host resolve the peer's MAC now: a userspace datapath learns the next
        hop of its tunnels by snooping the host's ARP/ND on the uplink bridge, and drops
        what it should encapsulate until then. One datagram to the discard port triggers
        the resolution."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET

        def send() -> None:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"", (ip, DISCARD_PORT))

        try:
            run_in_netns(self.netns, send)
        except OSError as exc:
            log.debug("neighbour priming failed ip=%s err=%s", ip, exc)

    def _tunnel_routes(self, remote: RemoteNode) -> None:
        with hostnet.iproute_in(self.netns) as ipr:
            links = ipr.link_lookup(ifname=self.gateway)
            if not links:
                raise hostnet.HostNetError(f"gateway {self.gateway} not found")
            for cidr, gateway in zip(remote.pod_cidrs, remote.gateways(), strict=True):
                self._route(ipr, "replace", cidr, gateway=gateway, oif=links[0],
                            flags=RTNH_F_ONLINK)

    def _direct_routes(self, info: NodeInfo) -> None:
        with hostnet.iproute_in(self.netns) as ipr:
            for cidr, ip in _direct_next_hops(info):
                self._route(ipr, "replace", cidr, gateway=ip)

    def _del_routes(self, pod_cidrs: Iterable[str]) -> None:
        """Delete the route of each podCIDR, whichever way it was routed."""
        with hostnet.iproute_in(self.netns) as ipr:
            for cidr in pod_cidrs:
                self._route(ipr, "del", cidr)

    @staticmethod
    def _route(ipr: Any, op: str, cidr: str, **how: Any) -> None:
        family = 10 if ipaddress.ip_network(cidr, strict=False).version == 6 else 2
        try:
            ipr.route(op, dst=cidr, family=family, **how)
        except NetlinkError as exc:
            if not (op == "del" and exc.code == ESRCH):
                via = f" via {how['gateway']}" if "gateway" in how else ""
                raise hostnet.HostNetError(f"route {op} {cidr}{via}: {exc}") from exc

    # -- list / watch (the core informer) --------------------------------------------------
    def sync(self, stop: threading.Event) -> None:
        """Start watching Nodes and return once every listed Node is applied (or `stop`);
        the informer then keeps applying changes, relisting on 410 Gone."""
        self._informer = Informer(RawClient(self.api), NODES)
        self._informer.add_handler(self)
        self._informer.start()
        while not self._informer.wait_synced(1.0):
            if stop.is_set():
                return
            log.info("waiting for the initial Node list")

    def stop(self) -> None:
        if self._informer is not None:
            self._informer.stop()

    def on_add(self, obj: Mapping[str, Any]) -> None:
        self.apply(obj)

    def on_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self.apply(new)

    def on_delete(self, obj: Mapping[str, Any]) -> None:
        self.remove(obj["metadata"]["name"])
