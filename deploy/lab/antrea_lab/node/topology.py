"""The lab's network: an underlay netns with a bridge, one netns per node, an external netns.

By default every node is on one underlay subnet (192.168.77.0/24). With ``subnets=N`` the
nodes are split in order over N subnets (192.168.77.0/24, 192.168.78.0/24, …) on the same
bridge, and the underlay netns routes between them (it holds .1 of each): nodes then
reach peers on another subnet through a router that knows nothing of pods, as racks
behind a top-of-rack router do (what trafficEncapMode hybrid is for).

Everything lives in network namespaces named ``antrea-<lab>-...``; nothing is created in
the root netns and the underlay has no link out of the lab. ``create`` is idempotent and
returns a :class:`Topology` whose ``to_dict`` goes into lab.json; ``destroy`` needs only
that dict (it deletes the recorded namespaces, which takes their devices with them).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pyroute2 import NetNS

from antrea_lab.node import netns

log = logging.getLogger("antrea.lab.topology")

UNDERLAY_SUBNET = ipaddress.ip_network("192.168.77.0/24")
GATEWAY_IP = "192.168.77.1"
CONTROL_PLANE_IP = GATEWAY_IP  # the API server listens here inside the underlay netns
EXTERNAL_IP = "192.168.77.254"
BRIDGE = "underlay"
NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
}


MAX_SUBNETS = 4
UNDERLAY_SYSCTLS = {"net.ipv4.ip_forward": "1"}  # the router between subnets


def subnet(k: int) -> ipaddress.IPv4Network:
    """The k-th underlay subnet (0-based): 192.168.(77+k).0/24."""
    return ipaddress.ip_network(f"192.168.{77 + k}.0/24")


def subnet_gateway(k: int) -> str:
    return str(subnet(k).network_address + 1)


def subnet_index(index: int, nodes: int, subnets: int) -> int:
    """Which subnet node ``index`` (1-based) of ``nodes`` is on: in order, as evenly as
    they go (3 nodes on 2 subnets: node1, node2 | node3)."""
    return (index - 1) * subnets // nodes


def node_ip(index: int, subnet_k: int = 0) -> str:
    """Address of node ``index`` (1-based): 192.168.(77+k).(10+i)."""
    return str(subnet(subnet_k).network_address + 10 + index)


@dataclass
class NodeNet:
    name: str
    netns: str
    ip: str
    veth: str  # underlay-side end; the node side is always eth0
    ifname: str = "eth0"
    gateway: str = GATEWAY_IP  # the underlay's address on this node's subnet


@dataclass
class Topology:
    lab: str
    underlay_netns: str
    bridge: str
    gateway_ip: str
    prefix_len: int
    external_netns: str
    external_ip: str
    nodes: list[NodeNet] = field(default_factory=list)
    subnets: list[str] = field(default_factory=lambda: [str(UNDERLAY_SUBNET)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        data = dict(data)
        data["nodes"] = [NodeNet(**n) for n in data.get("nodes", [])]
        return cls(**data)

    def node(self, name: str) -> NodeNet:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def all_netns(self) -> list[str]:
        return [self.underlay_netns, *(n.netns for n in self.nodes), self.external_netns]

    netns_names = all_netns


def netns_name(lab: str, part: str) -> str:
    return f"antrea-{lab}-{part}"


def plan(lab: str, nodes: int | Sequence[str], subnets: int = 1) -> Topology:
    """The topology for ``nodes`` (a count, or names; node i gets 192.168.77.(10+i), or
    the same host number on its own subnet when there are several)."""
    names = [f"node{i}" for i in range(1, nodes + 1)] if isinstance(nodes, int) else list(nodes)
    if not 1 <= subnets <= min(MAX_SUBNETS, max(len(names), 1)):
        raise ValueError(f"subnets must be between 1 and {min(MAX_SUBNETS, len(names))} "
                         f"for {len(names)} node(s), not {subnets}")
    prefix = UNDERLAY_SUBNET.prefixlen
    where = {name: subnet_index(i, len(names), subnets) for i, name in enumerate(names, 1)}
    return Topology(
        lab=lab,
        underlay_netns=netns_name(lab, "underlay"),
        bridge=BRIDGE,
        gateway_ip=GATEWAY_IP,
        prefix_len=prefix,
        external_netns=netns_name(lab, "external"),
        external_ip=EXTERNAL_IP,
        nodes=[
            NodeNet(name=name, netns=netns_name(lab, name), ip=node_ip(i, where[name]),
                    veth=name, gateway=subnet_gateway(where[name]))
            for i, name in enumerate(names, start=1)
        ],
        subnets=[str(subnet(k)) for k in range(subnets)],
    )


def create(lab: str, nodes: int | Sequence[str], subnets: int = 1) -> Topology:
    """Build (or complete) the lab network for ``nodes`` (a count or node names)."""
    topo = plan(lab, nodes, subnets)
    for name in topo.all_netns():
        netns.ensure(name)
    with NetNS(topo.underlay_netns) as ul:
        _up(ul, "lo")
        if not ul.link_lookup(ifname=topo.bridge):
            ul.link("add", ifname=topo.bridge, kind="bridge")
        bridge_idx = ul.link_lookup(ifname=topo.bridge)[0]
        for k in range(len(topo.subnets)):
            _ensure_addr(ul, bridge_idx, subnet_gateway(k), topo.prefix_len)
        ul.link("set", index=bridge_idx, state="up")
        ends = [(n.veth, n.netns, n.ip, n.gateway) for n in topo.nodes]
        ends.append(("external", topo.external_netns, topo.external_ip, topo.gateway_ip))
        for veth, peer_ns, _, _ in ends:
            if not ul.link_lookup(ifname=veth):
                ul.link("add", ifname=veth, kind="veth",
                        peer={"ifname": "eth0", "net_ns_fd": peer_ns})
            idx = ul.link_lookup(ifname=veth)[0]
            ul.link("set", index=idx, master=bridge_idx, state="up")
    for veth, peer_ns, ip, gateway in ends:
        own = ipaddress.ip_interface(f"{ip}/{topo.prefix_len}").network
        with NetNS(peer_ns) as ns:
            _up(ns, "lo")
            idx = ns.link_lookup(ifname="eth0")
            if not idx:
                raise RuntimeError(f"eth0 missing in {peer_ns} although {veth} exists")
            _ensure_addr(ns, idx[0], ip, topo.prefix_len)
            ns.link("set", index=idx[0], state="up")
            # Other subnets through the underlay's router (no default route: the lab
            # has no way out).
            for other in topo.subnets:
                if ipaddress.ip_network(other) != own:
                    ns.route("replace", dst=other, gateway=gateway)
    if len(topo.subnets) > 1:
        netns.set_sysctls(topo.underlay_netns, UNDERLAY_SYSCTLS)
    for n in topo.nodes:
        netns.set_sysctls(n.netns, NODE_SYSCTLS)
        # The node's eth0 may become a port of a userspace OVS bridge (tunnels).
        netns.disable_tx_checksum(n.netns, "eth0")
    # Frames reach a node's userspace OVS through AF_PACKET with whatever checksum state
    # the sender left; OVS re-injects them into the node's kernel through a tap, which
    # then drops TCP with a partial checksum. So every underlay sender computes checksums
    # in software: the bridge (the API server's address), its veth ends, the external.
    for ifname in (topo.bridge, *(n.veth for n in topo.nodes), "external"):
        netns.disable_tx_checksum(topo.underlay_netns, ifname)
    netns.disable_tx_checksum(topo.external_netns, "eth0")
    log.info("lab network ready lab=%s nodes=%s", lab, [n.name for n in topo.nodes])
    return topo


def destroy(topo: Topology | dict[str, Any]) -> list[str]:
    """Delete the namespaces recorded in ``topo``; returns those that existed."""
    if isinstance(topo, dict):
        topo = Topology.from_dict(topo)
    removed = [name for name in reversed(topo.all_netns()) if netns.delete(name)]
    log.info("lab network removed lab=%s netns=%s", topo.lab, removed)
    return removed


def delete_netns(name: str) -> bool:
    """Delete one lab netns by name (e.g. a pod's); False if it did not exist."""
    return netns.delete(name)


def _up(ns: NetNS, ifname: str) -> None:
    ns.link("set", index=ns.link_lookup(ifname=ifname)[0], state="up")


def _ensure_addr(ns: NetNS, index: int, ip: str, prefix_len: int) -> None:
    for addr in ns.get_addr(index=index):
        if addr.get("address") == ip:
            return
    ns.addr("add", index=index, address=ip, prefixlen=prefix_len)
