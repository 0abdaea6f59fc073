"""Service flow computation, the proxier's diffing, reject packets and conntrack parsing
(no bridge, no cluster)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import pytest
from os_ken.lib.packet import ethernet, icmp, ipv4, packet, tcp, udp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import Flow, Group
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_proxy import serviceflows as sf
from antrea_proxy.conntrack import flush_endpoints, stale_entries
from antrea_proxy.healthcheck import HealthCheckServers, health_checks
from antrea_proxy.hostnodeport import restore_input
from antrea_proxy.model import Endpoint, ServicePort
from antrea_proxy.plugin import node_port_ips
from antrea_proxy.proxier import Proxier
from antrea_proxy.reject import reject_reply

pytestmark = pytest.mark.unit

LAYOUT = PipelineLayout.build([*core_tables(), *sf.tables()])
CFG = sf.ProxyFlowConfig(node_ips=("192.168.77.11",), proxy_all=False, learn_cookie=7)
EP1 = Endpoint("10.244.0.3", 8080, "n1")
EP2 = Endpoint("10.244.1.3", 8080, "n2")


def port(**kw: Any) -> ServicePort:
    base: dict[str, Any] = dict(namespace="ns", name="web", port_name="http", protocol="TCP",
                                port=80, cluster_ips=("10.96.0.10",), endpoints=(EP1, EP2),
                                local_node="n1")
    base.update(kw)
    return ServicePort(**base)


def ids(*ports: ServicePort, cfg: sf.ProxyFlowConfig = CFG) -> dict:
    keys = set().union(*(sf.needed_group_keys(p, cfg) for p in ports))
    return {k: 100 + i for i, k in enumerate(sorted(keys, key=repr))}


def actions_of(flow: Flow, kind: type) -> list:
    return [a for a in flow.actions if isinstance(a, kind)]


def test_service_tables_sit_around_the_core_conntrack_and_routing_tables():
    order = [t.name for t in LAYOUT.tables()]
    assert order.index("SpoofGuard") < order.index("UnSNAT") < order.index("ConntrackZone")
    assert (order.index("ConntrackState") < order.index("PreRoutingClassifier")
            < order.index("SessionAffinity") < order.index("ServiceLB")
            < order.index("EndpointDNAT") < order.index("EgressRule"))
    assert order.index("L3DecTTL") < order.index("SNAT") < order.index("L2ForwardingCalc")


def test_a_cluster_ip_port_selects_an_endpoint_with_a_weighted_select_group():
    sp = port()
    flows, groups = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    [lb] = flows
    assert lb.table == "ServiceLB"
    assert lb.match == {"eth_type": 0x800, "ip_proto": 6, "ipv4_dst": "10.96.0.10",
                        "tcp_dst": 80}
    [group_action] = actions_of(lb, ofpp.OFPActionGroup)
    [group] = groups
    assert group.type == "select" and group.group_id == group_action.group_id
    assert [b.weight for b in group.buckets] == [100, 100]
    loads = [b.actions[0].value for b in group.buckets]
    assert loads == [0x0AF40003, 0x0AF40103]  # reg3 = each endpoint's IP


def test_a_port_without_endpoints_rejects_through_the_controller():
    flows, groups = sf.service_port_flows(port(endpoints=()), CFG, LAYOUT, {})
    [lb] = flows
    [controller] = actions_of(lb, ofpp.NXActionController2)
    assert bytes(controller.userdata) == sf.REJECT_USERDATA
    assert groups == []


def test_client_ip_affinity_learns_in_service_lb_and_selects_on_a_miss_in_endpoint_dnat():
    sp = port(affinity_timeout=30)
    flows, [group] = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    by_table = {(f.table, f.priority): f for f in flows}
    entry = by_table[("ServiceLB", sf.PRIORITY_NORMAL)]
    assert entry.goto == "EndpointDNAT"
    [learn] = actions_of(by_table[("ServiceLB", sf.PRIORITY_HIGH)], ofpp.NXActionLearn)
    assert learn.idle_timeout == 30 and learn.table_id == LAYOUT.table_id("SessionAffinity")
    miss = by_table[("EndpointDNAT", sf.PRIORITY_LOW)]
    assert miss.match["reg4"] == (0, 0x30000)  # no endpoint selected yet
    # Buckets go back to ServiceLB to be learned, not straight to EndpointDNAT.
    assert {b.actions[-1].table_id for b in group.buckets} == {LAYOUT.table_id("ServiceLB")}


def test_node_ports_are_programmed_only_with_proxy_all():
    sp = port(node_port=30080)
    flows, _ = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    assert {f.match["ipv4_dst"] for f in flows} == {"10.96.0.10"}
    full = replace(CFG, proxy_all=True, gateway_ip="10.244.0.1")
    flows, _ = sf.service_port_flows(sp, full, LAYOUT, ids(sp, cfg=full))
    by_dst = {(f.match["ipv4_dst"], f.match["tcp_dst"]): f for f in flows
              if f.priority == sf.PRIORITY_NORMAL}
    assert set(by_dst) == {("10.96.0.10", 80), ("192.168.77.11", 30080),
                           ("169.254.0.252", 30080)}
    # Only what the host hands over (the virtual NodePort IP) is masqueraded.
    snat_bit = 1 << 20
    loads = {k: [a.value for a in actions_of(f, ofpp.OFPActionSetField)
                 if a.key == "reg0"] for k, f in by_dst.items()}
    assert (snat_bit, snat_bit) in loads[("169.254.0.252", 30080)]
    assert (snat_bit, snat_bit) not in loads[("192.168.77.11", 30080)]
    # ... and external frontends reached from the host (routed in through the gateway).
    [from_gw] = [f for f in flows if "reg0" in f.match]
    assert from_gw.match["ipv4_dst"] == "192.168.77.11"
    assert (snat_bit, snat_bit) in [a.value for a in actions_of(from_gw, ofpp.OFPActionSetField)]
    local = replace(sp, external_local=True)
    flows, _ = sf.service_port_flows(local, full, LAYOUT, ids(local, cfg=full))
    assert all((snat_bit, snat_bit) not in [a.value for a in actions_of(f, ofpp.OFPActionSetField)]
               for f in flows)


def loads(flow: Flow) -> dict[str, Any]:
    return {a.key: a.value for a in actions_of(flow, ofpp.OFPActionSetField)}


def test_external_traffic_policy_local_gives_external_frontends_their_own_group():
    sp = port(external_ips=("192.168.77.50",), external_local=True)
    flows, groups = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    assert len(groups) == 2
    by_ip = {f.match["ipv4_dst"]: f for f in flows}
    [internal] = actions_of(by_ip["10.96.0.10"], ofpp.OFPActionGroup)
    assert len(next(g for g in groups if g.group_id == internal.group_id).buckets) == 2
    [external] = [g for g in groups if g.group_id != internal.group_id]
    assert len(external.buckets) == 1  # only n1's endpoint
    # ... which the external frontend's flow loads itself (nothing to select).
    assert loads(by_ip["192.168.77.50"])["reg3"] == 0x0AF40003


def test_a_single_endpoint_is_loaded_without_the_select_group():
    """One endpoint: no group on the packet's path (a group costs each new connection a
    datapath recirculation or an upcall); a second endpoint brings the group back."""
    sp = port(endpoints=(EP2,))
    flows, [group] = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    [lb] = flows
    assert not actions_of(lb, ofpp.OFPActionGroup)
    assert lb.goto == "EndpointDNAT"
    # Exactly what the group's bucket would load, so EndpointDNAT's flow matches it.
    assert loads(lb)["reg3"] == 0x0AF40103
    assert loads(lb)["reg4"] == (group.buckets[0].actions[1].value)
    assert loads(lb)["reg4"][0] == (1 << 16) | 8080  # selected, port 8080
    dnat = sf.endpoint_dnat_flows("TCP", EP2, LAYOUT)
    assert all(f.match["reg4"][0] & f.match["reg4"][1] == loads(lb)["reg4"][0] for f in dnat)
    two = port(endpoints=(EP1, EP2))
    [lb2], _ = sf.service_port_flows(two, CFG, LAYOUT, ids(two))
    assert actions_of(lb2, ofpp.OFPActionGroup) and lb2.goto is None
    # Affinity keeps its learn path even with one endpoint.
    aff = port(endpoints=(EP2,), affinity_timeout=30)
    aff_flows, _ = sf.service_port_flows(aff, CFG, LAYOUT, ids(aff))
    assert any(actions_of(f, ofpp.NXActionLearn) for f in aff_flows)


def test_endpoints_shared_by_services_get_one_dnat_flow_pair():
    a, b = port(), port(name="other", cluster_ips=("10.96.0.11",))
    flows, _ = sf.all_flows([a, b], CFG, LAYOUT, ids(a, b))
    dnat = [f for f in flows if f.table == "EndpointDNAT"]
    assert len(dnat) == 4  # two endpoints x (normal, hairpin)
    assert len({sf.flow_key(f) for f in flows}) == len(flows)


class FakeBridge:
    def __init__(self) -> None:
        self.installed: list[Flow | Group] = []
        self.deleted: list[Any] = []

    def install(self, items: list, feature: str) -> None:
        self.installed += items

    def delete(self, target: Any, feature: str, table: str | None = None) -> None:
        self.deleted.append((target, table))

    def replace_feature_flows(self, feature: str, items: list) -> None:
        self.installed += items


CT_DUMP = (
    "udp,orig=(src=10.244.0.2,dst=10.96.0.10,sport=40000,dport=53),reply=(src=10.244.1.3,"
    "dst=10.244.0.2,sport=8080,dport=40000),zone=65520,mark=19\n"
    "udp,orig=(src=10.244.0.2,dst=10.96.0.10,sport=40001,dport=53),reply=(src=10.244.0.3,"
    "dst=10.244.0.2,sport=8080,dport=40001),zone=65520,mark=19\n"
    "tcp,orig=(src=10.244.0.2,dst=10.96.0.10,sport=40002,dport=80),reply=(src=10.244.1.3,"
    "dst=10.244.0.2,sport=8080,dport=40002),zone=65520,mark=19,protoinfo=(state=ESTABLISHED)\n")


def test_proxier_sends_only_changes_and_flushes_udp_entries_of_removed_endpoints():
    bridge, calls = FakeBridge(), []

    def runner(args: list[str]) -> str:
        calls.append(list(args))
        return CT_DUMP if args[0] == "dpctl/dump-conntrack" else ""

    proxier = Proxier(bridge, LAYOUT, CFG, conntrack=runner)
    dns = port(port_name="dns", protocol="UDP", port=53)
    proxier.sync([dns])
    first = len(bridge.installed)
    proxier.sync([dns])
    assert len(bridge.installed) == first and not bridge.deleted  # nothing changed
    proxier.sync([replace(dns, endpoints=(EP1,))])
    [(removed, _)] = bridge.deleted
    assert {f.match.get("reg3") for f in removed if isinstance(f, Flow)} == {0x0AF40103}
    flushes = [c for c in calls if c[0] == "dpctl/flush-conntrack"]
    assert flushes == [["dpctl/flush-conntrack", "zone=65520",
                        "ct_nw_src=10.244.0.2,ct_nw_dst=10.96.0.10,ct_nw_proto=17,"
                        "ct_tp_src=40000,ct_tp_dst=53"]]


def test_stale_entries_are_only_udp_answered_by_the_removed_endpoint():
    stale = stale_entries(CT_DUMP, "UDP", [("10.244.1.3", 8080)])
    assert [e.sport for e in stale] == [40000]
    assert flush_endpoints(lambda a: "", 65520, "UDP", []) == 0


def _frame(l4: Any, proto: int) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="aa:aa:aa:aa:aa:01", src="aa:aa:aa:aa:aa:02"))
    pkt.add_protocol(ipv4.ipv4(src="10.244.0.2", dst="10.96.0.10", proto=proto))
    pkt.add_protocol(l4)
    pkt.serialize()
    return bytes(pkt.data)


def test_a_syn_is_answered_with_a_reset_from_the_service_address():
    reply = packet.Packet(reject_reply(_frame(
        tcp.tcp(src_port=40000, dst_port=80, seq=1000, bits=tcp.TCP_SYN), 6)))
    eth, ip, seg = (reply.get_protocol(c) for c in (ethernet.ethernet, ipv4.ipv4, tcp.tcp))
    assert (eth.src, eth.dst) == ("aa:aa:aa:aa:aa:01", "aa:aa:aa:aa:aa:02")
    assert (ip.src, ip.dst) == ("10.96.0.10", "10.244.0.2")
    assert (seg.src_port, seg.dst_port, seg.ack) == (80, 40000, 1001)
    assert seg.bits == tcp.TCP_RST | tcp.TCP_ACK
    assert reject_reply(_frame(tcp.tcp(src_port=1, dst_port=80, bits=tcp.TCP_RST), 6)) is None


def test_a_udp_datagram_is_answered_with_port_unreachable_quoting_it():
    reply = packet.Packet(reject_reply(_frame(udp.udp(src_port=40000, dst_port=53), 17)))
    err = reply.get_protocol(icmp.icmp)
    assert (err.type, err.code) == (icmp.ICMP_DEST_UNREACH, 3)
    quoted = ipv4.ipv4.parser(bytes(err.data.data))[0]
    assert (quoted.src, quoted.dst) == ("10.244.0.2", "10.96.0.10")


def test_sctp_and_udp_ports_match_their_own_destination_port_field():
    for protocol, proto, field in (("SCTP", 132, "sctp_dst"), ("UDP", 17, "udp_dst")):
        sp = port(protocol=protocol)
        [lb], _ = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
        assert lb.match["ip_proto"] == proto and lb.match[field] == 80


SCTP_DUMP = """\
sctp,orig=(src=10.244.0.2,dst=10.96.0.20,sport=3868,dport=3868),reply=(src=10.244.1.3,dst=10.244.0.2,sport=3868,dport=3868),zone=65520,mark=19
sctp,orig=(src=10.244.0.6,dst=10.96.0.20,sport=3868,dport=3868),reply=(src=10.244.1.4,dst=10.244.0.6,sport=3868,dport=3868),zone=65520,mark=19
"""


def test_stale_sctp_entries_are_those_answered_by_the_removed_endpoint():
    # An association retrying from the same ports would keep a stale entry alive.
    [stale] = stale_entries(SCTP_DUMP, "SCTP", [("10.244.1.3", 3868)])
    assert (stale.src, stale.dst) == ("10.244.0.2", "10.96.0.20")
    assert stale.flush_arg() == ("ct_nw_src=10.244.0.2,ct_nw_dst=10.96.0.20,ct_nw_proto=132,"
                                 "ct_tp_src=3868,ct_tp_dst=3868")


SCTP_CFG = replace(CFG, stateless_sctp=True, gateway_ip="10.244.0.1")


def _sctp_port() -> ServicePort:
    return port(protocol="SCTP", port_name="diameter", port=3868)


def test_stateless_sctp_balances_each_association_and_remembers_its_endpoint():
    sp = _sctp_port()
    flows, [group] = sf.service_port_flows(sp, SCTP_CFG, LAYOUT, ids(sp, cfg=SCTP_CFG))
    lb = [f for f in flows if f.table == "ServiceLB"]
    [learn_flow] = [f for f in lb if actions_of(f, ofpp.NXActionLearn)]
    [learn] = actions_of(learn_flow, ofpp.NXActionLearn)
    # Keyed by the client's port too: one association, not one client.
    assert ("sctp_src", "sctp_src") in {(m.src[0], m.dst[0]) for m in learn.specs
                                        if isinstance(m.src, tuple)}
    assert learn.idle_timeout == sf.SCTP_ASSOCIATION_IDLE_SECONDS
    # Buckets go back to ServiceLB to learn the choice.
    assert all(any(isinstance(a, ofpp.NXActionResubmitTable)
                   and a.table_id == LAYOUT.table_id("ServiceLB") for a in b.actions)
               for b in group.buckets)
    # With conntrack doing SCTP (kernel datapath), nothing of this.
    flows, _ = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    assert not any(actions_of(f, ofpp.NXActionLearn) for f in flows)


def test_stateless_sctp_dnat_rewrites_with_set_field_and_learns_the_reply():
    flows = sf.endpoint_dnat_flows("SCTP", EP1, LAYOUT, SCTP_CFG)
    assert not any(actions_of(f, ofpp.NXActionCT) for f in flows)
    plain, masq = sorted(flows, key=lambda f: f.priority)
    assert [(a.key, a.value) for a in actions_of(plain, ofpp.OFPActionSetField)] == [
        ("ipv4_dst", EP1.ip), ("sctp_dst", EP1.port)]
    assert ("ipv4_src", "10.244.0.1") in [
        (a.key, a.value) for a in actions_of(masq, ofpp.OFPActionSetField)]
    for flow in (plain, masq):
        [learn] = actions_of(flow, ofpp.NXActionLearn)
        assert learn.table_id == LAYOUT.table_id("SCTPReplies")
    # The masqueraded association's reply is matched at the gateway IP and sent back to
    # the client's address.
    [learn] = actions_of(masq, ofpp.NXActionLearn)
    loads = {m.dst[0] for m in learn.specs if isinstance(m, ofpp.NXFlowSpecLoad)}
    assert loads == {"ipv4_src_nxm", "sctp_src", "ipv4_dst_nxm"}
    # TCP keeps conntrack.
    assert all(actions_of(f, ofpp.NXActionCT)
               for f in sf.endpoint_dnat_flows("TCP", EP1, LAYOUT, SCTP_CFG))


def test_replies_reach_the_learned_sctp_flows_only_where_sctp_is_stateless():
    replies = [f for f in sf.initial_flows(LAYOUT, SCTP_CFG) if f.table == "SCTPReplyNAT"
               and isinstance(f, Flow) and f.match]
    [flow] = replies
    assert flow.match["ip_proto"] == 132
    assert not [f for f in sf.initial_flows(LAYOUT, CFG) if isinstance(f, Flow)
                and f.table == "SCTPReplyNAT" and f.match]


def test_host_service_traffic_back_to_the_host_is_masqueraded_to_the_hairpin_ip():
    cfg = replace(CFG, proxy_all=True, gateway_ip="10.244.0.1",
                  gateway_mac="02:00:00:00:00:01")
    back = [f for f in sf.initial_flows(LAYOUT, cfg) if isinstance(f, Flow)
            and f.table == "SNAT" and f.match.get("eth_dst") == "02:00:00:00:00:01"]
    new, established = sorted(back, key=lambda f: f.match["ct_state"][0], reverse=True)
    [ct] = actions_of(new, ofpp.NXActionCT)
    [nat] = [a for a in ct.actions if isinstance(a, ofpp.NXActionNAT)]
    assert nat.range_ipv4_min == nat.range_ipv4_max == "169.254.0.253"
    assert ct.zone_ofs_nbits == 0xFFF1 and ct.flags  # committed in the SNAT zone
    assert new.match["reg0"] == (2, 0xF)  # from the gateway
    [ct] = actions_of(established, ofpp.NXActionCT)
    assert not ct.flags
    # Without proxyAll's gateway facts: nothing.
    assert not [f for f in sf.initial_flows(LAYOUT, CFG) if isinstance(f, Flow)
                and f.table == "SNAT" and "eth_dst" in f.match]


def test_load_balancer_source_ranges_admit_listed_sources_and_drop_the_others():
    sp = port(external_ips=("192.0.2.9", "192.0.2.10"), load_balancer_ips=("192.0.2.10",),
              source_ranges=("203.0.113.0/24", "10.1.0.0/16"))
    flows, _ = sf.service_port_flows(sp, CFG, LAYOUT, ids(sp))
    lb = [f for f in flows if f.table == "ServiceLB" and f.match["ipv4_dst"] == "192.0.2.10"]
    admitted = {f.match["ipv4_src"] for f in lb if "ipv4_src" in f.match}
    assert admitted == {("203.0.113.0", "255.255.255.0"), ("10.1.0.0", "255.255.0.0")}
    assert all(actions_of(f, ofpp.OFPActionGroup) for f in lb if "ipv4_src" in f.match)
    [drop] = [f for f in lb if "ipv4_src" not in f.match]
    assert drop.actions == () and drop.goto is None
    assert drop.priority < min(f.priority for f in lb if "ipv4_src" in f.match)
    # The external IP and the ClusterIP are not restricted.
    others = [f for f in flows if f.table == "ServiceLB" and f.match["ipv4_dst"] != "192.0.2.10"]
    assert others and not any("ipv4_src" in f.match for f in others)


def test_node_port_addresses_restrict_the_host_rules_and_the_pipeline_frontends():
    every = restore_input([("TCP", 30080)])
    [rule] = [line for line in every.splitlines() if line.startswith("-A")]
    assert "-d " not in rule and "--dst-type LOCAL" in rule and "--dport 30080" in rule
    within = restore_input([("TCP", 30080), ("SCTP", 30081)], ["192.168.77.0/24", "10.9.0.0/16"])
    rules = [line for line in within.splitlines() if line.startswith("-A")]
    assert len(rules) == 4 and {r.split()[3] for r in rules} == {"192.168.77.0/24",
                                                                  "10.9.0.0/16"}
    assert any("-p sctp" in r and "-m sctp --dport 30081" in r for r in rules)
    # nodePortAddresses listing only IPv6 CIDRs: no IPv4 address serves NodePorts.
    assert not [line for line in restore_input([("TCP", 1)], []).splitlines()
                if line.startswith("-A")]
    assert node_port_ips(["192.168.77.11", "10.0.0.5"], ["192.168.77.0/24"]) == (
        "192.168.77.11",)
    assert node_port_ips(["192.168.77.11", "10.0.0.5"], []) == ("192.168.77.11", "10.0.0.5")


def test_health_checks_count_the_local_endpoints_of_each_local_load_balancer():
    lb = port(name="lb")
    checks = health_checks([
        replace(lb, health_check_node_port=31001),
        replace(lb, port_name="dns", protocol="UDP", health_check_node_port=31001),
        replace(lb, name="away", endpoints=(EP2,), health_check_node_port=31002),
        port(name="plain")])
    assert {p: (c.name, c.local_endpoints) for p, c in checks.items()} == {
        31001: ("lb", 1), 31002: ("away", 0)}  # EP1 is on n1, counted once
    servers = HealthCheckServers("127.0.0.1")
    try:
        # Serve on free loopback ports standing in for the node ports.
        free = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                free.append(s.getsockname()[1])
        servers.sync({free[0]: checks[31001], free[1]: checks[31002]})
        with urllib.request.urlopen(f"http://127.0.0.1:{free[0]}/", timeout=5) as r:
            assert r.status == 200
            assert json.loads(r.read()) == {"service": {"namespace": "ns", "name": "lb"},
                                            "localEndpoints": 1, "serviceProxyHealthy": True}
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{free[1]}/", timeout=5)
        assert e.value.code == 503
        servers.sync({free[0]: checks[31001]})  # "away" gone: its server stops
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{free[1]}/", timeout=5)
    finally:
        servers.close()
