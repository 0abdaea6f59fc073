"""The seam between the agent's pod-networking control path and the OpenFlow pipeline.

The control path (CNI ADD/DEL, restart reconciliation) decides *when* a pod's flows must
exist; a `PodFlowInstaller` decides *which* flows those are. The agent never runs without
one: there is no "do nothing" installer, because a pod whose port exists without its
flows looks attached but cannot send a packet, which is worse than an agent that refuses
to start.

An installer is built once per agent run by a `FlowInstallerFactory`, after the bridge,
its gateway/tunnel ports and the node's podCIDRs are known (`AgentRuntime`), and before
the agent accepts any CNI request. Calling order per agent run:

1. ``uninstall_pod_flows`` for pods found deleted while the agent was down;
2. ``install_pod_flows`` for every pod still attached (the agent restarted: flows must be
   reinstalled, e.g. under a new cookie round), then ``sync_done()`` once, after which
   the installer may delete whatever the previous run installed and this one did not;
3. ``install_pod_flows`` / ``uninstall_pod_flows`` per CNI ADD / DEL.

Calls come from the CNI server's threads but never concurrently: the agent serialises
them. Both calls must be idempotent (a retried ADD/DEL repeats them). Raise any
exception to fail the operation; the agent rolls back and reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from antrea_core.agent.bridge.interface_store import InterfaceConfig, InterfaceStore
from antrea_core.plugins.context import AgentContext, NodeInfo, PodInterface


class PodFlowInstaller(Protocol):
    """Installs and removes the OpenFlow flows of one local pod."""

    def install_pod_flows(self, pod: PodInterface) -> None:
        """Make the pod reachable through the pipeline (classifier, spoof guard, L2/L3
        forwarding to ``pod.ofport`` for ``pod.ips``/``pod.mac``)."""
        ...

    def uninstall_pod_flows(self, pod: PodInterface) -> None:
        """Remove what install_pod_flows installed for this pod; fine if nothing is left."""
        ...

    def sync_done(self) -> None:
        """Every pod that survived the restart has been (re)installed."""
        ...


@dataclass(frozen=True)
class AgentRuntime:
    """What a factory may use to build the installer (read-only views of the agent)."""

    config: Any  # the validated AgentConfig
    layout: Any  # the PipelineLayout
    plugins: Any  # AgentPlugins
    context: AgentContext  # the plugin context; a factory may set ``context.bridge``
    node: NodeInfo
    bridge_name: str
    ovs_run_dir: str  # where ``<bridge>.mgmt`` lives
    datapath_type: str
    gateway: InterfaceConfig
    tunnel: InterfaceConfig | None
    pod_mtu: int
    store: InterfaceStore


FlowInstallerFactory = Callable[[AgentRuntime], PodFlowInstaller]


class FlowInstallerUnavailable(RuntimeError):
    """No pod flow installer is wired in: the agent cannot network pods."""
