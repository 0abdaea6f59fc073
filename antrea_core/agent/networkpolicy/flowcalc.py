"""Rules as OpenFlow flows: conjunction clauses, default deny, the static bypasses.

Per rule unit (`rulecache.RuleUnit`) with conjunction id ``c`` and dimensions D
(peers, local pods, ports; a dimension that is "any" is left out):

* ``len(D) >= 2``: one flow per value of each dimension k, priority `PRIORITY_RULE`,
  action ``conjunction(c, k/n)``, plus one flow ``conj_id=c`` that records ``c`` in
  reg5 (egress) / reg6 (ingress) and jumps to the Metric table, past the DefaultRule
  table. N peers x M ports x K pods cost N + M + K + 1 flows.
* ``len(D) == 1``: the values are plain flows that jump to the Metric table, at
  `PRIORITY_SINGLE`, below the conjunctive flows: when a packet matches conjunctive
  flows but completes no conjunction, OVS goes on with lower-priority flows.

Flows are shared: two rules with the same peer get one flow carrying both conjunction
actions (a second flow with the same table/priority/match would replace the first).
`FlowTable` keeps, per flow key, what each unit contributed and renders the flow from
the union, so adding or removing one rule rewrites only the flows whose set changed.

Everything is keyed by table *name*; the bridge client resolves ids.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import (
    ether,
    inet,
    nx_actions,  # noqa: F401  (registers NX actions on the parser)
)
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.networkpolicy.portmask import FULL_MASK, port_masks
from antrea_core.agent.networkpolicy.rulecache import LocalPod, PortSpec, RuleUnit
from antrea_core.agent.openflow import registers as regs
from antrea_core.agent.openflow.flows import GOTO_NEXT, Flow, resubmit
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.agent.openflow.registers import RegField
from antrea_core.apis.controlplane import Direction, L4Protocol

FEATURE = "network-policy"

PRIORITY_BYPASS = 210  # established/related, packets not for local pods, probes
PRIORITY_RULE = 200  # conjunctive flows and conj_id flows
PRIORITY_SINGLE = 190  # one-dimension rules (no conjunction possible)
PRIORITY_DEFAULT_DENY = 200

# Our registers (registers.py gives NetworkPolicy reg2, reg5, reg6): the conjunction id
# of the rule that allowed the packet, for metrics and for reading traces.
EGRESS_RULE_ID = RegField("reg5", 0, 32)
INGRESS_RULE_ID = RegField("reg6", 0, 32)
# reg0 bits 10-19 are ours too: SCTP association tracking (`sctp_association_flows`).
SCTP_CHECKED = RegField("reg0", 10, 1)  # looked up in SCTPAssociations
SCTP_ASSOCIATED = RegField("reg0", 11, 1)  # ... and found: an allowed association's
SCTP_ASSOCIATION_IDLE = 300
PRIORITY_DEFAULT = 1

IP_PROTO = {L4Protocol.TCP: inet.IPPROTO_TCP, L4Protocol.UDP: inet.IPPROTO_UDP,
            L4Protocol.SCTP: inet.IPPROTO_SCTP}
PORT_FIELD = {L4Protocol.TCP: "tcp_dst", L4Protocol.UDP: "udp_dst",
              L4Protocol.SCTP: "sctp_dst"}
IP_FAMILIES = (ether.ETH_TYPE_IP, ether.ETH_TYPE_IPV6)


@dataclass(frozen=True)
class Tables:
    rule: str
    default: str
    metric: str
    rule_id: RegField


TABLES = {
    Direction.IN: Tables("IngressRule", "IngressDefaultRule", "IngressMetric",
                         INGRESS_RULE_ID),
    Direction.OUT: Tables("EgressRule", "EgressDefaultRule", "EgressMetric", EGRESS_RULE_ID),
}

Match = tuple[tuple[str, Any], ...]  # sorted match items: hashable
FlowKey = tuple[str, int, Match]  # (table, priority, match)


@dataclass(frozen=True, slots=True)
class Conj:
    """Unit `conj_id` needs this flow as clause `clause` (1-based) of `n_clauses`."""

    conj_id: int
    clause: int
    n_clauses: int


@dataclass(frozen=True, slots=True)
class Allow:
    """This flow allows what it matches on behalf of unit `conj_id` (conj_id flow, or a
    value of a one-dimension rule)."""

    conj_id: int


@dataclass(frozen=True, slots=True)
class Deny:
    """Default deny of an isolated pod."""


Contribution = Conj | Allow | Deny
Entry = tuple[FlowKey, Contribution]


@functools.lru_cache(maxsize=1 << 17)
def _parse(cidr: str) -> tuple[int, str, str | None]:
    """(eth_type, network address, netmask or None for a host) of an address or CIDR.
    Cached, and host addresses skip ipaddress: parsing dominated realization time."""
    address, _, prefix = cidr.partition("/")
    for family, eth_type, bits in ((socket.AF_INET, ether.ETH_TYPE_IP, "32"),
                                   (socket.AF_INET6, ether.ETH_TYPE_IPV6, "128")):
        if prefix in ("", bits):
            try:
                return eth_type, socket.inet_ntop(family, socket.inet_pton(family, address)), None
            except OSError:
                continue
    net = ipaddress.ip_network(cidr, strict=False)
    eth_type = ether.ETH_TYPE_IP if net.version == 4 else ether.ETH_TYPE_IPV6
    mask = None if net.prefixlen == net.max_prefixlen else str(net.netmask)
    return eth_type, str(net.network_address), mask


def family(cidr: str) -> int:
    return _parse(cidr)[0]


def _key(table: str, priority: int, match: dict[str, Any]) -> FlowKey:
    return table, priority, tuple(sorted(match.items()))


def peer_match(direction: Direction, cidr: str) -> dict[str, Any]:
    """ip_src of ingress packets / ip_dst of egress packets in `cidr`."""
    eth_type, address, mask = _parse(cidr)
    side = "src" if direction is Direction.IN else "dst"
    name = f"ipv4_{side}" if eth_type == ether.ETH_TYPE_IP else f"ipv6_{side}"
    return {"eth_type": eth_type, name: address if mask is None else (address, mask)}


def pod_match(direction: Direction, pod: LocalPod) -> dict[str, Any]:
    """Ingress: the packet leaves to the pod's port (reg1, set in L2ForwardingCalc).
    Egress: it entered from the pod's port (SpoofGuard vouched for its source)."""
    if direction is Direction.IN:
        return {regs.TARGET_OFPORT.reg: pod.ofport}
    return {"in_port": pod.ofport}


def port_matches(spec: PortSpec, eth_type: int) -> list[dict[str, Any]]:
    base = {"eth_type": eth_type, "ip_proto": IP_PROTO[spec.protocol]}
    if spec.port is None:
        return [base]
    field = PORT_FIELD[spec.protocol]
    return [{**base, field: value if mask == FULL_MASK else (value, mask)}
            for value, mask in port_masks(spec.port, spec.end_port)]


def unit_families(unit: RuleUnit) -> list[int]:
    """Address families the ports clause needs: the peers', else the pods'."""
    if unit.peers is not None:
        present = {family(c) for c in unit.peers}
    else:
        present = {family(ip) for pod in unit.pods for ip in pod.ips}
    return [f for f in IP_FAMILIES if f in present] or [ether.ETH_TYPE_IP]


def unit_dimensions(unit: RuleUnit, peers: bool = True) -> list[list[dict[str, Any]]]:
    """The unit's clauses in order (peers, pods, ports), each a list of match dicts;
    any-dimensions are left out (and the peers when `peers` is False)."""
    dims: list[list[dict[str, Any]]] = []
    if peers and unit.peers is not None:
        dims.append([peer_match(unit.direction, c) for c in sorted(unit.peers)])
    dims.append([pod_match(unit.direction, p)
                 for p in sorted(unit.pods, key=lambda p: p.ofport)])
    if unit.ports is not None:
        families = unit_families(unit)
        dims.append([m for spec in sorted(unit.ports, key=_spec_order)
                     for et in families for m in port_matches(spec, et)])
    return dims


def _spec_order(spec: PortSpec) -> tuple[str, int, int]:
    return spec.protocol.value, spec.port or 0, spec.end_port or 0


@functools.lru_cache(maxsize=1 << 17)
def _peer_items(direction: Direction, cidr: str) -> Match:
    """Sorted match items of a peer; cached because a group patch re-realizes every
    peer of the rules naming the group (10k peers: most of the patch's cost)."""
    return tuple(sorted(peer_match(direction, cidr).items()))


def unit_entries(unit: RuleUnit, conj_id: int) -> list[Entry]:
    """What the unit contributes to the flow table."""
    tables = TABLES[unit.direction]
    dims: list[list[Match]] = []
    if unit.peers is not None:
        dims.append([_peer_items(unit.direction, c) for c in unit.peers])
    dims.extend([tuple(sorted(m.items())) for m in values]
                for values in unit_dimensions(unit, peers=False))
    if len(dims) == 1:
        return [((tables.rule, PRIORITY_SINGLE, m), Allow(conj_id)) for m in dims[0]]
    n = len(dims)
    entries: list[Entry] = [(_key(tables.rule, PRIORITY_RULE, {"conj_id": conj_id}),
                             Allow(conj_id))]
    for k, values in enumerate(dims, start=1):
        conj = Conj(conj_id, k, n)
        entries.extend(((tables.rule, PRIORITY_RULE, m), conj) for m in values)
    return entries


def deny_entry(direction: Direction, pod: LocalPod) -> Entry:
    tables = TABLES[direction]
    return _key(tables.default, PRIORITY_DEFAULT_DENY, pod_match(direction, pod)), Deny()


def render(key: FlowKey, contributions: Iterable[Contribution]) -> Flow:
    """The flow for `key` given everything contributed to it (non-empty)."""
    table, priority, match_items = key
    match = dict(match_items)
    conjs: list[Conj] = []
    allows: list[Allow] = []
    for c in contributions:
        if isinstance(c, Conj):
            conjs.append(c)
        elif isinstance(c, Allow):
            allows.append(c)
        else:
            return Flow(table, priority, match)  # no instruction: drop
    if allows:
        # Any allowing unit will do; the lowest id keeps the choice stable.
        tables = _tables_of(table)
        conj_id = min(a.conj_id for a in allows)
        return Flow(table, priority, match, actions=(tables.rule_id.mark(conj_id).load(),),
                    goto=tables.metric)
    actions = tuple(ofpp.NXActionConjunction(c.clause - 1, c.n_clauses, c.conj_id)
                    for c in sorted(conjs, key=lambda c: (c.conj_id, c.clause)))
    return Flow(table, priority, match, actions=actions)


def _tables_of(table: str) -> Tables:
    for tables in TABLES.values():
        if table in (tables.rule, tables.default):
            return tables
    raise ValueError(f"not a NetworkPolicy table: {table}")


def _established_states() -> list[dict[str, Any]]:
    """Conntrack states that skip the rules.

    A connection we commit (core ConntrackCommit) was allowed by every policy, so its
    later packets (``-new``) pass. A Service connection is committed by AntreaProxy in
    EndpointDNAT, *before* the policy tables: if policy then drops its first packet, a
    retransmission would be ``+est`` all the same. So for those (ct_mark SERVICE) only
    replies and related packets skip the rules; requests are evaluated every time.

    SCTP packets looked up in SCTPAssociations (`sctp_association_flows`) carry
    `SCTP_CHECKED` and never skip on conntrack state.
    """
    unchecked = regs.match_marks(SCTP_CHECKED.mark(0))
    return [
        {"ct_state": regs.ct_state(regs.CT_TRK, regs.CT_NEW),
         **regs.match_marks(regs.NOT_SERVICE_CONN), **unchecked},
        {"ct_state": regs.ct_state(regs.CT_TRK | regs.CT_RPL, regs.CT_NEW), **unchecked},
        {"ct_state": regs.ct_state(regs.CT_TRK | regs.CT_REL, regs.CT_NEW), **unchecked},
    ]


def sctp_association_flows(layout: PipelineLayout) -> list[Flow]:
    """SCTP associations tracked by the policy tables themselves.

    The userspace datapath's conntrack tracks SCTP per address pair (no ports), so its
    states say nothing about an association: after one allowed association every later
    packet between the two pods, to any port and in either direction, would look
    established (a hole), and which side counts as "reply" depends on who spoke first
    (false drops). Instead, like a reflexive ACL: every SCTP packet that leaves the
    policy tables allowed (SCTPAssociationLearn, after IngressMetric) learns its reverse
    4-tuple into SCTPAssociations; EgressRule looks each SCTP packet up there once
    (resubmit, then re-enters itself with `SCTP_CHECKED` set) and packets of a known
    association skip the rules in both directions; any other SCTP packet meets them,
    whatever its conntrack state. An association is forgotten after
    `SCTP_ASSOCIATION_IDLE` seconds without packets (SCTP heartbeats come every 30 s).
    IPv4 only (IPv6 SCTP keeps the conntrack-state bypass).
    """
    sctp = {"eth_type": ether.ETH_TYPE_IP, "ip_proto": inet.IPPROTO_SCTP}
    associated = {**sctp, **regs.match_marks(SCTP_ASSOCIATED.mark(1))}
    lookup = (SCTP_CHECKED.mark(1).load(), resubmit(layout, "SCTPAssociations"),
              resubmit(layout, "EgressRule"))
    learn = ofpp.NXActionLearn(
        table_id=layout.table_id("SCTPAssociations"), idle_timeout=SCTP_ASSOCIATION_IDLE,
        priority=PRIORITY_RULE, cookie=0, specs=[
            ofpp.NXFlowSpecMatch(src=ether.ETH_TYPE_IP, dst=("eth_type_nxm", 0), n_bits=16),
            ofpp.NXFlowSpecMatch(src=inet.IPPROTO_SCTP, dst=("ip_proto_nxm", 0), n_bits=8),
            ofpp.NXFlowSpecMatch(src=("ipv4_dst_nxm", 0), dst=("ipv4_src_nxm", 0),
                                 n_bits=32),
            ofpp.NXFlowSpecMatch(src=("ipv4_src_nxm", 0), dst=("ipv4_dst_nxm", 0),
                                 n_bits=32),
            ofpp.NXFlowSpecMatch(src=("sctp_dst", 0), dst=("sctp_src", 0), n_bits=16),
            ofpp.NXFlowSpecMatch(src=("sctp_src", 0), dst=("sctp_dst", 0), n_bits=16),
            ofpp.NXFlowSpecLoad(src=1, dst=(SCTP_ASSOCIATED.reg, SCTP_ASSOCIATED.start),
                                n_bits=1),
        ])
    return [
        Flow("EgressRule", PRIORITY_BYPASS + 2, associated, goto="EgressMetric"),
        Flow("EgressRule", PRIORITY_BYPASS + 1,
             {**sctp, **regs.match_marks(SCTP_CHECKED.mark(0))}, actions=lookup),
        Flow("IngressSecurityClassifier", PRIORITY_BYPASS + 2, associated,
             goto="IngressMetric"),
        Flow("SCTPAssociationLearn", PRIORITY_RULE, sctp, actions=(learn,), goto=GOTO_NEXT),
        Flow("SCTPAssociations", PRIORITY_DEFAULT, {}),  # resubmit-only: a miss returns
    ]


def static_flows(gateway_ips: Iterable[str], layout: PipelineLayout | None = None
                 ) -> list[Flow]:
    """Flows that do not depend on any policy (SCTP association tracking needs the
    pipeline `layout`: its flows resubmit by table id).

    * Packets of established connections (and related ones, e.g. ICMP errors) pass
      without evaluation: only ``+new`` packets meet rules (but see
      `_established_states` for Service connections).
    * Ingress rules apply only to packets leaving to a local pod: packets for the
      tunnel, the gateway or the uplink are enforced on the destination's node.
    * Kubelet probes: new connections from the node itself (through antrea-gw0, with
      the gateway's IP as source) to local pods skip ingress rules, as Antrea does.
    """
    flows: list[Flow] = sctp_association_flows(layout) if layout is not None else []
    for et in IP_FAMILIES:
        for state in _established_states():
            flows.append(Flow("EgressRule", PRIORITY_BYPASS, {"eth_type": et, **state},
                              goto="EgressMetric"))
            flows.append(Flow("IngressSecurityClassifier", PRIORITY_BYPASS,
                              {"eth_type": et, **state}, goto="IngressMetric"))
    for mark in (regs.TO_TUNNEL, regs.TO_GATEWAY, regs.TO_UPLINK):
        flows.append(Flow("IngressSecurityClassifier", PRIORITY_RULE,
                          regs.match_marks(mark), goto="IngressMetric"))
    for ip in gateway_ips:
        # Not for Service connections: NodePort traffic arrives from the gateway too,
        # possibly masqueraded to the gateway IP by the host (antrea-io/antrea#1816).
        match = {**peer_match(Direction.IN, ip), **regs.match_marks(regs.FROM_GATEWAY),
                 **regs.match_marks(regs.NOT_SERVICE_CONN)}
        flows.append(Flow("IngressSecurityClassifier", PRIORITY_RULE, match,
                          goto="IngressMetric"))
    return flows


class FlowTable:
    """Desired policy flows: per flow key, each unit's contribution.

    `set_entries` replaces one owner's contributions and reports the keys whose rendered
    flow may have changed; `flow(key)` renders it (None: no contribution left, delete).
    """

    def __init__(self) -> None:
        self._flows: dict[FlowKey, dict[Hashable, Contribution]] = {}
        self._owned: dict[Hashable, frozenset[Entry]] = {}

    def set_entries(self, owner: Hashable, entries: Iterable[Entry]) -> set[FlowKey]:
        new = frozenset(entries)
        old = self._owned.get(owner, frozenset())
        if new == old:
            return set()
        changed: set[FlowKey] = set()
        for key, _ in old - new:
            slot = self._flows.get(key)
            if slot is not None and slot.pop(owner, None) is not None:
                changed.add(key)
                if not slot:
                    del self._flows[key]
        for key, contribution in new - old:
            self._flows.setdefault(key, {})[owner] = contribution
            changed.add(key)
        if new:
            self._owned[owner] = new
        else:
            self._owned.pop(owner, None)
        return changed

    def owners(self) -> list[Hashable]:
        return list(self._owned)

    def flow(self, key: FlowKey) -> Flow | None:
        slot = self._flows.get(key)
        return None if not slot else render(key, slot.values())

    def flows(self) -> Iterator[Flow]:
        for key, slot in self._flows.items():
            yield render(key, slot.values())

    def __len__(self) -> int:
        return len(self._flows)

    def clear(self) -> None:
        self._flows.clear()
        self._owned.clear()


def delete_flow(key: FlowKey) -> Flow:
    """A flow identifying `key` for a strict delete."""
    table, priority, match = key
    return Flow(table, priority, dict(match))
