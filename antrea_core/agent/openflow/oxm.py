"""OXM match fields -> TLV bytes, without netaddr on the common path.

os-ken converts addresses with netaddr (an `IPAddress`/`EUI` object per value, then a
fallback `IPNetwork` for CIDRs): measured ~27 us per address, half of the packed
encoder's time on 10k policy flows whose peers are all distinct IPs (a value cache does
not help there). `oxm_tlv` converts the value forms
the agent uses (dotted/colon addresses, `addr/prefix`, `(value, mask)`, ints) with
`socket.inet_pton`/`int.to_bytes` and glues them to a per-field header computed once by
os-ken itself. Any other form goes to os-ken's own conversion (`reference_oxm_tlv`), so
the output is byte-identical by construction for what we cover and by delegation for
the rest (tests/unit/openflow/test_flow_encoding.py compares both on many values).
"""

from __future__ import annotations

import functools
import re
import socket
from typing import Any

from os_ken.lib import type_desc
from os_ken.ofproto import ofproto_v1_5 as ofp

from antrea_core.agent.openflow import oskenfix  # noqa: F401  (ct_* fields in the tables)

TLV = tuple[Any, bytes]  # (os-ken's sort key for the match, TLV bytes)

_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_IPV4_MASKS = tuple(((1 << 32) - (1 << (32 - p))).to_bytes(4, "big") for p in range(33))
_IPV6_MASKS = tuple(((1 << 128) - (1 << (128 - p))).to_bytes(16, "big") for p in range(129))


def reference_oxm_tlv(name: str, user_value: Any) -> TLV:
    """os-ken's conversion; value bits outside the mask are cleared, as os-ken's
    OFPMatch normalization does (OVS rejects them)."""
    num, value, mask = ofp.oxm_from_user(name, user_value)
    if mask is not None:
        value = bytes(v & m for v, m in zip(value, mask, strict=True))
    buf = bytearray()
    ofp.oxm_serialize(num, value, mask, buf, 0)
    return (num[0] if isinstance(num, tuple) else num), bytes(buf)


@functools.cache
def _field(name: str) -> tuple[Any, Any, bytes, bytes] | None:
    """(sort key, value type, header without mask, header with mask) of a known field,
    None for names os-ken resolves some other way (field_N)."""
    try:
        num, vtype = ofp.oxm_get_field_info_by_name(name)
    except KeyError:
        return None
    size = getattr(vtype, "size", None)
    if size is None:
        return None
    zero = bytes(size)
    plain, masked = bytearray(), bytearray()
    ofp.oxm_serialize(num, zero, None, plain, 0)
    ofp.oxm_serialize(num, zero, zero, masked, 0)
    return ((num[0] if isinstance(num, tuple) else num), vtype,
            bytes(plain[:-size]), bytes(masked[:-2 * size]))


def _ip(text: str, family: int, masks: tuple[bytes, ...]) -> bytes | tuple[bytes, bytes] | None:
    addr, slash, prefix = text.partition("/")
    try:
        packed = socket.inet_pton(family, addr)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    if not slash:
        return packed
    # Only a plain decimal prefix; netmask/hostmask forms go to netaddr.
    if not (prefix.isascii() and prefix.isdigit() and int(prefix) < len(masks)):
        return None
    return packed, masks[int(prefix)]


def _convert(vtype: Any, value: Any) -> bytes | tuple[bytes, bytes] | None:
    """Wire bytes of one value (or (value, mask) for a CIDR); None: not a fast form."""
    kind = type(value)
    if kind is int:
        if value < 0 or value.bit_length() > vtype.size * 8:
            return None  # os-ken truncates or raises: let it
        return value.to_bytes(vtype.size, "big")
    if kind is not str:
        return None
    if vtype is type_desc.IPv4Addr:
        # netaddr (pton mode) refuses octets with leading zeros; so does glibc, but
        # say it here rather than rely on the libc.
        if (value[:1] == "0" or ".0" in value) and any(len(p) > 1 and p[0] == "0"
                                 for p in value.partition("/")[0].split(".")):
            return None
        return _ip(value, socket.AF_INET, _IPV4_MASKS)
    if vtype is type_desc.IPv6Addr:
        return _ip(value, socket.AF_INET6, _IPV6_MASKS)
    if vtype is type_desc.MacAddr and _MAC.fullmatch(value):
        return bytes.fromhex(value.replace(":", ""))
    return None


def _fast_oxm_tlv(name: str, user_value: Any) -> TLV | None:
    field = _field(name)
    if field is None:
        return None
    sort_key, vtype, plain, masked = field
    if not isinstance(vtype, type_desc.IntDescr) and vtype not in (
            type_desc.IPv4Addr, type_desc.IPv6Addr, type_desc.MacAddr):
        return None
    mask: bytes | None
    if type(user_value) is tuple:
        if len(user_value) != 2:
            return None
        value, mask = _convert(vtype, user_value[0]), _convert(vtype, user_value[1])
        if type(value) is not bytes or type(mask) is not bytes:
            return None
    else:
        converted = _convert(vtype, user_value)
        if converted is None:
            return None
        value, mask = converted if type(converted) is tuple else (converted, None)
    if mask is None:
        return sort_key, plain + value
    cleared = (int.from_bytes(value, "big") & int.from_bytes(mask, "big")).to_bytes(
        len(value), "big")
    return sort_key, masked + cleared + mask


def oxm_tlv(name: str, user_value: Any) -> TLV:
    """(os-ken's sort key, TLV bytes) of one match field `name=user_value`, as os-ken's
    OFPMatch would serialize it (masked value bits cleared)."""
    return _fast_oxm_tlv(name, user_value) or reference_oxm_tlv(name, user_value)
