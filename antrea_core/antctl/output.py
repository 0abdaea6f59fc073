"""Rendering of views (the dicts of `views`): kubectl-like tables, JSON or YAML.

Tables are computed from the same dicts that `-o json` prints, so both always agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from antrea_core.antctl.errors import UsageError

FORMATS = ("table", "json", "yaml")
MAX_LISTED = 3  # names shown in a table cell before "+N more"

View = dict[str, Any]
Column = tuple[str, Callable[[View], str]]


def _listed(names: Sequence[str]) -> str:
    if not names:
        return "<none>"
    shown = ",".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return f"{shown} + {more} more..." if more > 0 else shown


def _name(v: View) -> str:
    return str(v["metadata"]["name"])


def _reference(v: View) -> str:
    ref = v["sourceRef"]
    return f"{ref['type']}:{ref['namespace']}/{ref['name']}"


def _pod_count(v: View) -> str:
    return str(len(v["groupMembers"]))


COLUMNS: dict[str, list[Column]] = {
    "networkpolicy": [
        ("NAME", _name),
        ("REFERENCE", _reference),
        ("APPLIED-TO-GROUPS", lambda v: _listed(v["appliedToGroups"])),
        ("RULES", lambda v: str(len(v["rules"]))),
        ("POLICY-TYPES", lambda v: ",".join(v["policyTypes"]) or "<none>"),
        ("SPAN", lambda v: _listed(v["span"])),
    ],
    "appliedtogroup": [
        ("NAME", _name),
        ("POD-COUNT", _pod_count),
        ("NODE-COUNT", lambda v: str(len(v["span"]))),
        ("SPAN", lambda v: _listed(v["span"])),
    ],
    "addressgroup": [
        ("NAME", _name),
        ("POD-COUNT", _pod_count),
        ("NODE-COUNT", lambda v: str(len(v["span"]))),
        ("SPAN", lambda v: _listed(v["span"])),
    ],
    "podinterface": [
        ("NAMESPACE", lambda v: v["podNamespace"]),
        ("NAME", lambda v: v["podName"]),
        ("INTERFACE-NAME", lambda v: v["interfaceName"]),
        ("IP", lambda v: ",".join(v["ips"]) or "<none>"),
        ("MAC", lambda v: v["mac"] or "<none>"),
        ("OF-PORT", lambda v: str(v["ofPort"]) if v["ofPort"] else "<none>"),
        ("CONTAINER-ID", lambda v: v["containerID"][:12]),
    ],
    "ovstables": [
        ("ID", lambda v: str(v["tableID"])),
        ("NAME", lambda v: v["name"]),
        ("STAGE", lambda v: v["stage"]),
        ("PIPELINE", lambda v: v["pipeline"]),
        ("NEXT", lambda v: v["nextTable"] or "<none>"),
        ("MISS", lambda v: v["miss"]),
        ("FLOWS", lambda v: str(v["flowCount"])),
    ],
}


def table(resource: str, views: Sequence[View]) -> str:
    """Aligned columns with a header line; flows print one ovs-ofctl line each. Nothing
    at all for no objects (the CLI says so on stderr, like kubectl)."""
    if not views:
        return ""
    if resource == "ovsflows":
        return "\n".join(v["flow"] for v in views)
    columns = COLUMNS[resource]
    rows = [[header for header, _ in columns]]
    rows += [[cell(v) for _, cell in columns] for v in views]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def render(resource: str, views: Sequence[View], fmt: str, single: bool = False) -> str:
    """`single`: one object was asked for by name; JSON/YAML print it bare, not a list."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "table":
        return table(resource, views)
    data: Any = views[0] if single and len(views) == 1 else list(views)
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")
