"""IPsec in the OVS pipeline: tunnel traffic leaves and enters through the encrypted port.

The core routes a remote podCIDR exactly as without IPsec (L3Forwarding sets the global
virtual MAC and tun_dst = the peer's transport IP); these flows change only where it
goes:

* L2ForwardingCalc, per peer: a frame for the global virtual MAC whose tun_dst is that
  peer is re-addressed to the peer's FDB MAC and output to the encrypted port
  (`tunnelport`) instead of the OVS tunnel port. Everything routed into a tunnel (pod
  traffic, Services' remote endpoints, Egress redirects) takes this path.
* L2ForwardingCalc: a frame for the global virtual MAC whose peer has no entry (yet) is
  dropped: IPsec traffic never falls back to the plaintext OVS tunnel.
* Classifier: what the encrypted port delivers is tunnel traffic (validated by the
  sending node, routed); what arrives on the OVS tunnel port is plaintext from the
  underlay and is dropped.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import registers as regs
from antrea_core.agent.openflow.flows import GOTO_NEXT, Flow
from antrea_core.agent.openflow.podnetwork import GLOBAL_VIRTUAL_MAC, PRIORITY_NORMAL
from antrea_ipsec.tunnelport import peer_mac

FEATURE = "IPsec"

PRIORITY_PEER = PRIORITY_NORMAL + 20  # above the core's "global virtual MAC → tunnel"
PRIORITY_NO_PEER = PRIORITY_NORMAL + 10
PRIORITY_PLAINTEXT = PRIORITY_NORMAL + 10  # above the core's tunnel classifier


@dataclass(frozen=True)
class IPsecFlowConfig:
    port_ofport: int  # the encrypted tunnel port
    plaintext_ofport: int | None  # the core's OVS tunnel port, if any


def initial_flows(cfg: IPsecFlowConfig) -> list[Flow]:
    flows = [
        Flow("Classifier", PRIORITY_NORMAL, {"in_port": cfg.port_ofport},
             actions=(regs.FROM_TUNNEL.load(), regs.ROUTED.load()), goto="ConntrackZone"),
        Flow("L2ForwardingCalc", PRIORITY_NO_PEER, {"eth_dst": GLOBAL_VIRTUAL_MAC}),  # drop
    ]
    if cfg.plaintext_ofport is not None:
        flows.append(Flow("Classifier", PRIORITY_PLAINTEXT,
                          {"in_port": cfg.plaintext_ofport}))  # drop
    return flows


def peer_flows(cfg: IPsecFlowConfig, transport_ip: str) -> list[Flow]:
    """Send what the core routed towards `transport_ip` through the encrypted port."""
    address = ipaddress.ip_address(transport_ip)
    if address.version != 4:
        return []  # gap: IPv6 transport (the FDB MAC is derived from an IPv4 address)
    return [Flow(
        "L2ForwardingCalc", PRIORITY_PEER,
        {"eth_dst": GLOBAL_VIRTUAL_MAC, "tun_ipv4_dst": str(address)},
        actions=(_set(eth_dst=peer_mac(str(address))),
                 _set(**{regs.TARGET_OFPORT.reg: cfg.port_ofport}),
                 regs.TO_TUNNEL.load(), regs.OUTPUT_TO_PORT.load()),
        goto=GOTO_NEXT)]


def _set(**kwargs: Any) -> Any:
    return ofpp.OFPActionSetField(**kwargs)
