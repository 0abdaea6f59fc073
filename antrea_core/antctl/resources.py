"""The resources `antctl get` knows, their short names, and where each one is served.

Controller resources come from the antrea-controller's query API (the cluster-wide
computation); agent resources from the local agent's query socket (antctl run on a node,
Antrea's "agent mode").
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass

from antrea_core.antctl.errors import UsageError
from antrea_core.apis.controlplane import ObjectKind


class Source(enum.StrEnum):
    CONTROLLER = "controller"
    AGENT = "agent"


@dataclass(frozen=True)
class Resource:
    name: str
    aliases: tuple[str, ...]
    source: Source
    help: str
    kind: ObjectKind | None = None  # controller resources: the control-plane kind


RESOURCES = (
    Resource("networkpolicy", ("networkpolicies", "netpol", "netpols"), Source.CONTROLLER,
             "internal NetworkPolicies computed by the controller", ObjectKind.NETWORK_POLICY),
    Resource("appliedtogroup", ("appliedtogroups", "atg", "atgs"), Source.CONTROLLER,
             "groups of pods a policy applies to", ObjectKind.APPLIED_TO_GROUP),
    Resource("addressgroup", ("addressgroups", "ag", "ags"), Source.CONTROLLER,
             "groups of pod IPs a rule allows", ObjectKind.ADDRESS_GROUP),
    Resource("podinterface", ("podinterfaces", "pi"), Source.AGENT,
             "this node's pod interfaces (agent)"),
    Resource("ovsflows", ("ovsflow", "of"), Source.AGENT,
             "flows of this node's bridge, tables by name (agent)"),
    Resource("ovstables", ("ovstable", "ot"), Source.AGENT,
             "the pipeline's tables with their ids and flow counts (agent)"),
)

_BY_NAME = {alias: r for r in RESOURCES for alias in (r.name, *r.aliases)}


def resolve(name: str) -> Resource:
    """The resource a name or short name means; a UsageError suggests the closest ones."""
    found = _BY_NAME.get(name.lower())
    if found is not None:
        return found
    close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys(_BY_NAME[c].name for c in close))
    hint = (f"; did you mean {' or '.join(suggestions)}?" if suggestions
            else f"; known resources: {', '.join(r.name for r in RESOURCES)}")
    raise UsageError(f"unknown resource type {name!r}{hint}")


def describe() -> str:
    """One line per resource for --help."""
    return "\n".join(f"{r.name} ({', '.join(r.aliases)}): {r.help}" for r in RESOURCES)
