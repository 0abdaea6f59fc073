"""Rules as flows: conjunction shapes, folding, named ports, default deny (no OVS)."""

from __future__ import annotations

from collections import Counter

import pytest
from np_fakes import NODE, Pod, RecordingBridge, ag, atg, member, policy, rule
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.networkpolicy import flowcalc
from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.networkpolicy.flowcalc import (
    PRIORITY_RULE,
    PRIORITY_SINGLE,
    static_flows,
)
from antrea_core.agent.openflow.bridge_client import OFBridge
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import Flow
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.apis.controlplane import (
    ANY_ADDRESS,
    Direction,
    IPBlock,
    L4Protocol,
    NamedPort,
    PolicyType,
    Service,
)

pytestmark = pytest.mark.unit

LAYOUT = PipelineLayout.build(core_tables())


def controller_with(*pods: Pod) -> tuple[NetworkPolicyController, RecordingBridge]:
    bridge = RecordingBridge()
    ctl = NetworkPolicyController(NODE, bridge, gateway_ips=("10.10.0.1",))
    for pod in pods:
        ctl.pod_added(pod)
    return ctl, bridge


def conj_actions(flow: Flow) -> list[tuple[int, int, int]]:
    """(id, k, n) of each conjunction action, k 1-based as ovs-ofctl prints it."""
    return [(a.id, a.clause + 1, a.n_clauses) for a in flow.actions
            if isinstance(a, ofpp.NXActionConjunction)]


def rule_flows(bridge: RecordingBridge, table: str = "IngressRule") -> list[Flow]:
    return bridge.table(table)


PODS = [Pod("default", f"web-{i}", 10 + i, (f"10.10.0.{10 + i}",)) for i in range(5)]


def peers(n: int) -> list:
    return [member(f"client-{i}", f"10.20.{i // 250}.{i % 250 + 1}", node="node-b")
            for i in range(n)]


@pytest.mark.parametrize(("n", "m", "k"), [(1, 1, 2), (3, 2, 1), (10, 4, 5), (50, 1, 3)])
def test_rule_costs_n_plus_m_plus_k_plus_one_flows(n: int, m: int, k: int):
    ctl, bridge = controller_with(*PODS[:k])
    services = tuple(Service(L4Protocol.TCP, 8000 + i) for i in range(m))
    ctl.replace_all(
        [policy("p", ("web",), rule(groups=("clients",), services=services))],
        [atg("web", *(member(p.name, p.ips[0]) for p in PODS[:k]))],
        [ag("clients", *peers(n))])
    flows = rule_flows(bridge)
    assert len(flows) == n + m + k + 1
    # Every clause flow carries one conjunction action of a 3-clause conjunction.
    clause_counts = Counter(conj_actions(f)[0][1] for f in flows if conj_actions(f))
    assert clause_counts == {1: n, 2: k, 3: m}
    [conj] = [f for f in flows if "conj_id" in f.match]
    assert conj.goto == "IngressMetric" and conj.priority == PRIORITY_RULE


def test_ingress_clauses_match_source_target_port_and_destination_port():
    ctl, bridge = controller_with(PODS[0], PODS[1])
    ctl.replace_all(
        [policy("p", ("web",), rule(groups=("clients",),
                                    services=(Service(L4Protocol.TCP, 80),)))],
        [atg("web", member("web-0", "10.10.0.10"), member("web-1", "10.10.0.11"))],
        [ag("clients", member("c", "10.20.0.7", node="node-b"))])
    matches = [f.match for f in rule_flows(bridge)]
    assert {"eth_type": 0x0800, "ipv4_src": "10.20.0.7"} in matches
    assert {"reg1": 10} in matches and {"reg1": 11} in matches
    assert {"eth_type": 0x0800, "ip_proto": 6, "tcp_dst": 80} in matches
    # Default deny for both pods in IngressDefaultRule, nothing for egress.
    denies = bridge.table("IngressDefaultRule")
    assert sorted(f.match["reg1"] for f in denies) == [10, 11]
    assert all(f.actions == () and f.goto is None for f in denies)
    assert bridge.table("EgressDefaultRule") == []


def test_egress_clauses_match_in_port_and_destination():
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all(
        [policy("p", ("web",), rule(Direction.OUT, blocks=(IPBlock("10.30.0.0/16"),),
                                    services=(Service(L4Protocol.UDP, 53),)),
                types=(PolicyType.EGRESS,))],
        [atg("web", member("web-0", "10.10.0.10"))], [])
    matches = [f.match for f in rule_flows(bridge, "EgressRule")]
    assert {"eth_type": 0x0800, "ipv4_dst": ("10.30.0.0", "255.255.0.0")} in matches
    assert {"in_port": 10} in matches
    assert {"eth_type": 0x0800, "ip_proto": 17, "udp_dst": 53} in matches
    assert [f.match for f in bridge.table("EgressDefaultRule")] == [{"in_port": 10}]
    assert bridge.table("IngressDefaultRule") == []


def test_one_dimension_rule_is_plain_flows_below_conjunctions():
    """"Allow from anywhere on any port": only the pods clause is left; no conjunction
    of one clause exists in OVS, so the pods match allows directly."""
    ctl, bridge = controller_with(PODS[0], PODS[1])
    ctl.replace_all([policy("p", ("web",), rule())],
                    [atg("web", member("web-0", "10.10.0.10"), member("web-1", "x"))], [])
    flows = rule_flows(bridge)
    assert sorted(f.match["reg1"] for f in flows) == [10, 11]
    assert all(f.priority == PRIORITY_SINGLE and f.goto == "IngressMetric" for f in flows)
    assert all(not conj_actions(f) for f in flows)


def test_any_peer_with_ports_is_a_two_clause_conjunction():
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all([policy("p", ("web",), rule(services=(Service(L4Protocol.SCTP, 5000),)))],
                    [atg("web", member("web-0", "10.10.0.10"))], [])
    flows = rule_flows(bridge)
    assert len(flows) == 3
    sctp = [f for f in flows if "sctp_dst" in f.match]
    assert sctp[0].match == {"eth_type": 0x0800, "ip_proto": 132, "sctp_dst": 5000}
    assert conj_actions(sctp[0])[0][1:] == (2, 2)


def test_end_port_range_becomes_masked_port_matches():
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all(
        [policy("p", ("web",), rule(services=(Service(L4Protocol.TCP, 8080, 8087),
                                              Service(L4Protocol.TCP, 9000, 9001))))],
        [atg("web", member("web-0", "10.10.0.10"))], [])
    ports = sorted(f.match["tcp_dst"] for f in rule_flows(bridge) if "tcp_dst" in f.match)
    assert ports == [(8080, 0xFFF8), (9000, 0xFFFE)]


def test_protocol_without_port_matches_the_protocol_only():
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all([policy("p", ("web",), rule(services=(Service(L4Protocol.UDP),)))],
                    [atg("web", member("web-0", "10.10.0.10"))], [])
    assert {"eth_type": 0x0800, "ip_proto": 17} in [f.match for f in rule_flows(bridge)]


def test_ipblock_except_becomes_the_remaining_cidrs():
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all(
        [policy("p", ("web",), rule(blocks=(IPBlock("10.40.0.0/24", ("10.40.0.128/25",)),)))],
        [atg("web", member("web-0", "10.10.0.10"))], [])
    srcs = [f.match.get("ipv4_src") for f in rule_flows(bridge) if "ipv4_src" in f.match]
    assert srcs == [("10.40.0.0", "255.255.255.128")]


def test_ingress_named_port_groups_pods_by_resolved_number():
    web = [member("web-0", "10.10.0.10", ports=(NamedPort("http", 8080),)),
           member("web-1", "10.10.0.11", ports=(NamedPort("http", 8080),)),
           member("web-2", "10.10.0.12", ports=(NamedPort("http", 9090),)),
           member("web-3", "10.10.0.13", ports=(NamedPort("grpc", 7000),))]
    ctl, bridge = controller_with(*PODS[:4])
    ctl.replace_all(
        [policy("p", ("web",), rule(groups=("clients",),
                                    services=(Service(L4Protocol.TCP, "http"),)))],
        [atg("web", *web)], [ag("clients", member("c", "10.20.0.7", node="node-b"))])
    flows = rule_flows(bridge)
    conj_flows = [f for f in flows if "conj_id" in f.match]
    assert len(conj_flows) == 2  # 8080 for web-0/1, 9090 for web-2; web-3 has no "http"
    by_port = {f.match["tcp_dst"]: conj_actions(f)[0][0] for f in flows if "tcp_dst" in f.match}
    by_pod = {f.match["reg1"]: conj_actions(f)[0][0] for f in flows if "reg1" in f.match}
    assert set(by_port) == {8080, 9090}
    assert by_pod == {10: by_port[8080], 11: by_port[8080], 12: by_port[9090]}
    # The peer flow is shared by both conjunctions: one flow, two actions.
    [peer] = [f for f in flows if "ipv4_src" in f.match]
    assert sorted(c[0] for c in conj_actions(peer)) == sorted(by_port.values())
    # web-3 is still isolated (default deny) but allowed by nothing.
    assert 13 in [f.match["reg1"] for f in bridge.table("IngressDefaultRule")]


def test_egress_named_port_resolves_on_the_peer_pods():
    servers = [member("db-0", "10.20.0.5", node="node-b", ports=(NamedPort("pg", 5432),)),
               member("db-1", "10.20.0.6", node="node-b", ports=(NamedPort("pg", 6432),)),
               member("db-2", "10.20.0.7", node="node-b")]
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all(
        [policy("p", ("web",), rule(Direction.OUT, groups=("db",),
                                    services=(Service(L4Protocol.TCP, "pg"),)),
                types=(PolicyType.EGRESS,))],
        [atg("web", member("web-0", "10.10.0.10"))], [ag("db", *servers)])
    flows = rule_flows(bridge, "EgressRule")
    ids = {f.match["tcp_dst"]: conj_actions(f)[0][0] for f in flows if "tcp_dst" in f.match}
    dsts = {f.match["ipv4_dst"]: conj_actions(f)[0][0] for f in flows if "ipv4_dst" in f.match}
    assert dsts == {"10.20.0.5": ids[5432], "10.20.0.6": ids[6432]}  # db-2: no "pg"


def test_egress_named_port_to_anyone_resolves_on_every_pod_and_keeps_numeric_ports_open():
    # What the controller sends for `egress: [{ports: [pg, 53/UDP]}]` (no `to`): an
    # all-pods AddressGroup plus ipBlocks covering every address.
    servers = [member("db-0", "10.20.0.5", node="node-b", ports=(NamedPort("pg", 5432),)),
               member("db-1", "10.20.0.6", node="node-b", ports=(NamedPort("pg", 6432),)),
               member("web-0", "10.10.0.10")]
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all(
        [policy("p", ("web",), rule(Direction.OUT, groups=("all",), blocks=ANY_ADDRESS,
                                    services=(Service(L4Protocol.TCP, "pg"),
                                              Service(L4Protocol.UDP, 53))),
                types=(PolicyType.EGRESS,))],
        [atg("web", member("web-0", "10.10.0.10"))], [ag("all", *servers)])
    flows = rule_flows(bridge, "EgressRule")
    tcp = {f.match["tcp_dst"]: conj_actions(f)[0][0] for f in flows if "tcp_dst" in f.match}
    dsts = {f.match["ipv4_dst"]: conj_actions(f)[0][0] for f in flows if "ipv4_dst" in f.match}
    assert dsts == {"10.20.0.5": tcp[5432], "10.20.0.6": tcp[6432]}
    # UDP/53 to any destination (no address clause): a conjunction of in_port and port.
    [udp] = [f for f in flows if f.match.get("udp_dst") == 53]
    [(udp_id, _, n)] = conj_actions(udp)
    assert n == 2 and udp_id not in dsts.values()
    assert not any(f.match.get("ipv4_dst") in ("0.0.0.0", ("0.0.0.0", "0.0.0.0"))
                   for f in flows)


def test_two_rules_sharing_a_peer_share_its_flow():
    ctl, bridge = controller_with(PODS[0])
    ctl.replace_all(
        [policy("p", ("web",), rule(groups=("c",), services=(Service(L4Protocol.TCP, 80),)),
                rule(groups=("c",), services=(Service(L4Protocol.TCP, 443),), priority=1))],
        [atg("web", member("web-0", "10.10.0.10"))], [ag("c", member("c", "10.20.0.7"))])
    [peer] = [f for f in rule_flows(bridge) if "ipv4_src" in f.match]
    assert len(conj_actions(peer)) == 2
    [pod] = [f for f in rule_flows(bridge) if "reg1" in f.match]
    assert len(conj_actions(pod)) == 2


def test_ipv6_peers_get_ipv6_port_flows():
    pod = Pod("default", "web-0", 10, ("fd00:10::10",))
    ctl, bridge = controller_with(pod)
    ctl.replace_all(
        [policy("p", ("web",), rule(groups=("c",), services=(Service(L4Protocol.TCP, 80),)))],
        [atg("web", member("web-0", "fd00:10::10"))], [ag("c", member("c", "fd00:20::7"))])
    matches = [f.match for f in rule_flows(bridge)]
    assert {"eth_type": 0x86DD, "ipv6_src": "fd00:20::7"} in matches
    assert {"eth_type": 0x86DD, "ip_proto": 6, "tcp_dst": 80} in matches


def test_static_flows_bypass_established_non_pod_destinations_and_probes():
    flows = static_flows(["10.10.0.1"])
    est = [f for f in flows if "ct_state" in f.match]
    assert {f.table for f in est} == {"EgressRule", "IngressSecurityClassifier"}
    assert all(f.goto in ("EgressMetric", "IngressMetric") for f in est)
    states = {(f.match["ct_state"], f.match.get("ct_mark")) for f in est}
    # -new+trk only for connections not committed early by AntreaProxy (ct_mark bit 4);
    # replies and related packets of any connection.
    assert states == {((0x20, 0x21), (0, 0x10)), ((0x28, 0x29), None), ((0x24, 0x25), None)}
    probe = [f for f in flows if f.match.get("ipv4_src") == "10.10.0.1"]
    assert probe and probe[0].goto == "IngressMetric"
    assert probe[0].match["reg0"] == (0x2, 0xF)  # from the gateway
    assert probe[0].match["ct_mark"] == (0, 0x10)  # not a Service connection (NodePort)


def test_every_policy_flow_encodes_for_ovs():
    """The os-ken codec accepts every flow shape we produce (fields, masks, actions)."""
    ctl, _bridge = controller_with(*PODS[:2])
    ctl.replace_all(
        [policy("p", ("web",),
                rule(groups=("c",), blocks=(IPBlock("10.9.0.0/16", ("10.9.1.0/24",)),),
                     services=(Service(L4Protocol.TCP, 1000, 1999), Service(L4Protocol.UDP),
                               Service(L4Protocol.SCTP, 7))),
                rule(Direction.OUT), types=(PolicyType.INGRESS, PolicyType.EGRESS))],
        [atg("web", member("web-0", "10.10.0.10"), member("web-1", "10.10.0.11"))],
        [ag("c", member("c", "10.20.0.7"))])
    of = OFBridge(LAYOUT, conn=None)  # type: ignore[arg-type]
    msgs, _ = of.compile(ctl.flows(), "network-policy")
    assert len(msgs) == len(ctl.flows()) > 20


def test_sctp_packets_are_tracked_per_association_by_the_policy_tables():
    flows = flowcalc.static_flows(["10.10.0.1"], LAYOUT)
    sctp = [f for f in flows if f.match.get("ip_proto") == 132]
    lookup = next(f for f in sctp if f.table == "EgressRule" and f.actions)
    resubmits = [a.table_id for a in lookup.actions
                 if isinstance(a, ofpp.NXActionResubmitTable)]
    # Look the packet up once, then walk EgressRule again with the answer.
    assert resubmits == [LAYOUT.table_id("SCTPAssociations"), LAYOUT.table_id("EgressRule")]
    assert lookup.match["reg0"] == (0, 1 << 10) and lookup.goto is None
    bypass = {f.table: f for f in sctp if f.goto in ("EgressMetric", "IngressMetric")}
    assert set(bypass) == {"EgressRule", "IngressSecurityClassifier"}
    assert all(f.match["reg0"] == (1 << 11, 1 << 11) for f in bypass.values())
    assert all(f.priority > lookup.priority for f in bypass.values())
    [learn_flow] = [f for f in sctp if f.table == "SCTPAssociationLearn"]
    [learn] = learn_flow.actions
    assert learn.table_id == LAYOUT.table_id("SCTPAssociations") and learn.cookie == 0
    # Conntrack-state bypasses only for packets not looked up (never SCTP ones).
    states = [f for f in flows if "ct_state" in f.match]
    assert states and all(f.match["reg0"] == (0, 1 << 10) for f in states)
    # Without the layout (no bridge): no SCTP tracking at all.
    assert not [f for f in flowcalc.static_flows(["10.10.0.1"]) if
                f.match.get("ip_proto") == 132]
