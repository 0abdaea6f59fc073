"""The OpenFlow pipeline layout: stages, declared tables, and table ids assigned at start-up.

Every feature (core or plugin) declares the tables it needs as `TableSpec`s tagged with a
`Stage`; `PipelineLayout.build` numbers them once, from the set of enabled features. No
code anywhere else knows a table number: flows name their table and the layout resolves
it. Two pipelines hang off the root classifier, as in Antrea: ARP and IP.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

MAX_TABLE_ID = 253  # 254 is reserved by OVS, 255 is OFPTT_ALL


class Pipeline(enum.IntEnum):
    """Sub-pipelines, laid out in this order after the root classifier (table 0)."""

    ROOT = 0
    ARP = 1
    IP = 2


class Stage(enum.IntEnum):
    """Antrea's stages, in packet order. A table's stage fixes where it sits."""

    START = 0  # only the root classifier
    CLASSIFIER = 1
    VALIDATION = 2
    CONNTRACK_STATE = 3
    PRE_ROUTING = 4
    EGRESS_SECURITY = 5
    ROUTING = 6
    POST_ROUTING = 7
    SWITCHING = 8
    INGRESS_SECURITY = 9
    CONNTRACK = 10
    OUTPUT = 11


@dataclass(frozen=True)
class TableSpec:
    """A table a feature needs.

    `rank` orders tables within one (pipeline, stage); lower comes first. Two features
    may declare the same table (same name): the specs must then be identical.
    """

    name: str
    stage: Stage
    pipeline: Pipeline = Pipeline.IP
    rank: int = 100
    missing: str = "next"  # table-miss behaviour: "next" (goto next table) or "drop"


class PipelineError(ValueError):
    """A set of table declarations that cannot form a pipeline."""


@dataclass(frozen=True)
class Table:
    name: str
    table_id: int
    spec: TableSpec
    next_table: str | None  # None: last table of its pipeline


class PipelineLayout:
    """Table ids assigned from the enabled features' declarations."""

    def __init__(self, tables: list[Table]) -> None:
        self._tables = {t.name: t for t in tables}
        self._ordered = tables

    @classmethod
    def build(cls, specs: Iterable[TableSpec]) -> PipelineLayout:
        by_name: dict[str, TableSpec] = {}
        for spec in specs:
            seen = by_name.get(spec.name)
            if seen is not None and seen != spec:
                raise PipelineError(
                    f"table {spec.name} declared twice with different specs: {seen} vs {spec}"
                )
            by_name[spec.name] = spec
        roots = [s for s in by_name.values() if s.pipeline == Pipeline.ROOT]
        if len(roots) > 1:
            raise PipelineError(f"only one root table allowed, got {[s.name for s in roots]}")
        for spec in by_name.values():
            if (spec.pipeline == Pipeline.ROOT) != (spec.stage == Stage.START):
                raise PipelineError(f"table {spec.name}: stage START is for the root table only")
        ordered = sorted(
            by_name.values(), key=lambda s: (s.pipeline, s.stage, s.rank, s.name)
        )
        if len(ordered) > MAX_TABLE_ID + 1:
            raise PipelineError(f"{len(ordered)} tables do not fit in {MAX_TABLE_ID + 1} ids")
        tables: list[Table] = []
        for table_id, spec in enumerate(ordered):
            following = ordered[table_id + 1] if table_id + 1 < len(ordered) else None
            same_pipeline = following is not None and following.pipeline == spec.pipeline
            next_name = following.name if same_pipeline and following is not None else None
            tables.append(Table(spec.name, table_id, spec, next_name))
        return cls(tables)

    def table_id(self, name: str) -> int:
        try:
            return self._tables[name].table_id
        except KeyError:
            raise PipelineError(f"no table named {name} in the pipeline (is its feature "
                                "enabled?)") from None

    def table(self, name: str) -> Table:
        self.table_id(name)
        return self._tables[name]

    def next_table_id(self, name: str) -> int | None:
        following = self._tables[name].next_table
        return None if following is None else self._tables[following].table_id

    def first_table(self, pipeline: Pipeline) -> Table | None:
        return next((t for t in self._ordered if t.spec.pipeline is pipeline), None)

    def tables(self) -> list[Table]:
        return list(self._ordered)

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def __len__(self) -> int:
        return len(self._ordered)
