"""The node route controller: one forwarding entry per remote Node.

For every other Node with podCIDRs and a transport address it keeps (1) the tunnel flows
that send traffic for that podCIDR to the Node's IP (through the datapath's
`set_remote_node`) and (2) a host route `<podCIDR> via <remote gateway> dev antrea-gw0
onlink`, so the node itself reaches remote pods through the pipeline (the pipeline's ARP
responder answers for the remote gateway). Node deletions remove both.

Nodes come from the core informer (`antrea_core.k8s.informer`); `sync` returns once the
first list is applied, so a restarted agent has every remote entry back before it
deletes the previous run's flows.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Mapping
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


class NodeRouteController:
    def __init__(self, api: kubernetes.client.ApiClient, node_name: str,
                 flows: RemoteNodeFlows, gateway: str, *, netns: str | None = None,
                 on_added: Callable[[NodeInfo], None] | None = None,
                 on_removed: Callable[[NodeInfo], None] | None = None) -> None:
        self.api = api
        self.node_name = node_name
        self.flows = flows
        self.gateway = gateway
        self.netns = netns
        self.on_added = on_added
        self.on_removed = on_removed
        self.known: dict[str, NodeInfo] = {}
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
        remote = _remote(info)
        self.flows.set_remote_node(remote)
        if old is not None:
            self._routes("del", _remote(old))
        self._routes("replace", remote)
        self._prime_neighbour(remote.transport_ip)
        self.known[info.name] = info
        log.info("remote node routed name=%s podCIDRs=%s via=%s", info.name,
                 ",".join(info.pod_cidrs), remote.transport_ip)
        if self.on_added is not None:
            self.on_added(info)

    def remove(self, name: str) -> None:
        old = self.known.pop(name, None)
        if old is None:
            return
        self.flows.remove_remote_node(name)
        self._routes("del", _remote(old))
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

    def _routes(self, op: str, remote: RemoteNode) -> None:
        with hostnet.iproute_in(self.netns) as ipr:
            links = ipr.link_lookup(ifname=self.gateway)
            if not links:
                raise hostnet.HostNetError(f"gateway {self.gateway} not found")
            for cidr, gateway in zip(remote.pod_cidrs, remote.gateways(), strict=True):
                family = ipaddress.ip_network(cidr, strict=False).version
                try:
                    ipr.route(op, dst=cidr, gateway=gateway, oif=links[0],
                              flags=RTNH_F_ONLINK, family=10 if family == 6 else 2)
                except NetlinkError as exc:
                    if not (op == "del" and exc.code == ESRCH):
                        raise hostnet.HostNetError(
                            f"route {op} {cidr} via {gateway} dev {self.gateway}: {exc}"
                        ) from exc

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
