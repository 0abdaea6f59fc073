"""PacketCounter: counts pod traffic per local pod in a table of its own.

Enable it with `featureGates: {PacketCounter: true}` once installed.
"""

from __future__ import annotations

from typing import Any

from antrea_core.agent.openflow.flows import GOTO_NEXT, Flow
from antrea_core.agent.openflow.pipeline import Stage, TableSpec
from antrea_core.plugins.hookspecs import hookimpl

TABLE = "PacketCounter"


class PacketCounter:
    default_enabled = False

    def __init__(self) -> None:
        self.pods: dict[str, Any] = {}
        self.started = False

    @hookimpl
    def antrea_validate_config(self, config: Any) -> list[str]:
        if getattr(config, "ovs_datapath_type", "system") not in ("system", "netdev"):
            return ["ovsDatapathType: PacketCounter supports system and netdev only"]
        return []

    @hookimpl
    def antrea_pipeline_tables(self) -> list[TableSpec]:
        # Sits just before the egress policy tables, after conntrack state is known.
        return [TableSpec(TABLE, Stage.PRE_ROUTING, rank=10)]

    @hookimpl
    def antrea_initial_flows(self, layout: Any, context: Any) -> list[Flow]:
        # Everything passes through; per-pod flows added in antrea_pod_added count.
        return [Flow(TABLE, priority=0, goto=GOTO_NEXT)]

    @hookimpl
    def antrea_replay_flows(self, layout: Any, context: Any) -> list[Flow]:
        return [self._pod_flow(pod) for pod in self.pods.values()]

    @hookimpl
    def antrea_agent_started(self, context: Any) -> None:
        self.started = True

    @hookimpl
    def antrea_pod_added(self, pod: Any, context: Any) -> None:
        self.pods[f"{pod.namespace}/{pod.name}"] = pod

    @hookimpl
    def antrea_pod_removed(self, pod: Any, context: Any) -> None:
        self.pods.pop(f"{pod.namespace}/{pod.name}", None)

    @staticmethod
    def _pod_flow(pod: Any) -> Flow:
        return Flow(TABLE, priority=100, match={"in_port": pod.ofport}, goto=GOTO_NEXT)
