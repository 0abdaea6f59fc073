"""Fill the gaps of os-ken 4.2.2's OpenFlow 1.5 codec that the agent runs into.

Importing this module applies the fixes once (idempotent). Each fix says what is wrong
and how OVS 3.1 actually encodes the thing; `connection.py` imports it, so anything
that talks OpenFlow through our connection gets the fixed codec.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from os_ken.lib import type_desc
from os_ken.ofproto import nicira_ext, oxm_fields
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as parser

# Conntrack original-direction tuple fields (OVS meta-flow.h: NXM_NX_CT_NW_PROTO(119) …
# NXM_NX_CT_TP_DST(125), since OVS 2.8). os-ken knows ct_state/zone/mark/label but not
# these, and AntreaProxy-style flows match the pre-DNAT Service IP/port through them.
# Measured on OVS 3.1: the order relative to eth_type does not matter, but ct_tp_src/
# ct_tp_dst without ct_nw_proto are silently dropped from the flow (the bridge client
# refuses such matches).
CT_TUPLE_FIELDS = (
    oxm_fields.NiciraExtended1("ct_nw_proto", 119, type_desc.Int1),
    oxm_fields.NiciraExtended1("ct_nw_src", 120, type_desc.IPv4Addr),
    oxm_fields.NiciraExtended1("ct_nw_dst", 121, type_desc.IPv4Addr),
    oxm_fields.NiciraExtended1("ct_ipv6_src", 122, type_desc.IPv6Addr),
    oxm_fields.NiciraExtended1("ct_ipv6_dst", 123, type_desc.IPv6Addr),
    oxm_fields.NiciraExtended1("ct_tp_src", 124, type_desc.Int2),
    oxm_fields.NiciraExtended1("ct_tp_dst", 125, type_desc.Int2),
)

# OVS nx-match.h NX_NAT_F_* flags of the ct(nat) action (os-ken 4.2.2 lacks them).
NX_NAT_F_SRC = 1 << 0
NX_NAT_F_DST = 1 << 1
NX_NAT_F_PERSISTENT = 1 << 2
NX_NAT_F_PROTO_HASH = 1 << 3
NX_NAT_F_PROTO_RANDOM = 1 << 4

# Netronome's group property selecting how a select group picks its bucket (OVS
# ofp-group.c, ntr_group_prop_selection_method; ovs-ofctl(8) "selection_method").
NTR_VENDOR_ID = 0x0000154D
NTRT_SELECTION_METHOD = 1
NTR_MAX_SELECTION_METHOD_LEN = 16
SELECTION_METHODS = ("hash", "dp_hash")
_NTR_SELECTION_HEAD = struct.Struct("!HHIII16sQ")  # 40 bytes, then OXM headers

_applied = False


def _add_oxm_fields() -> None:
    known = {f.name for f in ofp.oxm_types}
    missing = [f for f in CT_TUPLE_FIELDS if f.name not in known]
    if not missing:
        return
    ofp.oxm_types.extend(missing)
    # generate() rebuilds the name/number lookup tables (oxm_from_user, oxm_parse …)
    # from oxm_types; the parser module looks them up on `ofproto` at call time.
    oxm_fields.generate(ofp.__name__)


_original_parse_property = parser.NXTPacketIn2._parse_property


def _parse_packet_in2_property(self: parser.NXTPacketIn2, prop: object) -> None:
    _original_parse_property(self, prop)
    # OVS encodes NXPINT_COOKIE with ofpprop_put_be64: 4 bytes of padding after the
    # property header, then the 64-bit cookie. os-ken reads 8 bytes at offset 0 of the
    # data, i.e. the padding plus the cookie's upper half.
    data = prop.data  # type: ignore[attr-defined]
    if prop.type == nicira_ext.NXPINT_COOKIE and len(data) >= 12:  # type: ignore[attr-defined]
        self.cookie = struct.unpack_from("!Q", data, 4)[0]


def _parse_copy_field(cls: type, buf: bytes, offset: int) -> parser.OFPActionCopyField:
    """os-ken reads the oxm ids from `len` bytes past the fixed part (so into the padding
    and the next action) and then asserts there are exactly two: every flow dump holding
    a ``move:`` (copy_field) failed to parse. Read exactly the source and destination."""
    (type_, len_, n_bits, src_offset, dst_offset) = struct.unpack_from(
        ofp.OFP_ACTION_COPY_FIELD_PACK_STR, buf, offset)
    rest = bytes(buf[offset + ofp.OFP_ACTION_COPY_FIELD_SIZE:offset + len_])
    oxm_ids = []
    for _ in range(2):
        oxm_id, rest = parser.OFPOxmId.parse(rest)
        oxm_ids.append(oxm_id)
    action = cls(n_bits, src_offset, dst_offset, oxm_ids, type_, len_)
    action.len = len_  # the constructor recomputes it without the padding
    return action


_original_nx_serialize = parser.NXAction.serialize


def _serialize_nx_action(self: parser.NXAction, buf: bytearray, offset: int) -> None:
    """os-ken declares an NX action's length rounded up to 8 bytes but appends its body
    unpadded: NXActionNAT with a port range writes 28 bytes and declares 32, so any
    action after it (inside ct()) starts 4 bytes early and OVS refuses the flow with
    OFPBAC_BAD_LEN. Pad the body to the declared length."""
    _original_nx_serialize(self, buf, offset)
    end = offset + self.len
    if len(buf) < end:
        buf += bytes(end - len(buf))


def apply() -> None:
    """Apply all fixes (safe to call more than once)."""
    global _applied
    if _applied:
        return
    _add_oxm_fields()
    parser.NXAction.serialize = _serialize_nx_action
    parser.NXTPacketIn2._parse_property = _parse_packet_in2_property
    parser.OFPActionCopyField.parser = classmethod(_parse_copy_field)  # type: ignore[assignment]
    _applied = True


def group_weight(weight: int) -> parser.OFPGroupBucketPropWeight:
    """A select-group bucket weight property.

    os-ken's OFPGroupBucketPropWeight leaves `type` None unless `type_` is passed, and
    then fails to serialize; always build it through here.
    """
    return parser.OFPGroupBucketPropWeight(type_=ofp.OFPGBPT_WEIGHT, weight=weight)


class GroupPropSelectionMethod:
    """The NTR selection-method group property (os-ken has no class for it).

    ``hash`` hashes the listed fields (OXM names: ``ipv4_src``, ``udp_dst`` …; a field
    whose prerequisites the packet lacks is skipped, so TCP and UDP ports can share one
    list) and picks the bucket from that; ``dp_hash`` (OVS's default for select groups)
    lets the datapath hash, which leaves UDP ports out. Only for select groups, only in
    add/modify group mods."""

    def __init__(self, method: str, fields: Sequence[str] = (), param: int = 0) -> None:
        if method not in SELECTION_METHODS:
            raise ValueError(f"selection method {method!r} is not one of {SELECTION_METHODS}")
        if fields and method != "hash":
            raise ValueError(f"selection method {method} takes no fields")
        self.method = method
        self.fields = tuple(fields)
        self.param = param

    def serialize(self) -> bytes:
        # Each field is a whole OXM entry whose value is the mask of the bits to hash
        # (OVS oxm_put_field_array): all ones here.
        entries = bytearray()
        for name in self.fields:
            try:
                header = ofp.oxm_from_user_header(name)
            except KeyError:
                raise ValueError(f"unknown OXM field {name!r} in selection fields") from None
            size = ofp._oxm_field_desc(header).type.size
            ofp.oxm_serialize_header(header, entries, len(entries))
            entries += b"\xff" * size
        length = _NTR_SELECTION_HEAD.size + len(entries)
        head = _NTR_SELECTION_HEAD.pack(
            ofp.OFPGPT_EXPERIMENTER, length, NTR_VENDOR_ID, NTRT_SELECTION_METHOD, 0,
            self.method.encode(), self.param)
        return head + bytes(entries) + bytes(-length % 8)


apply()


def split_packet_registers(fields: dict[str, object]) -> dict[str, object]:
    """Rewrite OF1.5 packet-register fields (xregN) into the 32-bit regs we match on.

    OVS answers OpenFlow 1.5 flow stats and packet-ins with registers encoded as
    OXM_OF_PKT_REG<N> (os-ken: ``xregN``, 64 bits = reg<2N> high : reg<2N+1> low),
    even for flows installed with ``regN``; reading back must give what was written.
    A half with an all-zero mask was not matched and is left out.
    """
    if not any(key.startswith("xreg") for key in fields):
        return fields
    out: dict[str, object] = {}
    for key, user_value in fields.items():
        if not key.startswith("xreg"):
            out[key] = user_value
            continue
        if isinstance(user_value, tuple):
            value, mask = user_value
        else:
            value, mask = user_value, 0xFFFF_FFFF_FFFF_FFFF
        index = int(key[4:])
        for reg, shift in ((2 * index, 32), (2 * index + 1, 0)):
            half_mask = (int(mask) >> shift) & 0xFFFF_FFFF  # type: ignore[call-overload]
            half = (int(value) >> shift) & 0xFFFF_FFFF  # type: ignore[call-overload]
            if half_mask == 0xFFFF_FFFF:
                out[f"reg{reg}"] = half
            elif half_mask:
                out[f"reg{reg}"] = (half, half_mask)
    return out
