"""The fast OXM/action encoding is byte-identical to os-ken's own (no OVS)."""

from __future__ import annotations

import ipaddress
import random

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow.bridge_client import (
    FEATURE_MASK,
    FlowEncoder,
    PackedFlowEncoder,
)
from antrea_core.agent.openflow.connection import CODEC, serialize
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import GOTO_NEXT, Flow
from antrea_core.agent.openflow.oxm import _fast_oxm_tlv, oxm_tlv, reference_oxm_tlv
from antrea_core.agent.openflow.pipeline import PipelineLayout

pytestmark = pytest.mark.unit

LAYOUT = PipelineLayout.build(core_tables())

IPV4_FIELDS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "ct_nw_src", "ct_nw_dst",
               "tun_ipv4_src", "tun_ipv4_dst")
IPV6_FIELDS = ("ipv6_src", "ipv6_dst", "ipv6_nd_target", "ct_ipv6_src", "ct_ipv6_dst",
               "tun_ipv6_dst")
MAC_FIELDS = ("eth_src", "eth_dst", "arp_sha", "arp_tha")

# Forms the agent uses: every one must take the fast path and equal os-ken's bytes.
FAST_CASES = [
    ("ipv4_src", "10.0.0.1"),
    ("ipv4_src", "0.0.0.0"),
    ("ipv4_dst", "255.255.255.255"),
    ("ipv4_src", "10.0.0.5/24"),  # host bits cleared by the mask
    ("ipv4_src", "10.0.0.0/0"),
    ("ipv4_src", "10.0.0.7/32"),
    ("ipv4_src", ("10.1.2.3", "255.255.0.0")),
    ("ipv4_src", 0x0A000001),
    ("ct_nw_dst", "10.96.0.1"),
    ("tun_ipv4_dst", "192.168.1.2"),
    ("ipv6_src", "fe80::1"),
    ("ipv6_src", "fe80::1/64"),
    ("ipv6_dst", "::ffff:1.2.3.4"),
    ("ipv6_dst", ("fd00::5", "ffff:ffff::")),
    ("ct_ipv6_dst", "fd00:10:96::a"),
    ("ipv6_src", 1),
    ("eth_dst", "aa:bb:cc:00:00:02"),
    ("eth_src", "AA:BB:CC:dd:ee:ff"),
    ("eth_dst", ("01:00:00:00:00:00", "01:00:00:00:00:00")),
    ("eth_src", 0x020000000001),
    ("in_port", 7),
    ("eth_type", 0x86DD),
    ("ip_proto", 17),
    ("tcp_dst", 8080),
    ("reg1", 12),
    ("reg1", (0xFF, 0x0F)),
    ("xreg0", (2, 0xFFFFFFFF)),
    ("ct_state", (0x21, 0x21)),
    ("ct_mark", (0, 0x10)),
    ("ct_label", 5),
    ("ct_nw_proto", 6),
    ("ct_tp_dst", 80),
    ("tunnel_id", 0x123456),
    ("metadata", (1 << 63, 1 << 63)),
]

# Forms left to os-ken (netmask/hostmask CIDRs, leading zeros, out-of-range ints, lists…):
# the result must still be os-ken's, error included.
SLOW_CASES = [
    ("ipv4_src", "10.0.0.0/255.255.0.0"),
    ("ipv4_src", "10.0.0.0/0.0.255.255"),
    ("ipv4_src", "010.0.0.1"),
    ("ipv4_src", "10.0.0.01"),
    ("ipv4_src", "10.0.0.0/08x"),
    ("ipv4_src", "10.0.0.0/33"),
    ("ipv4_src", "10.0.0.256"),
    ("ipv4_src", 1 << 32),
    ("ipv4_src", -1),
    ("ipv4_src", ("10.0.0.0/8", "255.0.0.0")),
    ("ipv4_src", ["10.1.2.3", "255.255.0.0"]),
    ("ipv4_src", "fe80::1\x00"),
    ("ipv6_src", "fe80::1\x00"),
    ("ipv4_src", "\uff110.0.0.1"),
    ("ipv6_src", "fe80::1%eth0"),
    ("ipv6_src", "fe80::/ffff::"),
    ("eth_dst", "aa-bb-cc-00-00-02"),
    ("eth_dst", "a:b:c:0:0:2"),
    ("in_port", True),
    ("tcp_dst", 0x1FFFF),
    ("reg1", -1),
    ("field_5", 1),
    ("tun_id", 1),  # not an os-ken name: KeyError from os-ken
]


def reference(name, value):
    try:
        return reference_oxm_tlv(name, value)
    except Exception as exc:  # compare os-ken's failure too
        return type(exc)


def encoded(name, value):
    try:
        return oxm_tlv(name, value)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize(("name", "value"), FAST_CASES, ids=repr)
def test_agent_value_forms_take_the_fast_path_and_equal_oskens_bytes(name, value):
    assert _fast_oxm_tlv(name, value) is not None
    assert oxm_tlv(name, value) == reference_oxm_tlv(name, value)


@pytest.mark.parametrize(("name", "value"), SLOW_CASES, ids=repr)
def test_other_value_forms_are_left_to_os_ken_with_the_same_result(name, value):
    assert _fast_oxm_tlv(name, value) is None
    assert encoded(name, value) == reference(name, value)


def test_cidr_host_bits_are_cleared_like_oskens_normalization():
    _, tlv = oxm_tlv("ipv4_src", "10.1.2.3/16")
    assert tlv[-8:] == bytes([10, 1, 0, 0, 255, 255, 0, 0])


def random_ipv4(rng: random.Random) -> str:
    return str(ipaddress.IPv4Address(rng.getrandbits(32)))


def random_ipv6(rng: random.Random) -> str:
    return str(ipaddress.IPv6Address(rng.getrandbits(128)))


def random_values(rng: random.Random):
    for _ in range(400):
        name = rng.choice(IPV4_FIELDS)
        yield name, random_ipv4(rng)
        yield name, f"{random_ipv4(rng)}/{rng.randint(0, 32)}"
        yield name, (random_ipv4(rng), str(ipaddress.IPv4Address(rng.getrandbits(32))))
        yield name, rng.getrandbits(32)
        name = rng.choice(IPV6_FIELDS)
        yield name, random_ipv6(rng)
        yield name, f"{random_ipv6(rng)}/{rng.randint(0, 128)}"
        yield name, (random_ipv6(rng), random_ipv6(rng))
        mac = ":".join(f"{rng.getrandbits(8):02x}" for _ in range(6))
        yield rng.choice(MAC_FIELDS), mac
        yield rng.choice(("reg0", "reg7", "tcp_src", "udp_dst", "ct_mark")), (
            rng.getrandbits(16), rng.getrandbits(16))


def test_random_addresses_prefixes_masks_and_ints_equal_oskens_bytes():
    rng = random.Random(20240517)
    checked = 0
    for name, value in random_values(rng):
        assert oxm_tlv(name, value) == reference_oxm_tlv(name, value), (name, value)
        checked += 1
    assert checked == 400 * 9


def conj(clause: int, n_clauses: int, conj_id: int):
    return ofpp.NXActionConjunction(clause, n_clauses, conj_id)


FLOWS = [
    Flow("IngressRule", 200, {"eth_type": 0x0800, "ipv4_src": "10.100.37.221"},
         actions=(conj(0, 3, 1),)),
    Flow("IngressRule", 200, {"eth_type": 0x0800, "ipv4_src": "10.100.0.0/16"},
         actions=(conj(0, 3, 1), conj(0, 2, 7))),
    Flow("IngressRule", 200, {"eth_type": 0x86DD, "ipv6_src": "fd00::1:2"},
         actions=(conj(1, 3, 1),)),
    Flow("IngressRule", 200, {"reg1": 12}, actions=(conj(2, 3, 1),)),
    Flow("IngressRule", 190, {"conj_id": 1}, actions=(ofpp.OFPActionSetField(reg3=1),),
         goto=GOTO_NEXT),
    Flow("SpoofGuard", 200, {"in_port": 1, "eth_src": "02:00:00:00:00:01",
                             "eth_type": 0x0800, "ipv4_src": "10.244.0.2"}, goto=GOTO_NEXT),
    Flow("L2ForwardingCalc", 200, {"eth_dst": "aa:bb:cc:00:00:02"},
         actions=(ofpp.OFPActionSetField(reg1=(2, 0xFFFF)),
                  ofpp.OFPActionSetField(ipv4_dst="10.0.0.9")), goto="Output"),
    # Not cacheable (nested actions): serialized every time, same bytes.
    Flow("ConntrackCommit", 200, {"eth_type": 0x0800, "ct_state": (0x21, 0x21)},
         actions=(ofpp.NXActionCT(flags=1, zone_src="", zone_ofs_nbits=65000,
                                  recirc_table=255, alg=0,
                                  actions=[ofpp.NXActionNAT(flags=0)]),),
         goto=GOTO_NEXT),
    Flow("Output", 200, {"reg1": 2}, actions=(ofpp.OFPActionOutput(2),)),
    # Experimenter fields share os-ken's sort key: they keep the match's order.
    Flow("Output", 100, {"nsh_si": 1, "nsh_flags": 2, "_dp_hash": 5}),
]


def test_packed_flow_mods_equal_oskens_objects_with_warm_caches():
    packed = PackedFlowEncoder(LAYOUT)
    for round_ in range(2):  # second round: every field and action from the caches
        for flow in FLOWS:
            want = serialize(FlowEncoder(LAYOUT).encode(flow, 0x0203000000000004), 5)
            got = serialize(packed.encode(flow, 0x0203000000000004), 5)
            assert bytes(got) == bytes(want), (round_, flow)


def test_action_cache_keys_on_values_not_identity():
    packed = PackedFlowEncoder(LAYOUT)
    first = packed.apply_actions_bytes((conj(0, 3, 1),))
    assert packed.apply_actions_bytes((conj(0, 3, 1),)) == first  # equal values, new objects
    for other in (conj(1, 3, 1), conj(0, 2, 1), conj(0, 3, 2)):
        assert packed.apply_actions_bytes((other,)) != first
    assert (packed.apply_actions_bytes((ofpp.OFPActionSetField(reg1=1),))
            != packed.apply_actions_bytes((ofpp.OFPActionSetField(reg2=1),)))


def test_action_cache_is_bounded():
    packed = PackedFlowEncoder(LAYOUT, cache_size=4)
    for i in range(10):
        packed.apply_actions_bytes((conj(0, 2, i),))
        assert len(packed._instructions) <= 4
    assert packed.apply_actions_bytes((conj(0, 2, 9),)) == bytes(
        serialize(FlowEncoder(LAYOUT).encode(
            Flow("Output", 1, {}, actions=(conj(0, 2, 9),)), 0), 0))[-24:]


def test_nicira_field_header_is_oskens():
    # ct_nw_dst: NXM class 1, field 121 (4-byte header, no experimenter id).
    _, tlv = oxm_tlv("ct_nw_dst", "10.96.0.1")
    assert tlv == bytes.fromhex("0001f204") + bytes([10, 96, 0, 1])
    assert ofp.oxm_get_field_info_by_name("ct_nw_dst")[0] == (1 << 7) | 121


@pytest.mark.parametrize("command", [ofp.OFPFC_DELETE_STRICT, ofp.OFPFC_DELETE,
                                     ofp.OFPFC_MODIFY_STRICT])
@pytest.mark.parametrize("cookie_mask", [None, 0xFF00FFFFFFFFFFFF])
def test_packed_deletes_and_modifies_equal_oskens_objects(command, cookie_mask):
    packed = PackedFlowEncoder(LAYOUT)
    for flow in FLOWS:
        want = serialize(FlowEncoder(LAYOUT).encode(flow, 0x0300000000000009, command,
                                                    cookie_mask), 5)
        got = serialize(packed.encode(flow, 0x0300000000000009, command, cookie_mask), 5)
        assert bytes(got) == bytes(want), flow


def test_packed_delete_has_no_instructions_and_the_feature_cookie_mask_by_default():
    buf = bytes(serialize(PackedFlowEncoder(LAYOUT).encode(
        FLOWS[1], 3 << 56, ofp.OFPFC_DELETE_STRICT), 1))
    mod = ofproto_parser.msg(CODEC, *ofproto_parser.header(buf), buf)
    assert mod.command == ofp.OFPFC_DELETE_STRICT and mod.instructions == []
    assert (mod.cookie, mod.cookie_mask) == (3 << 56, FEATURE_MASK)
    assert dict(mod.match.items())["ipv4_src"] == ("10.100.0.0", "255.255.0.0")
