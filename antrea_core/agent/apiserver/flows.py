"""Dump the bridge's flows with `ovs-ofctl` and name their tables from the pipeline layout.

Flows are read through the bridge's management socket (``<ovsRunDir>/<bridge>.mgmt``),
the same socket the agent programs them through, so this works from any netns and needs
neither OVS_RUNDIR nor a controller entry. Table ids are assigned at start-up from the
enabled features (see `openflow.pipeline`), so a raw dump is unreadable without the
layout: every ``table=N``, ``goto_table:N`` and ``resubmit(,N)`` is rewritten to the
table's name.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from antrea_core.agent.openflow.pipeline import PipelineLayout

OFCTL = "ovs-ofctl"
OF_VERSION = "OpenFlow15"  # the agent pins the bridge to OF1.5
DUMP_TIMEOUT = 30.0



class FlowDumpError(RuntimeError):
    """ovs-ofctl could not dump the bridge's flows (vswitchd down, wrong socket …)."""


@dataclass(frozen=True)
class DumpedFlow:
    table_id: int
    table: str  # "" when the id is not a table of the layout
    flow: str   # ovs-ofctl's text with table ids replaced by names


def mgmt_socket(ovs_run_dir: str | Path, bridge: str) -> Path:
    return Path(ovs_run_dir) / f"{bridge}.mgmt"


def dump_raw(mgmt: Path, table_id: int | None = None) -> list[str]:
    """`ovs-ofctl dump-flows` over the management socket; one string per flow."""
    argv = [OFCTL, "-O", OF_VERSION, "dump-flows", f"unix:{mgmt}"]
    if table_id is not None:
        argv.append(f"table={table_id}")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DUMP_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlowDumpError(f"{' '.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        raise FlowDumpError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    # The first line is the reply header (" OFPST_FLOW reply (OF1.5) ...").
    return [line.strip() for line in proc.stdout.splitlines()
            if line.strip() and "reply" not in line.split("cookie=")[0]]


_OWN_TABLE = re.compile(r"\btable=(\d+)")
_TABLE_REF = re.compile(r"\b(table=|goto_table:|resubmit\([^,()]*,)(\d+)")


class TableNamer:
    """Rewrites table ids to names in flow lines (one regex pass per line: dumps of tens
    of thousands of flows are normal once policies are realized)."""

    def __init__(self, layout: PipelineLayout) -> None:
        self._names = {t.table_id: t.name for t in layout.tables()}
        self._by_text = {str(k): v for k, v in self._names.items()}

    def _named(self, m: re.Match[str]) -> str:
        return m.group(1) + self._by_text.get(m.group(2), m.group(2))

    def __call__(self, line: str) -> DumpedFlow:
        own = _OWN_TABLE.search(line)  # the flow's own table is the first "table="
        table_id = int(own.group(1)) if own else -1
        return DumpedFlow(table_id=table_id, table=self._names.get(table_id, ""),
                          flow=_TABLE_REF.sub(self._named, line))


def name_tables(line: str, layout: PipelineLayout) -> DumpedFlow:
    """Replace table ids with names in one flow line."""
    return TableNamer(layout)(line)


def _value_pattern(value: str) -> re.Pattern[str]:
    # Whole values only (10.0.0.1 must not match 10.0.0.10, nor ::2 match fd00::2): a
    # value starts a field's value ("nw_src=", "set_field:") or a list item.
    return re.compile(rf"(?:(?<=[=,(\s])|(?<=set_field:)){re.escape(value)}(?![\w.:])",
                      re.IGNORECASE)


@dataclass(frozen=True)
class PodFilter:
    """Picks the flows of one pod: its port as input or output, its IPs and its MAC
    wherever they appear (matches and set_field actions). A substring test rejects most
    lines before any regex runs."""

    literals: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, text: str) -> bool:
        low = text.lower()
        if not any(lit in low for lit in self.literals):
            return False
        return any(p.search(text) for p in self.patterns)


def pod_filter(ofport: int | None, ips: Iterable[str], mac: str) -> PodFilter:
    values = [*ips, *([mac] if mac else [])]
    literals = [v.lower() for v in values]
    patterns = [_value_pattern(v) for v in values]
    if ofport:
        literals += [f"in_port={ofport}", f"output:{ofport}"]
        patterns.append(re.compile(rf"\b(?:in_port=|output:){ofport}(?![\w.:])"))
    return PodFilter(tuple(literals), tuple(patterns))


def select(flows: Sequence[DumpedFlow], filters: Sequence[PodFilter]) -> list[DumpedFlow]:
    return [f for f in flows if any(p.matches(f.flow) for p in filters)]
