"""Restart reconciliation: release what belonged to pods deleted while the agent was down.

At start-up the interface store has just been rebuilt from OVSDB and IPAM reloaded from
its file; both still hold pods whose CNI DEL never reached an agent (kubelet deleted the
sandbox, the veth died with its netns, antrea-cni queued the DEL or could not). Pods the
API still binds to this node are left exactly as they are (no port, veth or address is
touched, so their traffic never stops); everything else is released.

Pods are matched by (namespace, name), as Antrea does: a pod recreated under the same
name while the agent was down keeps its port until kubelet's ADD for the new sandbox
takes it over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from antrea_core.agent.bridge.interface_store import InterfaceConfig, InterfaceStore
from antrea_core.agent.ipam.allocator import Allocation
from antrea_core.agent.podconfigurator import PodIPAM, PodPorts, PodVeths
from antrea_core.plugins.context import PodInterface

log = logging.getLogger("antrea.agent.reconcile")


class ReconcileIPAM(PodIPAM, Protocol):
    def allocations(self) -> list[Allocation]: ...
    def release_stale(self, known_container_ids: Collection[str]) -> list[Allocation]: ...


class ReconcilePorts(PodPorts, Protocol):
    def delete_pod_ports(self, names: Collection[str]) -> int: ...


@dataclass
class ReconcileResult:
    removed_ports: list[str] = field(default_factory=list)
    released: list[Allocation] = field(default_factory=list)
    kept: int = 0


def reconcile_pods(*, store: InterfaceStore, ports: ReconcilePorts, veths: PodVeths,
                   ipam: ReconcileIPAM, existing_pods: Collection[tuple[str, str]],
                   on_removed: Callable[[PodInterface], None] | None = None
                   ) -> ReconcileResult:
    """Remove ports/veths/IPs of pods not in ``existing_pods`` ((namespace, name) pairs)."""
    existing = set(existing_pods)
    result = ReconcileResult()
    stale: list[InterfaceConfig] = [c for c in store.containers()
                                    if (c.pod_namespace, c.pod_name) not in existing]
    if stale:
        for config in stale:
            if on_removed is not None and config.ofport is not None:
                on_removed(config.to_pod_interface())
        ports.delete_pod_ports([c.name for c in stale])  # one transaction for all
        ifnames = {a.container_id: a.ifname for a in ipam.allocations()}
        for config in stale:
            # Usually gone with the pod's netns; a still-present one must not linger.
            veths.teardown(config.name, container_id=config.container_id,
                           ifname=ifnames.get(config.container_id, ""))
            store.delete(config.name)
            result.removed_ports.append(config.name)
            log.info("removed port of deleted pod pod=%s/%s container=%s port=%s",
                     config.pod_namespace, config.pod_name, config.container_id,
                     config.name)
    # Keep an allocation if its container still has a port, or if its pod still exists
    # (an ADD that crashed half-way: kubelet's retry or DEL will reuse or release it).
    keep = {c.container_id for c in store.containers()}
    keep |= {a.container_id for a in ipam.allocations()
             if tuple(a.owner.split("/", 1)) in existing}
    result.released = ipam.release_stale(keep)
    result.kept = len(store.containers())
    log.info("reconciled pods kept=%d removed_ports=%d released_ips=%d", result.kept,
             len(result.removed_ports), len(result.released))
    return result
