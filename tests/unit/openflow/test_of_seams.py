"""The seams features use on the OpenFlow connection: ordered reconnect listeners,
packet-in dispatch by the cookie's feature id, feature plugins' flow hooks; and the
os-ken encoding fixes they rely on (NAT padding, NTR selection-method property)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent import pluginflows
from antrea_core.agent.openflow import bridge_client, oskenfix
from antrea_core.agent.openflow.bridge_client import FlowEncoder, make_cookie
from antrea_core.agent.openflow.connection import (
    OFConnection,
    PacketIn,
    ReplayOrder,
    serialize,
)
from antrea_core.agent.openflow.flows import FIVE_TUPLE, Bucket, Flow, Group
from antrea_core.plugins.hookspecs import hookimpl
from antrea_core.plugins.loading import new_plugin_manager

pytestmark = pytest.mark.unit


def unstarted() -> OFConnection:
    return OFConnection("/nonexistent/br-int.mgmt")


def packet_in(cookie: int | None) -> PacketIn:
    return PacketIn(data=b"x", table_id=1, cookie=cookie, reason=0, userdata=None, fields={})


# -- reconnect listeners ---------------------------------------------------------------

def test_reconnect_listeners_run_policy_then_features_then_forwarding():
    conn = unstarted()
    calls: list[str] = []
    conn.add_reconnect_listener(lambda c: calls.append("pods"), order=ReplayOrder.FORWARDING)
    conn.add_reconnect_listener(lambda c: calls.append("proxy"), order=ReplayOrder.FEATURES)
    conn.add_reconnect_listener(lambda c: calls.append("policy"), order=ReplayOrder.POLICY)
    conn.add_reconnect_listener(lambda c: calls.append("egress"), order=ReplayOrder.FEATURES)
    conn.run_reconnect_listeners()
    # Equal orders keep registration order.
    assert calls == ["policy", "proxy", "egress", "pods"]


def test_constructor_on_reconnect_is_a_forwarding_listener():
    calls: list[str] = []
    conn = OFConnection("/nonexistent.mgmt", on_reconnect=lambda c: calls.append("pods"))
    conn.add_reconnect_listener(lambda c: calls.append("policy"), order=ReplayOrder.POLICY)
    conn.run_reconnect_listeners()
    assert calls == ["policy", "pods"]


def test_a_failing_listener_does_not_stop_the_later_ones(caplog):
    conn = unstarted()
    calls: list[str] = []

    def broken(_conn: Any) -> None:
        raise RuntimeError("boom")

    conn.add_reconnect_listener(broken, order=ReplayOrder.POLICY, name="broken")
    conn.add_reconnect_listener(lambda c: calls.append("pods"), order=ReplayOrder.FORWARDING)
    conn.run_reconnect_listeners()
    assert calls == ["pods"]
    assert "listener=broken" in caplog.text


def test_a_failing_required_listener_holds_back_later_ones_until_a_retry_works():
    conn = unstarted()
    conn.replay_retry_seconds = 0.05
    calls: list[str] = []
    failures = [RuntimeError("vswitchd busy")]

    def policy(_conn: Any) -> None:
        if failures:
            raise failures.pop()
        calls.append("policy")

    conn.add_reconnect_listener(policy, order=ReplayOrder.POLICY, required=True)
    conn.add_reconnect_listener(lambda c: calls.append("pods"), order=ReplayOrder.FORWARDING)
    conn.run_reconnect_listeners()
    assert calls == []  # fail closed: no forwarding without policy
    retry = conn._events.get(timeout=5)  # what the event thread would run next
    assert retry is not None
    retry()
    assert calls == ["policy", "pods"]


def test_listeners_get_the_connection_and_can_be_removed():
    conn = unstarted()
    seen: list[Any] = []
    remove = conn.add_reconnect_listener(seen.append)
    conn.run_reconnect_listeners()
    remove()
    remove()  # twice is fine
    conn.run_reconnect_listeners()
    assert seen == [conn]


def test_a_replay_superseded_by_a_newer_connection_stops():
    conn = unstarted()
    calls: list[str] = []

    def lost_again(_conn: Any) -> None:
        calls.append("policy")
        conn.generation += 1  # the connection dropped and came back meanwhile

    conn.add_reconnect_listener(lost_again, order=ReplayOrder.POLICY)
    conn.add_reconnect_listener(lambda c: calls.append("pods"), order=ReplayOrder.FORWARDING)
    conn.run_reconnect_listeners(generation=conn.generation)
    assert calls == ["policy"]  # the newer generation's replay runs everything again
    conn.run_reconnect_listeners(generation=conn.generation - 1)
    assert calls == ["policy"]


# -- packet-in dispatch ----------------------------------------------------------------

def test_packet_ins_go_to_the_feature_whose_cookie_sent_them():
    conn = unstarted()
    got: dict[str, list[int]] = {"proxy": [], "egress": [], "other": []}
    conn.add_packet_in_handler(16, lambda p: got["proxy"].append(p.cookie))
    conn.add_packet_in_handler(17, lambda p: got["egress"].append(p.cookie))
    conn.on_packet_in = lambda p: got["other"].append(p.cookie)
    proxy_cookie = make_cookie(16, 3, 0x42)
    egress_cookie = make_cookie(17, 1)
    conn._deliver(packet_in(proxy_cookie))
    conn._deliver(packet_in(egress_cookie))
    conn._deliver(packet_in(make_cookie(3, 1)))  # a feature without handler
    conn._deliver(packet_in(None))
    assert got == {"proxy": [proxy_cookie], "egress": [egress_cookie],
                   "other": [make_cookie(3, 1), None]}


def test_a_failing_packet_in_handler_does_not_stop_the_others(caplog):
    conn = unstarted()
    got: list[int] = []

    def broken(_p: PacketIn) -> None:
        raise ValueError("bad packet")

    conn.add_packet_in_handler(16, broken)
    remove = conn.add_packet_in_handler(16, lambda p: got.append(1))
    conn._deliver(packet_in(make_cookie(16, 1)))
    assert got == [1]
    assert "packet-in handler failed" in caplog.text
    remove()
    conn._deliver(packet_in(make_cookie(16, 1)))
    assert got == [1]


def test_packet_in_handler_needs_a_feature_id():
    with pytest.raises(ValueError):
        unstarted().add_packet_in_handler(0, print)


def test_connection_reads_the_feature_id_where_the_bridge_client_writes_it():
    from antrea_core.agent.openflow.connection import COOKIE_FEATURE_SHIFT, cookie_feature_id

    assert COOKIE_FEATURE_SHIFT == bridge_client.FEATURE_SHIFT
    assert cookie_feature_id(make_cookie(0xAB, 0xFF, (1 << 48) - 1)) == 0xAB


# -- feature plugins' flow hooks -------------------------------------------------------

class RecordingBridge:
    def __init__(self) -> None:
        self.conn = unstarted()
        self.installed: list[tuple[str, list[Any]]] = []
        self.fail_feature: str | None = None

    def install(self, items: list[Any], feature: str) -> None:
        if feature == self.fail_feature:
            raise ConnectionError("vswitchd gone")
        self.installed.append((feature, list(items)))


class Counter:
    def __init__(self, table: str) -> None:
        self.table = table
        self.dynamic: list[Flow] = []

    @hookimpl
    def antrea_initial_flows(self, layout: Any, context: Any) -> list[Flow]:
        return [Flow(self.table, 0)]

    @hookimpl
    def antrea_replay_flows(self, layout: Any, context: Any) -> list[Flow]:
        return list(self.dynamic)


def plugins(**features: Any) -> Any:
    pm = new_plugin_manager()
    for name, plugin in features.items():
        pm.register(plugin, name=f"feature:{name}")
    return pm


def test_initial_flows_are_installed_under_each_features_cookie():
    a, b = Counter("A"), Counter("B")
    bridge = RecordingBridge()
    pluginflows.start(plugins(Zeta=a, Alpha=b), {"Zeta": a, "Alpha": b}, bridge, None, None)
    assert bridge.installed == [("Alpha", [Flow("B", 0)]), ("Zeta", [Flow("A", 0)])]


def test_reconnect_replays_initial_and_dynamic_flows_before_forwarding():
    a, b = Counter("A"), Counter("B")
    bridge = RecordingBridge()
    order: list[str] = []
    bridge.conn.add_reconnect_listener(lambda c: order.append("pods"),
                                       order=ReplayOrder.FORWARDING)
    pluginflows.start(plugins(Zeta=a, Alpha=b), {"Zeta": a, "Alpha": b}, bridge, None, None)
    a.dynamic.append(Flow("A", 100, {"in_port": 7}))
    bridge.installed.clear()
    bridge.conn.add_reconnect_listener(lambda c: order.append(
        f"installed={[f for f, _ in bridge.installed]}"), order=ReplayOrder.FORWARDING)
    bridge.fail_feature = "Alpha"  # one feature failing does not keep the other out
    bridge.conn.run_reconnect_listeners()
    assert bridge.installed == [("Zeta", [Flow("A", 0), Flow("A", 100, {"in_port": 7})])]
    assert order == ["pods", "installed=['Zeta']"]


def test_a_failing_initial_flows_hook_names_the_feature():
    class Broken:
        @hookimpl
        def antrea_initial_flows(self, layout: Any, context: Any) -> list[Flow]:
            raise KeyError("no table")

    broken = Broken()
    with pytest.raises(pluginflows.PluginFlowError, match="feature Broken failed"):
        pluginflows.start(plugins(Broken=broken), {"Broken": broken}, RecordingBridge(),
                          None, None)


def test_a_non_feature_plugin_returning_flows_is_refused():
    stray = Counter("A")
    pm = new_plugin_manager()
    pm.register(stray, name="tunnel:geneve")
    with pytest.raises(pluginflows.PluginFlowError, match="not a feature plugin"):
        pluginflows.start(pm, {}, RecordingBridge(), None, None)


# -- os-ken fixes ----------------------------------------------------------------------

def ct_with_port_nat() -> Any:
    nat = ofpp.NXActionNAT(flags=oskenfix.NX_NAT_F_DST, range_ipv4_min="10.0.0.5",
                           range_ipv4_max="10.0.0.5", range_proto_min=8080,
                           range_proto_max=8080)
    return ofpp.NXActionCT(flags=nicira_ext.NX_CT_F_COMMIT, zone_src="", zone_ofs_nbits=7,
                           recirc_table=9, alg=0,
                           actions=[nat, ofpp.OFPActionSetField(ct_mark=0x10)])


def test_nat_with_a_port_range_is_padded_to_its_declared_length():
    nat = ofpp.NXActionNAT(flags=oskenfix.NX_NAT_F_SRC, range_ipv4_min="10.0.0.1",
                           range_ipv4_max="10.0.0.2", range_proto_min=1, range_proto_max=2)
    buf = bytearray()
    nat.serialize(buf, 0)
    declared = struct.unpack_from("!H", buf, 2)[0]
    assert declared == len(buf) == 32  # 28 bytes of content, padded


def test_actions_after_a_port_nat_inside_ct_parse_back_intact():
    buf = bytearray()
    ct_with_port_nat().serialize(buf, 0)
    assert len(buf) == struct.unpack_from("!H", buf, 2)[0]
    parsed = ofpp.OFPAction.parser(bytes(buf), 0)
    nat, set_field = parsed.actions
    assert (nat.flags, nat.range_ipv4_min, nat.range_proto_min, nat.range_proto_max) == (
        oskenfix.NX_NAT_F_DST, "10.0.0.5", 8080, 8080)
    assert (set_field.key, set_field.value) == ("ct_mark", 0x10)


def test_selection_method_property_encodes_ntr_hash_over_fields():
    prop = oskenfix.GroupPropSelectionMethod("hash", ("ipv4_src", "udp_dst"))
    raw = prop.serialize()
    type_, length, vendor, exp_type, _pad, method, param = struct.unpack_from(
        "!HHIII16sQ", raw)
    assert (type_, vendor, exp_type, param) == (ofp.OFPGPT_EXPERIMENTER, 0x154D, 1, 0)
    assert method.rstrip(b"\0") == b"hash"
    # Two OXM entries whose value is the all-ones mask of the field (4 + 4, 4 + 2).
    assert length == 40 + 8 + 6 and len(raw) == 56
    assert raw[40:48] == struct.pack("!I", ofp.OXM_OF_IPV4_SRC) + b"\xff" * 4
    assert raw[48:54] == struct.pack("!I", ofp.OXM_OF_UDP_DST) + b"\xff" * 2
    assert raw[54:] == b"\0\0"


def test_selection_method_is_validated():
    with pytest.raises(ValueError, match="not one of"):
        oskenfix.GroupPropSelectionMethod("random")
    with pytest.raises(ValueError, match="takes no fields"):
        oskenfix.GroupPropSelectionMethod("dp_hash", ("ipv4_src",))
    with pytest.raises(ValueError, match="unknown OXM field"):
        oskenfix.GroupPropSelectionMethod("hash", ("nw_srcc",)).serialize()


def test_group_mod_carries_the_selection_method_after_its_buckets():
    group = Group(9, "select", (Bucket((ofpp.OFPActionOutput(1),)),),
                  selection_method="hash", selection_fields=FIVE_TUPLE)
    raw = bytes(serialize(FlowEncoder(None).encode_group(group)))  # type: ignore[arg-type]
    bucket_len = struct.unpack_from("!H", raw, 16)[0]
    props = raw[24 + bucket_len:]
    assert struct.unpack_from("!HHII", props) == (ofp.OFPGPT_EXPERIMENTER,
                                                  40 + 4 * len(FIVE_TUPLE) + sum(
                                                      (2, 4, 4, 16, 16, 1) + (2,) * 6),
                                                  0x154D, 1)
    assert len(raw) == struct.unpack_from("!H", raw, 2)[0] and len(raw) % 8 == 0
    # A delete names the group only; a non-select group cannot have a method.
    delete = bytes(serialize(FlowEncoder(None).encode_group(  # type: ignore[arg-type]
        group, ofp.OFPGC_DELETE)))
    assert len(delete) == 24
    with pytest.raises(ValueError, match="needs a select group"):
        FlowEncoder(None).encode_group(  # type: ignore[arg-type]
            Group(9, "all", (), selection_method="hash"))
