"""What a Pod (a dict in API JSON shape) contributes to groups: its `GroupMember`, if any."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from antrea_core.apis.controlplane import GroupMember, L4Protocol, NamedPort, PodReference

logger = logging.getLogger("antrea.controller.grouping")

_TERMINATED = ("Succeeded", "Failed")
_PROTOCOLS = {p.value: p for p in L4Protocol}


def _named_ports(spec: Mapping[str, Any]) -> tuple[NamedPort, ...]:
    ports: list[NamedPort] = []
    for container in spec.get("containers") or ():
        for port in container.get("ports") or ():
            name = port.get("name")
            number = port.get("containerPort")
            if not name or not isinstance(number, int):
                continue
            protocol = _PROTOCOLS.get(port.get("protocol") or "TCP")
            if protocol is None:
                continue
            named = NamedPort(name, number, protocol)
            if named not in ports:
                ports.append(named)
    return tuple(ports)


def pod_member(pod: Mapping[str, Any], previous: GroupMember | None = None) -> GroupMember | None:
    """The pod's member, or None when it cannot be in any group: neither scheduled nor
    given an IP, terminated (Succeeded/Failed), or hostNetwork. HostNetwork pods share the
    node's IP and OVS does not see their traffic, so (like Antrea for K8s NetworkPolicy)
    they are neither selected as applied-to targets nor listed as peers.

    A scheduled pod without an IP yet is a member with no IPs: its node must hold the
    policies applied to it *before* its CNI ADD, or the pod would be reachable until
    kubelet reports its IP (AddressGroups leave such members out, `Group.address_members`).
    `previous` is returned when nothing the member carries changed, so one object per pod
    is shared by every group holding it."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in _TERMINATED:
        return None
    node = spec.get("nodeName") or ""
    ips = tuple(p["ip"] for p in status.get("podIPs") or () if p.get("ip"))
    if not ips:
        ip = status.get("podIP")
        if ip:
            ips = (ip,)
        elif not node:
            return None
    ports = _named_ports(spec) if spec.get("containers") else ()
    meta = pod["metadata"]
    if (previous is not None and previous.ips == ips and previous.node == node
            and previous.ports == ports):
        return previous
    return GroupMember(PodReference(meta.get("namespace") or "default", meta["name"]),
                       ips, node, ports)
