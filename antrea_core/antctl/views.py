"""Objects as antctl shows them: plain dicts with camelCase keys (the field names of
Antrea's controlplane API), stable and sorted so `-o json|yaml` output diffs cleanly.

Control-plane objects arrive as the dataclasses of `antrea_core.apis.controlplane`; agent
answers as the protobuf messages of `agentquery.proto`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from antrea_core.apis import agentquery_pb2 as aq
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
    Direction,
    GroupMember,
    NetworkPolicy,
    NetworkPolicyRule,
    Service,
)


def _member(member: GroupMember) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pod": {"namespace": member.pod.namespace, "name": member.pod.name},
        "ips": list(member.ips),
    }
    if member.node:
        out["node"] = member.node
    if member.ports:
        out["ports"] = [{"name": p.name, "port": p.port, "protocol": str(p.protocol)}
                        for p in member.ports]
    return out


def _members(members: Iterable[GroupMember]) -> list[dict[str, Any]]:
    ordered = sorted(members, key=lambda m: (m.pod.namespace, m.pod.name, m.ips))
    return [_member(m) for m in ordered]


def _service(service: Service) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": str(service.protocol)}
    if service.port is not None:
        out["port"] = service.port
    if service.end_port is not None:
        out["endPort"] = service.end_port
    return out


def _rule(rule: NetworkPolicyRule) -> dict[str, Any]:
    peer: dict[str, Any] = {}
    if rule.peer.address_groups:
        peer["addressGroups"] = list(rule.peer.address_groups)
    if rule.peer.ip_blocks:
        peer["ipBlocks"] = [{"cidr": b.cidr, "except": list(b.except_)}
                            for b in rule.peer.ip_blocks]
    # As in Antrea: ingress rules list their peers under "from", egress rules under "to".
    return {
        "direction": str(rule.direction),
        "from" if rule.direction is Direction.IN else "to": peer,
        "services": [_service(s) for s in rule.services],
        "priority": rule.priority,
    }


def control_plane(obj: ControlPlaneObject, span: Iterable[str]) -> dict[str, Any]:
    nodes = sorted(span)
    if isinstance(obj, NetworkPolicy):
        return {
            "metadata": {"name": obj.name},
            "sourceRef": {"type": obj.source.type, "namespace": obj.source.namespace,
                          "name": obj.source.name, "uid": obj.source.uid},
            "appliedToGroups": list(obj.applied_to_groups),
            "rules": [_rule(r) for r in obj.rules],
            "policyTypes": [str(t) for t in obj.policy_types],
            "generation": obj.generation,
            "span": nodes,
        }
    assert isinstance(obj, AppliedToGroup | AddressGroup)
    return {"metadata": {"name": obj.name}, "groupMembers": _members(obj.members),
            "span": nodes}


def pod_interface(item: aq.PodInterface) -> dict[str, Any]:
    return {
        "podNamespace": item.pod_namespace,
        "podName": item.pod_name,
        "interfaceName": item.interface_name,
        "ips": list(item.ips),
        "mac": item.mac,
        "ofPort": item.ofport,
        "containerID": item.container_id,
    }


def flow(item: aq.Flow) -> dict[str, Any]:
    return {"table": item.table, "tableID": item.table_id, "flow": item.flow}


def table(item: aq.Table) -> dict[str, Any]:
    return {"name": item.name, "tableID": item.table_id, "stage": item.stage,
            "pipeline": item.pipeline, "nextTable": item.next_table, "miss": item.miss,
            "flowCount": item.flow_count}
