"""The Egress Node reports itself: `status.egressNode`, `status.egressIP` and the
`IPAssigned` condition of the Egresses it serves.

Only the Node that serves an Egress writes it (the others would race); a Node that
served an Egress and no longer does clears the two fields unless another Node already
wrote its own name. A Node that died cannot clear them: its successor overwrites them,
and when there is none (no live Node the pool selects) the live Node with the smallest
name clears them, so that `kubectl get eg` never names a dead Node.
Writes go through `antrea_core.apis.egress.write_status` (GET, merge, PUT with the
resourceVersion, retried on conflict) so that the controller's `IPAllocated` condition
survives.
"""

from __future__ import annotations

import logging
from typing import Any

from antrea_core.apis.egress import set_condition, write_status
from antrea_core.k8s.rawclient import RawClient, is_status
from antrea_egress.model import Plan

log = logging.getLogger("antrea.agent.egress.status")

CONDITION = "IPAssigned"


class StatusWriter:
    def __init__(self, raw: RawClient, node: str) -> None:
        self.raw = raw
        self.node = node

    def sync(self, plan: Plan, egresses: dict[str, Any], alive: set[str]) -> None:
        janitor = self.node == min(alive, default=None)
        for name, assignment in plan.assignments.items():
            egress = egresses[name]
            if assignment.node == self.node:
                if (egress.status_node, egress.status_ip) != (self.node, assignment.ip):
                    self._write(name, self.node, assignment.ip)
            elif egress.status_node == self.node:
                self._write(name, "", "")
            elif (janitor and not assignment.node and egress.status_node
                  and egress.status_node not in alive):
                self._write(name, "", "", dead=egress.status_node)

    def _write(self, name: str, node: str, ip: str, dead: str = "") -> None:
        former = dead or self.node

        def mutate(status: dict[str, Any]) -> bool:
            if not node and status.get("egressNode") not in (None, "", former):
                return False  # the new Egress Node was faster
            changed = (status.get("egressNode", ""), status.get("egressIP", "")) != (node, ip)
            status["egressNode"], status["egressIP"] = node, ip
            if node:
                changed |= set_condition(status, CONDITION, "True", "Assigned",
                                         f"EgressIP {ip} is assigned to Node {node}")
            else:
                changed |= set_condition(
                    status, CONDITION, "False", "NoEgressNode",
                    f"Node {former} is gone and no other live Node may hold the EgressIP"
                    if dead else f"Node {former} no longer holds the EgressIP")
            return changed

        try:
            write_status(self.raw, name, mutate)
            log.info("egress status egress=%s node=%s ip=%s", name, node or "-", ip or "-")
        except Exception as exc:
            if is_status(exc, 404):
                return  # deleted meanwhile
            raise
