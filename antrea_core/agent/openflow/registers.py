"""Our register, conntrack-zone and ct_mark layout: what each bit carries and why.

Registers live only while one packet crosses the pipeline; ct_mark lives as long as the
connection. A table that decides something later tables need writes it into a field
below instead of re-matching the packet (e.g. the ingress port is classified once, in
Classifier, and read by L3Forwarding, L3DecTTL, ConntrackCommit and policy tables).

reg0 (marks, 32 bits)::

    31            10   9    8   7   4 3   0
    +---------------+----+----+-----+-----+
    |   reserved    | RW | TP | dst | src |
    +---------------+----+----+-----+-----+

* bits 0-3 ``PKT_SOURCE``: where the packet entered br-int (`Source`). Set in
  Classifier. L3DecTTL skips packets from the gateway (the host stack already
  decremented their TTL); L3Forwarding treats packets from the tunnel as routed;
  ConntrackCommit copies this field into ct_mark so that replies can be matched on
  the side that opened the connection.
* bits 4-7 ``PKT_DESTINATION``: the kind of port the packet leaves on (`Destination`).
  Set in L2ForwardingCalc together with reg1, where the port is known; ingress
  NetworkPolicy skips packets leaving to the gateway or the tunnel (they are enforced
  on the node that owns the destination pod).
* bit 8 ``TARGET_PORT_SET``: reg1 holds the output port. Output only outputs packets
  carrying it, so a packet no table claimed is dropped rather than sent to port 0, and
  features that send packets elsewhere (controller, mirror) can clear it.
* bit 9 ``REWRITE_MAC``: the packet is being routed by OVS, not switched: L3Forwarding
  must rewrite its MACs (source = gateway, destination = the next hop). Set for
  tunnel traffic (it arrives addressed to the global virtual MAC) and, later, by the
  Service feature after DNAT (the client addressed the packet to the gateway). Same bit
  as Antrea, so flow dumps read alike.
* bits 10-31: owned as listed under reg2-reg9 below.

reg1 (32 bits) ``TARGET_OFPORT``: the output port chosen in L2ForwardingCalc. Ingress
NetworkPolicy matches the destination pod by it (one flow per pod port instead of per
pod IP) and Output sends to it with ``output:reg1``.

reg2-reg9: unused by pod networking. Owners, so that no two features pick the same bits
(each owner declares its `RegField`s in its own module and documents them there):

* reg2, reg5, reg6 and ct_label bits 0-63: NetworkPolicy
  (`antrea_core.agent.networkpolicy`): conjunction / rule ids.
* reg3, reg4, xxreg3 (reg12-reg15), ct_mark bits 5-15 and ct_label bits 64-127:
  AntreaProxy (`plugins/proxy`): endpoint IP/port, service states, affinity.
* reg0 bits 10-19: NetworkPolicy; reg0 bits 20-29: AntreaProxy.

Conntrack zones: one per address family (`CT_ZONE_V4`, `CT_ZONE_V6`), same numbers as
Antrea's so that ``conntrack -L``/``dpctl/dump-conntrack`` output looks familiar. A zone
of our own keeps our entries apart from anything else using the datapath's conntrack.

ct_mark (32 bits):

* bits 0-3 ``CONN_SOURCE``: `PKT_SOURCE` of the connection's first packet (committed in
  ConntrackCommit). L3Forwarding sends replies of connections that came in from the
  gateway back to the gateway, whatever their destination IP: the host may have
  DNAT-ed the request (kube-proxy) and must see the reply to undo it.
* bit 4 ``SERVICE``: the connection was load-balanced by AntreaProxy, which commits it
  itself (with NAT); ConntrackCommit leaves such connections alone.
* bits 5-15: AntreaProxy; bits 16-31: NetworkPolicy and later features.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_5_parser as ofpp


@dataclass(frozen=True)
class RegField:
    """`width` bits of 32-bit field `reg` (e.g. "reg0", "ct_mark"), starting at `start`."""

    reg: str
    start: int
    width: int

    def __post_init__(self) -> None:
        if not (self.start >= 0 and self.width >= 1 and self.start + self.width <= 32):
            raise ValueError(f"{self.reg}[{self.start}..{self.start + self.width - 1}] "
                             "does not fit in 32 bits")

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.start

    @property
    def end(self) -> int:
        """The last bit, inclusive (OpenFlow's ``reg0[start..end]``)."""
        return self.start + self.width - 1

    def value(self, value: int) -> tuple[int, int]:
        """(value, mask) for a match or a masked set_field of this field."""
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"{value} does not fit in {self.width} bits of {self.reg}")
        return value << self.start, self.mask

    def mark(self, value: int) -> RegMark:
        return RegMark(self, value)


@dataclass(frozen=True)
class RegMark:
    """One value of a `RegField`: matchable, and loadable with a masked set_field."""

    field: RegField
    value: int

    def load(self) -> Any:
        """The action setting this field to the value, leaving other bits alone."""
        return ofpp.OFPActionSetField(**{self.field.reg: self.field.value(self.value)})


def match_marks(*marks: RegMark) -> dict[str, tuple[int, int]]:
    """Match kwargs for several marks, merging those that share a register
    (an OXM match carries each field once)."""
    merged: dict[str, tuple[int, int]] = {}
    for mark in marks:
        value, mask = mark.field.value(mark.value)
        old_value, old_mask = merged.get(mark.field.reg, (0, 0))
        if old_mask & mask:
            raise ValueError(f"marks overlap in {mark.field.reg}: {marks}")
        merged[mark.field.reg] = (old_value | value, old_mask | mask)
    return merged


def load_marks(marks: Iterable[RegMark]) -> tuple[Any, ...]:
    return tuple(m.load() for m in marks)


class Source(enum.IntEnum):
    """`PKT_SOURCE` values (Antrea's numbering)."""

    TUNNEL = 1
    GATEWAY = 2
    POD = 3
    UPLINK = 4


class Destination(enum.IntEnum):
    """`PKT_DESTINATION` values (Antrea's numbering)."""

    TUNNEL = 1
    GATEWAY = 2
    POD = 3
    UPLINK = 4


PKT_SOURCE = RegField("reg0", 0, 4)
PKT_DESTINATION = RegField("reg0", 4, 4)
TARGET_PORT_SET = RegField("reg0", 8, 1)
REWRITE_MAC = RegField("reg0", 9, 1)
TARGET_OFPORT = RegField("reg1", 0, 32)

FROM_TUNNEL = PKT_SOURCE.mark(Source.TUNNEL)
FROM_GATEWAY = PKT_SOURCE.mark(Source.GATEWAY)
FROM_POD = PKT_SOURCE.mark(Source.POD)
FROM_UPLINK = PKT_SOURCE.mark(Source.UPLINK)
TO_TUNNEL = PKT_DESTINATION.mark(Destination.TUNNEL)
TO_GATEWAY = PKT_DESTINATION.mark(Destination.GATEWAY)
TO_POD = PKT_DESTINATION.mark(Destination.POD)
TO_UPLINK = PKT_DESTINATION.mark(Destination.UPLINK)
OUTPUT_TO_PORT = TARGET_PORT_SET.mark(1)
ROUTED = REWRITE_MAC.mark(1)
SWITCHED = REWRITE_MAC.mark(0)

CT_ZONE_V4 = 0xFFF0  # 65520
CT_ZONE_V6 = 0xFFE6  # 65510

CONN_SOURCE = RegField("ct_mark", 0, 4)
SERVICE_CONN = RegField("ct_mark", 4, 1)
CONN_FROM_GATEWAY = CONN_SOURCE.mark(Source.GATEWAY)
NOT_SERVICE_CONN = SERVICE_CONN.mark(0)

# ct_state bits (OVS ovs-fields(7)); matches are (bits, mask): "+new+trk" = (NEW|TRK, NEW|TRK).
CT_NEW = 0x01
CT_EST = 0x02
CT_REL = 0x04
CT_RPL = 0x08
CT_INV = 0x10
CT_TRK = 0x20


def ct_state(plus: int = 0, minus: int = 0) -> tuple[int, int]:
    """A ct_state match: the `plus` bits set and the `minus` bits clear."""
    return plus, plus | minus
