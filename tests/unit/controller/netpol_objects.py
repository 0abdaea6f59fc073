"""Builders of Kubernetes objects (API JSON dicts) and a recording ControlPlaneStore for
the controller's computation tests."""

from __future__ import annotations

from typing import Any

from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
    NetworkPolicy,
    ObjectKind,
    kind_of,
)


class RecordingStore:
    """Keeps the latest object and span per (kind, name) and every call, in order."""

    def __init__(self) -> None:
        self.objects: dict[tuple[ObjectKind, str], tuple[ControlPlaneObject, frozenset[str]]] = {}
        self.calls: list[tuple[str, ObjectKind, str]] = []

    def upsert(self, obj: ControlPlaneObject, span: frozenset[str]) -> None:
        assert isinstance(span, frozenset)
        self.objects[(kind_of(obj), obj.name)] = (obj, span)
        self.calls.append(("upsert", kind_of(obj), obj.name))

    def delete(self, kind: ObjectKind, name: str) -> None:
        assert (kind, name) in self.objects, f"delete of unknown {kind} {name}"
        del self.objects[(kind, name)]
        self.calls.append(("delete", kind, name))

    def reset_calls(self) -> None:
        self.calls.clear()

    def of_kind(self, kind: ObjectKind) -> dict[str, tuple[Any, frozenset[str]]]:
        return {name: v for (k, name), v in self.objects.items() if k == kind}

    def policies(self) -> dict[str, tuple[NetworkPolicy, frozenset[str]]]:
        return self.of_kind(ObjectKind.NETWORK_POLICY)

    def policy(self, name: str) -> tuple[NetworkPolicy, frozenset[str]]:
        """The internal policy computed from the K8s policy `name` (any namespace)."""
        found = [v for v in self.policies().values() if v[0].source.name == name]
        assert len(found) == 1, f"{len(found)} policies named {name}"
        return found[0]

    def atg(self, name: str) -> tuple[AppliedToGroup, frozenset[str]]:
        return self.objects[(ObjectKind.APPLIED_TO_GROUP, name)]  # type: ignore[return-value]

    def ag(self, name: str) -> tuple[AddressGroup, frozenset[str]]:
        return self.objects[(ObjectKind.ADDRESS_GROUP, name)]  # type: ignore[return-value]

    def atg_pods(self, policy: str) -> set[str]:
        """ns/name of the pods the policy `policy` applies to."""
        np, _ = self.policy(policy)
        return {f"{m.pod.namespace}/{m.pod.name}"
                for g in np.applied_to_groups for m in self.atg(g)[0].members}

    def peer_pods(self, policy: str, rule: int = 0) -> set[str]:
        np, _ = self.policy(policy)
        return {f"{m.pod.namespace}/{m.pod.name}"
                for g in np.rules[rule].peer.address_groups for m in self.ag(g)[0].members}

    def upserts(self, kind: ObjectKind) -> list[str]:
        return [name for op, k, name in self.calls if op == "upsert" and k == kind]


def namespace(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def pod(ns: str, name: str, ip: str | None = "10.0.0.1", node: str = "node1",
        labels: dict[str, str] | None = None, ports: list[dict] | None = None,
        phase: str = "Running", host_network: bool = False) -> dict:
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"metadata": {"namespace": ns, "name": name, "uid": f"uid-{ns}-{name}",
                         "labels": labels or {}},
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": "c", "ports": ports or []}]},
            "status": status}


def policy(ns: str, name: str, pod_selector: dict | None = None,
           ingress: list | None = None, egress: list | None = None,
           policy_types: list[str] | None = None, uid: str | None = None) -> dict:
    spec: dict[str, Any] = {"podSelector": pod_selector or {}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if policy_types is not None:
        spec["policyTypes"] = policy_types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name, "uid": uid or f"uid-{ns}-{name}",
                         "generation": 1},
            "spec": spec}


def labels(**kv: str) -> dict:
    """A selector with matchLabels."""
    return {"matchLabels": kv}
