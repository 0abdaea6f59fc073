"""What the kubelet reports about its Node and Lease, as plain API dicts."""

from __future__ import annotations

import os
import platform
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KUBELET_VERSION = "v1.30.0-antrea-lab"
RUNTIME_VERSION = "antrea-lab://0.1"
OS_IMAGE = "Antrea lab (Debian 12)"
MAX_PODS = 110
LEASE_DURATION = 40
NETWORK_NOT_READY_MSG = (
    "container runtime network not ready: NetworkReady=false "
    "reason:NetworkPluginNotReady message:Network plugin returns error: "
    "cni config uninitialized"
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def memory_ki() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def node_labels(node: str) -> dict[str, str]:
    arch = go_arch()
    return {
        "kubernetes.io/hostname": node,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    }


def conditions(network_ready: bool, transitions: dict[str, str]) -> list[dict[str, Any]]:
    """The kubelet-owned conditions; ``transitions`` keeps lastTransitionTime per type."""
    ts = now()
    ready = (
        ("True", "KubeletReady", "kubelet is posting ready status")
        if network_ready
        else ("False", "KubeletNotReady", NETWORK_NOT_READY_MSG)
    )
    rows = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", *ready),
    ]
    out = []
    for ctype, status, reason, message in rows:
        key = f"{ctype}={status}"
        if transitions.get(ctype, "").split("@")[0] != key:
            transitions[ctype] = f"{key}@{ts}"
        out.append({
            "type": ctype, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": ts,
            "lastTransitionTime": transitions[ctype].split("@", 1)[1],
        })
    return out


def network_unavailable_condition() -> dict[str, Any]:
    """Set once at registration; the network plugin owns it afterwards."""
    ts = now()
    return {
        "type": "NetworkUnavailable", "status": "False", "reason": "LabNetworkReady",
        "message": "the lab underlay connects every node", "lastHeartbeatTime": ts,
        "lastTransitionTime": ts,
    }


def node_status(node: str, node_ip: str, network_ready: bool,
                transitions: dict[str, str]) -> dict[str, Any]:
    resources = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_ki()}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": "10Gi",
    }
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "addresses": [
            {"type": "InternalIP", "address": node_ip},
            {"type": "Hostname", "address": node},
        ],
        "conditions": conditions(network_ready, transitions),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"),
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.antrea-lab")),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": OS_IMAGE,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": go_arch(),
        },
    }


def node_object(node: str, node_ip: str, network_ready: bool,
                transitions: dict[str, str]) -> dict[str, Any]:
    status = node_status(node, node_ip, network_ready, transitions)
    status["conditions"].append(network_unavailable_condition())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node, "labels": node_labels(node)},
        "spec": {},
        "status": status,
    }


def lease_object(node: str, node_uid: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": node, "namespace": "kube-node-lease"}
    if node_uid:
        meta["ownerReferences"] = [{
            "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid,
        }]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": micro_now(),
        },
    }
