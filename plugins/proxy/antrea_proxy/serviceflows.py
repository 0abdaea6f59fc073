"""Service flows as pure functions of the Service model (no bridge, no Kubernetes).

Tables (PreRouting unless said otherwise), in packet order::

    UnSNAT (ConntrackState stage, before ConntrackZone)
        replies to the hairpin virtual IP: undo the hairpin SNAT (zone 65521)
    ConntrackState (core table, our flow)
        established Service connections (ct_mark SERVICE): mark "routed", skip the
        Service tables (the core ConntrackZone already applied their NAT)
    PreRoutingClassifier   default: goto ServiceLB (SessionAffinity is resubmit-only)
    SessionAffinity        learned flows: client IP + frontend -> endpoint (reg3/reg4)
    ServiceLB              one flow per frontend (ClusterIP:port, externalIP:port,
                           nodeIP:nodePort, 169.254.0.252:nodePort): group (select an
                           endpoint), or resubmit to SessionAffinity for ClientIP
                           affinity, or reject; plus, per affinity frontend, the flow
                           that learns a freshly selected endpoint
    EndpointDNAT           one flow per endpoint: ct(commit, nat(dst=ep)) in the core
                           zone, ct_mark SERVICE; with affinity, misses select here
    SCTPReplyNAT (Switching)  stateless SCTP only (below): SCTP packets resubmit to
                           SCTPReplies, then go on
    SCTPReplies (Switching)   learned flows, one per association: its replies get the
                           frontend back as source (and the client as destination when
                           the request was masqueraded); reached only by resubmit.
                           After the policy tables, so that NetworkPolicy sees replies
                           as the endpoint sent them (the tuple its association
                           tracking learned from the translated request)
    SNAT (PostRouting)     hairpin connections: ct(commit, nat(src=virtual IP));
                           connections from the host (proxyAll): nat(src=gateway IP)

Stateless SCTP. The userspace datapath's conntrack has no SCTP tracker: it tracks SCTP
as a bare IP protocol, one entry per address pair, and NAT then rewrites addresses but
not ports, and cannot masquerade two clients to one endpoint (their reply tuples would
be equal). Where `ProxyFlowConfig.stateless_sctp` says so, SCTP Services are therefore
translated without conntrack: every request packet is load-balanced afresh, an
association stays on its endpoint through a learned SessionAffinity flow keyed by the
client's address *and port* (as ClientIP affinity keys by address), EndpointDNAT
rewrites destination (and, for masqueraded traffic, source) with set_field and learns
the association's reply flow into SCTPReplies. Pod-to-itself SCTP through a Service
(hairpin) is not translated this way.

Select groups pick the endpoint (equal weights) by a hash of the 5-tuple computed in
the datapath: an explicit NTR selection method "dp_hash" becomes ``hash(l4(0))``, which
covers UDP ports, where OVS's default (``hash(sym_l4(0))``) leaves them out; method
"hash" with fields would cost an upcall per new connection (docs/proxy.md). A bucket
cannot change registers for later actions of the flow that called the group (OVS
runs buckets on a copy), so each bucket loads reg3/reg4 and resubmits to EndpointDNAT
itself. Learned flows cannot `goto`, so SessionAffinity is only reached by resubmit
from ServiceLB, whose flow then goes on to EndpointDNAT.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from os_ken.ofproto import (
    ether,
    inet,
    nicira_ext,
    nx_actions,  # noqa: F401  (registers NX actions on the parser)
)
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import registers as core
from antrea_core.agent.openflow.flows import Bucket, Flow, Group, resubmit
from antrea_core.agent.openflow.oskenfix import NX_NAT_F_DST, NX_NAT_F_SRC
from antrea_core.agent.openflow.pipeline import PipelineLayout, Stage, TableSpec
from antrea_proxy import registers as regs
from antrea_proxy.model import Endpoint, ServicePort

TABLES = (
    TableSpec("UnSNAT", Stage.CONNTRACK_STATE, rank=5),
    TableSpec("PreRoutingClassifier", Stage.PRE_ROUTING, rank=10),
    TableSpec("SessionAffinity", Stage.PRE_ROUTING, rank=20),
    TableSpec("ServiceLB", Stage.PRE_ROUTING, rank=30),
    TableSpec("EndpointDNAT", Stage.PRE_ROUTING, rank=40),
    TableSpec("SCTPReplyNAT", Stage.SWITCHING, rank=20),
    TableSpec("SCTPReplies", Stage.SWITCHING, rank=25),
    TableSpec("SNAT", Stage.POST_ROUTING, rank=30),
)

PRIORITY_HIGH = 210
PRIORITY_NORMAL = 200
PRIORITY_LOW = 190
PRIORITY_DEFAULT = 1

IP_PROTO = {"TCP": inet.IPPROTO_TCP, "UDP": inet.IPPROTO_UDP, "SCTP": inet.IPPROTO_SCTP}
L4_DST = {"TCP": "tcp_dst", "UDP": "udp_dst", "SCTP": "sctp_dst"}
LEARN_L4_DST = {"TCP": "tcp_dst_nxm", "UDP": "udp_dst_nxm", "SCTP": "sctp_dst"}
REJECT_USERDATA = b"antrea-proxy:reject"
EP_STATE_MASK = regs.EP_PORT.mask | regs.EP_STATE.mask


@dataclass(frozen=True)
class ProxyFlowConfig:
    """Node facts the Service flows depend on."""

    node_ips: tuple[str, ...] = ()  # NodePort frontends (proxyAll only)
    proxy_all: bool = False
    gateway_ip: str = ""  # masquerade address of NodePort traffic from the host
    gateway_mac: str = ""  # proxyAll: tells Service traffic routed back to the host
    learn_cookie: int = 0  # cookie of learned SessionAffinity flows (our feature's)
    # The datapath's conntrack cannot track SCTP (OVS userspace): translate SCTP
    # Services without it (module docstring).
    stateless_sctp: bool = False


@dataclass(frozen=True)
class Frontend:
    """A destination that load-balances: IP, port, and which endpoints it may reach."""

    ip: str
    port: int
    external: bool
    snat: bool = False  # masquerade to the gateway IP (traffic entering from the host)
    source_ranges: tuple[str, ...] = ()  # only these sources (loadBalancerSourceRanges)


def frontends(sp: ServicePort, cfg: ProxyFlowConfig) -> list[Frontend]:
    out = [Frontend(ip, sp.port, False) for ip in sp.cluster_ips]
    out += [Frontend(ip, sp.port, True,
                     source_ranges=sp.source_ranges if ip in sp.load_balancer_ips else ())
            for ip in sp.external_ips]
    if sp.node_port and cfg.proxy_all:
        # Pods reach NodePorts at the node IPs (their packets enter OVS anyway); the host
        # DNATs everything else to the virtual NodePort IP and routes it to antrea-gw0.
        out += [Frontend(ip, sp.node_port, True) for ip in cfg.node_ips]
        out.append(Frontend(regs.NODEPORT_VIRTUAL_IP, sp.node_port, True,
                            snat=bool(cfg.gateway_ip) and not sp.external_local))
    return out


# -- action helpers -----------------------------------------------------------------------

def _ct(zone: int, table: int, *, commit: bool = False, nat: Any = None,
        exec_: Sequence[Any] = ()) -> Any:
    actions = ([nat] if nat is not None else []) + list(exec_)
    return ofpp.NXActionCT(
        flags=nicira_ext.NX_CT_F_COMMIT if commit else 0, zone_src="", zone_ofs_nbits=zone,
        recirc_table=table, alg=0, actions=actions)


def _ip_proto_match(protocol: str) -> dict[str, Any]:
    return {"eth_type": ether.ETH_TYPE_IP, "ip_proto": IP_PROTO[protocol]}


def frontend_match(protocol: str, fe: Frontend) -> dict[str, Any]:
    return {**_ip_proto_match(protocol), "ipv4_dst": fe.ip, L4_DST[protocol]: fe.port}


def _select_endpoint(ep: Endpoint, state: int) -> tuple[Any, ...]:
    port_value = (state << regs.EP_STATE.start) | ep.port
    return (ofpp.OFPActionSetField(reg3=_ip_int(ep.ip)),
            ofpp.OFPActionSetField(reg4=(port_value, EP_STATE_MASK)))


def _ip_int(ip: str) -> int:
    return int.from_bytes(bytes(map(int, ip.split("."))), "big")


def learn_affinity(sp: ServicePort, layout: PipelineLayout, cookie: int,
                   timeout: int, per_association: bool = False) -> Any:
    """Remember client IP + frontend -> the endpoint just selected (reg3/reg4), for the
    affinity timeout since the client's last new connection (idle timeout: only new
    connections reach SessionAffinity, as kube-proxy's `recent` match refreshes).
    Per association (stateless SCTP): the client's port too, and every packet of the
    association refreshes it."""
    l4_dst = LEARN_L4_DST[sp.protocol]
    specs = [
        ofpp.NXFlowSpecMatch(src=ether.ETH_TYPE_IP, dst=("eth_type_nxm", 0), n_bits=16),
        ofpp.NXFlowSpecMatch(src=IP_PROTO[sp.protocol], dst=("ip_proto_nxm", 0), n_bits=8),
        ofpp.NXFlowSpecMatch(src=("ipv4_src_nxm", 0), dst=("ipv4_src_nxm", 0), n_bits=32),
        ofpp.NXFlowSpecMatch(src=("ipv4_dst_nxm", 0), dst=("ipv4_dst_nxm", 0), n_bits=32),
        ofpp.NXFlowSpecMatch(src=(l4_dst, 0), dst=(l4_dst, 0), n_bits=16),
    ]
    if per_association:
        specs.append(ofpp.NXFlowSpecMatch(src=("sctp_src", 0), dst=("sctp_src", 0),
                                          n_bits=16))
    specs += [
        ofpp.NXFlowSpecLoad(src=("reg3", 0), dst=("reg3", 0), n_bits=32),
        ofpp.NXFlowSpecLoad(src=("reg4", 0), dst=("reg4", 0), n_bits=16),
        ofpp.NXFlowSpecLoad(src=1, dst=("reg4", regs.EP_STATE.start),
                            n_bits=regs.EP_STATE.width),
    ]
    return ofpp.NXActionLearn(
        table_id=layout.table_id("SessionAffinity"), specs=specs,
        idle_timeout=min(timeout, 0xFFFF), priority=PRIORITY_NORMAL, cookie=cookie)


def learn_sctp_reply(ep: Endpoint, layout: PipelineLayout, cookie: int,
                     snat_ip: str | None) -> Any:
    """From a request of one association, already load-balanced (destination still the
    frontend): its replies, from the endpoint to the client's port at the client's
    address (or at `snat_ip`, the masquerade address), get the frontend back as source
    (and the client back as destination)."""
    specs = [
        ofpp.NXFlowSpecMatch(src=ether.ETH_TYPE_IP, dst=("eth_type_nxm", 0), n_bits=16),
        ofpp.NXFlowSpecMatch(src=inet.IPPROTO_SCTP, dst=("ip_proto_nxm", 0), n_bits=8),
        ofpp.NXFlowSpecMatch(src=_ip_int(ep.ip), dst=("ipv4_src_nxm", 0), n_bits=32),
        ofpp.NXFlowSpecMatch(src=ep.port, dst=("sctp_src", 0), n_bits=16),
        ofpp.NXFlowSpecMatch(src=_ip_int(snat_ip) if snat_ip else ("ipv4_src_nxm", 0),
                             dst=("ipv4_dst_nxm", 0), n_bits=32),
        ofpp.NXFlowSpecMatch(src=("sctp_src", 0), dst=("sctp_dst", 0), n_bits=16),
        ofpp.NXFlowSpecLoad(src=("ipv4_dst_nxm", 0), dst=("ipv4_src_nxm", 0), n_bits=32),
        ofpp.NXFlowSpecLoad(src=("sctp_dst", 0), dst=("sctp_src", 0), n_bits=16),
    ]
    if snat_ip:
        specs.append(ofpp.NXFlowSpecLoad(src=("ipv4_src_nxm", 0), dst=("ipv4_dst_nxm", 0),
                                         n_bits=32))
    return ofpp.NXActionLearn(
        table_id=layout.table_id("SCTPReplies"), specs=specs,
        idle_timeout=SCTP_ASSOCIATION_IDLE_SECONDS, priority=PRIORITY_NORMAL, cookie=cookie)


# -- flows ------------------------------------------------------------------------------

def tables() -> list[TableSpec]:
    return list(TABLES)


def after_service_tables(layout: PipelineLayout) -> str:
    following = layout.table("EndpointDNAT").next_table
    if following is None:
        raise ValueError("EndpointDNAT is the last table: no pipeline after Services")
    return following


def _after_sctp_replies(layout: PipelineLayout) -> str:
    following = layout.table("SCTPReplies").next_table
    if following is None:
        raise ValueError("SCTPReplies is the last table")
    return following


SCTP_ASSOCIATION_IDLE_SECONDS = 300  # SCTP heartbeats (30 s by default) keep it alive


def stateless(sp: ServicePort, cfg: ProxyFlowConfig) -> bool:
    return sp.protocol == "SCTP" and cfg.stateless_sctp


def affinity_timeout(sp: ServicePort, cfg: ProxyFlowConfig) -> int | None:
    """How long a learned endpoint choice lasts: ClientIP affinity, or a stateless SCTP
    association."""
    if sp.affinity_timeout:
        return sp.affinity_timeout
    return SCTP_ASSOCIATION_IDLE_SECONDS if stateless(sp, cfg) else None


def initial_flows(layout: PipelineLayout, cfg: ProxyFlowConfig | None = None
                  ) -> list[Flow | Group]:
    """Flows that do not depend on any Service."""
    snat_next = layout.next_table_id("SNAT")
    assert snat_next is not None
    return [*_gateway_snat_flows(layout, cfg, snat_next), *_static_flows(layout, snat_next),
            *_sctp_reply_flows(layout, cfg)]


def _sctp_reply_flows(layout: PipelineLayout, cfg: ProxyFlowConfig | None) -> list[Flow | Group]:
    after = _after_sctp_replies(layout)
    flows: list[Flow | Group] = [Flow("SCTPReplyNAT", PRIORITY_DEFAULT, {}, goto=after)]
    if cfg is not None and cfg.stateless_sctp:
        flows.append(Flow("SCTPReplyNAT", PRIORITY_NORMAL, _ip_proto_match("SCTP"),
                          actions=(resubmit(layout, "SCTPReplies"),), goto=after))
    return flows


def _gateway_snat_flows(layout: PipelineLayout, cfg: ProxyFlowConfig | None,
                        snat_next: int) -> list[Flow | Group]:
    """Masquerade NodePort connections from the host to the gateway IP, and undo it.

    Replies come from local pods (through UnSNAT) and from other nodes' pods (through
    the tunnel, which skips to ConntrackZone): the undo therefore sits in ConntrackZone,
    on the first pass only (-trk), before the core's lookup."""
    if cfg is None or not cfg.gateway_ip:
        return []
    gw = cfg.gateway_ip
    established = ofpp.OFPActionSetField(ct_mark=(core.SERVICE_CONN.mask,
                                                  core.SERVICE_CONN.mask))
    return [
        *_host_hairpin_flows(layout, cfg, snat_next),
        Flow("ConntrackZone", PRIORITY_HIGH,
             {"eth_type": ether.ETH_TYPE_IP, "ipv4_dst": gw,
              "ct_state": core.ct_state(0, core.CT_TRK)},
             actions=(_ct(regs.SNAT_ZONE, layout.table_id("ConntrackZone"),
                          nat=ofpp.NXActionNAT(flags=0)),)),
        Flow("SNAT", PRIORITY_NORMAL,
             {"eth_type": ether.ETH_TYPE_IP,
              "ct_state": core.ct_state(core.CT_NEW | core.CT_TRK),
              **core.match_marks(regs.NEEDS_SNAT)},
             actions=(_ct(regs.SNAT_ZONE, snat_next, commit=True,
                          nat=ofpp.NXActionNAT(flags=NX_NAT_F_SRC, range_ipv4_min=gw,
                                               range_ipv4_max=gw),
                          exec_=[established]),)),
        Flow("SNAT", PRIORITY_NORMAL,
             {"eth_type": ether.ETH_TYPE_IP,
              "ct_state": core.ct_state(core.CT_TRK, core.CT_NEW | core.CT_RPL),
              **core.match_marks(regs.NEEDS_SNAT)},
             actions=(_ct(regs.SNAT_ZONE, snat_next, nat=ofpp.NXActionNAT(flags=0)),)),
    ]


def _host_hairpin_flows(layout: PipelineLayout, cfg: ProxyFlowConfig, snat_next: int
                        ) -> list[Flow | Group]:
    """Service connections from the host whose endpoint is reached through the host
    again (host network, outside the cluster): masquerade them to the hairpin virtual
    IP, which the host routes back into antrea-gw0 (masquerading it to the node's
    address on the way out); the gateway's SNAT would make the host drop the packet as
    coming from its own address, and its replies would never come back to OVS.
    Replies are un-SNAT-ed by UnSNAT like pods' hairpin."""
    if not cfg.gateway_mac:
        return []
    match = {"eth_type": ether.ETH_TYPE_IP, "eth_dst": cfg.gateway_mac,
             **core.match_marks(core.FROM_GATEWAY, core.SERVICE_CONN.mark(1))}
    marks = core.SERVICE_CONN.mask | regs.HAIRPIN_CONN.mask
    return [
        Flow("SNAT", PRIORITY_HIGH,
             {**match, "ct_state": core.ct_state(core.CT_NEW | core.CT_TRK)},
             actions=(_ct(regs.SNAT_ZONE, snat_next, commit=True,
                          nat=ofpp.NXActionNAT(flags=NX_NAT_F_SRC,
                                               range_ipv4_min=regs.HAIRPIN_VIRTUAL_IP,
                                               range_ipv4_max=regs.HAIRPIN_VIRTUAL_IP),
                          exec_=[ofpp.OFPActionSetField(ct_mark=(marks, marks))]),)),
        Flow("SNAT", PRIORITY_HIGH,
             {**match, "ct_state": core.ct_state(core.CT_TRK, core.CT_NEW | core.CT_RPL)},
             actions=(_ct(regs.SNAT_ZONE, snat_next, nat=ofpp.NXActionNAT(flags=0)),)),
    ]


def _static_flows(layout: PipelineLayout, snat_next: int) -> list[Flow | Group]:
    return [
        Flow("UnSNAT", PRIORITY_NORMAL,
             {"eth_type": ether.ETH_TYPE_IP, "ipv4_dst": regs.HAIRPIN_VIRTUAL_IP},
             actions=(_ct(regs.SNAT_ZONE, layout.table_id("ConntrackZone"),
                          nat=ofpp.NXActionNAT(flags=0)),)),
        # Established Service connections: NAT done by ConntrackZone, endpoint fixed.
        # Below the core's invalid-drop flow (same ct_state bits could overlap).
        Flow("ConntrackState", PRIORITY_LOW,
             {"ct_state": core.ct_state(core.CT_TRK, core.CT_NEW),
              **core.match_marks(core.SERVICE_CONN.mark(1))},
             actions=(core.ROUTED.load(),), goto=after_service_tables(layout)),
        Flow("PreRoutingClassifier", PRIORITY_DEFAULT, {}, goto="ServiceLB"),
        Flow("SCTPReplies", PRIORITY_DEFAULT, {}),  # resubmit-only: a miss returns
        # Reached only by resubmit: a miss must return, never run the pipeline on.
        Flow("SessionAffinity", PRIORITY_DEFAULT, {}),
        # A hairpin packet leaves by the port it came in on, which a plain output (to
        # reg1) refuses; both directions carry the HAIRPIN ct_mark.
        Flow("Output", PRIORITY_HIGH,
             core.match_marks(core.OUTPUT_TO_PORT, regs.HAIRPIN),
             actions=(ofpp.OFPActionOutput(ofp.OFPP_IN_PORT),)),
        # Later packets of a hairpin connection (request direction; replies were
        # un-SNAT-ed in UnSNAT): apply its SNAT again.
        Flow("SNAT", PRIORITY_NORMAL,
             {"eth_type": ether.ETH_TYPE_IP,
              "ct_state": core.ct_state(core.CT_TRK, core.CT_NEW | core.CT_RPL),
              **core.match_marks(regs.HAIRPIN)},
             actions=(_ct(regs.SNAT_ZONE, snat_next, nat=ofpp.NXActionNAT(flags=0)),)),
        Flow("SNAT", PRIORITY_NORMAL,
             {"eth_type": ether.ETH_TYPE_IP,
              "ct_state": core.ct_state(core.CT_NEW | core.CT_TRK),
              **core.match_marks(regs.HAIRPIN)},
             actions=(_ct(regs.SNAT_ZONE, snat_next, commit=True,
                          nat=ofpp.NXActionNAT(flags=NX_NAT_F_SRC,
                                               range_ipv4_min=regs.HAIRPIN_VIRTUAL_IP,
                                               range_ipv4_max=regs.HAIRPIN_VIRTUAL_IP),
                          exec_=[ofpp.OFPActionSetField(ct_mark=(
                              core.SERVICE_CONN.mask | regs.HAIRPIN_CONN.mask,
                              core.SERVICE_CONN.mask | regs.HAIRPIN_CONN.mask))]),)),
    ]


def endpoint_dnat_flows(protocol: str, ep: Endpoint, layout: PipelineLayout,
                        cfg: ProxyFlowConfig | None = None) -> list[Flow]:
    """DNAT to one endpoint (shared by every Service port that selects it)."""
    if protocol == "SCTP" and cfg is not None and cfg.stateless_sctp:
        return _stateless_sctp_dnat_flows(ep, layout, cfg)
    next_id = layout.table_id(after_service_tables(layout))
    match = {**_ip_proto_match(protocol), "reg3": _ip_int(ep.ip),
             "reg4": ((1 << regs.EP_STATE.start) | ep.port, EP_STATE_MASK)}
    nat = ofpp.NXActionNAT(flags=NX_NAT_F_DST, range_ipv4_min=ep.ip,
                           range_ipv4_max=ep.ip, range_proto_min=ep.port,
                           range_proto_max=ep.port)
    source = ofpp.OFPActionCopyField(
        n_bits=core.PKT_SOURCE.width, src_offset=0, dst_offset=0,
        oxm_ids=[ofpp.OFPOxmId(type_=core.PKT_SOURCE.reg),
                 ofpp.OFPOxmId(type_=core.CONN_SOURCE.reg)])
    snat = ofpp.OFPActionCopyField(
        n_bits=1, src_offset=regs.SNAT_REQUIRED.start, dst_offset=regs.SNAT_CONN.start,
        oxm_ids=[ofpp.OFPOxmId(type_=regs.SNAT_REQUIRED.reg),
                 ofpp.OFPOxmId(type_=regs.SNAT_CONN.reg)])
    flows = []
    for hairpin in (False, True):
        mark = core.SERVICE_CONN.mask | (regs.HAIRPIN_CONN.mask if hairpin else 0)
        mask = core.SERVICE_CONN.mask | regs.HAIRPIN_CONN.mask
        ct = _ct(core.CT_ZONE_V4, next_id, commit=True, nat=nat,
                 exec_=[ofpp.OFPActionSetField(ct_mark=(mark, mask)), source, snat])
        flows.append(Flow("EndpointDNAT", PRIORITY_HIGH if hairpin else PRIORITY_NORMAL,
                          {**match, "ipv4_src": ep.ip} if hairpin else match,
                          actions=(ct,)))
    return flows


def _stateless_sctp_dnat_flows(ep: Endpoint, layout: PipelineLayout,
                               cfg: ProxyFlowConfig) -> list[Flow]:
    """Rewrite to the endpoint (and, when the frontend requires it, from the gateway
    IP) with set_field, learning the association's reply flow first."""
    match = {**_ip_proto_match("SCTP"), "reg3": _ip_int(ep.ip),
             "reg4": ((1 << regs.EP_STATE.start) | ep.port, EP_STATE_MASK)}
    to_ep = (ofpp.OFPActionSetField(ipv4_dst=ep.ip), ofpp.OFPActionSetField(sctp_dst=ep.port))
    after = after_service_tables(layout)
    flows = [Flow("EndpointDNAT", PRIORITY_NORMAL, match,
                  actions=(learn_sctp_reply(ep, layout, cfg.learn_cookie, None), *to_ep),
                  goto=after)]
    if cfg.gateway_ip:
        flows.append(Flow(
            "EndpointDNAT", PRIORITY_NORMAL + 1,
            {**match, **core.match_marks(regs.SNAT_REQUIRED.mark(1))},
            actions=(learn_sctp_reply(ep, layout, cfg.learn_cookie, cfg.gateway_ip),
                     *to_ep, ofpp.OFPActionSetField(ipv4_src=cfg.gateway_ip)),
            goto=after))
    return flows


def group_for(gid: int, sp: ServicePort, endpoints: Iterable[Endpoint],
              layout: PipelineLayout, learn: bool | None = None) -> Group:
    # With affinity the bucket goes back to ServiceLB, whose learn flow remembers the
    # choice (a learn inside a dp_hash-selected bucket installed nothing, measured on
    # OVS 3.1) and then continues to EndpointDNAT.
    if learn is None:
        learn = bool(sp.affinity_timeout)
    state, then = (regs.EP_TO_LEARN, "ServiceLB") if learn else \
        (regs.EP_SELECTED, "EndpointDNAT")
    buckets = [Bucket((*_select_endpoint(ep, state.value), resubmit(layout, then)),
                      weight=100) for ep in endpoints]
    # Explicit dp_hash: the datapath hashes the 5-tuple incl. UDP ports (the default
    # leaves them out and put all of one client's UDP flows on one endpoint), and new
    # connections stay in the fast path (method "hash" upcalls for every one).
    return Group(gid, "select", tuple(buckets), selection_method="dp_hash")


def reject_actions() -> tuple[Any, ...]:
    """Hand the packet to the agent, which answers TCP RST / ICMP port unreachable."""
    return (ofpp.NXActionController2(max_len=0xFFFF, userdata=list(REJECT_USERDATA)),)


def service_port_flows(sp: ServicePort, cfg: ProxyFlowConfig, layout: PipelineLayout,
                       group_ids: Mapping[tuple[Any, ...], int]
                       ) -> tuple[list[Flow], list[Group]]:
    """The frontend flows and groups of one Service port. `group_ids` maps
    `group_key(sp, external)` to the group id to use."""
    flows: list[Flow] = []
    groups: dict[int, Group] = {}
    for fe in frontends(sp, cfg):
        base = frontend_match(sp.protocol, fe)
        if not fe.source_ranges:
            _frontend_flows(sp, fe, base, cfg, layout, group_ids, flows, groups)
            continue
        # loadBalancerSourceRanges: the frontend's flows once per allowed source; any
        # other source is dropped (as kube-proxy does).
        flows.append(Flow("ServiceLB", PRIORITY_NORMAL - 1, base))
        for cidr in fe.source_ranges:
            net = ipaddress.ip_network(cidr)
            match = {**base, "ipv4_src": (str(net.network_address), str(net.netmask))}
            _frontend_flows(sp, fe, match, cfg, layout, group_ids, flows, groups)
    return flows, list(groups.values())


def _frontend_flows(sp: ServicePort, fe: Frontend, match: dict[str, Any],
                    cfg: ProxyFlowConfig, layout: PipelineLayout,
                    group_ids: Mapping[tuple[Any, ...], int], flows: list[Flow],
                    groups: dict[int, Group]) -> None:
    """The ServiceLB (and affinity) flows of one frontend for packets matching `match`."""
    endpoints = sp.external_endpoints if fe.external else sp.internal_endpoints
    marks: tuple[Any, ...] = (core.ROUTED.load(),)
    if fe.snat:
        marks += (regs.SNAT_REQUIRED.mark(1).load(),)
    if not endpoints:
        flows.append(Flow("ServiceLB", PRIORITY_NORMAL, match, actions=reject_actions()))
        return
    gid = group_ids[group_key(sp, fe.external)]
    timeout = affinity_timeout(sp, cfg)
    groups[gid] = group_for(gid, sp, endpoints, layout, learn=bool(timeout))
    own: list[Flow] = []
    if timeout:
        own.append(Flow("ServiceLB", PRIORITY_NORMAL, match,
                        actions=(*marks, resubmit(layout, "SessionAffinity")),
                        goto="EndpointDNAT"))
        per_association = not sp.affinity_timeout
        own.append(Flow("ServiceLB", PRIORITY_HIGH,
                        {**match, **core.match_marks(regs.EP_TO_LEARN)},
                        actions=(learn_affinity(sp, layout, cfg.learn_cookie, timeout,
                                                per_association),
                                 regs.EP_SELECTED.load(),
                                 resubmit(layout, "EndpointDNAT"))))
        own.append(Flow("EndpointDNAT", PRIORITY_LOW,
                        {**match, **core.match_marks(regs.EP_UNSELECTED)},
                        actions=(ofpp.OFPActionGroup(gid),)))
    elif len(endpoints) == 1:
        # Nothing to choose: load the endpoint here. A select group costs every new
        # connection either a datapath pass (dp_hash: hash, recirculate) or, with
        # selection_method=hash, an upcall and a datapath flow of its own (the
        # hashed 5-tuple becomes exact-match). The group stays installed, so a
        # second endpoint only swaps this flow's actions.
        own.append(Flow("ServiceLB", PRIORITY_NORMAL, match,
                        actions=(*marks, *_select_endpoint(endpoints[0],
                                                           regs.EP_SELECTED.value)),
                        goto="EndpointDNAT"))
    else:
        own.append(Flow("ServiceLB", PRIORITY_NORMAL, match,
                        actions=(*marks, ofpp.OFPActionGroup(gid))))
    if fe.external and not fe.snat and cfg.gateway_ip and not sp.external_local:
        # An external/LoadBalancer IP reached from outside (routed in by the host):
        # masquerade like NodePorts; pods reaching it keep their address.
        gw_match = {**match, **core.match_marks(core.FROM_GATEWAY)}
        own += [replace(f, priority=PRIORITY_NORMAL + 1, match=gw_match,
                        actions=(regs.SNAT_REQUIRED.mark(1).load(), *f.actions))
                for f in own if f.table == "ServiceLB" and f.priority == PRIORITY_NORMAL]
    flows += own


def group_key(sp: ServicePort, external: bool) -> tuple[Any, ...]:
    """Which group a frontend uses: internal and external traffic policies may give
    ClusterIP and NodePort/LB frontends different endpoint sets."""
    split = sp.internal_local != sp.external_local
    return (*sp.key, external and split)


def needed_group_keys(sp: ServicePort, cfg: ProxyFlowConfig) -> set[tuple[Any, ...]]:
    return {group_key(sp, fe.external) for fe in frontends(sp, cfg)}


def all_flows(ports: Iterable[ServicePort], cfg: ProxyFlowConfig, layout: PipelineLayout,
              group_ids: Mapping[tuple[Any, ...], int]) -> tuple[list[Flow], list[Group]]:
    """Every Service flow and group for `ports` (frontends, groups, and one DNAT flow
    pair per distinct endpoint), excluding `initial_flows`."""
    ports = list(ports)
    flows: list[Flow] = []
    groups: list[Group] = []
    endpoints: set[tuple[str, Endpoint]] = set()
    for sp in ports:
        f, g = service_port_flows(sp, cfg, layout, group_ids)
        flows += f
        groups += g
        endpoints.update((sp.protocol, Endpoint(ep.ip, ep.port)) for ep in sp.endpoints)
    for protocol, ep in sorted(endpoints):
        flows += endpoint_dnat_flows(protocol, ep, layout, cfg)
    return flows, groups


def flow_key(flow: Flow) -> tuple[Any, ...]:
    """What identifies a flow in OVS: table, priority, match."""
    return flow.table, flow.priority, tuple(sorted((k, repr(v)) for k, v in flow.match.items()))


def flow_signature(flow: Flow) -> str:
    """A comparable rendering of what the flow does (os-ken objects print all fields)."""
    return f"{flow.actions!r}|{flow.goto}|{flow.idle_timeout}|{flow.hard_timeout}"


def group_signature(group: Group) -> str:
    return (repr([(b.weight, repr(b.actions)) for b in group.buckets]) + group.type
            + f"|{group.selection_method}|{group.selection_fields}")
