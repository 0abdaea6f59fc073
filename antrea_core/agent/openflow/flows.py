"""What features hand to the bridge: flows and groups addressed by table *name*.

Matches are os-ken OXM keyword arguments (`in_port`, `eth_type`, `ipv4_src`, `reg0`,
`ct_state` …) and actions are os-ken `ofproto_v1_5_parser` action objects: os-ken is the
codec, so plugins never depend on a second flow syntax. The bridge client resolves table
names through the `PipelineLayout` and stamps each flow's cookie with its feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GOTO_NEXT = "__next__"  # goto the table after this one in its pipeline


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


@dataclass(frozen=True)
class Group:
    group_id: int
    type: str  # "all", "select", "indirect", "fast_failover"
    buckets: tuple[Bucket, ...]
