"""Compiling Flow/Group dataclasses into OpenFlow 1.5 messages (no OVS)."""

from __future__ import annotations

import struct

import pytest
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow.bridge_client import (
    CORE_FEATURE_IDS,
    FEATURE_MASK,
    FIRST_PLUGIN_FEATURE_ID,
    ROUND_SHIFT,
    FlowEncoder,
    OFBridge,
    PackedFlowEncoder,
    assign_feature_ids,
    make_cookie,
    next_round,
    split_cookie,
)
from antrea_core.agent.openflow.connection import CODEC, serialize
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import GOTO_NEXT, Bucket, Flow, Group
from antrea_core.agent.openflow.pipeline import (
    Pipeline,
    PipelineError,
    PipelineLayout,
    Stage,
    TableSpec,
)

pytestmark = pytest.mark.unit

LAYOUT = PipelineLayout.build(core_tables())


def bridge(round_num: int = 1, **kwargs) -> OFBridge:
    return OFBridge(LAYOUT, conn=None, round_num=round_num, **kwargs)  # type: ignore[arg-type]


def parse(buf: bytes) -> ofpp.OFPFlowMod:
    from os_ken.ofproto import ofproto_parser

    version, msg_type, length, xid = ofproto_parser.header(buf)
    return ofproto_parser.msg(CODEC, version, msg_type, length, xid, bytes(buf))


def compiled(flow: Flow, feature: str = "pod-networking", b: OFBridge | None = None,
             sequence: int = 0) -> ofpp.OFPFlowMod:
    b = b or bridge()
    msgs, _ = b.compile([flow], feature, sequence)
    return parse(serialize(msgs[0], 9))


def test_flow_table_name_resolves_to_layout_id_and_goto_next_to_following_table():
    mod = compiled(Flow("SpoofGuard", 200, {"in_port": 3}, goto=GOTO_NEXT))
    assert mod.table_id == LAYOUT.table_id("SpoofGuard")
    assert mod.priority == 200
    assert dict(mod.match.items()) == {"in_port": 3}
    (goto,) = mod.instructions
    assert isinstance(goto, ofpp.OFPInstructionGotoTable)
    assert goto.table_id == LAYOUT.next_table_id("SpoofGuard") == mod.table_id + 1


def test_goto_named_table_and_actions_become_apply_actions_then_goto():
    flow = Flow("L2ForwardingCalc", 200, {"eth_dst": "aa:bb:cc:00:00:02"},
                actions=(ofpp.OFPActionSetField(reg1=2),), goto="Output")
    apply_, goto = compiled(flow).instructions
    assert apply_.type == ofp.OFPIT_APPLY_ACTIONS
    assert [dict([(a.key, a.value)]) for a in apply_.actions] == [{"reg1": 2}]
    assert goto.table_id == LAYOUT.table_id("Output")


def test_flow_without_goto_or_actions_has_no_instructions_meaning_drop():
    assert compiled(Flow("Output", 5, {"reg1": 9})).instructions == []


def test_goto_backwards_or_past_the_last_table_is_refused_naming_the_flow():
    with pytest.raises(PipelineError, match="backwards"):
        bridge().compile([Flow("Output", 1, goto="Classifier")], "pod-networking")
    with pytest.raises(PipelineError, match="last table"):
        bridge().compile([Flow("SCTPAssociations", 1, goto=GOTO_NEXT)], "pod-networking")
    with pytest.raises(PipelineError, match="no table named Nope"):
        bridge().compile([Flow("Nope", 1)], "pod-networking")


def test_cookie_layout_is_feature_round_sequence():
    cookie = make_cookie(3, 7, 0xABCDEF)
    assert cookie == (3 << 56) | (7 << 48) | 0xABCDEF
    assert split_cookie(cookie) == (3, 7, 0xABCDEF)
    mod = compiled(Flow("IngressRule", 100, {"reg1": 1}), "network-policy",
                   bridge(round_num=5), sequence=77)
    assert split_cookie(mod.cookie) == (CORE_FEATURE_IDS["network-policy"], 5, 77)
    assert mod.cookie_mask == 0
    with pytest.raises(ValueError):
        make_cookie(256, 1)
    with pytest.raises(ValueError):
        make_cookie(1, 1, 1 << 48)
    with pytest.raises(ValueError, match="unknown feature"):
        bridge().cookie("no-such-feature")


def test_rounds_cycle_through_1_to_255_never_0():
    assert next_round(None) == 1
    assert next_round(1) == 2
    assert next_round(255) == 1


def test_plugin_feature_ids_follow_core_ids_in_sorted_name_order():
    ids = assign_feature_ids(["Egress", "AntreaProxy", "pod-networking"])
    assert ids["pod-networking"] == CORE_FEATURE_IDS["pod-networking"]
    assert ids["AntreaProxy"] == FIRST_PLUGIN_FEATURE_ID
    assert ids["Egress"] == FIRST_PLUGIN_FEATURE_ID + 1
    b = bridge(feature_ids=ids)
    assert split_cookie(b.cookie("Egress"))[0] == FIRST_PLUGIN_FEATURE_ID + 1


def test_table_miss_flows_follow_each_tables_missing_setting():
    misses = {f.table: f for f in bridge().table_miss_flows()}
    assert set(misses) == {t.name for t in LAYOUT.tables()}
    assert all(f.priority == 0 and not f.match and not f.actions for f in misses.values())
    assert misses["SpoofGuard"].goto is None  # missing="drop"
    assert misses["ConntrackZone"].goto == GOTO_NEXT
    assert misses["Output"].goto is None  # missing="drop": nothing follows the output
    assert misses["SCTPAssociations"].goto is None  # last table of the IP pipeline
    assert misses["PipelineRootClassifier"].goto is None  # root: no next table
    mod = compiled(misses["ConntrackZone"], "pipeline")
    assert mod.instructions[0].table_id == LAYOUT.table_id("ConntrackState")


def test_groups_compile_first_with_select_weights_and_add_or_modify():
    group = Group(7, "select", (Bucket((ofpp.OFPActionOutput(1),), 30),
                                Bucket((ofpp.OFPActionOutput(2),), 70)))
    flow = Flow("Output", 1, {"reg1": 3}, actions=(ofpp.OFPActionGroup(7),))
    msgs, items = bridge().compile([flow, group], "pod-networking")
    assert items == [group, flow]
    raw = bytes(serialize(msgs[0], 1))
    # os-ken cannot parse its own OF1.5 group mods (bucket properties), so read bytes.
    assert raw[1] == ofp.OFPT_GROUP_MOD
    command, type_, group_id = struct.unpack_from("!HBxI", raw, 8)
    assert (command, type_, group_id) == (0x8000, ofp.OFPGT_SELECT, 7)
    weight_prop = struct.Struct("!HHH2x")  # ofp_group_bucket_prop_weight
    for weight in (30, 70):
        assert weight_prop.pack(ofp.OFPGBPT_WEIGHT, 8, weight) in raw
    with pytest.raises(ValueError, match="unknown type"):
        bridge().compile([Group(1, "random", ())], "pod-networking")


def test_ct_tp_match_without_ct_nw_proto_is_refused():
    flow = Flow("ConntrackState", 1, {"eth_type": 0x0800, "ct_state": (0x20, 0x20),
                                      "ct_tp_dst": 80})
    with pytest.raises(ValueError, match="ct_nw_proto"):
        bridge().compile([flow], "pod-networking")


def test_ct_tuple_fields_encode_as_nicira_extended_oxm():
    flow = Flow("ConntrackState", 1, {"eth_type": 0x0800, "ct_state": (0x20, 0x20),
                                      "ct_nw_dst": "10.96.0.1", "ct_nw_proto": 6,
                                      "ct_tp_dst": 80})
    mod = compiled(flow)
    assert dict(mod.match.items())["ct_nw_dst"] == "10.96.0.1"
    assert dict(mod.match.items())["ct_tp_dst"] == 80
    # NXM_NX_CT_NW_DST = class 0x0001, field 121, 4 bytes
    header = struct.pack("!I", (0x0001 << 16) | (121 << 9) | 4)
    assert header in serialize(bridge().compile([flow], "pod-networking")[0][0])


SAMPLE_FLOWS = [
    Flow("Classifier", 200, {"in_port": 1}, goto=GOTO_NEXT),
    Flow("SpoofGuard", 200, {"in_port": 1, "eth_type": 0x0800, "ipv4_src": "10.244.0.2"},
         goto=GOTO_NEXT, idle_timeout=10, hard_timeout=20),
    Flow("IngressRule", 100, {"eth_type": 0x0800, "ipv4_src": ("10.1.2.3", "255.255.0.0"),
                              "reg1": (0x12, 0xF0), "ct_state": (0x21, 0x21)}, goto="Output"),
    Flow("L2ForwardingCalc", 200, {"eth_dst": "aa:bb:cc:00:00:02"},
         actions=(ofpp.OFPActionSetField(reg1=2),), goto="Output"),
    Flow("Output", 200, {"reg1": 2}, actions=(ofpp.OFPActionOutput(2),)),
    Flow("Output", 0),
]


@pytest.mark.parametrize("flow", SAMPLE_FLOWS, ids=lambda f: f"{f.table}-{f.priority}")
def test_packed_encoder_bytes_equal_oskens_objects(flow):
    cookie = make_cookie(2, 3, 4)
    reference = serialize(FlowEncoder(LAYOUT).encode(flow, cookie), 5)
    packed = serialize(PackedFlowEncoder(LAYOUT).encode(flow, cookie), 5)
    assert bytes(packed) == bytes(reference)


def test_packed_encoder_clears_value_bits_outside_the_mask():
    mod = parse(serialize(PackedFlowEncoder(LAYOUT).encode(
        Flow("IngressRule", 1, {"reg1": (0xFF, 0x0F)}), 0), 1))
    assert dict(mod.match.items()) == {"reg1": (0x0F, 0x0F)}


def test_delete_messages_restrict_to_the_feature_cookie():
    b = bridge(round_num=4)
    flow = Flow("Classifier", 200, {"in_port": 1}, goto=GOTO_NEXT)
    (strict,), _ = b._delete_messages([flow], "pod-networking", None, None)
    mod = parse(serialize(strict, 1))
    assert mod.command == ofp.OFPFC_DELETE_STRICT
    assert (mod.cookie, mod.cookie_mask) == (
        CORE_FEATURE_IDS["pod-networking"] << 56, FEATURE_MASK)
    assert mod.table_id == LAYOUT.table_id("Classifier")
    (loose,), _ = b._delete_messages({"reg1": 2}, "network-policy", None, 9)
    mod = parse(serialize(loose, 1))
    assert mod.command == ofp.OFPFC_DELETE and mod.table_id == ofp.OFPTT_ALL
    assert split_cookie(mod.cookie) == (CORE_FEATURE_IDS["network-policy"], 0, 9)
    assert mod.cookie_mask == FEATURE_MASK | ((1 << ROUND_SHIFT) - 1)


@pytest.mark.parametrize("current", [1, 2, 170, 255])
def test_stale_round_deletes_match_every_round_but_the_current(current):
    b = bridge(round_num=current)
    feature_id = CORE_FEATURE_IDS["network-policy"]
    mods = [parse(serialize(m, 1)) for m in b._stale_round_deletes("network-policy")]
    assert all(m.command == ofp.OFPFC_DELETE and m.table_id == ofp.OFPTT_ALL for m in mods)

    def deleted(cookie: int) -> bool:
        return any(cookie & m.cookie_mask == m.cookie for m in mods)

    for round_num in range(256):
        cookie = make_cookie(feature_id, round_num, 12345)
        assert deleted(cookie) == (round_num != current), round_num
    other_feature = make_cookie(CORE_FEATURE_IDS["pod-networking"], (current % 255) + 1)
    assert not deleted(other_feature)
    everything = [parse(serialize(m, 1)) for m in b._stale_round_deletes(None)]
    assert any(0 & m.cookie_mask == m.cookie for m in everything)  # cookie 0: not ours


def test_custom_pipeline_with_plugin_table_resolves_by_name():
    layout = PipelineLayout.build([
        *core_tables(), TableSpec("ServiceLB", Stage.PRE_ROUTING, Pipeline.IP, rank=20)])
    b = OFBridge(layout, conn=None,  # type: ignore[arg-type]
                 feature_ids=assign_feature_ids(["AntreaProxy"]))
    msgs, _ = b.compile([Flow("ServiceLB", 10, {}, goto=GOTO_NEXT)], "AntreaProxy")
    mod = parse(serialize(msgs[0], 1))
    assert mod.table_id == layout.table_id("ServiceLB")
    assert mod.instructions[0].table_id == layout.next_table_id("ServiceLB")


def test_error_names_are_symbolic():
    from antrea_core.agent.openflow.connection import error_names

    assert error_names(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_GROUP) == (
        "OFPET_BAD_ACTION", "OFPBAC_BAD_OUT_GROUP")
    assert error_names(ofp.OFPET_BUNDLE_FAILED, ofp.OFPBFC_MSG_FAILED) == (
        "OFPET_BUNDLE_FAILED", "OFPBFC_MSG_FAILED")
    assert error_names(999, 3) == ("type 999", "code 3")


def test_bundle_add_wraps_the_message_and_carries_the_outer_xid_inside():
    from antrea_core.agent.openflow.connection import _bundle_add

    inner = PackedFlowEncoder(LAYOUT).encode(Flow("Output", 1, {"reg1": 2}), 0)
    add = serialize(_bundle_add(5, ofp.OFPBF_ATOMIC, inner), 0xABCD)
    version, type_, length, xid, bundle_id, flags = struct.unpack_from("!BBHII2xH", add)
    assert (version, type_, length, xid) == (6, ofp.OFPT_BUNDLE_ADD_MESSAGE, len(add), 0xABCD)
    assert (bundle_id, flags) == (5, ofp.OFPBF_ATOMIC)
    inner_xid = struct.unpack_from("!I", add, 16 + 4)[0]
    assert inner_xid == 0xABCD
    assert add[16 + 8:] == bytes(inner)[8:]


def test_packet_register_fields_read_back_as_32_bit_registers():
    from antrea_core.agent.openflow.oskenfix import split_packet_registers

    assert split_packet_registers({"xreg0": (2, 0xFFFFFFFF), "in_port": 1}) == {
        "reg1": 2, "in_port": 1}
    assert split_packet_registers({"xreg1": ((5 << 32) | 7, (0xF << 32) | 0xFFFFFFFF)}) == {
        "reg2": (5, 0xF), "reg3": 7}
