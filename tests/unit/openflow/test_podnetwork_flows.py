"""Pod-networking flows as a pure function of node state (no OVS)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import registers as regs
from antrea_core.agent.openflow.bridge_client import FlowEncoder, PackedFlowEncoder
from antrea_core.agent.openflow.connection import serialize
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import GOTO_NEXT, Flow
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.agent.openflow.podnetwork import (
    GLOBAL_VIRTUAL_MAC,
    NodeNetworkConfig,
    RemoteNode,
    initial_flows,
    pod_flows,
    remote_node_flows,
)
from antrea_core.plugins.context import PodInterface

pytestmark = pytest.mark.unit

LAYOUT = PipelineLayout.build(core_tables())
GW_MAC = "02:00:0a:0a:00:01"
CFG = NodeNetworkConfig(gateway_ofport=2, gateway_mac=GW_MAC, gateway_ips=("10.10.0.1",),
                        pod_cidrs=("10.10.0.0/24",), transport_ips=("192.168.77.2",),
                        tunnel_ofport=1)
CFG_DUAL = NodeNetworkConfig(gateway_ofport=2, gateway_mac=GW_MAC,
                             gateway_ips=("10.10.0.1", "fd00:10::1"),
                             pod_cidrs=("10.10.0.0/24", "fd00:10::/64"),
                             transport_ips=("192.168.77.2",), tunnel_ofport=1)
CFG_NOENCAP = NodeNetworkConfig(gateway_ofport=2, gateway_mac=GW_MAC,
                                gateway_ips=("10.10.0.1",), pod_cidrs=("10.10.0.0/24",),
                                transport_ips=("192.168.77.2",), tunnel_ofport=None)
POD = PodInterface("default", "web", "c1", "web-abc", ("10.10.0.5",), "02:00:0a:0a:00:05", 7)
POD_DUAL = PodInterface("default", "db", "c2", "db-abc", ("10.10.0.6", "fd00:10::6"),
                        "02:00:0a:0a:00:06", 8)
PEER = RemoteNode("node-2", ("10.10.1.0/24",), "192.168.77.3")


def all_flows(cfg: NodeNetworkConfig = CFG) -> list[Flow]:
    items = [*initial_flows(cfg, LAYOUT), *pod_flows(cfg, POD), *pod_flows(cfg, POD_DUAL),
             *remote_node_flows(cfg, PEER)]
    assert all(isinstance(i, Flow) for i in items)
    return items  # type: ignore[return-value]


def in_table(flows: list[Any], table: str) -> list[Flow]:
    return [f for f in flows if f.table == table]


def set_fields(flow: Flow) -> dict[str, Any]:
    return {a.key: a.value for a in flow.actions if isinstance(a, ofpp.OFPActionSetField)}


def flow_key(flow: Flow) -> tuple[str, int, tuple]:
    return flow.table, flow.priority, tuple(sorted(flow.match.items()))


@pytest.mark.parametrize("cfg", [CFG, CFG_DUAL, CFG_NOENCAP], ids=["v4", "dual", "noencap"])
def test_flows_reference_only_tables_of_the_layout_and_compile(cfg):
    flows = all_flows(cfg)
    for flow in flows:
        assert flow.table in LAYOUT, flow
        assert flow.goto is None or flow.goto == GOTO_NEXT or flow.goto in LAYOUT, flow
    # Both encoders accept every flow: gotos go forward, matches and actions encode.
    for encoder in (FlowEncoder(LAYOUT), PackedFlowEncoder(LAYOUT)):
        for flow in flows:
            assert serialize(encoder.encode(flow, cookie=1))


@pytest.mark.parametrize("cfg", [CFG, CFG_DUAL, CFG_NOENCAP], ids=["v4", "dual", "noencap"])
def test_no_two_flows_share_table_priority_and_match(cfg):
    # OVS would silently replace one with the other.
    counts = Counter(flow_key(f) for f in all_flows(cfg))
    assert [k for k, n in counts.items() if n > 1] == []


def test_no_flow_replaces_a_pipeline_table_miss_flow():
    assert all(f.priority > 0 for f in all_flows(CFG_DUAL))


def test_spoofguard_flows_match_exactly_the_pods_ip_mac_and_port():
    flows = pod_flows(CFG, POD)
    assert [f.match for f in in_table(flows, "SpoofGuard")] == [
        {"in_port": 7, "eth_src": POD.mac, "eth_type": 0x0800, "ipv4_src": "10.10.0.5"}]
    assert [f.match for f in in_table(flows, "ARPSpoofGuard")] == [
        {"in_port": 7, "eth_type": 0x0806, "arp_spa": "10.10.0.5", "arp_sha": POD.mac}]
    for flow in in_table(flows, "SpoofGuard") + in_table(flows, "ARPSpoofGuard"):
        assert flow.goto == GOTO_NEXT and flow.actions == ()


def test_dual_stack_pod_is_spoof_checked_per_family_and_gets_neighbour_discovery():
    flows = pod_flows(CFG_DUAL, POD_DUAL)
    checked = [f.match for f in in_table(flows, "SpoofGuard") if f.goto == GOTO_NEXT]
    assert checked == [
        {"in_port": 8, "eth_src": POD_DUAL.mac, "eth_type": 0x0800, "ipv4_src": "10.10.0.6"},
        {"in_port": 8, "eth_src": POD_DUAL.mac, "eth_type": 0x86DD, "ipv6_src": "fd00:10::6"},
    ]
    nd = [f for f in in_table(flows, "SpoofGuard") if f.goto is None]
    assert sorted(f.match["icmpv6_type"] for f in nd) == [135, 136]
    assert all(f.match["eth_src"] == POD_DUAL.mac and f.match["in_port"] == 8 for f in nd)
    # ARP only for the IPv4 address.
    assert [f.match["arp_spa"] for f in in_table(flows, "ARPSpoofGuard")] == ["10.10.0.6"]


def test_spoofguard_table_drops_on_miss_so_unlisted_sources_are_dropped():
    assert LAYOUT.table("SpoofGuard").spec.missing == "drop"
    assert LAYOUT.table("ARPSpoofGuard").spec.missing == "drop"
    assert LAYOUT.table("Classifier").spec.missing == "drop"


def test_pod_port_is_classified_as_pod_source():
    [flow] = in_table(pod_flows(CFG, POD), "Classifier")
    assert flow.match == {"in_port": 7}
    assert set_fields(flow) == {"reg0": regs.PKT_SOURCE.value(regs.Source.POD)}


def test_routed_traffic_to_a_pod_gets_gateway_source_mac_and_pod_destination_mac():
    [flow] = in_table(pod_flows(CFG, POD), "L3Forwarding")
    assert flow.match == {"eth_type": 0x0800, "ipv4_dst": "10.10.0.5",
                          "reg0": (1 << 9, 1 << 9)}
    assert set_fields(flow) == {"eth_src": GW_MAC, "eth_dst": POD.mac}
    assert flow.goto == "L3DecTTL"


def test_l2_forwarding_loads_the_pods_ofport_into_reg1():
    [flow] = in_table(pod_flows(CFG, POD), "L2ForwardingCalc")
    assert flow.match == {"eth_dst": POD.mac}
    loads = [a.value for a in flow.actions if a.key == "reg0"]
    assert set_fields(flow)["reg1"] == 7
    assert regs.PKT_DESTINATION.value(regs.Destination.POD) in loads
    assert regs.TARGET_PORT_SET.value(1) in loads


def test_output_sends_to_the_port_in_reg1_only_when_a_port_was_chosen():
    flows = sorted(in_table(initial_flows(CFG, LAYOUT), "Output"), key=lambda f: f.priority)
    flow, gateway_back = flows
    assert flow.match == {"reg0": (1 << 8, 1 << 8)}
    [action] = flow.actions
    assert isinstance(action, ofpp.NXActionOutputReg) and action.src == "reg1"
    # From the gateway back to it (Services with host-network endpoints): OVS refuses a
    # plain output to the ingress port.
    assert gateway_back.match["in_port"] == CFG.gateway_ofport
    [action] = gateway_back.actions
    assert isinstance(action, ofpp.OFPActionOutput) and action.port == ofp.OFPP_IN_PORT


def test_remote_node_flows_route_its_pod_cidr_into_the_tunnel_with_tun_dst():
    [flow] = in_table(remote_node_flows(CFG, PEER), "L3Forwarding")
    assert flow.match == {"eth_type": 0x0800, "ipv4_dst": ("10.10.1.0", "255.255.255.0")}
    assert set_fields(flow) == {"eth_src": GW_MAC, "eth_dst": GLOBAL_VIRTUAL_MAC,
                                "tun_ipv4_dst": "192.168.77.3"}
    assert flow.goto == "L3DecTTL"
    # ... and the global virtual MAC is switched to the tunnel port.
    [l2] = [f for f in in_table(initial_flows(CFG, LAYOUT), "L2ForwardingCalc")
            if f.match == {"eth_dst": GLOBAL_VIRTUAL_MAC}]
    assert set_fields(l2)["reg1"] == 1


def test_remote_node_on_ipv6_underlay_sets_tun_ipv6_dst():
    peer = RemoteNode("node-3", ("10.10.2.0/24",), "fd77::3")
    [flow] = in_table(remote_node_flows(CFG, peer), "L3Forwarding")
    assert set_fields(flow)["tun_ipv6_dst"] == "fd77::3"


def test_remote_gateway_ip_is_answered_with_the_global_virtual_mac():
    [flow] = in_table(remote_node_flows(CFG, PEER), "ARPResponder")
    assert flow.match == {"eth_type": 0x0806, "arp_op": 1, "arp_tpa": "10.10.1.1"}
    assert set_fields(flow) == {"eth_src": GLOBAL_VIRTUAL_MAC, "arp_op": 2,
                                "arp_sha": GLOBAL_VIRTUAL_MAC, "arp_spa": "10.10.1.1"}
    out = flow.actions[-1]
    assert isinstance(out, ofpp.OFPActionOutput) and out.port == ofp.OFPP_IN_PORT


def test_explicit_remote_gateway_ip_overrides_the_first_host_of_the_cidr():
    peer = RemoteNode("node-2", ("10.10.1.0/24",), "192.168.77.3", gateway_ips=("10.10.1.254",))
    [flow] = in_table(remote_node_flows(CFG, peer), "ARPResponder")
    assert flow.match["arp_tpa"] == "10.10.1.254"


def test_noencap_has_no_tunnel_flows_and_routes_remote_pods_through_the_host():
    assert remote_node_flows(CFG_NOENCAP, PEER) == []
    flows = initial_flows(CFG_NOENCAP, LAYOUT)
    assert not [f for f in flows if f.match.get("in_port") == 1]
    assert not [f for f in flows if f.match.get("eth_dst") == GLOBAL_VIRTUAL_MAC]
    # What L3Forwarding does not route is switched to its (gateway) MAC.
    [default] = [f for f in in_table(flows, "L3Forwarding") if f.match == {}]
    assert default.goto == "L2ForwardingCalc" and default.actions == ()


def test_tunnel_traffic_skips_spoofguard_and_is_marked_routed():
    [flow] = [f for f in in_table(initial_flows(CFG, LAYOUT), "Classifier")
              if f.match == {"in_port": 1}]
    assert flow.goto == "ConntrackZone"
    loads = {a.value for a in flow.actions if a.key == "reg0"}
    assert loads == {regs.PKT_SOURCE.value(regs.Source.TUNNEL), regs.REWRITE_MAC.value(1)}


def test_local_pod_cidr_is_switched_without_ttl_change():
    [flow] = [f for f in in_table(initial_flows(CFG, LAYOUT), "L3Forwarding")
              if f.match.get("ipv4_dst") == ("10.10.0.0", "255.255.255.0")]
    assert flow.match["reg0"] == (0, 1 << 9)  # not routed
    assert flow.goto == "L2ForwardingCalc" and flow.actions == ()


def test_conntrack_drops_invalid_and_commits_new_connections_with_their_source():
    flows = initial_flows(CFG_DUAL, LAYOUT)
    [drop] = in_table(flows, "ConntrackState")
    assert drop.match == {"ct_state": (0x30, 0x30)} and drop.actions == () and drop.goto is None
    zones = {f.match["eth_type"]: f.actions[0] for f in in_table(flows, "ConntrackZone")}
    assert zones[0x0800].zone_ofs_nbits == regs.CT_ZONE_V4
    assert zones[0x86DD].zone_ofs_nbits == regs.CT_ZONE_V6
    assert {a.recirc_table for a in zones.values()} == {LAYOUT.table_id("ConntrackState")}
    commits = in_table(flows, "ConntrackCommit")
    assert len(commits) == 2
    for flow in commits:
        assert flow.match["ct_state"] == (0x21, 0x21)
        [ct] = flow.actions
        assert ct.flags & 1  # commit
        [move] = ct.actions
        assert isinstance(move, ofpp.OFPActionCopyField) and move.n_bits == 4
        assert [o.type for o in move.oxm_ids] == ["reg0", "ct_mark"]


def test_ttl_is_decremented_except_for_packets_from_the_gateway():
    flows = in_table(initial_flows(CFG, LAYOUT), "L3DecTTL")
    [skip] = [f for f in flows if "reg0" in f.match]
    assert skip.match == {"reg0": regs.PKT_SOURCE.value(regs.Source.GATEWAY)}
    assert skip.actions == ()
    [dec] = [f for f in flows if f.match.get("eth_type") == 0x0800]
    assert isinstance(dec.actions[0], ofpp.OFPActionDecNwTtl)
    assert dec.priority < skip.priority


def test_match_marks_merges_fields_of_one_register():
    assert regs.match_marks(regs.FROM_POD, regs.TO_GATEWAY, regs.ROUTED) == {
        "reg0": (0x3 | 0x20 | 0x200, 0xF | 0xF0 | 0x200)}
    with pytest.raises(ValueError, match="overlap"):
        regs.match_marks(regs.FROM_POD, regs.FROM_GATEWAY)
    with pytest.raises(ValueError):
        regs.PKT_SOURCE.value(16)


def test_gateway_mac_equal_to_global_virtual_mac_is_refused():
    with pytest.raises(ValueError, match="global virtual MAC"):
        NodeNetworkConfig(2, GLOBAL_VIRTUAL_MAC, ("10.10.0.1",), ("10.10.0.0/24",))
