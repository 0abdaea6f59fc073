"""How the agent runs NetworkPolicy enforcement: an internal pluggy plugin.

The controller learns about local pods through the same hooks as any plugin, so the
agent needs no extra call sites: ``antrea_pod_attaching`` on CNI ADD, before the pod's
forwarding flows exist (a pod selected by an isolating policy is never reachable
unprotected), ``antrea_pod_added`` for every surviving pod after a restart (on CNI ADD
it repeats what the controller already knows and changes nothing), and
``antrea_pod_removed`` for CNI DELs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.plugins.context import AgentContext, PodInterface
from antrea_core.plugins.hookspecs import hookimpl

log = logging.getLogger("antrea.agent.networkpolicy")

PLUGIN_NAME = "core:networkpolicy"


class PodEvents:
    """Forwards local pod hooks to the controller."""

    def __init__(self, controller: NetworkPolicyController) -> None:
        self.controller = controller

    @hookimpl
    def antrea_pod_attaching(self, pod: PodInterface, context: AgentContext) -> None:
        self.controller.pod_added(pod)

    @hookimpl
    def antrea_pod_added(self, pod: PodInterface, context: AgentContext) -> None:
        self.controller.pod_added(pod)

    @hookimpl
    def antrea_pod_removed(self, pod: PodInterface, context: AgentContext) -> None:
        self.controller.pod_removed(pod)


def enable(pm: Any, node_name: str, bridge: Any | None,
           gateway_ips: Iterable[str],
           flush_datapath: Callable[[], None] | None = None,
           layout: PipelineLayout | None = None) -> NetworkPolicyController:
    """Build the controller on the agent's bridge, register its pod hooks on `pm` and
    hook its replay into the bridge's OVS reconnects. No flow is installed until the
    watch client delivers a first snapshot. `flush_datapath` runs after each policy
    flow update (see `dpflush`)."""
    controller = NetworkPolicyController(node_name, bridge, gateway_ips, flush_datapath,
                                         layout)
    if bridge is None:
        log.warning("no OpenFlow bridge: NetworkPolicies will be computed, not enforced")
    else:
        controller.attach_replay(bridge.conn)
    old = pm.get_plugin(PLUGIN_NAME)
    if old is not None:  # an earlier agent run in this process
        pm.unregister(old)
    pm.register(PodEvents(controller), name=PLUGIN_NAME)
    return controller
