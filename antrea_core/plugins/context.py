"""Plain data handed to plugin hooks. Plugins read these; they never reach into the agent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeInfo:
    """A Kubernetes Node as the agent sees it."""

    name: str
    ips: tuple[str, ...]  # the node's transport (underlay) addresses
    pod_cidrs: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodInterface:
    """A pod's interface on this node's bridge."""

    namespace: str
    name: str
    container_id: str
    interface_name: str  # host-side interface / OVS port name
    ips: tuple[str, ...]
    mac: str
    ofport: int


@dataclass(frozen=True)
class CNIRequest:
    """One CNI command as received from the antrea-cni binary."""

    command: str  # ADD, DEL, CHECK
    container_id: str
    netns: str
    ifname: str
    args: Mapping[str, str]  # CNI_ARGS parsed: K8S_POD_NAMESPACE, K8S_POD_NAME, …
    config: Mapping[str, Any]  # the network configuration from stdin


@dataclass
class AgentContext:
    """What a plugin may use once the agent runs.

    `config` is the validated `AgentConfig`; `layout` the pipeline's `PipelineLayout`;
    `bridge` the OpenFlow client of the node's bridge (install/delete flows and groups);
    `node` this node; `kube_api` the official client's `kubernetes.client.ApiClient`
    authenticated as this agent (None when the agent runs without a cluster);
    `ovs_bridge` the OVSDB side of the bridge (`OVSBridge`: plugins attach their own
    ports); `state_dir` a directory kept across agent restarts (use a subdirectory
    named after your plugin). Fields
    are filled as the agent starts; hooks that receive the context are only called once
    the fields they need are set.
    """

    node_name: str
    config: Any
    layout: Any = None
    bridge: Any = None
    node: NodeInfo | None = None
    kube_api: Any = None
    ovs_bridge: Any = None
    state_dir: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
