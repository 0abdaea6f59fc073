"""The pod-networking flows of the core pipeline, as pure functions of the node's state.

Three entry points, each returning `Flow`/`Group` lists for `OFBridge.install` under the
"pod-networking" feature (the pipeline's table-miss flows come from
`OFBridge.install_pipeline`):

* `initial_flows(cfg, layout)`: per-node flows: protocol dispatch, the gateway's and the
  tunnel's classification, ARP, conntrack, the routing defaults, output by reg1.
* `pod_flows(cfg, pod)`: one local pod: classify its port, anti-spoofing (IP, ARP), L3
  delivery of routed traffic, L2 delivery by MAC. Delete them with the same list.
* `remote_node_flows(cfg, node)`: one peer node: route its podCIDRs into the tunnel with
  tun_dst = its transport IP, and answer ARP for its gateway IP.

Forwarding model (facts from Antrea's docs/design/ovs-pipeline.md, v1.15):

* Pods of this node share one subnet (the node's podCIDR) and reach each other at L2:
  they ARP for each other, ARP is switched with NORMAL, and IP packets keep their MACs
  and TTL (L3Forwarding sends them straight to L2ForwardingCalc). Everything else a
  pod sends goes to its default gateway, antrea-gw0, by MAC.
* Traffic to another node's podCIDR is routed by OVS itself (not by the host):
  L3Forwarding sets source MAC = gateway MAC, destination MAC = the *global virtual
  MAC* and tun_dst = the peer's transport IP; L2ForwardingCalc sends the global virtual
  MAC to the tunnel port. The receiving node sees the global virtual MAC, marks tunnel
  traffic "rewrite MAC" in Classifier and L3Forwarding delivers it to the pod by IP.
  The host routes to remote podCIDRs through antrea-gw0 with an onlink next hop = the
  peer's gateway IP (installed by the node route controller, not here); ARPResponder
  answers that next hop with the global virtual MAC, so host traffic follows the same
  path.
* Traffic to anything else (the node, other networks) leaves through antrea-gw0 and the
  host routes it (and, later, SNATs it).
* All IP traffic is tracked in one conntrack zone per family (ConntrackZone), invalid
  packets are dropped (ConntrackState), new connections are committed at the end
  (ConntrackCommit) with their ingress class in ct_mark.
* TTL is decremented (L3DecTTL) only for packets OVS routes, except those that came
  from the gateway: the host decremented theirs already.

Register and ct_mark bits are documented in `registers`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from os_ken.ofproto import (
    ether,
    inet,
    nicira_ext,
    nx_actions,  # noqa: F401  (registers NX actions on the parser)
)
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import registers as regs
from antrea_core.agent.openflow.flows import GOTO_NEXT, Flow, Group
from antrea_core.agent.openflow.pipeline import PipelineLayout

log = logging.getLogger("antrea.agent.openflow.podnetwork")

FEATURE = "pod-networking"
GLOBAL_VIRTUAL_MAC = "aa:bb:cc:dd:ee:ff"  # Antrea's hard-coded value

# Priorities, named by role so that plugins can place flows relative to ours.
PRIORITY_HIGH = 210
PRIORITY_NORMAL = 200
PRIORITY_LOW = 190
PRIORITY_LOWER = 180
PRIORITY_DEFAULT = 1  # just above the pipeline's table-miss flow (priority 0)

ARP_OP_REQUEST = 1
ARP_OP_REPLY = 2
ICMPV6_NEIGHBOR_SOLICIT = 135
ICMPV6_NEIGHBOR_ADVERT = 136
IPV6_LINK_LOCAL = ("fe80::", "ffc0::")

IP_FAMILIES = (ether.ETH_TYPE_IP, ether.ETH_TYPE_IPV6)


class PodPort(Protocol):
    """What pod flows need from a pod interface (`plugins.context.PodInterface` fits)."""

    ofport: int
    ips: tuple[str, ...]
    mac: str


@dataclass(frozen=True)
class NodeNetworkConfig:
    """This node's networking facts that the pipeline depends on.

    `tunnel_ofport` is None in noEncap mode: remote podCIDRs are then routed by the host
    through the gateway, and no tunnel flows are installed. `transport_ips` are the
    node's underlay addresses (the tunnel source).
    """

    gateway_ofport: int
    gateway_mac: str
    gateway_ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...]
    transport_ips: tuple[str, ...] = ()
    tunnel_ofport: int | None = None
    global_virtual_mac: str = GLOBAL_VIRTUAL_MAC

    def __post_init__(self) -> None:
        if self.gateway_mac.lower() == self.global_virtual_mac.lower():
            raise ValueError("the gateway MAC must differ from the global virtual MAC")
        for cidr in self.pod_cidrs:
            ipaddress.ip_network(cidr)  # fail early on a malformed CIDR
        for ip in (*self.gateway_ips, *self.transport_ips):
            ipaddress.ip_address(ip)


def gateway_ips(pod_cidrs: Sequence[str]) -> tuple[str, ...]:
    """Each node's antrea-gw0 holds the first host address of each of its podCIDRs."""
    return tuple(str(next(ipaddress.ip_network(c, strict=False).hosts())) for c in pod_cidrs)


@dataclass(frozen=True)
class RemoteNode:
    """A peer node: its podCIDRs and the transport IP its tunnel endpoint listens on.

    `gateway_ips` default to the first host address of each podCIDR, the address Antrea
    gives every node's antrea-gw0.
    """

    name: str
    pod_cidrs: tuple[str, ...]
    transport_ip: str
    gateway_ips: tuple[str, ...] = field(default=())

    def gateways(self) -> tuple[str, ...]:
        if self.gateway_ips:
            return self.gateway_ips
        return gateway_ips(self.pod_cidrs)


# -- helpers --------------------------------------------------------------------------


def _family(address: str) -> int:
    """The eth_type of an IP address or CIDR."""
    version = ipaddress.ip_network(address, strict=False).version
    return ether.ETH_TYPE_IP if version == 4 else ether.ETH_TYPE_IPV6


def ip_match(eth_type: int, key: str, address: str) -> dict[str, Any]:
    """{eth_type, ipv4_<key>|ipv6_<key>: address} for an address or a CIDR."""
    net = ipaddress.ip_network(address, strict=False)
    name = f"ipv4_{key}" if eth_type == ether.ETH_TYPE_IP else f"ipv6_{key}"
    if net.prefixlen == net.max_prefixlen:
        value: Any = str(net.network_address)
    else:
        value = (str(net.network_address), str(net.netmask))
    return {"eth_type": eth_type, name: value}


def _set(**kwargs: Any) -> Any:
    return ofpp.OFPActionSetField(**kwargs)


def _move(src: str, dst: str, n_bits: int) -> Any:
    """``move:src[0..n_bits-1]->dst[0..n_bits-1]``. OpenFlow 1.5's copy_field: OVS
    rejects Nicira's reg_move (NXAST 6) on an OF1.5 connection (OFPBAC_BAD_EXP_TYPE)."""
    return ofpp.OFPActionCopyField(n_bits=n_bits, src_offset=0, dst_offset=0,
                                   oxm_ids=[ofpp.OFPOxmId(type_=src),
                                            ofpp.OFPOxmId(type_=dst)])


def _ct(zone: int, *, commit: bool = False, recirc_table: int | None = None,
        actions: Sequence[Any] = ()) -> Any:
    return ofpp.NXActionCT(
        flags=nicira_ext.NX_CT_F_COMMIT if commit else 0, zone_src="",
        zone_ofs_nbits=zone,
        recirc_table=nicira_ext.NX_CT_RECIRC_NONE if recirc_table is None else recirc_table,
        alg=0, actions=list(actions))


def _zone(eth_type: int) -> int:
    return regs.CT_ZONE_V4 if eth_type == ether.ETH_TYPE_IP else regs.CT_ZONE_V6


def _families(addresses: Sequence[str]) -> list[int]:
    present = {_family(a) for a in addresses}
    return [f for f in IP_FAMILIES if f in present]


def _output_to(ofport: int, destination: regs.RegMark) -> tuple[Any, ...]:
    """L2ForwardingCalc's decision: reg1 = port, destination class, "reg1 is valid"."""
    return (_set(reg1=ofport), destination.load(), regs.OUTPUT_TO_PORT.load())


def _nd_to_normal(in_port: int, mac: str | None) -> list[Flow]:
    """IPv6 neighbour discovery from a port, switched like ARP (NORMAL).

    ND is ICMPv6 to multicast MACs, which the dmac table (L2ForwardingCalc) cannot
    deliver; a learning switch can. The source MAC is checked for pods; the ND target
    address is not (gap: Antrea's ARP-like ND spoof check).
    """
    flows = []
    for icmp_type in (ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_NEIGHBOR_ADVERT):
        match: dict[str, Any] = {"in_port": in_port, "eth_type": ether.ETH_TYPE_IPV6,
                                 "ip_proto": inet.IPPROTO_ICMPV6, "icmpv6_type": icmp_type}
        if mac is not None:
            match["eth_src"] = mac
        flows.append(Flow("SpoofGuard", PRIORITY_HIGH, match,
                          actions=(ofpp.OFPActionOutput(ofp.OFPP_NORMAL),)))
    return flows


# -- per-node flows ---------------------------------------------------------------------


def initial_flows(cfg: NodeNetworkConfig, layout: PipelineLayout) -> list[Flow | Group]:
    """The node's pod-networking flows that do not depend on any pod or peer node.

    `layout` resolves the table conntrack recirculates into (ct(table=...) is an action
    argument, not a goto, so it needs a table id).
    """
    gw_port, gw_mac = cfg.gateway_ofport, cfg.gateway_mac
    conntrack_state = layout.table_id("ConntrackState")
    flows: list[Flow | Group] = [
        # Root: ARP and IP go to their sub-pipelines; anything else is dropped (miss).
        Flow("PipelineRootClassifier", PRIORITY_NORMAL, {"eth_type": ether.ETH_TYPE_ARP},
             goto="ARPSpoofGuard"),
        *(Flow("PipelineRootClassifier", PRIORITY_NORMAL, {"eth_type": et}, goto="Classifier")
          for et in IP_FAMILIES),
        # ARP: every ARP packet left after spoof checking is switched like on a
        # learning switch (requests/replies between pods and the gateway).
        Flow("ARPResponder", PRIORITY_LOW, {"eth_type": ether.ETH_TYPE_ARP},
             actions=(ofpp.OFPActionOutput(ofp.OFPP_NORMAL),)),
        # Classifier: the gateway. Its packets still pass SpoofGuard (which lets them
        # all through: the host forwards traffic from anywhere).
        Flow("Classifier", PRIORITY_NORMAL, {"in_port": gw_port},
             actions=(regs.FROM_GATEWAY.load(),), goto=GOTO_NEXT),
        Flow("SpoofGuard", PRIORITY_NORMAL, {"in_port": gw_port}, goto=GOTO_NEXT),
        *_nd_to_normal(gw_port, None),
        # Conntrack: one lookup per packet, recirculating into ConntrackState with
        # ct_state/ct_mark filled in. `nat` applies the NAT of established connections
        # (none without Services yet; AntreaProxy's DNAT needs it here).
        *(Flow("ConntrackZone", PRIORITY_NORMAL, {"eth_type": et},
               actions=(_ct(_zone(et), recirc_table=conntrack_state,
                            actions=[ofpp.NXActionNAT(flags=0)]),))
          for et in IP_FAMILIES),
        Flow("ConntrackState", PRIORITY_NORMAL,
             {"ct_state": regs.ct_state(regs.CT_INV | regs.CT_TRK)}),  # drop
        # Commit each new connection (Services' are committed by AntreaProxy), saving
        # where its first packet came from.
        *(Flow("ConntrackCommit", PRIORITY_NORMAL,
               {"eth_type": et, "ct_state": regs.ct_state(regs.CT_NEW | regs.CT_TRK),
                **regs.match_marks(regs.NOT_SERVICE_CONN)},
               actions=(_ct(_zone(et), commit=True, actions=[
                   _move(regs.PKT_SOURCE.reg, regs.CONN_SOURCE.reg, regs.PKT_SOURCE.width)]),),
               goto=GOTO_NEXT)
          for et in IP_FAMILIES),
        # TTL: the host already decremented what comes from the gateway.
        Flow("L3DecTTL", PRIORITY_HIGH, regs.match_marks(regs.FROM_GATEWAY), goto=GOTO_NEXT),
        *(Flow("L3DecTTL", PRIORITY_NORMAL, {"eth_type": et},
               actions=(ofpp.OFPActionDecNwTtl(),), goto=GOTO_NEXT)
          for et in IP_FAMILIES),
        # L2: the gateway by its MAC.
        Flow("L2ForwardingCalc", PRIORITY_NORMAL, {"eth_dst": gw_mac},
             actions=_output_to(gw_port, regs.TO_GATEWAY), goto=GOTO_NEXT),
        # From the host back to the host: only Service traffic DNAT-ed to an address
        # beyond the pod network (host-network endpoints); a plain output to the
        # ingress port would be refused.
        Flow("Output", PRIORITY_NORMAL + 1,
             {"in_port": gw_port, **regs.match_marks(regs.OUTPUT_TO_PORT, regs.TO_GATEWAY)},
             actions=(ofpp.OFPActionOutput(ofp.OFPP_IN_PORT),)),
        Flow("Output", PRIORITY_NORMAL, regs.match_marks(regs.OUTPUT_TO_PORT),
             actions=(ofpp.NXActionOutputReg(
                 ofs_nbits=nicira_ext.ofs_nbits(regs.TARGET_OFPORT.start,
                                                regs.TARGET_OFPORT.end),
                 src=regs.TARGET_OFPORT.reg, max_len=0),)),
        # Routed packets (DNAT-ed Services) for beyond the pod network (host-network
        # endpoints) go to the host, whatever MAC they arrived with (the host addresses
        # Service IPs to the virtual next hop).
        Flow("L3Forwarding", PRIORITY_LOWER - 1, regs.match_marks(regs.ROUTED),
             actions=(_set(eth_dst=gw_mac),), goto="L3DecTTL"),
        # Anything L3Forwarding does not route is switched as addressed (pods address
        # everything outside their subnet to the gateway MAC); no TTL change since OVS
        # does not route it.
        Flow("L3Forwarding", PRIORITY_DEFAULT, {}, goto="L2ForwardingCalc"),
    ]
    for ip in cfg.gateway_ips:
        et = _family(ip)
        if et == ether.ETH_TYPE_IP:
            flows.append(Flow("ARPSpoofGuard", PRIORITY_NORMAL,
                              {"in_port": gw_port, "eth_type": ether.ETH_TYPE_ARP,
                               "arp_spa": ip, "arp_sha": gw_mac}, goto=GOTO_NEXT))
        # Routed traffic (from the tunnel, DNAT-ed Services) for the gateway IP: address
        # it to the gateway. Pods' own traffic to it is switched (same subnet).
        flows.append(Flow("L3Forwarding", PRIORITY_HIGH,
                          {**ip_match(et, "dst", ip), **regs.match_marks(regs.ROUTED)},
                          actions=(_set(eth_dst=gw_mac),), goto="L3DecTTL"))
    for et in IP_FAMILIES:
        # Replies of connections that entered through the gateway go back to it, even
        # when addressed to a pod: the host may have DNAT-ed the request and must undo it.
        flows.append(Flow("L3Forwarding", PRIORITY_HIGH,
                          {"eth_type": et,
                           "ct_state": regs.ct_state(regs.CT_RPL | regs.CT_TRK),
                           **regs.match_marks(regs.CONN_FROM_GATEWAY)},
                          actions=(_set(eth_dst=gw_mac),), goto="L3DecTTL"))
    for cidr in cfg.pod_cidrs:
        # Pod-to-pod on this node: the same subnet, switched at L2.
        flows.append(Flow("L3Forwarding", PRIORITY_LOW,
                          {**ip_match(_family(cidr), "dst", cidr),
                           **regs.match_marks(regs.SWITCHED)},
                          goto="L2ForwardingCalc"))
    if cfg.tunnel_ofport is not None:
        tun = cfg.tunnel_ofport
        flows += [
            # Tunnel traffic was validated by the sending node; it skips SpoofGuard and is
            # routed (it arrives addressed to the global virtual MAC).
            Flow("Classifier", PRIORITY_NORMAL, {"in_port": tun},
                 actions=(regs.FROM_TUNNEL.load(), regs.ROUTED.load()), goto="ConntrackZone"),
            # Tunnel traffic for beyond this node's pods (e.g. the node's other IPs, the
            # outside world): hand it to the host.
            Flow("L3Forwarding", PRIORITY_LOWER, regs.match_marks(regs.FROM_TUNNEL),
                 actions=(_set(eth_dst=gw_mac),), goto="L2ForwardingCalc"),
            Flow("L2ForwardingCalc", PRIORITY_NORMAL, {"eth_dst": cfg.global_virtual_mac},
                 actions=_output_to(tun, regs.TO_TUNNEL), goto=GOTO_NEXT),
        ]
    log.debug("initial pod-networking flows count=%d tunnel=%s", len(flows),
              cfg.tunnel_ofport)
    return flows


# -- per-pod flows ------------------------------------------------------------------------


def pod_flows(cfg: NodeNetworkConfig, pod: PodPort) -> list[Flow | Group]:
    """The flows of one local pod; pass the same list to `OFBridge.delete` to remove it."""
    port, mac = pod.ofport, pod.mac
    flows: list[Flow | Group] = [
        Flow("Classifier", PRIORITY_LOW, {"in_port": port},
             actions=(regs.FROM_POD.load(),), goto=GOTO_NEXT),
        Flow("L2ForwardingCalc", PRIORITY_NORMAL, {"eth_dst": mac},
             actions=_output_to(port, regs.TO_POD), goto=GOTO_NEXT),
    ]
    for ip in pod.ips:
        et = _family(ip)
        if et == ether.ETH_TYPE_IP:
            flows.append(Flow("ARPSpoofGuard", PRIORITY_NORMAL,
                              {"in_port": port, "eth_type": ether.ETH_TYPE_ARP,
                               "arp_spa": ip, "arp_sha": mac}, goto=GOTO_NEXT))
        # Only the pod's own IP and MAC leave its port.
        flows.append(Flow("SpoofGuard", PRIORITY_NORMAL,
                          {"in_port": port, "eth_src": mac, **ip_match(et, "src", ip)},
                          goto=GOTO_NEXT))
        # Routed traffic for the pod (from the tunnel, DNAT-ed Services): the gateway is
        # the last hop.
        flows.append(Flow("L3Forwarding", PRIORITY_NORMAL,
                          {**ip_match(et, "dst", ip), **regs.match_marks(regs.ROUTED)},
                          actions=(_set(eth_src=cfg.gateway_mac), _set(eth_dst=mac)),
                          goto="L3DecTTL"))
    if ether.ETH_TYPE_IPV6 in _families(pod.ips):
        flows += _nd_to_normal(port, mac)
    return flows


# -- per-remote-node flows ----------------------------------------------------------------


def remote_node_flows(cfg: NodeNetworkConfig, node: RemoteNode) -> list[Flow | Group]:
    """Route a peer node's podCIDRs into the tunnel; answer ARP for its gateway IP.

    noEncap (no tunnel port): nothing; the host routes those podCIDRs (the L3Forwarding
    default sends them to the gateway).
    """
    if cfg.tunnel_ofport is None:
        return []
    transport = ipaddress.ip_address(node.transport_ip)
    tun_dst = ({"tun_ipv4_dst": str(transport)} if transport.version == 4
               else {"tun_ipv6_dst": str(transport)})
    flows: list[Flow | Group] = []
    for cidr in node.pod_cidrs:
        flows.append(Flow(
            "L3Forwarding", PRIORITY_NORMAL, ip_match(_family(cidr), "dst", cidr),
            actions=(_set(eth_src=cfg.gateway_mac), _set(eth_dst=cfg.global_virtual_mac),
                     _set(**tun_dst)),
            goto="L3DecTTL"))
    for gw_ip in node.gateways():
        if _family(gw_ip) != ether.ETH_TYPE_IP:
            continue  # gap: no ND proxy for a peer's IPv6 gateway yet
        flows.append(arp_responder(gw_ip, cfg.global_virtual_mac))
    return flows


def arp_responder(ip: str, mac: str) -> Flow:
    """Answer ARP requests for `ip` with `mac`, out of the port they came in on.

    The host's onlink route to a peer's podCIDR uses the peer's gateway IP as next hop;
    answering it with the global virtual MAC makes host traffic to remote pods hit the
    tunnel flow in L3Forwarding, exactly like pod traffic.
    """
    return Flow(
        "ARPResponder", PRIORITY_NORMAL,
        {"eth_type": ether.ETH_TYPE_ARP, "arp_op": ARP_OP_REQUEST, "arp_tpa": ip},
        actions=(
            _move("eth_src", "eth_dst", 48),
            _set(eth_src=mac),
            _set(arp_op=ARP_OP_REPLY),
            _move("arp_sha", "arp_tha", 48),
            _set(arp_sha=mac),
            _move("arp_spa", "arp_tpa", 32),
            _set(arp_spa=ip),
            ofpp.OFPActionOutput(ofp.OFPP_IN_PORT),
        ))
