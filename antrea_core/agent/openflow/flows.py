"""What features hand to the bridge: flows and groups addressed by table *name*.

Matches are os-ken OXM keyword arguments (`in_port`, `eth_type`, `ipv4_src`, `reg0`,
`ct_state` …) and actions are os-ken `ofproto_v1_5_parser` action objects: os-ken is the
codec, so plugins never depend on a second flow syntax. The bridge client resolves table
names through the `PipelineLayout` and stamps each flow's cookie with its feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from os_ken.ofproto import nx_actions  # noqa: F401  (registers NX actions on the parser)
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

if TYPE_CHECKING:
    from antrea_core.agent.openflow.pipeline import PipelineLayout

GOTO_NEXT = "__next__"  # goto the table after this one in its pipeline
OFPP10_IN_PORT = 0xFFF8  # NXAST_RESUBMIT_TABLE's in_port is an OpenFlow 1.0 port


def resubmit(layout: PipelineLayout, table: str) -> Any:
    """The action running `table` on the packet (with its own in_port) and coming back:
    how a flow consults a table of learned flows, which cannot `goto` on."""
    return ofpp.NXActionResubmitTable(in_port=OFPP10_IN_PORT, table_id=layout.table_id(table))


@dataclass(frozen=True)
class Flow:
    table: str
    priority: int
    match: Mapping[str, Any] = field(default_factory=dict)
    actions: tuple[Any, ...] = ()
    goto: str | None = None  # a table name, GOTO_NEXT, or None (actions only)
    idle_timeout: int = 0
    hard_timeout: int = 0


@dataclass(frozen=True)
class Bucket:
    actions: tuple[Any, ...]
    weight: int = 100


# Fields a select group hashes to keep one connection on one bucket and spread
# different connections, UDP ones included (OVS's default dp_hash ignores UDP ports).
FIVE_TUPLE = ("eth_type", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "ip_proto",
              "tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst")


@dataclass(frozen=True)
class Group:
    group_id: int
    type: str  # "all", "select", "indirect", "fast_failover"
    buckets: tuple[Bucket, ...]
    # Select groups only: how OVS picks the bucket ("hash" over `selection_fields`, OXM
    # names, skipping those the packet lacks; "dp_hash"); None: OVS's default (dp_hash).
    selection_method: str | None = None
    selection_fields: tuple[str, ...] = ()
