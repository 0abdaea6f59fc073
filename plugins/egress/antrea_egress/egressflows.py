"""Egress in the OVS pipeline: local Pods' external traffic tunneled to the Egress Node.

L3Forwarding sends what a local Pod addresses to the gateway and no route claimed (the
outside world) to EgressMark. There, a Pod whose Egress Node is another Node gets its
packets routed into the tunnel to that Node, exactly as traffic to a remote podCIDR:
source MAC = gateway, destination MAC = the global virtual MAC, tun_dst = the Egress
Node's transport IP. That Node hands them to its host (tunnel traffic for beyond its
Pods goes to the gateway), where iptables SNATs them to the Egress IP (`hostsnat`).
Everything else continues to the gateway as before: local Pods of an Egress whose Node
is this one are SNAT-ed by this host; other Pods are masqueraded to the Node IP.

Destinations Egress never applies to skip the redirects: this Node's podCIDRs (its
gateway IP), every Node's transport IP, and `egress.exceptCIDRs`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ether
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import registers as regs
from antrea_core.agent.openflow.flows import Flow
from antrea_core.agent.openflow.pipeline import Stage, TableSpec
from antrea_core.agent.openflow.podnetwork import GLOBAL_VIRTUAL_MAC, ip_match

FEATURE = "Egress"
TABLES = (TableSpec("EgressMark", Stage.ROUTING, rank=20),)

PRIORITY_TO_EGRESS = 100  # below every route L3Forwarding knows (pods, peers, gateway)
PRIORITY_SKIP = 210
PRIORITY_REDIRECT = 200
PRIORITY_DEFAULT = 1


@dataclass(frozen=True)
class EgressFlowConfig:
    gateway_mac: str
    local_pod_cidrs: tuple[str, ...]
    except_cidrs: tuple[str, ...] = ()


def _v4(cidr: str) -> bool:
    return ipaddress.ip_network(cidr, strict=False).version == 4


def _set(**kwargs: Any) -> Any:
    return ofpp.OFPActionSetField(**kwargs)


def initial_flows(cfg: EgressFlowConfig) -> list[Flow]:
    flows = [
        Flow("L3Forwarding", PRIORITY_TO_EGRESS,
             {"eth_type": ether.ETH_TYPE_IP, "eth_dst": cfg.gateway_mac,
              **regs.match_marks(regs.FROM_POD, regs.SWITCHED)},
             goto="EgressMark"),
        # Not redirected: to the gateway, switched as the Pod addressed it.
        Flow("EgressMark", PRIORITY_DEFAULT, {}, goto="L2ForwardingCalc"),
    ]
    for cidr in (*cfg.local_pod_cidrs, *cfg.except_cidrs):
        if _v4(cidr):
            flows.append(_skip(cidr))
    return flows


def _skip(cidr: str) -> Flow:
    return Flow("EgressMark", PRIORITY_SKIP, ip_match(ether.ETH_TYPE_IP, "dst", cidr),
                goto="L2ForwardingCalc")


def dynamic_flows(cfg: EgressFlowConfig, redirects: Mapping[str, str],
                  node_ips: Iterable[str]) -> list[Flow]:
    """Per-Pod redirects (local Pod IP -> the Egress Node's transport IP) and the Node
    IPs Egress skips."""
    flows = [_skip(ip) for ip in sorted(set(node_ips)) if _v4(ip)]
    for pod_ip, tunnel_dst in sorted(redirects.items()):
        flows.append(Flow(
            "EgressMark", PRIORITY_REDIRECT,
            {"eth_type": ether.ETH_TYPE_IP, "ipv4_src": pod_ip},
            actions=(_set(eth_src=cfg.gateway_mac), _set(eth_dst=GLOBAL_VIRTUAL_MAC),
                     _set(tun_ipv4_dst=tunnel_dst)),
            goto="L3DecTTL"))
    return flows
